//! One set's contents: an immutable hash map of [`Key`]s, rebuilt per change batch and
//! published through the set's `ArcSwap` (see [`super::SetSlot`]). Readers only load
//! and probe; the control plane clones, applies a batch and stores.

use super::elem::{ElemSpec, Key};
use super::{Family, SetOptions, SetSlot, SetType};
use crate::Nanos;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A small multiplicative hasher for [`Key`] (keys are not attacker-chosen beyond what
/// a rule writes; the set's size is bounded by `maxelem`).
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64)
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(i as u64)
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown takes its control bits from the top.
        self.0 ^ (self.0 >> 29)
    }
}

type Map = HashMap<Key, Entry, BuildHasherDefault<FxHasher>>;

/// One element's state.
#[derive(Debug)]
pub struct Entry {
    /// When it expires (0: never).
    pub expires: Nanos,
    /// A `nomatch` element (hash:net types): a hit on it is a miss.
    pub nomatch: bool,
    /// Packets matched (sets created with `counters`).
    pub packets: AtomicU64,
    /// Bytes matched.
    pub bytes: AtomicU64,
    /// `comment "..."` (sets created with `comment`).
    pub comment: Option<Box<str>>,
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        Entry {
            expires: self.expires,
            nomatch: self.nomatch,
            packets: AtomicU64::new(self.packets.load(Ordering::Relaxed)),
            bytes: AtomicU64::new(self.bytes.load(Ordering::Relaxed)),
            comment: self.comment.clone(),
        }
    }
}

impl Entry {
    #[inline]
    fn live(&self, now: Nanos) -> bool {
        // Live through its deadline: the kernel's element expires when now > deadline.
        self.expires == 0 || self.expires >= now
    }
}

/// What a lookup found.
pub(crate) enum Lookup<'a> {
    Miss,
    Match(&'a Entry),
    NoMatch,
}

/// One change to apply.
#[derive(Debug, Clone)]
pub enum KeyOp {
    /// Add (or with `exist`, refresh) an element.
    Add {
        /// The element.
        key: Key,
        /// Seconds (None: the set's default; Some(0): permanent).
        timeout: Option<u32>,
        /// A `nomatch` element.
        nomatch: bool,
        /// Initial counters.
        counters: Option<(u64, u64)>,
        /// Comment.
        comment: Option<Box<str>>,
    },
    /// Delete an element.
    Del(Key),
    /// A list:set member (`add LIST SETNAME`), with its timeout.
    AddMember(Arc<SetSlot>, Option<u32>),
    /// Remove a list:set member.
    DelMember(String),
}

/// A set's immutable contents.
#[derive(Debug, Clone)]
pub struct SetData {
    /// Its create options.
    pub opts: SetOptions,
    pub(crate) map: Map,
    /// Elements per prefix length (hash:net types).
    cidr_count: Vec<u32>,
    /// Prefix lengths present, longest first (the lookup order).
    cidrs: Vec<u8>,
    /// list:set members in order, with their expiry (0: never).
    pub(crate) members: Vec<(Arc<SetSlot>, Nanos)>,
    /// Earliest expiry of any element (u64::MAX: none).
    pub(crate) next_expiry: Nanos,
    /// A prefix length appeared or vanished since `cidrs` was computed.
    cidrs_dirty: bool,
}

impl SetData {
    /// An empty set.
    pub fn new(opts: SetOptions) -> SetData {
        SetData {
            opts,
            map: Map::default(),
            cidr_count: vec![0; 129],
            cidrs: Vec::new(),
            members: Vec::new(),
            next_expiry: u64::MAX,
            cidrs_dirty: false,
        }
    }

    /// Live elements at `now` (list:set: members).
    pub fn len(&self, now: Nanos) -> usize {
        if self.opts.ty == SetType::ListSet {
            return self
                .members
                .iter()
                .filter(|m| m.1 == 0 || m.1 >= now)
                .count();
        }
        self.map.values().filter(|e| e.live(now)).count()
    }

    /// True when no element is live.
    pub fn is_empty(&self, now: Nanos) -> bool {
        self.len(now) == 0
    }

    pub(crate) fn spec(&self) -> ElemSpec {
        self.opts.spec()
    }

    /// Finds the element covering (addr, proto, port): hash:ip and bitmap:port probe
    /// once; hash:net types probe each prefix length present, longest first, and the
    /// first live element decides (a `nomatch` one makes it a miss).
    #[inline]
    pub(crate) fn lookup(&self, addr: u128, proto: u8, port: u16, now: Nanos) -> Lookup<'_> {
        let fam = self.opts.family;
        match self.opts.ty {
            SetType::HashIp => {
                let k = Key {
                    addr: addr & super::elem::prefix(self.opts.netmask, fam),
                    cidr: self.opts.netmask,
                    proto: 0,
                    port: 0,
                };
                self.hit(&k, now)
            }
            SetType::HashIpPort => {
                let k = Key {
                    addr,
                    cidr: fam.width(),
                    proto,
                    port,
                };
                self.hit(&k, now)
            }
            SetType::BitmapPort => {
                let k = Key {
                    addr: 0,
                    cidr: 0,
                    proto: 0,
                    port,
                };
                self.hit(&k, now)
            }
            SetType::HashNet | SetType::HashNetPort => {
                let (proto, port) = if self.opts.ty == SetType::HashNet {
                    (0, 0)
                } else {
                    (proto, port)
                };
                for &c in &self.cidrs {
                    let k = Key {
                        addr: addr & super::elem::prefix(c, fam),
                        cidr: c,
                        proto,
                        port,
                    };
                    match self.map.get(&k) {
                        Some(e) if e.live(now) => {
                            return if e.nomatch {
                                Lookup::NoMatch
                            } else {
                                Lookup::Match(e)
                            }
                        }
                        _ => {}
                    }
                }
                Lookup::Miss
            }
            SetType::ListSet => Lookup::Miss,
        }
    }

    #[inline]
    fn hit(&self, k: &Key, now: Nanos) -> Lookup<'_> {
        match self.map.get(k) {
            Some(e) if e.live(now) => Lookup::Match(e),
            _ => Lookup::Miss,
        }
    }

    fn expiry(&self, timeout: Option<u32>, now: Nanos) -> Result<Nanos, String> {
        let t = match (timeout, self.opts.timeout) {
            (Some(_), None) => {
                return Err(format!(
                    "set was created without timeout support ({} has no \"timeout\" option)",
                    self.opts.ty.name()
                ))
            }
            (Some(t), Some(_)) => t,
            (None, Some(d)) => d,
            (None, None) => 0,
        };
        Ok(if t == 0 {
            0
        } else {
            now + t as u64 * 1_000_000_000
        })
    }

    fn insert(&mut self, k: Key, e: Entry) {
        if e.expires != 0 {
            self.next_expiry = self.next_expiry.min(e.expires);
        }
        if self.map.insert(k, e).is_none() {
            let c = &mut self.cidr_count[k.cidr as usize];
            self.cidrs_dirty |= *c == 0;
            *c += 1;
        }
    }

    fn remove(&mut self, k: &Key) -> Option<Entry> {
        let e = self.map.remove(k)?;
        let c = &mut self.cidr_count[k.cidr as usize];
        *c -= 1;
        self.cidrs_dirty |= *c == 0;
        Some(e)
    }

    /// Applies `ops` in order. `strict` (the control plane): adding an element already
    /// there without `exist`, deleting one that is not, and a full set are errors (the
    /// batch is refused whole by the caller). Not strict (`-j SET` from the workers):
    /// those are skipped, as the kernel's SET target ignores them.
    pub(crate) fn apply(
        &mut self,
        ops: &[KeyOp],
        now: Nanos,
        exist: bool,
        strict: bool,
    ) -> Result<usize, String> {
        let mut done = 0;
        for op in ops {
            match op {
                KeyOp::Add {
                    key,
                    timeout,
                    nomatch,
                    counters,
                    comment,
                } => {
                    if *nomatch && !matches!(self.opts.ty, SetType::HashNet | SetType::HashNetPort)
                    {
                        return Err(format!(
                            "\"nomatch\" is for hash:net types, not {}",
                            self.opts.ty.name()
                        ));
                    }
                    let expires = self.expiry(*timeout, now)?;
                    let there = self.map.get(key).is_some_and(|e| e.live(now));
                    if there && !exist {
                        if strict {
                            return Err("element is already in the set (use -exist)".into());
                        }
                        continue;
                    }
                    if !there && self.map.len() >= self.opts.maxelem as usize {
                        self.gc(now);
                        if self.map.len() >= self.opts.maxelem as usize {
                            if strict {
                                return Err(format!(
                                    "set is full ({} elements, maxelem)",
                                    self.opts.maxelem
                                ));
                            }
                            continue;
                        }
                    }
                    let (p, b) = counters.unwrap_or((0, 0));
                    self.insert(
                        *key,
                        Entry {
                            expires,
                            nomatch: *nomatch,
                            packets: AtomicU64::new(p),
                            bytes: AtomicU64::new(b),
                            comment: comment.clone(),
                        },
                    );
                }
                KeyOp::Del(key) => {
                    let live = self.map.get(key).is_some_and(|e| e.live(now));
                    if !live {
                        if strict && !exist {
                            return Err("element is not in the set".into());
                        }
                        continue;
                    }
                    self.remove(key);
                }
                KeyOp::AddMember(slot, timeout) => {
                    let expires = self.expiry(*timeout, now)?;
                    if let Some(m) = self.members.iter_mut().find(|m| m.0.name() == slot.name()) {
                        if !exist && strict {
                            return Err(format!("set \"{}\" is already a member", slot.name()));
                        }
                        m.1 = expires;
                    } else {
                        if self.members.len() >= self.opts.size as usize {
                            return Err(format!("list is full (size {})", self.opts.size));
                        }
                        if expires != 0 {
                            self.next_expiry = self.next_expiry.min(expires);
                        }
                        self.members.push((slot.clone(), expires));
                    }
                }
                KeyOp::DelMember(name) => {
                    match self.members.iter().position(|m| m.0.name() == name) {
                        Some(i) => {
                            self.members.remove(i);
                        }
                        None if strict && !exist => {
                            return Err(format!("set \"{name}\" is not a member"))
                        }
                        None => {}
                    }
                }
            }
            done += 1;
        }
        if self.cidrs_dirty {
            self.refresh_cidrs();
        }
        Ok(done)
    }

    /// Removes every element.
    pub(crate) fn flush(&mut self) {
        self.map.clear();
        self.members.clear();
        self.cidr_count.iter_mut().for_each(|c| *c = 0);
        self.next_expiry = u64::MAX;
        self.refresh_cidrs();
    }

    /// Drops expired elements (they are already invisible to lookups).
    pub(crate) fn gc(&mut self, now: Nanos) {
        let mut next = u64::MAX;
        let cc = &mut self.cidr_count;
        self.map.retain(|k, e| {
            if e.live(now) {
                if e.expires != 0 {
                    next = next.min(e.expires);
                }
                true
            } else {
                cc[k.cidr as usize] -= 1;
                false
            }
        });
        self.members.retain(|m| {
            let live = m.1 == 0 || m.1 >= now;
            if live && m.1 != 0 {
                next = next.min(m.1);
            }
            live
        });
        self.next_expiry = next;
        self.refresh_cidrs();
    }

    fn refresh_cidrs(&mut self) {
        self.cidrs_dirty = false;
        self.cidrs = (0..=128u8)
            .rev()
            .filter(|&c| self.cidr_count[c as usize] > 0)
            .collect();
    }

    /// The live elements, sorted, with their entries (for `list` and `save`).
    pub fn entries(&self, now: Nanos) -> Vec<(Key, &Entry)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .filter(|(_, e)| e.live(now))
            .map(|(k, e)| (*k, e))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// The family's address width.
    pub fn width(&self) -> u8 {
        self.opts.family.width()
    }
}

/// Family helpers.
pub trait FamilyExt {
    /// Address bits: 32 or 128.
    fn width(self) -> u8;
    /// ipset's family name: `inet` or `inet6`.
    fn name(self) -> &'static str;
}

impl FamilyExt for Family {
    fn width(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        }
    }
}
