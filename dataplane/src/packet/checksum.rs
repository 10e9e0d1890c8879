//! Internet checksums (RFC 1071): the IPv4 header, and TCP/UDP/ICMP/ICMPv6 with the
//! IPv4 or IPv6 pseudo-header. Conntrack calls [`l4_ok`] when `nf_conntrack_checksum`
//! is on; nothing here allocates.

use super::{proto, Family, Parsed, L4};

/// Adds `data` as big-endian 16-bit words to `initial` (odd trailing byte padded), with
/// end-around carry; the result is at most 0xffff. Reads four bytes at a time (a 32-bit
/// big-endian word is two 16-bit words, and the folding below is the carry).
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = initial as u64;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    let rem = chunks.remainder();
    let mut i = 0;
    while i + 1 < rem.len() {
        acc += u16::from_be_bytes([rem[i], rem[i + 1]]) as u64;
        i += 2;
    }
    if i < rem.len() {
        acc += (rem[i] as u64) << 8;
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// Folds a running sum and returns its one's complement (the value to store).
pub fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// The pseudo-header sum for an L4 checksum; `ip_hdr` starts at the IP header (of the
/// family `v4` names; a header too short for it contributes no addresses).
pub fn pseudo_header_sum(ip_hdr: &[u8], v4: bool, proto_num: u8, l4_len: u32) -> u32 {
    let addrs = if v4 {
        ip_hdr.get(12..20)
    } else {
        ip_hdr.get(8..40)
    };
    let mut s = addrs.map_or(0, |a| sum(a, 0));
    s = sum(&(l4_len).to_be_bytes(), s);
    s + proto_num as u32
}

/// True when the IPv4 header checksum of `p` is right (always true for IPv6).
pub fn ipv4_header_ok(frame: &[u8], p: &Parsed) -> bool {
    if p.family != Family::V4 {
        return true;
    }
    let l3 = p.l3_off as usize;
    let ihl = ((frame[l3] & 0x0f) as usize) * 4;
    frame
        .get(l3..l3 + ihl)
        .is_some_and(|h| fold(sum(h, 0)) == 0)
}

/// True when the L4 checksum of `p` is right. UDP checksum 0 is accepted on both
/// families (as conntrack does); fragments and protocols without a checksum pass.
pub fn l4_ok(frame: &[u8], p: &Parsed) -> bool {
    if p.frag.is_fragment() {
        return true;
    }
    let l4 = p.l4_off as usize;
    let end = p.ip_end as usize;
    let Some(seg) = frame.get(l4..end) else {
        return false;
    };
    let v4 = p.family == Family::V4;
    match p.l4 {
        // A partial checksum: conntrack checks it with [`udplite_ok`]; REJECT's
        // `nf_reject_verify_csum` skips the protocol.
        L4::Udp(_) if p.proto == proto::UDPLITE => true,
        L4::Udp(u) if u.checksum == 0 => true,
        L4::Tcp(_) | L4::Udp(_) => {
            let ps = pseudo_header_sum(&frame[p.l3_off as usize..], v4, p.proto, seg.len() as u32);
            fold(sum(seg, ps)) == 0
        }
        // ICMP in IPv6 or ICMPv6 in IPv4 has no defined checksum; conntrack calls it
        // INVALID for the wrong family (INV-20), not for its checksum.
        L4::Icmp(i) if i.v6 != (p.family == Family::V6) => true,
        L4::Icmp(i) => {
            let ps = if i.v6 {
                pseudo_header_sum(
                    &frame[p.l3_off as usize..],
                    false,
                    proto::ICMPV6,
                    seg.len() as u32,
                )
            } else {
                0
            };
            fold(sum(seg, ps)) == 0
        }
        _ => true,
    }
}

/// True when a UDP-Lite datagram's checksum over its first `coverage` bytes is right,
/// as conntrack checks it: `udplite_error` hands `nf_checksum_partial` IPPROTO_UDP,
/// so the pseudo header carries protocol 17, not RFC 3828's 136 (an RFC checksum
/// is INVALID in Linux 6.18 while `nf_conntrack_checksum` is on; oracle l03/l04).
/// The pseudo header's length is the whole datagram's.
pub fn udplite_ok(frame: &[u8], p: &Parsed, coverage: usize) -> bool {
    let l4 = p.l4_off as usize;
    let end = p.ip_end as usize;
    let Some(seg) = frame.get(l4..end) else {
        return false;
    };
    let Some(covered) = seg.get(..coverage) else {
        return false;
    };
    let v4 = p.family == Family::V4;
    let ps = pseudo_header_sum(
        &frame[p.l3_off as usize..],
        v4,
        proto::UDP,
        seg.len() as u32,
    );
    fold(sum(covered, ps)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time sum folds to the same checksum as a plain 16-bit word loop.
    #[test]
    fn sum_matches_the_16_bit_definition() {
        let mut x = 0x1234_5678u32;
        for len in 0..200usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let init = x & 0xffff;
            let mut r: u64 = init as u64;
            for c in data.chunks(2) {
                r += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64;
            }
            while r >> 16 != 0 {
                r = (r & 0xffff) + (r >> 16);
            }
            assert_eq!(fold(sum(&data, init)), !(r as u16), "len {len}");
            assert!(sum(&data, init) <= 0xffff);
        }
    }

    #[test]
    fn rfc1071_example() {
        // The example from RFC 1071 section 3: 0001 f203 f4f5 f6f7 -> sum ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d, 0)), !0xddf2);
    }
}
