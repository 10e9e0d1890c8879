//! Steering: which queue, and so which worker, owns a packet's connection.
//!
//! Every packet of a flow must meet the worker that owns the flow's conntrack entry.
//! Ports place packets (pktgen by [`symmetric_hash`], af_packet by the classic-BPF
//! program of [`fanout`], a NIC by the RSS that [`rss`] models); workers evaluate the
//! same functions in software to find the owner of what a port could not place: an
//! ICMP error belongs to the flow it quotes ([`crate::packet::quoted`]), a reassembled
//! datagram to the flow of its ports.
//!
//! Layering: `steer` stands on [`crate::packet`] only; ports and the worker stand on it.
//! Everything here is a pure function of the frame: no allocation, no lock.

pub mod fanout;
pub mod rss;

use crate::packet::{self, Frame, Parsed, L4};

/// A steering function that workers can evaluate in software: given a whole packet,
/// the queue (and so the worker) that owns its connection.
///
/// Every packet of a flow must meet the worker that owns the flow's conntrack entry.
/// A port steers by some hash of the packet; where the workers know that hash they only
/// need to check the packets it cannot place (an ICMP error belongs to the flow it
/// quotes, a reassembled datagram to the flow of its ports, not to the addresses its
/// fragments were steered by). Where they do not know it, they check every packet
/// against one model and hand the strays to their owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steering {
    /// `queue_of(symmetric_hash(tuple))`, ICMP errors by the quoted tuple: the pktgen
    /// backend's placement.
    Symmetric,
    /// `steer_hash(frame) % queues`: af_packet's classic-BPF fanout program
    /// ([`fanout`]).
    Fanout,
    /// A NIC's RSS with the symmetric Toeplitz key and a RETA of `i % queues`
    /// ([`rss::RssModel`]): the DPDK backend's configuration.
    Rss(rss::RssModel),
}

impl Steering {
    /// The queue, of `queues`, that owns the connection of the whole (not fragmented)
    /// packet `p` parsed from `frame`.
    #[inline]
    pub fn owner(self, frame: &[u8], p: &Parsed, queues: u16) -> u16 {
        match self {
            Steering::Symmetric => queue_of(owner_hash(frame, p), queues),
            Steering::Fanout => {
                (fanout::steer_hash_parsed(frame, p) % u32::from(queues.max(1))) as u16
            }
            Steering::Rss(m) => m.owner(frame, p, queues),
        }
    }
}

impl Steering {
    /// The queue, of `queues`, that owns the connection whose packets travel as this
    /// tuple (ICMP queries: the identifier as both ports). NAT asks it of a reply tuple
    /// before any packet has carried it, to pick one that lands on its own worker.
    pub fn owner_of_tuple(
        self,
        family: packet::Family,
        proto: u8,
        src: &[u8; 16],
        dst: &[u8; 16],
        (sport, dport): (u16, u16),
        queues: u16,
    ) -> u16 {
        let has_ports = matches!(proto, 6 | 17 | 1 | 58);
        let (sp, dp) = if has_ports { (sport, dport) } else { (0, 0) };
        match self {
            Steering::Symmetric => queue_of(symmetric_hash(src, dst, sp, dp, proto), queues),
            Steering::Fanout => {
                (fanout::steer_hash_tuple(family, proto, src, dst, sp, dp)
                    % u32::from(queues.max(1))) as u16
            }
            Steering::Rss(m) => {
                let l4 = matches!(proto, 6 | 17).then_some((proto, sp, dp));
                m.queue(m.hash_tuple(family, src, dst, l4), queues)
            }
        }
    }
}

/// The ports of `p`'s tuple as the steering hashes take them: TCP and UDP ports, the
/// identifier of an ICMP/ICMPv6 query as both ports, 0s for everything else.
#[inline]
fn hash_ports(p: &Parsed) -> (u16, u16) {
    match p.l4 {
        L4::Tcp(t) => (t.sport, t.dport),
        L4::Udp(u) => (u.sport, u.dport),
        L4::Icmp(i) if !i.is_error() => (i.id, i.id),
        _ => (0, 0),
    }
}

/// The [`symmetric_hash`] of `p`'s own tuple.
#[inline]
fn tuple_hash(p: &Parsed) -> u32 {
    let (sp, dp) = hash_ports(p);
    symmetric_hash(&p.src, &p.dst, sp, dp, p.proto)
}

/// The hash that decides which worker owns a packet's connection: the [`symmetric_hash`]
/// (as the pktgen backend and [`frame_hash`] compute it) of the tuple of the packet that
/// owns it ([`crate::packet::quoted`]: the quoted packet of an ICMP/ICMPv6 error, else
/// the packet itself).
pub fn owner_hash(frame: &[u8], p: &Parsed) -> u32 {
    let quoted = packet::quoted(frame, p);
    tuple_hash(quoted.as_ref().unwrap_or(p))
}

/// A steering hash of a flow that is the same for both directions: a pure function of
/// the tuple with `(src, sport)` and `(dst, dport)` put in a canonical order first.
///
/// Addresses use the [`crate::packet::Addr`] layout (IPv4 in bytes 0..4, rest zero). For
/// ICMP echo, pass the identifier as both ports; for protocols without ports, pass 0s.
/// The mixer is a 64-bit multiply-xorshift over the ordered words; take `% queues`
/// (or a multiply-shift) to pick a queue.
#[inline]
pub fn symmetric_hash(src: &[u8; 16], dst: &[u8; 16], sport: u16, dport: u16, proto: u8) -> u32 {
    let (a, pa, b, pb) = if (src, sport) <= (dst, dport) {
        (src, sport, dst, dport)
    } else {
        (dst, dport, src, sport)
    };
    let w = |x: &[u8; 16], i: usize| {
        u64::from_le_bytes([
            x[i],
            x[i + 1],
            x[i + 2],
            x[i + 3],
            x[i + 4],
            x[i + 5],
            x[i + 6],
            x[i + 7],
        ])
    };
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(proto);
    for v in [
        w(a, 0),
        w(a, 8),
        w(b, 0),
        w(b, 8),
        (u64::from(pa) << 16) | u64::from(pb),
    ] {
        h = (h ^ v).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
    }
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 29;
    (h >> 32) as u32
}

/// The [`symmetric_hash`] of a frame's IP tuple (0 for non-IP or unparsable frames).
/// ICMP echo messages use their identifier as both ports.
pub fn frame_hash(frame: &[u8]) -> u32 {
    match packet::parse(frame) {
        Ok(Frame::Ip(p)) => tuple_hash(&p),
        _ => 0,
    }
}

/// Picks a queue from a hash (multiply-shift: uniform, no division).
#[inline]
pub fn queue_of(hash: u32, queues: u16) -> u16 {
    ((u64::from(hash) * u64::from(queues.max(1))) >> 32) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut x = [0u8; 16];
        x[..4].copy_from_slice(&a);
        x
    }

    #[test]
    fn symmetric_hash_is_symmetric_and_spreads() {
        let mut per_q = [0u32; 4];
        for i in 0..4000u32 {
            let s = v4([10, 0, (i >> 8) as u8, i as u8]);
            let d = v4([192, 168, 1, (i % 7) as u8]);
            let sp = 1024 + (i as u16);
            let h1 = symmetric_hash(&s, &d, sp, 80, 6);
            let h2 = symmetric_hash(&d, &s, 80, sp, 6);
            assert_eq!(h1, h2);
            per_q[queue_of(h1, 4) as usize] += 1;
        }
        for c in per_q {
            assert!((800..1200).contains(&c), "{per_q:?}");
        }
        // Different protocol, different hash (almost surely).
        let s = v4([1, 2, 3, 4]);
        let d = v4([5, 6, 7, 8]);
        assert_ne!(
            symmetric_hash(&s, &d, 1, 2, 6),
            symmetric_hash(&s, &d, 1, 2, 17)
        );
        // Swapping only the ports is a different flow.
        assert_ne!(
            symmetric_hash(&s, &d, 1, 2, 6),
            symmetric_hash(&s, &d, 2, 1, 6)
        );
    }
}

#[cfg(test)]
mod tuple_owner_tests {
    use super::*;
    use crate::packet::build::PacketSpec;
    use crate::packet::Frame;

    /// The owner of a tuple is the owner of a packet carrying it, for every model.
    #[test]
    fn owner_of_tuple_matches_owner_of_packet() {
        let models = [
            Steering::Symmetric,
            Steering::Fanout,
            Steering::Rss(rss::RssModel {
                reta_size: 128,
                types: rss::RssTypes::from_dpdk_rss_hf(u64::MAX),
            }),
        ];
        for i in 0..200u16 {
            let c: std::net::SocketAddr = format!("10.0.{}.{}:{}", i % 7, i % 251, 1024 + i * 13)
                .parse()
                .unwrap();
            let s: std::net::SocketAddr =
                format!("192.0.2.{}:{}", i % 200, 80 + i).parse().unwrap();
            let frames = [
                PacketSpec::tcp(c, s, 2, 1, 0).to_vec(),
                PacketSpec::udp(c, s).to_vec(),
                PacketSpec::icmp_echo(c.ip(), s.ip(), 8, i * 31, 1).to_vec(),
            ];
            for f in &frames {
                let Ok(Frame::Ip(p)) = packet::parse(f) else {
                    panic!()
                };
                let (sp, dp) = hash_ports(&p);
                for m in models {
                    for q in [2u16, 3, 4] {
                        assert_eq!(
                            m.owner(f, &p, q),
                            m.owner_of_tuple(p.family, p.proto, &p.src, &p.dst, (sp, dp), q),
                            "{m:?} {q} {p:?}"
                        );
                    }
                }
            }
        }
    }
}
