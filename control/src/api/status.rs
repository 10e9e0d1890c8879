//! JSON views of a running statewall for the API and `statewall ctl`.

use crate::runtime::Runtime;
use dataplane::conntrack::CtCounter;
use dataplane::worker::{DropReason, STATE_NAMES};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

fn ld(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Version, workers, ports, ruleset generation.
pub fn status_json(rt: &Runtime) -> Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "workers": rt.workers.len(),
        "ports": rt.ports.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "ruleset_generation": ld(&rt.reloads.generation),
        "last_reload_successful": rt.reloads.last_ok.load(Ordering::Relaxed),
        "reloads": { "success": ld(&rt.reloads.ok), "failure": ld(&rt.reloads.failed) },
        "conntrack_entries": rt.sum(|w| ld(&w.ct_entries)),
        "conntrack_limit": rt.ct_limit,
        "packets": rt.sum(|w| ld(&w.packets)),
    })
}

/// Port counters with DPDK's names.
pub fn ports_json(rt: &Runtime) -> Value {
    Value::Array(
        rt.ports
            .iter()
            .enumerate()
            .map(|(i, (n, c))| {
                let s = c.total();
                json!({
                    "port": i, "name": n,
                    "ipackets": s.rx_packets, "ibytes": s.rx_bytes, "imissed": s.rx_missed,
                    "rx_nombuf": s.rx_nombuf, "ierrors": s.rx_errors,
                    "opackets": s.tx_packets, "obytes": s.tx_bytes, "oerrors": s.tx_errors,
                })
            })
            .collect(),
    )
}

/// Per-worker counters.
pub fn workers_json(rt: &Runtime) -> Value {
    Value::Array(
        rt.workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let s = &w.stats;
                let states: serde_json::Map<String, Value> = STATE_NAMES
                    .iter()
                    .enumerate()
                    .map(|(k, n)| (n.to_string(), json!(ld(&s.by_state[k]))))
                    .collect();
                let drops: serde_json::Map<String, Value> = DropReason::ALL
                    .iter()
                    .enumerate()
                    .map(|(k, r)| (r.as_str().to_string(), json!(ld(&s.drops[k]))))
                    .collect();
                json!({
                    "worker": i, "cpu": w.core,
                    "packets": ld(&s.packets), "bytes": ld(&s.bytes), "forwarded": ld(&s.forwarded),
                    "handed_off": ld(&s.handed_off),
                    "busy_cycles": ld(&s.busy_cycles), "total_cycles": ld(&s.total_cycles),
                    "polls": ld(&s.polls), "busy_polls": ld(&s.busy_polls),
                    "conntrack_entries": ld(&s.ct_entries),
                    "states": states, "drops": drops,
                })
            })
            .collect(),
    )
}

/// `conntrack -S`: per worker ("cpu" in conntrack's words) and summed.
pub fn ct_stats_json(rt: &Runtime) -> Value {
    let per: Vec<Value> = rt
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut m = serde_json::Map::new();
            m.insert("cpu".into(), json!(i));
            for &c in CtCounter::CONNTRACK_S {
                m.insert(c.name().to_string(), json!(w.stats.ct(c)));
            }
            Value::Object(m)
        })
        .collect();
    // The total is the sum of the per-worker values shown (one read of each counter),
    // so the lines always add up, even under traffic.
    let mut total = serde_json::Map::new();
    for c in CtCounter::CONNTRACK_S {
        let t: u64 = per.iter().map(|w| w[c.name()].as_u64().unwrap_or(0)).sum();
        total.insert(c.name().to_string(), json!(t));
    }
    json!({ "workers": per, "total": total, "entries": rt.sum(|w| ld(&w.ct_entries)), "limit": rt.ct_limit })
}

/// `iptables -L -v -n --line-numbers`, with every worker's counters summed.
///
/// Each worker answers with its counters only if they belong to the generation being
/// listed; a reload racing with the request is retried, so the sum never silently
/// misses a worker.
pub fn rules_listing(rt: &Runtime) -> anyhow::Result<String> {
    for _ in 0..5 {
        let rs = rt.ruleset.load_full();
        let gen = rs.generation();
        let snaps = rt.on_all(move |p, _| p.counters_for(gen).map(|c| c.snapshot()))?;
        if snaps.iter().any(|s| s.is_none()) {
            continue;
        }
        let mut sum: Vec<(u64, u64)> = Vec::new();
        for s in snaps.into_iter().flatten() {
            if sum.len() < s.len() {
                sum.resize(s.len(), (0, 0));
            }
            for (i, (p, b)) in s.into_iter().enumerate() {
                sum[i].0 += p;
                sum[i].1 += b;
            }
        }
        return Ok(rs.listing(&sum));
    }
    anyhow::bail!("the ruleset changed during every attempt to list it; try again")
}
