//! `-m recent`: per-name lists of recently seen addresses with their last hit times,
//! shared by every worker (a [`Table`] of atomic slots). The semantics are
//! `xt_recent`'s; docs/SETS.md lists the divergences (table size and eviction).

use super::shared::{Key3, Payload, Table};
use crate::packet::{Family, Parsed};
use crate::Nanos;
use std::sync::atomic::{AtomicU64, Ordering};

/// Hit times remembered per address (the kernel's `ip_pkt_list_tot` default).
pub const STAMPS: usize = 20;

/// Slots per list.
pub const SLOTS: usize = 2048;

/// One address's hits.
#[derive(Debug, Default)]
pub struct RecentEntry {
    stamps: [AtomicU64; STAMPS],
    /// Hits recorded so far (the next stamp goes at `index % STAMPS`).
    index: AtomicU64,
    ttl: AtomicU64,
}

impl Payload for RecentEntry {
    fn last(&self) -> u64 {
        let i = self.index.load(Ordering::Acquire);
        if i == 0 {
            return 0;
        }
        self.stamps[((i - 1) % STAMPS as u64) as usize].load(Ordering::Relaxed)
    }
    fn reset(&self, now: u64) {
        self.stamps[0].store(now, Ordering::Relaxed);
        self.index.store(1, Ordering::Release);
        self.ttl.store(0, Ordering::Relaxed);
    }
}

impl RecentEntry {
    fn hit(&self, now: Nanos) {
        let i = self.index.fetch_add(1, Ordering::AcqRel);
        self.stamps[(i % STAMPS as u64) as usize].store(now, Ordering::Release);
    }

    fn stamps(&self) -> impl Iterator<Item = u64> + '_ {
        let n = self.index.load(Ordering::Acquire).min(STAMPS as u64) as usize;
        self.stamps[..n].iter().map(|s| s.load(Ordering::Relaxed))
    }

    /// Hit times, oldest first (control plane).
    pub fn hits(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.stamps().collect();
        v.sort_unstable();
        v
    }
}

/// One `--name` list.
#[derive(Debug)]
pub struct RecentTable {
    /// The list's name.
    pub name: String,
    /// Its entries.
    pub table: Table<RecentEntry>,
}

impl RecentTable {
    /// An empty list.
    pub fn new(name: &str) -> RecentTable {
        RecentTable {
            name: name.to_string(),
            table: Table::new(SLOTS),
        }
    }
}

/// `--set`, `--rcheck`, `--update`, `--remove`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecentCmd {
    /// Add the address (or a hit to it); always matches.
    Set,
    /// Match when the address is in the list (within `--seconds`, `--hitcount`).
    Check,
    /// Like Check, and record a hit when it matches.
    Update,
    /// Remove the address; match when it was there.
    Remove,
}

/// A `-m recent` rule's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentSpec {
    /// What to do.
    pub cmd: RecentCmd,
    /// `--seconds` (0: any time).
    pub seconds: u32,
    /// `--hitcount` (0: one hit is enough).
    pub hitcount: u32,
    /// `--rttl`: the TTL must equal the one recorded.
    pub rttl: bool,
    /// `--reap`: with `--seconds`, forget the address when no hit is that recent.
    pub reap: bool,
    /// `--rdest` (else `--rsource`).
    pub dest: bool,
    /// `--mask` (u128 layout).
    pub mask: u128,
    /// `!`.
    pub neg: bool,
    /// The ruleset's family (how `--mask` prints).
    pub family: Family,
}

fn key(addr: u128, family: Family) -> Key3 {
    [(addr >> 64) as u64, addr as u64, family as u64, 0, 0]
}

impl RecentSpec {
    /// Runs the match on a packet at `now` (xt_recent's `recent_mt`).
    #[inline]
    pub fn eval(&self, t: &RecentTable, p: &Parsed, now: Nanos) -> bool {
        let a = u128::from_be_bytes(if self.dest { p.dst } else { p.src }) & self.mask;
        let k = key(a, p.family);
        let ttl = p.ttl as u64;
        let mut ret = self.neg;
        let found = t.table.find(&k, now, 0).filter(|e| {
            let et = e.ttl.load(Ordering::Relaxed);
            !self.rttl || et == 0 || et == ttl
        });
        let Some(e) = found else {
            if self.cmd != RecentCmd::Set {
                return ret;
            }
            let (e, _) = t.table.find_or_insert(&k, now, 0);
            e.ttl.store(ttl, Ordering::Relaxed);
            return !ret;
        };
        match self.cmd {
            RecentCmd::Set => ret = !ret,
            RecentCmd::Remove => {
                t.table.remove(&k);
                return !ret;
            }
            RecentCmd::Check | RecentCmd::Update => {
                let since = now.saturating_sub(self.seconds as u64 * 1_000_000_000);
                let mut hits = 0;
                let mut recent = false;
                for s in e.stamps() {
                    if self.seconds > 0 && s < since {
                        continue;
                    }
                    recent = true;
                    hits += 1;
                    if self.hitcount == 0 || hits >= self.hitcount {
                        ret = !ret;
                        break;
                    }
                }
                if self.reap && !recent {
                    t.table.remove(&k);
                    return ret;
                }
            }
        }
        if self.cmd == RecentCmd::Set || (self.cmd == RecentCmd::Update && ret) {
            e.hit(now);
            e.ttl.store(ttl, Ordering::Relaxed);
        }
        ret
    }
}
