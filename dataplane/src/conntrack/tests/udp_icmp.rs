//! UDP, ICMP, ICMPv6, generic and NOTRACK: the U, I, V, G and N cases of
//! `docs/CONNTRACK.md` §7.

use super::*;

// ----- UDP ----------------------------------------------------------------------------

#[test]
fn u01_stream_after_two_seconds() {
    let mut h = H::new();
    let q = udp(UC, US);
    h.check(&q, New, None);
    assert_eq!(h.secs(&q), 30);
    h.adv(0.1);
    let t = h.go(&udp(US, UC));
    expect(&t, Est, None);
    assert!(t.status.has(CtStatus::SEEN_REPLY));
    assert!(!t.status.has(CtStatus::ASSURED));
    assert_eq!(h.secs(&q), 30);
    h.adv(2.9);
    let t = h.go(&q);
    expect(&t, Est, None);
    assert!(t.status.has(CtStatus::ASSURED));
    assert_eq!(h.secs(&q), 120);
}

#[test]
fn u02_quick_exchange_not_assured() {
    let mut h = H::new();
    let q = udp(UC, US);
    h.go(&q);
    h.adv(0.1);
    h.go(&udp(US, UC));
    h.adv(1.4);
    let t = h.go(&q);
    expect(&t, Est, None);
    assert!(!t.status.has(CtStatus::ASSURED));
    assert_eq!(h.secs(&q), 30);
}

#[test]
fn u03_expired_then_reverse_is_new() {
    let mut h = H::new();
    h.go(&udp(UC, US));
    h.adv(31.0);
    let r = udp(US, UC);
    let t = h.go(&r);
    expect(&t, New, None);
    let v = h.view(&r).unwrap();
    assert_eq!(packet::to_ip(v.family, &v.orig.src), ip("10.0.0.2"));
    assert_eq!(h.t.stats()[CtCounter::ExpiredUdp], 1);
}

#[test]
fn u04_bad_lengths() {
    let mut h = H::new();
    // length field 100 with 20 bytes present
    let mut f = PacketSpec::udp(sock(UC), sock(US))
        .payload(&[0; 12])
        .to_vec();
    f[38..40].copy_from_slice(&100u16.to_be_bytes());
    h.invalid(&f, InvalidReason::UdpBadLength);
    // length field 7
    f[38..40].copy_from_slice(&7u16.to_be_bytes());
    h.invalid(&f, InvalidReason::UdpBadLength);
    // a 6-byte UDP header
    let mut f = udp(UC, US);
    f.truncate(14 + 20 + 6);
    f[16..18].copy_from_slice(&26u16.to_be_bytes());
    fix_ip_csum(&mut f);
    h.invalid(&f, InvalidReason::UdpBadLength);
    assert_eq!(h.t.len(), 0);
}

#[test]
fn u05_checksums() {
    let mut zero4 = udp(UC, US);
    zero4[40..42].copy_from_slice(&[0, 0]);
    let mut zero6 = udp("[2001:db8::1]:5353", "[2001:db8::2]:53");
    zero6[14 + 40 + 6..14 + 40 + 8].copy_from_slice(&[0, 0]);
    let mut bad = udp("10.0.0.1:5354", US);
    bad[40] ^= 0x11;
    let mut h = H::new();
    h.check(&zero4, New, None);
    h.check(&zero6, New, None);
    h.invalid(&bad, InvalidReason::UdpBadChecksum);
    let mut h = H::cfg(Config {
        checksum: false,
        ..Config::default()
    });
    h.check(&bad, New, None);
}

#[test]
fn u06_server_first() {
    let mut h = H::new();
    h.check(&udp(US, UC), New, None);
}

// ----- ICMP / ICMPv6 ------------------------------------------------------------------

#[test]
fn i01_echo_pair() {
    let mut h = H::new();
    let e = echo(CI, SI, 8, 7, 1);
    h.check(&e, New, None);
    assert_eq!(h.secs(&e), 30);
    h.check(&echo(SI, CI, 0, 7, 1), Est, None);
    h.check(&echo(CI, SI, 8, 7, 2), Est, None);
    h.check(&echo(SI, CI, 0, 7, 2), Est, None);
    h.check(&echo(SI, CI, 0, 7, 2), Est, None);
    assert_eq!(h.t.len(), 1);
}

#[test]
fn i02_reply_without_request() {
    let mut h = H::new();
    h.invalid(&echo(SI, CI, 0, 7, 1), InvalidReason::IcmpNoEntry);
}

#[test]
fn i03_reply_other_id() {
    let mut h = H::new();
    h.check(&echo(CI, SI, 8, 7, 1), New, None);
    h.invalid(&echo(SI, CI, 0, 8, 1), InvalidReason::IcmpNoEntry);
}

#[test]
fn i04_timestamp_and_mask() {
    let mut h = H::new();
    query_reply(&mut h, (CI, SI), (13, 14), 1, 0);
    query_reply(&mut h, (CI, SI), (17, 18), 1, 0);
}

#[test]
fn i05_untrackable_types() {
    let mut h = H::new();
    h.invalid(&echo(CI, SI, 9, 0, 0), InvalidReason::IcmpNoEntry);
    h.invalid(&echo(CI, SI, 10, 0, 0), InvalidReason::IcmpNoEntry);
    h.invalid(&echo(CI, SI, 19, 0, 0), InvalidReason::IcmpBadType);
    h.invalid(&echo(CI, SI, 42, 0, 0), InvalidReason::IcmpBadType);
    assert_eq!(h.t.len(), 0);
}

#[test]
fn i06_port_unreachable_from_server() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.go(&u);
    let t = h.go(&icmp_err(SI, CI, 3, 3, &u, 1000));
    expect(&t, Rel, None);
    assert_eq!(t.dir, Direction::Reply);
    assert!(!t.candidate);
}

#[test]
fn i07_time_exceeded_from_router() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.go(&u);
    h.check(&icmp_err(RI, CI, 11, 0, &u, 28), Rel, None);
}

#[test]
fn i08_outer_destination_mismatch() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.go(&u);
    h.invalid(
        &icmp_err(RI, XI, 11, 0, &u, 28),
        InvalidReason::IcmpErrorSpoofed,
    );
}

#[test]
fn i09_error_about_unknown_flow() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.invalid(
        &icmp_err(RI, CI, 3, 3, &u, 28),
        InvalidReason::IcmpErrorNoEntry,
    );
}

#[test]
fn i10_frag_needed_for_tcp() {
    let mut h = H::new();
    hs(&mut h);
    h.adv(3.0);
    let t = h.go(&icmp_err(RI, CI, 3, 4, &syn(), 28));
    expect(&t, Rel, Some(TS::Established));
    assert_eq!(h.secs(&syn()), 431_997);
    assert_eq!(h.view(&syn()).unwrap().tcp_state, Some(TS::Established));
}

#[test]
fn i11_error_about_echo() {
    let mut h = H::new();
    let e = echo(CI, SI, 8, 7, 1);
    h.go(&e);
    h.check(&icmp_err(RI, CI, 11, 0, &e, 28), Rel, None);
}

#[test]
fn i12_inner_fragment() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.go(&u);
    let mut inner = u.clone();
    inner[20..22].copy_from_slice(&1u16.to_be_bytes()); // fragment offset 1
    fix_ip_csum(&mut inner);
    h.invalid(
        &icmp_err(RI, CI, 11, 0, &inner, 28),
        InvalidReason::IcmpErrorInner,
    );
}

#[test]
fn i13_error_from_originator_about_reply() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.go(&u);
    let r = udp(US, UC);
    h.check(&r, Est, None);
    let t = h.go(&icmp_err(CI, SI, 3, 3, &r, 28));
    expect(&t, Rel, None);
    assert_eq!(t.dir, Direction::Original);
}

#[test]
fn i14_bad_icmp_checksum() {
    let mut h = H::new();
    let mut e = echo(CI, SI, 8, 7, 1);
    e[14 + 20 + 2] ^= 0x40;
    h.invalid(&e, InvalidReason::IcmpBadChecksum);
}

#[test]
fn i15_error_quoting_error() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.go(&u);
    let e1 = icmp_err(SI, CI, 3, 3, &u, 28);
    h.invalid(
        &icmp_err(RI, SI, 3, 1, &e1, 56),
        InvalidReason::IcmpErrorInner,
    );
}

#[test]
fn i16_icmpv4_in_ipv6() {
    let mut h = H::new();
    let body = [8u8, 0, 0xf7, 0xf8, 0, 7, 0, 0];
    let f = PacketSpec::new(
        ip("2001:db8::1"),
        ip("2001:db8::2"),
        L4Spec::Raw { proto: 1 },
    )
    .payload(&body)
    .to_vec();
    h.invalid(&f, InvalidReason::IcmpWrongFamily);
}

#[test]
fn v01_nd_and_mld_untracked() {
    let mut h = H::new();
    for ty in [135u8, 136, 133, 134, 130, 131, 132, 143] {
        let f = PacketSpec::icmp(ip(C6I), ip(S6I), ty, 0, [0; 4])
            .payload(&[0; 16])
            .to_vec();
        h.check(&f, Untr, None);
    }
    assert_eq!(h.t.len(), 0);
}

#[test]
fn v02_echo_and_node_info() {
    let mut h = H::new();
    query_reply(&mut h, (C6I, S6I), (128, 129), 1, 1);
    query_reply(&mut h, (C6I, S6I), (139, 140), 2, 0);
}

#[test]
fn v03_icmpv6_invalid_firsts() {
    let mut h = H::new();
    h.invalid(&echo(S6I, C6I, 129, 1, 1), InvalidReason::IcmpNoEntry);
    h.invalid(&echo(S6I, C6I, 137, 0, 0), InvalidReason::IcmpNoEntry);
    h.invalid(&echo(S6I, C6I, 138, 0, 0), InvalidReason::IcmpNoEntry);
}

#[test]
fn v04_packet_too_big() {
    let mut h = H::new();
    let s = tcp(C6, S6, SYN, 1000, 0);
    h.go(&s);
    h.go(&tcp(S6, C6, SYN | ACK, 5000, 1001));
    h.go(&tcp(C6, S6, ACK, 1001, 5001));
    let t = h.go(&icmp_err(R6I, C6I, 2, 0, &s, 48));
    expect(&t, Rel, Some(TS::Established));
    assert_eq!(t.dir, Direction::Reply);
}

#[test]
fn v05_ipv6_non_first_fragment() {
    let mut h = H::new();
    let mut body = vec![17u8, 0];
    body.extend_from_slice(&(100u16 << 3).to_be_bytes());
    body.extend_from_slice(&1234u32.to_be_bytes());
    body.extend_from_slice(&[0xaa; 16]);
    let f = PacketSpec::new(ip(C6I), ip(S6I), L4Spec::Raw { proto: 44 })
        .payload(&body)
        .to_vec();
    h.invalid(&f, InvalidReason::Fragment);
    // IPv4 likewise.
    let mut f = udp(UC, US);
    f[20..22].copy_from_slice(&0x0010u16.to_be_bytes());
    fix_ip_csum(&mut f);
    h.invalid(&f, InvalidReason::Fragment);
}

// ----- generic, NOTRACK ---------------------------------------------------------------

fn esp(src: &str, dst: &str, spi: u32) -> Vec<u8> {
    let mut body = spi.to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 12]);
    PacketSpec::new(ip(src), ip(dst), L4Spec::Raw { proto: 50 })
        .payload(&body)
        .to_vec()
}

#[test]
fn g01_esp_shares_one_entry() {
    let mut h = H::new();
    let a = esp(CI, SI, 1);
    h.check(&a, New, None);
    assert_eq!(h.secs(&a), 600);
    h.check(&esp(SI, CI, 2), Est, None);
    h.check(&esp(CI, SI, 3), Est, None);
    assert_eq!(h.t.len(), 1);
    assert!(h
        .view(&a)
        .unwrap()
        .conntrack_line()
        .starts_with("unknown  50 600 src=10.0.0.1"));
}

#[test]
fn n01_notrack_both_ways() {
    let mut h = H::new();
    expect(&h.notrack(&udp(UC, US)), Untr, None);
    expect(&h.notrack(&udp(US, UC)), Untr, None);
    assert_eq!(h.t.len(), 0);
    assert_eq!(h.t.stats()[CtCounter::Ignore], 2);
}

#[test]
fn n02_notrack_one_way() {
    let mut h = H::new();
    expect(&h.notrack(&udp(UC, US)), Untr, None);
    let t = h.go(&udp(US, UC));
    expect(&t, New, None);
    assert_eq!(h.t.len(), 1);
}

#[test]
fn n03_error_about_untracked_flow() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.notrack(&u);
    h.notrack(&udp(US, UC));
    h.invalid(
        &icmp_err(RI, CI, 3, 3, &u, 28),
        InvalidReason::IcmpErrorNoEntry,
    );
}
