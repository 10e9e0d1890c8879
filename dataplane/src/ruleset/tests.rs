//! Unit tests: the reader and its errors, every match and target, chain semantics,
//! REJECT frames, the listing, realistic rule files, and the indexed evaluator against a
//! naive reference interpreter (proptest).

use super::eval::Hit;
use super::*;
use crate::conntrack::{CtState, CtStatus, Direction};
use crate::packet::build::PacketSpec;
use crate::packet::{self, checksum, tcp_flags, Frame, Parsed, L4};
use std::net::{IpAddr, SocketAddr};

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
        now: e.now,
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

const SEED: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -j REJECT
COMMIT
";

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

#[test]
fn ruleset_match_proto() {
    let t = tcp("10.0.0.1:1", "10.0.0.2:2", tcp_flags::SYN);
    let u = udp("10.0.0.1:1", "10.0.0.2:2");
    let i = icmp("10.0.0.1", "10.0.0.2", 8, 0);
    let esp = mk(PacketSpec::new(
        ip("10.0.0.1"),
        ip("10.0.0.2"),
        packet::build::L4Spec::Raw { proto: 50 },
    ));
    assert!(hits("-p tcp", &t, ENV));
    assert!(!hits("-p tcp", &u, ENV));
    assert!(hits("-p 6", &t, ENV));
    assert!(hits("! -p tcp", &u, ENV));
    assert!(hits("-p ! tcp", &u, ENV));
    assert!(!hits("! -p tcp", &t, ENV));
    assert!(hits("-p all", &u, ENV));
    assert!(hits("-p icmp", &i, ENV));
    assert!(hits("-p esp", &esp, ENV));
    assert!(hits("-p 50", &esp, ENV));
    assert!(!hits("-p gre", &esp, ENV));
    assert!(hits("-p UDP", &u, ENV));
}

#[test]
fn ruleset_match_addresses() {
    let p = tcp("10.1.2.3:1", "192.168.1.10:2", 0);
    assert!(hits("-s 10.0.0.0/8", &p, ENV));
    assert!(hits("-s 10.1.2.3", &p, ENV));
    assert!(hits("-s 10.1.2.3/32", &p, ENV));
    assert!(!hits("-s 10.1.2.4", &p, ENV));
    assert!(hits("-s 10.1.0.0/255.255.0.0", &p, ENV));
    assert!(hits("-s 10.9.9.9/8", &p, ENV)); // host bits ignored, as iptables does
    assert!(hits("! -s 11.0.0.0/8", &p, ENV));
    assert!(hits("-s ! 11.0.0.0/8", &p, ENV));
    assert!(!hits("! -s 10.0.0.0/8", &p, ENV));
    assert!(hits("-d 192.168.1.0/24", &p, ENV));
    assert!(!hits("-d 192.168.2.0/24", &p, ENV));
    assert!(hits("-s 0.0.0.0/0", &p, ENV));
    assert!(hits("-s 10.0.0.0/8 -d 192.168.0.0/16", &p, ENV));
    let p6 = mk(PacketSpec::tcp(
        sa("[2001:db8::1]:1"),
        sa("[2001:db8:1::2]:2"),
        0,
        0,
        0,
    ));
    let r = parse_ruleset(
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -s 2001:db8::/32 ! -d 2001:db8:2::/48 -j ACCEPT\nCOMMIT\n",
        "rules.v6",
        None,
    )
    .unwrap();
    assert_eq!(r.family(), Family::V6);
    assert_eq!(fwd(&r, &p6, ENV), Verdict::Accept);
    let r = parse_ruleset(
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -s 2001:db8::1 -j ACCEPT\nCOMMIT\n",
        "x",
        Some(Family::V6),
    )
    .unwrap();
    assert_eq!(fwd(&r, &p6, ENV), Verdict::Accept);
    // A v4 packet never meets ip6tables rules: with no iptables ruleset beside it, it
    // meets empty ACCEPT chains (as an empty iptables would give it) ...
    assert_eq!(fwd(&r, &p, ENV), Verdict::Accept);
    // ... and with one, that ruleset decides, with its own counters.
    let v4 = parse_ruleset(
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -s 10.9.9.9 -j ACCEPT\nCOMMIT\n",
        "rules.v4",
        None,
    )
    .unwrap();
    let both = v4.with_other_family(r).unwrap();
    assert_eq!(fwd(&both, &p, ENV), Verdict::Drop);
    assert_eq!(fwd(&both, &p6, ENV), Verdict::Accept);
    let mut c = RuleCounters::for_ruleset(&both);
    let ctx6 = ctx(&p6, ENV);
    assert_eq!(
        both.eval_filter(FilterChain::Forward, &ctx6, &mut c, &mut |_| {}),
        Verdict::Accept
    );
    let snap = c.snapshot();
    assert_eq!(
        snap.len(),
        both.counter_slots() + both.other_family().unwrap().counter_slots()
    );
    assert_eq!(
        snap[both.counter_slots()].0,
        1,
        "the ip6tables rule counted the IPv6 packet"
    );
    assert!(
        parse_ruleset("*filter\n:FORWARD DROP [0:0]\nCOMMIT\n", "a.v4", None)
            .unwrap()
            .with_other_family(
                parse_ruleset("*filter\n:FORWARD DROP [0:0]\nCOMMIT\n", "b.v4", None).unwrap()
            )
            .is_err()
    );
}

#[test]
fn ruleset_match_interfaces() {
    let p = udp("10.0.0.1:1", "10.0.0.2:2");
    assert!(hits("-i eth0", &p, ENV));
    assert!(!hits("-i eth", &p, ENV));
    assert!(hits("-i eth+", &p, ENV));
    assert!(hits("-i +", &p, ENV));
    assert!(!hits("-i veth+", &p, ENV));
    assert!(hits("! -i veth+", &p, ENV));
    assert!(hits("-o eth1", &p, ENV));
    assert!(hits("-i eth0 -o ! eth0", &p, ENV));
    assert!(!hits("-i eth0 -o eth0", &p, ENV));
}

#[test]
fn ruleset_match_ports() {
    let t = tcp("10.0.0.1:40000", "10.0.0.2:22", tcp_flags::SYN);
    let u = udp("10.0.0.1:53", "10.0.0.2:5353");
    assert!(hits("-p tcp -m tcp --dport 22", &t, ENV));
    assert!(hits("-p tcp --dport 22", &t, ENV)); // implicit -m tcp
    assert!(hits("-p tcp --dport ssh", &t, ENV));
    assert!(!hits("-p tcp -m tcp --dport 23", &t, ENV));
    assert!(hits("-p tcp -m tcp ! --dport 23", &t, ENV));
    assert!(hits("-p tcp -m tcp --dport 20:30", &t, ENV));
    assert!(hits("-p tcp -m tcp --dport :22", &t, ENV));
    assert!(hits("-p tcp -m tcp --dport 22:", &t, ENV));
    assert!(!hits("-p tcp -m tcp --dport 23:", &t, ENV));
    assert!(hits("-p tcp -m tcp --sport 1024:65535 --dport 22", &t, ENV));
    assert!(!hits(
        "-p tcp -m tcp --sport 1024:65535 ! --dport 22",
        &t,
        ENV
    ));
    assert!(hits("-p udp -m udp --sport 53", &u, ENV));
    assert!(hits("-p udp -m udp --dport 5353", &u, ENV));
    assert!(!hits("-p udp -m udp --dport 53", &u, ENV));
    // -m tcp on a UDP packet: -p tcp already fails.
    assert!(!hits("-p tcp -m tcp --dport 5353", &u, ENV));
    // multiport
    assert!(hits("-p tcp -m multiport --dports 80,22,443", &t, ENV));
    assert!(hits("-p tcp -m multiport --dports 1:21,22", &t, ENV));
    assert!(hits("-p tcp -m multiport --dports 10:30", &t, ENV));
    assert!(!hits("-p tcp -m multiport --dports 80,443", &t, ENV));
    assert!(hits("-p tcp -m multiport ! --dports 80,443", &t, ENV));
    assert!(hits("-p tcp -m multiport --sports 40000", &t, ENV));
    assert!(hits("-p tcp -m multiport --ports 40000,1", &t, ENV));
    assert!(hits("-p tcp -m multiport --ports 22", &t, ENV));
    assert!(!hits("-p tcp -m multiport --sports 22", &t, ENV));
    assert!(hits("-p udp -m multiport --dports 5353", &u, ENV));
}

#[test]
fn ruleset_match_tcp_flags() {
    let syn = tcp("10.0.0.1:1", "10.0.0.2:2", tcp_flags::SYN);
    let synack = tcp("10.0.0.1:1", "10.0.0.2:2", tcp_flags::SYN | tcp_flags::ACK);
    let null = tcp("10.0.0.1:1", "10.0.0.2:2", 0);
    let xmas = tcp("10.0.0.1:1", "10.0.0.2:2", 0x3f);
    assert!(hits("-p tcp -m tcp --syn", &syn, ENV));
    assert!(!hits("-p tcp -m tcp --syn", &synack, ENV));
    assert!(hits("-p tcp -m tcp ! --syn", &synack, ENV));
    assert!(hits(
        "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN",
        &syn,
        ENV
    ));
    assert!(!hits(
        "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN",
        &synack,
        ENV
    ));
    assert!(hits(
        "-p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN",
        &synack,
        ENV
    ));
    assert!(hits("-p tcp -m tcp --tcp-flags ALL NONE", &null, ENV));
    assert!(!hits("-p tcp -m tcp --tcp-flags ALL NONE", &syn, ENV));
    assert!(hits("-p tcp -m tcp --tcp-flags ALL ALL", &xmas, ENV));
    assert!(hits(
        "-p tcp -m tcp --tcp-flags SYN,ACK SYN,ACK",
        &synack,
        ENV
    ));
    assert!(hits("-p tcp --syn --dport 2", &syn, ENV));
}

#[test]
fn ruleset_match_icmp() {
    let echo = icmp("10.0.0.1", "10.0.0.2", 8, 0);
    let frag_needed = icmp("10.0.0.1", "10.0.0.2", 3, 4);
    assert!(hits("-p icmp -m icmp --icmp-type 8", &echo, ENV));
    assert!(hits("-p icmp -m icmp --icmp-type echo-request", &echo, ENV));
    assert!(hits("-p icmp --icmp-type ping", &echo, ENV));
    assert!(hits("-p icmp -m icmp --icmp-type any", &echo, ENV));
    assert!(hits("-p icmp -m icmp", &echo, ENV));
    assert!(!hits("-p icmp -m icmp --icmp-type 0", &echo, ENV));
    assert!(hits("-p icmp -m icmp ! --icmp-type 0", &echo, ENV));
    assert!(hits("-p icmp -m icmp --icmp-type 3", &frag_needed, ENV));
    assert!(hits("-p icmp -m icmp --icmp-type 3/4", &frag_needed, ENV));
    assert!(hits(
        "-p icmp -m icmp --icmp-type fragmentation-needed",
        &frag_needed,
        ENV
    ));
    assert!(!hits("-p icmp -m icmp --icmp-type 3/3", &frag_needed, ENV));
    assert!(!hits(
        "-p icmp -m icmp --icmp-type port-unreachable",
        &frag_needed,
        ENV
    ));
    // ICMPv6
    let echo6 = mk(PacketSpec::icmp(
        ip("2001:db8::1"),
        ip("2001:db8::2"),
        128,
        0,
        [0; 4],
    ));
    let unr6 = mk(PacketSpec::icmp(
        ip("2001:db8::1"),
        ip("2001:db8::2"),
        1,
        4,
        [0; 4],
    ));
    let r6 = |rule: &str, p: &Pkt| {
        let r = parse_ruleset(
            &format!("*filter\n:FORWARD DROP [0:0]\n-A FORWARD {rule} -j ACCEPT\nCOMMIT\n"),
            "rules.v6",
            Some(Family::V6),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        fwd(&r, p, ENV) == Verdict::Accept
    };
    assert!(r6("-p ipv6-icmp -m icmp6 --icmpv6-type 128", &echo6));
    assert!(r6("-p icmpv6 -m icmp6 --icmpv6-type echo-request", &echo6));
    assert!(!r6("-p ipv6-icmp -m icmp6 --icmpv6-type 129", &echo6));
    assert!(r6("-p ipv6-icmp -m icmp6 ! --icmpv6-type 129", &echo6));
    assert!(r6("-p ipv6-icmp -m icmp6 --icmpv6-type 1", &unr6));
    assert!(r6(
        "-p ipv6-icmp -m icmp6 --icmpv6-type port-unreachable",
        &unr6
    ));
    assert!(!r6("-p ipv6-icmp -m icmp6 --icmpv6-type 1/3", &unr6));
    assert!(r6("-p 58 --icmpv6-type 1/4", &unr6));
}

#[test]
fn ruleset_match_state() {
    let p = tcp("10.0.0.1:1", "10.0.0.2:2", tcp_flags::ACK);
    let st = |s| Env { state: s, ..ENV };
    let all = [
        CtState::New,
        CtState::Established,
        CtState::Related,
        CtState::Invalid,
        CtState::Untracked,
    ];
    for (name, want) in [
        ("NEW", CtState::New),
        ("ESTABLISHED", CtState::Established),
        ("RELATED", CtState::Related),
        ("INVALID", CtState::Invalid),
        ("UNTRACKED", CtState::Untracked),
    ] {
        for s in all {
            assert_eq!(
                hits(&format!("-m state --state {name}"), &p, st(s)),
                s == want,
                "{name} {s:?}"
            );
            assert_eq!(
                hits(&format!("-m conntrack --ctstate {name}"), &p, st(s)),
                s == want
            );
            assert_eq!(
                hits(&format!("-m state ! --state {name}"), &p, st(s)),
                s != want
            );
            assert_eq!(
                hits(&format!("-m conntrack ! --ctstate {name}"), &p, st(s)),
                s != want
            );
        }
    }
    assert!(hits(
        "-m state --state RELATED,ESTABLISHED",
        &p,
        st(CtState::Related)
    ));
    assert!(hits(
        "-m state --state ESTABLISHED,RELATED",
        &p,
        st(CtState::Established)
    ));
    assert!(!hits(
        "-m state --state RELATED,ESTABLISHED",
        &p,
        st(CtState::New)
    ));
    // ctdir / ctstatus need a connection: INVALID and UNTRACKED never match them.
    let est_reply = Env {
        state: CtState::Established,
        dir: Direction::Reply,
        status: CtStatus::SEEN_REPLY | CtStatus::ASSURED | CtStatus::CONFIRMED,
        ..ENV
    };
    assert!(hits("-m conntrack --ctdir REPLY", &p, est_reply));
    assert!(!hits("-m conntrack --ctdir ORIGINAL", &p, est_reply));
    assert!(hits("-m conntrack --ctstatus ASSURED", &p, est_reply));
    assert!(hits(
        "-m conntrack --ctstatus EXPECTED,ASSURED",
        &p,
        est_reply
    ));
    assert!(!hits("-m conntrack --ctstatus EXPECTED", &p, est_reply));
    assert!(hits("-m conntrack ! --ctstatus EXPECTED", &p, est_reply));
    assert!(hits(
        "-m conntrack --ctstate ESTABLISHED --ctdir REPLY --ctstatus ASSURED",
        &p,
        est_reply
    ));
    for s in [CtState::Invalid, CtState::Untracked] {
        assert!(!hits("-m conntrack --ctdir ORIGINAL", &p, st(s)));
        assert!(!hits("-m conntrack ! --ctstatus ASSURED", &p, st(s)));
        // xt_conntrack: without a connection, a passing --ctstate decides alone.
        assert!(hits(
            "-m conntrack --ctstate INVALID,UNTRACKED --ctdir ORIGINAL",
            &p,
            st(s)
        ));
    }
    assert!(hits(
        "-m conntrack --ctstate INVALID,UNTRACKED",
        &p,
        st(CtState::Untracked)
    ));
    // No NAT here: the virtual DNAT state never appears.
    assert!(!hits("-m conntrack --ctstate DNAT", &p, st(CtState::New)));
    assert!(hits("-m conntrack ! --ctstate DNAT", &p, st(CtState::New)));
}

#[test]
fn ruleset_match_comment_and_fragment() {
    let p = udp("10.0.0.1:1", "10.0.0.2:2");
    assert!(hits(
        "-m comment --comment \"allow all the things\"",
        &p,
        ENV
    ));
    assert!(hits(
        "-p udp -m comment --comment 'x y' -m udp --dport 2",
        &p,
        ENV
    ));
    assert!(!hits("-f", &p, ENV));
    assert!(hits("! -f", &p, ENV));
    let r = filter("-A FORWARD -m comment --comment \"a \\\"quoted\\\" name\" -j ACCEPT");
    assert_eq!(r.rule_comment(0), Some("a \"quoted\" name"));
}

#[test]
fn ruleset_match_limit() {
    // 2/sec burst 3: three pass at once, then one every 500 ms.
    let r = filter("-A FORWARD -m limit --limit 2/sec --limit-burst 3 -j ACCEPT");
    let p = udp("10.0.0.1:1", "10.0.0.2:2");
    let mut c = RuleCounters::for_ruleset(&r);
    let mut at = |now: u64| {
        r.eval_filter(
            FilterChain::Forward,
            &ctx(&p, Env { now, ..ENV }),
            &mut c,
            &mut |_| {},
        )
    };
    let t0 = 1_000_000_000;
    assert_eq!(at(t0), Verdict::Accept);
    assert_eq!(at(t0), Verdict::Accept);
    assert_eq!(at(t0), Verdict::Accept);
    assert_eq!(at(t0), Verdict::Drop);
    assert_eq!(at(t0 + 400_000_000), Verdict::Drop);
    assert_eq!(at(t0 + 500_000_000), Verdict::Accept);
    assert_eq!(at(t0 + 500_000_000), Verdict::Drop);
    // A long pause refills only up to the burst.
    let t1 = t0 + 100_000_000_000;
    for _ in 0..3 {
        assert_eq!(at(t1), Verdict::Accept);
    }
    assert_eq!(at(t1), Verdict::Drop);
    // Defaults: 3/hour burst 5.
    let r = filter("-A FORWARD -m limit -j ACCEPT");
    assert_eq!(r.limits[0].burst, 5);
    assert_eq!(r.limits[0].interval, 1_200_000_000_000);
    let mut c = RuleCounters::for_ruleset(&r);
    let v: Vec<_> = (0..6)
        .map(|_| r.eval_filter(FilterChain::Forward, &ctx(&p, ENV), &mut c, &mut |_| {}))
        .collect();
    assert_eq!(v[4], Verdict::Accept);
    assert_eq!(v[5], Verdict::Drop);
    // Units.
    for (s, ns) in [
        ("5/min", 12_000_000_000u64),
        ("1/h", 3_600_000_000_000),
        ("10/second", 100_000_000),
        ("2/day", 43_200_000_000_000),
        ("7", 1_000_000_000 / 7),
    ] {
        let r = filter(&format!("-A FORWARD -m limit --limit {s} -j ACCEPT"));
        assert_eq!(r.limits[0].interval, ns, "{s}");
    }
}

#[test]
fn ruleset_hotdrop_malformed_tcp() {
    // A TCP packet whose header is cut: the tcp match drops it (xt_tcp hotdrop).
    let mut p = tcp("10.0.0.1:1", "10.0.0.2:2", tcp_flags::SYN);
    let l3 = p.p.l3_off as usize;
    // total length = 20 + 10: a 10-byte TCP header.
    p.f[l3 + 2..l3 + 4].copy_from_slice(&30u16.to_be_bytes());
    p.f.truncate(l3 + 30);
    let Ok(Frame::Ip(parsed)) = packet::parse(&p.f) else {
        panic!()
    };
    assert!(matches!(parsed.l4, L4::Malformed(_)));
    p.p = parsed;
    let r = filter("-A FORWARD -p tcp -m tcp ! --dport 9 -j ACCEPT\n-A FORWARD -j ACCEPT");
    assert_eq!(fwd(&r, &p, ENV), Verdict::Drop);
    let r = filter("-A FORWARD -p tcp -j ACCEPT");
    assert_eq!(fwd(&r, &p, ENV), Verdict::Accept);
}

#[test]
fn ruleset_chains_jump_return_goto_policy() {
    let r = rs("*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:a - [0:0]
:b - [0:0]
:c - [0:0]
-A INPUT -p tcp -j a
-A INPUT -p udp -m udp --dport 1 -j ACCEPT
-A INPUT -p udp -m udp --dport 2 -g c
-A INPUT -p udp -m udp --dport 3 -j RETURN
-A INPUT -p udp -m udp --dport 4 -j b
-A INPUT -p udp -j REJECT --reject-with icmp-host-prohibited
-A a -p tcp -m tcp --dport 1 -j RETURN
-A a -p tcp -m tcp --dport 2 -g b
-A a -p tcp -m tcp --dport 3 -j b
-A a -p tcp -m tcp --dport 4 -j DROP
-A a -j ACCEPT
-A b -p tcp -m tcp --dport 2 -j RETURN
-A b -p tcp -m tcp --dport 3 -j RETURN
-A c -j RETURN
COMMIT
");
    let eval = |p: &Pkt| {
        let mut c = RuleCounters::for_ruleset(&r);
        r.eval_filter(FilterChain::Input, &ctx(p, ENV), &mut c, &mut |_| {})
    };
    let t = |port| tcp("10.0.0.1:9", &format!("10.0.0.2:{port}"), tcp_flags::SYN);
    let u = |port| udp("10.0.0.1:9", &format!("10.0.0.2:{port}"));
    // RETURN from a: back in INPUT, tcp matches nothing else -> policy DROP.
    assert_eq!(eval(&t(1)), Verdict::Drop);
    // goto b from a, RETURN in b goes to INPUT (a's caller), not a -> policy DROP.
    assert_eq!(eval(&t(2)), Verdict::Drop);
    // jump b from a, RETURN back into a, then "-j ACCEPT".
    assert_eq!(eval(&t(3)), Verdict::Accept);
    assert_eq!(eval(&t(4)), Verdict::Drop);
    // falls off a's other rules into ACCEPT.
    assert_eq!(eval(&t(5)), Verdict::Accept);
    assert_eq!(eval(&u(1)), Verdict::Accept);
    // goto c from INPUT: RETURN in c with an empty stack applies INPUT's policy.
    assert_eq!(eval(&u(2)), Verdict::Drop);
    // RETURN in a built-in chain applies its policy.
    assert_eq!(eval(&u(3)), Verdict::Drop);
    // b is empty for udp: falls off, back into INPUT, then REJECT.
    assert_eq!(eval(&u(4)), Verdict::Reject(RejectKind::IcmpHostProhibited));
    // counters of the policy and the rules.
    let mut c = RuleCounters::for_ruleset(&r);
    r.eval_filter(FilterChain::Input, &ctx(&u(3), ENV), &mut c, &mut |_| {});
    let input = r.builtin[2];
    assert_eq!(c.get(r.rule_count() + input).0, 1);
    assert_eq!(c.get(3).0, 1);
    assert_eq!(c.get(0).0, 0);
}

#[test]
fn ruleset_targets_log_and_none() {
    let r = filter(
        "-A FORWARD -p udp -m limit --limit 1/sec --limit-burst 1 -j LOG --log-prefix \"fw: \" --log-level info --log-tcp-options\n-A FORWARD -p udp\n-A FORWARD -j ACCEPT",
    );
    let p = udp("10.0.0.1:1", "10.0.0.2:2");
    let mut c = RuleCounters::for_ruleset(&r);
    let mut events = Vec::new();
    for _ in 0..3 {
        let v = r.eval_filter(FilterChain::Forward, &ctx(&p, ENV), &mut c, &mut |e| {
            events.push((
                e.rule_id,
                e.prefix.to_string(),
                e.level,
                e.flags,
                e.chain.to_string(),
                e.in_port.to_string(),
            ))
        });
        // LOG never decides (and its limit never limits the verdict).
        assert_eq!(v, Verdict::Accept);
    }
    assert_eq!(
        events,
        vec![(
            0,
            "fw: ".to_string(),
            6,
            2,
            "FORWARD".to_string(),
            "eth0".to_string()
        )]
    );
    assert_eq!(c.get(1).0, 3); // the target-less rule counts
    assert_eq!(c.get(2).0, 3);
}

fn raw_rs() -> Ruleset {
    rs("*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A PREROUTING -p udp -m udp --dport 53 -j CT --notrack
-A PREROUTING -p udp -j CT --helper ftp
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
-A PREROUTING -p tcp -m tcp --dport 22 -j NOTRACK
-A PREROUTING -p tcp -m tcp --dport 23 -j DROP
-A PREROUTING -p tcp -m tcp --dport 24 -j ACCEPT
-A PREROUTING -p tcp -m tcp --dport 24 -j NOTRACK
-A PREROUTING -p icmp -j LOG
-A OUTPUT -p udp -j ACCEPT
COMMIT
")
}

#[test]
fn ruleset_raw_table() {
    let r = raw_rs();
    assert!(r.raw_logs());
    let ev = |p: &Pkt, ch| {
        let mut c = RuleCounters::for_ruleset(&r);
        r.eval_raw(ch, &ctx(p, ENV), &mut c)
    };
    let pre = RawChain::Prerouting;
    let v = ev(&udp("10.0.0.1:1", "10.0.0.2:53"), pre);
    // The first CT wins; the later CT --helper does nothing.
    assert_eq!(
        v,
        RawVerdict {
            notrack: true,
            helper: None,
            drop: false
        }
    );
    let v = ev(&udp("10.0.0.1:1", "10.0.0.2:54"), pre);
    assert_eq!(
        v,
        RawVerdict {
            notrack: false,
            helper: Some(Helper::Ftp),
            drop: false
        }
    );
    let v = ev(&tcp("10.0.0.1:1", "10.0.0.2:21", tcp_flags::SYN), pre);
    assert_eq!(v.helper, Some(Helper::Ftp));
    assert!(ev(&tcp("10.0.0.1:1", "10.0.0.2:22", tcp_flags::SYN), pre).notrack);
    assert!(ev(&tcp("10.0.0.1:1", "10.0.0.2:23", tcp_flags::SYN), pre).drop);
    assert_eq!(
        ev(&tcp("10.0.0.1:1", "10.0.0.2:24", tcp_flags::SYN), pre),
        RawVerdict::default()
    );
    assert_eq!(
        ev(&tcp("10.0.0.1:1", "10.0.0.2:25", tcp_flags::SYN), pre),
        RawVerdict::default()
    );
    // OUTPUT policy DROP.
    assert!(ev(&tcp("10.0.0.1:1", "10.0.0.2:25", 0), RawChain::Output).drop);
    assert!(!ev(&udp("10.0.0.1:1", "10.0.0.2:25"), RawChain::Output).drop);
    let mut c = RuleCounters::for_ruleset(&r);
    let mut n = 0;
    r.eval_raw_log(
        pre,
        &ctx(&icmp("10.0.0.1", "10.0.0.2", 8, 0), ENV),
        &mut c,
        &mut |_| n += 1,
    );
    assert_eq!(n, 1);
}

// ---------------------------------------------------------------------------------
// REJECT replies

fn reply(kind: RejectKind, p: &Pkt) -> Option<(Vec<u8>, Parsed)> {
    let mut out = [0u8; 2048];
    let n = build_reject(kind, &p.f, &p.p, &mut out)?;
    let f = out[..n].to_vec();
    let Ok(Frame::Ip(q)) = packet::parse(&f) else {
        panic!("reply does not parse")
    };
    assert!(checksum::ipv4_header_ok(&f, &q));
    assert!(checksum::l4_ok(&f, &q));
    // Back out of the ingress port: MACs swapped.
    assert_eq!(&f[0..6], &p.f[6..12]);
    assert_eq!(&f[6..12], &p.f[0..6]);
    assert_eq!(q.src, p.p.dst);
    assert_eq!(q.dst, p.p.src);
    Some((f, q))
}

#[test]
fn ruleset_reject_tcp_reset() {
    // Without ACK: seq 0, RST|ACK, ack = seq + len + SYN + FIN.
    let payload = [7u8; 10];
    let p = mk(PacketSpec::tcp(
        sa("10.0.0.1:40000"),
        sa("10.0.0.2:113"),
        tcp_flags::SYN | tcp_flags::FIN,
        5000,
        0,
    )
    .payload(&payload));
    let (_, q) = reply(RejectKind::TcpReset, &p).unwrap();
    let L4::Tcp(t) = q.l4 else { panic!() };
    assert_eq!((t.sport, t.dport), (113, 40000));
    assert_eq!(t.flags, tcp_flags::RST | tcp_flags::ACK);
    assert_eq!(t.seq, 0);
    assert_eq!(t.ack, 5000 + 10 + 2);
    assert_eq!(t.payload_len, 0);
    // With ACK: seq = its ack, no ACK flag.
    let p = mk(PacketSpec::tcp(
        sa("10.0.0.1:40000"),
        sa("10.0.0.2:113"),
        tcp_flags::ACK | tcp_flags::PSH,
        5000,
        777,
    )
    .payload(&payload));
    let (_, q) = reply(RejectKind::TcpReset, &p).unwrap();
    let L4::Tcp(t) = q.l4 else { panic!() };
    assert_eq!(t.flags, tcp_flags::RST);
    assert_eq!(t.seq, 777);
    assert_eq!(t.ack, 0);
    // Sequence wraps.
    let p = mk(PacketSpec::tcp(
        sa("10.0.0.1:1"),
        sa("10.0.0.2:2"),
        tcp_flags::SYN,
        u32::MAX,
        0,
    ));
    let (_, q) = reply(RejectKind::TcpReset, &p).unwrap();
    let L4::Tcp(t) = q.l4 else { panic!() };
    assert_eq!(t.ack, 0);
    // Never reply to a RST; not to UDP.
    let p = tcp("10.0.0.1:1", "10.0.0.2:2", tcp_flags::RST | tcp_flags::ACK);
    assert!(reply(RejectKind::TcpReset, &p).is_none());
    assert!(reply(RejectKind::TcpReset, &udp("10.0.0.1:1", "10.0.0.2:2")).is_none());
    // Bad checksum: no reply.
    let mut p = tcp("10.0.0.1:1", "10.0.0.2:2", tcp_flags::SYN);
    let l4 = p.p.l4_off as usize;
    p.f[l4 + 16] ^= 0xff;
    assert!(reply(RejectKind::TcpReset, &p).is_none());
    // IPv6.
    let p = mk(PacketSpec::tcp(
        sa("[2001:db8::1]:5555"),
        sa("[2001:db8::2]:80"),
        tcp_flags::SYN,
        42,
        0,
    ));
    let (_, q) = reply(RejectKind::TcpReset, &p).unwrap();
    let L4::Tcp(t) = q.l4 else { panic!() };
    assert_eq!(
        (t.seq, t.ack, t.flags),
        (0, 43, tcp_flags::RST | tcp_flags::ACK)
    );
    assert_eq!(q.family, Family::V6);
}

#[test]
fn ruleset_reject_icmp() {
    let payload = [0xabu8; 100];
    let p = mk(PacketSpec::udp(sa("10.0.0.1:1234"), sa("10.0.0.2:53")).payload(&payload));
    for (k, code) in [
        (RejectKind::IcmpNetUnreachable, 0),
        (RejectKind::IcmpHostUnreachable, 1),
        (RejectKind::IcmpProtoUnreachable, 2),
        (RejectKind::IcmpPortUnreachable, 3),
        (RejectKind::IcmpNetProhibited, 9),
        (RejectKind::IcmpHostProhibited, 10),
        (RejectKind::IcmpAdminProhibited, 13),
    ] {
        let (f, q) = reply(k, &p).unwrap();
        let L4::Icmp(i) = q.l4 else { panic!() };
        assert_eq!((i.ty, i.code, i.v6), (3, code, false));
        // Quotes the IP header + 8 bytes.
        let l3 = p.p.l3_off as usize;
        let quoted = &f[q.l4_off as usize + 8..q.ip_end as usize];
        assert_eq!(quoted, &p.f[l3..l3 + 28]);
        assert_eq!(q.ttl, 64);
    }
    // Not for v6 packets; no reply to an ICMP error; none to broadcast.
    assert!(reply(RejectKind::Icmp6PortUnreachable, &p).is_none());
    assert!(reply(
        RejectKind::IcmpPortUnreachable,
        &icmp("10.0.0.1", "10.0.0.2", 3, 3)
    )
    .is_none());
    assert!(reply(
        RejectKind::IcmpPortUnreachable,
        &icmp("10.0.0.1", "10.0.0.2", 8, 0)
    )
    .is_some());
    assert!(reply(
        RejectKind::IcmpPortUnreachable,
        &udp("10.0.0.1:1", "255.255.255.255:2")
    )
    .is_none());
    // VLAN tag kept.
    let p = mk(PacketSpec::udp(sa("10.0.0.1:1234"), sa("10.0.0.2:53")).vlan(42));
    let (f, q) = reply(RejectKind::IcmpPortUnreachable, &p).unwrap();
    assert_eq!(q.vlan_count, 1);
    assert_eq!(q.vlans[0], 42);
    assert_eq!(&f[12..14], &[0x81, 0x00]);
    // ICMPv6: as much as fits in 1280 bytes.
    let big = [0x5au8; 1400];
    let p = mk(PacketSpec::udp(sa("[2001:db8::1]:1"), sa("[2001:db8::2]:2")).payload(&big));
    for (k, code) in [
        (RejectKind::Icmp6NoRoute, 0),
        (RejectKind::Icmp6AdmProhibited, 1),
        (RejectKind::Icmp6AddrUnreachable, 3),
        (RejectKind::Icmp6PortUnreachable, 4),
    ] {
        let (f, q) = reply(k, &p).unwrap();
        let L4::Icmp(i) = q.l4 else { panic!() };
        assert_eq!((i.ty, i.code, i.v6), (1, code, true));
        assert_eq!(q.ip_len(), 1280);
        let l3 = p.p.l3_off as usize;
        assert_eq!(
            &f[q.l4_off as usize + 8..q.ip_end as usize],
            &p.f[l3..l3 + 1280 - 48]
        );
    }
    let small =
        mk(PacketSpec::udp(sa("[2001:db8::1]:1"), sa("[2001:db8::2]:2")).payload(&[1, 2, 3]));
    let (_, q) = reply(RejectKind::Icmp6PortUnreachable, &small).unwrap();
    assert_eq!(q.ip_len() as usize, 40 + 8 + small.p.ip_len() as usize);
    assert!(reply(RejectKind::IcmpPortUnreachable, &small).is_none());
    let mc = mk(PacketSpec::udp(sa("[2001:db8::1]:1"), sa("[ff02::1]:2")));
    assert!(reply(RejectKind::Icmp6PortUnreachable, &mc).is_none());
    // Too small a buffer.
    let mut out = [0u8; 40];
    assert!(build_reject(
        RejectKind::Icmp6PortUnreachable,
        &small.f,
        &small.p,
        &mut out
    )
    .is_none());
}

#[test]
fn ruleset_reject_v6_default_and_verdicts() {
    let r = parse_ruleset(
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -j REJECT --reject-with tcp-reset\n-A INPUT -j REJECT\nCOMMIT\n",
        "rules.v6",
        Some(Family::V6),
    )
    .unwrap();
    let p = mk(PacketSpec::udp(
        sa("[2001:db8::1]:1"),
        sa("[2001:db8::2]:2"),
    ));
    let mut c = RuleCounters::for_ruleset(&r);
    assert_eq!(
        r.eval_filter(FilterChain::Input, &ctx(&p, ENV), &mut c, &mut |_| {}),
        Verdict::Reject(RejectKind::Icmp6PortUnreachable)
    );
    assert!(r
        .dump()
        .contains("-A INPUT -j REJECT --reject-with icmp6-port-unreachable"));
}

// ---------------------------------------------------------------------------------
// Errors

#[test]
fn ruleset_errors_have_line_and_column() {
    let base = "*filter\n:INPUT DROP [0:0]\n";
    let cases: &[(&str, &str)] = &[
        ("-A INPUT -m foo -j ACCEPT", "rules.v4:3:10: unknown match \"-m foo\""),
        ("-A INPUT -m recent --set", "rules.v4:3:10: match \"-m recent\" is not supported by statewall"),
        ("-A INPUT -p tcp --bogus 1", "rules.v4:3:17: unknown option \"--bogus\""),
        ("-A INPUT -j MASQUERADE", "rules.v4:3:13: target \"MASQUERADE\" is not supported by statewall"),
        ("-A INPUT -j nowhere", "rules.v4:3:13: unknown target or chain \"nowhere\""),
        ("-A NOPE -j ACCEPT", "rules.v4:3:4: chain \"NOPE\" does not exist in table filter"),
        ("-A INPUT --dport 22 -j ACCEPT", "rules.v4:3:10: option \"--dport\" needs \"-p tcp\" or \"-p udp\" first"),
        ("-A INPUT -m tcp --dport 22", "rules.v4:3:10: match \"tcp\" needs -p tcp before it"),
        ("-A INPUT -p tcp -m tcp --dport 30:20", "rules.v4:3:32: invalid port range \"30:20\" (min > max)"),
        ("-A INPUT -s 10.0.0.300 -j DROP", "rules.v4:3:13: bad address \"10.0.0.300\""),
        ("-A INPUT -s 2001:db8::1 -j DROP", "rules.v4:3:13: address \"2001:db8::1\" is IPv6 but this is an IPv4 ruleset"),
        ("-A INPUT -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16", "rules.v4:3:39: too many ports in \"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16\" (at most 15, a range counts as 2)"),
        ("-A INPUT -m state --state NEW,SNAT", "rules.v4:3:27: bad state \"SNAT\""),
        ("-A INPUT -m comment ! --comment x", "rules.v4:3:21: \"!\" cannot be used with \"--comment\""),
        ("-A INPUT -j REJECT --reject-with tcp-reset", "rules.v4:3:34: tcp-reset is only valid with \"-p tcp\""),
        ("-A INPUT -j REJECT --reject-with icmp-bogus", "rules.v4:3:34: unknown --reject-with \"icmp-bogus\""),
        ("-A INPUT -j CT --notrack", "rules.v4:3:13: CT is only valid in the raw table"),
        ("-A INPUT -o eth0 -j ACCEPT", "rules.v4:3:10: can't use -o with INPUT"),
        ("-A INPUT -m limit --limit 3/fortnight", "rules.v4:3:27: bad rate unit in \"3/fortnight\" (second, minute, hour or day)"),
        ("-A INPUT -m comment --comment \"open", "rules.v4:3:31: unterminated quote"),
        ("-I INPUT -j ACCEPT", "rules.v4:3:1: command \"-I\" is not supported (iptables-save files use -A and :CHAIN lines only)"),
        ("-A INPUT -j ACCEPT -j DROP", "rules.v4:3:20: only one -j or -g per rule"),
        ("-A INPUT -p tcp -m tcp --tcp-flags SYN,BOGUS SYN", "rules.v4:3:36: unknown TCP flag \"BOGUS\""),
        ("-A INPUT -p icmp -m icmp --icmp-type nonsense", "rules.v4:3:38: unknown icmp type \"nonsense\""),
        (":FORWARD REJECT [0:0]", "rules.v4:3:10: bad policy \"REJECT\" (ACCEPT or DROP)"),
        (":INPUT ACCEPT [0:0]", "rules.v4:3:1: chain \"INPUT\" declared twice"),
        (":FORWARD - [0:0]", "rules.v4:3:10: built-in chain FORWARD needs a policy ACCEPT or DROP"),
        (":mine ACCEPT [0:0]", "rules.v4:3:7: user chain \"mine\" cannot have a policy (write \"-\")"),
        ("-A INPUT -m state", "rules.v4:3:4: match \"state\" needs --state"),
    ];
    let mut bad = Vec::new();
    for (line, want) in cases {
        let got = err(&format!("{base}{line}\nCOMMIT\n"));
        if &got != want {
            bad.push(format!("{line}\n  got:  {got}\n  want: {want}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert_eq!(
        err("# x\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"),
        "rules.v4:2:1: table \"nat\" is not supported (statewall has *filter and *raw only)"
    );
    assert_eq!(
        err("*mangle\nCOMMIT\n"),
        "rules.v4:1:1: table \"mangle\" is not supported (statewall has *filter and *raw only)"
    );
    assert_eq!(
        err("*filter\n-A INPUT -j ACCEPT\n"),
        "rules.v4:1:1: table filter has no COMMIT"
    );
    assert_eq!(
        err("-A INPUT -j ACCEPT\n"),
        "rules.v4:1:1: expected a table (\"*filter\" or \"*raw\") first"
    );
    assert_eq!(
        err("*raw\n-A PREROUTING -j REJECT\nCOMMIT\n"),
        "rules.v4:2:18: REJECT is only valid in the filter table"
    );
    assert_eq!(
        err("*raw\n-A PREROUTING -j CT --helper sip\nCOMMIT\n"),
        "rules.v4:2:30: helper \"sip\" is not supported (only \"ftp\")"
    );
    // Loops, with the line of the jump that closes them.
    let looped = "*filter\n:INPUT ACCEPT [0:0]\n:a - [0:0]\n:b - [0:0]\n-A INPUT -j a\n-A a -j b\n-A b -p tcp -g a\nCOMMIT\n";
    assert_eq!(
        err(looped),
        "rules.v4:7:16: loop: chain \"b\" jumps back to \"a\""
    );
    let selfloop = "*filter\n:a - [0:0]\n-A a -j a\nCOMMIT\n";
    assert_eq!(
        err(selfloop),
        "rules.v4:3:9: loop: chain \"a\" jumps back to \"a\""
    );
    // 12th line.
    let mut many = String::from("*filter\n:INPUT DROP [0:0]\n");
    for _ in 0..9 {
        many.push_str("-A INPUT -j ACCEPT\n");
    }
    many.push_str("-A INPUT -m foo\nCOMMIT\n");
    assert_eq!(err(&many), "rules.v4:12:10: unknown match \"-m foo\"");
    let e = parse_ruleset(&many, "rules.v4", None).unwrap_err();
    assert_eq!((e.line, e.column), (12, 10));
}

// ---------------------------------------------------------------------------------
// Realistic files, listing, dump, summary, counters across reloads

fn load(name: &str) -> Ruleset {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/ruleset/testdata")
        .join(name);
    Ruleset::from_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn ruleset_testdata_ufw() {
    let r = load("ufw.rules.v4");
    assert_eq!(r.family(), Family::V4);
    let input = |p: &Pkt, e: Env| {
        let mut c = RuleCounters::for_ruleset(&r);
        r.eval_filter(FilterChain::Input, &ctx(p, e), &mut c, &mut |_| {})
    };
    let e = Env {
        inp: "eth0",
        out: "",
        ..ENV
    };
    let est = Env {
        state: CtState::Established,
        ..e
    };
    let host = "192.168.1.10";
    assert_eq!(
        input(
            &tcp("203.0.113.5:40000", &format!("{host}:22"), tcp_flags::SYN),
            e
        ),
        Verdict::Accept
    );
    assert_eq!(
        input(
            &tcp("203.0.113.5:40000", &format!("{host}:443"), tcp_flags::SYN),
            e
        ),
        Verdict::Accept
    );
    assert_eq!(
        input(
            &tcp("203.0.113.5:40000", &format!("{host}:9100"), tcp_flags::SYN),
            e
        ),
        Verdict::Drop
    );
    assert_eq!(
        input(
            &tcp("192.168.1.7:40000", &format!("{host}:9100"), tcp_flags::SYN),
            e
        ),
        Verdict::Accept
    );
    assert_eq!(
        input(
            &tcp("203.0.113.5:40000", &format!("{host}:25"), tcp_flags::SYN),
            est
        ),
        Verdict::Accept
    );
    assert_eq!(
        input(
            &tcp("203.0.113.5:40000", &format!("{host}:25"), tcp_flags::SYN),
            e
        ),
        Verdict::Drop
    );
    assert_eq!(input(&icmp("203.0.113.5", host, 8, 0), e), Verdict::Accept);
    assert_eq!(input(&icmp("203.0.113.5", host, 13, 0), e), Verdict::Drop);
    assert_eq!(
        input(&udp("203.0.113.5:1", &format!("{host}:51820")), e),
        Verdict::Accept
    );
    assert_eq!(
        input(&udp("203.0.113.5:1", "224.0.0.251:5353"), e),
        Verdict::Accept
    );
    // not local -> DROP
    assert_eq!(
        input(&udp("203.0.113.5:1", "10.9.9.9:51820"), e),
        Verdict::Drop
    );
    assert_eq!(
        input(
            &udp("203.0.113.5:1", &format!("{host}:51820")),
            Env {
                state: CtState::Invalid,
                ..e
            }
        ),
        Verdict::Drop
    );
    assert_eq!(
        input(
            &tcp("127.0.0.1:1", "127.0.0.1:2", 0),
            Env { inp: "lo", ..e }
        ),
        Verdict::Accept
    );
    let ftp = tcp("203.0.113.5:40000", &format!("{host}:21"), tcp_flags::SYN);
    let mut c = RuleCounters::for_ruleset(&r);
    assert_eq!(
        r.eval_raw(RawChain::Prerouting, &ctx(&ftp, e), &mut c)
            .helper,
        Some(Helper::Ftp)
    );
    assert_eq!(r.rule_comment(r.rule_count() - 7), Some("'dapp_OpenSSH'"));
}

#[test]
fn ruleset_testdata_border() {
    let r = load("border.rules.v4");
    let f = |p: &Pkt, e: Env| {
        let mut c = RuleCounters::for_ruleset(&r);
        let mut logs = 0;
        let v = r.eval_filter(FilterChain::Forward, &ctx(p, e), &mut c, &mut |_| logs += 1);
        (v, logs)
    };
    let wan = Env {
        inp: "eth0",
        out: "eth1",
        ..ENV
    };
    let lan = Env {
        inp: "eth1",
        out: "eth0",
        ..ENV
    };
    let syn = tcp_flags::SYN;
    assert_eq!(
        f(&tcp("198.18.0.1:4000", "203.0.113.10:443", syn), wan).0,
        Verdict::Accept
    );
    assert_eq!(
        f(&tcp("198.18.0.1:4000", "203.0.113.10:8080", syn), wan).0,
        Verdict::Accept
    );
    assert_eq!(
        f(&tcp("198.18.0.1:4000", "203.0.113.10:21", syn), wan).0,
        Verdict::Accept
    );
    // goto dmz-services, RETURN comes back to FORWARD after "-j wan-in": logged and dropped.
    assert_eq!(
        f(&tcp("198.18.0.1:4000", "203.0.113.10:22", syn), wan),
        (Verdict::Drop, 1)
    );
    assert_eq!(
        f(&tcp("198.18.0.1:4000", "203.0.113.11:113", syn), wan).0,
        Verdict::Reject(RejectKind::TcpReset)
    );
    assert_eq!(
        f(&udp("198.18.0.1:4000", "203.0.113.11:33434"), wan).0,
        Verdict::Reject(RejectKind::IcmpPortUnreachable)
    );
    // bad-tcp: NEW without SYN, null scan, SYN+FIN.
    assert_eq!(
        f(
            &tcp("198.18.0.1:4000", "203.0.113.10:443", tcp_flags::ACK),
            wan
        ),
        (Verdict::Drop, 0)
    );
    assert_eq!(
        f(
            &tcp("198.18.0.1:4000", "203.0.113.10:443", 0),
            Env {
                state: CtState::Established,
                ..wan
            }
        )
        .0,
        Verdict::Accept
    );
    assert_eq!(
        f(
            &tcp("198.18.0.1:4000", "203.0.113.10:443", syn | tcp_flags::FIN),
            Env {
                state: CtState::Related,
                ..wan
            }
        )
        .0,
        Verdict::Accept
    );
    assert_eq!(
        f(&icmp("198.18.0.1", "203.0.113.11", 3, 4), wan).0,
        Verdict::Accept
    );
    assert_eq!(
        f(&icmp("198.18.0.1", "203.0.113.11", 8, 0), wan).0,
        Verdict::Accept
    );
    assert_eq!(
        f(&tcp("198.51.100.7:1", "203.0.113.11:80", syn), wan).0,
        Verdict::Drop
    );
    assert_eq!(
        f(&tcp("10.1.1.1:1", "8.8.8.8:443", syn), lan).0,
        Verdict::Accept
    );
    assert_eq!(
        f(&tcp("11.1.1.1:1", "8.8.8.8:443", syn), lan).0,
        Verdict::Reject(RejectKind::IcmpAdminProhibited)
    );
    assert_eq!(
        f(
            &tcp("172.17.0.2:1", "8.8.8.8:443", syn),
            Env {
                inp: "veth12ab",
                ..lan
            }
        )
        .0,
        Verdict::Accept
    );
    assert_eq!(
        f(
            &udp("198.18.0.1:1", "203.0.113.11:53"),
            Env {
                state: CtState::Untracked,
                ..wan
            }
        )
        .0,
        Verdict::Accept
    );
    assert_eq!(
        f(
            &udp("198.18.0.1:1", "203.0.113.11:53"),
            Env {
                state: CtState::Invalid,
                ..wan
            }
        )
        .0,
        Verdict::Drop
    );
    // raw
    let raw = |p: &Pkt, e: Env| {
        let mut c = RuleCounters::for_ruleset(&r);
        r.eval_raw(RawChain::Prerouting, &ctx(p, e), &mut c)
    };
    assert!(raw(&udp("198.18.0.1:1", "203.0.113.11:53"), wan).notrack);
    assert!(!raw(&udp("198.18.0.1:1", "203.0.113.11:53"), lan).notrack);
    assert_eq!(
        raw(&tcp("198.18.0.1:1", "203.0.113.11:21", syn), wan).helper,
        Some(Helper::Ftp)
    );
    assert!(raw(&tcp("192.0.2.9:1", "203.0.113.11:80", syn), wan).drop);
    let mut c = RuleCounters::for_ruleset(&r);
    assert!(
        r.eval_raw(
            RawChain::Output,
            &ctx(
                &udp("127.0.0.1:1", "127.0.0.1:2"),
                Env {
                    inp: "",
                    out: "lo",
                    ..ENV
                }
            ),
            &mut c
        )
        .notrack
    );
    // Input
    let mut c = RuleCounters::for_ruleset(&r);
    let ssh = tcp("10.2.3.4:5000", "10.0.0.1:22", syn);
    assert_eq!(
        r.eval_filter(
            FilterChain::Input,
            &ctx(
                &ssh,
                Env {
                    inp: "eth1",
                    out: "",
                    ..ENV
                }
            ),
            &mut c,
            &mut |_| {}
        ),
        Verdict::Accept
    );
    assert_eq!(
        r.eval_filter(
            FilterChain::Input,
            &ctx(
                &ssh,
                Env {
                    inp: "eth0",
                    out: "",
                    ..ENV
                }
            ),
            &mut c,
            &mut |_| {}
        ),
        Verdict::Drop
    );
}

#[test]
fn ruleset_testdata_v6() {
    let r = load("rules.v6");
    assert_eq!(r.family(), Family::V6);
    let input = |p: &Pkt, e: Env| {
        let mut c = RuleCounters::for_ruleset(&r);
        r.eval_filter(FilterChain::Input, &ctx(p, e), &mut c, &mut |_| {})
    };
    let e = Env {
        inp: "eth0",
        out: "",
        ..ENV
    };
    let syn = tcp_flags::SYN;
    let t6 = |s: &str, d: &str| mk(PacketSpec::tcp(sa(s), sa(d), syn, 1, 0));
    assert_eq!(
        input(&t6("[2001:db8:10::5]:4000", "[2001:db8::1]:22"), e),
        Verdict::Accept
    );
    assert_eq!(
        input(&t6("[2001:db8:11::5]:4000", "[2001:db8::1]:22"), e),
        Verdict::Reject(RejectKind::TcpReset)
    );
    assert_eq!(
        input(&t6("[2001:db8:11::5]:4000", "[2001:db8::1]:443"), e),
        Verdict::Accept
    );
    let u6 = mk(PacketSpec::udp(
        sa("[2001:db8:11::5]:123"),
        sa("[2001:db8::1]:123"),
    ));
    assert_eq!(
        input(
            &u6,
            Env {
                state: CtState::Untracked,
                ..e
            }
        ),
        Verdict::Accept
    );
    assert_eq!(
        input(&u6, e),
        Verdict::Reject(RejectKind::Icmp6AdmProhibited)
    );
    let ns = mk(PacketSpec::icmp(
        ip("fe80::1"),
        ip("ff02::1:ff00:1"),
        135,
        0,
        [0; 4],
    ));
    assert_eq!(
        input(
            &ns,
            Env {
                state: CtState::Untracked,
                ..e
            }
        ),
        Verdict::Accept
    );
    let echo = mk(PacketSpec::icmp(
        ip("2001:db8:11::5"),
        ip("2001:db8::1"),
        128,
        0,
        [0; 4],
    ));
    assert_eq!(input(&echo, e), Verdict::Accept);
    let mut c = RuleCounters::for_ruleset(&r);
    assert!(
        r.eval_raw(RawChain::Prerouting, &ctx(&u6, e), &mut c)
            .notrack
    );
    let fw = |inp, out| {
        let mut c = RuleCounters::for_ruleset(&r);
        r.eval_filter(
            FilterChain::Forward,
            &ctx(&u6, Env { inp, out, ..ENV }),
            &mut c,
            &mut |_| {},
        )
    };
    assert_eq!(fw("wg0", "eth0"), Verdict::Accept);
    assert_eq!(fw("wg0", "wg1"), Verdict::Drop);
}

#[test]
fn ruleset_dump_round_trips() {
    for name in ["ufw.rules.v4", "border.rules.v4", "rules.v6"] {
        let r = load(name);
        let d = r.dump();
        let hint = Some(r.family());
        let r2 = parse_ruleset(&d, name, hint).unwrap_or_else(|e| panic!("{name}: {e}\n{d}"));
        assert_eq!(r2.dump(), d, "{name}");
        assert_eq!(r2.rule_count(), r.rule_count());
        // Every rule keeps its identity.
        let map = Ruleset::remap(&r, &r2);
        assert!(map.iter().all(|m| m.is_some()), "{name}");
    }
    let r = load("border.rules.v4");
    let d = r.dump();
    assert!(
        d.contains(
            "-A FORWARD ! -s 10.0.0.0/8 -i eth1 -j REJECT --reject-with icmp-admin-prohibited\n"
        ),
        "{d}"
    );
    assert!(d.contains("-A bad-tcp -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j DROP\n"));
    assert!(d.contains("-A wan-in -s 198.51.100.0/24 -j DROP\n"));
    assert!(d.contains("-A dmz-services -p tcp -m multiport --dports 25,80,443,8000:8080 -m conntrack --ctstate NEW -m comment --comment \"dmz web and mail\" -j ACCEPT\n"));
    assert!(d.contains(
        "-A log-drop -m limit --limit 5/min -j LOG --log-prefix \"border drop: \" --log-level 6\n"
    ));
    assert!(d.contains("-A PREROUTING -i eth0 -p tcp -m tcp --dport 21 -j CT --helper ftp\n"));
    assert!(d.contains("-A wan-in -d 203.0.113.10/32 -g dmz-services\n"));
}

#[test]
fn ruleset_listing_and_summary() {
    let r = rs(SEED);
    let mut c = RuleCounters::for_ruleset(&r);
    let p = tcp("10.0.0.1:1234", "10.0.0.2:80", tcp_flags::SYN);
    r.eval_filter(
        FilterChain::Input,
        &ctx(
            &p,
            Env {
                state: CtState::Established,
                ..ENV
            },
        ),
        &mut c,
        &mut |_| {},
    );
    let l = r.list(Table::Filter, &c.snapshot());
    let want = "Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination         
1        1    40 ACCEPT     all  --  *      *       0.0.0.0/0            0.0.0.0/0            state RELATED,ESTABLISHED
2        0     0 REJECT     all  --  *      *       0.0.0.0/0            0.0.0.0/0            reject-with icmp-port-unreachable

Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination         

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination         
";
    assert_eq!(l, want);
    let r = load("border.rules.v4");
    let mut snap = vec![(0, 0); r.counter_slots()];
    snap[r.rule_count() + r.builtin[3]] = (123456, 98765432);
    let l = r.list(Table::Filter, &snap);
    assert!(
        l.contains("Chain FORWARD (policy DROP 123K packets, 99M bytes)"),
        "{l}"
    );
    assert!(l.contains("Chain wan-in (1 references)"));
    assert!(l.contains("1        0     0 ACCEPT     all  --  lo     *       0.0.0.0/0            0.0.0.0/0           \n"), "{l}");
    assert!(l.contains("ACCEPT     tcp  --  eth1   *       10.0.0.0/8           0.0.0.0/0            tcp dpt:22 state NEW"), "{l}");
    assert!(l.contains("REJECT     all  --  eth1   *      !10.0.0.0/8           0.0.0.0/0            reject-with icmp-admin-prohibited"), "{l}");
    assert!(l.contains("dmz-services  all  --  *      *       0.0.0.0/0            203.0.113.10         [goto]"), "{l}");
    let s = r.summary();
    assert_eq!(s.rules, r.rule_count());
    assert_eq!(s.tables.len(), 2);
    let text = s.to_string();
    assert!(text.contains("table filter: 7 chains"), "{text}");
    assert!(text.contains("FORWARD (policy DROP): 9 rules"), "{text}");
    let raw = r.list(Table::Raw, &snap);
    assert!(raw.contains("CT         udp  --  eth0   *       0.0.0.0/0            0.0.0.0/0            udp dpt:53 CT notrack"), "{raw}");
}

#[test]
fn ruleset_counters_carry_across_reload() {
    let old = filter(
        "-A FORWARD -p tcp -j ACCEPT\n-A FORWARD -p udp -j ACCEPT\n-A FORWARD -p udp -j ACCEPT",
    );
    let new = filter("-A FORWARD -p icmp -j ACCEPT\n-A FORWARD -p udp -j ACCEPT\n-A FORWARD -p tcp -m tcp -j ACCEPT\n-A FORWARD -p tcp -j ACCEPT");
    let map = Ruleset::remap(&old, &new);
    assert_eq!(&map[..4], &[None, Some(1), None, Some(0)]);
    // Policies map by chain.
    assert_eq!(
        map[new.rule_count() + new.builtin[3]],
        Some(old.rule_count() + old.builtin[3])
    );
    let mut a = RuleCounters::for_ruleset(&old);
    let mut b = RuleCounters::for_ruleset(&old);
    let p = udp("10.0.0.1:1", "10.0.0.2:2");
    old.eval_filter(FilterChain::Forward, &ctx(&p, ENV), &mut a, &mut |_| {});
    old.eval_filter(FilterChain::Forward, &ctx(&p, ENV), &mut b, &mut |_| {});
    a.add(&b.snapshot());
    let carried = carry_counters(&a.snapshot(), &map);
    assert_eq!(carried[1], (2, 2 * p.p.ip_len() as u64));
    let mut fresh = RuleCounters::for_ruleset(&new);
    fresh.add(&carried);
    assert_eq!(fresh.get(1).0, 2);
}

// ---------------------------------------------------------------------------------
// Index vs reference, and scale

/// The reference: a straight linear walk of every rule with an explicit call stack.
fn reference(r: &Ruleset, base: usize, c: &PacketCtx, counters: &mut RuleCounters) -> Verdict {
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let (mut chain, mut pos) = (base, 0usize);
    let policy = |counters: &mut RuleCounters| {
        let s = &mut counters.slots[r.rule_count() + base];
        s.0 += 1;
        s.1 += c.parsed.ip_len() as u64;
        match r.chains[base].policy {
            Some(Policy::Drop) => Verdict::Drop,
            _ => Verdict::Accept,
        }
    };
    loop {
        let rules = &r.chains[chain].rules;
        if pos >= rules.len() {
            match stack.pop() {
                Some((ch, p)) => {
                    (chain, pos) = (ch, p);
                    continue;
                }
                None => return policy(counters),
            }
        }
        let rid = rules[pos] as usize;
        pos += 1;
        match r.rule_matches(&r.rules[rid].matches, c, &mut counters.limits) {
            Hit::No => continue,
            Hit::HotDrop => return Verdict::Drop,
            Hit::Yes => {}
        }
        counters.slots[rid].0 += 1;
        counters.slots[rid].1 += c.parsed.ip_len() as u64;
        match &r.rules[rid].target {
            Target::Accept => return Verdict::Accept,
            Target::Drop => return Verdict::Drop,
            Target::Reject(k) => return Verdict::Reject(*k),
            Target::Return => match stack.pop() {
                Some((ch, p)) => (chain, pos) = (ch, p),
                None => return policy(counters),
            },
            Target::Jump(t) => {
                stack.push((chain, pos));
                (chain, pos) = (*t, 0);
            }
            Target::Goto(t) => (chain, pos) = (*t, 0),
            _ => {}
        }
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn rule_strategy(chain: usize) -> impl Strategy<Value = String> {
        let proto = prop_oneof![
            Just(""),
            Just("-p tcp"),
            Just("-p udp"),
            Just("-p icmp"),
            Just("! -p tcp"),
        ];
        let extra = prop_oneof![
            Just(""),
            Just("--dport 22"),
            Just("--dport 80"),
            Just("! --dport 80"),
            Just("--dport 1000:2000"),
            Just("--dport 20:"),
            Just("-m multiport --dports 22,443,1500"),
            Just("--sport 5"),
            Just("--syn"),
        ];
        let misc = prop_oneof![
            Just(""),
            Just("-s 10.0.0.0/8"),
            Just("! -s 10.0.0.0/8"),
            Just("-s 10.1.1.1"),
            Just("-s 11.1.1.1/32"),
            Just("-s 11.1.1.0/24"),
            Just("-s 10.1.1.0/24 -d 192.168.0.1"),
            Just("-m state --state NEW"),
            Just("-m conntrack --ctstate RELATED,ESTABLISHED"),
            Just("-i eth+"),
        ];
        let mut targets = vec![
            "-j ACCEPT".to_string(),
            "-j DROP".to_string(),
            "-j REJECT".to_string(),
            "-j RETURN".to_string(),
            "".to_string(),
        ];
        for c in chain + 1..4 {
            targets.push(format!("-j c{c}"));
            targets.push(format!("-g c{c}"));
        }
        (proto, extra, misc, proptest::sample::select(targets)).prop_map(|(p, e, m, t)| {
            let e = match (p, e) {
                ("-p tcp", e) => e.to_string(),
                ("-p udp", e) if e != "--syn" => e.to_string(),
                _ => String::new(),
            };
            format!("{p} {e} {m} {t}")
        })
    }

    fn ruleset_strategy() -> impl Strategy<Value = String> {
        let chains: Vec<_> = (0..4)
            .map(|c| proptest::collection::vec(rule_strategy(c), 0..8))
            .collect();
        (chains, any::<bool>()).prop_map(|(chains, drop)| {
            let mut s = format!(
                "*filter\n:INPUT {} [0:0]\n:c1 - [0:0]\n:c2 - [0:0]\n:c3 - [0:0]\n",
                if drop { "DROP" } else { "ACCEPT" }
            );
            for (i, rules) in chains.iter().enumerate() {
                let name = if i == 0 {
                    "INPUT".to_string()
                } else {
                    format!("c{i}")
                };
                for r in rules {
                    s.push_str(&format!("-A {name} {r}\n"));
                }
            }
            s.push_str("COMMIT\n");
            s
        })
    }

    fn packet_strategy() -> impl Strategy<Value = (u8, u16, u16, bool, u8, u8)> {
        (
            0u8..3,
            prop_oneof![
                Just(22u16),
                Just(80),
                Just(443),
                Just(1500),
                Just(5),
                Just(19),
                Just(20),
                Just(2000),
                Just(2001)
            ],
            prop_oneof![Just(5u16), Just(40000)],
            any::<bool>(),
            0u8..3,
            any::<u8>(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn ruleset_index_matches_reference(text in ruleset_strategy(), pkts in proptest::collection::vec(packet_strategy(), 1..8)) {
            let r = rs(&text);
            let mut c1 = RuleCounters::for_ruleset(&r);
            let mut c2 = RuleCounters::for_ruleset(&r);
            for (proto, dport, sport, src10, st, flags) in pkts {
                let src = if src10 { "10.1.1.1" } else { "11.1.1.1" };
                let p = match proto {
                    0 => mk(PacketSpec::tcp(sa(&format!("{src}:{sport}")), sa(&format!("192.168.0.1:{dport}")), flags, 1, 2)),
                    1 => udp(&format!("{src}:{sport}"), &format!("192.168.0.1:{dport}")),
                    _ => icmp(src, "192.168.0.1", 8, 0),
                };
                let state = [CtState::New, CtState::Established, CtState::Invalid][st as usize];
                let e = Env { state, ..ENV };
                let a = r.eval_filter(FilterChain::Input, &ctx(&p, e), &mut c1, &mut |_| {});
                let b = reference(&r, r.builtin[2], &ctx(&p, e), &mut c2);
                prop_assert_eq!(a, b, "{}", text);
            }
            prop_assert_eq!(c1.snapshot(), c2.snapshot());
        }

        /// Swapping rulesets while packets are evaluated (the worker's way: one
        /// `ArcSwap` load per burst) never yields a verdict that neither the old nor the
        /// new ruleset gives.
        #[test]
        fn ruleset_swap_never_mixes(a in ruleset_strategy(), b in ruleset_strategy(),
                                    pkts in proptest::collection::vec(packet_strategy(), 1..6)) {
            let ra = std::sync::Arc::new(rs(&a));
            let rb = std::sync::Arc::new(rs(&b));
            let frames: Vec<Pkt> = pkts
                .iter()
                .map(|&(proto, dport, sport, _, _, flags)| match proto {
                    0 => mk(PacketSpec::tcp(sa(&format!("10.1.1.1:{sport}")), sa(&format!("192.168.0.1:{dport}")), flags, 1, 2)),
                    1 => udp(&format!("10.1.1.1:{sport}"), &format!("192.168.0.1:{dport}")),
                    _ => icmp("10.1.1.1", "192.168.0.1", 8, 0),
                })
                .collect();
            let states: Vec<CtState> = pkts.iter().map(|p| [CtState::New, CtState::Established, CtState::Invalid][p.4 as usize]).collect();
            // The verdicts each ruleset alone gives.
            let alone = |r: &Ruleset| -> Vec<Verdict> {
                let mut c = RuleCounters::for_ruleset(r);
                frames.iter().zip(&states).map(|(p, &state)| {
                    r.eval_filter(FilterChain::Input, &ctx(p, Env { state, ..ENV }), &mut c, &mut |_| {})
                }).collect()
            };
            let (va, vb) = (alone(&ra), alone(&rb));
            let current = std::sync::Arc::new(arc_swap::ArcSwap::new(ra.clone()));
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let swapper = {
                let (current, stop, ra, rb) = (current.clone(), stop.clone(), ra.clone(), rb.clone());
                std::thread::spawn(move || {
                    let mut flip = false;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        current.store(if flip { ra.clone() } else { rb.clone() });
                        flip = !flip;
                        std::thread::yield_now();
                    }
                })
            };
            for _ in 0..200 {
                // One burst: one load, every packet judged by that ruleset.
                let r = current.load_full();
                let mut c = RuleCounters::for_ruleset(&r);
                let mut got = Vec::with_capacity(frames.len());
                for (p, &state) in frames.iter().zip(&states) {
                    got.push(r.eval_filter(FilterChain::Input, &ctx(p, Env { state, ..ENV }), &mut c, &mut |_| {}));
                }
                for (i, v) in got.iter().enumerate() {
                    prop_assert!(*v == va[i] || *v == vb[i], "verdict {:?} for packet {} is neither old {:?} nor new {:?}", v, i, va[i], vb[i]);
                }
                prop_assert!(got == va || got == vb, "a burst mixed two rulesets: {:?} vs {:?} / {:?}", got, va, vb);
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            swapper.join().unwrap();
        }
    }
}

fn big_ruleset(n: usize) -> String {
    let mut s =
        String::from("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    s.push_str("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    for i in 0..n {
        let net = format!("10.{}.{}.0/24", (i >> 8) & 255, i & 255);
        match i % 4 {
            0 => s.push_str(&format!(
                "-A FORWARD -s {net} -p tcp -m tcp --dport {} -j ACCEPT\n",
                1000 + i % 20000
            )),
            1 => s.push_str(&format!(
                "-A FORWARD -d {net} -p udp -m udp --dport {} -j DROP\n",
                1000 + i % 20000
            )),
            2 => s.push_str(&format!(
                "-A FORWARD -s {net} -p tcp -m multiport --dports {},{} -j REJECT\n",
                1000 + i % 20000,
                30000 + i % 1000
            )),
            _ => s.push_str(&format!(
                "-A FORWARD -s {net} -p tcp -m tcp --dport {}:{} -j ACCEPT\n",
                40000 + i % 1000,
                40010 + i % 1000
            )),
        }
    }
    s.push_str("-A FORWARD -p tcp -m tcp --dport 443 -j ACCEPT\nCOMMIT\n");
    s
}

#[test]
fn ruleset_large_compiles_and_skips() {
    let text = big_ruleset(10_000);
    let t = std::time::Instant::now();
    let r = rs(&text);
    let compile = t.elapsed();
    assert_eq!(r.rule_count(), 10_002);
    let p = tcp("172.16.0.1:5000", "192.168.0.1:443", tcp_flags::SYN);
    let mut c = RuleCounters::for_ruleset(&r);
    let n = 20_000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        assert_eq!(
            r.eval_filter(FilterChain::Forward, &ctx(&p, ENV), &mut c, &mut |_| {}),
            Verdict::Accept
        );
    }
    let per = t.elapsed() / n;
    // Both ends agree with the reference.
    let mut c2 = RuleCounters::for_ruleset(&r);
    assert_eq!(
        reference(&r, r.builtin[3], &ctx(&p, ENV), &mut c2),
        Verdict::Accept
    );
    let q = tcp("10.0.4.0:5000", "192.168.0.1:1004", tcp_flags::SYN);
    assert_eq!(
        r.eval_filter(FilterChain::Forward, &ctx(&q, ENV), &mut c, &mut |_| {}),
        Verdict::Accept
    );
    assert_eq!(
        reference(&r, r.builtin[3], &ctx(&q, ENV), &mut c2),
        Verdict::Accept
    );
    eprintln!("10k rules: compile {compile:?}, {per:?} per NEW packet");
    // Generous bounds for unoptimised, shared CI machines; release numbers come from bench/.
    assert!(compile.as_millis() < 5_000);
    assert!(per.as_micros() < 200);
}

#[test]
fn ruleset_is_send_sync_and_shareable() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Ruleset>();
    check::<RuleCounters>();
    let r = std::sync::Arc::new(rs(SEED));
    let r2 = r.clone();
    let h = std::thread::spawn(move || r2.rule_count());
    assert_eq!(h.join().unwrap(), 2);
}
