//! Pipeline cost against the size of the ruleset, established-heavy and new-heavy.

use crate::report::Row;
use crate::Opts;
use dataplane::conntrack::ConnTable;
use dataplane::packet::build::PacketSpec;
use dataplane::packet::tcp_flags as tf;
use dataplane::ruleset::{parse_ruleset, Ruleset};
use dataplane::worker::{Action, Burst, NonIpPolicy, PairMode, PairView, Pipeline, Side};
use serde_json::json;
use statewall_bench::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub(crate) fn syn_frame(i: u32, dport: u16, buf: &mut [u8]) -> usize {
    let c = client(i);
    let s = SocketAddr::new(server(i).ip(), dport);
    PacketSpec::tcp(c, s, tf::SYN, isn(i).0, 0)
        .write(buf)
        .expect("fits")
}

/// Handshakes flows `0..n` through the pipeline itself (inside opens, outside answers).
pub(crate) fn pipeline_handshakes(p: &mut Pipeline, rs: &Ruleset, n: u32) -> u32 {
    let view = PairView {
        mode: PairMode::Forward,
        network: "outside",
        host: "inside",
    };
    let mut buf = [0u8; 128];
    let mut reply = [0u8; 2048];
    let mut ok = 0;
    for i in 0..n {
        let (c, s) = isn(i);
        let mut fwd = true;
        for (from_client, flags, seq, ack) in [
            (true, tf::SYN, c, 0),
            (false, tf::SYN | tf::ACK, s, c.wrapping_add(1)),
            (true, tf::ACK, c.wrapping_add(1), s.wrapping_add(1)),
        ] {
            let len = tcp_frame(i, from_client, flags, seq, ack, &[], &mut buf);
            let side = if from_client {
                Side::Host
            } else {
                Side::Network
            };
            let o = p.process(
                &mut Burst::new(rs, view, side, 1_000, &mut |_| {}),
                &buf[..len],
                &mut reply,
            );
            fwd &= o.action == Action::Forward;
        }
        ok += fwd as u32;
    }
    ok
}

pub(crate) fn ruleset_size(o: &Opts) -> Vec<Row> {
    let mut out = Vec::new();
    let view = PairView {
        mode: PairMode::Forward,
        network: "outside",
        host: "inside",
    };
    let flows = 1024u32;
    let data = data_frames(flows);
    let syn_n = 1u32 << 16;
    let mut syns = vec![0u8; syn_n as usize * FRAME];
    let mut syn_len = 0;
    for i in 0..syn_n {
        let o = i as usize * FRAME;
        syn_len = syn_frame(100_000 + i, 80, &mut syns[o..o + FRAME]);
    }
    let mut reply = [0u8; 2048];
    for n in [10usize, 1000, 10_000] {
        let text = ruleset_text(n, None);
        let t0 = Instant::now();
        let rs = parse_ruleset(&text, "bench", None).expect("compiles");
        let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
        for mix in [RuleMix::EstablishedHeavy, RuleMix::NewHeavy] {
            let mut p = Pipeline::new(
                ConnTable::new(1 << 17, Default::default()),
                &rs,
                NonIpPolicy::PassArp,
            );
            let ok = pipeline_handshakes(&mut p, &rs, flows);
            let (mut timed, mut pkts, mut fwd) = (Duration::ZERO, 0u64, 0u64);
            let wall = Instant::now();
            let per = o.secs() * 0.6;
            while timed.as_secs_f64() < per && wall.elapsed().as_secs_f64() < per * 4.0 + 5.0 {
                let now = 2_000_000 + pkts;
                let t0 = Instant::now();
                match mix {
                    RuleMix::EstablishedHeavy => {
                        for k in 0..flows as usize {
                            let f = &data[k * FRAME..(k + 1) * FRAME];
                            let r = p.process(
                                &mut Burst::new(&rs, view, Side::Host, now, &mut |_| {}),
                                f,
                                &mut reply,
                            );
                            fwd += (r.action == Action::Forward) as u64;
                        }
                        pkts += flows as u64;
                    }
                    RuleMix::NewHeavy => {
                        for k in 0..syn_n as usize {
                            let f = &syns[k * FRAME..k * FRAME + syn_len];
                            let r = p.process(
                                &mut Burst::new(&rs, view, Side::Host, now, &mut |_| {}),
                                f,
                                &mut reply,
                            );
                            fwd += (r.action == Action::Forward) as u64;
                        }
                        pkts += syn_n as u64;
                    }
                }
                timed += t0.elapsed();
                if mix == RuleMix::NewHeavy {
                    p.table_mut().flush(); // untimed: the next pass inserts the same flows afresh
                    pipeline_handshakes(&mut p, &rs, 0);
                }
            }
            let ns = timed.as_nanos() as f64 / pkts as f64;
            out.push(Row {
                scenario: "ruleset size".into(),
                params: format!("{n} rules, {}-heavy (Pipeline)", mix.name()),
                mpps: Some(1e3 / ns),
                ns_pkt: Some(ns),
                cps: if mix == RuleMix::NewHeavy { Some(1e9 / ns) } else { None },
                peer: format!("compile {compile_ms:.1} ms; {fwd}/{pkts} forwarded; {ok} handshakes"),
                extra: json!({"rules": n, "mix": mix.name(), "compile_ms": compile_ms, "packets": pkts, "forwarded": fwd}),
            });
        }
    }
    out
}
