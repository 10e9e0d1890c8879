//! The per-worker connection table (one shard): its storage. The per-packet procedure
//! that works on it is in [`super::track`], the connection helpers in [`super::helper`].
//!
//! # Layout
//!
//! * `buckets`: a power-of-two array of 64-byte [`Bucket`]s, each 8 ways of a 16-bit
//!   fingerprint (0 = empty) and a 32-bit slot index, plus a `spill` count: how many
//!   entries whose home is this bucket live in one of the next `PROBE - 1` buckets
//!   (bounded linear probing). A lookup reads the home bucket and, only when its
//!   `spill` is non-zero, the next ones. There are about 2 ways per entry of capacity
//!   (load factor <= 50 %), so spilling is rare.
//! * `entries`: the slab, `capacity` 64-byte-aligned [`Entry`]s allocated up front, with
//!   a free list. An IPv4 TCP connection (key, status, deadline, both directions' window
//!   state, last-packet class/direction/flags, retransmission count) is exactly one
//!   cache line: see [`Entry`].
//! * Side arrays indexed by slot: `v6` (the two IPv6 addresses; the entry keeps a 32-bit
//!   fold of each for a quick reject), `cold` (the TCP "last packet" sequence numbers
//!   and window, read on ACK-class packets for the retransmission count and on the
//!   ignore/resync/RST rules) and `gens` (slot generations for [`EntryHandle`]s).
//! * `nat` (see [`super::nat`]): the translated original tuple of an entry with the
//!   `M_NAT` meta bit, allocated by the shard's first binding; a NATed entry has a
//!   second bucket way under its reply tuple's key. Entries without NAT never read it.
//!
//! Nothing allocates after [`ConnTable::new`] except [`ConnTable::iter`]'s callers'
//! own collections; there are no locks (one writer per shard).

use super::expect::{ExpectTable, MasterRef};
use super::helper::ftp::FtpSeq;
use super::key::FlowKey;
use super::nat::{NatRequest, NatTuple};
use super::seqadj::{Mangle, SeqAdj};
use super::tcp::{Seen, TcpConn};
use super::view::EntryView;
use super::{Config, CtCounter, CtStatus, Direction, EntryHandle, Nanos, Stats};
use crate::arch::prefetch_line;
use crate::packet::{Addr, Family, Parsed};
use std::sync::Arc;

/// Ways per bucket.
const WAYS: usize = 8;
/// Buckets probed from the home bucket (insert and lookup).
const PROBE: usize = 8;
/// Buckets scanned by early drop (as Linux: 8 chains).
const EARLY_DROP_BUCKETS: usize = 8;

// Entry::meta bits.
pub(super) const M_USED: u8 = 1 << 0;
pub(super) const M_PENDING: u8 = 1 << 1;
pub(super) const M_V6: u8 = 1 << 2;
pub(super) const M_ORIG_IS_A: u8 = 1 << 3;
pub(super) const M_HELPER_FTP: u8 = 1 << 4;
/// The entry registered expectations (some may be gone already): its removal must
/// remove them from the global table. Ordinary entries never touch that table.
pub(super) const M_HAS_EXP: u8 = 1 << 5;
/// The entry has a NAT binding: its translated tuple is in the `nat` side array and,
/// once confirmed, a second bucket way points at it under the reply tuple's key.
pub(super) const M_NAT: u8 = 1 << 6;
/// A helper changed a payload length on this NATed connection: its sequence-number
/// adjustment is in the `seqadj` side array ([`super::seqadj`]).
pub(super) const M_SEQADJ: u8 = 1 << 7;

/// One hash bucket: 8 fingerprints and 8 slot indices in one cache line.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    tags: [u16; WAYS],
    slots: [u32; WAYS],
    spill: u16,
}

/// One connection, one cache line (64 bytes, 64-byte aligned).
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `addr: [u32; 2]` | IPv4 addresses of endpoints a, b (IPv6: a 32-bit fold; full address in the side array) |
/// | 8 | `port: [u16; 2]` | ports of a, b (ICMP: id, request type << 8 \| code; generic: 0) |
/// | 12 | `proto`, `meta`, `status`, `tcp_state` | protocol; USED/PENDING/V6/ORIG_IS_A/HELPER; `CtStatus`; kernel TCP state (SCTP: `SctpState`) |
/// | 16 | `deadline: u64` | absolute expiry in ns (a candidate: the relative timeout) |
/// | 24 | `win: [[u32; 4]; 2]` | TCP per direction (0 = ORIGINAL): end, maxend, maxwin, maxack. UDP: `stream_ts` in `win[0][0..2]`. SCTP: the vtags in `win[0][0]`, `win[1][0]`, INIT bits / HEARTBEAT flag / its dir in `win[0][1]` |
/// | 56 | `scale: [u8; 2]`, `tflags: [u8; 2]` | TCP per direction: window scale, `IP_CT_TCP_FLAG_*` |
/// | 60 | `last`, `last_flags`, `retrans`, `last_wscale` | TCP last packet: class (bits 0-2) + dir (bit 3); `last_flags`; retransmission count; wscale of an ignored SYN |
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Entry {
    pub(super) addr: [u32; 2],
    pub(super) port: [u16; 2],
    pub(super) proto: u8,
    pub(super) meta: u8,
    pub(super) status: u8,
    pub(super) tcp_state: u8,
    pub(super) deadline: u64,
    pub(super) win: [[u32; 4]; 2],
    pub(super) scale: [u8; 2],
    pub(super) tflags: [u8; 2],
    pub(super) last: u8,
    pub(super) last_flags: u8,
    pub(super) retrans: u8,
    pub(super) last_wscale: u8,
}

/// `size_of` the table entry (one IPv4 connection, TCP included): 64 bytes.
pub const ENTRY_SIZE: usize = std::mem::size_of::<Entry>();
const _: () = assert!(ENTRY_SIZE == 64);

/// Per-slot helper/expectation data, out of the hot line: the FTP helper's line-start
/// memory for a control connection, or the master of an entry created from an
/// expectation (an entry is never both: expected entries get no helper).
#[derive(Debug, Clone, Copy, Default)]
pub(super) enum Aux {
    #[default]
    None,
    Ftp(FtpSeq),
    Master(MasterRef),
}

/// The TCP last-packet record kept out of the hot line.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cold {
    pub(super) last_seq: u32,
    pub(super) last_ack: u32,
    pub(super) last_end: u32,
    pub(super) last_win: u16,
}

#[inline]
pub(super) fn fold(family: Family, a: &Addr) -> u32 {
    let w = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    match family {
        Family::V4 => w(0),
        Family::V6 => w(0) ^ w(4).rotate_left(8) ^ w(8).rotate_left(16) ^ w(12).rotate_left(24),
    }
}

#[inline]
fn tag_of(h: u64) -> u16 {
    let t = (h >> 16) as u16;
    if t == 0 {
        1
    } else {
        t
    }
}

/// One shard of the connection table (single writer; see the module docs).
pub struct ConnTable {
    pub(super) cfg: Config,
    pub(super) entries: Box<[Entry]>,
    pub(super) cold: Box<[Cold]>,
    pub(super) v6: Box<[[Addr; 2]]>,
    pub(super) aux: Box<[Aux]>,
    pub(super) gens: Box<[u32]>,
    /// Translated original tuples by slot (empty until the first NAT binding).
    pub(super) nat: Box<[NatTuple]>,
    /// Connection marks by slot (empty until [`ConnTable::reserve_marks`]).
    pub(super) marks: Box<[u32]>,
    /// Cached filter verdicts by slot and direction (empty until
    /// [`ConnTable::reserve_verdicts`]; `verdict.rs`).
    pub(super) verdicts: Box<[[super::verdict::VerdictSlot; 2]]>,
    /// Confirmed entries with a NAT binding.
    pub(super) nat_len: usize,
    /// State of the `--random-fully` port generator.
    pub(super) nat_rng: u64,
    /// Sequence-number adjustments by slot (empty until the shard's first one).
    pub(super) seqadj: Box<[SeqAdj]>,
    /// The payload rewrite the FTP helper decided for the packet it just saw (applied
    /// by the pipeline as that packet goes out; cleared by the next confirm).
    pub(super) mangle: Option<(EntryHandle, Direction, Mangle)>,
    /// The NAT a candidate created from a NATed expectation must get (Linux's
    /// `nf_nat_follow_master`), taken by the pipeline right after `track`.
    pub(super) follow: Option<(EntryHandle, NatRequest)>,
    free: Vec<u32>,
    buckets: Box<[Bucket]>,
    mask: usize,
    probe: usize,
    pub(super) len: usize,
    cursor: usize,
    pub(super) stats: Stats,
    pub(super) expect: Arc<ExpectTable>,
    pub(super) worker: u16,
}

impl std::fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnTable")
            .field("capacity", &self.entries.len())
            .field("len", &self.len)
            .field("buckets", &self.buckets.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl ConnTable {
    /// A shard holding at most `capacity` entries (at least 1), all memory allocated now,
    /// with a private expectation table (one shard alone: tests, `replay`, fuzzing).
    pub fn new(capacity: usize, cfg: Config) -> Self {
        Self::with_expectations(capacity, cfg, Arc::new(ExpectTable::new()), 0)
    }

    /// A shard of worker `worker` sharing the global expectation table `expect` with the
    /// other workers' shards.
    pub fn with_expectations(
        capacity: usize,
        cfg: Config,
        expect: Arc<ExpectTable>,
        worker: u16,
    ) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        let nb = (capacity * 2).div_ceil(WAYS).next_power_of_two().max(1);
        let mut free: Vec<u32> = Vec::with_capacity(capacity);
        free.extend((0..capacity as u32).rev());
        ConnTable {
            cfg,
            entries: vec![Entry::default(); capacity].into_boxed_slice(),
            cold: vec![Cold::default(); capacity].into_boxed_slice(),
            v6: vec![[[0u8; 16]; 2]; capacity].into_boxed_slice(),
            aux: vec![Aux::None; capacity].into_boxed_slice(),
            gens: vec![0u32; capacity].into_boxed_slice(),
            nat: Box::new([]),
            marks: Box::new([]),
            verdicts: Box::new([]),
            nat_len: 0,
            nat_rng: 0x853c_49e6_748f_ea9b ^ u64::from(worker),
            seqadj: Box::new([]),
            mangle: None,
            follow: None,
            free,
            buckets: vec![Bucket::default(); nb].into_boxed_slice(),
            mask: nb - 1,
            probe: PROBE.min(nb),
            len: 0,
            cursor: 0,
            stats: Stats::default(),
            expect,
            worker,
        }
    }

    /// The expectation table this shard uses.
    pub fn expectations(&self) -> &Arc<ExpectTable> {
        &self.expect
    }

    /// This shard's worker id (masters are named by worker id and handle).
    pub fn worker_id(&self) -> u16 {
        self.worker
    }

    /// Replaces the settings (timeouts and knobs apply to later packets; existing
    /// deadlines are kept, as when a sysctl is written).
    pub fn set_config(&mut self, cfg: Config) {
        self.cfg = cfg;
    }

    /// The current settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Confirmed entries in the table (expired ones not yet reaped included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no entry is confirmed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most entries (confirmed plus pending candidates) the shard holds.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Bytes allocated by this shard (slab, side arrays, free list and buckets), for
    /// memory-per-connection figures. Fixed at [`ConnTable::new`].
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let cap = self.entries.len();
        cap * (size_of::<Entry>() + size_of::<Cold>() + size_of::<[Addr; 2]>() + size_of::<u32>())
            + self.free.capacity() * size_of::<u32>()
            + self.nat.len() * size_of::<NatTuple>()
            + self.marks.len() * size_of::<u32>()
            + self.verdicts.len() * size_of::<[super::verdict::VerdictSlot; 2]>()
            + self.seqadj.len() * size_of::<SeqAdj>()
            + self.buckets.len() * size_of::<Bucket>()
            + size_of::<Self>()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The symmetric hash of a packet's connection (both directions equal), for steering.
    /// Packets without a flow key (ICMP errors, fragments, malformed L4) hash by their
    /// addresses and protocol.
    pub fn hash_of(p: &Parsed) -> u32 {
        match FlowKey::from_parsed(p) {
            Some(k) => k.symmetric_hash(),
            None => FlowKey::ordered(p.family, p.proto, p.src, 0, p.dst, 0)
                .0
                .symmetric_hash(),
        }
    }

    /// Stage 1 of a burst: hashes the packet's key and prefetches its home bucket;
    /// returns the hash for [`ConnTable::prefetch_entries`] (0 when nothing to track).
    pub fn prefetch(&self, p: &Parsed) -> u64 {
        let Some(k) = FlowKey::from_parsed(p) else {
            return 0;
        };
        let h = k.hash64();
        prefetch_line(&self.buckets[self.bucket_of(h)]);
        h
    }

    /// Stage 2 of a burst: with the bucket of hash `h` (from [`ConnTable::prefetch`])
    /// already on its way, reads its tags and prefetches the entries that may hold the
    /// key (and their TCP last-packet line), so the lookup in `track` finds them in
    /// cache. Only the home bucket is read; a spilled key is found by `track` anyway.
    pub fn prefetch_entries(&self, h: u64) {
        if h == 0 {
            return;
        }
        let b = &self.buckets[self.bucket_of(h)];
        let tag = tag_of(h);
        // A NAT-ready shard: the binding too (a NATed entry's packets read it).
        let nat = !self.nat.is_empty();
        let verdicts = !self.verdicts.is_empty();
        for w in 0..WAYS {
            if b.tags[w] == tag {
                let slot = b.slots[w] as usize;
                prefetch_line(&self.entries[slot]);
                prefetch_line(&self.cold[slot]);
                if verdicts {
                    // The cached filter verdict (`verdict.rs`), read by ESTABLISHED packets.
                    prefetch_line(&self.verdicts[slot]);
                }
                if nat {
                    prefetch_line(&self.nat[slot]);
                    prefetch_line(&self.gens[slot]);
                }
            }
        }
    }

    #[inline]
    fn bucket_of(&self, h: u64) -> usize {
        ((h >> 32) as usize) & self.mask
    }

    // ----- slots and keys -------------------------------------------------------------

    pub(super) fn key_of_slot(&self, slot: usize) -> FlowKey {
        let e = &self.entries[slot];
        let (family, a, b) = if e.meta & M_V6 != 0 {
            (Family::V6, self.v6[slot][0], self.v6[slot][1])
        } else {
            let mut a = [0u8; 16];
            let mut b = [0u8; 16];
            a[..4].copy_from_slice(&e.addr[0].to_ne_bytes());
            b[..4].copy_from_slice(&e.addr[1].to_ne_bytes());
            (Family::V4, a, b)
        };
        FlowKey {
            family,
            proto: e.proto,
            a,
            b,
            port_a: e.port[0],
            port_b: e.port[1],
        }
    }

    #[inline]
    fn key_eq(&self, slot: usize, k: &FlowKey, fa: u32, fb: u32) -> bool {
        let e = &self.entries[slot];
        let v6 = k.family == Family::V6;
        e.proto == k.proto
            && e.port == [k.port_a, k.port_b]
            && e.addr == [fa, fb]
            && (e.meta & M_V6 != 0) == v6
            && (!v6 || self.v6[slot] == [k.a, k.b])
    }

    /// True when the NATed entry at `slot` has `k` as its reply tuple's key.
    #[inline]
    fn nat_key_eq(&self, slot: usize, k: &FlowKey) -> bool {
        let e = &self.entries[slot];
        let n = &self.nat[slot];
        if e.proto != k.proto || (e.meta & M_V6 != 0) != (k.family == Family::V6) {
            return false;
        }
        if matches!(
            e.proto,
            crate::packet::proto::TCP | crate::packet::proto::UDP | crate::packet::proto::UDPLITE
        ) {
            // The key is the reply tuple's endpoints in either order.
            return (k.a == n.src && k.port_a == n.sport && k.b == n.dst && k.port_b == n.dport)
                || (k.a == n.dst && k.port_a == n.dport && k.b == n.src && k.port_b == n.sport);
        }
        self.nat_key(slot, n) == *k
    }

    /// Finds a key's index position: (bucket, way, slot). Dead entries are returned too.
    #[inline]
    fn find(&self, k: &FlowKey, h: u64) -> Option<(usize, usize, usize)> {
        self.find_way(k, h).map(|(b, w, s, _)| (b, w, s))
    }

    /// [`ConnTable::find`], plus whether the key matched the entry's reply-tuple way
    /// (a NATed entry's second way) rather than its own key.
    fn find_way(&self, k: &FlowKey, h: u64) -> Option<(usize, usize, usize, bool)> {
        let home = self.bucket_of(h);
        let tag = tag_of(h);
        let fa = fold(k.family, &k.a);
        let fb = fold(k.family, &k.b);
        for i in 0..self.probe {
            let bi = (home + i) & self.mask;
            let b = &self.buckets[bi];
            let mut m = 0u32;
            for w in 0..WAYS {
                m |= ((b.tags[w] == tag) as u32) << w;
            }
            while m != 0 {
                let w = m.trailing_zeros() as usize;
                let slot = b.slots[w] as usize;
                if self.key_eq(slot, k, fa, fb) {
                    return Some((bi, w, slot, false));
                }
                if self.entries[slot].meta & M_NAT != 0 && self.nat_key_eq(slot, k) {
                    return Some((bi, w, slot, true));
                }
                m &= m - 1;
            }
            if i == 0 && b.spill == 0 {
                return None;
            }
        }
        None
    }

    pub(super) fn index_insert(&mut self, h: u64, slot: usize) -> bool {
        let home = self.bucket_of(h);
        let tag = tag_of(h);
        for i in 0..self.probe {
            let bi = (home + i) & self.mask;
            if let Some(w) = self.buckets[bi].tags.iter().position(|&t| t == 0) {
                self.buckets[bi].tags[w] = tag;
                self.buckets[bi].slots[w] = slot as u32;
                if i > 0 {
                    self.buckets[home].spill += 1;
                }
                return true;
            }
        }
        false
    }

    /// Doubles the bucket index and re-inserts every confirmed entry's ways (both of a
    /// NATed one), for [`ConnTable::reserve_nat`]. Allocates: never on the packet path.
    pub(super) fn grow_index(&mut self) {
        let nb = self.buckets.len() * 2;
        self.buckets = vec![Bucket::default(); nb].into_boxed_slice();
        self.mask = nb - 1;
        self.probe = PROBE.min(nb);
        for slot in 0..self.entries.len() {
            if self.entries[slot].meta & (M_USED | M_PENDING) != M_USED {
                continue;
            }
            let k = self.key_of_slot(slot);
            let placed = self.index_insert(k.hash64(), slot);
            debug_assert!(placed, "a doubled index holds every way");
            if let Some(n) = self.nat_of(slot) {
                let rk = self.nat_key(slot, &n);
                let placed = self.index_insert(rk.hash64(), slot);
                debug_assert!(placed, "a doubled index holds every way");
            }
        }
    }

    pub(super) fn free_slot(&mut self, slot: usize) {
        self.entries[slot].meta = 0;
        self.gens[slot] = self.gens[slot].wrapping_add(1);
        self.clear_verdict(slot);
        self.free.push(slot as u32);
    }

    /// Clears the way of key `k` that points at `slot` (a NATed entry's other way).
    fn unlink_way(&mut self, k: &FlowKey, slot: usize) {
        let h = k.hash64();
        let home = self.bucket_of(h);
        let tag = tag_of(h);
        for i in 0..self.probe {
            let bi = (home + i) & self.mask;
            let b = &self.buckets[bi];
            if let Some(w) = (0..WAYS).find(|&w| b.tags[w] == tag && b.slots[w] as usize == slot) {
                self.buckets[bi].tags[w] = 0;
                if i > 0 {
                    self.buckets[home].spill -= 1;
                }
                return;
            }
        }
    }

    /// Undoes the first index insert of a NATed candidate whose second one failed.
    pub(super) fn unlink_orig_way(&mut self, k: &FlowKey, slot: usize) {
        self.unlink_way(k, slot);
    }

    /// Removes the confirmed entry at (bucket, way); `expired` counts it as reaped.
    /// A NATed entry loses both of its ways, whichever one (bucket, way) is.
    fn remove_at(&mut self, bi: usize, w: usize, expired: bool) {
        let slot = self.buckets[bi].slots[w] as usize;
        let k = self.key_of_slot(slot);
        if self.entries[slot].meta & M_NAT != 0 {
            let n = self.nat[slot];
            let rk = self.nat_key(slot, &n);
            self.unlink_way(&k, slot);
            self.unlink_way(&rk, slot);
            self.nat_len -= 1;
        } else {
            let home = self.bucket_of(k.hash64());
            if home != bi {
                self.buckets[home].spill -= 1;
            }
            self.buckets[bi].tags[w] = 0;
        }
        if self.entries[slot].meta & M_HAS_EXP != 0 {
            self.drop_expectations(slot);
        }
        if expired {
            self.stats[CtCounter::expired(k.proto)] += 1;
        }
        self.free_slot(slot);
        self.len -= 1;
    }

    /// The master at `slot` dies: its expectations go (`docs/CONNTRACK.md` §4.3).
    fn drop_expectations(&mut self, slot: usize) {
        let m = MasterRef {
            worker: self.worker,
            handle: self.handle(slot),
        };
        self.expect.remove_master(m);
        self.entries[slot].meta &= !M_HAS_EXP;
    }

    pub(super) fn remove_slot(&mut self, slot: usize) {
        let k = self.key_of_slot(slot);
        if let Some((bi, w, s)) = self.find(&k, k.hash64()) {
            debug_assert_eq!(s, slot);
            self.remove_at(bi, w, false);
        }
    }

    /// A live (not expired) entry for the key; an expired one is reaped on the way.
    pub(super) fn lookup_live(&mut self, k: &FlowKey, h: u64, now: Nanos) -> Option<usize> {
        self.lookup_live_way(k, h, now).map(|x| x.0)
    }

    /// [`ConnTable::lookup_live`], plus whether the key was a NATed entry's reply way.
    #[inline]
    pub(super) fn lookup_live_way(
        &mut self,
        k: &FlowKey,
        h: u64,
        now: Nanos,
    ) -> Option<(usize, bool)> {
        let (bi, w, slot, via_nat) = self.find_way(k, h)?;
        if now >= self.entries[slot].deadline {
            self.remove_at(bi, w, true);
            return None;
        }
        Some((slot, via_nat))
    }

    /// A free slot, evicting (Linux early drop) near the key's bucket when full.
    pub(super) fn alloc(&mut self, h: u64, now: Nanos) -> Option<usize> {
        if let Some(s) = self.free.pop() {
            return Some(s as usize);
        }
        let home = self.bucket_of(h);
        for i in 0..EARLY_DROP_BUCKETS.min(self.buckets.len()) {
            let bi = (home + i) & self.mask;
            let mut dropped = 0;
            for w in 0..WAYS {
                if self.buckets[bi].tags[w] == 0 {
                    continue;
                }
                let e = &self.entries[self.buckets[bi].slots[w] as usize];
                if now >= e.deadline {
                    self.remove_at(bi, w, true);
                } else if e.status & CtStatus::ASSURED == 0 {
                    self.remove_at(bi, w, false);
                    dropped += 1;
                }
            }
            if dropped > 0 {
                self.stats[CtCounter::EarlyDrop] += dropped;
                break;
            }
        }
        self.free.pop().map(|s| s as usize)
    }

    pub(super) fn handle(&self, slot: usize) -> EntryHandle {
        EntryHandle {
            slot: slot as u32,
            gen: self.gens[slot],
        }
    }

    pub(super) fn load_tcp(&self, slot: usize) -> TcpConn {
        let e = &self.entries[slot];
        let c = &self.cold[slot];
        let seen = |d: usize| Seen {
            end: e.win[d][0],
            maxend: e.win[d][1],
            maxwin: e.win[d][2],
            maxack: e.win[d][3],
            scale: e.scale[d],
            flags: e.tflags[d],
        };
        TcpConn {
            state: e.tcp_state,
            seen: [seen(0), seen(1)],
            last_index: e.last & 7,
            last_dir: (e.last >> 3) & 1,
            last_flags: e.last_flags,
            last_wscale: e.last_wscale,
            retrans: e.retrans,
            last_seq: c.last_seq,
            last_ack: c.last_ack,
            last_end: c.last_end,
            last_win: c.last_win,
        }
    }

    pub(super) fn store_tcp(&mut self, slot: usize, t: &TcpConn) {
        let e = &mut self.entries[slot];
        e.tcp_state = t.state;
        for d in 0..2 {
            let s = &t.seen[d];
            e.win[d] = [s.end, s.maxend, s.maxwin, s.maxack];
            e.scale[d] = s.scale;
            e.tflags[d] = s.flags;
        }
        e.last = (t.last_index & 7) | (t.last_dir & 1) << 3;
        e.last_flags = t.last_flags;
        e.last_wscale = t.last_wscale;
        e.retrans = t.retrans;
        self.cold[slot] = Cold {
            last_seq: t.last_seq,
            last_ack: t.last_ack,
            last_end: t.last_end,
            last_win: t.last_win,
        };
    }

    pub(super) fn stream_ts(&self, slot: usize) -> u64 {
        let w = &self.entries[slot].win[0];
        (w[1] as u64) << 32 | w[0] as u64
    }

    pub(super) fn set_stream_ts(&mut self, slot: usize, ts: u64) {
        let w = &mut self.entries[slot].win[0];
        w[0] = ts as u32;
        w[1] = (ts >> 32) as u32;
    }

    pub(super) fn icmp_timeout(&self, p: &Parsed) -> u32 {
        if p.family == Family::V6 {
            self.cfg.icmpv6_timeout
        } else {
            self.cfg.icmp_timeout
        }
    }

    // ----- maintenance and control ------------------------------------------------------

    /// Bounded sweep: visits at most `budget` buckets (8 entries each), continuing where
    /// the previous call stopped, and reaps the expired entries. Returns how many.
    pub fn expire(&mut self, now: Nanos, budget: usize) -> usize {
        let mut reaped = 0;
        for _ in 0..budget.min(self.buckets.len()) {
            let bi = self.cursor;
            self.cursor = (bi + 1) & self.mask;
            for w in 0..WAYS {
                if self.buckets[bi].tags[w] != 0 {
                    let slot = self.buckets[bi].slots[w] as usize;
                    if now >= self.entries[slot].deadline {
                        self.remove_at(bi, w, true);
                        reaped += 1;
                    }
                }
            }
        }
        reaped
    }

    /// Live confirmed entries (for `ctl list`); expired ones are skipped.
    pub fn iter(&self, now: Nanos) -> impl Iterator<Item = EntryView> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.meta & (M_USED | M_PENDING) == M_USED && now < e.deadline)
            .map(move |(i, _)| self.view(i, now))
    }

    /// One bounded step of a walk over the live confirmed entries: visits the slots
    /// `from..from + slots` (clamped to the capacity), calls `f` for each live entry, and
    /// returns where the next step starts (None when the walk is done). The control
    /// plane lists a huge table this way, one step per worker command, so a worker is
    /// never held for more than one step between bursts. Slots never move (the slab
    /// has a free list), so a walk sees every entry that lives throughout it once.
    pub fn scan(
        &self,
        from: usize,
        slots: usize,
        now: Nanos,
        mut f: impl FnMut(EntryView),
    ) -> Option<usize> {
        let (range, next) = self.step(from, slots);
        for i in range {
            let e = &self.entries[i];
            if e.meta & (M_USED | M_PENDING) == M_USED && now < e.deadline {
                f(self.view(i, now));
            }
        }
        next
    }

    /// One bounded step of a flush (`conntrack -F` on a large table): removes every
    /// confirmed entry in the slots `from..from + slots`, expired or not; returns how many
    /// were removed and where the next step starts (None when done). Entries created
    /// behind the cursor while a flush walks survive it, as they would a kernel flush
    /// racing with traffic.
    pub fn flush_step(&mut self, from: usize, slots: usize) -> (usize, Option<usize>) {
        let (range, next) = self.step(from, slots);
        let mut n = 0;
        for slot in range {
            if self.entries[slot].meta & (M_USED | M_PENDING) == M_USED {
                self.remove_slot(slot);
                n += 1;
            }
        }
        (n, next)
    }

    /// The slots of one walk step from `from` (at least one, clamped to the capacity)
    /// and where the next step starts (None at the end).
    fn step(&self, from: usize, slots: usize) -> (std::ops::Range<usize>, Option<usize>) {
        let end = from.saturating_add(slots.max(1)).min(self.entries.len());
        (
            from.min(end)..end,
            (end < self.entries.len()).then_some(end),
        )
    }

    /// The live entry for a key (either direction's tuple gives the same key).
    pub fn get(&self, key: &FlowKey, now: Nanos) -> Option<EntryView> {
        let (_, _, slot) = self.find(key, key.hash64())?;
        (now < self.entries[slot].deadline).then(|| self.view(slot, now))
    }

    /// The entry behind a handle, if it still exists (confirmed and live).
    pub fn get_handle(&self, h: EntryHandle, now: Nanos) -> Option<EntryView> {
        let slot = h.slot as usize;
        let e = self.entries.get(slot)?;
        (self.gens[slot] == h.gen && e.meta & (M_USED | M_PENDING) == M_USED && now < e.deadline)
            .then(|| self.view(slot, now))
    }

    /// Deletes the entry for a key (`conntrack -D`); true when there was one.
    pub fn delete(&mut self, key: &FlowKey) -> bool {
        match self.find(key, key.hash64()) {
            Some((bi, w, _)) => {
                self.remove_at(bi, w, false);
                true
            }
            None => false,
        }
    }

    /// Deletes every confirmed entry (`conntrack -F`) at once: [`ConnTable::flush_step`]
    /// over the whole table. Call it between bursts, when no candidate is pending.
    pub fn flush(&mut self) {
        let mut cursor = Some(0);
        while let Some(from) = cursor {
            cursor = self.flush_step(from, usize::MAX).1;
        }
    }
}
