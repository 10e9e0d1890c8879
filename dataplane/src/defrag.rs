//! Virtual reassembly of IP fragments ahead of connection tracking (Linux's
//! `nf_defrag_ipv4` / `nf_defrag_ipv6`).
//!
//! Conntrack needs the L4 header, which only the first fragment carries, and Linux
//! reassembles before conntrack. Here a worker gives every fragment to [`Defrag::push`];
//! the fragment's bytes are copied into a preallocated slot and the worker keeps the
//! fragment's buffer aside ([`DefragResult::Held`]). When the datagram is complete,
//! [`Defrag::reassembled`] gives a whole frame that the pipeline tracks and judges once;
//! the worker then forwards (or drops) all the held fragments unchanged, in arrival
//! order, exactly as Linux re-fragments the datagram on output.
//!
//! Rules, as Linux applies them: an exact duplicate fragment is dropped and the rest
//! kept; any other overlap discards the whole datagram (RFC 5722; Linux does the same
//! for IPv4 since 4.19); a datagram not completed within the timeout (30 s IPv4, 60 s
//! IPv6) is discarded; a datagram longer than 65535 bytes is discarded.
//!
//! Everything is allocated in [`Defrag::new`]; `push` never allocates.

use crate::packet::{Family, Parsed};
use crate::Nanos;

/// Most fragments kept for one datagram.
pub const MAX_FRAGMENTS: usize = 64;
/// Largest reassembled IP packet.
const MAX_IP: usize = 65535;
/// Room for the L2 header in front of the reassembled IP packet.
const L2_ROOM: usize = 22;

/// Why a fragment (and its datagram) was discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefragError {
    /// The fragment overlaps one already received (not an exact duplicate).
    Overlap,
    /// An exact duplicate of a received fragment: only this fragment is dropped.
    Duplicate,
    /// Offset + length beyond 65535, or a middle fragment not a multiple of 8 bytes.
    TooLong,
    /// More than [`MAX_FRAGMENTS`] fragments.
    TooManyFragments,
    /// The last fragment disagrees with the length already known.
    Inconsistent,
}

impl DefragError {
    /// Label for counters.
    pub fn as_str(self) -> &'static str {
        match self {
            DefragError::Overlap => "frag_overlap",
            DefragError::Duplicate => "frag_duplicate",
            DefragError::TooLong => "frag_too_long",
            DefragError::TooManyFragments => "frag_too_many",
            DefragError::Inconsistent => "frag_inconsistent",
        }
    }
}

/// What [`Defrag::push`] did with a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefragResult {
    /// Not a fragment: process the packet as it is.
    NotFragment,
    /// Kept in `slot`; the caller holds the buffer until the datagram completes.
    Held {
        /// Reassembly slot.
        slot: usize,
    },
    /// This fragment completed the datagram in `slot`: [`Defrag::reassembled`] has it,
    /// and the caller's held fragments of the slot plus this one form the datagram.
    Complete {
        /// Reassembly slot.
        slot: usize,
    },
    /// Discarded. For [`DefragError::Duplicate`] only this fragment; otherwise the
    /// whole datagram in `slot` (if any): the caller drops its held buffers for it.
    Dropped {
        /// Why.
        error: DefragError,
        /// The slot whose datagram was discarded, if one was.
        slot: Option<usize>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Key {
    family_v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    id: u32,
    proto: u8,
}

struct Slot {
    used: bool,
    key: Key,
    deadline: Nanos,
    /// Received (offset, len) ranges of the IP payload.
    ranges: [(u32, u32); MAX_FRAGMENTS],
    nranges: usize,
    /// Total payload length once the last fragment was seen.
    total: Option<u32>,
    /// Bytes before the payload in `buf` (L2 + IP header + unfragmentable part), set by
    /// the first fragment.
    hdr_len: Option<usize>,
    /// Offset of the IP header in `buf`.
    l3: usize,
    /// Position in `buf` of the next-header byte that named the fragment header (IPv6).
    nh_pos: usize,
    /// The fragment header's next header (IPv6).
    inner_nh: u8,
    buf: Box<[u8]>,
}

/// Per-worker reassembly state: a fixed number of slots, allocated up front.
pub struct Defrag {
    slots: Vec<Slot>,
    /// Datagrams discarded because their timeout expired.
    pub timed_out: u64,
    /// Datagrams evicted to make room for a new one.
    pub evicted: u64,
    /// Datagrams completed.
    pub completed: u64,
    timeout_v4: Nanos,
    timeout_v6: Nanos,
}

const SEC: Nanos = 1_000_000_000;

impl Defrag {
    /// `slots` concurrent datagrams (each takes 64 KiB).
    pub fn new(slots: usize) -> Self {
        let slots = (0..slots.max(1))
            .map(|_| Slot {
                used: false,
                key: Key::default(),
                deadline: 0,
                ranges: [(0, 0); MAX_FRAGMENTS],
                nranges: 0,
                total: None,
                hdr_len: None,
                l3: 0,
                nh_pos: 0,
                inner_nh: 0,
                buf: vec![0u8; L2_ROOM + MAX_IP + 64].into_boxed_slice(),
            })
            .collect();
        Defrag {
            slots,
            timed_out: 0,
            evicted: 0,
            completed: 0,
            timeout_v4: 30 * SEC,
            timeout_v6: 60 * SEC,
        }
    }

    /// Datagrams being reassembled.
    pub fn in_progress(&self) -> usize {
        self.slots.iter().filter(|s| s.used).count()
    }

    /// Offers a packet. Non-fragments return [`DefragResult::NotFragment`] at once.
    pub fn push(&mut self, frame: &[u8], p: &Parsed, now: Nanos) -> DefragResult {
        if !p.frag.is_fragment() {
            return DefragResult::NotFragment;
        }
        let v6 = p.family == Family::V6;
        // Payload of this fragment.
        let pay_off = if v6 {
            p.frag.hdr_off as usize + 8
        } else {
            p.l4_off as usize
        };
        let end = p.ip_end as usize;
        if pay_off > end {
            return DefragResult::Dropped {
                error: DefragError::Inconsistent,
                slot: None,
            };
        }
        let data = &frame[pay_off..end];
        let off = p.frag.offset as u32 * 8;
        let len = data.len() as u32;
        let proto = if v6 { 0 } else { p.proto };
        let key = Key {
            family_v6: v6,
            src: p.src,
            dst: p.dst,
            id: p.frag.id,
            proto,
        };
        let slot = self.find_or_alloc(key, now, v6);
        let last = !p.frag.more;
        if off + len > MAX_IP as u32 - 20 || (!last && (len == 0 || !len.is_multiple_of(8))) {
            self.release(slot);
            return DefragResult::Dropped {
                error: DefragError::TooLong,
                slot: Some(slot),
            };
        }
        let s = &mut self.slots[slot];
        for &(o, l) in &s.ranges[..s.nranges] {
            if o == off && l == len {
                return DefragResult::Dropped {
                    error: DefragError::Duplicate,
                    slot: None,
                };
            }
            if off < o + l && o < off + len {
                self.release(slot);
                return DefragResult::Dropped {
                    error: DefragError::Overlap,
                    slot: Some(slot),
                };
            }
        }
        if let Some(t) = s.total {
            if off + len > t || (last && off + len != t) {
                self.release(slot);
                return DefragResult::Dropped {
                    error: DefragError::Inconsistent,
                    slot: Some(slot),
                };
            }
        } else if last {
            if s.ranges[..s.nranges]
                .iter()
                .any(|&(o, l)| o + l > off + len)
            {
                self.release(slot);
                return DefragResult::Dropped {
                    error: DefragError::Inconsistent,
                    slot: Some(slot),
                };
            }
            s.total = Some(off + len);
        }
        if s.nranges == MAX_FRAGMENTS {
            self.release(slot);
            return DefragResult::Dropped {
                error: DefragError::TooManyFragments,
                slot: Some(slot),
            };
        }
        s.ranges[s.nranges] = (off, len);
        s.nranges += 1;
        if off == 0 {
            // The first fragment supplies the headers: L2 + IP header (+ IPv6
            // unfragmentable extension headers up to the fragment header).
            let hdr_end = pay_off - if v6 { 8 } else { 0 };
            let hdr = &frame[..hdr_end];
            s.buf[..hdr.len()].copy_from_slice(hdr);
            s.l3 = p.l3_off as usize;
            s.hdr_len = Some(hdr.len());
            if v6 {
                s.inner_nh = frame[p.frag.hdr_off as usize];
                s.nh_pos = ipv6_nh_pos(frame, s.l3, p.frag.hdr_off as usize);
            }
        }
        // Copy the data at its place after the header room; the header is moved in
        // front of it at completion.
        let dst_off = DATA_BASE + off as usize;
        if dst_off + data.len() > s.buf.len() {
            self.release(slot);
            return DefragResult::Dropped {
                error: DefragError::TooLong,
                slot: Some(slot),
            };
        }
        s.buf[dst_off..dst_off + data.len()].copy_from_slice(data);
        let covered: u32 = s.ranges[..s.nranges].iter().map(|r| r.1).sum();
        match (s.total, s.hdr_len) {
            (Some(t), Some(_)) if covered == t => {
                self.completed += 1;
                DefragResult::Complete { slot }
            }
            _ => DefragResult::Held { slot },
        }
    }

    /// The reassembled frame of a completed slot: the first fragment's L2 and IP
    /// headers (fragment fields cleared, lengths and IPv4 checksum fixed) + the whole
    /// payload. Call once after [`DefragResult::Complete`]; then [`Defrag::release`].
    pub fn reassembled(&mut self, slot: usize) -> &[u8] {
        let s = &mut self.slots[slot];
        let (Some(hlen), Some(total)) = (s.hdr_len, s.total) else {
            return &[];
        };
        let total = total as usize;
        // Move the header right in front of the data.
        let start = DATA_BASE - hlen;
        s.buf.copy_within(0..hlen, start);
        let l3 = start + s.l3;
        let b = &mut s.buf;
        if !s.key.family_v6 {
            let ihl = ((b[l3] & 0x0f) as usize) * 4;
            let tl = (ihl + total) as u16;
            b[l3 + 2..l3 + 4].copy_from_slice(&tl.to_be_bytes());
            b[l3 + 6] &= 0x40; // keep DF, clear MF and the offset
            b[l3 + 7] = 0;
            b[l3 + 10] = 0;
            b[l3 + 11] = 0;
            let c =
                crate::packet::checksum::fold(crate::packet::checksum::sum(&b[l3..l3 + ihl], 0));
            b[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        } else {
            let unfrag = hlen - s.l3 - 40;
            let pl = (unfrag + total) as u16;
            b[l3 + 4..l3 + 6].copy_from_slice(&pl.to_be_bytes());
            b[start + s.nh_pos] = s.inner_nh;
        }
        &s.buf[start..DATA_BASE + total]
    }

    /// Frees a slot (after completion, or when the caller gives up on it).
    pub fn release(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        s.used = false;
        s.nranges = 0;
        s.total = None;
        s.hdr_len = None;
    }

    /// Discards datagrams whose timeout passed; calls `f(slot)` for each so the caller
    /// can drop the buffers it holds for it.
    pub fn expire(&mut self, now: Nanos, mut f: impl FnMut(usize)) {
        for i in 0..self.slots.len() {
            if self.slots[i].used && now >= self.slots[i].deadline {
                self.timed_out += 1;
                self.release(i);
                f(i);
            }
        }
    }

    fn find_or_alloc(&mut self, key: Key, now: Nanos, v6: bool) -> usize {
        let timeout = if v6 { self.timeout_v6 } else { self.timeout_v4 };
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| s.used && s.key == key && now < s.deadline)
        {
            return i;
        }
        let i = match self.slots.iter().position(|s| !s.used || now >= s.deadline) {
            Some(i) => {
                if self.slots[i].used {
                    self.timed_out += 1;
                }
                i
            }
            None => {
                // Evict the datagram closest to its deadline.
                self.evicted += 1;
                let (i, _) = self
                    .slots
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| s.deadline)
                    .expect("at least one slot");
                i
            }
        };
        self.release(i);
        let s = &mut self.slots[i];
        s.used = true;
        s.key = key;
        s.deadline = now + timeout;
        i
    }

    /// True when `slot` was taken over by another datagram since the caller held
    /// buffers for it (the caller then drops those buffers).
    pub fn is_free(&self, slot: usize) -> bool {
        !self.slots[slot].used
    }
}

/// Where the reassembled payload starts in a slot buffer: room for the largest header
/// (L2 22 + IPv6 40 + extension headers) in front.
const DATA_BASE: usize = L2_ROOM + 40 + 512;

/// Position (relative to the frame start) of the next-header byte that names the
/// fragment header at `frag_off`.
fn ipv6_nh_pos(frame: &[u8], l3: usize, frag_off: usize) -> usize {
    let mut pos = l3 + 6;
    let mut off = l3 + 40;
    let mut nh = frame[pos];
    let mut guard = 0;
    while off < frag_off && guard < 16 {
        guard += 1;
        let len = match nh {
            51 => (frame[off + 1] as usize + 2) * 4,
            _ => (frame[off + 1] as usize + 1) * 8,
        };
        pos = off;
        nh = frame[off];
        off += len;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::build::PacketSpec;
    use crate::packet::L4;

    use crate::packet::parsed_ip as parsed;

    /// Splits an IPv4 frame's payload into fragments of `size` bytes (multiple of 8).
    fn frag4(frame: &[u8], size: usize) -> Vec<Vec<u8>> {
        let l3 = 14;
        let ihl = ((frame[l3] & 15) * 4) as usize;
        let payload = &frame[l3 + ihl..];
        let mut out = Vec::new();
        let mut off = 0;
        while off < payload.len() {
            let n = size.min(payload.len() - off);
            let more = off + n < payload.len();
            let mut f = frame[..l3 + ihl].to_vec();
            f.extend_from_slice(&payload[off..off + n]);
            let tl = (ihl + n) as u16;
            f[l3 + 2..l3 + 4].copy_from_slice(&tl.to_be_bytes());
            let fo = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
            f[l3 + 6..l3 + 8].copy_from_slice(&fo.to_be_bytes());
            f[l3 + 10] = 0;
            f[l3 + 11] = 0;
            let c =
                crate::packet::checksum::fold(crate::packet::checksum::sum(&f[l3..l3 + ihl], 0));
            f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
            out.push(f);
            off += n;
        }
        out
    }

    /// Splits an IPv6 frame (no extension headers) into fragments with a fragment header.
    fn frag6(frame: &[u8], size: usize) -> Vec<Vec<u8>> {
        let l3 = 14;
        let nh = frame[l3 + 6];
        let payload = &frame[l3 + 40..];
        let mut out = Vec::new();
        let mut off = 0;
        while off < payload.len() {
            let n = size.min(payload.len() - off);
            let more = off + n < payload.len();
            let mut f = frame[..l3 + 40].to_vec();
            f[l3 + 6] = 44;
            let fo = ((off / 8) as u16) << 3 | more as u16;
            f.extend_from_slice(&[nh, 0]);
            f.extend_from_slice(&fo.to_be_bytes());
            f.extend_from_slice(&77u32.to_be_bytes());
            f.extend_from_slice(&payload[off..off + n]);
            let pl = (8 + n) as u16;
            f[l3 + 4..l3 + 6].copy_from_slice(&pl.to_be_bytes());
            out.push(f);
            off += n;
        }
        out
    }

    fn udp_frame(v6: bool, len: usize) -> Vec<u8> {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let (s, d) = if v6 {
            ("[fd00::1]:5000", "[fd00::2]:53")
        } else {
            ("10.0.0.1:5000", "10.0.0.2:53")
        };
        PacketSpec::udp(s.parse().unwrap(), d.parse().unwrap())
            .payload(&data)
            .to_vec()
    }

    fn run(d: &mut Defrag, frags: &[Vec<u8>]) -> Vec<DefragResult> {
        frags.iter().map(|f| d.push(f, &parsed(f), 0)).collect()
    }

    #[test]
    fn in_order_v4_reassembles_the_original() {
        let orig = udp_frame(false, 3000);
        let frags = frag4(&orig, 1480);
        assert_eq!(frags.len(), 3);
        let mut d = Defrag::new(4);
        let r = run(&mut d, &frags);
        assert!(matches!(r[0], DefragResult::Held { .. }));
        assert!(matches!(r[1], DefragResult::Held { .. }));
        let DefragResult::Complete { slot } = r[2] else {
            panic!("{r:?}")
        };
        let whole = d.reassembled(slot).to_vec();
        let p = parsed(&whole);
        assert!(!p.frag.is_fragment());
        assert!(matches!(p.l4, L4::Udp(u) if u.dport == 53));
        assert!(crate::packet::checksum::ipv4_header_ok(&whole, &p));
        assert!(
            crate::packet::checksum::l4_ok(&whole, &p),
            "UDP checksum over the whole datagram"
        );
        // Same bytes as the original except the IP id/flags/checksum fields.
        assert_eq!(whole[34..], orig[34..]);
        d.release(slot);
        assert_eq!(d.in_progress(), 0);
    }

    #[test]
    fn out_of_order_and_duplicate() {
        let orig = udp_frame(false, 2000);
        let mut frags = frag4(&orig, 512);
        frags.reverse();
        let dup = frags[1].clone();
        frags.insert(2, dup);
        let mut d = Defrag::new(4);
        let r = run(&mut d, &frags);
        assert_eq!(
            r[2],
            DefragResult::Dropped {
                error: DefragError::Duplicate,
                slot: None
            }
        );
        let DefragResult::Complete { slot } = *r.last().unwrap() else {
            panic!("{r:?}")
        };
        let whole = d.reassembled(slot).to_vec();
        assert_eq!(whole[34..], orig[34..]);
    }

    #[test]
    fn overlap_discards_the_datagram() {
        let orig = udp_frame(false, 2000);
        let frags = frag4(&orig, 512);
        let mut d = Defrag::new(4);
        assert!(matches!(
            d.push(&frags[0], &parsed(&frags[0]), 0),
            DefragResult::Held { .. }
        ));
        // A fragment at offset 256 overlapping the first one.
        let mut bad = frags[1].clone();
        bad[20..22].copy_from_slice(&(0x2000u16 | 32).to_be_bytes());
        bad[24] = 0;
        bad[25] = 0;
        let c = crate::packet::checksum::fold(crate::packet::checksum::sum(&bad[14..34], 0));
        bad[24..26].copy_from_slice(&c.to_be_bytes());
        let r = d.push(&bad, &parsed(&bad), 0);
        assert!(matches!(
            r,
            DefragResult::Dropped {
                error: DefragError::Overlap,
                slot: Some(_)
            }
        ));
        assert_eq!(d.in_progress(), 0);
    }

    #[test]
    fn timeout_discards() {
        let orig = udp_frame(false, 2000);
        let frags = frag4(&orig, 512);
        let mut d = Defrag::new(4);
        let DefragResult::Held { slot } = d.push(&frags[0], &parsed(&frags[0]), 0) else {
            panic!()
        };
        let mut expired = vec![];
        d.expire(29 * SEC, |s| expired.push(s));
        assert!(expired.is_empty());
        d.expire(30 * SEC, |s| expired.push(s));
        assert_eq!(expired, vec![slot]);
        // A late fragment starts a new datagram that never completes without the first.
        let r = d.push(&frags[1], &parsed(&frags[1]), 31 * SEC);
        assert!(matches!(r, DefragResult::Held { .. }));
    }

    #[test]
    fn ipv6_reassembly() {
        let orig = udp_frame(true, 3000);
        let mut frags = frag6(&orig, 1232);
        frags.swap(0, 2);
        let mut d = Defrag::new(2);
        let r = run(&mut d, &frags);
        let DefragResult::Complete { slot } = *r.last().unwrap() else {
            panic!("{r:?}")
        };
        let whole = d.reassembled(slot).to_vec();
        assert_eq!(whole, orig, "the reassembled IPv6 packet is the original");
    }
}
