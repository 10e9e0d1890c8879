//! The Toeplitz hash of receive-side scaling (RSS), in software, so workers can tell
//! which queue a NIC puts a flow on.
//!
//! A NIC with RSS hashes each received packet's addresses (and ports, for TCP and UDP)
//! with the Toeplitz function under a secret key, and picks the queue from a
//! redirection table (RETA) indexed by the hash's low bits. With the key `0x6d5a`
//! repeated (see [`SYMMETRIC_KEY`]) the hash is the same for both directions of a flow:
//! the key repeats every 16 bits, and swapping source and destination moves every input
//! bit by a multiple of 16, so each set bit meets the same 32-bit window of the key.
//!
//! statewall's DPDK backend configures that key and a RETA of `i % queues`
//! ([`RssModel`]), so a worker can compute, for a packet the NIC placed by its outer
//! header (an ICMP error, a fragment), the queue of the flow it belongs to.
//!
//! The hash runs off a per-key table (one XOR of a precomputed 32-bit value per input
//! byte: 12 lookups for an IPv4 TCP tuple, 36 for IPv6), so evaluating it per packet
//! costs a few nanoseconds.

use crate::packet::{Family, Parsed, L4};
use std::sync::OnceLock;

/// The 40-byte symmetric RSS key: `0x6d 0x5a` repeated.
pub const SYMMETRIC_KEY: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// The longest hash input: IPv6 source and destination addresses and two ports.
pub const MAX_INPUT: usize = 36;

/// The Toeplitz hash of `input` under `key`, bit by bit (the definition): for every set
/// bit of the input, from the most significant bit of its first byte on, XOR the 32
/// key bits starting at that bit's position. `key` must be at least `input.len() + 4`
/// bytes long; missing key bits count as 0.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let bit = |i: usize| {
        key.get(i / 8)
            .map_or(0, |b| u32::from((b >> (7 - i % 8)) & 1))
    };
    let mut window = (0..32).fold(0u32, |w, i| (w << 1) | bit(i));
    let mut h = 0;
    for (n, byte) in input.iter().enumerate() {
        for b in 0..8 {
            if byte & (0x80 >> b) != 0 {
                h ^= window;
            }
            window = (window << 1) | bit(32 + n * 8 + b);
        }
    }
    h
}

/// The Toeplitz hash under one key, by table: `table[n][v]` is the hash contribution
/// of byte value `v` at input position `n`.
pub struct Toeplitz {
    table: Box<[[u32; 256]; MAX_INPUT]>,
}

impl Toeplitz {
    /// The tables for `key` (at least 40 bytes for inputs of [`MAX_INPUT`] bytes).
    pub fn new(key: &[u8]) -> Self {
        let mut table = Box::new([[0u32; 256]; MAX_INPUT]);
        let mut one = [0u8; MAX_INPUT];
        for (n, row) in table.iter_mut().enumerate() {
            // A byte's contribution is the XOR of its bits' contributions.
            let mut bits = [0u32; 8];
            for (b, v) in bits.iter_mut().enumerate() {
                one[n] = 0x80 >> b;
                *v = toeplitz(key, &one[..=n]);
            }
            one[n] = 0;
            for (v, slot) in row.iter_mut().enumerate() {
                *slot = (0..8)
                    .filter(|b| v & (0x80 >> b) != 0)
                    .fold(0, |h, b| h ^ bits[b]);
            }
        }
        Toeplitz { table }
    }

    /// The table for [`SYMMETRIC_KEY`], built once per process.
    pub fn symmetric() -> &'static Toeplitz {
        static T: OnceLock<Toeplitz> = OnceLock::new();
        T.get_or_init(|| Toeplitz::new(&SYMMETRIC_KEY))
    }

    /// The hash of `input` (at most [`MAX_INPUT`] bytes; the rest is ignored).
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        input
            .iter()
            .zip(self.table.iter())
            .fold(0, |h, (&v, row)| h ^ row[v as usize])
    }
}

/// Which packet types the NIC hashes with their ports (DPDK's `rss_hf` bits as
/// configured on the device); every other IP packet is hashed by its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RssTypes {
    /// IPv4 TCP (not fragmented) by addresses and ports.
    pub tcp4: bool,
    /// IPv4 UDP (not fragmented) by addresses and ports.
    pub udp4: bool,
    /// IPv6 TCP by addresses and ports.
    pub tcp6: bool,
    /// IPv6 UDP by addresses and ports.
    pub udp6: bool,
    /// Other IPv4 packets (and fragments) by addresses; false: hash 0.
    pub ip4: bool,
    /// Other IPv6 packets (and fragments) by addresses; false: hash 0.
    pub ip6: bool,
}

impl RssTypes {
    /// From DPDK's `rss_hf` bits (`RTE_ETH_RSS_*`).
    pub fn from_dpdk_rss_hf(hf: u64) -> Self {
        let b = |n: u32| hf & (1u64 << n) != 0;
        RssTypes {
            tcp4: b(4),
            udp4: b(5),
            tcp6: b(10),
            udp6: b(11),
            ip4: b(2) || b(3) || b(7),
            ip6: b(8) || b(9) || b(13),
        }
    }
}

/// A NIC's RSS as statewall configures it: the symmetric key, hashed types, and a RETA
/// of `reta_size` entries with entry `i` = queue `i % queues`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssModel {
    /// Entries of the redirection table (a power of two; the hash's low bits index it).
    pub reta_size: u16,
    /// Types hashed with ports.
    pub types: RssTypes,
}

impl RssModel {
    /// The RSS hash the NIC computes for a whole packet's tuple (addresses, and ports
    /// when its type is hashed with them).
    pub fn hash_tuple(
        &self,
        family: Family,
        src: &[u8; 16],
        dst: &[u8; 16],
        l4: Option<(u8, u16, u16)>,
    ) -> u32 {
        let mut input = [0u8; MAX_INPUT];
        let alen = if family == Family::V4 { 4 } else { 16 };
        input[..alen].copy_from_slice(&src[..alen]);
        input[alen..2 * alen].copy_from_slice(&dst[..alen]);
        let (with_ports, addrs) = match (family, l4) {
            (Family::V4, Some((6, ..))) => (self.types.tcp4, self.types.ip4),
            (Family::V4, Some((17, ..))) => (self.types.udp4, self.types.ip4),
            (Family::V4, _) => (false, self.types.ip4),
            (Family::V6, Some((6, ..))) => (self.types.tcp6, self.types.ip6),
            (Family::V6, Some((17, ..))) => (self.types.udp6, self.types.ip6),
            (Family::V6, _) => (false, self.types.ip6),
        };
        let t = Toeplitz::symmetric();
        match l4 {
            Some((_, sp, dp)) if with_ports => {
                input[2 * alen..2 * alen + 2].copy_from_slice(&sp.to_be_bytes());
                input[2 * alen + 2..2 * alen + 4].copy_from_slice(&dp.to_be_bytes());
                t.hash(&input[..2 * alen + 4])
            }
            _ if addrs || with_ports => t.hash(&input[..2 * alen]),
            _ => 0,
        }
    }

    /// The queue, of `queues`, that the NIC gives the hash `h`.
    #[inline]
    pub fn queue(&self, h: u32, queues: u16) -> u16 {
        let entry = h & (u32::from(self.reta_size.max(1)) - 1);
        (entry % u32::from(queues.max(1))) as u16
    }

    /// The queue owning the connection of the whole (not fragmented) packet `p`: the
    /// queue of its own tuple, or for an ICMP/ICMPv6 error the queue of the packet it
    /// quotes ([`crate::packet::quoted`]; the hash is symmetric, so the quote's
    /// direction does not matter).
    pub fn owner(&self, frame: &[u8], p: &Parsed, queues: u16) -> u16 {
        let quoted = crate::packet::quoted(frame, p);
        let o = quoted.as_ref().unwrap_or(p);
        let l4 = match o.l4 {
            L4::Tcp(t) => Some((o.proto, t.sport, t.dport)),
            L4::Udp(u) => Some((o.proto, u.sport, u.dport)),
            _ => None,
        };
        self.queue(self.hash_tuple(o.family, &o.src, &o.dst, l4), queues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::build::PacketSpec;

    /// The key of Microsoft's "Verifying the RSS Hash Calculation".
    const MS_KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    fn v4in(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> Vec<u8> {
        let mut v = src.to_vec();
        v.extend_from_slice(&dst);
        v.extend_from_slice(&sp.to_be_bytes());
        v.extend_from_slice(&dp.to_be_bytes());
        v
    }

    /// The published IPv4 verification suite (addresses only, and with ports); the
    /// same values come out of DPDK's `rte_softrss` (checked in `port::dpdk` tests).
    #[test]
    fn rss_toeplitz_matches_the_verification_suite() {
        #[rustfmt::skip]
        let cases = [
            ([66, 9, 149, 187], [161, 142, 100, 80], 2794, 1766, 0x323e8fc2, 0x51ccc178),
            ([199, 92, 111, 2], [65, 69, 140, 83], 14230, 4739, 0xd718262a, 0xc626b0ea),
            ([24, 19, 198, 95], [12, 22, 207, 184], 12898, 38024, 0xd2d0a5de, 0x5c2b394a),
            ([38, 27, 205, 30], [209, 142, 163, 6], 48228, 2217, 0x82989176, 0xafc7327f),
            ([153, 39, 163, 191], [202, 188, 127, 2], 44251, 1303, 0x5d1809c5, 0x10e828a2),
        ];
        let t = Toeplitz::new(&MS_KEY);
        for (s, d, sp, dp, ip, tcp) in cases {
            let input = v4in(s, d, sp, dp);
            assert_eq!(toeplitz(&MS_KEY, &input[..8]), ip);
            assert_eq!(toeplitz(&MS_KEY, &input), tcp);
            assert_eq!(t.hash(&input[..8]), ip);
            assert_eq!(t.hash(&input), tcp);
        }
    }

    #[test]
    fn rss_table_equals_the_definition_and_the_key_is_symmetric() {
        let t = Toeplitz::symmetric();
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..500 {
            let mut input = [0u8; MAX_INPUT];
            for b in input.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            assert_eq!(t.hash(&input), toeplitz(&SYMMETRIC_KEY, &input));
            // IPv6 tuple swapped: same hash.
            let mut sw = [0u8; MAX_INPUT];
            sw[..16].copy_from_slice(&input[16..32]);
            sw[16..32].copy_from_slice(&input[..16]);
            sw[32..34].copy_from_slice(&input[34..36]);
            sw[34..36].copy_from_slice(&input[32..34]);
            assert_eq!(t.hash(&sw), t.hash(&input));
        }
    }

    use crate::packet::parsed_ip as parsed;

    #[test]
    fn rss_model_places_both_directions_and_errors_with_their_flow() {
        let m = RssModel {
            reta_size: 128,
            types: RssTypes::from_dpdk_rss_hf((1 << 2) | (1 << 3) | (1 << 4) | (1 << 5)),
        };
        let mut per_q = [0u32; 4];
        for i in 0..400u16 {
            let c = std::net::SocketAddr::new("10.0.0.1".parse().unwrap(), 1024 + i);
            let s = "192.0.2.7:53".parse().unwrap();
            let q = PacketSpec::udp(c, s).payload(b"q").to_vec();
            let r = PacketSpec::udp(s, c).payload(b"r").to_vec();
            let oq = m.owner(&q, &parsed(&q), 4);
            assert_eq!(oq, m.owner(&r, &parsed(&r), 4));
            per_q[oq as usize] += 1;
            let err = PacketSpec::icmp(
                "198.51.100.1".parse().unwrap(),
                "10.0.0.1".parse().unwrap(),
                3,
                3,
                [0; 4],
            )
            .payload(&q[14..])
            .to_vec();
            assert_eq!(
                m.owner(&err, &parsed(&err), 4),
                oq,
                "error follows its flow"
            );
        }
        assert!(per_q.iter().all(|&n| n > 60), "spread: {per_q:?}");
        // Without port hashing for UDP, a UDP flow goes by its addresses.
        let ip_only = RssModel {
            reta_size: 128,
            types: RssTypes {
                ip4: true,
                ..Default::default()
            },
        };
        let q =
            PacketSpec::udp("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap()).to_vec();
        let h = Toeplitz::symmetric().hash(&[10, 0, 0, 1, 10, 0, 0, 2]);
        assert_eq!(ip_only.owner(&q, &parsed(&q), 4), ip_only.queue(h, 4));
    }
}
