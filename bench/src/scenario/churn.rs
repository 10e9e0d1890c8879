//! Connection churn: whole TCP lifecycles and UDP request/response flows through the
//! connection table.

use crate::report::Row;
use crate::Opts;
use dataplane::conntrack::{ConnTable, CtState, Nanos, TrackOpts};
use dataplane::packet::{tcp_flags as tf, Parsed};
use serde_json::json;
use statewall_bench::*;
use std::time::{Duration, Instant};

pub(crate) fn churn(o: &Opts) -> Vec<Row> {
    vec![churn_tcp(o.secs()), churn_udp(o.secs())]
}

/// Frames of one lifecycle step for a group of flows.
pub(crate) struct Burst {
    buf: Vec<[u8; 128]>,
    len: Vec<usize>,
}

impl Burst {
    fn new() -> Self {
        Burst {
            buf: vec![[0u8; 128]; BURST],
            len: vec![0; BURST],
        }
    }
}

/// Runs bursts through `t` (parse + prefetch all, then track + confirm each; the
/// bounded expiry sweep the worker does after a busy burst). Returns INVALID packets.
pub(crate) fn run_bursts(
    t: &mut ConnTable,
    bursts: &[Burst],
    ps: &mut [Parsed],
    now: Nanos,
) -> u64 {
    let mut invalid = 0;
    for b in bursts {
        let mut hs = [0u64; BURST];
        for (k, p) in ps.iter_mut().enumerate().take(BURST) {
            *p = parsed(&b.buf[k][..b.len[k]]);
            hs[k] = t.prefetch(p);
        }
        for &h in &hs {
            t.prefetch_entries(h);
        }
        for (k, p) in ps.iter().enumerate().take(BURST) {
            let f = &b.buf[k][..b.len[k]];
            let tr = t.track(f, p, now, TrackOpts::default());
            let _ = t.confirm(&tr, true, f, p, now);
            invalid += (tr.state == CtState::Invalid) as u64;
        }
        t.expire(now, dataplane::worker::SWEEP_BUDGET_BUSY);
    }
    invalid
}

pub(crate) fn churn_tcp(secs: f64) -> Row {
    let cap = 1 << 20;
    let mut t = ConnTable::new(cap, Default::default());
    let mut bursts: Vec<Burst> = (0..7).map(|_| Burst::new()).collect();
    let mut ps: Vec<Parsed> = vec![parsed(&ovs_packet(0, 0, false)); BURST];
    let mut next = 0u32;
    let (mut timed, mut conns, mut invalid) = (Duration::ZERO, 0u64, 0u64);
    let mut now: Nanos = 1_000_000_000;
    let wall = Instant::now();
    while timed.as_secs_f64() < secs && wall.elapsed().as_secs_f64() < secs * 4.0 + 5.0 {
        for k in 0..BURST {
            let i = next % 16_000_000;
            next += 1;
            let (c, s) = isn(i);
            let steps: [(bool, u8, u32, u32, &[u8]); 7] = [
                (true, tf::SYN, c, 0, &[]),
                (false, tf::SYN | tf::ACK, s, c.wrapping_add(1), &[]),
                (true, tf::ACK, c.wrapping_add(1), s.wrapping_add(1), &[]),
                (
                    true,
                    tf::PSH | tf::ACK,
                    c.wrapping_add(1),
                    s.wrapping_add(1),
                    &[0x5a; 10],
                ),
                (
                    true,
                    tf::FIN | tf::ACK,
                    c.wrapping_add(11),
                    s.wrapping_add(1),
                    &[],
                ),
                (
                    false,
                    tf::FIN | tf::ACK,
                    s.wrapping_add(1),
                    c.wrapping_add(12),
                    &[],
                ),
                (true, tf::ACK, c.wrapping_add(12), s.wrapping_add(2), &[]),
            ];
            for (st, b) in steps.iter().zip(bursts.iter_mut()) {
                b.len[k] = tcp_frame(i, st.0, st.1, st.2, st.3, st.4, &mut b.buf[k]);
            }
        }
        now += 10_000;
        let t0 = Instant::now();
        invalid += run_bursts(&mut t, &bursts, &mut ps, now);
        timed += t0.elapsed();
        conns += BURST as u64;
        if t.len() > cap / 2 {
            t.flush(); // untimed: TIME_WAIT entries would otherwise fill the table
        }
    }
    let s = timed.as_secs_f64();
    Row {
        scenario: "churn tcp".into(),
        params: "SYN..last ACK, 7 pkts/conn".into(),
        mpps: Some(conns as f64 * 7.0 / s / 1e6),
        ns_pkt: Some(s * 1e9 / (conns as f64 * 7.0)),
        cps: Some(conns as f64 / s),
        peer: format!("{conns} conns, {invalid} INVALID pkts"),
        extra: json!({"connections": conns, "invalid_packets": invalid, "timed_s": s}),
    }
}

pub(crate) fn churn_udp(secs: f64) -> Row {
    let cap = 1 << 20;
    let mut t = ConnTable::new(cap, Default::default());
    let mut bursts: Vec<Burst> = (0..2).map(|_| Burst::new()).collect();
    let mut ps: Vec<Parsed> = vec![parsed(&ovs_packet(0, 0, false)); BURST];
    let mut next = 0u32;
    let (mut timed, mut conns, mut invalid) = (Duration::ZERO, 0u64, 0u64);
    let mut now: Nanos = 1_000_000_000;
    let wall = Instant::now();
    while timed.as_secs_f64() < secs && wall.elapsed().as_secs_f64() < secs * 4.0 + 5.0 {
        for k in 0..BURST {
            let i = next % 16_000_000;
            next += 1;
            bursts[0].len[k] = udp_frame(i, true, &[0x11; 32], &mut bursts[0].buf[k]);
            bursts[1].len[k] = udp_frame(i, false, &[0x22; 48], &mut bursts[1].buf[k]);
        }
        now += 10_000;
        let t0 = Instant::now();
        invalid += run_bursts(&mut t, &bursts, &mut ps, now);
        timed += t0.elapsed();
        conns += BURST as u64;
        if t.len() > cap / 2 {
            t.flush();
        }
    }
    let s = timed.as_secs_f64();
    Row {
        scenario: "churn udp".into(),
        params: "request + response, 2 pkts/flow".into(),
        mpps: Some(conns as f64 * 2.0 / s / 1e6),
        ns_pkt: Some(s * 1e9 / (conns as f64 * 2.0)),
        cps: Some(conns as f64 / s),
        peer: format!("{conns} flows, {invalid} INVALID pkts"),
        extra: json!({"connections": conns, "invalid_packets": invalid, "timed_s": s}),
    }
}
