//! A real DPDK process moves packets through statewall's conntrack and rules over memif.
//!
//! `dpdk-testpmd` (Debian's `dpdk-dev` package) is the memif server in `5tswap` mode: it
//! sends every frame back with MAC, IP addresses and L4 ports swapped, i.e. as the reply of
//! the flow. statewall (the built binary, `--features dpdk`) is the memif client on its
//! `outside` port; its `inside` port is a `net_pcap` vdev that reads the client traffic from
//! a capture and writes what comes back to another. With the rules
//! `FORWARD DROP; ESTABLISHED,RELATED ACCEPT; -i inside udp dport 23 DROP; -i inside NEW
//! ACCEPT`, the allowed flows go out as NEW and come back as ESTABLISHED; the port-23 flow
//! never leaves. Each process has its own `--file-prefix` (EAL runs once per process) and
//! `--no-huge` memory (memif's regions are memfd-backed, no hugepages needed).
#![cfg(feature = "dpdk")]

use dataplane::port::pcap::PcapPort;
use dataplane::port::{MbufPool, Port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLOWS: u16 = 8;
const PER_FLOW: u16 = 4;

fn csum(b: &[u8]) -> u16 {
    let mut s = 0u32;
    for c in b.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An Ethernet/IPv4/UDP frame of 64 bytes (UDP checksum 0: none, valid for IPv4).
fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, seq: u16) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[4..6].copy_from_slice(&seq.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = csum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let u = &mut f[34..60];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&26u16.to_be_bytes());
    u[8..10].copy_from_slice(&seq.to_be_bytes());
    f
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapPort::writer(path).unwrap();
    let mut pool = MbufPool::new(frames.len());
    let mut v = Vec::with_capacity(frames.len());
    for f in frames {
        let mut m = pool.get().unwrap();
        m.copy_from(f);
        v.push(m);
    }
    assert_eq!(w.tx_burst(0, &mut v, &mut pool), frames.len());
    w.flush().unwrap();
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapPort::reader(path).unwrap();
    let mut pool = MbufPool::new(256);
    let mut v = Vec::with_capacity(64);
    let mut out = Vec::new();
    while r.rx_burst(0, &mut pool, &mut v, 64) > 0 {
        out.extend(v.iter().map(|m| m.data().to_vec()));
        pool.put_all(&mut v);
    }
    out
}

struct Testpmd {
    child: Child,
    prefix: String,
    log: PathBuf,
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}

#[test]
fn dpdk_memif_testpmd_through_conntrack() {
    if prereq::needs("dpdk_memif_testpmd_through_conntrack")
        .tools(&["dpdk-testpmd"])
        .skip()
    {
        return;
    }
    let testpmd = prereq::which("dpdk-testpmd").unwrap();
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("sw-memif-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("memif.sock");
    // Client traffic: FLOWS allowed flows of PER_FLOW packets, plus one blocked (port 23).
    let mut frames = Vec::new();
    for k in 0..PER_FLOW {
        for f in 0..FLOWS {
            frames.push(udp([10, 0, 0, 1], [192, 0, 2, 1], 1000 + f, 53, k));
        }
    }
    for k in 0..PER_FLOW {
        frames.push(udp([10, 0, 0, 1], [192, 0, 2, 1], 5000, 23, k));
    }
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    write_pcap(&input, &frames);
    std::fs::write(
        dir.join("rules.v4"),
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A FORWARD -m state --state ESTABLISHED,RELATED -j ACCEPT\n\
         -A FORWARD -i inside -p udp --dport 23 -j DROP\n\
         -A FORWARD -i inside -m state --state NEW -j ACCEPT\nCOMMIT\n",
    )
    .unwrap();

    let tp_prefix = format!("sw-memif-tp-{pid}");
    let tp_log = dir.join("testpmd.log");
    let mut tp = Testpmd {
        child: Command::new(testpmd)
            .args([
                "-l",
                "0,1",
                "--no-huge",
                "-m",
                "512",
                "--no-pci",
                "--no-telemetry",
                &format!("--file-prefix={tp_prefix}"),
                &format!(
                    "--vdev=net_memif0,role=server,id=0,socket={}",
                    sock.display()
                ),
                "--",
                "--forward-mode=5tswap",
                "--auto-start",
                "--nb-cores=1",
                "--total-num-mbufs=8192",
                "--stats-period=1",
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&tp_log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
        prefix: tp_prefix,
        log: tp_log,
    };
    // Wait for testpmd to start forwarding (its memif server socket is listening then).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(&tp.log).unwrap_or_default();
        if log.contains("Port statistics") {
            break;
        }
        if let Ok(Some(st)) = tp.child.try_wait() {
            panic!("dpdk-testpmd exited ({st}):\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "dpdk-testpmd did not start:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let sw_prefix = format!("sw-memif-sw-{pid}");
    let config = format!(
        r#"
[dpdk]
eal_args = ["-l", "0", "--no-huge", "-m", "256", "--no-pci", "--no-telemetry",
            "--file-prefix={sw_prefix}",
            "--vdev=net_memif0,role=client,id=0,socket={sock}",
            "--vdev=net_pcap0,rx_pcap={input},tx_pcap={output}"]
[dataplane]
workers = 1
cores = [1]
pool_size = 1024
[[port]]
name = "outside"
backend = "dpdk"
device = "net_memif0"
descriptors = 256
[[port]]
name = "inside"
backend = "dpdk"
device = "net_pcap0"
descriptors = 256
[[pair]]
network = "outside"
host = "inside"
[rules]
file = "rules.v4"
[control]
listen = ""
socket = ""
stats_interval = 0
"#,
        sock = sock.display(),
        input = input.display(),
        output = output.display(),
    );
    let cfg_path = dir.join("statewall.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_statewall"))
        .args(["run", "--config"])
        .arg(&cfg_path)
        .args(["--duration", "3"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{sw_prefix}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(tp);
    assert!(out.status.success(), "statewall failed:\n{text}");
    eprintln!("{text}");

    // What came back: the reply of every allowed packet, addresses and ports swapped.
    let back = read_pcap(&output);
    let allowed = usize::from(FLOWS * PER_FLOW);
    assert_eq!(
        back.len(),
        allowed,
        "replies written to the inside capture:\n{text}"
    );
    for f in &back {
        assert_eq!(&f[26..30], &[192, 0, 2, 1], "reply source");
        assert_eq!(&f[30..34], &[10, 0, 0, 1], "reply destination");
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), 53, "reply source port");
        let dport = u16::from_be_bytes([f[36], f[37]]);
        assert!((1000..1000 + FLOWS).contains(&dport), "reply to {dport}");
    }

    // Conntrack: every flow began NEW; every reply was ESTABLISHED; the port-23 flow was
    // NEW and dropped.
    let ct = text
        .lines()
        .rfind(|l| l.contains("conntrack: entries"))
        .unwrap_or_else(|| panic!("no conntrack line:\n{text}"));
    let num = |key: &str| -> u64 {
        let mut it = ct.split_whitespace();
        it.find(|w| *w == key);
        it.next().unwrap().parse().unwrap()
    };
    let (new, est) = (num("NEW"), num("ESTABLISHED"));
    assert!(new > u64::from(FLOWS), "NEW {new}: {ct}");
    assert!(est >= allowed as u64, "ESTABLISHED {est}: {ct}");
    assert_eq!(
        new + est,
        2 * allowed as u64 + u64::from(PER_FLOW),
        "every packet was NEW or ESTABLISHED: {ct}"
    );
    assert_eq!(num("INVALID"), 0, "{ct}");
    assert!(ct.contains("entries 8 /"), "{ct}");
    let _ = std::fs::remove_dir_all(&dir);
}
