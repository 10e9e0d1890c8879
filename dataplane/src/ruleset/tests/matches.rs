//! Every match: protocol, addresses, interfaces, ports, TCP flags, ICMP types, state,
//! comment and fragment, limit; and the hot drop of a malformed TCP header.

use super::*;

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
