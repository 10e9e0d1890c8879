//! Rewriting a TCP segment's payload and sequence numbers in place, for a connection
//! helper through NAT (the byte side of Linux's `nf_nat_mangle_tcp_packet` and
//! `nf_ct_seq_adjust`; the state that decides the numbers is in the conntrack table).
//!
//! * [`replace_tcp_payload`] replaces a span of the payload with other text (the length
//!   may change: the rest of the segment moves), fixes the IP length field (and the IPv4
//!   header checksum) and recomputes the TCP checksum over the new segment.
//! * [`rewrite_tcp_seq`] maps the sequence number, and with ACK set the acknowledgement
//!   number and every SACK block edge, updating the TCP checksum incrementally.
//!
//! Pure functions over a frame buffer and the frame's [`Parsed`] summary (taken before
//! the rewrite); nothing allocates.

use super::checksum::{fold, pseudo_header_sum, sum};
use super::{Family, Parsed, L4};

/// TCP option kinds.
const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_SACK: u8 = 5;

use super::rewrite::rd16;

#[inline]
fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Replaces `match_len` bytes at frame offset `at` (inside the TCP payload of the frame
/// `p` describes, which fills `buf[..len]`) with `text`. The bytes after the match up to
/// the end of the IP datagram move; anything after the datagram (Ethernet padding) is
/// dropped, as the kernel trims it on receive. Returns the new frame length, or None
/// (nothing changed) when `p` is no TCP segment, the span is outside its payload, or
/// `buf` or the IP length field has no room for the result.
pub fn replace_tcp_payload(
    buf: &mut [u8],
    len: usize,
    p: &Parsed,
    at: usize,
    match_len: usize,
    text: &[u8],
) -> Option<usize> {
    let L4::Tcp(t) = p.l4 else { return None };
    if p.frag.is_fragment() {
        return None;
    }
    let l3 = p.l3_off as usize;
    let l4 = p.l4_off as usize;
    let end = p.ip_end as usize;
    let pay = l4 + t.hdr_len as usize;
    if end > len || len > buf.len() || at < pay || at + match_len > end {
        return None;
    }
    let new_end = (end + text.len()).checked_sub(match_len)?;
    let ip_len = new_end - l3;
    let field = match p.family {
        Family::V4 => ip_len,
        Family::V6 => ip_len.checked_sub(40)?,
    };
    if new_end > buf.len() || field > usize::from(u16::MAX) {
        return None;
    }
    buf.copy_within(at + match_len..end, at + text.len());
    buf[at..at + text.len()].copy_from_slice(text);
    match p.family {
        Family::V4 => {
            buf[l3 + 2..l3 + 4].copy_from_slice(&(field as u16).to_be_bytes());
            let ihl = usize::from(buf[l3] & 0x0f) * 4;
            buf[l3 + 10..l3 + 12].fill(0);
            let c = fold(sum(&buf[l3..l3 + ihl], 0));
            buf[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        Family::V6 => buf[l3 + 4..l3 + 6].copy_from_slice(&(field as u16).to_be_bytes()),
    }
    let seg_len = new_end - l4;
    buf[l4 + 16..l4 + 18].fill(0);
    let ps = pseudo_header_sum(
        &buf[l3..],
        p.family == Family::V4,
        super::proto::TCP,
        seg_len as u32,
    );
    let c = fold(sum(&buf[l4..new_end], ps));
    buf[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    Some(new_end)
}

/// Adds to a running one's-complement sum the change of a 32-bit field.
#[inline]
fn delta32(acc: u32, old: u32, new: u32) -> u32 {
    let (o, n) = (old.to_be_bytes(), new.to_be_bytes());
    acc + u32::from(!rd16(&o, 0))
        + u32::from(rd16(&n, 0))
        + u32::from(!rd16(&o, 2))
        + u32::from(rd16(&n, 2))
}

#[inline]
fn put32(frame: &mut [u8], at: usize, v: u32, d: &mut u32) {
    let old = rd32(frame, at);
    if old != v {
        *d = delta32(*d, old, v);
        frame[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
}

/// Rewrites the TCP segment `p` describes: its sequence number to `seq(old)` and, when
/// it carries ACK, its acknowledgement number to `ack(old)` and each SACK block edge to
/// `sack(old)` (Linux's `nf_ct_seq_adjust` and `nf_ct_sack_adjust`); the TCP checksum is
/// updated incrementally. Returns false when the options are malformed (a truncated
/// option: the kernel drops such a packet); the sequence and acknowledgement numbers
/// are rewritten all the same. A fragment or a non-TCP packet is left alone (true).
pub fn rewrite_tcp_seq(
    frame: &mut [u8],
    p: &Parsed,
    seq: impl Fn(u32) -> u32,
    ack: impl Fn(u32) -> u32,
    sack: impl Fn(u32) -> u32,
) -> bool {
    let L4::Tcp(t) = p.l4 else { return true };
    let l4 = p.l4_off as usize;
    let opt_end = l4 + t.hdr_len as usize;
    if p.frag.is_fragment() || frame.len() < opt_end || opt_end < l4 + 20 {
        return true;
    }
    let mut d = 0u32;
    put32(frame, l4 + 4, seq(t.seq), &mut d);
    let mut ok = true;
    if t.flags & super::tcp_flags::ACK != 0 {
        put32(frame, l4 + 8, ack(t.ack), &mut d);
        let mut o = l4 + 20;
        while o < opt_end {
            match frame[o] {
                OPT_EOL => break,
                OPT_NOP => o += 1,
                kind => {
                    let olen = if o + 1 < opt_end {
                        usize::from(frame[o + 1])
                    } else {
                        0
                    };
                    if olen < 2 || o + olen > opt_end {
                        ok = false;
                        break;
                    }
                    if kind == OPT_SACK && olen >= 10 && (olen - 2) % 8 == 0 {
                        let mut b = o + 2;
                        while b < o + olen {
                            put32(frame, b, sack(rd32(frame, b)), &mut d);
                            b += 4;
                        }
                    }
                    o += olen;
                }
            }
        }
    }
    if d != 0 {
        let c = rd16(frame, l4 + 16);
        let v = fold(u32::from(!c) + d);
        frame[l4 + 16..l4 + 18].copy_from_slice(&v.to_be_bytes());
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::build::PacketSpec;
    use crate::packet::checksum::{ipv4_header_ok, l4_ok};

    use crate::packet::parsed_ip as parsed;

    fn seg(payload: &[u8], v6: bool) -> Vec<u8> {
        let (s, d) = if v6 {
            ("[fd00::1]:40000", "[2001:db8::2]:21")
        } else {
            ("10.0.0.1:40000", "192.0.2.2:21")
        };
        PacketSpec::tcp(s.parse().unwrap(), d.parse().unwrap(), 0x18, 1000, 2000)
            .payload(payload)
            .to_vec()
    }

    #[test]
    fn payload_replaced_longer_shorter_and_equal_v4_v6() {
        for v6 in [false, true] {
            let old = b"PORT 10,0,0,1,156,64\r\n";
            for new in [
                &b"PORT 198,51,100,1,156,64\r\n"[..],
                &b"PORT 1,2,3,4,156,64\r\n"[..],
                &b"PORT 10,0,0,9,156,64\r\n"[..],
            ] {
                let f = seg(old, v6);
                let p = parsed(&f);
                let at = p.l4_off as usize + 20 + 5;
                let mut buf = f.clone();
                buf.resize(f.len() + 64, 0xee);
                let n = replace_tcp_payload(&mut buf, f.len(), &p, at, 15, &new[5..new.len() - 2])
                    .expect("room");
                let want = seg(new, v6);
                assert_eq!(&buf[..n], &want[..], "v6={v6} new={:?}", new);
                let q = parsed(&buf[..n]);
                assert!(ipv4_header_ok(&buf[..n], &q) && l4_ok(&buf[..n], &q));
            }
        }
    }

    #[test]
    fn payload_replace_refuses_without_room_or_outside_the_payload() {
        let f = seg(b"PORT 10,0,0,1,156,64\r\n", false);
        let p = parsed(&f);
        let at = p.l4_off as usize + 25;
        let mut buf = f.clone();
        // No room after the frame for 4 more bytes.
        assert_eq!(
            replace_tcp_payload(&mut buf, f.len(), &p, at, 15, b"198,51,100,1,156,64"),
            None
        );
        assert_eq!(buf, f);
        buf.resize(f.len() + 8, 0);
        // A span in the TCP header, or past the datagram.
        assert_eq!(
            replace_tcp_payload(&mut buf, f.len(), &p, at - 10, 2, b"x"),
            None
        );
        assert_eq!(
            replace_tcp_payload(&mut buf, f.len(), &p, at, 40, b"x"),
            None
        );
        assert_eq!(&buf[..f.len()], &f[..]);
    }

    fn with_sack(seq: u32, ack: u32, blocks: &[(u32, u32)]) -> Vec<u8> {
        // NOP NOP SACK(len) blocks...
        let mut opts = vec![1u8, 1, 5, 2 + 8 * blocks.len() as u8];
        for (a, b) in blocks {
            opts.extend_from_slice(&a.to_be_bytes());
            opts.extend_from_slice(&b.to_be_bytes());
        }
        PacketSpec::tcp(
            "10.0.0.1:40000".parse().unwrap(),
            "192.0.2.2:21".parse().unwrap(),
            0x10,
            seq,
            ack,
        )
        .tcp_options(&opts)
        .to_vec()
    }

    #[test]
    fn seq_ack_and_sack_blocks_rewritten_with_checksum() {
        let f = with_sack(1000, 2000, &[(3000, 3100), (3200, 3300)]);
        let p = parsed(&f);
        let mut g = f.clone();
        assert!(rewrite_tcp_seq(
            &mut g,
            &p,
            |s| s + 4,
            |a| a - 7,
            |x| x.wrapping_sub(7)
        ));
        // Equal to the segment built with the new numbers (a full checksum).
        assert_eq!(g, with_sack(1004, 1993, &[(2993, 3093), (3193, 3293)]));
        // Without ACK only the sequence number moves.
        let mut h = PacketSpec::tcp(
            "10.0.0.1:1".parse().unwrap(),
            "10.0.0.2:2".parse().unwrap(),
            0x02,
            5,
            77,
        )
        .to_vec();
        let ph = parsed(&h);
        let l4 = ph.l4_off as usize;
        assert!(rewrite_tcp_seq(&mut h, &ph, |s| s + 1, |_| 0, |_| 0));
        assert_eq!(rd32(&h, l4 + 4), 6);
        assert_eq!(rd32(&h, l4 + 8), 77);
        assert!(l4_ok(&h, &parsed(&h)));
    }

    #[test]
    fn truncated_option_reported() {
        // A SACK option whose length runs past the header.
        let mut f = with_sack(1, 2, &[(3000, 3100)]);
        let p = parsed(&f);
        let l4 = p.l4_off as usize;
        f[l4 + 23] = 30;
        let p = parsed(&f);
        assert!(!rewrite_tcp_seq(&mut f, &p, |s| s, |a| a, |x| x));
    }
}
