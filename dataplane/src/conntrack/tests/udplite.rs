//! UDP-Lite (`nf_conntrack_proto_udp.c`'s udplite part): ports in the tuple, the
//! checksum coverage checks, the checksum as the kernel verifies it, UDP's timeouts
//! without the two-second wait. The kernel's answers for the same cases are the
//! oracle's l01–l05 captures.

use super::*;
use crate::packet::checksum::{fold, pseudo_header_sum, sum};
use crate::packet::proto;

/// A UDP-Lite datagram `src` -> `dst` with `payload`, coverage field `cov`, and a
/// checksum computed over the coverage with `pseudo_proto` in the pseudo header
/// (17 is what the kernel checks; 136 is RFC 3828's).
fn lite(src: &str, dst: &str, payload: &[u8], cov: u16, pseudo_proto: u8) -> Vec<u8> {
    let mut f = PacketSpec::udp(sock(src), sock(dst))
        .payload(payload)
        .to_vec();
    let p = parsed(&f);
    let (l3, l4, end) = (p.l3_off as usize, p.l4_off as usize, p.ip_end as usize);
    let v4 = p.family == packet::Family::V4;
    if v4 {
        f[l3 + 9] = proto::UDPLITE;
        fix_ip_csum(&mut f);
    } else {
        f[l3 + 6] = proto::UDPLITE;
    }
    f[l4 + 4..l4 + 6].copy_from_slice(&cov.to_be_bytes());
    f[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
    let n = end - l4;
    let covered = if cov == 0 { n } else { (cov as usize).min(n) };
    let ps = pseudo_header_sum(&f[l3..], v4, pseudo_proto, n as u32);
    let c = match fold(sum(&f[l4..l4 + covered], ps)) {
        0 => 0xffff,
        c => c,
    };
    f[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    f
}

const LC: &str = "10.0.0.1:5004";
const LS: &str = "10.0.0.2:5005";

#[test]
fn l01_flow_ports_in_the_key_and_udp_timeouts() {
    let mut h = H::new();
    let q = lite(LC, LS, b"lite", 8, 17);
    let t = h.check(&q, New, None);
    assert_eq!(h.secs(&q), 30, "nf_conntrack_udp_timeout");
    assert!(t.tcp_state.is_none());
    h.adv(0.01);
    let t = h.go(&lite(LS, LC, b"lite", 0, 17));
    expect(&t, Est, None);
    assert!(!t.status.has(CtStatus::ASSURED));
    h.adv(0.01);
    // No two-second wait (UDP's stream_ts): the next packet after a reply assures.
    let t = h.go(&lite(LC, LS, b"lite", 12, 17));
    expect(&t, Est, None);
    assert!(t.status.has(CtStatus::ASSURED));
    assert_eq!(h.secs(&q), 120, "nf_conntrack_udp_timeout_stream");
    // Another source port is another connection.
    h.check(&lite("10.0.0.1:5006", LS, b"lite", 8, 17), New, None);
    let line = h.view(&q).unwrap().conntrack_line();
    assert!(
        line.starts_with("udplite  136 ")
            && line.contains(
                "sport=5004 dport=5005 src=10.0.0.2 dst=10.0.0.1 sport=5005 dport=5004 [ASSURED]"
            ),
        "{line}"
    );
}

#[test]
fn l02_bad_coverage_and_missing_checksum_are_invalid_even_unchecked() {
    for checksum in [true, false] {
        let mut h = H::cfg(Config {
            checksum,
            ..Config::default()
        });
        // 12-byte datagram: coverage 40 beyond it, 4 below the header.
        h.invalid(
            &lite(LC, LS, b"lite", 40, 17),
            InvalidReason::UdpLiteBadCoverage,
        );
        h.invalid(
            &lite(LC, LS, b"lite", 4, 17),
            InvalidReason::UdpLiteBadCoverage,
        );
        let mut z = lite(LC, LS, b"lite", 0, 17);
        let l4 = parsed(&z).l4_off as usize;
        z[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
        h.invalid(&z, InvalidReason::UdpLiteNoChecksum);
        // The coverage equal to the datagram, or 8, is fine.
        h.check(&lite(LC, LS, b"lite", 12, 17), New, None);
        // An ICMP error quoting a datagram that created nothing is INVALID.
        let bad = lite("10.0.0.1:5007", LS, b"lite", 40, 17);
        h.invalid(&bad, InvalidReason::UdpLiteBadCoverage);
        let e = icmp_err(SI, CI, 3, 3, &bad, 32);
        h.invalid(&e, InvalidReason::IcmpErrorNoEntry);
        assert_eq!(h.t.len(), 1);
    }
}

#[test]
fn l03_checksum_as_the_kernel_verifies_it() {
    let mut h = H::new();
    // The kernel puts IPPROTO_UDP in the pseudo header: an RFC 3828 checksum fails.
    h.invalid(
        &lite(LC, LS, b"lite", 0, 136),
        InvalidReason::UdpLiteBadChecksum,
    );
    let mut bad = lite(LC, LS, b"lite!", 0, 17);
    let n = bad.len();
    bad[n - 1] ^= 0x20;
    h.invalid(&bad, InvalidReason::UdpLiteBadChecksum);
    // Bytes beyond the coverage are not checked.
    let mut part = lite(LC, LS, b"lite!", 8, 17);
    let n = part.len();
    part[n - 1] ^= 0x20;
    h.check(&part, New, None);
    // A device-verified checksum is not checked again; checksum=0 checks nothing.
    let rfc = lite("10.0.0.1:5008", LS, b"lite", 0, 136);
    let t = h.run(
        &rfc,
        TrackOpts {
            l4_csum_ok: true,
            ..TrackOpts::default()
        },
        true,
    );
    expect(&t, New, None);
    let mut h = H::cfg(Config {
        checksum: false,
        ..Config::default()
    });
    h.check(&lite(LC, LS, b"lite", 0, 136), New, None);
}

#[test]
fn l04_ipv6_and_the_icmp_error_quoting_it_is_related() {
    let mut h = H::new();
    let q = lite("[2001:db8::1]:5004", "[2001:db8::2]:5005", b"lite", 8, 17);
    h.check(&q, New, None);
    h.check(
        &lite("[2001:db8::2]:5005", "[2001:db8::1]:5004", b"lite", 0, 17),
        Est,
        None,
    );
    h.invalid(
        &lite("[2001:db8::1]:5010", "[2001:db8::2]:5005", b"lite", 100, 17),
        InvalidReason::UdpLiteBadCoverage,
    );
    h.invalid(
        &lite("[2001:db8::1]:5011", "[2001:db8::2]:5005", b"lite", 8, 136),
        InvalidReason::UdpLiteBadChecksum,
    );
    let mut h = H::new();
    let q = lite(LC, LS, b"lite", 8, 17);
    h.check(&q, New, None);
    let e = icmp_err(SI, CI, 3, 3, &q, 32);
    let t = h.go(&e);
    expect(&t, Rel, None);
    assert_eq!(t.dir, Direction::Reply);
}

#[test]
fn udplite_header_cut_short_is_invalid_not_a_panic() {
    let mut h = H::new();
    let mut f = lite(LC, LS, b"", 8, 17);
    f.truncate(14 + 20 + 6);
    f[16..18].copy_from_slice(&26u16.to_be_bytes());
    fix_ip_csum(&mut f);
    h.invalid(&f, InvalidReason::Truncated);
}
