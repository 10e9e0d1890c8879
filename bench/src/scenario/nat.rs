//! NAT against no NAT on the worker pipeline (issue 17): the same filter rules with and
//! without a `*nat` SNAT rule, in one run. Established TCP traffic in both directions at
//! N connections (the reply addressed to the translated tuple, as it arrives from the
//! network), and new connections per second (full handshakes through the pipeline,
//! port allocation included). Every packet goes through `Pipeline::process` and, when
//! the outcome carries a binding, `apply_nat` rewrites the frame, as the worker does.

use crate::report::Row;
use crate::scenario::established::human;
use crate::{Mode, Opts};
use dataplane::conntrack::{ConnTable, Nanos};
use dataplane::packet::build::PacketSpec;
use dataplane::packet::{parse, tcp_flags as tf, Frame};
use dataplane::ruleset::{parse_ruleset, Ruleset};
use dataplane::worker::{
    apply_nat_parsed, Action, Burst, NonIpPolicy, PairMode, PairView, Pipeline, RxMeta, Side,
};
use serde_json::json;
use statewall_bench::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub(crate) const FILTER: &str =
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
-A FORWARD -m conntrack --ctstate INVALID -j DROP\n\
-A FORWARD -i inside -o outside -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n";

/// SNAT to 16 addresses: 1 M clients (16 servers, 60 000 client ports) fit without
/// exhausting a port range, as MASQUERADE of a large inside network to a small pool does.
const NAT: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:POSTROUTING ACCEPT [0:0]\n\
-A POSTROUTING -o outside -j SNAT --to-source 198.51.100.1-198.51.100.16\nCOMMIT\n";

/// One variant's pipeline with its ruleset and clock.
pub(crate) struct Rig {
    pub(crate) pl: Pipeline,
    rs: Ruleset,
    now: Nanos,
    reply: Vec<u8>,
}

const VIEW: PairView<'static> = PairView {
    mode: PairMode::Forward,
    network: "outside",
    host: "inside",
};

impl Rig {
    fn new(nat: bool, capacity: usize) -> Rig {
        let text = if nat {
            format!("{FILTER}{NAT}")
        } else {
            FILTER.to_string()
        };
        Rig::with_rules(&text, capacity)
    }

    /// A rig judging by the rules `text` (the verdict-cache bench's variants).
    pub(crate) fn with_rules(text: &str, capacity: usize) -> Rig {
        let rs = parse_ruleset(text, "nat-bench.rules", None).expect("bench rules compile");
        let pl = Pipeline::new(
            ConnTable::new(capacity, Default::default()),
            &rs,
            NonIpPolicy::PassArp,
        );
        Rig {
            pl,
            rs,
            now: 1_000_000_000,
            reply: vec![0u8; 2048],
        }
    }

    /// One frame through the pipeline, rewritten in place when NATed, as the worker
    /// does it (one parse, judged, then rewritten); true if forwarded.
    #[inline(always)]
    fn send(&mut self, side: Side, frame: &mut [u8]) -> bool {
        let parsed = parse(frame);
        let rx = RxMeta {
            hash: match &parsed {
                Ok(Frame::Ip(p)) => self.pl.table().prefetch(p),
                _ => 0,
            },
            l4_csum_ok: false,
        };
        let o = self.pl.process_parsed(
            &mut Burst::new(&self.rs, VIEW, side, self.now, &mut |_| {}),
            frame,
            &parsed,
            rx,
            &mut self.reply,
        );
        if o.action != Action::Forward {
            return false;
        }
        if let (Some(n), Ok(Frame::Ip(p))) =
            (o.nat.and_then(|r| r.resolve(self.pl.table())), &parsed)
        {
            let len = frame.len();
            apply_nat_parsed(frame, len, p, &n);
        }
        true
    }
}

fn seg(a: SocketAddr, b: SocketAddr, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let n = PacketSpec::tcp(a, b, flags, seq, ack)
        .payload(payload)
        .write(&mut buf)
        .expect("frame fits");
    buf.truncate(n);
    buf
}

/// The source socket of a (translated) frame.
fn source(frame: &[u8]) -> SocketAddr {
    match parse(frame) {
        Ok(Frame::Ip(p)) => SocketAddr::new(
            dataplane::packet::to_ip(p.family, &p.src),
            p.ports().expect("a TCP frame").0,
        ),
        other => panic!("bench frame did not parse: {other:?}"),
    }
}

/// Handshakes flows `flows` through `r` (SYN from inside, SYN-ACK from outside to the
/// translated client, ACK), pushing each flow's client as the server sees it
/// (translated when NATed) onto `seen`. Returns the seconds it took and the failures.
pub(crate) fn handshakes(
    r: &mut Rig,
    flows: std::ops::Range<u32>,
    seen: &mut Vec<SocketAddr>,
) -> (f64, u32) {
    let mut failed = 0;
    let mut timed = Duration::ZERO;
    for i in flows {
        let (c, s) = (client(i), server(i));
        let (ci, si) = isn(i);
        let mut syn = seg(c, s, tf::SYN, ci, 0, &[]);
        r.now += 100;
        let t0 = Instant::now();
        let ok1 = r.send(Side::Host, &mut syn);
        let outer = source(&syn);
        let mut synack = seg(s, outer, tf::SYN | tf::ACK, si, ci.wrapping_add(1), &[]);
        let ok2 = r.send(Side::Network, &mut synack);
        let mut ack = seg(c, s, tf::ACK, ci.wrapping_add(1), si.wrapping_add(1), &[]);
        let ok3 = r.send(Side::Host, &mut ack);
        timed += t0.elapsed();
        if !(ok1 && ok2 && ok3) {
            failed += 1;
        }
        seen.push(outer);
    }
    (timed.as_secs_f64(), failed)
}

/// Times established data segments of `order` through `r` in bursts of 32, shaped as
/// the worker's burst loop: parse + hash + prefetch the bucket of every packet, prefetch
/// the candidate entries, then judge each (`process_parsed`) and rewrite the NATed ones.
/// Frames are copied into a hot burst buffer first, untimed.
/// Even indices are flow i/2's client segment from inside, odd ones the server's reply
/// from outside to the client as the server sees it. Returns (ns per packet, forwarded).
pub(crate) fn time_data(r: &mut Rig, frames: &[Vec<u8>], order: &[u32]) -> (f64, u64) {
    let mut hot = [[0u8; FRAME]; BURST];
    let mut parsed: Vec<Result<Frame, dataplane::packet::ParseError>> =
        vec![parse(&frames[0]); BURST];
    let mut hashes = [0u64; BURST];
    let mut timed = Duration::ZERO;
    let (mut fwd, mut counted) = (0u64, 0u64);
    for chunk in order.chunks_exact(BURST) {
        for (k, &i) in chunk.iter().enumerate() {
            hot[k].copy_from_slice(&frames[i as usize]);
        }
        r.now += 1_000;
        let t0 = Instant::now();
        for k in 0..BURST {
            parsed[k] = parse(&hot[k]);
            hashes[k] = match &parsed[k] {
                Ok(Frame::Ip(p)) => r.pl.table().prefetch(p),
                _ => 0,
            };
        }
        for &h in &hashes {
            r.pl.table().prefetch_entries(h);
        }
        let mut ok = 0u64;
        for (k, f) in hot.iter_mut().enumerate() {
            let side = if chunk[k] & 1 == 0 {
                Side::Host
            } else {
                Side::Network
            };
            let rx = RxMeta {
                hash: hashes[k],
                l4_csum_ok: false,
            };
            let o = r.pl.process_parsed(
                &mut Burst::new(&r.rs, VIEW, side, r.now, &mut |_| {}),
                f,
                &parsed[k],
                rx,
                &mut r.reply,
            );
            if o.action == Action::Forward {
                ok += 1;
                if let (Some(n), Ok(Frame::Ip(p))) =
                    (o.nat.and_then(|x| x.resolve(r.pl.table())), &parsed[k])
                {
                    apply_nat_parsed(f, FRAME, p, &n);
                }
            }
        }
        timed += t0.elapsed();
        fwd += ok;
        counted += BURST as u64;
    }
    (timed.as_nanos() as f64 / counted.max(1) as f64, fwd)
}

/// The data segments of both directions for flows 0..n, `FRAME` bytes each.
pub(crate) fn data(n: u32, seen: &[SocketAddr]) -> Vec<Vec<u8>> {
    let pad = [0x5a; FRAME - 54];
    let mut v = Vec::with_capacity(2 * n as usize);
    for i in 0..n {
        let (c, s) = (client(i), server(i));
        let (ci, si) = isn(i);
        let a = seg(c, s, tf::ACK | tf::PSH, ci + 1, si + 1, &pad);
        let b = seg(s, seen[i as usize], tf::ACK | tf::PSH, si + 1, ci + 1, &pad);
        debug_assert_eq!((a.len(), b.len()), (FRAME, FRAME));
        v.push(a);
        v.push(b);
    }
    v
}

/// Rounds the two variants alternate in (noise on a shared machine hits both alike;
/// the figures are the medians of the per-round values).
pub(crate) const ROUNDS: usize = 16;

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What [`alternate`] measured: ns per packet by variant and round, the per-round
/// ratios (variant 1 over variant 0), and the packets warmed up and per round.
pub(crate) struct Rounds {
    pub(crate) ns: [Vec<f64>; 2],
    pub(crate) ratios: Vec<f64>,
    pub(crate) warm: usize,
    pub(crate) per_round: usize,
}

/// Warms both rigs on the first 10 % of `order` (untimed), then times them alternately
/// over [`ROUNDS`] slices of the rest, only the variants `timed` names (an untimed one
/// counts 1.0 in the ratio). Every packet must be forwarded, else `what` fails the run
/// naming `knob` (the variant's switch).
pub(crate) fn alternate(
    rigs: &mut [Rig; 2],
    frames: &[Vec<Vec<u8>>; 2],
    order: &[u32],
    timed: impl Fn(usize) -> bool,
    what: &str,
    knob: &str,
) -> Rounds {
    let warm = order.len() / 10 / BURST * BURST;
    for k in (0..2).filter(|&k| timed(k)) {
        time_data(&mut rigs[k], &frames[k], &order[..warm]);
    }
    let per_round = (order.len() - warm) / ROUNDS / BURST * BURST;
    let mut ns: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut ratios = Vec::new();
    for round in 0..ROUNDS {
        let slice = &order[warm + round * per_round..warm + (round + 1) * per_round];
        let mut t = [1.0f64; 2];
        for k in (0..2).filter(|&k| timed(k)) {
            let (pkt_ns, fwd) = time_data(&mut rigs[k], &frames[k], slice);
            if fwd != slice.len() as u64 {
                crate::fail(format!(
                    "{what}: {fwd} of {} packets forwarded ({knob} = {})",
                    slice.len(),
                    k == 1
                ));
            }
            t[k] = pkt_ns;
            ns[k].push(pkt_ns);
        }
        ratios.push(t[1] / t[0]);
    }
    Rounds {
        ns,
        ratios,
        warm,
        per_round,
    }
}

pub(crate) fn nat(o: &Opts) -> Vec<Row> {
    let mut sizes = vec![100_000u32, 1_000_000];
    if o.mode == Mode::Quick {
        sizes = vec![10_000, 1_000_000];
    }
    let packets: usize = match o.mode {
        Mode::Quick => 1 << 21,
        _ => 1 << 23,
    };
    let mut out = Vec::new();
    for &n in &sizes {
        // [no NAT, NAT]: set up side by side, a slice of the flows at a time.
        let mut rigs = [Rig::new(false, n as usize), Rig::new(true, n as usize)];
        let mut seen: [Vec<SocketAddr>; 2] = [Vec::new(), Vec::new()];
        let mut cps: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let step = n.div_ceil(ROUNDS as u32);
        for lo in (0..n).step_by(step as usize) {
            let flows = lo..(lo + step).min(n);
            for k in 0..2 {
                let (secs, failed) = handshakes(&mut rigs[k], flows.clone(), &mut seen[k]);
                if failed > 0 {
                    crate::fail(format!(
                        "nat bench: {failed} handshakes of flows {flows:?} failed (nat = {})",
                        k == 1
                    ));
                }
                cps[k].push(flows.len() as f64 / secs);
            }
        }
        let translated = (0..n as usize)
            .filter(|&i| seen[1][i] != client(i as u32))
            .count();
        if translated != n as usize {
            crate::fail(format!(
                "nat bench: {translated} of {n} connections translated"
            ));
        }
        let frames = [data(n, &seen[0]), data(n, &seen[1])];
        let order = access_order(2 * n, packets, Pattern::Uniform, 7 + n as u64);
        let r = alternate(&mut rigs, &frames, &order, |_| true, "nat bench", "nat");
        let (ns, ratios, per_round) = (r.ns, r.ratios, r.per_round);
        let (plain, nat) = (median(ns[0].clone()), median(ns[1].clone()));
        let ratio = median(ratios);
        let cps_ratio = median(cps[1].iter().zip(&cps[0]).map(|(a, b)| a / b).collect());
        let (c_plain, c_nat) = (median(cps[0].clone()), median(cps[1].clone()));
        out.push(Row {
            scenario: "nat established".into(),
            params: format!("{} conns, uniform, both directions, 64B", human(n as u64)),
            mpps: Some(1e3 / nat),
            ns_pkt: Some(nat),
            peer: format!("no NAT {plain:.1} ns/pkt; NAT/no NAT = {ratio:.2}x (target <= 1.15x)"),
            extra: json!({"connections": n, "packets": per_round * ROUNDS, "rounds": ROUNDS,
                          "nat_ns_per_packet": nat, "plain_ns_per_packet": plain,
                          "ratio_nat_vs_plain": ratio}),
            ..Default::default()
        });
        out.push(Row {
            scenario: "nat new conns".into(),
            params: format!("{} TCP handshakes, SNAT to 16 addresses", human(n as u64)),
            mpps: Some(c_nat / 1e6),
            ns_pkt: Some(1e9 / c_nat),
            peer: format!(
                "no NAT {:.2} M conn/s; NAT/no NAT = {:.0}% (target >= 80%)",
                c_plain / 1e6,
                100.0 * cps_ratio
            ),
            extra: json!({"connections": n, "nat_conns_per_s": c_nat,
                          "plain_conns_per_s": c_plain, "ratio_nat_vs_plain": cps_ratio,
                          "nat_bindings": rigs[1].pl.table().nat_bindings()}),
            ..Default::default()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench's own traffic is what it claims: every handshake completes, the NAT
    /// variant translates every flow, and the replies to the translated tuple come back
    /// ESTABLISHED and forwarded, in both variants.
    #[test]
    fn nat_bench_traffic_is_forwarded_and_translated() {
        for nat in [false, true] {
            let mut r = Rig::new(nat, 4096);
            let mut seen = Vec::new();
            let (_, failed) = handshakes(&mut r, 0..1000, &mut seen);
            assert_eq!(failed, 0, "nat = {nat}");
            for (i, a) in seen.iter().enumerate() {
                assert_eq!(*a != client(i as u32), nat, "flow {i}, nat = {nat}");
            }
            let frames = data(1000, &seen);
            let order: Vec<u32> = (0..2000).cycle().take(4096).collect();
            let (_, fwd) = time_data(&mut r, &frames, &order);
            assert_eq!(fwd, 4096, "nat = {nat}");
        }
    }
}
