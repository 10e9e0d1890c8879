//! The conntrack counters: one table, [`CtCounter`], that names every counter once.
//! [`Stats`] (the shard's plain counters), the worker's published block, the API's
//! `conntrack -S` view, the metrics and `statewall ctl conntrack stats` all iterate it,
//! so a counter cannot be added to one of them and forgotten in another.

use crate::packet::proto;

/// One conntrack counter. The first eight are Linux's `conntrack -S` fields, in its
/// order; the rest count expired entries by protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum CtCounter {
    /// Packets that found an existing entry.
    Found,
    /// Packets labelled INVALID.
    Invalid,
    /// Packets not tracked (NOTRACK).
    Ignore,
    /// Entries inserted (confirmed).
    Insert,
    /// Inserts that failed (clash for TCP, probe window full); the packet was dropped.
    InsertFailed,
    /// Packets dropped because the table was full (early drop freed nothing).
    Drop,
    /// Entries evicted by early drop.
    EarlyDrop,
    /// Lookups restarted (a TCP reopen kills the old entry and looks up again).
    SearchRestart,
    /// Expired TCP entries reaped.
    ExpiredTcp,
    /// Expired UDP entries reaped.
    ExpiredUdp,
    /// Expired ICMP entries reaped.
    ExpiredIcmp,
    /// Expired ICMPv6 entries reaped.
    ExpiredIcmpv6,
    /// Expired entries of other protocols reaped.
    ExpiredGeneric,
}

impl CtCounter {
    /// The number of counters.
    pub const N: usize = 13;

    /// Every counter, in declaration order (`ALL[c as usize] == c`).
    pub const ALL: [CtCounter; CtCounter::N] = [
        CtCounter::Found,
        CtCounter::Invalid,
        CtCounter::Ignore,
        CtCounter::Insert,
        CtCounter::InsertFailed,
        CtCounter::Drop,
        CtCounter::EarlyDrop,
        CtCounter::SearchRestart,
        CtCounter::ExpiredTcp,
        CtCounter::ExpiredUdp,
        CtCounter::ExpiredIcmp,
        CtCounter::ExpiredIcmpv6,
        CtCounter::ExpiredGeneric,
    ];

    /// The `conntrack -S` fields, in its order.
    pub const CONNTRACK_S: &'static [CtCounter] =
        CtCounter::ALL.split_at(CtCounter::ExpiredTcp as usize).0;

    /// The expiration counters, one per protocol ([`CtCounter::expired_proto`]).
    pub const EXPIRED: &'static [CtCounter] =
        CtCounter::ALL.split_at(CtCounter::ExpiredTcp as usize).1;

    /// The counter's name: the `conntrack -S` field name (`found`, `insert_failed`,
    /// ...), or `expired_<proto>`.
    pub const fn name(self) -> &'static str {
        match self {
            CtCounter::Found => "found",
            CtCounter::Invalid => "invalid",
            CtCounter::Ignore => "ignore",
            CtCounter::Insert => "insert",
            CtCounter::InsertFailed => "insert_failed",
            CtCounter::Drop => "drop",
            CtCounter::EarlyDrop => "early_drop",
            CtCounter::SearchRestart => "search_restart",
            CtCounter::ExpiredTcp => "expired_tcp",
            CtCounter::ExpiredUdp => "expired_udp",
            CtCounter::ExpiredIcmp => "expired_icmp",
            CtCounter::ExpiredIcmpv6 => "expired_icmpv6",
            CtCounter::ExpiredGeneric => "expired_generic",
        }
    }

    /// For an expiration counter, its protocol label (`tcp`, `udp`, `icmp`, `icmpv6`,
    /// `other`); `None` for the `conntrack -S` fields.
    pub const fn expired_proto(self) -> Option<&'static str> {
        match self {
            CtCounter::ExpiredTcp => Some("tcp"),
            CtCounter::ExpiredUdp => Some("udp"),
            CtCounter::ExpiredIcmp => Some("icmp"),
            CtCounter::ExpiredIcmpv6 => Some("icmpv6"),
            CtCounter::ExpiredGeneric => Some("other"),
            _ => None,
        }
    }

    /// The expiration counter of an IP protocol number.
    pub const fn expired(ip_proto: u8) -> CtCounter {
        match ip_proto {
            proto::TCP => CtCounter::ExpiredTcp,
            proto::UDP => CtCounter::ExpiredUdp,
            proto::ICMP => CtCounter::ExpiredIcmp,
            proto::ICMPV6 => CtCounter::ExpiredIcmpv6,
            _ => CtCounter::ExpiredGeneric,
        }
    }
}

/// A shard's counters, indexed by [`CtCounter`] (`stats[CtCounter::Found]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats([u64; CtCounter::N]);

impl Stats {
    /// The value of one counter.
    pub fn get(&self, c: CtCounter) -> u64 {
        self.0[c as usize]
    }

    /// Every counter with its value, in [`CtCounter::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (CtCounter, u64)> + '_ {
        CtCounter::ALL.iter().map(|&c| (c, self.get(c)))
    }
}

impl std::ops::Index<CtCounter> for Stats {
    type Output = u64;
    fn index(&self, c: CtCounter) -> &u64 {
        &self.0[c as usize]
    }
}

impl std::ops::IndexMut<CtCounter> for Stats {
    fn index_mut(&mut self, c: CtCounter) -> &mut u64 {
        &mut self.0[c as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order_and_names_are_unique() {
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in CtCounter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?}");
            assert!(names.insert(c.name()), "{} twice", c.name());
        }
        assert_eq!(
            CtCounter::CONNTRACK_S.len() + CtCounter::EXPIRED.len(),
            CtCounter::N
        );
        assert!(CtCounter::CONNTRACK_S
            .iter()
            .all(|c| c.expired_proto().is_none()));
        assert!(CtCounter::EXPIRED
            .iter()
            .all(|c| c.expired_proto().is_some()));
        for c in CtCounter::EXPIRED {
            let p = c.expired_proto().unwrap();
            assert!(c.name().ends_with(p) || p == "other", "{c:?}");
        }
    }

    #[test]
    fn each_counter_has_its_own_slot() {
        for c in CtCounter::ALL {
            let mut s = Stats::default();
            s[c] += 2;
            assert_eq!(s.get(c), 2);
            assert_eq!(s.iter().map(|(_, v)| v).sum::<u64>(), 2, "{c:?}");
        }
    }
}
