//! The canonical flow key: one key per connection, whichever direction a packet travels.
//!
//! * TCP/UDP: the two endpoints `(addr, port)` ordered so that `a <= b`;
//! * ICMP/ICMPv6 queries: `a` is the requester, `b` the responder, `port_a` the id and
//!   `port_b` the *request* type and the code (`type << 8 | code`). A request and its reply
//!   map to the same key, as Linux's ORIGINAL and REPLY tuples do; a request in the other
//!   direction (the responder pinging the requester) is another connection, as in Linux;
//! * other protocols: the ordered addresses and the protocol, ports zero.
//!
//! The hash of the key is therefore symmetric: both directions of a connection hash alike,
//! which is what worker steering needs.

use crate::packet::{proto, Addr, Family, Parsed, L4};

/// The ICMPv4 request -> reply type map (echo, timestamp, info, address mask).
pub(crate) fn icmp4_reply_of(ty: u8) -> Option<u8> {
    match ty {
        8 => Some(0),
        13 => Some(14),
        15 => Some(16),
        17 => Some(18),
        _ => None,
    }
}

/// The ICMPv4 reply -> request type map.
pub(crate) fn icmp4_request_of(ty: u8) -> Option<u8> {
    match ty {
        0 => Some(8),
        14 => Some(13),
        16 => Some(15),
        18 => Some(17),
        _ => None,
    }
}

/// The ICMPv6 request -> reply map (echo, node information).
pub(crate) fn icmp6_reply_of(ty: u8) -> Option<u8> {
    match ty {
        128 => Some(129),
        139 => Some(140),
        _ => None,
    }
}

/// The ICMPv6 reply -> request map.
pub(crate) fn icmp6_request_of(ty: u8) -> Option<u8> {
    match ty {
        129 => Some(128),
        140 => Some(139),
        _ => None,
    }
}

/// Whether an ICMP type is a request (`Some(true)`), a reply (`Some(false)`) or
/// neither (cannot be inverted: `None`).
pub(crate) fn icmp_role(v6: bool, ty: u8) -> Option<bool> {
    if v6 {
        if icmp6_reply_of(ty).is_some() {
            Some(true)
        } else if icmp6_request_of(ty).is_some() {
            Some(false)
        } else {
            None
        }
    } else if icmp4_reply_of(ty).is_some() {
        Some(true)
    } else if icmp4_request_of(ty).is_some() {
        Some(false)
    } else {
        None
    }
}

/// The canonical key of a connection (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Address family.
    pub family: Family,
    /// L4 protocol number.
    pub proto: u8,
    /// The lower endpoint's address (ICMP: the requester).
    pub a: Addr,
    /// The higher endpoint's address (ICMP: the responder).
    pub b: Addr,
    /// The lower endpoint's port (ICMP: the id; other protocols: 0).
    pub port_a: u16,
    /// The higher endpoint's port (ICMP: request type << 8 | code; other protocols: 0).
    pub port_b: u16,
}

impl FlowKey {
    /// The key of a TCP/UDP/generic connection from one of its tuples (either direction).
    /// Ports are ignored (zeroed) for protocols other than TCP and UDP.
    pub fn new(
        family: Family,
        proto_num: u8,
        src: Addr,
        sport: u16,
        dst: Addr,
        dport: u16,
    ) -> FlowKey {
        Self::ordered(family, proto_num, src, sport, dst, dport).0
    }

    /// The key of an ICMP/ICMPv6 query connection from one of its packets' tuples
    /// (request or reply); None for a type that has no request/reply pair.
    pub fn icmp(
        family: Family,
        src: Addr,
        dst: Addr,
        id: u16,
        ty: u8,
        code: u8,
    ) -> Option<FlowKey> {
        Self::icmp_dir(family, src, dst, id, ty, code).map(|x| x.0)
    }

    /// The key of a packet, or None when it has none (fragment, malformed L4, ICMP
    /// error or ICMP type without a request/reply pair).
    #[inline(always)]
    pub fn from_parsed(p: &Parsed) -> Option<FlowKey> {
        Self::of_parsed(p).map(|x| x.0)
    }

    /// Key plus "the packet's source is endpoint `a`".
    #[inline(always)]
    pub(crate) fn of_parsed(p: &Parsed) -> Option<(FlowKey, bool)> {
        match p.l4 {
            L4::Tcp(t) => Some(Self::ordered(
                p.family, p.proto, p.src, t.sport, p.dst, t.dport,
            )),
            L4::Udp(u) => Some(Self::ordered(
                p.family, p.proto, p.src, u.sport, p.dst, u.dport,
            )),
            L4::Icmp(i) => {
                if i.is_error() {
                    return None;
                }
                Self::icmp_dir(p.family, p.src, p.dst, i.id, i.ty, i.code)
            }
            L4::Sctp(s) => Some(Self::ordered(
                p.family, p.proto, p.src, s.sport, p.dst, s.dport,
            )),
            L4::Other => Some(Self::ordered(p.family, p.proto, p.src, 0, p.dst, 0)),
            L4::Fragment | L4::Malformed(_) => None,
        }
    }

    #[inline(always)]
    pub(crate) fn icmp_dir(
        family: Family,
        src: Addr,
        dst: Addr,
        id: u16,
        ty: u8,
        code: u8,
    ) -> Option<(FlowKey, bool)> {
        let v6 = family == Family::V6;
        let p = if v6 { proto::ICMPV6 } else { proto::ICMP };
        let request = icmp_role(v6, ty)?;
        let req_ty = if request {
            ty
        } else if v6 {
            icmp6_request_of(ty)?
        } else {
            icmp4_request_of(ty)?
        };
        let (a, b) = if request { (src, dst) } else { (dst, src) };
        Some((
            FlowKey {
                family,
                proto: p,
                a,
                b,
                port_a: id,
                port_b: (req_ty as u16) << 8 | code as u16,
            },
            request,
        ))
    }

    #[inline(always)]
    pub(crate) fn ordered(
        family: Family,
        proto_num: u8,
        src: Addr,
        sport: u16,
        dst: Addr,
        dport: u16,
    ) -> (FlowKey, bool) {
        let (sport, dport) = if matches!(
            proto_num,
            proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP
        ) {
            (sport, dport)
        } else {
            (0, 0)
        };
        // Big-endian u128 order is the byte-wise order of the addresses, in two
        // integer compares instead of a byte loop.
        let src_is_a = (u128::from_be_bytes(src), sport) <= (u128::from_be_bytes(dst), dport);
        let (a, pa, b, pb) = if src_is_a {
            (src, sport, dst, dport)
        } else {
            (dst, dport, src, sport)
        };
        (
            FlowKey {
                family,
                proto: proto_num,
                a,
                b,
                port_a: pa,
                port_b: pb,
            },
            src_is_a,
        )
    }

    /// True for ICMP/ICMPv6 keys (role-ordered rather than address-ordered).
    pub(crate) fn is_icmp(&self) -> bool {
        self.proto == proto::ICMP || self.proto == proto::ICMPV6
    }

    /// The 64-bit hash the table uses: the low 32 bits are [`FlowKey::symmetric_hash`]
    /// (worker steering), bits 32.. pick the bucket and bits 16..32 the fingerprint.
    #[inline(always)]
    pub(crate) fn hash64(&self) -> u64 {
        #[inline(always)]
        fn mix(h: u64, x: u64) -> u64 {
            let h = (h ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^ (h >> 29)
        }
        #[inline(always)]
        fn w(a: &Addr, i: usize) -> u64 {
            u64::from_le_bytes([
                a[i],
                a[i + 1],
                a[i + 2],
                a[i + 3],
                a[i + 4],
                a[i + 5],
                a[i + 6],
                a[i + 7],
            ])
        }
        let fam = (self.family == Family::V6) as u64;
        let mut h = 0x5157_4a11_c0de_f00d ^ (fam << 40 | (self.proto as u64) << 32);
        h = mix(h, (self.port_a as u64) << 16 | self.port_b as u64);
        h = mix(h, w(&self.a, 0));
        h = mix(h, w(&self.b, 0));
        if self.family == Family::V6 {
            h = mix(h, w(&self.a, 8));
            h = mix(h, w(&self.b, 8));
        }
        // murmur3 fmix64 finaliser
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    /// The symmetric hash: equal for both directions of a connection (worker steering).
    pub fn symmetric_hash(&self) -> u32 {
        self.hash64() as u32
    }
}
