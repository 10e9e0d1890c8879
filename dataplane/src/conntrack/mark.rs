//! The connection mark (`ct->mark`, CONNMARK and `-m connmark`): a `u32` per slot in a
//! side array, allocated by [`ConnTable::reserve_marks`] when a ruleset first uses
//! marks (the control plane's step, never per packet); zero for a new entry.

use super::{ConnTable, EntryHandle};

impl ConnTable {
    /// Allocates the per-slot connection marks (once; later calls do nothing).
    pub fn reserve_marks(&mut self) {
        if self.marks.is_empty() {
            self.marks = vec![0u32; self.entries.len()].into_boxed_slice();
        }
    }

    /// The mark of the entry (or candidate) `h`; 0 when marks are not reserved or the
    /// handle is stale.
    #[inline]
    pub fn ctmark(&self, h: EntryHandle) -> u32 {
        let slot = h.slot as usize;
        match self.marks.get(slot) {
            Some(&m) if self.gens[slot] == h.gen => m,
            _ => 0,
        }
    }

    /// Sets the mark of the entry `h` (ignored when marks are not reserved or the
    /// handle is stale).
    #[inline]
    pub fn set_ctmark(&mut self, h: EntryHandle, m: u32) {
        let slot = h.slot as usize;
        if self.gens.get(slot) == Some(&h.gen) {
            if let Some(x) = self.marks.get_mut(slot) {
                *x = m;
            }
        }
    }

    /// Clears the mark of a slot taken by a new entry.
    #[inline]
    pub(super) fn clear_ctmark(&mut self, slot: usize) {
        if let Some(x) = self.marks.get_mut(slot) {
            *x = 0;
        }
    }
}
