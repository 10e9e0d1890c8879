//! In-place header edits of the mangle targets: the TOS / traffic-class byte (DSCP,
//! TOS), the TTL / hop limit (TTL, HL), the TCP MSS option of a SYN (TCPMSS), and a
//! full L4 checksum (CHECKSUM --checksum-fill). Checksums are updated incrementally
//! (RFC 1624) as in `rewrite.rs`. Pure functions over the frame and its [`Parsed`]
//! summary; nothing allocates, and a frame too short for a field is left alone.

use super::checksum::{fold, pseudo_header_sum, sum};
use super::{proto, Family, Parsed, L4};

use super::rewrite::{rd16, wr16};

/// Replaces the 16-bit word at `at` (aligned to the checksummed region) with `new` and
/// updates the checksum stored at `csum_at`: `HC' = ~(~HC + ~m + m')`.
#[inline]
fn replace_word(frame: &mut [u8], at: usize, new: u16, csum_at: usize) {
    let old = rd16(frame, at);
    if old == new {
        return;
    }
    wr16(frame, at, new);
    let hc = rd16(frame, csum_at);
    let v = fold(u32::from(!hc) + u32::from(!old) + u32::from(new));
    wr16(frame, csum_at, v);
}

/// Sets the TOS / traffic-class byte to `(old & !and_not) ^ xor`; returns the new value.
pub fn set_tos(frame: &mut [u8], p: &Parsed, and_not: u8, xor: u8) -> Option<u8> {
    let l3 = p.l3_off as usize;
    match p.family {
        Family::V4 => {
            frame.get(l3 + 11)?;
            let old = frame[l3 + 1];
            let new = (old & !and_not) ^ xor;
            let w = u16::from_be_bytes([frame[l3], new]);
            replace_word(frame, l3, w, l3 + 10);
            Some(new)
        }
        Family::V6 => {
            frame.get(l3 + 1)?;
            let old = (frame[l3] << 4) | (frame[l3 + 1] >> 4);
            let new = (old & !and_not) ^ xor;
            frame[l3] = (frame[l3] & 0xf0) | (new >> 4);
            frame[l3 + 1] = (frame[l3 + 1] & 0x0f) | (new << 4);
            Some(new)
        }
    }
}

/// How TTL / HL changes the TTL or hop limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlOp {
    /// `--ttl-set` / `--hl-set`.
    Set(u8),
    /// `--ttl-inc` / `--hl-inc` (saturating at 255, as xt_HL).
    Inc(u8),
    /// `--ttl-dec` / `--hl-dec` (saturating at 0, as xt_HL).
    Dec(u8),
}

impl TtlOp {
    /// The new value for `old`.
    pub fn apply(self, old: u8) -> u8 {
        match self {
            TtlOp::Set(v) => v,
            TtlOp::Inc(v) => old.saturating_add(v),
            TtlOp::Dec(v) => old.saturating_sub(v),
        }
    }
}

/// Changes the TTL (IPv4, fixing the header checksum) or the hop limit (IPv6).
pub fn set_ttl(frame: &mut [u8], p: &Parsed, op: TtlOp) -> Option<u8> {
    let l3 = p.l3_off as usize;
    match p.family {
        Family::V4 => {
            frame.get(l3 + 11)?;
            let new = op.apply(frame[l3 + 8]);
            let w = u16::from_be_bytes([new, frame[l3 + 9]]);
            replace_word(frame, l3 + 8, w, l3 + 10);
            Some(new)
        }
        Family::V6 => {
            let b = frame.get_mut(l3 + 7)?;
            *b = op.apply(*b);
            Some(*b)
        }
    }
}

/// Lowers the MSS option of a TCP SYN to `mss` when it is larger (xt_TCPMSS: the MSS is
/// only ever lowered). A SYN without the option is left alone (Linux would insert one;
/// see tests/oracle/DIVERGENCES.md). Returns the new MSS when it changed.
pub fn clamp_mss(frame: &mut [u8], p: &Parsed, mss: u16) -> Option<u16> {
    let L4::Tcp(t) = p.l4 else { return None };
    // xt_TCPMSS: SYNs only, and not one carrying data (it could then exceed the MTU).
    if t.flags & 0x02 == 0 || t.payload_len > 0 {
        return None;
    }
    let l4 = p.l4_off as usize;
    let end = (l4 + t.hdr_len as usize).min(frame.len());
    let mut i = l4 + 20;
    while i < end {
        match frame[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = *frame.get(i + 1)? as usize;
                if len < 2 || i + len > end {
                    return None;
                }
                if kind == 2 && len == 4 {
                    let old = rd16(frame, i + 2);
                    if old <= mss {
                        return None;
                    }
                    let csum_at = l4 + 16;
                    // The option may start at an odd offset from the TCP header: update
                    // the checksum over the aligned words that hold the two bytes.
                    if (i + 2 - l4).is_multiple_of(2) {
                        replace_word(frame, i + 2, mss, csum_at);
                    } else {
                        let b = mss.to_be_bytes();
                        let w0 = u16::from_be_bytes([frame[i + 1], b[0]]);
                        replace_word(frame, i + 1, w0, csum_at);
                        let w1 = u16::from_be_bytes([b[1], frame[i + 4]]);
                        replace_word(frame, i + 3, w1, csum_at);
                    }
                    return Some(mss);
                }
                i += len;
            }
        }
    }
    None
}

/// Writes the full TCP or UDP checksum (CHECKSUM --checksum-fill); false when the
/// packet has neither (or is a fragment).
pub fn fill_checksum(frame: &mut [u8], p: &Parsed) -> bool {
    let l3 = p.l3_off as usize;
    let l4 = p.l4_off as usize;
    let end = (p.ip_end as usize).min(frame.len());
    let at = match p.l4 {
        L4::Tcp(_) => l4 + 16,
        L4::Udp(_) => l4 + 6,
        _ => return false,
    };
    if p.frag.is_fragment() || at + 2 > end {
        return false;
    }
    wr16(frame, at, 0);
    let ps = pseudo_header_sum(
        &frame[l3..],
        p.family == Family::V4,
        p.proto,
        (end - l4) as u32,
    );
    let mut v = fold(sum(&frame[l4..end], ps));
    if p.proto == proto::UDP && v == 0 {
        v = 0xffff;
    }
    wr16(frame, at, v);
    true
}
