//! Per-connection verdict caching on against off (issue 22), in one run: the same
//! pipeline, rules and established TCP traffic (both directions, bursts of 32, shaped as
//! the worker's loop: `nat::time_data`), with `Pipeline::set_verdict_cache` on in one
//! rig and off in the other, timed in alternating rounds; the figure is the median of the
//! per-round ratios. Two rule sets: the ESTABLISHED accept first (the usual shape: the
//! walk it saves is one rule) and behind 32 `-d` rules (not indexed: walked one by one).

use crate::report::Row;
use crate::scenario::established::human;
use crate::scenario::nat::{alternate, data, handshakes, median, Rig, FILTER, ROUNDS};
use crate::{Mode, Opts};
use serde_json::json;
use statewall_bench::*;
use std::net::SocketAddr;

/// The bench's rules: `FILTER` with `extra` rules in front of its FORWARD rules.
fn rules(extra: usize) -> String {
    let mut front = String::new();
    for k in 0..extra {
        front.push_str(&format!("-A FORWARD -d 192.0.2.{} -j DROP\n", k + 1));
    }
    FILTER.replacen("-A FORWARD", &format!("{front}-A FORWARD"), 1)
}

/// `STATEWALL_BENCH_VCACHE_ONLY=on,32` (or `off,0`, ...): time one variant only, for
/// an instruction count under `valgrind --tool=callgrind` (no ratio then).
fn only() -> Option<(usize, usize)> {
    let v = std::env::var("STATEWALL_BENCH_VCACHE_ONLY").ok()?;
    let (k, extra) = v.split_once(',')?;
    Some((usize::from(k == "on"), extra.parse().ok()?))
}

pub(crate) fn verdict_cache(o: &Opts) -> Vec<Row> {
    let only = only();
    let sizes: &[u32] = match o.mode {
        Mode::Quick => &[10_000],
        _ => &[10_000, 1_000_000],
    };
    let packets: usize = match o.mode {
        Mode::Quick => 1 << 20,
        _ => 1 << 23,
    };
    let mut out = Vec::new();
    for &n in sizes {
        for extra in [0usize, 32] {
            if only.is_some_and(|(_, e)| e != extra) {
                continue;
            }
            let timed = |k: usize| only.is_none_or(|(v, _)| v == k);
            let text = rules(extra);
            // [off, on]
            let mut rigs = [
                Rig::with_rules(&text, n as usize),
                Rig::with_rules(&text, n as usize),
            ];
            rigs[0].pl.set_verdict_cache(false);
            // On by hand: by default the pipeline leaves the cache off where every
            // filter chain starts with the ESTABLISHED accept (`verdict_cache_worth`),
            // and this measures what it would cost there.
            rigs[1].pl.set_verdict_cache(true);
            let mut seen: [Vec<SocketAddr>; 2] = [Vec::new(), Vec::new()];
            for k in 0..2 {
                let (_, failed) = handshakes(&mut rigs[k], 0..n, &mut seen[k]);
                if failed > 0 {
                    crate::fail(format!("vcache bench: {failed} handshakes failed"));
                }
            }
            let frames = [data(n, &seen[0]), data(n, &seen[1])];
            let order = access_order(2 * n, packets, Pattern::Uniform, 11 + n as u64);
            let r = alternate(&mut rigs, &frames, &order, timed, "vcache bench", "cache");
            let (ns, ratios, warm, per_round) = (r.ns, r.ratios, r.warm, r.per_round);
            if only.is_some() {
                println!(
                    "verdict cache: timed only cache {} behind {extra} rules: {} packets",
                    if timed(1) { "on" } else { "off" },
                    warm + per_round * ROUNDS
                );
                continue;
            }
            let (off, on) = (median(ns[0].clone()), median(ns[1].clone()));
            let ratio = median(ratios);
            let hits = rigs[1].pl.verdict_cache_hits();
            if hits == 0 || rigs[0].pl.verdict_cache_hits() != 0 {
                crate::fail("vcache bench: the cache did not serve (or served while off)".into());
            }
            if rigs[0].pl.counters().snapshot() != rigs[1].pl.counters().snapshot() {
                crate::fail("vcache bench: counters differ between cache on and off".into());
            }
            out.push(Row {
                scenario: "verdict cache".into(),
                params: format!(
                    "{} conns, ESTABLISHED accept behind {extra} rules, both directions",
                    human(n as u64)
                ),
                mpps: Some(1e3 / on),
                ns_pkt: Some(on),
                peer: format!("cache off {off:.1} ns/pkt; on/off = {ratio:.3}x"),
                extra: json!({"connections": n, "rules_in_front": extra,
                              "packets": per_round * ROUNDS, "rounds": ROUNDS,
                              "on_ns_per_packet": on, "off_ns_per_packet": off,
                              "ratio_on_vs_off": ratio, "cache_hits": hits}),
                ..Default::default()
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench's rules compile and put the extra rules first.
    #[test]
    fn vcache_bench_rules() {
        let r = rules(2);
        let a = r.find("-d 192.0.2.2").unwrap();
        let b = r.find("--ctstate RELATED,ESTABLISHED").unwrap();
        assert!(a < b);
        dataplane::ruleset::parse_ruleset(&r, "t", None).unwrap();
    }
}
