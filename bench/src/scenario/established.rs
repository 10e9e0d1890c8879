//! Established packets against the number of tracked connections (uniform and zipf
//! access), with the rte_hash peer, and the memory per connection.

use crate::peer::rte_hash::{build_rte_hash_peer, run_rte_hash, write_keys};
use crate::report::Row;
use crate::{Mode, Opts};
use dataplane::conntrack::{ConnTable, CtState, Nanos, TrackOpts};
use dataplane::packet::Parsed;
use serde_json::json;
use statewall_bench::*;
use std::time::{Duration, Instant};

pub(crate) fn established(o: &Opts) -> Vec<Row> {
    let mut sizes = vec![1_000u32, 100_000, 1_000_000];
    if o.mode == Mode::Full {
        sizes.push(10_000_000);
    }
    let lookups: usize = match o.mode {
        Mode::Quick => 1 << 21,
        _ => 1 << 23,
    };
    let peer = build_rte_hash_peer();
    let mut out = Vec::new();
    if let Err(why) = &peer {
        out.push(Row {
            scenario: "peer rte_hash".into(),
            params: "skipped".into(),
            peer: why.clone(),
            ..Default::default()
        });
    }
    for &n in &sizes {
        let frames = data_frames(n);
        let rss0 = rss_bytes();
        let t0 = Instant::now();
        let (mut table, failed) = established_table(n as usize, n);
        let setup = t0.elapsed().as_secs_f64();
        let rss1 = rss_bytes();
        let mem = table.memory_bytes();
        let keys = peer.as_ref().ok().map(|_| write_keys(n));
        for pat in [Pattern::Uniform, Pattern::Zipf] {
            let order = access_order(n, lookups, pat, 42 + n as u64);
            let (ns, est) = time_established(&mut table, &frames, &order);
            let mut r = Row {
                scenario: "established".into(),
                params: format!("{} conns, {}, 64B", human(n as u64), pat.name()),
                mpps: Some(1e3 / ns),
                ns_pkt: Some(ns),
                extra: json!({"connections": n, "pattern": pat.name(), "packets": order.len(),
                              "established_fraction": est as f64 / order.len() as f64,
                              "handshake_failures": failed, "setup_s": setup}),
                ..Default::default()
            };
            match (&peer, &keys) {
                (Ok(bin), Some(Ok(kf))) => match run_rte_hash(bin, kf, &order) {
                    Ok(rns) => {
                        r.peer = format!(
                            "rte_hash bulk {rns:.1} ns/key; statewall/rte_hash = {:.2}x",
                            ns / rns
                        );
                        r.extra["rte_hash_ns_per_key"] = json!(rns);
                        r.extra["ratio_vs_rte_hash"] = json!(ns / rns);
                    }
                    Err(e) => r.peer = format!("rte_hash failed: {e}"),
                },
                (Ok(_), Some(Err(e))) => r.peer = format!("rte_hash: key file: {e}"),
                _ => r.peer = "rte_hash skipped".into(),
            }
            out.push(r);
        }
        if n >= 1_000_000 {
            let conns = table.len() as f64;
            out.push(Row {
                scenario: "memory".into(),
                params: format!("{} conns tracked", human(n as u64)),
                peer: format!(
                    "RSS delta {:.1} B/conn; table {:.1} B/entry of capacity (ENTRY_SIZE {})",
                    (rss1.saturating_sub(rss0)) as f64 / conns,
                    mem as f64 / table.capacity() as f64,
                    dataplane::conntrack::ENTRY_SIZE
                ),
                extra: json!({"connections": conns, "rss_delta_bytes": rss1.saturating_sub(rss0),
                              "rss_bytes_per_conn": (rss1.saturating_sub(rss0)) as f64 / conns,
                              "table_bytes": mem, "capacity": table.capacity(),
                              "table_bytes_per_entry": mem as f64 / table.capacity() as f64}),
                ..Default::default()
            });
        }
        if let Some(Ok(kf)) = keys {
            let _ = std::fs::remove_file(kf);
        }
    }
    out
}

pub(crate) fn human(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Times parse + hash/prefetch + track of data packets in bursts of 32 (frames copied
/// into a hot burst buffer first, untimed); the first 10 % of `order` warms up untimed.
pub(crate) fn time_established(t: &mut ConnTable, frames: &[u8], order: &[u32]) -> (f64, u64) {
    let mut hot = [[0u8; FRAME]; BURST];
    let mut ps: Vec<Parsed> = vec![parsed(&frames[..FRAME]); BURST];
    let mut now: Nanos = 2_000_000_000;
    let mut timed = Duration::ZERO;
    let mut est = 0u64;
    let mut counted = 0u64;
    let warm = order.len() / 10 / BURST * BURST;
    for (b, chunk) in order.chunks_exact(BURST).enumerate() {
        for (k, &i) in chunk.iter().enumerate() {
            let o = i as usize * FRAME;
            hot[k].copy_from_slice(&frames[o..o + FRAME]);
        }
        now += 1_000;
        let t0 = Instant::now();
        let mut hs = [0u64; BURST];
        for k in 0..BURST {
            ps[k] = parsed(&hot[k]);
            hs[k] = t.prefetch(&ps[k]);
        }
        for &h in &hs {
            t.prefetch_entries(h);
        }
        let mut e = 0u64;
        for k in 0..BURST {
            // The stage-1 hash goes along, as the worker's pipeline passes it.
            let opts = TrackOpts {
                hash: hs[k],
                ..Default::default()
            };
            let tr = t.track(&hot[k], &ps[k], now, opts);
            let _ = t.confirm(&tr, true, &hot[k], &ps[k], now);
            e += (tr.state == CtState::Established) as u64;
        }
        let dt = t0.elapsed();
        if b * BURST >= warm {
            timed += dt;
            est += e;
            counted += BURST as u64;
        }
    }
    (timed.as_nanos() as f64 / counted.max(1) as f64, est)
}
