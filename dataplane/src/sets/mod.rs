//! IP sets as ipset has them (hash:ip, hash:net, hash:ip,port, hash:net,port,
//! bitmap:port, list:set), read by `-m set` and written by `-j SET`, the control plane
//! (`statewall ctl set …`, the API) and `ipset save` files; and the state other
//! matches keep across packets and workers ([`recent`], [`hashlimit`]: [`shared`]
//! tables of atomic slots).
//!
//! Readers never lock: a [`SetSlot`] holds its contents as an immutable [`SetData`]
//! behind an `ArcSwap`; a lookup is one atomic load and one hash probe per prefix length
//! present. The control plane changes a set by cloning its contents, applying a whole
//! batch of changes and storing the result (a batch is all or nothing). Workers do not
//! write sets: `-j SET` pushes a fixed-size [`QueuedOp`] onto the set's bounded
//! lock-free queue, which the control plane drains ([`SetRegistry::drain`]) into one
//! batch; a full queue counts the change as lost. docs/SETS.md has the design.

mod data;
pub mod elem;
pub mod hashlimit;
pub mod recent;
mod save;
pub mod shared;

#[cfg(test)]
mod tests;

pub use data::{Entry, FamilyExt, KeyOp, SetData};
pub use elem::Key;
pub use save::{parse_restore, save_set as save_text_of, RestoreLine, SetError};

pub use crate::packet::Family;
use crate::packet::{Parsed, L4};
use crate::Nanos;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Most keys one element may expand to (`10.0.0.0/16` in a hash:ip set, port ranges).
pub const MAX_EXPAND: usize = 65536;

/// Capacity of each set's queue of changes from `-j SET`.
pub const QUEUE_CAPACITY: usize = 8192;

/// Most dimensions a `--match-set` may name (ipset's `IPSET_DIM_MAX`).
pub const MAX_DIMS: usize = 6;

/// A set's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetType {
    /// `hash:ip`: host addresses (masked by `netmask`).
    HashIp,
    /// `hash:net`: networks of any prefix length, with `nomatch` exceptions.
    HashNet,
    /// `hash:ip,port`: address and protocol:port pairs.
    HashIpPort,
    /// `hash:net,port`: network and protocol:port pairs.
    HashNetPort,
    /// `bitmap:port`: ports in a range.
    BitmapPort,
    /// `list:set`: other sets, tried in order.
    ListSet,
}

impl SetType {
    /// Every type, with its ipset name.
    pub const ALL: &'static [(SetType, &'static str)] = &[
        (SetType::HashIp, "hash:ip"),
        (SetType::HashNet, "hash:net"),
        (SetType::HashIpPort, "hash:ip,port"),
        (SetType::HashNetPort, "hash:net,port"),
        (SetType::BitmapPort, "bitmap:port"),
        (SetType::ListSet, "list:set"),
    ];

    /// The ipset name.
    pub fn name(self) -> &'static str {
        SetType::ALL
            .iter()
            .find(|t| t.0 == self)
            .map(|t| t.1)
            .unwrap_or("?")
    }

    /// The type of an ipset name.
    pub fn parse(s: &str) -> Option<SetType> {
        SetType::ALL.iter().find(|t| t.1 == s).map(|t| t.0)
    }

    /// How many dimensions an element has (list:set: its members').
    pub fn dims(self) -> usize {
        match self {
            SetType::HashIp | SetType::HashNet | SetType::BitmapPort => 1,
            SetType::HashIpPort | SetType::HashNetPort => 2,
            SetType::ListSet => 1,
        }
    }
}

/// A set's `create` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOptions {
    /// The type.
    pub ty: SetType,
    /// `family inet|inet6` (bitmap:port and list:set: IPv4 as ipset prints them).
    pub family: Family,
    /// `timeout N`: the set has timeout support and this default (0: permanent).
    pub timeout: Option<u32>,
    /// `counters`: per-element packet and byte counters.
    pub counters: bool,
    /// `comment`: per-element comments.
    pub comment: bool,
    /// `hashsize` (kept for `save`; the map grows as needed).
    pub hashsize: u32,
    /// `maxelem`.
    pub maxelem: u32,
    /// `netmask` (hash:ip; the family's width when not given).
    pub netmask: u8,
    /// `range lo-hi` (bitmap:port).
    pub range: (u16, u16),
    /// `size` (list:set).
    pub size: u32,
}

impl SetOptions {
    /// Defaults for a type, as `ipset create NAME TYPE` gives them.
    pub fn new(ty: SetType, family: Family) -> SetOptions {
        SetOptions {
            ty,
            family,
            timeout: None,
            counters: false,
            comment: false,
            hashsize: 1024,
            maxelem: 65536,
            netmask: family.width(),
            range: (0, 65535),
            size: 8,
        }
    }

    pub(crate) fn spec(&self) -> elem::ElemSpec {
        elem::ElemSpec {
            ty: self.ty,
            family: self.family,
            netmask: self.netmask,
            range: self.range,
        }
    }

    /// The options as `ipset save` writes them after the type.
    pub fn save_text(&self) -> String {
        let mut s = String::new();
        match self.ty {
            SetType::BitmapPort => s.push_str(&format!("range {}-{}", self.range.0, self.range.1)),
            SetType::ListSet => s.push_str(&format!("size {}", self.size)),
            _ => {
                s.push_str(&format!(
                    "family {} hashsize {} maxelem {}",
                    self.family.name(),
                    self.hashsize,
                    self.maxelem
                ));
                if self.ty == SetType::HashIp && self.netmask != self.family.width() {
                    s.push_str(&format!(" netmask {}", self.netmask));
                }
            }
        }
        if let Some(t) = self.timeout {
            s.push_str(&format!(" timeout {t}"));
        }
        if self.counters {
            s.push_str(" counters");
        }
        if self.comment {
            s.push_str(" comment");
        }
        s
    }
}

/// Which address or port each dimension of a `--match-set`/`--add-set` takes:
/// `n` dimensions, bit `i` of `dst` set when dimension `i` is `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DimFlags {
    /// Number of dimensions given.
    pub n: u8,
    /// Bit i: dimension i reads the destination.
    pub dst: u8,
}

impl DimFlags {
    /// Parses `src,dst,…`.
    pub fn parse(s: &str) -> Result<DimFlags, String> {
        let mut f = DimFlags { n: 0, dst: 0 };
        for part in s.split(',') {
            if f.n as usize == MAX_DIMS {
                return Err(format!("more than {MAX_DIMS} directions in \"{s}\""));
            }
            match part {
                "src" => {}
                "dst" => f.dst |= 1 << f.n,
                _ => return Err(format!("bad direction \"{part}\" (src or dst)")),
            }
            f.n += 1;
        }
        Ok(f)
    }

    fn is_dst(self, i: usize) -> bool {
        self.dst & (1 << i) != 0
    }

    /// As iptables-save prints them.
    pub fn text(self) -> String {
        (0..self.n as usize)
            .map(|i| if self.is_dst(i) { "dst" } else { "src" })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What a set probe reads from a packet: the address of dimension 0 and the
/// protocol:port of the port dimension (ICMP: type and code).
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// The address.
    pub addr: u128,
    /// The protocol.
    pub proto: u8,
    /// The port.
    pub port: u16,
    /// False when the type needs a port and the packet has none (no match).
    pub has_port: bool,
}

/// The fields of a packet a set element can be made of (fixed size, `Copy`: what a
/// `-j SET` rule queues).
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// The packet's family.
    pub family: Family,
    /// Its protocol.
    pub proto: u8,
    /// Source address (u128 layout).
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// (source, destination) ports; ICMP: type << 8 | code for both; None otherwise.
    pub ports: Option<(u16, u16)>,
}

impl Fields {
    /// Reads them from a parsed packet.
    #[inline]
    pub fn of(p: &Parsed) -> Fields {
        let ports = match p.l4 {
            L4::Tcp(t) => Some((t.sport, t.dport)),
            L4::Udp(u) => Some((u.sport, u.dport)),
            L4::Icmp(i) => {
                let x = (i.ty as u16) << 8 | i.code as u16;
                Some((x, x))
            }
            _ => None,
        };
        Fields {
            family: p.family,
            proto: p.proto,
            src: u128::from_be_bytes(p.src),
            dst: u128::from_be_bytes(p.dst),
            ports,
        }
    }

    /// The probe for a set of type `ty` with `flags`.
    #[inline]
    pub fn probe(&self, ty: SetType, flags: DimFlags) -> Probe {
        let addr = |dst: bool| if dst { self.dst } else { self.src };
        let port = |dst: bool| self.ports.map(|(s, d)| if dst { d } else { s });
        let (addr, port) = match ty {
            // A port bitmap holds ports of protocols that have them (not ICMP types).
            SetType::BitmapPort => (
                0,
                port(flags.is_dst(0)).filter(|_| matches!(self.proto, 6 | 17 | 132 | 136)),
            ),
            SetType::HashIpPort | SetType::HashNetPort => {
                (addr(flags.is_dst(0)), port(flags.is_dst(1)))
            }
            _ => (addr(flags.is_dst(0)), Some(0)),
        };
        let proto = if matches!(ty, SetType::HashIp | SetType::HashNet | SetType::BitmapPort) {
            0
        } else {
            self.proto
        };
        Probe {
            addr,
            proto,
            port: port.unwrap_or(0),
            has_port: port.is_some(),
        }
    }
}

/// Reads the probe for `ty` with `flags` from a packet.
#[inline]
pub fn probe(ty: SetType, flags: DimFlags, p: &Parsed) -> Probe {
    Fields::of(p).probe(ty, flags)
}

/// A change from `-j SET`, queued for the control plane (fixed size: no allocation).
#[derive(Debug, Clone, Copy)]
pub struct QueuedOp {
    /// Add (true) or delete.
    pub add: bool,
    /// `--exist`: refresh the timeout of an element already there.
    pub exist: bool,
    /// `--timeout`.
    pub timeout: Option<u32>,
    /// The rule's directions.
    pub flags: DimFlags,
    /// What the packet gave.
    pub fields: Fields,
}

/// One set: its name, its contents behind an `ArcSwap`, and the queue of changes from
/// the workers' `-j SET` rules.
pub struct SetSlot {
    name: String,
    data: ArcSwap<SetData>,
    queue: crossbeam_queue::ArrayQueue<QueuedOp>,
    /// `-j SET` changes lost to a full queue.
    pub lost: AtomicU64,
    /// Serialises the control plane's writers (never taken by a worker).
    write: Mutex<()>,
}

impl std::fmt::Debug for SetSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetSlot").field("name", &self.name).finish()
    }
}

/// A `--match-set` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestResult {
    /// No element covers the packet.
    Miss,
    /// An element covers it.
    Match,
    /// A `nomatch` element covers it.
    NoMatch,
}

impl SetSlot {
    /// A new, empty set.
    pub fn new(name: &str, opts: SetOptions) -> SetSlot {
        SetSlot {
            name: name.to_string(),
            data: ArcSwap::from_pointee(SetData::new(opts)),
            queue: crossbeam_queue::ArrayQueue::new(QUEUE_CAPACITY),
            lost: AtomicU64::new(0),
            write: Mutex::new(()),
        }
    }

    /// The set's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current contents.
    pub fn data(&self) -> Arc<SetData> {
        self.data.load_full()
    }

    /// The set's type.
    pub fn ty(&self) -> SetType {
        self.data.load().opts.ty
    }

    /// `--match-set`: does the packet's probe hit the set? Counters of the element hit are
    /// bumped when the set has `counters` and `update` is true. Lock-free, no
    /// allocation.
    #[inline]
    pub fn test(
        &self,
        p: &Parsed,
        flags: DimFlags,
        now: Nanos,
        bytes: u64,
        update: bool,
    ) -> TestResult {
        let d = self.data.load();
        if d.opts.ty == SetType::ListSet {
            for (m, exp) in &d.members {
                if *exp != 0 && *exp < now {
                    continue;
                }
                match m.test(p, flags, now, bytes, update) {
                    TestResult::Miss => {}
                    r => return r,
                }
            }
            return TestResult::Miss;
        }
        if d.opts.family != p.family || (flags.n as usize) < d.opts.ty.dims() {
            return TestResult::Miss;
        }
        let pr = probe(d.opts.ty, flags, p);
        if !pr.has_port {
            return TestResult::Miss;
        }
        match d.lookup(pr.addr, pr.proto, pr.port, now) {
            data::Lookup::Miss => TestResult::Miss,
            data::Lookup::NoMatch => TestResult::NoMatch,
            data::Lookup::Match(e) => {
                if update && d.opts.counters {
                    e.packets.fetch_add(1, Ordering::Relaxed);
                    e.bytes.fetch_add(bytes, Ordering::Relaxed);
                }
                TestResult::Match
            }
        }
    }

    /// The counters of the element a packet hits (for `--packets-gt` and friends):
    /// (packets, bytes) before this packet, or None on a miss.
    pub fn counters_of(&self, p: &Parsed, flags: DimFlags, now: Nanos) -> Option<(u64, u64)> {
        let d = self.data.load();
        if d.opts.ty == SetType::ListSet || d.opts.family != p.family {
            return None;
        }
        let pr = probe(d.opts.ty, flags, p);
        match d.lookup(pr.addr, pr.proto, pr.port, now) {
            data::Lookup::Match(e) => Some((
                e.packets.load(Ordering::Relaxed),
                e.bytes.load(Ordering::Relaxed),
            )),
            _ => None,
        }
    }

    /// `-j SET`: queues a change for the control plane (lock-free; no allocation). A
    /// full queue counts it in [`SetSlot::lost`].
    #[inline]
    pub fn queue(&self, op: QueuedOp) {
        if self.queue.push(op).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Changes waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Applies a batch of changes (all or nothing) and publishes the result.
    pub fn apply(&self, ops: &[KeyOp], now: Nanos, exist: bool) -> Result<usize, String> {
        let _g = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut d = SetData::clone(&self.data.load());
        let n = d.apply(ops, now, exist, true)?;
        self.data.store(Arc::new(d));
        Ok(n)
    }

    /// `test NAME ELEM` from the control plane: is the element (a host: any element
    /// covering it, as a packet would see it) in the set at `now`?
    pub fn test_elem(&self, elem: &str, now: Nanos) -> Result<bool, String> {
        let d = self.data.load();
        if d.opts.ty == SetType::ListSet {
            return Ok(d
                .members
                .iter()
                .any(|m| m.0.name() == elem && (m.1 == 0 || m.1 >= now)));
        }
        let keys = elem::parse_elem(elem, &d.spec())?;
        let [k] = keys.as_slice() else {
            return Err(format!("\"{elem}\" is {} elements; test one", keys.len()));
        };
        let host = k.cidr == d.width() || d.opts.ty == SetType::BitmapPort;
        if host {
            return Ok(matches!(
                d.lookup(k.addr, k.proto, k.port, now),
                data::Lookup::Match(_)
            ));
        }
        Ok(d.map
            .get(k)
            .is_some_and(|e| (e.expires == 0 || e.expires >= now) && !e.nomatch))
    }

    /// Empties the set.
    pub fn flush(&self) {
        let _g = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut d = SetData::clone(&self.data.load());
        d.flush();
        self.data.store(Arc::new(d));
    }

    /// Drains the `-j SET` queue into one batch; drops expired elements when some are
    /// due. Returns the number of queued changes taken.
    pub fn drain(&self, now: Nanos) -> usize {
        let due = self.data.load().next_expiry < now;
        if self.queue.is_empty() && !due {
            return 0;
        }
        let _g = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut d = SetData::clone(&self.data.load());
        d.gc(now);
        let mut taken = 0;
        let mut ops = Vec::new();
        while let Some(op) = self.queue.pop() {
            taken += 1;
            if let Some(k) = queued_key(&d, &op) {
                let exist = op.exist;
                ops.clear();
                ops.push(if op.add {
                    KeyOp::Add {
                        key: k,
                        timeout: op.timeout,
                        nomatch: false,
                        counters: None,
                        comment: None,
                    }
                } else {
                    KeyOp::Del(k)
                });
                // A rule's --timeout on a set without timeout support was refused at
                // load; a list:set member add goes to the first member set (below).
                let _ = d.apply(&ops, now, exist, false);
            } else if d.opts.ty == SetType::ListSet {
                for (m, _) in &d.members {
                    if m.ty() != SetType::ListSet && m.accepts(&op) {
                        m.queue(op);
                        break;
                    }
                }
            }
        }
        self.data.store(Arc::new(d));
        taken
    }

    fn accepts(&self, op: &QueuedOp) -> bool {
        let d = self.data.load();
        queued_key(&d, op).is_some()
    }

    /// Replaces the contents with another set's (`swap`); called with both write locks.
    fn exchange(&self, other: &SetSlot) {
        let a = self.data.load_full();
        let b = other.data.load_full();
        self.data.store(b);
        other.data.store(a);
    }
}

/// The key a queued `-j SET` change stands for in set `d`, if it fits the set.
fn queued_key(d: &SetData, op: &QueuedOp) -> Option<Key> {
    if d.opts.ty == SetType::ListSet
        || d.opts.family != op.fields.family
        || (op.flags.n as usize) < d.opts.ty.dims()
    {
        return None;
    }
    let w = d.width();
    let p = op.fields.probe(d.opts.ty, op.flags);
    if !p.has_port {
        return None;
    }
    Some(match d.opts.ty {
        SetType::HashIp => Key {
            addr: p.addr & elem::prefix(d.opts.netmask, d.opts.family),
            cidr: d.opts.netmask,
            proto: 0,
            port: 0,
        },
        SetType::HashNet => Key {
            addr: p.addr,
            cidr: w,
            proto: 0,
            port: 0,
        },
        SetType::HashIpPort | SetType::HashNetPort => Key {
            addr: p.addr,
            cidr: w,
            proto: p.proto,
            port: p.port,
        },
        SetType::BitmapPort => {
            if p.port < d.opts.range.0 || p.port > d.opts.range.1 {
                return None;
            }
            Key {
                addr: 0,
                cidr: 0,
                proto: 0,
                port: p.port,
            }
        }
        SetType::ListSet => return None,
    })
}

/// Every set of a running statewall, by name (control-plane side; rules hold their
/// sets' `Arc<SetSlot>` directly and never touch the registry).
#[derive(Debug, Clone, Default)]
pub struct SetRegistry {
    sets: Arc<Mutex<BTreeMap<String, Arc<SetSlot>>>>,
    recent: Arc<Mutex<BTreeMap<String, Arc<recent::RecentTable>>>>,
    hashlimit: Arc<Mutex<BTreeMap<String, Arc<hashlimit::HashlimitTable>>>>,
}

impl SetRegistry {
    /// An empty registry.
    pub fn new() -> SetRegistry {
        SetRegistry::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<SetSlot>>> {
        self.sets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `-m recent` list of that name, made on first use (kept across reloads, as
    /// the kernel keeps a list while rules name it).
    pub fn recent(&self, name: &str) -> Arc<recent::RecentTable> {
        let mut m = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(name.to_string())
            .or_insert_with(|| Arc::new(recent::RecentTable::new(name)))
            .clone()
    }

    /// Every `-m recent` list.
    pub fn recent_lists(&self) -> Vec<Arc<recent::RecentTable>> {
        let m = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        m.values().cloned().collect()
    }

    /// The `-m hashlimit` table of that name, made on first use.
    pub fn hashlimit(&self, name: &str) -> Arc<hashlimit::HashlimitTable> {
        let mut m = self.hashlimit.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(name.to_string())
            .or_insert_with(|| Arc::new(hashlimit::HashlimitTable::new(name)))
            .clone()
    }

    /// The set of that name.
    pub fn get(&self, name: &str) -> Option<Arc<SetSlot>> {
        self.map().get(name).cloned()
    }

    /// Every set, by name.
    pub fn all(&self) -> Vec<Arc<SetSlot>> {
        self.map().values().cloned().collect()
    }

    /// `create`: refused when the name is taken, unless `exist` and the options are the
    /// same (ipset's `-exist`).
    pub fn create(
        &self,
        name: &str,
        opts: SetOptions,
        exist: bool,
    ) -> Result<Arc<SetSlot>, String> {
        check_name(name)?;
        let mut m = self.map();
        if let Some(s) = m.get(name) {
            if exist && s.data.load().opts == opts {
                return Ok(s.clone());
            }
            return Err(format!("set \"{name}\" already exists"));
        }
        let s = Arc::new(SetSlot::new(name, opts));
        m.insert(name.to_string(), s.clone());
        Ok(s)
    }

    /// `destroy`: refused while a rule or a list:set uses the set.
    pub fn destroy(&self, name: &str) -> Result<(), String> {
        let mut m = self.map();
        let Some(s) = m.get(name) else {
            return Err(format!("set \"{name}\" does not exist"));
        };
        // The registry holds one reference; any other is a rule, a list:set or a
        // request in flight.
        if Arc::strong_count(s) > 1 {
            return Err(format!(
                "set \"{name}\" is in use (by a rule of the running ruleset or a list:set)"
            ));
        }
        m.remove(name);
        Ok(())
    }

    /// `swap`: exchanges the contents of two sets of one type and family, so that rules
    /// naming either see the other's elements.
    pub fn swap(&self, a: &str, b: &str) -> Result<(), String> {
        let (sa, sb) = {
            let m = self.map();
            let get = |n: &str| {
                m.get(n)
                    .cloned()
                    .ok_or_else(|| format!("set \"{n}\" does not exist"))
            };
            (get(a)?, get(b)?)
        };
        if Arc::ptr_eq(&sa, &sb) {
            return Ok(());
        }
        let (oa, ob) = (sa.data.load().opts.clone(), sb.data.load().opts.clone());
        if oa.ty != ob.ty || oa.family != ob.family {
            return Err(format!(
                "sets \"{a}\" ({} {}) and \"{b}\" ({} {}) are not of one type and family",
                oa.ty.name(),
                oa.family.name(),
                ob.ty.name(),
                ob.family.name()
            ));
        }
        // Lock in name order so two swaps cannot deadlock.
        let (first, second) = if a < b { (&sa, &sb) } else { (&sb, &sa) };
        let _g1 = first.write.lock().unwrap_or_else(|e| e.into_inner());
        let _g2 = second.write.lock().unwrap_or_else(|e| e.into_inner());
        sa.exchange(&sb);
        Ok(())
    }

    /// Drains every set's `-j SET` queue and drops expired elements; the number of
    /// queued changes taken.
    pub fn drain(&self, now: Nanos) -> usize {
        self.all().iter().map(|s| s.drain(now)).sum()
    }

    /// Every set in `ipset save` form.
    pub fn save(&self, now: Nanos) -> String {
        self.all().iter().map(|s| save::save_set(s, now)).collect()
    }
}

/// ipset's name rule: 1..31 characters, no white space.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 31 {
        return Err(format!("bad set name \"{name}\" (1 to 31 characters)"));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == ',')
    {
        return Err(format!("bad set name \"{name}\""));
    }
    Ok(())
}
