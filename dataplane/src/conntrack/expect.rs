//! The global expectation table (`nf_conntrack_expect.c`), shared by every worker.
//!
//! An expectation announces a connection a helper (FTP) has seen negotiated on a master
//! connection: `{src, dst, dport, proto}` exact and the source port wildcard (the only
//! mask FTP uses, so "overlapping under the intersection of the masks" is "same key").
//!
//! * Consulted only by a packet that missed its worker's shard (`docs/CONNTRACK.md` §1.3 step
//!   5c), and only when the table is not empty (one relaxed atomic load): the
//!   established fast path never touches it.
//! * Registration (`docs/CONNTRACK.md` §4.3), from the master's owner worker at confirm time: an identical
//!   one from the same master and class is replaced; from the same master with another
//!   class → `Already`; from another master → `Busy`; per master at most
//!   [`MAX_EXPECTED`] (a newer one evicts the older); the global count at `expect_max` →
//!   `Full` (-EMFILE). Every error makes the helper DROP the packet.
//! * Removal: used (one-shot, [`ExpectTable::take`]), expired (300 s after creation, not
//!   refreshed; reaped lazily by `take`/`register` and by [`ExpectTable::maybe_expire`],
//!   which the workers call once per loop and which sweeps at most once a second), or the
//!   master died ([`ExpectTable::remove_master`], called by the master's shard when an
//!   entry carrying the "has expectations" bit is removed).
//! * A master is identified by (worker id, [`EntryHandle`]): slot generations make the
//!   pair unique for the entry's lifetime. The master's [`FlowKey`] is kept for display.
//! * Master liveness at match time: an expectation exists only while its master is in
//!   its shard (the shard removes the master's expectations when it removes the master),
//!   and the master is always CONFIRMED (helpers run on ESTABLISHED packets only). A
//!   master whose deadline has passed but which its shard has not reaped yet still
//!   counts as alive, as in Linux (expiry there is also reaped by GC or lookups).
//!
//! Locking: two `DashMap`s (`map` and `by_master`); no code path holds a `by_master`
//! guard while taking a `map` lock, and `map` guards are never held across another
//! `map` operation, so there is no lock-order cycle.

use super::{EntryHandle, FlowKey, HelperKind, Nanos, NS};
use crate::packet::{to_ip, Addr, Family};
use dashmap::DashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Expectations per master and class (`max_expected` of the FTP helper policy).
pub const MAX_EXPECTED: usize = 1;
/// Lifetime of an FTP expectation in seconds (helper policy `timeout`).
pub const EXPECT_TIMEOUT_SECS: u64 = 300;

/// The exact part of an expectation's tuple (the source port is wildcarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExpectKey {
    /// Address family.
    pub family: Family,
    /// L4 protocol (TCP for FTP).
    pub proto: u8,
    /// Source address of the expected connection.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Destination port.
    pub dport: u16,
}

/// The master connection of an expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MasterRef {
    /// The worker (shard) owning the master entry.
    pub worker: u16,
    /// The master entry in that shard.
    pub handle: EntryHandle,
}

/// One expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expectation {
    /// The expected tuple (source port wildcard).
    pub key: ExpectKey,
    /// Class (FTP: 0).
    pub class: u8,
    /// The helper that created it.
    pub helper: HelperKind,
    /// The master entry.
    pub master: MasterRef,
    /// The master's key (for display and debugging).
    pub master_key: FlowKey,
    /// The master's ORIGINAL tuple: (src, dst, sport, dport).
    pub master_orig: (Addr, Addr, u16, u16),
    /// Creation time.
    pub created: Nanos,
    /// Expiry (creation + 300 s; never refreshed).
    pub deadline: Nanos,
    /// The NAT the expected connection gets (the master is NATed; `nf_nat_follow_master`).
    pub nat: Option<ExpectNat>,
}

/// The binding of a connection created from the expectation of a NATed master (Linux's
/// `nf_nat_follow_master`): its source becomes `src` (the address the master's command
/// sender talks to) and its destination `dst:dport` (the command sender's real address
/// and the port its command named). The nat chains are not consulted for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectNat {
    /// The new source address (the port is kept when free).
    pub src: Addr,
    /// The new destination address.
    pub dst: Addr,
    /// The new destination port.
    pub dport: u16,
}

/// Why a registration failed (Linux errno in parentheses). The packet is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectError {
    /// Same tuple from the same master with another class (-EALREADY).
    Already,
    /// Same (overlapping) tuple from another master (-EBUSY).
    Busy,
    /// The global count reached `expect_max` (-EMFILE).
    Full,
}

/// Counters of the expectation table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpectStats {
    /// Expectations registered (`expect_create`).
    pub created: u64,
    /// Expectations used by a new connection.
    pub used: u64,
    /// Expectations that expired.
    pub expired: u64,
    /// Expectations evicted by a newer one of the same master (max_expected).
    pub evicted: u64,
    /// Expectations removed because their master died.
    pub master_gone: u64,
    /// Registrations refused (Busy/Already/Full); each dropped a packet.
    pub register_failed: u64,
}

/// An expectation as `conntrack -L expect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectView {
    /// The expectation.
    pub exp: Expectation,
    /// Whole seconds left.
    pub timeout_secs: u64,
}

impl ExpectView {
    /// The `conntrack -L expect`-like line, e.g. `300 proto=6 src=10.0.0.1 dst=10.0.0.2
    /// sport=0 dport=50000 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0
    /// dport=65535 master-src=10.0.0.1 master-dst=10.0.0.2 sport=40021 dport=21 class=0
    /// helper=ftp`.
    pub fn conntrack_line(&self) -> String {
        let e = &self.exp;
        let f = e.key.family;
        let full = match f {
            Family::V4 => "255.255.255.255",
            Family::V6 => "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        };
        let mut s = String::with_capacity(200);
        let _ = write!(
            s,
            "{} proto={} src={} dst={} sport=0 dport={} mask-src={full} mask-dst={full} sport=0 dport=65535 ",
            self.timeout_secs,
            e.key.proto,
            to_ip(f, &e.key.src),
            to_ip(f, &e.key.dst),
            e.key.dport,
        );
        let (ms, md, msp, mdp) = e.master_orig;
        let _ = write!(
            s,
            "master-src={} master-dst={} sport={msp} dport={mdp} class={} helper={}",
            to_ip(f, &ms),
            to_ip(f, &md),
            e.class,
            match e.helper {
                HelperKind::Ftp => "ftp",
            }
        );
        s
    }
}

#[derive(Debug, Default)]
struct AtomicStats {
    created: AtomicU64,
    used: AtomicU64,
    expired: AtomicU64,
    evicted: AtomicU64,
    master_gone: AtomicU64,
    register_failed: AtomicU64,
}

/// The global expectation table (see the module docs).
#[derive(Debug, Default)]
pub struct ExpectTable {
    map: DashMap<ExpectKey, Expectation>,
    by_master: DashMap<MasterRef, ExpectKey>,
    count: AtomicUsize,
    next_sweep: AtomicU64,
    stats: AtomicStats,
}

impl ExpectTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expectations stored (expired ones not yet reaped included).
    #[inline]
    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    /// True when no expectation is stored (the 5c fast check).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters.
    pub fn stats(&self) -> ExpectStats {
        let s = &self.stats;
        ExpectStats {
            created: s.created.load(Relaxed),
            used: s.used.load(Relaxed),
            expired: s.expired.load(Relaxed),
            evicted: s.evicted.load(Relaxed),
            master_gone: s.master_gone.load(Relaxed),
            register_failed: s.register_failed.load(Relaxed),
        }
    }

    /// Removes `key` if `pred` holds for its expectation; keeps `count` and `by_master`
    /// in step. Returns the removed expectation.
    fn remove_if(
        &self,
        key: &ExpectKey,
        pred: impl FnOnce(&Expectation) -> bool,
    ) -> Option<Expectation> {
        let (_, e) = self.map.remove_if(key, |_, e| pred(e))?;
        self.count.fetch_sub(1, Relaxed);
        self.by_master.remove_if(&e.master, |_, k| k == key);
        Some(e)
    }

    fn fail(&self, e: ExpectError) -> Result<(), ExpectError> {
        self.stats.register_failed.fetch_add(1, Relaxed);
        Err(e)
    }

    /// Registers `exp` (`docs/CONNTRACK.md` §4.3), with `max` the global limit (`nf_conntrack_expect_max`).
    pub fn register(&self, exp: Expectation, max: u32, now: Nanos) -> Result<(), ExpectError> {
        let key = exp.key;
        // 1. Clash with a stored expectation of the same tuple.
        let clash = self.map.get(&key).map(|g| *g);
        if let Some(old) = clash {
            if now >= old.deadline {
                if self
                    .remove_if(&key, |e| e.deadline == old.deadline)
                    .is_some()
                {
                    self.stats.expired.fetch_add(1, Relaxed);
                }
            } else if old.master == exp.master {
                if old.class != exp.class {
                    return self.fail(ExpectError::Already);
                }
                // Replaced: removed here, inserted again below.
                self.remove_if(&key, |e| e.master == exp.master);
            } else {
                return self.fail(ExpectError::Busy);
            }
        }
        // 2. max_expected = 1: a newer expectation evicts the master's older one.
        if let Some((_, old_key)) = self.by_master.remove(&exp.master) {
            if let Some((_, _)) = self.map.remove_if(&old_key, |_, e| e.master == exp.master) {
                self.count.fetch_sub(1, Relaxed);
                self.stats.evicted.fetch_add(1, Relaxed);
            }
        }
        // 3. The global limit.
        if self.len() >= max as usize {
            return self.fail(ExpectError::Full);
        }
        // 4. Insert (a racing registration of the same tuple by another master wins).
        match self.map.entry(key) {
            dashmap::mapref::entry::Entry::Occupied(mut o) => {
                if o.get().master != exp.master {
                    drop(o);
                    return self.fail(ExpectError::Busy);
                }
                o.insert(exp);
            }
            dashmap::mapref::entry::Entry::Vacant(v) => {
                v.insert(exp);
                self.count.fetch_add(1, Relaxed);
            }
        }
        self.by_master.insert(exp.master, key);
        self.stats.created.fetch_add(1, Relaxed);
        Ok(())
    }

    /// `docs/CONNTRACK.md` §1.3 step 5c: finds and removes (one-shot) the expectation matching a new
    /// connection's ORIGINAL tuple. An expired one is reaped and not returned.
    pub fn take(
        &self,
        family: Family,
        proto_num: u8,
        src: Addr,
        dst: Addr,
        dport: u16,
        now: Nanos,
    ) -> Option<Expectation> {
        if self.is_empty() {
            return None;
        }
        let key = ExpectKey {
            family,
            proto: proto_num,
            src,
            dst,
            dport,
        };
        let e = self.remove_if(&key, |_| true)?;
        if now >= e.deadline {
            self.stats.expired.fetch_add(1, Relaxed);
            return None;
        }
        self.stats.used.fetch_add(1, Relaxed);
        Some(e)
    }

    /// Removes every expectation of a master (it died). Returns how many.
    pub fn remove_master(&self, master: MasterRef) -> usize {
        let Some((_, key)) = self.by_master.remove(&master) else {
            return 0;
        };
        match self.map.remove_if(&key, |_, e| e.master == master) {
            Some(_) => {
                self.count.fetch_sub(1, Relaxed);
                self.stats.master_gone.fetch_add(1, Relaxed);
                1
            }
            None => 0,
        }
    }

    /// Reaps expired expectations (the kernel's per-expectation timer). Cheap unless a
    /// second has passed since the last sweep by any worker.
    pub fn maybe_expire(&self, now: Nanos) {
        let next = self.next_sweep.load(Relaxed);
        if now < next || self.is_empty() {
            return;
        }
        if self
            .next_sweep
            .compare_exchange(next, now.saturating_add(NS), Relaxed, Relaxed)
            .is_err()
        {
            return;
        }
        self.expire(now);
    }

    /// Reaps every expired expectation now. Returns how many.
    pub fn expire(&self, now: Nanos) -> usize {
        let dead: Vec<(ExpectKey, Nanos)> = self
            .map
            .iter()
            .filter(|r| now >= r.deadline)
            .map(|r| (*r.key(), r.deadline))
            .collect();
        let mut n = 0;
        for (k, d) in dead {
            if self.remove_if(&k, |e| e.deadline == d).is_some() {
                self.stats.expired.fetch_add(1, Relaxed);
                n += 1;
            }
        }
        n
    }

    /// Removes every expectation (`conntrack -F expect`).
    pub fn flush(&self) {
        let keys: Vec<ExpectKey> = self.map.iter().map(|r| *r.key()).collect();
        for k in keys {
            self.remove_if(&k, |_| true);
        }
    }

    /// The live expectations (`conntrack -L expect`), oldest first.
    pub fn list(&self, now: Nanos) -> Vec<ExpectView> {
        let mut v: Vec<ExpectView> = self
            .map
            .iter()
            .filter(|r| now < r.deadline)
            .map(|r| ExpectView {
                exp: *r.value(),
                timeout_secs: (r.deadline - now).div_ceil(NS).min(EXPECT_TIMEOUT_SECS),
            })
            .collect();
        v.sort_by_key(|x| (x.exp.created, x.exp.key.dport));
        v
    }

    /// The live expectation of a master, if any.
    pub fn of_master(&self, master: MasterRef, now: Nanos) -> Option<Expectation> {
        let key = *self.by_master.get(&master)?;
        let e = *self.map.get(&key)?;
        (e.master == master && now < e.deadline).then_some(e)
    }
}
