//! Rewriting addresses and ports in place, for NAT, with incremental checksum updates
//! (RFC 1624: `HC' = ~(~HC + ~m + m')`): the IPv4 header checksum, TCP, UDP (a zero
//! UDP checksum over IPv4 stays zero: "no checksum"), ICMP (the echo id) and ICMPv6
//! (whose pseudo-header holds the addresses). An ICMP/ICMPv6 error about a translated
//! flow gets its outer addresses and the quoted packet's header translated, and its
//! own checksum recomputed over the (short) message, as Linux's
//! `nf_nat_icmp_reply_translation` does.
//!
//! Pure functions over `&mut [u8]` and the packet's [`Parsed`] summary (taken before
//! the rewrite); nothing allocates.

use super::checksum::{fold, pseudo_header_sum, sum};
use super::{proto, Addr, Family, Parsed, L4};

/// A new (address, port) for one end of a packet. The port is ignored for protocols
/// without ports; for an ICMP query it is the identifier.
pub type End = (Addr, u16);

#[inline]
pub(super) fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(super) fn wr16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Adds to a running one's-complement sum the change of a 16-bit-aligned field from
/// `old` to `new` (both of even length): `~m + m'` per word.
#[inline]
fn delta(acc: u32, old: &[u8], new: &[u8]) -> u32 {
    let mut a = acc;
    for i in (0..old.len()).step_by(2) {
        a += u32::from(!rd16(old, i)) + u32::from(rd16(new, i));
    }
    a
}

/// [`delta`] of one 16-bit field.
#[inline]
fn delta16(acc: u32, old: u16, new: u16) -> u32 {
    acc + u32::from(!old) + u32::from(new)
}

/// RFC 1624 eqn. 3: the checksum `hc` after a change whose [`delta`] is `d`.
#[inline]
fn apply_delta(hc: u16, d: u32) -> u16 {
    fold(u32::from(!hc) + d)
}

/// The address bytes of a family in the [`Addr`] layout.
#[inline]
fn addr_bytes(f: Family, a: &Addr) -> &[u8] {
    match f {
        Family::V4 => &a[..4],
        Family::V6 => &a[..],
    }
}

/// Offsets of the source and destination addresses in an IP header of family `f`.
#[inline]
fn addr_offs(f: Family) -> (usize, usize, usize) {
    match f {
        Family::V4 => (12, 16, 4),
        Family::V6 => (8, 24, 16),
    }
}

/// Writes the new source and/or destination into the IP header at `l3` (fixing the
/// IPv4 header checksum) and returns the pseudo-header [`delta`] for the L4 checksum.
fn rewrite_ip(
    frame: &mut [u8],
    f: Family,
    l3: usize,
    src: Option<&Addr>,
    dst: Option<&Addr>,
) -> u32 {
    if f == Family::V4 {
        return rewrite_ipv4(frame, l3, src, dst);
    }
    let (so, dof, n) = addr_offs(f);
    let mut d = 0u32;
    for (off, new) in [(so, src), (dof, dst)] {
        let Some(new) = new else { continue };
        let at = l3 + off;
        let nb = addr_bytes(f, new);
        let mut old = [0u8; 16];
        old[..n].copy_from_slice(&frame[at..at + n]);
        d = delta(d, &old[..n], nb);
        frame[at..at + n].copy_from_slice(nb);
    }
    if f == Family::V4 && d != 0 {
        let c = rd16(frame, l3 + 10);
        wr16(frame, l3 + 10, apply_delta(c, d));
    }
    d
}

/// [`rewrite_ip`] for IPv4, a word at a time (the per-packet NAT path).
#[inline]
fn rewrite_ipv4(frame: &mut [u8], l3: usize, src: Option<&Addr>, dst: Option<&Addr>) -> u32 {
    let mut d = 0u32;
    for (off, new) in [(12, src), (16, dst)] {
        let Some(new) = new else { continue };
        let at = l3 + off;
        let field = &mut frame[at..at + 4];
        let o = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
        let n = u32::from_be_bytes([new[0], new[1], new[2], new[3]]);
        d += (!(o >> 16) & 0xffff) + (!o & 0xffff) + (n >> 16) + (n & 0xffff);
        field.copy_from_slice(&n.to_be_bytes());
    }
    if d != 0 {
        let c = rd16(frame, l3 + 10);
        wr16(frame, l3 + 10, apply_delta(c, d));
    }
    d
}

/// Rewrites a (non-error) packet in place: the source end to `src`, the destination end
/// to `dst`, whichever are given; checksums updated incrementally. A non-first fragment
/// gets its addresses only (its L4 header is in the first fragment). ICMP/ICMPv6 echo
/// (and the other query types): the identifier becomes `src`'s port when `src` is
/// given, else `dst`'s port.
pub fn rewrite(frame: &mut [u8], p: &Parsed, src: Option<End>, dst: Option<End>) {
    let l3 = p.l3_off as usize;
    let l4 = p.l4_off as usize;
    let f = p.family;
    let pd = rewrite_ip(
        frame,
        f,
        l3,
        src.as_ref().map(|x| &x.0),
        dst.as_ref().map(|x| &x.0),
    );
    // The first fragment of a TCP/UDP datagram holds the L4 header (the parser may call
    // it malformed: its length field covers the whole datagram); the checksum covers
    // the whole datagram, so the incremental update is right on the first fragment.
    let first_frag =
        p.frag.is_fragment() && p.frag.offset == 0 && matches!(p.proto, proto::TCP | proto::UDP);
    match p.l4 {
        _ if first_frag || matches!(p.l4, L4::Tcp(_) | L4::Udp(_)) => {
            let csum_at = if p.proto == proto::TCP {
                l4 + 16
            } else {
                l4 + 6
            };
            if frame.len() < csum_at + 2 {
                return;
            }
            let mut d = pd;
            for (at, new) in [(l4, src), (l4 + 2, dst)] {
                if let Some((_, port)) = new {
                    let old = rd16(frame, at);
                    d = delta16(d, old, port);
                    wr16(frame, at, port);
                }
            }
            let c = rd16(frame, csum_at);
            if p.proto == proto::UDP && c == 0 {
                if f == Family::V4 || first_frag {
                    return; // no checksum: stays so
                }
                // IPv6 forbids a zero UDP checksum: write the real one.
                let end = (p.ip_end as usize).min(frame.len());
                let ps = pseudo_header_sum(&frame[l3..], false, p.proto, (end - l4) as u32);
                let v = fold(sum(&frame[l4..end], ps));
                wr16(frame, csum_at, if v == 0 { 0xffff } else { v });
                return;
            }
            let mut v = apply_delta(c, d);
            if matches!(p.proto, proto::UDP | proto::UDPLITE) && v == 0 {
                v = 0xffff;
            }
            wr16(frame, csum_at, v);
        }
        L4::Icmp(i) if !i.is_error() => {
            // ICMPv4's checksum has no pseudo-header; ICMPv6's has.
            let mut d = if i.v6 { pd } else { 0 };
            if let Some(id) = src.or(dst).map(|x| x.1) {
                let old = rd16(frame, l4 + 4);
                d = delta16(d, old, id);
                wr16(frame, l4 + 4, id);
            }
            let c = rd16(frame, l4 + 2);
            wr16(frame, l4 + 2, apply_delta(c, d));
        }
        _ => {}
    }
}

/// Translates an ICMP/ICMPv6 error about a NATed flow: the outer addresses (`outer_src`,
/// `outer_dst`) and the quoted packet's ends (`inner_src`, `inner_dst`: addresses and
/// ports, or the echo id), the quoted headers' checksums updated incrementally (as far
/// as they are quoted) and the error's own checksum recomputed over the message.
/// Returns false (and changes nothing) when the quote cannot be parsed.
pub fn rewrite_icmp_error(
    frame: &mut [u8],
    p: &Parsed,
    outer_src: Option<&Addr>,
    outer_dst: Option<&Addr>,
    inner_src: Option<End>,
    inner_dst: Option<End>,
) -> bool {
    let Some(q) = super::quoted(frame, p) else {
        return false;
    };
    let l3 = p.l3_off as usize;
    let l4 = p.l4_off as usize;
    let end = (p.ip_end as usize).min(frame.len());
    rewrite_ip(frame, p.family, l3, outer_src, outer_dst);
    // The quoted packet: its own header checksum and L4 checksum, where quoted.
    let ql3 = q.l3_off as usize;
    let ql4 = q.l4_off as usize;
    let pd = rewrite_ip(
        frame,
        q.family,
        ql3,
        inner_src.as_ref().map(|x| &x.0),
        inner_dst.as_ref().map(|x| &x.0),
    );
    let avail = end;
    match q.l4 {
        L4::Tcp(_) | L4::Udp(_) => {
            let mut d = pd;
            for (at, new) in [(ql4, inner_src), (ql4 + 2, inner_dst)] {
                if let Some((_, port)) = new {
                    if at + 2 <= avail {
                        let old = rd16(frame, at);
                        d = delta16(d, old, port);
                        wr16(frame, at, port);
                    }
                }
            }
            let csum_at = if q.proto == proto::TCP {
                ql4 + 16
            } else {
                ql4 + 6
            };
            if csum_at + 2 <= avail {
                let c = rd16(frame, csum_at);
                if !(q.proto == proto::UDP && c == 0) {
                    let mut v = apply_delta(c, d);
                    if q.proto == proto::UDP && v == 0 {
                        v = 0xffff;
                    }
                    wr16(frame, csum_at, v);
                }
            }
        }
        L4::Icmp(i) if !i.is_error() && ql4 + 6 <= avail => {
            let mut d = if i.v6 { pd } else { 0 };
            if let Some(id) = inner_src.or(inner_dst).map(|x| x.1) {
                let old = rd16(frame, ql4 + 4);
                d = delta16(d, old, id);
                wr16(frame, ql4 + 4, id);
            }
            let c = rd16(frame, ql4 + 2);
            wr16(frame, ql4 + 2, apply_delta(c, d));
        }
        _ => {}
    }
    // The error's own checksum, over the whole (translated) message.
    wr16(frame, l4 + 2, 0);
    let v6 = p.family == Family::V6;
    let init = if v6 {
        pseudo_header_sum(&frame[l3..], false, proto::ICMPV6, (end - l4) as u32)
    } else {
        0
    };
    let c = fold(sum(&frame[l4..end], init));
    wr16(frame, l4 + 2, c);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::build::PacketSpec;
    use crate::packet::checksum::{ipv4_header_ok, l4_ok};

    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    use crate::packet::parsed_ip as parsed;

    fn addr(ip: IpAddr) -> Addr {
        let mut a = [0u8; 16];
        match ip {
            IpAddr::V4(v) => a[..4].copy_from_slice(&v.octets()),
            IpAddr::V6(v) => a = v.octets(),
        }
        a
    }

    /// Rewrites `f` and checks it against the same packet built from scratch with the
    /// new tuple (so every checksum is a full recompute).
    fn check(
        f: Vec<u8>,
        build: impl Fn(IpAddr, u16, IpAddr, u16) -> Vec<u8>,
        s: (IpAddr, u16),
        d: (IpAddr, u16),
        set_src: bool,
        set_dst: bool,
    ) {
        let p = parsed(&f);
        let mut g = f.clone();
        rewrite(
            &mut g,
            &p,
            set_src.then(|| (addr(s.0), s.1)),
            set_dst.then(|| (addr(d.0), d.1)),
        );
        let q = parsed(&g);
        assert!(ipv4_header_ok(&g, &q));
        assert!(l4_ok(&g, &q), "L4 checksum after rewrite");
        let want = build(s.0, s.1, d.0, d.1);
        assert_eq!(g, want);
    }

    fn v4() -> impl Strategy<Value = IpAddr> {
        any::<u32>().prop_map(|x| IpAddr::V4(Ipv4Addr::from(x)))
    }
    fn v6() -> impl Strategy<Value = IpAddr> {
        any::<u128>().prop_map(|x| IpAddr::V6(Ipv6Addr::from(x)))
    }

    proptest! {
        #[test]
        fn tcp_udp_v4_rewrite_equals_full_recompute(
            a in v4(), b in v4(), c in v4(), d in v4(),
            pa in any::<u16>(), pb in any::<u16>(), pc in any::<u16>(), pd in any::<u16>(),
            ss in any::<bool>(), sd in any::<bool>(), payload in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let (ns, nd) = (if ss { (c, pc) } else { (a, pa) }, if sd { (d, pd) } else { (b, pb) });
            let pl = payload.clone();
            let bt = move |s: IpAddr, sp: u16, d: IpAddr, dp: u16| {
                PacketSpec::tcp(SocketAddr::new(s, sp), SocketAddr::new(d, dp), 0x18, 7, 9).payload(&pl).to_vec()
            };
            check(bt(a, pa, b, pb), &bt, ns, nd, ss, sd);
            let pl = payload.clone();
            let bu = move |s: IpAddr, sp: u16, d: IpAddr, dp: u16| {
                PacketSpec::udp(SocketAddr::new(s, sp), SocketAddr::new(d, dp)).payload(&pl).to_vec()
            };
            check(bu(a, pa, b, pb), &bu, ns, nd, ss, sd);
        }

        #[test]
        fn tcp_udp_icmp_v6_rewrite_equals_full_recompute(
            a in v6(), b in v6(), c in v6(), d in v6(),
            pa in any::<u16>(), pb in any::<u16>(), pc in any::<u16>(), pd in any::<u16>(),
            ss in any::<bool>(), sd in any::<bool>(),
        ) {
            let (ns, nd) = (if ss { (c, pc) } else { (a, pa) }, if sd { (d, pd) } else { (b, pb) });
            let bt = |s: IpAddr, sp: u16, d: IpAddr, dp: u16| {
                PacketSpec::tcp(SocketAddr::new(s, sp), SocketAddr::new(d, dp), 0x02, 7, 0).to_vec()
            };
            check(bt(a, pa, b, pb), bt, ns, nd, ss, sd);
            let bu = |s: IpAddr, sp: u16, d: IpAddr, dp: u16| {
                PacketSpec::udp(SocketAddr::new(s, sp), SocketAddr::new(d, dp)).payload(b"x").to_vec()
            };
            check(bu(a, pa, b, pb), bu, ns, nd, ss, sd);
            // ICMPv6 echo: the id follows the source end's port.
            let id = if ss { pc } else if sd { pd } else { pa };
            let be = move |s: IpAddr, _: u16, d: IpAddr, _: u16| {
                PacketSpec::icmp_echo(s, d, 128, id, 3).to_vec()
            };
            let f = PacketSpec::icmp_echo(a, b, 128, pa, 3).to_vec();
            let p = parsed(&f);
            let mut g = f.clone();
            rewrite(&mut g, &p, ss.then(|| (addr(c), pc)), sd.then(|| (addr(d), pd)));
            prop_assert!(l4_ok(&g, &parsed(&g)));
            prop_assert_eq!(g, be(ns.0, 0, nd.0, 0));
        }

        #[test]
        fn icmp_v4_echo_id_rewrite(a in v4(), b in v4(), c in v4(), id in any::<u16>(), nid in any::<u16>()) {
            let f = PacketSpec::icmp_echo(a, b, 8, id, 1).to_vec();
            let p = parsed(&f);
            let mut g = f.clone();
            rewrite(&mut g, &p, Some((addr(c), nid)), None);
            let q = parsed(&g);
            prop_assert!(ipv4_header_ok(&g, &q));
            prop_assert!(l4_ok(&g, &q));
            prop_assert_eq!(g, PacketSpec::icmp_echo(c, b, 8, nid, 1).to_vec());
        }
    }

    #[test]
    fn zero_udp_checksum_stays_zero_over_ipv4() {
        let mut f = PacketSpec::udp(
            "10.0.0.1:1000".parse().unwrap(),
            "10.0.0.2:53".parse().unwrap(),
        )
        .payload(b"q")
        .to_vec();
        let p = parsed(&f);
        let at = p.l4_off as usize + 6;
        f[at] = 0;
        f[at + 1] = 0;
        let mut g = f.clone();
        rewrite(
            &mut g,
            &p,
            Some((addr("192.0.2.1".parse().unwrap()), 40000)),
            None,
        );
        assert_eq!(&g[at..at + 2], &[0, 0]);
        assert!(ipv4_header_ok(&g, &parsed(&g)));
        assert_eq!(&g[26..30], &[192, 0, 2, 1]);
    }

    #[test]
    fn icmp_error_outer_and_quoted_packet_translated() {
        // The quoted packet left as 192.0.2.1:40000 -> 8.8.8.8:53 (after SNAT); the
        // error comes back from a router to 192.0.2.1 and must reach 10.0.0.2:1234.
        let inner = PacketSpec::udp(
            "192.0.2.1:40000".parse().unwrap(),
            "8.8.8.8:53".parse().unwrap(),
        )
        .payload(b"query")
        .to_vec();
        let q = &inner[14..];
        let f = PacketSpec::icmp(
            "203.0.113.9".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
            3,
            3,
            [0; 4],
        )
        .payload(q)
        .to_vec();
        let p = parsed(&f);
        let mut g = f.clone();
        let inside = addr("10.0.0.2".parse().unwrap());
        assert!(rewrite_icmp_error(
            &mut g,
            &p,
            None,
            Some(&inside),
            Some((inside, 1234)),
            None
        ));
        let inner_want = PacketSpec::udp(
            "10.0.0.2:1234".parse().unwrap(),
            "8.8.8.8:53".parse().unwrap(),
        )
        .payload(b"query")
        .to_vec();
        let want = PacketSpec::icmp(
            "203.0.113.9".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            3,
            3,
            [0; 4],
        )
        .payload(&inner_want[14..])
        .to_vec();
        assert_eq!(g, want);
        let gp = parsed(&g);
        assert!(ipv4_header_ok(&g, &gp));
        assert!(l4_ok(&g, &gp));
    }
}
