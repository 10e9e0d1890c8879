//! `-m hashlimit`: a token bucket per flow key (addresses, ports, by `--hashlimit-mode`
//! and the masks), shared by every worker. Each bucket is one atomic word, its
//! theoretical arrival time (GCRA): a packet conforms when `tat <= now + tau`, then
//! `tat = max(tat, now) + interval` by compare-and-swap. That is the kernel's credit
//! bucket (burst packets at once, then one per interval) without a lock.

use super::shared::{Key3, Payload, Table};
use crate::packet::{Parsed, L4};
use crate::Nanos;
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots per `--hashlimit-name` table.
pub const SLOTS: usize = 8192;

/// One flow key's bucket.
#[derive(Debug, Default)]
pub struct Bucket {
    tat: AtomicU64,
    last: AtomicU64,
}

impl Payload for Bucket {
    fn last(&self) -> u64 {
        self.last.load(Ordering::Relaxed)
    }
    fn reset(&self, now: u64) {
        self.tat.store(now, Ordering::Relaxed);
        self.last.store(now, Ordering::Relaxed);
    }
}

/// One `--hashlimit-name` table.
#[derive(Debug)]
pub struct HashlimitTable {
    /// Its name.
    pub name: String,
    /// The buckets.
    pub table: Table<Bucket>,
}

impl HashlimitTable {
    /// An empty table.
    pub fn new(name: &str) -> HashlimitTable {
        HashlimitTable {
            name: name.to_string(),
            table: Table::new(SLOTS),
        }
    }
}

/// `--hashlimit-mode` bits.
pub mod mode {
    /// srcip.
    pub const SRCIP: u8 = 1;
    /// srcport.
    pub const SRCPORT: u8 = 2;
    /// dstip.
    pub const DSTIP: u8 = 4;
    /// dstport.
    pub const DSTPORT: u8 = 8;
    /// The names in the order iptables prints them.
    pub const NAMES: &[(u8, &str)] = &[
        (SRCIP, "srcip"),
        (SRCPORT, "srcport"),
        (DSTIP, "dstip"),
        (DSTPORT, "dstport"),
    ];
}

/// A `-m hashlimit` rule's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashlimitSpec {
    /// Nanoseconds per packet at the rate.
    pub interval: u64,
    /// `--hashlimit-burst`.
    pub burst: u32,
    /// `--hashlimit-above` (else `-upto`).
    pub above: bool,
    /// `--hashlimit-mode` bits.
    pub mode: u8,
    /// `--hashlimit-srcmask` as a mask (u128 layout).
    pub srcmask: u128,
    /// `--hashlimit-dstmask`.
    pub dstmask: u128,
    /// `--hashlimit-htable-expire` in ns.
    pub expire: u64,
}

impl HashlimitSpec {
    fn key(&self, p: &Parsed) -> Key3 {
        let src = if self.mode & mode::SRCIP != 0 {
            u128::from_be_bytes(p.src) & self.srcmask
        } else {
            0
        };
        let dst = if self.mode & mode::DSTIP != 0 {
            u128::from_be_bytes(p.dst) & self.dstmask
        } else {
            0
        };
        let (sp, dp) = match p.l4 {
            L4::Tcp(t) => (t.sport, t.dport),
            L4::Udp(u) => (u.sport, u.dport),
            _ => (0, 0),
        };
        let sp = if self.mode & mode::SRCPORT != 0 {
            sp
        } else {
            0
        };
        let dp = if self.mode & mode::DSTPORT != 0 {
            dp
        } else {
            0
        };
        let rest = (sp as u64) << 32 | (dp as u64) << 16 | (p.proto as u64) << 8 | p.family as u64;
        [
            (src >> 64) as u64,
            src as u64,
            (dst >> 64) as u64,
            dst as u64,
            rest,
        ]
    }

    /// Runs the match: upto matches a conforming packet (and takes its token); above
    /// matches a packet over the rate (which takes nothing).
    #[inline]
    pub fn eval(&self, t: &HashlimitTable, p: &Parsed, now: Nanos) -> bool {
        let k = self.key(p);
        let (b, _) = t.table.find_or_insert(&k, now, self.expire);
        b.last.store(now, Ordering::Relaxed);
        let tau = self
            .interval
            .saturating_mul(self.burst.saturating_sub(1) as u64);
        let mut tat = b.tat.load(Ordering::Acquire);
        let conform = loop {
            if tat > now.saturating_add(tau) {
                break false;
            }
            let next = tat.max(now).saturating_add(self.interval);
            match b
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break true,
                Err(x) => tat = x,
            }
        };
        conform != self.above
    }
}
