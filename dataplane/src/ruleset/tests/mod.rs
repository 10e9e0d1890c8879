//! Unit tests: the reader and its errors, every match and target, chain semantics,
//! REJECT frames, the listing, realistic rule files, and the indexed evaluator against a
//! naive reference interpreter (proptest). This file holds the shared packet and
//! ruleset helpers and the seed ruleset's test; each submodule one subject.

use super::eval::Hit;
use super::*;
use crate::conntrack::{CtState, CtStatus, Direction};
use crate::packet::build::PacketSpec;
use crate::packet::{self, checksum, tcp_flags, Frame, Parsed, L4};
use std::net::{IpAddr, SocketAddr};

mod chains;
mod corpus;
mod errors;
mod mangle;
mod matches;
mod nat;
mod props;
mod recent;
mod reject;
mod sets;
mod testdata;

struct Pkt {
    f: Vec<u8>,
    p: Parsed,
}

fn mk(spec: PacketSpec) -> Pkt {
    let f = spec.to_vec();
    let Ok(Frame::Ip(p)) = packet::parse(&f) else {
        panic!("test frame does not parse")
    };
    Pkt { f, p }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(src: &str, dst: &str, flags: u8) -> Pkt {
    mk(PacketSpec::tcp(sa(src), sa(dst), flags, 1000, 2000))
}

fn udp(src: &str, dst: &str) -> Pkt {
    mk(PacketSpec::udp(sa(src), sa(dst)))
}

fn icmp(src: &str, dst: &str, ty: u8, code: u8) -> Pkt {
    mk(PacketSpec::icmp(ip(src), ip(dst), ty, code, [0, 1, 0, 1]))
}

/// Options of one evaluation.
#[derive(Clone, Copy)]
struct Env<'a> {
    state: CtState,
    dir: Direction,
    status: u8,
    inp: &'a str,
    out: &'a str,
    now: u64,
}

const ENV: Env<'static> = Env {
    state: CtState::New,
    dir: Direction::Original,
    status: 0,
    inp: "eth0",
    out: "eth1",
    now: 0,
};

fn ctx<'a>(p: &'a Pkt, e: Env<'a>) -> PacketCtx<'a> {
    PacketCtx {
        frame: &p.f,
        parsed: &p.p,
        ct_state: e.state,
        ct_dir: e.dir,
        ct_status: CtStatus(e.status),
        in_port: e.inp,
        out_port: e.out,
        ct_tuples: None,
        now: e.now,
        meta: Box::leak(Box::default()),
    }
}

fn rs(text: &str) -> Ruleset {
    parse_ruleset(text, "rules.v4", None).unwrap_or_else(|e| panic!("{e}"))
}

fn filter(body: &str) -> Ruleset {
    rs(&format!(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n{body}\nCOMMIT\n"
    ))
}

fn fwd(r: &Ruleset, p: &Pkt, e: Env) -> Verdict {
    let mut c = RuleCounters::for_ruleset(r);
    r.eval_filter(FilterChain::Forward, &ctx(p, e), &mut c, &mut |_| {})
}

/// FORWARD policy is DROP; each rule under test ACCEPTs.
fn hits(rule: &str, p: &Pkt, e: Env) -> bool {
    let r = filter(&format!("-A FORWARD {rule} -j ACCEPT"));
    fwd(&r, p, e) == Verdict::Accept
}

fn err(text: &str) -> String {
    parse_ruleset(text, "rules.v4", Some(Family::V4))
        .unwrap_err()
        .to_string()
}

/// The seed host ruleset (`deploy/examples/host-seed.rules`).
const SEED: &str = include_str!("../../../../deploy/examples/host-seed.rules");

#[test]
fn ruleset_seed() {
    let r = rs(SEED);
    let p = tcp("10.0.0.1:1234", "10.0.0.2:80", tcp_flags::SYN);
    let mut c = RuleCounters::for_ruleset(&r);
    let mut run = |s| {
        r.eval_filter(
            FilterChain::Input,
            &ctx(&p, Env { state: s, ..ENV }),
            &mut c,
            &mut |_| {},
        )
    };
    assert_eq!(run(CtState::Established), Verdict::Accept);
    assert_eq!(run(CtState::Related), Verdict::Accept);
    assert_eq!(
        run(CtState::New),
        Verdict::Reject(RejectKind::IcmpPortUnreachable)
    );
    assert_eq!(
        run(CtState::Invalid),
        Verdict::Reject(RejectKind::IcmpPortUnreachable)
    );
    let snap = c.snapshot();
    assert_eq!(snap[0].0, 2);
    assert_eq!(snap[1].0, 2);
    assert_eq!(snap[0].1, 2 * p.p.ip_len() as u64);
    // FORWARD and OUTPUT are empty with ACCEPT policies.
    let mut c = RuleCounters::for_ruleset(&r);
    assert_eq!(
        r.eval_filter(FilterChain::Forward, &ctx(&p, ENV), &mut c, &mut |_| {}),
        Verdict::Accept
    );
    // No raw table: nothing untracked.
    assert_eq!(
        r.eval_raw(RawChain::Prerouting, &ctx(&p, ENV), &mut c),
        RawVerdict::default()
    );
}
