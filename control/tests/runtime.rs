//! The runtime on the pktgen backend: traffic flows end to end, and with two workers
//! every connection's packets are handled by exactly one worker.

use dataplane::conntrack::EntryView;
use dataplane::packet::proto;
use statewall::config::Config;
use statewall::runtime::Runtime;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn demo(workers: usize) -> Config {
    let mut cfg = Config::embedded();
    cfg.dataplane.workers = workers;
    cfg.dataplane.cores.clear();
    cfg.control.listen.clear();
    cfg.pktgen.flows = 256;
    cfg
}

/// A connection's identity independent of direction.
fn conn_id(e: &EntryView) -> (u8, Vec<u8>) {
    let mut a = e.orig.src.to_vec();
    a.extend_from_slice(&e.orig.sport.to_be_bytes());
    let mut b = e.orig.dst.to_vec();
    b.extend_from_slice(&e.orig.dport.to_be_bytes());
    if let Some((_, _, id)) = e.orig.icmp {
        b.extend_from_slice(&id.to_be_bytes());
    }
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (e.proto, [lo, hi].concat())
}

#[test]
fn tcp_udp_icmp_flows_stay_on_one_worker_each() {
    let rt = Runtime::start(demo(2), true).expect("runtime starts");
    std::thread::sleep(Duration::from_millis(1500));
    let tables: Vec<Vec<EntryView>> = rt
        .on_all(|p, now| p.table().iter(now).collect())
        .expect("workers answer");
    let snap = rt.pktgen.as_ref().expect("pktgen stats").snapshot();
    let per_worker: Vec<u64> = rt
        .workers
        .iter()
        .map(|w| w.stats.packets.load(Ordering::Relaxed))
        .collect();
    rt.shutdown();

    // Every worker did work, and the generator saw every connection progress normally.
    assert!(
        per_worker.iter().all(|&p| p > 0),
        "both workers process packets: {per_worker:?}"
    );
    assert_eq!(
        snap.steer_mismatch, 0,
        "a packet left on a queue its hash does not steer to: {snap:?}"
    );
    assert_eq!(
        snap.unexpected, 0,
        "simulated hosts saw packets that fit no connection: {snap:?}"
    );
    assert!(
        snap.connections_completed > 100,
        "connections complete: {snap:?}"
    );

    // Each connection is tracked in exactly one shard, and all three protocols are there.
    let mut owner: HashMap<(u8, Vec<u8>), usize> = HashMap::new();
    let mut protos = [0usize; 3];
    for (w, entries) in tables.iter().enumerate() {
        for e in entries {
            if let Some(prev) = owner.insert(conn_id(e), w) {
                assert_eq!(
                    prev, w,
                    "connection {e:?} is tracked on workers {prev} and {w}"
                );
            }
            match e.proto {
                proto::TCP => protos[0] += 1,
                proto::UDP => protos[1] += 1,
                proto::ICMP => protos[2] += 1,
                _ => {}
            }
        }
    }
    assert!(
        protos.iter().all(|&n| n > 0),
        "tcp/udp/icmp entries present: {protos:?}"
    );
    assert!(
        tables.iter().all(|t| !t.is_empty()),
        "both shards hold connections"
    );
}

#[test]
fn demo_ruleset_forwards_everything_the_inside_opens() {
    let rt = Runtime::start(demo(1), true).expect("runtime starts");
    std::thread::sleep(Duration::from_millis(800));
    let sum = |f: &dyn Fn(&dataplane::worker::PublishedStats) -> u64| rt.sum(f);
    let new = sum(&|w| w.by_state[0].load(Ordering::Relaxed));
    let est = sum(&|w| w.by_state[1].load(Ordering::Relaxed));
    let invalid = sum(&|w| w.by_state[3].load(Ordering::Relaxed));
    let drops: u64 = sum(&|w| w.drops.iter().map(|d| d.load(Ordering::Relaxed)).sum());
    rt.shutdown();
    assert!(
        new > 0 && est > new,
        "NEW {new} and ESTABLISHED {est} packets"
    );
    assert_eq!(
        invalid, 0,
        "the generator's connections are valid TCP/UDP/ICMP"
    );
    assert_eq!(
        drops, 0,
        "the demo ruleset accepts what the inside opens and its replies"
    );
}

#[test]
fn pcap_ports_run_a_capture_through_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/oracle/captures/m01_mixed.pcap");
    let out = dir.path().join("out.pcap");
    let rules = dir.path().join("accept.rules");
    std::fs::write(
        &rules,
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
    )
    .unwrap();
    let text = format!(
        "[dataplane]\nworkers = 1\n[[port]]\nname = \"net\"\nbackend = \"pcap\"\npcap_in = \"{}\"\n\
         [[port]]\nname = \"host\"\nbackend = \"pcap\"\npcap_out = \"{}\"\n\
         [[pair]]\nnetwork = \"net\"\nhost = \"host\"\n[rules]\nfile = \"{}\"\n[control]\nlisten = \"\"\n",
        src.display(),
        out.display(),
        rules.display()
    );
    let cfg = Config::parse(&text, "pcap.toml").unwrap();
    let rt = Runtime::start(cfg, false).expect("runtime starts on pcap ports");
    std::thread::sleep(Duration::from_millis(500));
    let processed = rt.sum(|w| w.packets.load(Ordering::Relaxed));
    rt.shutdown();
    drop(rt);
    let n_in = statewall::replay::read_all(&src).unwrap().len();
    let n_out = statewall::replay::read_all(&out).unwrap().len();
    assert_eq!(
        processed as usize, n_in,
        "every frame of the capture was processed"
    );
    assert!(
        n_out > 0 && n_out <= n_in,
        "accepted frames were written: {n_out} of {n_in}"
    );
}
