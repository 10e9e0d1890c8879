//! NAT bindings on conntrack entries (Linux `nf_nat_core.c`'s `get_unique_tuple` and
//! `nf_nat_setup_info`, rebuilt; see `docs/NAT.md`).
//!
//! A connection's NAT is decided once, for its first packet, by the nat chains (the
//! ruleset turns their verdict into a [`NatRequest`]). [`ConnTable::bind_nat`] then
//! picks the translated tuple of the ORIGINAL direction (`new`): the addresses from the
//! ranges, the ports kept when the resulting reply tuple is free, else searched in the
//! range. The entry keeps `new` in the side array `nat` (touched only for entries with
//! the `M_NAT` meta bit) and, when it is confirmed, gets a second bucket way under the
//! key of its reply tuple (the inversion of `new`), as Linux has two tuplehash nodes.
//! Entries without NAT look exactly as before: same cache line, one way.
//!
//! Multi-worker: [`ConnTable::bind_nat`] takes the steering owner as a predicate over
//! the reply tuple and accepts only a tuple the calling worker owns, so replies land on
//! it and two workers never pick one reply tuple (each tuple has one owner, which checks
//! its own shard).
//!
//! Nothing here allocates per packet; the side array is allocated once, by the first
//! binding of the shard's life (or [`ConnTable::reserve_nat`]).

use super::key::FlowKey;
use super::table::{ConnTable, M_NAT, M_ORIG_IS_A, M_PENDING, M_USED};
use super::{CtStatus, Direction, EntryHandle, Nanos};
use crate::packet::{proto, Addr, Family};

/// `NF_NAT_RANGE_*` flags of a [`NatRange`].
pub mod range_flags {
    /// The range gives addresses (`NF_NAT_RANGE_MAP_IPS`).
    pub const MAP_IPS: u8 = 1 << 0;
    /// The range gives ports (`NF_NAT_RANGE_PROTO_SPECIFIED`).
    pub const PROTO_SPECIFIED: u8 = 1 << 1;
    /// `--random`: hashed port start, never keep the original port.
    pub const RANDOM: u8 = 1 << 2;
    /// `--persistent`: the address choice ignores the destination.
    pub const PERSISTENT: u8 = 1 << 3;
    /// `--random-fully`: pseudo-random port start, never keep the original port.
    pub const RANDOM_FULLY: u8 = 1 << 4;
}

/// One manip's range (`struct nf_nat_range2`): addresses `min_addr..=max_addr` (with
/// `MAP_IPS`), ports or ICMP ids `min_port..=max_port` (with `PROTO_SPECIFIED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatRange {
    /// [`range_flags`] bits.
    pub flags: u8,
    /// Lowest address (the [`Addr`] layout).
    pub min_addr: Addr,
    /// Highest address.
    pub max_addr: Addr,
    /// Lowest port.
    pub min_port: u16,
    /// Highest port.
    pub max_port: u16,
}

/// What the nat chains decided for a new connection: a destination manip (DNAT,
/// REDIRECT, NETMAP in PREROUTING/OUTPUT) and a source manip (SNAT, MASQUERADE, NETMAP in
/// POSTROUTING/INPUT). Neither: no NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatRequest {
    /// The destination manip, applied first.
    pub dst: Option<NatRange>,
    /// The source manip.
    pub src: Option<NatRange>,
}

/// A tuple as NAT sees it: addresses and ports (ICMP queries: the id as both ports;
/// protocols without ports: 0s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatTuple {
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Source port (ICMP: the id).
    pub sport: u16,
    /// Destination port (ICMP: the id).
    pub dport: u16,
}

impl NatTuple {
    /// The other direction's tuple.
    #[inline]
    pub fn invert(&self) -> NatTuple {
        NatTuple {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }
}

/// What to write into one packet of a NATed connection: its new tuple, and which halves
/// change (source address+port, destination address+port; ICMP: the id goes with the
/// source manip of the original direction and is written whenever it differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatRewrite {
    /// The packet's tuple after translation.
    pub new: NatTuple,
    /// Rewrite the source address and port.
    pub set_src: bool,
    /// Rewrite the destination address and port.
    pub set_dst: bool,
}

/// Why [`ConnTable::bind_nat`] could not bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatError {
    /// No free tuple in the range (that this worker owns): `drops_total{reason="nat_no_port"}`.
    NoPort,
    /// The handle is not a pending candidate (already confirmed, or gone).
    NotCandidate,
}

/// Most tuples tested per round of the port search (Linux's `NF_NAT_MAX_ATTEMPTS`).
const MAX_ATTEMPTS: u32 = 128;

#[inline]
fn mix(mut h: u64, x: u64) -> u64 {
    h = (h ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 31)
}

fn hash_addr(h: u64, a: &Addr) -> u64 {
    let w0 = u64::from_le_bytes(a[..8].try_into().expect("8 bytes"));
    let w1 = u64::from_le_bytes(a[8..].try_into().expect("8 bytes"));
    mix(mix(h, w0), w1)
}

/// The address of `[lo, hi]` at position `h mod (hi - lo + 1)` (Linux's
/// `find_best_ips_proto` spreads connections over the range by a hash).
fn pick_addr(lo: &Addr, hi: &Addr, h: u64) -> Addr {
    let l = u128::from_be_bytes(*lo);
    let u = u128::from_be_bytes(*hi);
    if u <= l {
        return *lo;
    }
    let span = u - l;
    let off = if span == u128::MAX {
        h as u128
    } else {
        (h as u128) % (span + 1)
    };
    (l + off).to_be_bytes()
}

/// The address width step of a family in the [`Addr`] layout (IPv4 in the top bytes).
fn addr_range_v4_fix(family: Family, lo: &Addr, hi: &Addr, h: u64) -> Addr {
    match family {
        Family::V6 => pick_addr(lo, hi, h),
        Family::V4 => {
            let l = u32::from_be_bytes(lo[..4].try_into().expect("4 bytes"));
            let u = u32::from_be_bytes(hi[..4].try_into().expect("4 bytes"));
            let mut out = [0u8; 16];
            let v = if u <= l {
                l
            } else {
                l + ((h % (u64::from(u - l) + 1)) as u32)
            };
            out[..4].copy_from_slice(&v.to_be_bytes());
            out
        }
    }
}

/// The tuple after a destination manip (DNAT, REDIRECT, NETMAP): the address picked
/// from the range by a hash of the original addresses (Linux's `find_best_ips_proto`);
/// a destination port out of a port range becomes its first port (a clash is resolved
/// by the source manip, as Linux's null binding does). The pipeline shows this tuple to
/// the filter table before [`ConnTable::bind_nat`] binds the same one.
pub fn dst_pick(family: Family, proto_num: u8, orig: &NatTuple, r: &NatRange) -> NatTuple {
    let mut new = *orig;
    if r.flags & range_flags::MAP_IPS != 0 {
        let hh = hash_addr(hash_addr(0x6e61_7464, &orig.src), &orig.dst);
        new.dst = addr_range_v4_fix(family, &r.min_addr, &r.max_addr, hh);
    }
    if matches!(proto_num, proto::TCP | proto::UDP | proto::UDPLITE)
        && r.flags & range_flags::PROTO_SPECIFIED != 0
        && !(r.min_port..=r.max_port).contains(&new.dport)
    {
        new.dport = r.min_port;
    }
    new
}

impl ConnTable {
    /// Makes the shard ready for NAT (once per shard life): allocates the side array of
    /// translated tuples and doubles the bucket index, since a NATed connection has two
    /// ways (its original and its reply tuple's), so that `capacity` NATed connections
    /// fit at the same load factor as `capacity` plain ones (`nf_conntrack_max` counts
    /// connections, as in Linux, not hash nodes). The pipeline calls it when it meets a
    /// ruleset with a `*nat` table; the entries already confirmed are re-indexed then
    /// (at start-up: none). No binding allocates after it.
    pub fn reserve_nat(&mut self) {
        if self.nat.is_empty() {
            self.nat = vec![NatTuple::default(); self.entries.len()].into_boxed_slice();
            self.grow_index();
        }
    }

    /// True once [`ConnTable::reserve_nat`] ran.
    pub fn nat_ready(&self) -> bool {
        !self.nat.is_empty()
    }

    /// The next value of the shard's port-search generator (an LCG, high bits).
    fn nat_random(&mut self) -> u32 {
        self.nat_rng = self
            .nat_rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.nat_rng >> 33) as u32
    }

    /// True while `h` names a live entry (its slot was not freed since the handle was
    /// made): a NATed packet's rewrite, read at judge time, still applies at transmit.
    #[inline]
    pub fn is_current(&self, h: EntryHandle) -> bool {
        let slot = h.slot as usize;
        slot < self.entries.len()
            && self.gens[slot] == h.gen
            && self.entries[slot].meta & M_USED != 0
    }

    /// Entries with a NAT binding (confirmed ones; the `nat bindings` gauge).
    pub fn nat_bindings(&self) -> usize {
        self.nat_len
    }

    /// The ORIGINAL tuple of the entry at `slot`.
    pub(super) fn orig_tuple(&self, slot: usize) -> NatTuple {
        let k = self.key_of_slot(slot);
        if k.is_icmp() {
            return NatTuple {
                src: k.a,
                dst: k.b,
                sport: k.port_a,
                dport: k.port_a,
            };
        }
        let ta = NatTuple {
            src: k.a,
            dst: k.b,
            sport: k.port_a,
            dport: k.port_b,
        };
        if self.entries[slot].meta & M_ORIG_IS_A != 0 {
            ta
        } else {
            ta.invert()
        }
    }

    /// The key under which the reply tuple of a connection whose translated original
    /// tuple is `new` is found (the same key as `new`'s: keys are symmetric).
    pub(super) fn nat_key(&self, slot: usize, new: &NatTuple) -> FlowKey {
        let k = self.key_of_slot(slot);
        if k.is_icmp() {
            FlowKey {
                a: new.src,
                b: new.dst,
                port_a: new.sport,
                ..k
            }
        } else {
            FlowKey::ordered(k.family, k.proto, new.src, new.sport, new.dst, new.dport).0
        }
    }

    /// True when a live entry already uses the key (either of its tuples).
    fn tuple_taken(&mut self, k: &FlowKey, now: Nanos) -> bool {
        self.lookup_live(k, k.hash64(), now).is_some()
    }

    /// The NAT of a pending candidate (Linux's `nf_nat_setup_info` for both manips):
    /// picks the translated original tuple and records it on the candidate; the second
    /// index way is inserted by [`ConnTable::confirm`]. `owns(reply)` is the steering
    /// owner test: only reply tuples this worker owns are accepted (pass `|_| true`
    /// with one worker). A request that translates nothing leaves the entry as it is.
    pub fn bind_nat(
        &mut self,
        h: EntryHandle,
        req: &NatRequest,
        now: Nanos,
        owns: impl Fn(&NatTuple) -> bool,
    ) -> Result<(), NatError> {
        let slot = h.slot as usize;
        if slot >= self.entries.len()
            || self.gens[slot] != h.gen
            || self.entries[slot].meta & (M_USED | M_PENDING) != (M_USED | M_PENDING)
        {
            return Err(NatError::NotCandidate);
        }
        if req.dst.is_none() && req.src.is_none() {
            return Ok(());
        }
        let orig = self.orig_tuple(slot);
        let key = self.key_of_slot(slot);
        let family = key.family;
        let has_ports =
            matches!(key.proto, proto::TCP | proto::UDP | proto::UDPLITE) || key.is_icmp();
        let icmp = key.is_icmp();
        let mut new = orig;
        // Destination manip first (PREROUTING/OUTPUT run before POSTROUTING/INPUT).
        if let Some(r) = req.dst {
            new = dst_pick(family, key.proto, &orig, &r);
        }
        // Source manip (an explicit one, or Linux's null binding when the destination
        // manip alone would clash: the source port may still move).
        let src_range = req.src.unwrap_or_default();
        if src_range.flags & range_flags::MAP_IPS != 0 {
            let dst_part = if src_range.flags & range_flags::PERSISTENT != 0 {
                [0u8; 16]
            } else {
                orig.dst
            };
            let hh = hash_addr(hash_addr(0x736e_6174, &orig.src), &dst_part);
            new.src = addr_range_v4_fix(family, &src_range.min_addr, &src_range.max_addr, hh);
        }
        let random_all = src_range.flags & (range_flags::RANDOM | range_flags::RANDOM_FULLY) != 0;
        let accept = |t: &mut ConnTable, cand: &NatTuple| -> bool {
            let k = t.nat_key(slot, cand);
            owns(&cand.invert()) && !t.tuple_taken(&k, now)
        };
        // Keep the ports when the tuple is free (and in range).
        let in_range = |p: u16| {
            src_range.flags & range_flags::PROTO_SPECIFIED == 0
                || (src_range.min_port..=src_range.max_port).contains(&p)
        };
        let kept_ok = !random_all && in_range(new.sport) && accept(self, &new);
        if !kept_ok {
            if !has_ports {
                // Nothing to search: the addresses alone decide.
                return Err(NatError::NoPort);
            }
            let (min, size) = if src_range.flags & range_flags::PROTO_SPECIFIED != 0 {
                (
                    u32::from(src_range.min_port),
                    u32::from(src_range.max_port.saturating_sub(src_range.min_port)) + 1,
                )
            } else if icmp {
                (0, 65536)
            } else if new.sport < 512 {
                (1, 511)
            } else if new.sport < 1024 {
                (600, 424)
            } else {
                (1024, 64512)
            };
            // Linux (`nf_nat_l4proto_unique_tuple`) starts the search of a source
            // manip at a random offset, and at a new one for each shorter round: a
            // fixed start per destination would make every clash on one address walk
            // the ports the earlier ones took.
            let mut off = self.nat_random();
            let mut found = None;
            let mut attempts = size.min(MAX_ATTEMPTS);
            let mut scanned = 0u32;
            'rounds: loop {
                let mut tested = 0;
                while tested < attempts && scanned < size {
                    let port = (min + off % size) as u16;
                    off = off.wrapping_add(1);
                    scanned += 1;
                    let cand = NatTuple {
                        sport: port,
                        dport: if icmp { port } else { new.dport },
                        ..new
                    };
                    if !owns(&cand.invert()) {
                        continue;
                    }
                    tested += 1;
                    let k = self.nat_key(slot, &cand);
                    if !self.tuple_taken(&k, now) {
                        found = Some(cand);
                        break 'rounds;
                    }
                }
                if scanned >= size || attempts < 16 {
                    break;
                }
                attempts /= 2;
                off = self.nat_random();
            }
            let Some(c) = found else {
                return Err(NatError::NoPort);
            };
            new = c;
        }
        if new == orig {
            return Ok(());
        }
        let mut status = 0;
        if new.src != orig.src || new.sport != orig.sport {
            status |= CtStatus::SRC_NAT;
        }
        if new.dst != orig.dst || (!icmp && new.dport != orig.dport) {
            status |= CtStatus::DST_NAT;
        }
        self.reserve_nat();
        self.nat[slot] = new;
        let e = &mut self.entries[slot];
        e.meta |= M_NAT;
        e.status |= status;
        Ok(())
    }

    /// The rewrite for a packet of direction `dir` on the NATed entry `h` (None when the
    /// entry has no NAT or is gone). Original: to the translated tuple; Reply: from the
    /// reply tuple back to the inverted original.
    #[inline]
    pub fn nat_rewrite(&self, h: EntryHandle, dir: Direction) -> Option<NatRewrite> {
        self.nat_view(h, dir).map(|(rw, _)| rw)
    }

    /// [`ConnTable::nat_rewrite`] and [`ConnTable::nat_tuples`] at once (one read of the
    /// entry and its binding), for the pipeline's per-packet NAT step.
    #[inline]
    pub fn nat_view(
        &self,
        h: EntryHandle,
        dir: Direction,
    ) -> Option<(NatRewrite, (NatTuple, NatTuple))> {
        let slot = h.slot as usize;
        let e = self.entries.get(slot)?;
        if e.meta & M_NAT == 0 || self.gens[slot] != h.gen {
            return None;
        }
        let orig = self.orig_tuple(slot);
        let new = self.nat[slot];
        let src_changes = new.src != orig.src || new.sport != orig.sport;
        let dst_changes = new.dst != orig.dst || new.dport != orig.dport;
        let rw = match dir {
            Direction::Original => NatRewrite {
                new,
                set_src: src_changes,
                set_dst: dst_changes,
            },
            Direction::Reply => NatRewrite {
                new: orig.invert(),
                set_src: dst_changes,
                set_dst: src_changes,
            },
        };
        Some((rw, (orig, new.invert())))
    }

    /// The (ORIGINAL, REPLY) tuples of the NATed entry `h` (None without NAT).
    pub fn nat_tuples(&self, h: EntryHandle) -> Option<(NatTuple, NatTuple)> {
        self.nat_view(h, Direction::Original)
            .map(|(_, tuples)| tuples)
    }

    /// The translated original tuple of a NATed entry (None without NAT).
    pub(super) fn nat_of(&self, slot: usize) -> Option<NatTuple> {
        (self.entries[slot].meta & M_NAT != 0).then(|| self.nat[slot])
    }
}
