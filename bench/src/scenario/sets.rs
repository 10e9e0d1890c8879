//! IP sets: the per-packet cost of a rule testing a 100 k-element set against the demo
//! ruleset alone (same run, same packets), the control plane's bulk load, and the rate
//! of set changes (`ipset restore` text, as `ctl set restore` and the API send it) while
//! a pipeline forwards established traffic through the set rule, counting every verdict.

use super::ruleset::pipeline_handshakes;
use crate::report::Row;
use crate::Opts;
use dataplane::conntrack::ConnTable;
use dataplane::ruleset::{parse_ruleset_with_sets, Ruleset};
use dataplane::sets::{Key, KeyOp, SetRegistry};
use dataplane::worker::{Action, Burst, NonIpPolicy, PairMode, PairView, Pipeline, Side};
use serde_json::json;
use statewall_bench::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const VIEW: PairView<'static> = PairView {
    mode: PairMode::Forward,
    network: "outside",
    host: "inside",
};

/// Elements of the big set: 172.16.0.0/12 addresses (the clients are 10.0.0.0/8).
fn elem(i: u32) -> String {
    let a = std::net::Ipv4Addr::from((172u32 << 24 | 16 << 16) + i);
    a.to_string()
}

fn with_set_rules() -> String {
    statewall::config::DEMO_RULES.replacen(
        ":OUTPUT ACCEPT [0:0]\n",
        ":OUTPUT ACCEPT [0:0]\n-A FORWARD -m set --match-set big src -j DROP\n",
        1,
    )
}

/// Runs established data packets of `flows` handshaken flows through `rs` for about
/// `secs`; (ns per packet, packets, forwarded). `stop` ends it early when set.
fn run_established(
    rs: &Ruleset,
    flows: u32,
    secs: f64,
    stop: Option<&AtomicBool>,
) -> (f64, u64, u64) {
    let data = data_frames(flows);
    let mut p = Pipeline::new(
        ConnTable::new(1 << 14, Default::default()),
        rs,
        NonIpPolicy::PassArp,
    );
    pipeline_handshakes(&mut p, rs, flows);
    let mut reply = [0u8; 2048];
    let (mut timed, mut pkts, mut fwd) = (Duration::ZERO, 0u64, 0u64);
    while timed.as_secs_f64() < secs && !stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
        let t0 = Instant::now();
        for k in 0..flows as usize {
            let f = &data[k * FRAME..(k + 1) * FRAME];
            let r = p.process(
                &mut Burst::new(rs, VIEW, Side::Host, 2_000_000 + pkts, &mut |_| {}),
                f,
                &mut reply,
            );
            fwd += (r.action == Action::Forward) as u64;
        }
        pkts += flows as u64;
        timed += t0.elapsed();
    }
    (timed.as_nanos() as f64 / pkts.max(1) as f64, pkts, fwd)
}

pub(crate) fn sets(o: &Opts) -> Vec<Row> {
    let mut out = Vec::new();
    let n = 100_000u32;
    let sets = SetRegistry::new();
    let mut text = String::with_capacity(n as usize * 24);
    text.push_str("create big hash:ip family inet hashsize 65536 maxelem 1048576\n");
    for i in 0..n {
        text.push_str(&format!("add big {}\n", elem(i)));
    }
    let t0 = Instant::now();
    sets.restore(&text, "bench", 0, false)
        .expect("the set loads");
    let load_s = t0.elapsed().as_secs_f64();
    out.push(Row {
        scenario: "sets load".into(),
        params: format!("{n} elements, one restore text"),
        mpps: None,
        ns_pkt: None,
        cps: Some(n as f64 / load_s),
        peer: format!("{:.1} ms", load_s * 1e3),
        extra: json!({"elements": n, "seconds": load_s}),
    });

    // Per-packet cost: the demo ruleset, and the demo ruleset behind a set rule that
    // every packet meets first, interleaved twice so drift hits both alike.
    let demo = parse_ruleset_with_sets(statewall::config::DEMO_RULES, "demo", None, &sets)
        .expect("demo compiles");
    let big = parse_ruleset_with_sets(&with_set_rules(), "demo+set", None, &sets)
        .expect("set ruleset compiles");
    let per = o.secs() * 0.25;
    let (mut ns_demo, mut ns_big) = (0.0, 0.0);
    let mut lost = 0;
    for _ in 0..2 {
        let (a, pa, fa) = run_established(&demo, 1024, per, None);
        let (b, pb, fb) = run_established(&big, 1024, per, None);
        ns_demo += a / 2.0;
        ns_big += b / 2.0;
        lost += (pa - fa) + (pb - fb);
    }
    if lost > 0 {
        crate::fail(format!("sets: {lost} established packets not forwarded"));
    }
    out.push(Row {
        scenario: "sets per packet".into(),
        params: format!("demo + {n}-element set rule first"),
        mpps: Some(1e3 / ns_big),
        ns_pkt: Some(ns_big),
        cps: None,
        peer: format!(
            "demo alone {ns_demo:.1} ns/pkt; ratio {:.3}",
            ns_big / ns_demo
        ),
        extra: json!({"ns_demo": ns_demo, "ns_with_set": ns_big, "ratio": ns_big / ns_demo}),
    });

    // Change rate while a pipeline runs through the set rule (another thread).
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (rs, stop) = (big.clone(), stop.clone());
        std::thread::spawn(move || run_established(&rs, 1024, 3600.0, Some(&stop)))
    };
    let batch = 10_000u32;
    let (mut changes, mut next, mut oldest) = (0u64, n, 0u32);
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < o.secs() {
        let mut t = String::with_capacity(batch as usize * 24);
        for _ in 0..batch / 2 {
            t.push_str(&format!("add big {}\n", elem(next)));
            t.push_str(&format!("del big {}\n", elem(oldest)));
            next += 1;
            oldest += 1;
        }
        sets.restore(&t, "bench", 0, false).expect("batch applies");
        changes += batch as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (ns_during, pkts, fwd) = reader.join().expect("reader");
    if pkts != fwd {
        crate::fail(format!(
            "sets: {} of {pkts} packets not forwarded during set changes",
            pkts - fwd
        ));
    }
    out.push(Row {
        scenario: "sets changes".into(),
        params: format!("add+del batches of {batch}, {n}-element set, traffic on"),
        mpps: Some(1e3 / ns_during),
        ns_pkt: Some(ns_during),
        cps: Some(changes as f64 / secs),
        peer: format!(
            "{:.2} M changes/s; {pkts} packets, {} lost; {:.3}x the quiet per-packet cost",
            changes as f64 / secs / 1e6,
            pkts - fwd,
            ns_during / ns_big
        ),
        extra: json!({"changes": changes, "seconds": secs, "packets": pkts, "forwarded": fwd, "ns_during": ns_during}),
    });

    // The same batches pre-parsed (`SetSlot::apply` of keys): the structure's own rate,
    // without the restore text's parsing, no traffic.
    let slot = sets.get("big").expect("big exists");
    let key = |i: u32| Key {
        addr: ((172u128 << 24 | 16 << 16) + i as u128) << 96,
        cidr: 32,
        proto: 0,
        port: 0,
    };
    let (mut changes, t0) = (0u64, Instant::now());
    while t0.elapsed().as_secs_f64() < o.secs() * 0.5 {
        let mut ops = Vec::with_capacity(batch as usize);
        for _ in 0..batch / 2 {
            ops.push(KeyOp::Add {
                key: key(next),
                timeout: None,
                nomatch: false,
                counters: None,
                comment: None,
            });
            ops.push(KeyOp::Del(key(oldest)));
            next += 1;
            oldest += 1;
        }
        slot.apply(&ops, 0, false).expect("batch applies");
        changes += batch as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    out.push(Row {
        scenario: "sets changes".into(),
        params: format!("pre-parsed batches of {batch}, no traffic"),
        mpps: None,
        ns_pkt: None,
        cps: Some(changes as f64 / secs),
        peer: format!("{:.2} M changes/s", changes as f64 / secs / 1e6),
        extra: json!({"changes": changes, "seconds": secs}),
    });
    out
}
