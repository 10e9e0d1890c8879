//! Realistic rule files (testdata/), the listing, dump, summary, and counters carried
//! across a reload.

use super::*;

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
    let at = |port: u16| format!("{host}:{port}");
    let syn_from = |src: &str, port: u16| tcp(src, &at(port), tcp_flags::SYN);
    let invalid = Env {
        state: CtState::Invalid,
        ..e
    };
    let cases = [
        (syn_from("203.0.113.5:40000", 22), e, Verdict::Accept),
        (syn_from("203.0.113.5:40000", 443), e, Verdict::Accept),
        (syn_from("203.0.113.5:40000", 9100), e, Verdict::Drop),
        (syn_from("192.168.1.7:40000", 9100), e, Verdict::Accept),
        (syn_from("203.0.113.5:40000", 25), est, Verdict::Accept),
        (syn_from("203.0.113.5:40000", 25), e, Verdict::Drop),
        (icmp("203.0.113.5", host, 8, 0), e, Verdict::Accept),
        (icmp("203.0.113.5", host, 13, 0), e, Verdict::Drop),
        (udp("203.0.113.5:1", &at(51820)), e, Verdict::Accept),
        (udp("203.0.113.5:1", "224.0.0.251:5353"), e, Verdict::Accept),
        // not local -> DROP
        (udp("203.0.113.5:1", "10.9.9.9:51820"), e, Verdict::Drop),
        (udp("203.0.113.5:1", &at(51820)), invalid, Verdict::Drop),
        (
            tcp("127.0.0.1:1", "127.0.0.1:2", 0),
            Env { inp: "lo", ..e },
            Verdict::Accept,
        ),
    ];
    for (i, (p, env, want)) in cases.iter().enumerate() {
        assert_eq!(input(p, *env), *want, "case {i}");
    }
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
    let with = |state: CtState| Env { state, ..wan };
    let cases = [
        (
            tcp("198.18.0.1:4000", "203.0.113.10:443", syn),
            wan,
            Verdict::Accept,
        ),
        (
            tcp("198.18.0.1:4000", "203.0.113.10:8080", syn),
            wan,
            Verdict::Accept,
        ),
        (
            tcp("198.18.0.1:4000", "203.0.113.10:21", syn),
            wan,
            Verdict::Accept,
        ),
        (
            tcp("198.18.0.1:4000", "203.0.113.11:113", syn),
            wan,
            Verdict::Reject(RejectKind::TcpReset),
        ),
        (
            udp("198.18.0.1:4000", "203.0.113.11:33434"),
            wan,
            Verdict::Reject(RejectKind::IcmpPortUnreachable),
        ),
        (
            tcp("198.18.0.1:4000", "203.0.113.10:443", 0),
            with(CtState::Established),
            Verdict::Accept,
        ),
        (
            tcp("198.18.0.1:4000", "203.0.113.10:443", syn | tcp_flags::FIN),
            with(CtState::Related),
            Verdict::Accept,
        ),
        (
            icmp("198.18.0.1", "203.0.113.11", 3, 4),
            wan,
            Verdict::Accept,
        ),
        (
            icmp("198.18.0.1", "203.0.113.11", 8, 0),
            wan,
            Verdict::Accept,
        ),
        (
            tcp("198.51.100.7:1", "203.0.113.11:80", syn),
            wan,
            Verdict::Drop,
        ),
        (tcp("10.1.1.1:1", "8.8.8.8:443", syn), lan, Verdict::Accept),
        (
            tcp("11.1.1.1:1", "8.8.8.8:443", syn),
            lan,
            Verdict::Reject(RejectKind::IcmpAdminProhibited),
        ),
        (
            tcp("172.17.0.2:1", "8.8.8.8:443", syn),
            Env {
                inp: "veth12ab",
                ..lan
            },
            Verdict::Accept,
        ),
        (
            udp("198.18.0.1:1", "203.0.113.11:53"),
            with(CtState::Untracked),
            Verdict::Accept,
        ),
        (
            udp("198.18.0.1:1", "203.0.113.11:53"),
            with(CtState::Invalid),
            Verdict::Drop,
        ),
    ];
    for (i, (p, env, want)) in cases.iter().enumerate() {
        assert_eq!(f(p, *env).0, *want, "case {i}");
    }
    // goto dmz-services, RETURN comes back to FORWARD after "-j wan-in": logged and dropped.
    assert_eq!(
        f(&tcp("198.18.0.1:4000", "203.0.113.10:22", syn), wan),
        (Verdict::Drop, 1)
    );
    // bad-tcp: NEW without SYN drops (a null scan and SYN+FIN as ESTABLISHED/RELATED: above).
    assert_eq!(
        f(
            &tcp("198.18.0.1:4000", "203.0.113.10:443", tcp_flags::ACK),
            wan
        ),
        (Verdict::Drop, 0)
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
