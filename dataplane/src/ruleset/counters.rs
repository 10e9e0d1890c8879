//! Counter slots and their carry-over across a reload: which slot of the old ruleset
//! holds the same rule, and the per-worker [`RuleCounters`] (packets and bytes per slot,
//! `-m limit` buckets).

use super::{Ruleset, Table};
use crate::conntrack::Nanos;

impl Ruleset {
    /// The identity of each counter slot: table, chain, canonical rule text (empty for a
    /// policy slot) and occurrence among identical rules of the chain.
    fn slot_keys(&self) -> Vec<(Table, &str, &str, usize)> {
        let mut out = Vec::with_capacity(self.counter_slots());
        let mut seen: std::collections::HashMap<(usize, &str), usize> = Default::default();
        for r in &self.rules {
            let n = seen.entry((r.chain, r.text.as_str())).or_insert(0);
            let c = &self.chains[r.chain];
            out.push((c.table, c.name.as_str(), r.text.as_str(), *n));
            *n += 1;
        }
        for c in &self.chains {
            out.push((c.table, c.name.as_str(), "", usize::MAX));
        }
        out
    }

    /// For each counter slot of `new`, the slot of `old` holding the same rule (same table,
    /// chain, normalised text and occurrence) or the same chain policy: carry counters of
    /// unchanged rules across a reload with [`carry_counters`].
    pub fn remap(old: &Ruleset, new: &Ruleset) -> Vec<Option<usize>> {
        let old_keys: std::collections::HashMap<_, usize> = old
            .slot_keys()
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect();
        new.slot_keys()
            .into_iter()
            .map(|k| old_keys.get(&k).copied())
            .collect()
    }
}

/// Builds the counters of a new ruleset from the old one's summed snapshot and
/// [`Ruleset::remap`]'s map (slots without a match start at zero).
pub fn carry_counters(old: &[(u64, u64)], map: &[Option<usize>]) -> Vec<(u64, u64)> {
    map.iter()
        .map(|m| m.and_then(|i| old.get(i).copied()).unwrap_or((0, 0)))
        .collect()
}

/// A `-m limit` bucket's state, per worker.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LimitState {
    /// Credit in nanoseconds of rate (one token = `interval`).
    pub credit: u64,
    /// When the credit was last refilled; None before the first packet (bucket full).
    pub last: Option<Nanos>,
}

/// Per-worker counters for one ruleset: packets and bytes per counter slot (rules, then
/// chain policies) and the `-m limit` buckets. Plain arrays; summed by the control plane.
#[derive(Debug, Clone)]
pub struct RuleCounters {
    pub(crate) slots: Vec<(u64, u64)>,
    pub(crate) limits: Vec<LimitState>,
    /// Counters of the paired other-family ruleset.
    pub(crate) other: Option<Box<RuleCounters>>,
    /// The chain walk's return stack, allocated with the counters so a walk never sets
    /// up (or zeroes) one per packet.
    pub(crate) stack: Box<[CallFrame]>,
}

/// A return frame of the chain walk: (chain, positions in its three rule lists).
pub(crate) type CallFrame = (u32, u32, u32, u32);

/// A fresh walk stack, [`super::MAX_CALL_DEPTH`] frames deep.
pub(crate) fn call_stack() -> Box<[CallFrame]> {
    vec![(0, 0, 0, 0); super::MAX_CALL_DEPTH].into_boxed_slice()
}

impl RuleCounters {
    /// Counters for `new` after a reload from `old`: rules that did not change keep
    /// their counts (and chain policies theirs); the rest start at zero. `-m limit`
    /// buckets start full.
    pub fn carry_over(&self, old: &Ruleset, new: &Ruleset) -> RuleCounters {
        let other = new.other.as_deref().map(|n| {
            Box::new(match (old.other.as_deref(), self.other.as_deref()) {
                (Some(o), Some(c)) if o.family == n.family => c.carry_over(o, n),
                _ => RuleCounters::for_ruleset(n),
            })
        });
        RuleCounters {
            slots: carry_counters(&self.slots, &Ruleset::remap(old, new)),
            limits: vec![LimitState::default(); new.limit_count()],
            other,
            stack: call_stack(),
        }
    }

    /// Zeroed counters (and full limit buckets) sized for `rs` (and its paired family).
    pub fn for_ruleset(rs: &Ruleset) -> RuleCounters {
        RuleCounters {
            slots: vec![(0, 0); rs.counter_slots()],
            limits: vec![LimitState::default(); rs.limit_count()],
            other: rs
                .other
                .as_deref()
                .map(|o| Box::new(RuleCounters::for_ruleset(o))),
            stack: call_stack(),
        }
    }

    /// The counters to use with `rs` when it is the paired other-family ruleset.
    #[inline]
    pub(crate) fn for_other(&mut self) -> Option<&mut RuleCounters> {
        self.other.as_deref_mut()
    }

    /// (packets, bytes) per slot: rule ids first, then one per chain (policy counters).
    pub fn snapshot(&self) -> Vec<(u64, u64)> {
        let mut v = self.slots.clone();
        if let Some(o) = &self.other {
            v.extend(o.snapshot());
        }
        v
    }

    /// (packets, bytes) of one slot.
    pub fn get(&self, slot: usize) -> (u64, u64) {
        self.slots.get(slot).copied().unwrap_or((0, 0))
    }

    /// Adds another snapshot slot by slot (summing workers, or carried counters).
    pub fn add(&mut self, other: &[(u64, u64)]) {
        for (a, b) in self.slots.iter_mut().zip(other) {
            a.0 += b.0;
            a.1 += b.1;
        }
    }
}
