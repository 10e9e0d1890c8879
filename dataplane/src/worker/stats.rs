//! Worker statistics: why packets were dropped, the worker-local counters and the
//! block a worker publishes once per loop iteration for the control plane.
//!
//! Counters are plain integers while the worker runs a burst and are stored (Relaxed,
//! by the owning worker only) into a cache-padded [`PublishedStats`] once per loop
//! iteration: no read-modify-write, no false sharing on the hot path.

use crate::conntrack::{CtCounter, CtState, Stats};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why the worker dropped a packet: the closed set behind `statewall_drops_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// A ruleset DROP (a rule or a chain policy).
    Policy,
    /// A ruleset REJECT (the reply, if any, was sent).
    Reject,
    /// The IP header was malformed (the IP stack would have discarded it).
    Malformed,
    /// A non-IP frame refused by the non-IP policy.
    NonIp,
    /// The connection table was full and nothing could be evicted.
    TableFull,
    /// A conntrack helper refused the packet (e.g. a partial FTP command).
    Helper,
    /// The transmit queue did not take the packet.
    TxFull,
    /// No buffer was available (e.g. for a REJECT reply).
    NoBuffer,
    /// The ring to the owning worker was full.
    HandoffFull,
    /// A fragment was discarded by reassembly (overlap, timeout, too long, ...).
    Fragment,
    /// NAT found no free tuple in its range (or MASQUERADE/REDIRECT had no address).
    NatNoPort,
}

impl DropReason {
    /// Every reason, in a stable order (metrics pre-initialise all of them).
    pub const ALL: [DropReason; 11] = [
        DropReason::Policy,
        DropReason::Reject,
        DropReason::Malformed,
        DropReason::NonIp,
        DropReason::TableFull,
        DropReason::Helper,
        DropReason::TxFull,
        DropReason::NoBuffer,
        DropReason::HandoffFull,
        DropReason::Fragment,
        DropReason::NatNoPort,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Policy => "policy",
            DropReason::Reject => "reject",
            DropReason::Malformed => "malformed",
            DropReason::NonIp => "non_ip",
            DropReason::TableFull => "table_full",
            DropReason::Helper => "helper",
            DropReason::TxFull => "tx_full",
            DropReason::NoBuffer => "no_buffer",
            DropReason::HandoffFull => "handoff_full",
            DropReason::Fragment => "fragment",
            DropReason::NatNoPort => "nat_no_port",
        }
    }
}

/// Index of a [`CtState`] in per-state counters.
pub fn state_index(s: CtState) -> usize {
    match s {
        CtState::New => 0,
        CtState::Established => 1,
        CtState::Related => 2,
        CtState::Invalid => 3,
        CtState::Untracked => 4,
    }
}

/// Names of the states in [`state_index`] order.
pub const STATE_NAMES: [&str; 5] = ["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"];

/// Worker-local counters (plain integers; published per burst).
#[derive(Debug, Clone, Default)]
pub struct LocalStats {
    /// Packets processed.
    pub packets: u64,
    /// Bytes processed.
    pub bytes: u64,
    /// Packets by conntrack state ([`state_index`]).
    pub by_state: [u64; 5],
    /// Drops by reason (index: `reason as usize`, the [`DropReason::ALL`] order).
    pub drops: [u64; DropReason::ALL.len()],
    /// Packets forwarded.
    pub forwarded: u64,
    /// REJECT replies sent.
    pub rejects_sent: u64,
    /// Packets accepted by the ruleset.
    pub verdict_accept: u64,
    /// Packets dropped by the ruleset.
    pub verdict_drop: u64,
    /// Packets rejected by the ruleset.
    pub verdict_reject: u64,
    /// Non-IP frames passed.
    pub non_ip_passed: u64,
    /// Malformed frames by parse reason (debug aid; summed into drops).
    pub malformed: u64,
    /// Packets handed to the worker owning their connection (not in `packets`).
    pub handed_off: u64,
}

impl LocalStats {
    /// Counts one packet dropped for `r`.
    pub(crate) fn drop(&mut self, r: DropReason) {
        // `ALL` lists the reasons in declaration order, so the discriminant is the index.
        self.drops[r as usize] += 1;
    }
}

/// Statistics a worker publishes for the control plane once per burst (relaxed stores
/// by the owning worker only; readers sum over workers).
#[derive(Debug, Default)]
pub struct PublishedStats {
    /// Packets processed.
    pub packets: AtomicU64,
    /// Bytes processed.
    pub bytes: AtomicU64,
    /// Packets by conntrack state.
    pub by_state: [AtomicU64; 5],
    /// Drops by reason ([`DropReason::ALL`] order).
    pub drops: [AtomicU64; DropReason::ALL.len()],
    /// Packets forwarded.
    pub forwarded: AtomicU64,
    /// REJECT replies sent.
    pub rejects_sent: AtomicU64,
    /// Ruleset verdicts: accept, drop, reject.
    pub verdicts: [AtomicU64; 3],
    /// Non-IP frames passed.
    pub non_ip_passed: AtomicU64,
    /// Time spent on bursts that carried packets (TSC cycles or ns).
    pub busy_cycles: AtomicU64,
    /// Time spent in the loop overall.
    pub total_cycles: AtomicU64,
    /// Polls that returned packets / all polls.
    pub busy_polls: AtomicU64,
    /// All polls.
    pub polls: AtomicU64,
    /// Burst-size histogram: bucket i counts bursts of size <= 2^i (0..=8 for 1..256), plus 0.
    pub burst_hist: [AtomicU64; 10],
    /// Conntrack entries in this worker's shard.
    pub ct_entries: AtomicU64,
    /// Of them, entries with a NAT binding.
    pub nat_bindings: AtomicU64,
    /// The shard's conntrack counters (`conntrack -S` and expirations), indexed by
    /// [`CtCounter`]: read them with [`PublishedStats::ct`].
    pub ct: [AtomicU64; CtCounter::N],
    /// Packets handed to the worker owning their connection.
    pub handed_off: AtomicU64,
}

impl PublishedStats {
    pub(super) fn publish(&self, s: &LocalStats) {
        let st = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        st(&self.packets, s.packets);
        st(&self.bytes, s.bytes);
        for i in 0..5 {
            st(&self.by_state[i], s.by_state[i]);
        }
        for i in 0..DropReason::ALL.len() {
            st(&self.drops[i], s.drops[i]);
        }
        st(&self.forwarded, s.forwarded);
        st(&self.handed_off, s.handed_off);
        st(&self.rejects_sent, s.rejects_sent);
        st(&self.verdicts[0], s.verdict_accept);
        st(&self.verdicts[1], s.verdict_drop);
        st(&self.verdicts[2], s.verdict_reject);
        st(&self.non_ip_passed, s.non_ip_passed);
    }

    /// Stores the shard's `conntrack -S` counters and expirations.
    pub(super) fn publish_conntrack(&self, cs: &Stats) {
        for (c, v) in cs.iter() {
            self.ct[c as usize].store(v, Ordering::Relaxed);
        }
    }

    /// One published conntrack counter.
    pub fn ct(&self, c: CtCounter) -> u64 {
        self.ct[c as usize].load(Ordering::Relaxed)
    }
}

/// Histogram bucket of a burst size: 0 for empty, else 1 + ceil(log2(n)), capped at 9.
pub fn burst_bucket(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (1 + (usize::BITS - (n - 1).leading_zeros()) as usize).min(9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_index_their_own_slot() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
            let mut s = LocalStats::default();
            s.drop(*r);
            assert_eq!(s.drops[i], 1);
            assert_eq!(s.drops.iter().sum::<u64>(), 1);
        }
    }
}
