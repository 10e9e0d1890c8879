//! The per-connection verdict cache's storage: per slot and direction, the ruleset
//! epoch a filter ACCEPT was proved under, the counter slot it bumps, the `ct_status`
//! bits and the port/chain key it was proved for (`ruleset/vcache.rs` says what is
//! proved). A side array (the 64-byte entry line is full), allocated by
//! [`ConnTable::reserve_verdicts`] (a control-plane step), cleared when a slot is freed,
//! so a new connection in the slot never sees its predecessor's verdict.

use super::{ConnTable, Direction, EntryHandle};

/// One direction's cached verdict (epoch 0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerdictSlot {
    /// The pipeline's ruleset epoch the ACCEPT was proved under (0: empty).
    pub epoch: u32,
    /// The rule counter slot to bump.
    pub counter: u32,
    /// The `ct_status` bits the walk saw.
    pub status: u8,
    /// The pipeline's key for (in port, out port, filter chain).
    pub ports: u8,
}

impl ConnTable {
    /// Allocates the verdict cache (once; later calls do nothing).
    pub fn reserve_verdicts(&mut self) {
        if self.verdicts.is_empty() {
            self.verdicts =
                vec![[VerdictSlot::default(); 2]; self.entries.len()].into_boxed_slice();
        }
    }

    /// Forgets every cached verdict (an epoch wrap; a control-plane step).
    pub fn clear_verdicts(&mut self) {
        self.verdicts.fill([VerdictSlot::default(); 2]);
    }

    /// The cached verdict of the live entry `h` for direction `d` (an empty one when
    /// the cache is not reserved). `h` must be current (as [`ConnTable::track`]'s
    /// handle is for the packet it tracked): the generation is not checked here, to
    /// spare the hot path a read; a freed or re-created slot's verdicts are cleared.
    #[inline]
    pub fn verdict(&self, h: EntryHandle, d: Direction) -> VerdictSlot {
        match self.verdicts.get(h.slot as usize) {
            Some(v) => v[d as usize],
            None => VerdictSlot::default(),
        }
    }

    /// Caches a verdict for entry `h`, direction `d` (ignored when the cache is not
    /// reserved or the handle is stale).
    #[inline]
    pub fn set_verdict(&mut self, h: EntryHandle, d: Direction, v: VerdictSlot) {
        let slot = h.slot as usize;
        if self.gens.get(slot) == Some(&h.gen) {
            if let Some(x) = self.verdicts.get_mut(slot) {
                x[d as usize] = v;
            }
        }
    }

    /// Clears the cached verdicts of a slot being freed.
    #[inline]
    pub(super) fn clear_verdict(&mut self, slot: usize) {
        if let Some(x) = self.verdicts.get_mut(slot) {
            *x = [VerdictSlot::default(); 2];
        }
    }
}
