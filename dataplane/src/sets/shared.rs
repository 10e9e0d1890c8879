//! A fixed-size open-addressing table with atomic slots, shared by every worker: the
//! storage of `-m recent` and `-m hashlimit`. No lock: a slot is claimed with a
//! compare-and-swap on its state word, its key written, then published with a release
//! store; readers compare the state and the key words. Lookups probe a window of
//! [`WINDOW`] slots; when the window is full, the entry idle the longest is replaced.
//!
//! Consistency: every worker sees every change (no per-worker copy), with two races
//! the table accepts rather than lock: two workers inserting one new key at the same
//! instant may make two entries (each counts its own hits until one is reclaimed), and
//! a reader racing an eviction may read the evicted entry's payload once.

use std::sync::atomic::{AtomicU64, Ordering};

/// Slots probed per lookup.
pub const WINDOW: usize = 16;

const EMPTY: u64 = 0;
const WRITING: u64 = 1;

/// What a slot holds besides its key.
pub trait Payload: Default + Send + Sync {
    /// When the entry was last used (for eviction and expiry).
    fn last(&self) -> u64;
    /// Makes the payload a fresh entry's at `now`.
    fn reset(&self, now: u64);
}

/// A key (an address; for hashlimit both addresses, ports and protocol).
pub type Key3 = [u64; KEY_WORDS];

/// Words in a key: two addresses, then ports, protocol and family.
pub const KEY_WORDS: usize = 5;

struct Slot<P> {
    /// EMPTY, WRITING, or the key's hash with bit 1 set (ready).
    state: AtomicU64,
    key: [AtomicU64; KEY_WORDS],
    payload: P,
}

impl<P: Payload> Default for Slot<P> {
    fn default() -> Self {
        Slot {
            state: AtomicU64::new(EMPTY),
            key: Default::default(),
            payload: P::default(),
        }
    }
}

/// The table.
pub struct Table<P> {
    slots: Box<[Slot<P>]>,
    mask: usize,
}

impl<P> std::fmt::Debug for Table<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({} slots)", self.slots.len())
    }
}

#[inline]
fn hash(k: &Key3) -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for &w in k {
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    // Ready states have bit 1 set and are never EMPTY or WRITING.
    (h ^ (h >> 31)) | 2
}

impl<P: Payload> Table<P> {
    /// A table of at least `n` slots (a power of two, at least [`WINDOW`]).
    pub fn new(n: usize) -> Table<P> {
        let n = n.max(WINDOW).next_power_of_two();
        Table {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
        }
    }

    fn key_is(&self, i: usize, k: &Key3) -> bool {
        let s = &self.slots[i];
        s.key
            .iter()
            .zip(k)
            .all(|(w, v)| w.load(Ordering::Relaxed) == *v)
    }

    /// The live entry of `k` (idle less than `expire` ns when `expire` > 0).
    #[inline]
    pub fn find(&self, k: &Key3, now: u64, expire: u64) -> Option<&P> {
        let h = hash(k);
        let base = h as usize;
        for j in 0..WINDOW {
            let i = (base + j) & self.mask;
            let s = &self.slots[i];
            if s.state.load(Ordering::Acquire) == h && self.key_is(i, k) {
                if expire > 0 && now.saturating_sub(s.payload.last()) >= expire {
                    return None;
                }
                return Some(&s.payload);
            }
        }
        None
    }

    /// The entry of `k`, made (with [`Payload::reset`]) when there is none: in an empty
    /// or expired slot of the window, else in place of the one idle the longest. The
    /// bool is true when the entry is new.
    #[inline]
    pub fn find_or_insert(&self, k: &Key3, now: u64, expire: u64) -> (&P, bool) {
        let h = hash(k);
        let base = h as usize;
        let mut oldest = (u64::MAX, base & self.mask);
        for j in 0..WINDOW {
            let i = (base + j) & self.mask;
            let s = &self.slots[i];
            let st = s.state.load(Ordering::Acquire);
            if st == h
                && self.key_is(i, k)
                && (expire == 0 || now.saturating_sub(s.payload.last()) < expire)
            {
                return (&s.payload, false);
            }
            let last = s.payload.last();
            if st > WRITING && last < oldest.0 {
                oldest = (last, i);
            }
        }
        for j in 0..WINDOW {
            let i = (base + j) & self.mask;
            let s = &self.slots[i];
            let st = s.state.load(Ordering::Acquire);
            let free = st == EMPTY
                || (st > WRITING && expire > 0 && now.saturating_sub(s.payload.last()) >= expire)
                || (st == h && self.key_is(i, k));
            if free && self.claim(i, st, k, h, now) {
                return (&s.payload, true);
            }
        }
        let (_, i) = oldest;
        let st = self.slots[i].state.load(Ordering::Acquire);
        if st > WRITING && self.claim(i, st, k, h, now) {
            return (&self.slots[i].payload, true);
        }
        // Lost every race: share the oldest slot's payload for this packet.
        (&self.slots[i].payload, true)
    }

    fn claim(&self, i: usize, from: u64, k: &Key3, h: u64, now: u64) -> bool {
        let s = &self.slots[i];
        if s.state
            .compare_exchange(from, WRITING, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        for (w, v) in s.key.iter().zip(k) {
            w.store(*v, Ordering::Relaxed);
        }
        s.payload.reset(now);
        s.state.store(h, Ordering::Release);
        true
    }

    /// Removes the entry of `k`; true when there was one.
    pub fn remove(&self, k: &Key3) -> bool {
        let h = hash(k);
        let base = h as usize;
        for j in 0..WINDOW {
            let i = (base + j) & self.mask;
            let s = &self.slots[i];
            if s.state.load(Ordering::Acquire) == h
                && self.key_is(i, k)
                && s.state
                    .compare_exchange(h, EMPTY, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                return true;
            }
        }
        false
    }

    /// Empties the table (control plane).
    pub fn clear(&self) {
        for s in self.slots.iter() {
            s.state.store(EMPTY, Ordering::Release);
        }
    }

    /// The live entries' keys and payloads (control plane; a snapshot, not atomic).
    pub fn entries(&self) -> Vec<(Key3, &P)> {
        self.slots
            .iter()
            .filter(|s| s.state.load(Ordering::Acquire) > WRITING)
            .map(|s| {
                (
                    std::array::from_fn(|i| s.key[i].load(Ordering::Relaxed)),
                    &s.payload,
                )
            })
            .collect()
    }
}
