//! The nat table: its targets and their options as iptables-save prints them, where
//! each may run, the walk that picks a new connection's NAT, the ranges it yields, the
//! virtual SNAT/DNAT states, and the realistic `*nat` sections of testdata/.

use super::*;
use crate::conntrack::nat::range_flags as rf;

fn nat(body: &str) -> Ruleset {
    rs(&format!(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n{body}\nCOMMIT\n"
    ))
}

fn nat_err(body: &str) -> String {
    err(&format!(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n{body}\nCOMMIT\n"
    ))
}

fn a4(s: &str) -> crate::packet::Addr {
    let v: std::net::Ipv4Addr = s.parse().unwrap();
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&v.octets());
    a
}

/// The NAT target a new connection's packet meets in `chain`, as its save text.
fn pick(r: &Ruleset, chain: NatChain, p: &Pkt, e: Env) -> Option<String> {
    let mut c = RuleCounters::for_ruleset(r);
    r.eval_nat(chain, &ctx(p, e), &mut c, &mut |_| {})
        .map(|t| t.save_text(r.family()))
}

#[test]
fn nat_targets_round_trip_in_save_form() {
    let lines = [
        "-A POSTROUTING -s 10.0.0.0/8 -o eth1 -j SNAT --to-source 192.0.2.1",
        "-A POSTROUTING -p tcp -j SNAT --to-source 192.0.2.1-192.0.2.9:1024-2047",
        "-A POSTROUTING -p udp -j SNAT --to-source 192.0.2.1:5000 --random",
        "-A POSTROUTING -j SNAT --to-source 192.0.2.1 --random-fully --persistent",
        "-A PREROUTING -d 198.51.100.7/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.5:8080",
        "-A PREROUTING -p tcp -m tcp --dport 443 -j DNAT --to-destination 10.0.0.5-10.0.0.8 --persistent",
        "-A PREROUTING -p tcp -m tcp --dport 8443 -j DNAT --to-destination :443",
        "-A POSTROUTING -o eth1 -j MASQUERADE",
        "-A POSTROUTING -p tcp -j MASQUERADE --to-ports 20000-30000 --random",
        "-A PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128",
        "-A OUTPUT -p udp -m udp --dport 53 -j REDIRECT --to-ports 5353",
        "-A PREROUTING -d 192.0.2.0/24 -j NETMAP --to 10.1.0.0/24",
        "-A POSTROUTING -s 10.1.0.0/24 -j NETMAP --to 192.0.2.0/24",
        "-A INPUT -p tcp -j SNAT --to-source 10.9.9.9",
        "-A PREROUTING -j ACCEPT",
        "-A POSTROUTING -j RETURN",
    ];
    let r = nat(&lines.join("\n"));
    let dump = r.dump();
    for l in lines {
        assert!(dump.contains(&format!("{l}\n")), "{l} not in\n{dump}");
    }
    // The dump reads back to the same text.
    let again = rs(&dump).dump();
    assert_eq!(dump, again);
    assert!(r.has_nat());
    assert!(!filter("-A FORWARD -j ACCEPT").has_nat());
}

#[test]
fn nat_ipv6_bracket_form() {
    let text = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination [2001:db8::5]:8080\n\
-A POSTROUTING -p tcp -j SNAT --to-source [2001:db8::1]-[2001:db8::4]:1000-2000\n\
-A POSTROUTING -s fd00::/64 -j SNAT --to-source 2001:db8::1\n\
-A POSTROUTING -o eth1 -j MASQUERADE\nCOMMIT\n";
    let r = parse_ruleset(text, "rules.v6", Some(Family::V6)).unwrap();
    let d = r.dump();
    for l in [
        "--to-destination [2001:db8::5]:8080",
        "--to-source [2001:db8::1]-[2001:db8::4]:1000-2000",
        "-s fd00::/64 -j SNAT --to-source 2001:db8::1\n",
    ] {
        assert!(d.contains(l), "{l} not in\n{d}");
    }
    // An IPv6 address in an IPv4 file is refused.
    assert!(nat_err("-A POSTROUTING -j SNAT --to-source 2001:db8::1")
        .contains("is IPv6 but this is an IPv4 ruleset"));
}

#[test]
fn nat_refusals_have_line_and_column() {
    let cases: &[(&str, &str)] = &[
        // Targets in the wrong chain (as the kernel refuses them at load).
        ("-A PREROUTING -j SNAT --to-source 1.2.3.4", "rules.v4:4:18: SNAT is used from the nat PREROUTING chain, but is only valid in POSTROUTING and INPUT"),
        ("-A POSTROUTING -j DNAT --to-destination 1.2.3.4", "rules.v4:4:19: DNAT is used from the nat POSTROUTING chain, but is only valid in PREROUTING and OUTPUT"),
        ("-A PREROUTING -j MASQUERADE", "rules.v4:4:18: MASQUERADE is used from the nat PREROUTING chain, but is only valid in POSTROUTING"),
        ("-A POSTROUTING -p tcp -j REDIRECT --to-ports 80", "rules.v4:4:26: REDIRECT is used from the nat POSTROUTING chain, but is only valid in PREROUTING and OUTPUT"),
        // Options.
        ("-A POSTROUTING -j SNAT", "rules.v4:4:19: SNAT needs option \"--to-source\""),
        ("-A PREROUTING -j DNAT", "rules.v4:4:18: DNAT needs option \"--to-destination\""),
        ("-A PREROUTING -j NETMAP", "rules.v4:4:18: NETMAP needs option \"--to\""),
        ("-A POSTROUTING -j SNAT --to-source 1.2.3.4:80", "rules.v4:4:36: a port needs \"-p tcp\", \"-p udp\", \"-p sctp\" or \"-p dccp\" before it"),
        ("-A POSTROUTING -j MASQUERADE --to-ports 1000", "rules.v4:4:41: a port needs \"-p tcp\", \"-p udp\", \"-p sctp\" or \"-p dccp\" before it"),
        ("-A POSTROUTING -p tcp -j SNAT --to-source 1.2.3.4:90-80", "rules.v4:4:43: bad port range \"90-80\" (the first port is larger)"),
        ("-A POSTROUTING -j SNAT --to-source 1.2.3.9-1.2.3.4", "rules.v4:4:36: bad address range \"1.2.3.9-1.2.3.4\" (the first is larger)"),
        ("-A POSTROUTING -j SNAT --to-source 1.2.3.400", "rules.v4:4:36: bad address \"1.2.3.400\""),
        ("-A POSTROUTING -j SNAT --to-source 1.2.3.4 --to-source 1.2.3.5", "rules.v4:4:44: option \"--to-source\" given twice (one range per rule; write one rule per range)"),
        ("-A PREROUTING -j DNAT --to-destination 1.2.3.4 --random-fully", "rules.v4:4:48: unknown option \"--random-fully\""),
        ("-A PREROUTING -j DROP", "rules.v4:4:18: the nat table is not intended for filtering: DROP is not allowed in it"),
        ("-A PREROUTING -j REJECT", "rules.v4:4:18: REJECT is only valid in the filter table"),
        ("-A POSTROUTING -i eth0 -j MASQUERADE", "rules.v4:4:16: can't use -i with POSTROUTING"),
        ("-A PREROUTING -o eth0 -j ACCEPT", "rules.v4:4:15: can't use -o with PREROUTING"),
        (":INPUT DROP [0:0]", "rules.v4:4:8: the nat table's built-in chains need the policy ACCEPT"),
    ];
    let mut bad = Vec::new();
    for (line, want) in cases {
        let got = nat_err(line);
        if &got != want {
            bad.push(format!("{line}\n  got:  {got}\n  want: {want}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // NAT targets outside the nat table.
    assert_eq!(
        err(
            "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j DNAT --to-destination 1.2.3.4\nCOMMIT\n"
        ),
        "rules.v4:3:15: DNAT is only valid in the nat table"
    );
    // Through a user chain: the chain is called from PREROUTING, so SNAT in it is refused.
    assert_eq!(
        nat_err(":mine - [0:0]\n-A PREROUTING -j mine\n-A mine -j SNAT --to-source 1.2.3.4"),
        "rules.v4:6:12: SNAT is used from the nat PREROUTING chain, but is only valid in POSTROUTING and INPUT"
    );
    // An uncalled user chain may hold anything.
    nat(":mine - [0:0]\n-A mine -j SNAT --to-source 1.2.3.4\n-A mine -p tcp -j DNAT --to-destination 1.2.3.4:80");
}

#[test]
fn nat_walk_picks_first_target_with_jumps_and_return() {
    let r = nat(":FWD - [0:0]\n\
-A PREROUTING -i eth1 -p tcp -m tcp --dport 8080 -j FWD\n\
-A FWD -s 203.0.113.0/24 -j RETURN\n\
-A FWD -p tcp -j DNAT --to-destination 10.0.0.5:80\n\
-A PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.6:80\n\
-A POSTROUTING -d 10.0.0.0/8 -j ACCEPT\n\
-A POSTROUTING -o eth1 -j MASQUERADE");
    let from_net = Env {
        inp: "eth1",
        out: "eth0",
        ..ENV
    };
    let p = tcp("198.51.100.1:40000", "192.0.2.1:8080", tcp_flags::SYN);
    assert_eq!(
        pick(&r, NatChain::Prerouting, &p, from_net).as_deref(),
        Some(" -j DNAT --to-destination 10.0.0.5:80")
    );
    // RETURN from the user chain: the next rule of PREROUTING matches.
    let q = tcp("203.0.113.9:40000", "192.0.2.1:8080", tcp_flags::SYN);
    assert_eq!(
        pick(&r, NatChain::Prerouting, &q, from_net).as_deref(),
        Some(" -j DNAT --to-destination 10.0.0.6:80")
    );
    // ACCEPT ends the walk without NAT; the policy likewise.
    let inside = tcp("10.0.0.5:80", "10.1.1.1:5000", tcp_flags::SYN);
    assert_eq!(pick(&r, NatChain::Postrouting, &inside, ENV), None);
    let out = tcp("192.168.0.2:5000", "198.51.100.1:80", tcp_flags::SYN);
    assert_eq!(
        pick(&r, NatChain::Postrouting, &out, Env { out: "eth1", ..ENV }).as_deref(),
        Some(" -j MASQUERADE")
    );
    assert_eq!(
        pick(&r, NatChain::Postrouting, &out, Env { out: "eth0", ..ENV }),
        None
    );
    assert_eq!(pick(&r, NatChain::Output, &out, ENV), None);
}

#[test]
fn nat_ranges_from_targets() {
    let r = nat("-A PREROUTING -d 192.0.2.0/24 -j NETMAP --to 10.1.0.0/24\n\
-A POSTROUTING -s 10.1.0.0/24 -j NETMAP --to 192.0.2.0/24\n\
-A POSTROUTING -p tcp -j SNAT --to-source 192.0.2.1-192.0.2.9:1024-2047 --random\n\
-A POSTROUTING -j MASQUERADE\n\
-A PREROUTING -p tcp -j REDIRECT --to-ports 3128");
    let mut c = RuleCounters::for_ruleset(&r);
    let p = udp("198.51.100.1:1000", "192.0.2.77:53");
    let t = r
        .eval_nat(NatChain::Prerouting, &ctx(&p, ENV), &mut c, &mut |_| {})
        .unwrap();
    let (dst, range) = t.range(&p.p, NatChain::Prerouting, None, None).unwrap();
    assert!(dst);
    assert_eq!(range.flags, rf::MAP_IPS);
    assert_eq!(range.min_addr, a4("10.1.0.77"));
    assert_eq!(range.max_addr, a4("10.1.0.77"));
    let q = udp("10.1.0.5:1000", "198.51.100.1:53");
    let t = r
        .eval_nat(NatChain::Postrouting, &ctx(&q, ENV), &mut c, &mut |_| {})
        .unwrap();
    let (dst, range) = t.range(&q.p, NatChain::Postrouting, None, None).unwrap();
    assert!(!dst);
    assert_eq!(range.min_addr, a4("192.0.2.5"));
    let s = tcp("10.2.0.5:1000", "198.51.100.1:80", tcp_flags::SYN);
    let t = r
        .eval_nat(NatChain::Postrouting, &ctx(&s, ENV), &mut c, &mut |_| {})
        .unwrap();
    let (_, range) = t.range(&s.p, NatChain::Postrouting, None, None).unwrap();
    assert_eq!(range.flags, rf::MAP_IPS | rf::PROTO_SPECIFIED | rf::RANDOM);
    assert_eq!(
        (range.min_addr, range.max_addr),
        (a4("192.0.2.1"), a4("192.0.2.9"))
    );
    assert_eq!((range.min_port, range.max_port), (1024, 2047));
    // MASQUERADE takes the port's address; without one there is nothing to bind.
    let u = udp("10.2.0.5:1000", "198.51.100.1:53");
    let t = r
        .eval_nat(NatChain::Postrouting, &ctx(&u, ENV), &mut c, &mut |_| {})
        .unwrap();
    assert_eq!(t.kind(), NatKind::Masquerade);
    assert!(t.range(&u.p, NatChain::Postrouting, None, None).is_none());
    let (_, range) = t
        .range(&u.p, NatChain::Postrouting, Some(a4("192.0.2.200")), None)
        .unwrap();
    assert_eq!(range.min_addr, a4("192.0.2.200"));
    // REDIRECT takes the local address and its ports.
    let w = tcp("198.51.100.1:1000", "8.8.8.8:80", tcp_flags::SYN);
    let t = r
        .eval_nat(NatChain::Prerouting, &ctx(&w, ENV), &mut c, &mut |_| {})
        .unwrap();
    let (dst, range) = t
        .range(&w.p, NatChain::Prerouting, None, Some(a4("192.0.2.254")))
        .unwrap();
    assert!(dst);
    assert_eq!(
        (range.min_addr, range.min_port, range.max_port),
        (a4("192.0.2.254"), 3128, 3128)
    );
}

#[test]
fn nat_ctstate_snat_dnat_bits() {
    let p = tcp("10.0.0.1:1000", "10.0.0.2:80", tcp_flags::ACK);
    let est = |status| Env {
        state: CtState::Established,
        status,
        ..ENV
    };
    assert!(hits(
        "-m conntrack --ctstate DNAT",
        &p,
        est(CtStatus::DST_NAT)
    ));
    assert!(!hits(
        "-m conntrack --ctstate DNAT",
        &p,
        est(CtStatus::SRC_NAT)
    ));
    assert!(hits(
        "-m conntrack --ctstate SNAT",
        &p,
        est(CtStatus::SRC_NAT)
    ));
    assert!(hits(
        "-m conntrack --ctstate SNAT,DNAT",
        &p,
        est(CtStatus::DST_NAT)
    ));
    assert!(hits(
        "-m conntrack ! --ctstate SNAT",
        &p,
        est(CtStatus::DST_NAT)
    ));
    assert!(!hits("-m conntrack --ctstate SNAT", &p, est(0)));
}

#[test]
fn nat_testdata_openwrt_k3s_load_unchanged() {
    let load = |name: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/ruleset/testdata")
            .join(name);
        Ruleset::from_file(&path).unwrap_or_else(|e| panic!("{e}"))
    };
    let ow = load("nat-openwrt.rules.v4");
    assert!(ow.has_nat());
    // A port forward from the wan zone: DNAT in PREROUTING through two user chains.
    let p = tcp("203.0.113.5:40000", "198.51.100.7:2222", tcp_flags::SYN);
    let wan = Env {
        inp: "eth0.2",
        out: "br-lan",
        ..ENV
    };
    assert_eq!(
        pick(&ow, NatChain::Prerouting, &p, wan).as_deref(),
        Some(" -j DNAT --to-destination 192.168.1.10:22")
    );
    // Masquerade out of wan.
    let q = udp("192.168.1.50:5000", "203.0.113.5:53");
    let lan = Env {
        inp: "br-lan",
        out: "eth0.2",
        ..ENV
    };
    assert_eq!(
        pick(&ow, NatChain::Postrouting, &q, lan).as_deref(),
        Some(" -j MASQUERADE")
    );
    let k3s = load("nat-k3s.rules.v4");
    let pod_out = tcp("10.42.0.15:5000", "198.51.100.9:443", tcp_flags::SYN);
    assert_eq!(
        pick(&k3s, NatChain::Postrouting, &pod_out, ENV).as_deref(),
        Some(" -j MASQUERADE --random-fully")
    );
    let pod_pod = tcp("10.42.0.15:5000", "10.42.1.9:443", tcp_flags::SYN);
    assert_eq!(pick(&k3s, NatChain::Postrouting, &pod_pod, ENV), None);
    let nodeport = tcp("198.51.100.9:5000", "192.0.2.10:30443", tcp_flags::SYN);
    assert_eq!(
        pick(&k3s, NatChain::Prerouting, &nodeport, ENV).as_deref(),
        Some(" -j DNAT --to-destination 10.42.0.16-10.42.0.18:8443 --persistent")
    );
    // Both dump and read back unchanged.
    for r in [&ow, &k3s] {
        assert_eq!(rs(&r.dump()).dump(), r.dump());
    }
}

#[test]
fn nat_addrtype_and_docker_testdata() {
    let mut r = rs(&std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/ruleset/testdata/nat-docker.rules.v4"),
    )
    .unwrap());
    assert!(r
        .dump()
        .contains("-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"));
    assert!(r
        .dump()
        .contains("-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER\n"));
    assert_eq!(rs(&r.dump()).dump(), r.dump());
    let p = tcp("203.0.113.5:40000", "192.0.2.1:8080", tcp_flags::SYN);
    // Before the host's address is known, only loopback is LOCAL.
    assert_eq!(pick(&r, NatChain::Prerouting, &p, ENV), None);
    r.set_local_addrs(&["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()]);
    assert_eq!(
        pick(&r, NatChain::Prerouting, &p, ENV).as_deref(),
        Some(" -j DNAT --to-destination 172.17.0.2:80")
    );
    // Types and their negation.
    let f = |rule: &str, src: &str, dst: &str| {
        let q = udp(src, dst);
        let mut g = filter(&format!("-A FORWARD {rule} -j ACCEPT"));
        g.set_local_addrs(&["192.0.2.1".parse().unwrap()]);
        fwd(&g, &q, ENV) == Verdict::Accept
    };
    assert!(f(
        "-m addrtype --dst-type MULTICAST",
        "10.0.0.1:1",
        "224.0.0.251:5353"
    ));
    assert!(f(
        "-m addrtype --dst-type BROADCAST",
        "10.0.0.1:1",
        "255.255.255.255:67"
    ));
    assert!(f(
        "-m addrtype --dst-type UNICAST",
        "10.0.0.1:1",
        "8.8.8.8:53"
    ));
    assert!(!f(
        "-m addrtype --dst-type UNICAST",
        "10.0.0.1:1",
        "192.0.2.1:53"
    ));
    assert!(f(
        "-m addrtype ! --dst-type LOCAL",
        "10.0.0.1:1",
        "8.8.8.8:53"
    ));
    assert!(f(
        "-m addrtype --src-type LOCAL --dst-type UNICAST,MULTICAST",
        "127.0.0.1:1",
        "8.8.8.8:53"
    ));
    assert!(err(
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m addrtype --dst-type BLACKHOLE\nCOMMIT\n"
    )
    .contains("address type \"BLACKHOLE\" is not supported"));
    assert!(
        err("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m addrtype\nCOMMIT\n")
            .contains("match \"addrtype\" needs --src-type or --dst-type")
    );
}

#[test]
fn nat_conntrack_tuple_options() {
    // Save form round trip (addresses before ports, as iptables-save writes them).
    let r = filter(
        "-A FORWARD -m conntrack --ctstate DNAT --ctorigdst 192.0.2.1 --ctreplsrc 172.17.0.0/16 --ctorigdstport 8080 -j ACCEPT\n\
-A FORWARD -p tcp -m conntrack ! --ctorigsrc 10.0.0.0/8 --ctrepldstport 1024:65535 -j ACCEPT\n\
-A FORWARD -m conntrack --ctreplsrcport 53 --ctorigsrcport 1:1023 --ctrepldst 192.0.2.9 -j DROP",
    );
    let d = r.dump();
    for l in [
        "-A FORWARD -m conntrack --ctstate DNAT --ctorigdst 192.0.2.1/32 --ctreplsrc 172.17.0.0/16 --ctorigdstport 8080 -j ACCEPT\n",
        "-A FORWARD -p tcp -m conntrack ! --ctorigsrc 10.0.0.0/8 --ctrepldstport 1024:65535 -j ACCEPT\n",
        "-A FORWARD -m conntrack --ctrepldst 192.0.2.9/32 --ctreplsrcport 53 --ctorigsrcport 1:1023 -j DROP\n",
    ] {
        assert!(d.contains(l), "{l} not in\n{d}");
    }
    assert_eq!(rs(&d).dump(), d);
    // Without NAT the tuples come from the packet and its direction.
    let p = tcp("10.0.0.5:1000", "198.51.100.1:80", tcp_flags::ACK);
    let est = Env {
        state: CtState::Established,
        ..ENV
    };
    assert!(hits(
        "-m conntrack --ctorigsrc 10.0.0.5 --ctorigdstport 80",
        &p,
        est
    ));
    assert!(hits(
        "-m conntrack --ctreplsrc 198.51.100.1 --ctrepldstport 1000",
        &p,
        est
    ));
    let reply_dir = Env {
        dir: Direction::Reply,
        ..est
    };
    // The same packet seen as a REPLY: its source is the original destination.
    assert!(hits(
        "-m conntrack --ctorigdst 10.0.0.5 --ctorigsrcport 80",
        &p,
        reply_dir
    ));
    assert!(!hits("-m conntrack --ctorigsrc 10.0.0.5", &p, reply_dir));
    assert!(hits("-m conntrack ! --ctorigsrc 10.0.0.5", &p, reply_dir));
    // No connection: no tuple test passes.
    assert!(!hits(
        "-m conntrack --ctorigsrc 10.0.0.5",
        &p,
        Env {
            state: CtState::Invalid,
            ..ENV
        }
    ));
    // With NAT the pipeline passes both tuples.
    let t = |s: &str, sp, d: &str, dp| crate::conntrack::NatTuple {
        src: crate::packet::from_ip(ip(s)).1,
        dst: crate::packet::from_ip(ip(d)).1,
        sport: sp,
        dport: dp,
    };
    let orig = t("203.0.113.5", 40000, "192.0.2.1", 8080);
    let reply = t("172.17.0.2", 80, "203.0.113.5", 40000);
    let q = tcp("203.0.113.5:40000", "172.17.0.2:80", tcp_flags::ACK);
    let g = filter("-A FORWARD -m conntrack --ctorigdst 192.0.2.1 --ctorigdstport 8080 --ctreplsrc 172.17.0.2 --ctreplsrcport 80 -j ACCEPT");
    let mut c = RuleCounters::for_ruleset(&g);
    let mut x = ctx(&q, est);
    assert_eq!(
        g.eval_filter(FilterChain::Forward, &x, &mut c, &mut |_| {}),
        Verdict::Drop
    );
    let both = (orig, reply);
    x.ct_tuples = Some(&both);
    assert_eq!(
        g.eval_filter(FilterChain::Forward, &x, &mut c, &mut |_| {}),
        Verdict::Accept
    );
    assert!(err(
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m conntrack --ctorigsrc 10.0.0.300\nCOMMIT\n"
    )
    .contains("bad address \"10.0.0.300\""));
}

#[test]
fn nat_match_stays_small() {
    // The NAT options must not grow every rule's match list (48: `Net` is two u128s).
    assert!(
        std::mem::size_of::<Match>() <= 48,
        "{}",
        std::mem::size_of::<Match>()
    );
}
