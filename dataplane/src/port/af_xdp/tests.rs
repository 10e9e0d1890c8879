//! Tests of the AF_XDP port: the program encoding, configuration checks, and veth
//! round trips inside network namespaces (need root; SKIP otherwise).

use super::*;
use crate::packet::build::PacketSpec;
use crate::port::af_packet::{AfPacketPort, RingConfig};
use crate::port::testnet::{self, send_all, Netns};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const MARKER: &[u8] = b"statewall-af-xdp-test";

fn udp_frame(i: u16) -> Vec<u8> {
    let a = format!("10.1.{}.{}:{}", i >> 8, i & 0xff, 1000 + i);
    let b = format!("10.2.0.1:{}", 2000 + i % 7);
    PacketSpec::udp(a.parse().unwrap(), b.parse().unwrap())
        .payload(MARKER)
        .to_vec()
}

/// Opens an af_xdp port inside `which`; None (after printing SKIP) when the kernel or
/// the privileges do not allow AF_XDP or BPF.
fn open_xdp(
    ns: &Netns,
    which: &str,
    ifname: &str,
    queues: u16,
    cfg: XdpConfig,
    test: &str,
) -> Option<AfXdpPort> {
    let ifname = ifname.to_string();
    match ns.run_in(which, move || AfXdpPort::open(&ifname, queues, &cfg)) {
        Ok(p) => Some(p),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT | libc::EPERM | libc::EACCES | libc::ENOSYS)
            ) =>
        {
            prereq::skip_because(test, &format!("the kernel refused AF_XDP or BPF ({e})"));
            None
        }
        Err(e) => panic!("open af_xdp: {e}"),
    }
}

fn open_packet(ns: &Netns, which: &str, ifname: &str) -> AfPacketPort {
    let ifname = ifname.to_string();
    ns.run_in(which, move || {
        AfPacketPort::open(&ifname, 1, &RingConfig::default()).expect("open af_packet")
    })
}

fn has_xdp(ns: &Netns, which: &str, dev: &str) -> bool {
    let s = ns.link_show(which, dev);
    s.contains(" xdp") || s.contains("prog/xdp")
}

#[test]
fn port_af_xdp_program_encoding() {
    let p = redirect_program(7);
    let b: Vec<[u8; 8]> = p.iter().map(|i| i.to_ne_bytes()).collect();
    assert_eq!(b[0], [0x61, 0x12, 16, 0, 0, 0, 0, 0]); // r2 = *(u32 *)(r1 + 16)
    assert_eq!(b[1], [0x18, 0x11, 0, 0, 7, 0, 0, 0]); // r1 = map fd 7
    assert_eq!(b[2], [0; 8]);
    assert_eq!(b[3], [0xb7, 0x03, 0, 0, 2, 0, 0, 0]); // r3 = XDP_PASS
    assert_eq!(b[4], [0x85, 0, 0, 0, 51, 0, 0, 0]); // call bpf_redirect_map
    assert_eq!(b[5], [0x95, 0, 0, 0, 0, 0, 0, 0]); // exit
}

#[test]
fn port_af_xdp_rejects_bad_config() {
    let e = AfXdpPort::open("lo", 0, &XdpConfig::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("queues"), "{e}");
    let e = AfXdpPort::open("lo", 1, &XdpConfig::with_descriptors(100))
        .err()
        .unwrap();
    assert!(e.to_string().contains("power of two"), "{e}");
    let cfg = XdpConfig {
        frame_size: 1024,
        ..Default::default()
    };
    let e = AfXdpPort::open("lo", 1, &cfg).err().unwrap();
    assert!(e.to_string().contains("frame_size"), "{e}");
}

fn veth_round_trip(test: &str, mode: XdpMode) {
    let Some(ns) = Netns::new(test) else {
        return;
    };
    let (va, vb) = (ns.veth_a(), ns.veth_b());
    let cfg = XdpConfig {
        descriptors: 256,
        mode,
        ..Default::default()
    };
    let Some(mut x) = open_xdp(&ns, &ns.a, &va, 1, cfg, test) else {
        return;
    };
    if mode == XdpMode::Generic {
        assert!(!x.native());
    }
    println!("{test}: native={} zero_copy={}", x.native(), x.zero_copy());
    assert!(has_xdp(&ns, &ns.a, &va), "{}", ns.link_show(&ns.a, &va));
    let mut peer = open_packet(&ns, &ns.b, &vb);
    let mut pool = MbufPool::new(1024);
    let frames: Vec<Vec<u8>> = (0..300).map(udp_frame).collect();
    let total: u64 = frames.iter().map(|f| f.len() as u64).sum();

    // Peer -> af_xdp: more frames than the RX ring holds, read while they arrive.
    assert_eq!(send_all(&mut peer, &mut pool, &frames[..200]), 200);
    let got = testnet::receive(&mut x, &mut pool, 200, 3000, MARKER);
    assert_eq!(got.len(), 200);
    assert_eq!(send_all(&mut peer, &mut pool, &frames[200..]), 100);
    let got2 = testnet::receive(&mut x, &mut pool, 100, 3000, MARKER);
    let got: Vec<Vec<u8>> = got.into_iter().chain(got2).map(|(_, f)| f).collect();
    assert_eq!(got, frames, "bytes and order preserved");
    x.refresh_stats();
    let s = x.stats();
    assert!(s.rx_packets >= 300, "{s:?}");
    assert!(s.rx_bytes >= total, "{s:?}");
    assert_eq!((s.rx_errors, s.rx_nombuf, s.rx_missed), (0, 0, 0), "{s:?}");

    // af_xdp -> peer, more than the TX ring holds.
    assert_eq!(send_all(&mut x, &mut pool, &frames), 300);
    let got: Vec<Vec<u8>> = testnet::receive(&mut peer, &mut pool, 300, 3000, MARKER)
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    assert_eq!(got.len(), 300);
    assert_eq!(got, frames);
    x.refresh_stats();
    let s = x.stats();
    assert_eq!((s.tx_packets, s.tx_bytes, s.tx_errors), (300, total, 0));
    assert_eq!(pool.outstanding(), 0);
    assert_eq!(x.counters().total(), s);

    // A frame that does not fit a UMEM frame is dropped and counted.
    let mut big_pool = MbufPool::with_size(1, 4096);
    let mut m = big_pool.get().unwrap();
    m.set_len(3000);
    let mut pkts = vec![m];
    assert_eq!(x.tx_burst(0, &mut pkts, &mut big_pool), 1);
    assert!(pkts.is_empty());
    assert_eq!(big_pool.outstanding(), 0);
    assert_eq!(x.stats().tx_errors, 1);
    assert_eq!(x.stats().tx_packets, 300);

    // Dropping the port detaches the program.
    drop(x);
    let t0 = Instant::now();
    while has_xdp(&ns, &ns.a, &va) && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!has_xdp(&ns, &ns.a, &va), "{}", ns.link_show(&ns.a, &va));
}

#[test]
fn port_af_xdp_veth_round_trip() {
    veth_round_trip("port_af_xdp_veth_round_trip", XdpMode::Auto);
}

#[test]
fn port_af_xdp_veth_round_trip_generic() {
    veth_round_trip("port_af_xdp_veth_round_trip_generic", XdpMode::Generic);
}

#[test]
fn port_af_xdp_multi_queue_split() {
    let test = "port_af_xdp_multi_queue_split";
    let Some(ns) = Netns::with_queues(test, 2) else {
        return;
    };
    let (va, vb) = (ns.veth_a(), ns.veth_b());
    let cfg = XdpConfig::with_descriptors(256);
    let Some(x) = open_xdp(&ns, &ns.a, &va, 2, cfg, test) else {
        return;
    };
    let mut handles = x.split_queues();
    assert_eq!(handles.len(), 2);
    assert_eq!(handles[1].queue_range(), 1..2);
    assert_eq!(handles[1].queues(), 2);
    let mut peer = open_packet(&ns, &ns.b, &vb);
    let mut pool = MbufPool::new(1024);
    let frames: Vec<Vec<u8>> = (0..128).map(udp_frame).collect();
    assert_eq!(send_all(&mut peer, &mut pool, &frames), 128);
    let mut got = Vec::new();
    let t0 = Instant::now();
    while got.len() < frames.len() && t0.elapsed() < Duration::from_secs(3) {
        for h in &mut handles {
            got.extend(testnet::receive(h, &mut pool, 1, 10, MARKER));
        }
    }
    assert_eq!(got.len(), 128, "every queue has a socket");
    let total: u64 = handles.iter().map(|h| h.stats().rx_packets).sum();
    assert!(total >= 128);
    assert_eq!(handles[0].counters().total().rx_packets, total);
    // Handles of one port share the program: it stays until the last one drops.
    let last = handles.pop().unwrap();
    drop(handles);
    assert!(has_xdp(&ns, &ns.a, &va));
    drop(last);
    let t0 = Instant::now();
    while has_xdp(&ns, &ns.a, &va) && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!has_xdp(&ns, &ns.a, &va));
    assert_eq!(pool.outstanding(), 0);
}

#[test]
fn port_af_xdp_too_many_queues_is_an_error() {
    let test = "port_af_xdp_too_many_queues_is_an_error";
    let Some(ns) = Netns::new(test) else {
        return;
    };
    let va = ns.veth_a();
    let ifname = va.clone();
    let r = ns.run_in(&ns.a, move || {
        AfXdpPort::open(&ifname, 2, &XdpConfig::with_descriptors(64)).map(drop)
    });
    match r {
        Ok(()) => panic!("a 1-queue veth accepted 2 queues"),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT | libc::EPERM)) => {
            prereq::skip_because(test, &format!("the kernel refused AF_XDP or BPF ({e})"));
        }
        Err(e) => {
            assert!(e.to_string().contains("bind queue 1"), "{e}");
            // The failed open detached its program.
            assert!(!has_xdp(&ns, &ns.a, &va));
        }
    }
}

/// Polls queue 0 of `rx` for `secs` seconds; returns (frames, elapsed seconds).
fn drain_for<P: Port>(rx: &mut P, secs: f64) -> (u64, f64) {
    let mut pool = MbufPool::new(1024);
    let mut out = Vec::with_capacity(64);
    let t0 = Instant::now();
    let mut got = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        let n = rx.rx_burst(0, &mut pool, &mut out, 64);
        got += n as u64;
        pool.put_all(&mut out);
        if n == 0 {
            std::thread::yield_now();
        }
    }
    (got, t0.elapsed().as_secs_f64())
}

/// Frames per second received on one veth end, af_xdp vs af_packet, with the same
/// af_packet sender flooding from the peer. `cargo test -p dataplane --release
/// port_af_xdp_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn port_af_xdp_throughput() {
    let test = "port_af_xdp_throughput";
    let secs = 2.0;
    for backend in ["af_xdp(auto)", "af_xdp(generic)", "af_packet"] {
        let Some(ns) = Netns::new(test) else {
            return;
        };
        let (va, vb) = (ns.veth_a(), ns.veth_b());
        let (mut xdp, mut pkt) = (None, None);
        if backend == "af_packet" {
            pkt = Some(open_packet(&ns, &ns.a, &va));
        } else {
            let mode = if backend.contains("generic") {
                XdpMode::Generic
            } else {
                XdpMode::Auto
            };
            let cfg = XdpConfig {
                mode,
                ..Default::default()
            };
            match open_xdp(&ns, &ns.a, &va, 1, cfg, test) {
                Some(p) => xdp = Some(p),
                None => return,
            }
        }
        let mut peer = open_packet(&ns, &ns.b, &vb);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let sender = std::thread::spawn(move || {
            let mut pool = MbufPool::new(256);
            let frame = udp_frame(1);
            let mut pkts = Vec::with_capacity(64);
            let mut sent = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                while pkts.len() < 64 {
                    let mut m = pool.get().unwrap();
                    m.copy_from(&frame);
                    pkts.push(m);
                }
                sent += peer.tx_burst(0, &mut pkts, &mut pool) as u64;
            }
            sent
        });
        let (got, el, missed) = match (xdp.as_mut(), pkt.as_mut()) {
            (Some(p), _) => {
                let (g, el) = drain_for(p, secs);
                p.refresh_stats();
                (g, el, p.stats().rx_missed)
            }
            (None, Some(p)) => {
                let (g, el) = drain_for(p, secs);
                p.refresh_stats();
                (g, el, p.stats().rx_missed)
            }
            _ => unreachable!(),
        };
        stop.store(true, Ordering::Relaxed);
        let sent = sender.join().unwrap();
        println!(
            "THROUGHPUT {backend:>16}: {:>9.0} frames/s received ({got} in {el:.2}s; \
             sender {:.0} frames/s; rx_missed {missed})",
            got as f64 / el,
            sent as f64 / el
        );
    }
}
