//! The REJECT replies: TCP resets and ICMP/ICMPv6 errors, and the IPv6 default.

use super::*;

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

/// Each kind's reply to `p` is an ICMP(v6) error of type `ty` and the kind's code, quoting
/// the first `quote` bytes of `p` from its IP header; returns the replies' parses.
#[track_caller]
fn icmp_codes(p: &Pkt, ty: u8, v6: bool, quote: usize, codes: &[(RejectKind, u8)]) -> Vec<Parsed> {
    codes
        .iter()
        .map(|&(k, code)| {
            let (f, q) = reply(k, p).unwrap();
            let L4::Icmp(i) = q.l4 else { panic!() };
            assert_eq!((i.ty, i.code, i.v6), (ty, code, v6));
            let l3 = p.p.l3_off as usize;
            let quoted = &f[q.l4_off as usize + 8..q.ip_end as usize];
            assert_eq!(quoted, &p.f[l3..l3 + quote]);
            q
        })
        .collect()
}

#[test]
fn ruleset_reject_icmp() {
    let payload = [0xabu8; 100];
    let p = mk(PacketSpec::udp(sa("10.0.0.1:1234"), sa("10.0.0.2:53")).payload(&payload));
    let codes = [
        (RejectKind::IcmpNetUnreachable, 0),
        (RejectKind::IcmpHostUnreachable, 1),
        (RejectKind::IcmpProtoUnreachable, 2),
        (RejectKind::IcmpPortUnreachable, 3),
        (RejectKind::IcmpNetProhibited, 9),
        (RejectKind::IcmpHostProhibited, 10),
        (RejectKind::IcmpAdminProhibited, 13),
    ];
    // Quotes the IP header + 8 bytes.
    for q in icmp_codes(&p, 3, false, 28, &codes) {
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
    let codes = [
        (RejectKind::Icmp6NoRoute, 0),
        (RejectKind::Icmp6AdmProhibited, 1),
        (RejectKind::Icmp6AddrUnreachable, 3),
        (RejectKind::Icmp6PortUnreachable, 4),
    ];
    for q in icmp_codes(&p, 1, true, 1280 - 48, &codes) {
        assert_eq!(q.ip_len(), 1280);
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
