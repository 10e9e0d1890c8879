//! DPDK backend tests over virtual devices (no NIC, no hugepages).
//!
//! DPDK's EAL can be initialised once per process, so every case runs in a child process:
//! the test spawns this test binary again with `SW_DPDK_CASE=<case>`, filtered to
//! [`case_runner`], which runs that one case under its own `--file-prefix`.
//! (`--no-huge` cannot be combined with `--in-memory`; the runtime directory DPDK then
//! makes for the prefix is removed after the case.)

use super::*;
use crate::port::pcap::PcapPort;
use std::path::PathBuf;
use std::process::Command;

const CASE_ENV: &str = "SW_DPDK_CASE";

fn eal_args(case: &str, vdevs: &[String]) -> Vec<String> {
    let mut a: Vec<String> = [
        "-l",
        "0",
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-telemetry",
        "--log-level=lib.eal:error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(format!(
        "--file-prefix={}",
        prefix(case, std::process::id())
    ));
    for v in vdevs {
        a.push(format!("--vdev={v}"));
    }
    a
}

fn prefix(case: &str, pid: u32) -> String {
    format!("sw-test-{case}-{pid}")
}

fn tmpdir(case: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sw-dpdk-{case}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `case` in a child process (this binary, filtered to `case_runner`).
fn run_case(case: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "port::dpdk::tests::case_runner",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CASE_ENV, case)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = out.id();
    let out = out.wait_with_output().unwrap();
    // The runtime directory of the child's file prefix (root: /var/run/dpdk).
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", prefix(case, pid)));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "case {case} failed:\n{text}");
    assert!(
        text.contains(&format!("case {case}: ok")),
        "case {case} did not run:\n{text}"
    );
}

/// The child side: runs the case named by `SW_DPDK_CASE` (nothing when it is unset).
#[test]
fn case_runner() {
    let Ok(case) = std::env::var(CASE_ENV) else {
        return;
    };
    match case.as_str() {
        "null" => case_null(),
        "null_queues" => case_null_queues(),
        "pcap" => case_pcap(),
        "errors" => case_errors(),
        "softrss" => case_softrss(),
        other => panic!("unknown case {other}"),
    }
    eal_cleanup().unwrap();
    println!("case {case}: ok");
}

/// statewall's Toeplitz hash (steer::rss) equals DPDK's `rte_softrss` on random IPv4
/// and IPv6 tuples, under the symmetric key and another; and a net_null port, which
/// does no RSS, reports no steering (its workers check every packet).
fn case_softrss() {
    use crate::steer::rss::{Toeplitz, SYMMETRIC_KEY};
    eal_init(&eal_args("softrss", &["net_null0".into()])).unwrap();
    let other: [u8; 40] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xa5);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for key in [SYMMETRIC_KEY, other] {
        let t = Toeplitz::new(&key);
        for len in [8usize, 12, 32, 36] {
            for _ in 0..200 {
                let mut input = [0u8; 36];
                for b in input.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
                let words: Vec<u32> = input[..len]
                    .chunks(4)
                    .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
                    .collect();
                assert_eq!(t.hash(&input[..len]), softrss(&words, &key), "len {len}");
            }
        }
    }
    let port = DpdkPort::open(
        "n",
        "net_null0",
        &DpdkPortConfig {
            queues: 2,
            ..small()
        },
    )
    .unwrap();
    assert_eq!(port.steering(), None, "net_null does no RSS");
    assert!(!port.steering_trusted());
    drop(port);
}

#[test]
fn dpdk_toeplitz_matches_rte_softrss() {
    run_case("softrss");
}

#[test]
fn dpdk_null_rx_tx_and_stats() {
    run_case("null");
}

#[test]
fn dpdk_null_split_queues() {
    run_case("null_queues");
}

#[test]
fn dpdk_pcap_rx_to_tx() {
    run_case("pcap");
}

#[test]
fn dpdk_errors_name_the_problem() {
    run_case("errors");
}

fn small() -> DpdkPortConfig {
    DpdkPortConfig {
        queues: 1,
        descriptors: 256,
        pool_size: 1024,
        socket_id: None,
        link_wait: Duration::from_secs(1),
    }
}

/// net_null: rx returns 64-byte frames; tx frees them; counters and device stats agree;
/// a pool buffer is copied on tx; a received mbuf can be rewritten in place (REJECT path).
fn case_null() {
    eal_init(&eal_args("null", &["net_null0".into(), "net_null1".into()])).unwrap();
    assert!(eal_initialized());
    assert_eq!(port_count(), 2);
    let mut a = DpdkPort::open("a", "net_null0", &small()).unwrap();
    let mut b = DpdkPort::open("b", "net_null1", &small()).unwrap();
    assert!(a.link_up());
    assert_eq!(a.queue_range(), 0..1);
    let mut pool = MbufPool::new(64);
    let mut rx = Vec::with_capacity(32);
    let mut total = 0usize;
    for _ in 0..10 {
        let n = a.rx_burst(0, &mut pool, &mut rx, 32);
        assert_eq!(n, rx.len());
        total += n;
        for m in &rx {
            assert_eq!(m.len(), 64);
            assert_eq!(m.data().len(), 64);
            assert!(m.capacity() >= 2048);
            assert_eq!(m.port, a.port_id());
        }
        // Forward to the other null port: zero-copy, all sent.
        let sent = b.tx_burst(0, &mut rx, &mut pool);
        assert_eq!(sent, n);
        assert!(rx.is_empty());
    }
    assert!(total > 0, "net_null returned no packets");
    assert_eq!(pool.outstanding(), 0, "the worker pool is not used on rx");
    let sa = a.stats();
    assert_eq!(sa.rx_packets, total as u64);
    assert_eq!(sa.rx_bytes, 64 * total as u64);
    let sb = b.stats();
    assert_eq!(sb.tx_packets, total as u64);
    let da = a.device_stats().unwrap();
    assert_eq!(da.ipackets, total as u64);
    let db = b.device_stats().unwrap();
    assert_eq!(db.opackets, total as u64);

    // REJECT path: rewrite a received frame in place, then send it.
    a.rx_burst(0, &mut pool, &mut rx, 1);
    let mut m = rx.pop().unwrap();
    m.data_mut_full()[..80].fill(0xab);
    m.set_len(80);
    assert_eq!(m.data(), &[0xab; 80][..]);
    m.copy_from(&[1, 2, 3]);
    assert_eq!(m.data(), &[1, 2, 3]);
    rx.push(m);
    assert_eq!(b.tx_burst(0, &mut rx, &mut pool), 1);
    // A received mbuf returned to the worker pool goes back to DPDK, not to the pool.
    a.rx_burst(0, &mut pool, &mut rx, 4);
    pool.put_all(&mut rx);
    assert_eq!(pool.available(), 64);

    // Copy path: a pool buffer is copied into an mbuf and returned to the pool.
    let mut v = Vec::with_capacity(4);
    for i in 0..3u8 {
        let mut m = pool.get().unwrap();
        m.copy_from(&[i; 60]);
        v.push(m);
    }
    assert_eq!(pool.outstanding(), 3);
    assert_eq!(b.tx_burst(0, &mut v, &mut pool), 3);
    assert!(v.is_empty());
    assert_eq!(pool.outstanding(), 0);

    // Queue outside the handle: nothing moves.
    assert_eq!(a.rx_burst(1, &mut pool, &mut rx, 32), 0);

    // Device-only counters reach queue 0 (all zero on net_null, but the refresh runs).
    a.refresh_device_stats();
    assert_eq!(a.stats().rx_missed, 0);
    drop(a);
    drop(b);
}

/// Two queues split into two handles, each with its own counters.
fn case_null_queues() {
    eal_init(&eal_args("null_queues", &["net_null0".into()])).unwrap();
    let cfg = DpdkPortConfig {
        queues: 2,
        ..small()
    };
    let port = DpdkPort::open("n", "net_null0", &cfg).unwrap();
    assert_eq!(port.queues(), 2);
    let mut hs = port.split_queues();
    assert_eq!(hs.len(), 2);
    assert_eq!(hs[1].queue_range(), 1..2);
    let mut pool = MbufPool::new(64);
    let mut rx = Vec::with_capacity(32);
    let n0 = hs[0].rx_burst(0, &mut pool, &mut rx, 8);
    let n1 = hs[1].rx_burst(1, &mut pool, &mut rx, 16);
    assert_eq!(hs[0].rx_burst(1, &mut pool, &mut rx, 8), 0);
    assert_eq!((n0, n1), (8, 16));
    assert_eq!(hs[0].stats().rx_packets, 8);
    assert_eq!(hs[1].stats().rx_packets, 16);
    assert_eq!(hs[0].counters().total().rx_packets, 24);
    rx.clear();
    // The device closes with the last handle; a second open of the same device fails
    // while any handle lives.
    let h1 = hs.pop().unwrap();
    drop(hs);
    let e = DpdkPort::open("n", "net_null0", &cfg).err().unwrap();
    assert!(e.to_string().contains("already open"), "{e}");
    drop(h1);
}

fn frame(i: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[20..]
        .iter_mut()
        .enumerate()
        .for_each(|(k, b)| *b = i ^ k as u8);
    f
}

/// net_pcap: frames read from one capture by DPDK, sent to another, read back.
fn case_pcap() {
    let dir = tmpdir("pcap");
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    let frames: Vec<Vec<u8>> = (0..20u8)
        .map(|i| frame(i, 60 + usize::from(i) * 10))
        .collect();
    {
        let mut w = PcapPort::writer(&input).unwrap();
        let mut pool = MbufPool::new(32);
        let mut v = Vec::with_capacity(32);
        for f in &frames {
            let mut m = pool.get().unwrap();
            m.copy_from(f);
            v.push(m);
        }
        assert_eq!(w.tx_burst(0, &mut v, &mut pool), frames.len());
        w.flush().unwrap();
    }
    let vdevs = [
        format!("net_pcap0,rx_pcap={}", input.display()),
        format!("net_pcap1,tx_pcap={}", output.display()),
    ];
    eal_init(&eal_args("pcap", &vdevs)).unwrap();
    let mut rxp = DpdkPort::open("in", "net_pcap0", &small()).unwrap();
    let mut txp = DpdkPort::open("out", "net_pcap1", &small()).unwrap();
    let mut pool = MbufPool::new(64);
    let mut rx = Vec::with_capacity(32);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < frames.len() && Instant::now() < deadline {
        rxp.rx_burst(0, &mut pool, &mut rx, 8);
        got.extend(rx.iter().map(|m| m.data().to_vec()));
        let n = rx.len();
        assert_eq!(txp.tx_burst(0, &mut rx, &mut pool), n);
    }
    assert_eq!(got, frames);
    assert_eq!(rxp.stats().rx_packets, 20);
    assert_eq!(txp.stats().tx_packets, 20);
    let bytes: usize = frames.iter().map(Vec::len).sum();
    assert_eq!(txp.stats().tx_bytes, bytes as u64);
    assert_eq!(rxp.device_stats().unwrap().ipackets, 20);
    // Closing the port flushes the capture.
    drop(rxp);
    drop(txp);
    let mut r = PcapPort::reader(&output).unwrap();
    let mut back = Vec::new();
    loop {
        let n = r.rx_burst(0, &mut pool, &mut rx, 32);
        if n == 0 {
            break;
        }
        back.extend(rx.iter().map(|m| m.data().to_vec()));
        pool.put_all(&mut rx);
    }
    assert_eq!(back, frames);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Errors name the device and say what to do.
fn case_errors() {
    let e = DpdkPort::open("x", "net_null0", &small()).err().unwrap();
    assert!(e.to_string().contains("not initialised"), "{e}");
    eal_init(&eal_args("errors", &["net_null0".into()])).unwrap();
    // A second init returns the first result instead of calling DPDK again.
    eal_init(&["--bogus"]).unwrap();
    let e = DpdkPort::open("x", "net_memif7", &small()).err().unwrap();
    assert!(
        e.to_string().contains("no DPDK port named \"net_memif7\""),
        "{e}"
    );
    let big = DpdkPortConfig {
        queues: 4096,
        ..small()
    };
    let e = DpdkPort::open("x", "net_null0", &big).err().unwrap();
    assert!(e.to_string().contains("net_null0"), "{e}");
    // The failed open released the device.
    let p = DpdkPort::open("x", "net_null0", &small()).unwrap();
    drop(p);
}
