//! REJECT replies, built as Linux's `nf_reject_ipv4.c` / `nf_reject_ipv6.c` build them,
//! into a caller's buffer (no allocation). The reply goes back out of the ingress port:
//! MAC addresses are swapped and the VLAN tags kept.

use crate::packet::build::{L4Spec, PacketSpec};
use crate::packet::{checksum, tcp_flags, to_ip, Family, Parsed, L4};

/// Hop limit / TTL of replies (the kernel's default `ip4_dst_hoplimit`/`ip6_dst_hoplimit`).
const REPLY_TTL: u8 = 64;

/// Bytes an ICMPv6 error may take at most (the IPv6 minimum MTU).
const ICMP6_MAX: usize = 1280;

fn bad_peer(p: &Parsed) -> bool {
    match p.family {
        Family::V4 => {
            let s = &p.src[..4];
            let d = &p.dst[..4];
            s == [0, 0, 0, 0] || s[0] >= 224 || d[0] >= 224 // multicast, reserved and limited broadcast
        }
        Family::V6 => p.src == [0; 16] || p.src[0] == 0xff || p.dst[0] == 0xff,
    }
}

/// Writes the REJECT reply for the packet `frame`/`parsed` into `out` and returns its
/// length, or None when no reply is due (as in Linux: no reply to a RST, to a non-first
/// fragment, to an ICMP error, to a packet with a bad checksum, to multicast or broadcast;
/// or when the kind does not fit the packet's family or protocol, or `out` is too small).
///
/// * `TcpReset`: if the offending segment has ACK, the RST's seq is its ack and the RST
///   has no ACK flag; otherwise seq 0, RST|ACK, ack = seq + payload + SYN + FIN.
/// * ICMP kinds: destination unreachable quoting the IP header and 8 bytes (IPv4), or as
///   much of the packet as fits in 1280 bytes (IPv6).
pub fn build_reject(
    kind: RejectKind,
    frame: &[u8],
    parsed: &Parsed,
    out: &mut [u8],
) -> Option<usize> {
    let p = parsed;
    let l3 = p.l3_off as usize;
    let end = p.ip_end as usize;
    if frame.len() < end || l3 < 14 || p.frag.offset != 0 || bad_peer(p) {
        return None;
    }
    let src = to_ip(p.family, &p.dst);
    let dst = to_ip(p.family, &p.src);
    let mut spec = match kind {
        RejectKind::TcpReset => {
            let L4::Tcp(t) = p.l4 else {
                return None;
            };
            if t.flags & tcp_flags::RST != 0 || !checksum::l4_ok(frame, p) {
                return None;
            }
            let (seq, ack, flags) = if t.flags & tcp_flags::ACK != 0 {
                (t.ack, 0, tcp_flags::RST)
            } else {
                let len = t.payload_len as u32
                    + (t.flags & tcp_flags::SYN != 0) as u32
                    + (t.flags & tcp_flags::FIN != 0) as u32;
                (0, t.seq.wrapping_add(len), tcp_flags::RST | tcp_flags::ACK)
            };
            PacketSpec::new(
                src,
                dst,
                L4Spec::Tcp {
                    sport: t.dport,
                    dport: t.sport,
                    seq,
                    ack,
                    flags,
                    window: 0,
                    options: &[],
                },
            )
        }
        icmp => {
            let (v6, code) = match icmp {
                RejectKind::IcmpNetUnreachable => (false, 0),
                RejectKind::IcmpHostUnreachable => (false, 1),
                RejectKind::IcmpProtoUnreachable => (false, 2),
                RejectKind::IcmpPortUnreachable => (false, 3),
                RejectKind::IcmpNetProhibited => (false, 9),
                RejectKind::IcmpHostProhibited => (false, 10),
                RejectKind::IcmpAdminProhibited => (false, 13),
                RejectKind::Icmp6NoRoute => (true, 0),
                RejectKind::Icmp6AdmProhibited => (true, 1),
                RejectKind::Icmp6AddrUnreachable => (true, 3),
                RejectKind::Icmp6PortUnreachable => (true, 4),
                RejectKind::TcpReset => unreachable!("handled above"),
            };
            if v6 != (p.family == Family::V6) {
                return None;
            }
            match p.l4 {
                L4::Icmp(i) if i.is_error() => return None,
                L4::Malformed(_)
                    if p.proto == crate::packet::proto::ICMP
                        || p.proto == crate::packet::proto::ICMPV6 =>
                {
                    return None
                }
                L4::Tcp(_) | L4::Udp(_) | L4::Icmp(_) if !checksum::l4_ok(frame, p) => return None,
                _ => {}
            }
            let ip_len = end - l3;
            let quote = if v6 {
                ip_len.min(ICMP6_MAX - 40 - 8)
            } else {
                ip_len.min(p.l4_off as usize - l3 + 8)
            };
            let ty = if v6 { 1 } else { 3 };
            PacketSpec::icmp(src, dst, ty, code, [0; 4]).payload(&frame[l3..l3 + quote])
        }
    };
    spec.ttl = REPLY_TTL;
    spec.src_mac.copy_from_slice(&frame[0..6]);
    spec.dst_mac.copy_from_slice(&frame[6..12]);
    // Written after room for the original's VLAN tags, which are then copied in front.
    let extra = l3 - 14;
    let n = spec.write(out.get_mut(extra..)?)?;
    out.copy_within(extra..extra + 12, 0);
    out[12..l3 - 2].copy_from_slice(&frame[12..l3 - 2]);
    Some(n + extra)
}

/// Which REJECT reply to send (`--reject-with`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectKind {
    /// ICMP destination unreachable, code 0.
    IcmpNetUnreachable,
    /// ICMP destination unreachable, code 1.
    IcmpHostUnreachable,
    /// ICMP destination unreachable, code 3 (the IPv4 default).
    IcmpPortUnreachable,
    /// ICMP destination unreachable, code 2.
    IcmpProtoUnreachable,
    /// ICMP destination unreachable, code 9.
    IcmpNetProhibited,
    /// ICMP destination unreachable, code 10.
    IcmpHostProhibited,
    /// ICMP destination unreachable, code 13.
    IcmpAdminProhibited,
    /// ICMPv6 destination unreachable, code 0 (`icmp6-no-route`, `no-route`).
    Icmp6NoRoute,
    /// ICMPv6 destination unreachable, code 1 (`icmp6-adm-prohibited`, `adm-prohibited`).
    Icmp6AdmProhibited,
    /// ICMPv6 destination unreachable, code 3 (`icmp6-addr-unreachable`, `addr-unreach`).
    Icmp6AddrUnreachable,
    /// ICMPv6 destination unreachable, code 4 (the IPv6 default).
    Icmp6PortUnreachable,
    /// A TCP RST (TCP rules only).
    TcpReset,
}

impl RejectKind {
    /// The `--reject-with` name as `iptables-save` prints it.
    pub fn name(self) -> &'static str {
        match self {
            RejectKind::IcmpNetUnreachable => "icmp-net-unreachable",
            RejectKind::IcmpHostUnreachable => "icmp-host-unreachable",
            RejectKind::IcmpPortUnreachable => "icmp-port-unreachable",
            RejectKind::IcmpProtoUnreachable => "icmp-proto-unreachable",
            RejectKind::IcmpNetProhibited => "icmp-net-prohibited",
            RejectKind::IcmpHostProhibited => "icmp-host-prohibited",
            RejectKind::IcmpAdminProhibited => "icmp-admin-prohibited",
            RejectKind::Icmp6NoRoute => "icmp6-no-route",
            RejectKind::Icmp6AdmProhibited => "icmp6-adm-prohibited",
            RejectKind::Icmp6AddrUnreachable => "icmp6-addr-unreachable",
            RejectKind::Icmp6PortUnreachable => "icmp6-port-unreachable",
            RejectKind::TcpReset => "tcp-reset",
        }
    }
}
