//! TCP sequence-number adjustment after a helper changed a payload's length through NAT
//! (Linux `nf_conntrack_seqadj.c`; see `docs/NAT.md` "FTP through NAT").
//!
//! When the FTP helper rewrites a `PORT`/`EPRT` command or a `227`/`229` reply of a NATed
//! control connection, the text's length may change; from then on every packet of the
//! connection needs its sequence number (in the direction that was mangled) and its
//! peer's acknowledgement number and SACK blocks (in the other direction) moved by the
//! accumulated difference. Per direction the kernel keeps one correction point and the
//! offsets before and after it ([`SeqWay`]), so a retransmission of a segment from
//! before the last rewrite keeps the older offset.
//!
//! The state lives in a side array indexed by slot (`ConnTable::seqadj`), allocated by
//! the shard's first adjustment; an entry with the `M_SEQADJ` meta bit owns its slot
//! there. Connections that never needed an adjustment never read it.
//!
//! [`Mangle`] is the payload rewrite the helper decided for the packet it just looked
//! at: kept on the table until the pipeline's transmit step applies it to that packet.

use super::table::{ConnTable, M_SEQADJ, M_USED};
use super::{Direction, EntryHandle};

/// `after(a, b)`: `a` is later than `b` in sequence space.
#[inline]
fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

/// One direction's adjustment (`struct nf_ct_seqadj`): sequence numbers after
/// `correction_pos` move by `offset_after`, the others by `offset_before`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqWay {
    /// The sequence number of the last rewritten segment.
    pub correction_pos: u32,
    /// The offset of segments at or before `correction_pos`.
    pub offset_before: i32,
    /// The offset of segments after it.
    pub offset_after: i32,
}

/// Both directions' adjustments of a connection (`struct nf_conn_seqadj`), indexed by
/// [`Direction`] as `usize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqAdj {
    /// ORIGINAL, REPLY.
    pub way: [SeqWay; 2],
}

impl SeqAdj {
    /// `nf_ct_seqadj_set`: a segment of direction `dir` starting at `seq` changed length
    /// by `off`. A new correction point is taken when the direction had none yet or
    /// `seq` is after the last one (a retransmission of the same segment changes
    /// nothing).
    pub fn set(&mut self, dir: usize, seq: u32, off: i32) {
        if off == 0 {
            return;
        }
        let w = &mut self.way[dir];
        if w.offset_before == w.offset_after || after(seq, w.correction_pos) {
            w.correction_pos = seq;
            w.offset_before = w.offset_after;
            w.offset_after = w.offset_after.wrapping_add(off);
        }
    }

    /// `nf_ct_seq_offset`: the offset of sequence number `seq` of direction `dir`.
    #[inline]
    pub fn offset(&self, dir: usize, seq: u32) -> i32 {
        let w = &self.way[dir];
        if after(seq, w.correction_pos) {
            w.offset_after
        } else {
            w.offset_before
        }
    }

    /// The sequence number of a segment of direction `dir` as it leaves.
    #[inline]
    pub fn map_seq(&self, dir: usize, seq: u32) -> u32 {
        seq.wrapping_add(self.offset(dir, seq) as u32)
    }

    /// An acknowledgement number (or SACK edge) carried by a segment of direction `dir`,
    /// as it leaves: it acknowledges the other direction's (adjusted) data, so the other
    /// way's offset is taken off. The comparison is made in the peer's unadjusted
    /// space, as the kernel does (`ack - offset_before` against the correction point).
    #[inline]
    pub fn map_ack(&self, dir: usize, ack: u32) -> u32 {
        let w = &self.way[1 - dir];
        let off = if after(ack.wrapping_sub(w.offset_before as u32), w.correction_pos) {
            w.offset_after
        } else {
            w.offset_before
        };
        ack.wrapping_sub(off as u32)
    }
}

/// Longest replacement text: `|2|` + a full-form IPv6 address (39) + `|65535|`.
pub const MANGLE_MAX: usize = 52;

/// A payload rewrite of one packet: `len` bytes at frame offset `at` become `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mangle {
    /// Frame offset of the replaced span (inside the TCP payload).
    pub at: u16,
    /// Length of the replaced span.
    pub len: u16,
    text: [u8; MANGLE_MAX],
    text_len: u8,
}

impl Mangle {
    /// A rewrite of `len` bytes at `at` to `text` (None when `text` is too long).
    pub fn new(at: u16, len: u16, text: &[u8]) -> Option<Mangle> {
        if text.len() > MANGLE_MAX {
            return None;
        }
        let mut t = [0u8; MANGLE_MAX];
        t[..text.len()].copy_from_slice(text);
        Some(Mangle {
            at,
            len,
            text: t,
            text_len: text.len() as u8,
        })
    }

    /// The replacement text.
    pub fn text(&self) -> &[u8] {
        &self.text[..usize::from(self.text_len)]
    }

    /// The length change.
    pub fn delta(&self) -> i32 {
        i32::from(self.text_len) - i32::from(self.len)
    }
}

impl ConnTable {
    /// Records a length change of `off` at `seq` in direction `dir` of the entry at
    /// `slot` (allocating the side array on the shard's first use).
    pub(super) fn seqadj_set(&mut self, slot: usize, dir: Direction, seq: u32, off: i32) {
        if off == 0 {
            return;
        }
        if self.seqadj.is_empty() {
            self.seqadj = vec![SeqAdj::default(); self.entries.len()].into_boxed_slice();
        }
        if self.entries[slot].meta & M_SEQADJ == 0 {
            self.seqadj[slot] = SeqAdj::default();
            self.entries[slot].meta |= M_SEQADJ;
        }
        self.seqadj[slot].set(dir as usize, seq, off);
    }

    /// The adjustment state of entry `h` (None when it never needed one, or is gone).
    #[inline]
    pub fn seqadj(&self, h: EntryHandle) -> Option<SeqAdj> {
        let slot = h.slot as usize;
        let e = self.entries.get(slot)?;
        (e.meta & (M_SEQADJ | M_USED) == (M_SEQADJ | M_USED) && self.gens[slot] == h.gen)
            .then(|| self.seqadj[slot])
    }

    /// The adjustment state of the entry at `slot`, for the TCP tracker (None: none).
    #[inline]
    pub(super) fn seqadj_of_slot(&self, slot: usize) -> Option<&SeqAdj> {
        (self.entries[slot].meta & M_SEQADJ != 0).then(|| &self.seqadj[slot])
    }

    /// The payload rewrite the helper decided for the packet of direction `dir` on `h`
    /// that it just looked at (the pipeline applies it as the packet goes out).
    #[inline]
    pub fn pending_mangle(&self, h: EntryHandle, dir: Direction) -> Option<Mangle> {
        self.mangle
            .filter(|(mh, md, _)| *mh == h && *md == dir)
            .map(|x| x.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_then_shrink_both_directions() {
        let mut s = SeqAdj::default();
        // ORIGINAL: the PORT segment at 1000 grew by 4.
        s.set(0, 1000, 4);
        assert_eq!(
            s.map_seq(0, 1000),
            1000,
            "the rewritten segment keeps its seq"
        );
        assert_eq!(s.map_seq(0, 1022), 1026, "later segments move by +4");
        assert_eq!(
            s.map_seq(0, 999),
            999,
            "a retransmission from before: unchanged"
        );
        // The peer acknowledges in the adjusted space: 1026 means our 1022.
        assert_eq!(s.map_ack(1, 1026), 1022);
        assert_eq!(
            s.map_ack(1, 1000),
            1000,
            "an ack up to the rewritten segment"
        );
        // A second command at 2000 shrinks by 3: before it +4, after it +1.
        s.set(0, 2000, -3);
        assert_eq!(s.way[0].offset_before, 4);
        assert_eq!(s.way[0].offset_after, 1);
        assert_eq!(s.map_seq(0, 2000), 2004);
        assert_eq!(s.map_seq(0, 2020), 2021);
        assert_eq!(
            s.map_seq(0, 1500),
            1504,
            "retransmission between the two points"
        );
        assert_eq!(s.map_ack(1, 2021), 2020);
        assert_eq!(s.map_ack(1, 2004), 2000);
        // A retransmission of the first rewritten segment (seq before the point) does
        // not move the correction point.
        s.set(0, 1000, 4);
        assert_eq!(s.way[0].correction_pos, 2000);
        // REPLY is independent; a 227 at 500 shrinking by 2.
        s.set(1, 500, -2);
        assert_eq!(s.map_seq(1, 600), 598);
        assert_eq!(s.map_ack(0, 598), 600);
        assert_eq!(
            s.map_seq(0, 2020),
            2021,
            "ORIGINAL unchanged by REPLY's point"
        );
    }

    #[test]
    fn sequence_wrap() {
        let mut s = SeqAdj::default();
        s.set(0, u32::MAX - 5, 10);
        assert_eq!(s.map_seq(0, 3), 13, "after the point across the wrap");
        assert_eq!(s.map_ack(1, 13), 3);
        assert_eq!(s.map_seq(0, u32::MAX - 10), u32::MAX - 10);
    }

    #[test]
    fn mangle_text_bounds() {
        assert!(Mangle::new(60, 15, &[b'x'; MANGLE_MAX]).is_some());
        assert!(Mangle::new(60, 15, &[b'x'; MANGLE_MAX + 1]).is_none());
        let m = Mangle::new(60, 15, b"198,51,100,1,156,64").unwrap();
        assert_eq!(m.delta(), 4);
        assert_eq!(m.text(), b"198,51,100,1,156,64");
    }
}
