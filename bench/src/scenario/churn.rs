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
    vec![
        churn_proto(Proto::Tcp, o.secs()),
        churn_proto(Proto::Udp, o.secs()),
    ]
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

/// The protocol of a churn run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    /// A whole TCP connection: SYN, SYN/ACK, ACK, data, FIN both ways, last ACK.
    Tcp,
    /// A UDP request and its response.
    Udp,
}

impl Proto {
    /// Packets (and so bursts) per connection.
    fn steps(self) -> usize {
        match self {
            Proto::Tcp => 7,
            Proto::Udp => 2,
        }
    }

    /// Writes the frames of flow `i` into slot `k` of each step's burst.
    fn fill(self, i: u32, k: usize, bursts: &mut [Burst]) {
        match self {
            Proto::Tcp => {
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
            Proto::Udp => {
                bursts[0].len[k] = udp_frame(i, true, &[0x11; 32], &mut bursts[0].buf[k]);
                bursts[1].len[k] = udp_frame(i, false, &[0x22; 48], &mut bursts[1].buf[k]);
            }
        }
    }
}

/// Runs whole `proto` connections through a table for `secs` of timed work (the table
/// is flushed, untimed, when half full: TCP's TIME_WAIT entries would otherwise fill it).
pub(crate) fn churn_proto(proto: Proto, secs: f64) -> Row {
    let cap = 1 << 20;
    let mut t = ConnTable::new(cap, Default::default());
    let mut bursts: Vec<Burst> = (0..proto.steps()).map(|_| Burst::new()).collect();
    let mut ps: Vec<Parsed> = vec![parsed(&ovs_packet(0, 0, false)); BURST];
    let mut next = 0u32;
    let (mut timed, mut conns, mut invalid) = (Duration::ZERO, 0u64, 0u64);
    let mut now: Nanos = 1_000_000_000;
    let wall = Instant::now();
    while timed.as_secs_f64() < secs && wall.elapsed().as_secs_f64() < secs * 4.0 + 5.0 {
        for k in 0..BURST {
            let i = next % 16_000_000;
            next += 1;
            proto.fill(i, k, &mut bursts);
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
    let per = proto.steps() as f64;
    let (scenario, params, what) = match proto {
        Proto::Tcp => ("churn tcp", "SYN..last ACK, 7 pkts/conn", "conns"),
        Proto::Udp => ("churn udp", "request + response, 2 pkts/flow", "flows"),
    };
    Row {
        scenario: scenario.into(),
        params: params.into(),
        mpps: Some(conns as f64 * per / s / 1e6),
        ns_pkt: Some(s * 1e9 / (conns as f64 * per)),
        cps: Some(conns as f64 / s),
        peer: format!("{conns} {what}, {invalid} INVALID pkts"),
        extra: json!({"connections": conns, "invalid_packets": invalid, "timed_s": s}),
    }
}
