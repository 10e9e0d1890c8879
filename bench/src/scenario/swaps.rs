//! Rule swaps under load: burst latency and lost or mismatched verdicts while a thread
//! publishes freshly compiled rulesets.

use crate::report::Row;
use crate::scenario::ruleset::{pipeline_handshakes, syn_frame};
use crate::Opts;
use arc_swap::ArcSwap;
use dataplane::conntrack::ConnTable;
use dataplane::ruleset::parse_ruleset;
use dataplane::worker::{Action, Burst, NonIpPolicy, PairMode, PairView, Pipeline, Side};
use serde_json::json;
use statewall_bench::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub(crate) fn rule_swaps(o: &Opts) -> Vec<Row> {
    let n_rules = 1000;
    let text_a = ruleset_text(n_rules, Some(80));
    let text_b = ruleset_text(n_rules, Some(81));
    let compile = |t: &str, g: u64| {
        let mut r = parse_ruleset(t, "swap", None).expect("compiles");
        r.set_generation(g);
        r
    };
    // Frames: per burst 16 established data packets, 8 SYNs to port 80, 8 to port 81.
    let est_flows = 2048u32;
    let data = data_frames(est_flows);
    let syn_flows = 4096u32;
    let mut syns: Vec<(Vec<u8>, u16)> = Vec::new();
    for i in 0..syn_flows {
        let port = if i % 2 == 0 { 80 } else { 81 };
        let mut b = [0u8; 128];
        let n = syn_frame(1_000_000 + i, port, &mut b);
        syns.push((b[..n].to_vec(), port));
    }
    let mut out = Vec::new();
    let mut base_p99 = 0u64;
    for swapping in [false, true] {
        let shared = Arc::new(ArcSwap::from_pointee(compile(&text_a, 1)));
        let mut p = Pipeline::new(
            ConnTable::new(1 << 16, Default::default()),
            &shared.load(),
            NonIpPolicy::PassArp,
        );
        pipeline_handshakes(&mut p, &shared.load(), est_flows);
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let swapper = swapping.then(|| {
            let (shared, stop, swaps, ta, tb) = (
                shared.clone(),
                stop.clone(),
                swaps.clone(),
                text_a.clone(),
                text_b.clone(),
            );
            std::thread::spawn(move || {
                let mut g = 1u64;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    next += Duration::from_millis(10);
                    g += 1;
                    // Compile a fresh ruleset (as a reload does) and publish it.
                    let rs = compile(if g % 2 == 1 { &ta } else { &tb }, g);
                    shared.store(Arc::new(rs));
                    swaps.fetch_add(1, Ordering::Relaxed);
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                }
            })
        });
        let view = PairView {
            mode: PairMode::Forward,
            network: "outside",
            host: "inside",
        };
        let mut reply = [0u8; 2048];
        let mut lat: Vec<u64> = Vec::with_capacity(1 << 22);
        let (mut offered, mut verdicts, mut mismatches) = (0u64, 0u64, 0u64);
        let mut current = shared.load_full();
        let (mut ei, mut si) = (0usize, 0usize);
        let clock = dataplane::worker::Clock::new();
        let start = Instant::now();
        let secs = o.secs() * 2.0;
        while start.elapsed().as_secs_f64() < secs {
            let rs = shared.load_full();
            let t0 = Instant::now();
            if !Arc::ptr_eq(&rs, &current) {
                p.adopt(Some(&current), &rs);
                current = rs.clone();
            }
            let a_rules = rs.generation() % 2 == 1;
            let now = clock.now() + 10_000_000;
            for k in 0..BURST {
                offered += 1;
                let (frame, expect_fwd): (&[u8], bool) = if k < 16 {
                    let f = &data[ei * FRAME..(ei + 1) * FRAME];
                    ei = (ei + 1) % est_flows as usize;
                    (f, true)
                } else {
                    let (f, port) = &syns[si];
                    si = (si + 1) % syns.len();
                    (f.as_slice(), (*port == 80) == a_rules)
                };
                let r = p.process(
                    &mut Burst::new(&rs, view, Side::Host, now, &mut |_| {}),
                    frame,
                    &mut reply,
                );
                if r.verdict.is_some() {
                    verdicts += 1;
                }
                if (r.action == Action::Forward) != expect_fwd {
                    mismatches += 1;
                }
            }
            drop(rs);
            lat.push(t0.elapsed().as_nanos() as u64);
        }
        let elapsed = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        if let Some(h) = swapper {
            let _ = h.join();
        }
        let bursts = lat.len();
        let busy: u64 = lat.iter().sum();
        lat.sort_unstable();
        let (p50, p99, p999, max) = (
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 0.999),
            *lat.last().unwrap_or(&0),
        );
        let nswaps = swaps.load(Ordering::Relaxed);
        if !swapping {
            base_p99 = p99;
        }
        // The correctness half of the scenario (timings are reported, never checked):
        // every packet gets a verdict, the one its burst's ruleset gives, and a swapping
        // run did swap.
        let lost = offered - verdicts;
        if lost > 0 || mismatches > 0 || (swapping && nswaps == 0) {
            crate::fail(format!(
                "rule swap ({}): {lost} packets lost, {mismatches} verdicts from the wrong ruleset, {nswaps} swaps",
                if swapping { "swapping" } else { "no swaps" }
            ));
        }
        let ns = busy as f64 / offered as f64;
        out.push(Row {
            scenario: "rule swap".into(),
            params: if swapping {
                format!("{nswaps} swaps in {elapsed:.1}s ({:.0}/s), {n_rules} rules", nswaps as f64 / elapsed)
            } else {
                format!("no swaps, {n_rules} rules")
            },
            mpps: Some(1e3 / ns),
            ns_pkt: Some(ns),
            peer: format!(
                "lost {} mismatched {}; burst p50 {p50} p99 {p99} p99.9 {p999} max {max} ns{}",
                offered - verdicts,
                mismatches,
                if swapping && base_p99 > 0 { format!(" (p99 {:+} ns vs no swaps)", p99 as i64 - base_p99 as i64) } else { String::new() }
            ),
            extra: json!({"swaps": nswaps, "offered": offered, "verdicts": verdicts, "lost": offered - verdicts,
                          "mismatches": mismatches, "bursts": bursts,
                          "burst_ns": {"p50": p50, "p99": p99, "p999": p999, "max": max}}),
            ..Default::default()
        });
    }
    out
}
