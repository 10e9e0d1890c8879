//! The OVS peer: OVS's `test-conntrack benchmark` traffic, as a scenario and as the
//! `ovs-benchmark` subcommand.

use crate::report::Row;
use crate::{Mode, Opts};
use serde_json::json;
use statewall_bench::*;
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// Runs OVS's `test-conntrack benchmark` traffic; returns elapsed milliseconds (between
/// the two barriers, as OVS measures) and committed packets.
pub(crate) fn ovs_benchmark(
    threads: usize,
    packets: u64,
    batch: usize,
    change: bool,
) -> (f64, u64) {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|tid| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                let mut th = OvsThread::new(tid as u16, batch, change);
                b.wait();
                let ok = th.run(packets);
                b.wait();
                ok
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    barrier.wait();
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let ok = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    (ms, ok)
}

pub(crate) fn ovs_benchmark_cmd(args: &[String]) {
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(d);
    if args.len() < 3 {
        eprintln!("usage: statewall-bench ovs-benchmark THREADS PACKETS BATCH [CHANGE]");
        std::process::exit(2);
    }
    let (threads, packets, batch, change) = (
        num(0, 1) as usize,
        num(1, 0),
        num(2, 32) as usize,
        num(3, 0) == 1,
    );
    let (ms, _) = ovs_benchmark(threads.max(1), packets, batch.clamp(1, 255), change);
    println!("conntrack:  {:5.0} ms", ms);
}

pub(crate) fn ovs_scenario(o: &Opts, cores: usize) -> Vec<Row> {
    let packets: u64 = match o.mode {
        Mode::Quick => 1 << 22,
        Mode::Standard => 1 << 24,
        Mode::Full => 1 << 25,
    };
    let mut out = Vec::new();
    let mut configs = vec![(1usize, 1u64), (1, 0)];
    if cores > 1 {
        configs.push((cores, 1));
    }
    for (i, (threads, change)) in configs.into_iter().enumerate() {
        let (ms, ok) = ovs_benchmark(threads, packets, 32, change == 1);
        let mpps_core = packets as f64 / (ms * 1e3);
        let peer = match (i, o.ovs_ref_ms) {
            (0, Some(r)) => format!(
                "QUOTED OVS figure {r:.0} ms (not measured here): statewall is {:.2}x faster",
                r / ms
            ),
            (0, None) => "OVS reference: no figure supplied (--ovs-ref-ms); nothing quoted".into(),
            _ => String::new(),
        };
        out.push(Row {
            scenario: "ovs-benchmark".into(),
            params: format!("{threads} {packets} 32 {change}  => {ms:.0} ms"),
            mpps: Some(mpps_core),
            ns_pkt: Some(1e3 / mpps_core),
            peer: format!("{peer}{}{} committed", if peer.is_empty() { "" } else { "; " }, ok),
            extra: json!({"threads": threads, "packets_per_thread": packets, "batch": 32, "change": change,
                          "ms": ms, "quoted_ovs_ms": if i == 0 { o.ovs_ref_ms } else { None }}),
            ..Default::default()
        });
    }
    out
}
