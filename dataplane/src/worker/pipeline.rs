//! The per-packet pipeline: the one code path every packet takes, in `statewall run`
//! and in `statewall replay` alike: parse -> (defrag) -> raw table -> conntrack ->
//! filter table -> confirm. It returns an [`Outcome`]; where the packet's buffer goes
//! is the poll loop's business (`handoff.rs`, `mod.rs`).

use super::burst::Burst;
use super::mangle::mangle_chains;
use super::nat::{nat_chains, NatAddrs, NatRef};
use super::stats::{state_index, DropReason, LocalStats};
use super::vcache::VerdictCache;
use super::DEFRAG_SLOTS;
use crate::conntrack::{ConfirmResult, ConnTable, CtState, Direction, Track, TrackOpts};
use crate::defrag::{Defrag, DefragResult};
use crate::packet::{self, Frame, ParseError, ETH_P_ARP};
use crate::ruleset::{
    self, FilterChain, MangleOps, PacketCtx, PktMeta, RawChain, RuleCounters, Ruleset, Verdict,
};
use crate::steer::Steering;

/// How a port pair is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairMode {
    /// A bump in the wire: both directions run the FORWARD chain.
    Forward,
    /// In front of one host: toward the host runs INPUT, from it runs OUTPUT.
    Host,
}

/// Which port of a pair a packet came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The port facing the network ("outside").
    Network,
    /// The port facing the protected host or inside network.
    Host,
}

/// What the worker does with frames that are not IPv4/IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonIpPolicy {
    /// Pass ARP, drop everything else (LLDP, ...). The default.
    PassArp,
    /// Pass every non-IP frame.
    Pass,
    /// Drop every non-IP frame.
    Drop,
}

/// The final verdict on one packet, as `replay` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Forward out of the paired port.
    Forward,
    /// Drop, for this reason.
    Drop(DropReason),
    /// A fragment kept for reassembly in this slot: the caller holds the buffer until
    /// an outcome names the slot in `completes` or `discard`.
    Held(usize),
    /// This fragment completed a datagram whose connection another worker owns (see
    /// [`Ownership`]): hand the fragments held for the slot in `completes`, then this
    /// one, to that worker, which reassembles and judges them. Nothing was judged here.
    HandOff(u16),
}

/// The result of [`Pipeline::process`] for one packet.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Forward or drop.
    pub action: Action,
    /// Conntrack's decision (None for non-IP frames and malformed IP headers).
    pub track: Option<Track>,
    /// The parse error of a malformed frame.
    pub parse_error: Option<ParseError>,
    /// The ruleset's verdict (None when the ruleset did not run).
    pub verdict: Option<Verdict>,
    /// Bytes of a REJECT reply written into the caller's reply buffer (0 = none).
    pub reply_len: usize,
    /// This fragment completed the datagram of this reassembly slot: `action` applies to
    /// the fragments held for the slot too (forward them, in order, before this one).
    pub completes: Option<usize>,
    /// Reassembly discarded the datagram of this slot: drop the fragments held for it.
    pub discard: Option<usize>,
    /// The NATed connection of a forwarded packet: [`NatRef::resolve`] gives its rewrite
    /// ([`super::apply_nat`]; for a completed datagram: every fragment).
    pub nat: Option<NatRef>,
    /// The packet mark after the tables (MARK, CONNMARK --restore-mark; 0 without).
    pub mark: u32,
    /// The header edits of the mangle targets ([`super::apply_mangle`], after NAT).
    pub mangle: MangleOps,
}

impl Outcome {
    /// The outcome of a packet handed, unjudged, to worker `to`.
    pub fn handed_off(to: u16) -> Self {
        Self::action(Action::HandOff(to))
    }

    /// An outcome with `action` and nothing else known yet.
    pub(super) fn action(action: Action) -> Self {
        Outcome {
            action,
            track: None,
            parse_error: None,
            verdict: None,
            reply_len: 0,
            completes: None,
            discard: None,
            nat: None,
            mark: 0,
            mangle: MangleOps::default(),
        }
    }
}

/// What the receive path knows about a frame besides its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// [`ConnTable::prefetch`]'s hash of this frame's parse (0: not prefetched).
    pub hash: u64,
    /// The device verified the L4 checksum ([`Mbuf::l4_csum_ok`]).
    pub l4_csum_ok: bool,
}

/// The per-packet pipeline of one worker: its conntrack shard, its per-rule counters
/// and its local statistics.
pub struct Pipeline {
    /// This worker's conntrack shard (single writer).
    pub(super) table: ConnTable,
    /// Per-rule counters for the current ruleset.
    pub(super) counters: RuleCounters,
    /// The ruleset generation `counters` was sized for.
    pub(super) counters_generation: u64,
    /// Local statistics.
    pub(super) stats: LocalStats,
    /// Non-IP policy.
    pub(super) non_ip: NonIpPolicy,
    /// Ports on which the FTP helper is attached by default (config `ftp_ports`).
    pub(super) ftp_ports: Vec<u16>,
    /// Virtual reassembly of fragments.
    pub(super) defrag: Defrag,
    /// Scratch copy of a reassembled datagram.
    whole: Box<[u8]>,
    /// Which worker owns a connection, with several workers (None: this one owns all).
    pub(super) ownership: Option<Ownership>,
    /// The same ownership for NAT's choice of reply tuples: kept while the worker drains
    /// its hand-off rings (where `ownership` is off, since nothing is handed twice), so a
    /// connection whose first packet was handed here still gets a reply tuple that
    /// steers here.
    pub(super) nat_owner: Option<Ownership>,
    /// The addresses MASQUERADE and REDIRECT use (boxed: read only for new NATed
    /// connections, kept out of the pipeline's hot fields).
    pub(super) nat_addrs: Box<NatAddrs>,
    /// The MTU `-j TCPMSS --clamp-mss-to-pmtu` clamps to where the egress port has none
    /// in `port_mtus` (1500).
    pub(super) mtu: u16,
    /// Ports' MTUs by name (config `[[port]] mtu`), read only for a clamped SYN.
    pub(super) port_mtus: Vec<(String, u16)>,
    /// Per-port NAT addresses by port name (set once at start; searched only by a new
    /// NATed connection's walk).
    pub(super) port_nat_addrs: Vec<(Box<str>, NatAddrs)>,
    /// Per-connection verdict caching (`vcache.rs`).
    pub(super) vcache: VerdictCache,
}

/// Which worker owns a connection: the steering model every worker evaluates, the
/// number of workers and this worker's index.
///
/// Steering places packets by a hash of what they carry, which is not always the
/// connection they belong to: an ICMP error carries the flow it quotes, a fragment only
/// its addresses (a non-first fragment has no ports), and a port whose steering is not
/// known (NIC or veth RSS) can place anything anywhere. The poll loop checks those
/// packets against `model` and hands the ones owned elsewhere to their worker through
/// the SPSC rings of [`HandoffLinks`]; a reassembled datagram is checked here, in the
/// pipeline, and comes out as [`Action::HandOff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    /// This worker.
    pub me: u16,
    /// Number of workers (queues per port).
    pub workers: u16,
    /// The steering function that defines ownership.
    pub model: Steering,
}

impl Ownership {
    /// The worker owning the connection of the whole packet `p`, when it is not this one.
    #[inline]
    pub fn elsewhere(&self, frame: &[u8], p: &packet::Parsed) -> Option<u16> {
        let w = self.model.owner(frame, p, self.workers);
        (w != self.me).then_some(w)
    }
}

impl Pipeline {
    /// A pipeline around a conntrack shard, with counters for `rs`.
    pub fn new(mut table: ConnTable, rs: &Ruleset, non_ip: NonIpPolicy) -> Self {
        if rs.has_nat() {
            table.reserve_nat();
        }
        let mut pl = Pipeline {
            table,
            counters: RuleCounters::for_ruleset(rs),
            counters_generation: rs.generation(),
            stats: LocalStats::default(),
            non_ip,
            ftp_ports: Vec::new(),
            defrag: Defrag::new(DEFRAG_SLOTS),
            whole: vec![0u8; 65536 + 128].into_boxed_slice(),
            ownership: None,
            nat_owner: None,
            nat_addrs: Box::default(),
            mtu: 1500,
            port_mtus: Vec::new(),
            port_nat_addrs: Vec::new(),
            vcache: VerdictCache::new(),
        };
        pl.verdict_cache_for(rs);
        if rs.has_mangle() {
            pl.table.reserve_marks();
        }
        pl
    }

    /// Sets the MTU that `-j TCPMSS --clamp-mss-to-pmtu` clamps to (ports without one
    /// of their own in [`Pipeline::set_port_mtus`]).
    pub fn set_mtu(&mut self, mtu: u16) {
        self.mtu = mtu;
    }

    /// Sets the ports' own MTUs (config `[[port]] mtu`), by port name.
    pub fn set_port_mtus(&mut self, mtus: Vec<(String, u16)>) {
        self.port_mtus = mtus;
    }

    /// Attaches the FTP helper by default to connections to these ports (config
    /// `ftp_ports`).
    pub fn set_ftp_ports(&mut self, ports: Vec<u16>) {
        self.ftp_ports = ports;
    }

    /// Sets which worker owns which connection (None: this one owns all).
    pub fn set_ownership(&mut self, ownership: Option<Ownership>) {
        self.ownership = ownership;
        self.nat_owner = ownership;
    }

    /// This worker's conntrack shard.
    pub fn table(&self) -> &ConnTable {
        &self.table
    }

    /// This worker's conntrack shard, to change (control commands: delete, flush).
    pub fn table_mut(&mut self) -> &mut ConnTable {
        &mut self.table
    }

    /// The per-rule counters (of whichever ruleset generation the worker last adopted).
    pub fn counters(&self) -> &RuleCounters {
        &self.counters
    }

    /// The per-rule counters if they belong to ruleset generation `generation` (None
    /// while the worker has not adopted it yet).
    pub fn counters_for(&self, generation: u64) -> Option<&RuleCounters> {
        (self.counters_generation == generation).then_some(&self.counters)
    }

    /// The local statistics (published by the poll loop once per iteration).
    pub fn stats(&self) -> &LocalStats {
        &self.stats
    }

    /// Makes sure the per-rule counters belong to `rs` (after a reload), carrying over
    /// the counters of rules that did not change.
    pub fn adopt(&mut self, old: Option<&Ruleset>, rs: &Ruleset) {
        if self.counters_generation == rs.generation() {
            return;
        }
        if rs.has_nat() {
            // Once per shard life: the first ruleset with `*nat` sizes the index for
            // two ways per connection (re-indexing what is tracked: a one-off pause).
            self.table.reserve_nat();
        }
        if rs.has_mangle() {
            // A control-plane step (a reload), not per packet.
            self.table.reserve_marks();
        }
        self.counters = match old {
            Some(o) => self.counters.carry_over(o, rs),
            None => RuleCounters::for_ruleset(rs),
        };
        self.counters_generation = rs.generation();
        self.verdict_cache_for(rs);
        self.next_verdict_epoch();
    }

    /// Runs one frame of burst `b` through parse -> raw -> conntrack -> filter ->
    /// confirm. A REJECT reply, if any, is written into `reply` (its length in the
    /// outcome).
    pub fn process(&mut self, b: &mut Burst<'_>, frame: &[u8], reply: &mut [u8]) -> Outcome {
        let parsed = packet::parse(frame);
        self.process_parsed(b, frame, &parsed, RxMeta::default(), reply)
    }

    /// [`Pipeline::process`] for a frame the caller has already parsed (the poll loop
    /// parses a whole burst first to prefetch the table buckets), with what the receive
    /// path knows about it (`rx`).
    pub fn process_parsed(
        &mut self,
        b: &mut Burst<'_>,
        frame: &[u8],
        parsed: &Result<Frame, ParseError>,
        rx: RxMeta,
        reply: &mut [u8],
    ) -> Outcome {
        self.stats.packets += 1;
        self.stats.bytes += frame.len() as u64;
        let mut out = Outcome::action(Action::Forward);
        let p = match parsed {
            Ok(Frame::Ip(p)) => p,
            Ok(Frame::NonIp(et)) => {
                let pass = match self.non_ip {
                    NonIpPolicy::Pass => true,
                    NonIpPolicy::PassArp => *et == ETH_P_ARP,
                    NonIpPolicy::Drop => false,
                };
                if pass {
                    self.stats.non_ip_passed += 1;
                    self.stats.forwarded += 1;
                } else {
                    self.stats.drop(DropReason::NonIp);
                    out.action = Action::Drop(DropReason::NonIp);
                }
                return out;
            }
            Err(e) => {
                self.stats.malformed += 1;
                self.stats.drop(DropReason::Malformed);
                out.parse_error = Some(*e);
                out.action = Action::Drop(DropReason::Malformed);
                return out;
            }
        };
        if p.frag.is_fragment() {
            match self.defrag.push(frame, p, b.now) {
                DefragResult::NotFragment => {}
                DefragResult::Held { slot } => {
                    out.action = Action::Held(slot);
                    return out;
                }
                DefragResult::Dropped { slot, .. } => {
                    self.stats.drop(DropReason::Fragment);
                    out.action = Action::Drop(DropReason::Fragment);
                    out.discard = slot;
                    return out;
                }
                DefragResult::Complete { slot } => {
                    let whole = self.defrag.reassembled(slot);
                    let n = whole.len();
                    self.whole[..n].copy_from_slice(whole);
                    self.defrag.release(slot);
                    let whole = std::mem::take(&mut self.whole);
                    let mut o = match packet::parse(&whole[..n]) {
                        Ok(Frame::Ip(wp)) => {
                            match self.ownership.and_then(|ow| ow.elsewhere(&whole[..n], &wp)) {
                                Some(w) => Outcome {
                                    action: Action::HandOff(w),
                                    ..out
                                },
                                // A reassembled datagram: checked here, whole.
                                None => {
                                    self.judge(b, &whole[..n], &wp, RxMeta::default(), reply, out)
                                }
                            }
                        }
                        _ => {
                            self.stats.drop(DropReason::Fragment);
                            Outcome {
                                action: Action::Drop(DropReason::Fragment),
                                ..out
                            }
                        }
                    };
                    self.whole = whole;
                    o.completes = Some(slot);
                    return o;
                }
            }
        }
        self.judge(b, frame, p, rx, reply, out)
    }

    /// Raw table, conntrack, filter table and confirm for one whole IP packet.
    fn judge(
        &mut self,
        b: &mut Burst<'_>,
        frame: &[u8],
        p: &packet::Parsed,
        rx: RxMeta,
        reply: &mut [u8],
        mut out: Outcome,
    ) -> Outcome {
        let (rs, pair, now) = (b.rs, b.pair, b.now);
        let log = &mut *b.log;
        // Which chains and interface names apply.
        let (raw_chain, filter_chain, in_port, out_port) = match (pair.mode, b.ingress) {
            (PairMode::Forward, Side::Network) => (
                RawChain::Prerouting,
                FilterChain::Forward,
                pair.network,
                pair.host,
            ),
            (PairMode::Forward, Side::Host) => (
                RawChain::Prerouting,
                FilterChain::Forward,
                pair.host,
                pair.network,
            ),
            (PairMode::Host, Side::Network) => {
                (RawChain::Prerouting, FilterChain::Input, pair.network, "")
            }
            (PairMode::Host, Side::Host) => {
                (RawChain::Output, FilterChain::Output, "", pair.network)
            }
        };
        let meta = PktMeta::new(0);
        let mut ctx = PacketCtx {
            frame,
            parsed: p,
            ct_state: CtState::Invalid,
            ct_dir: Direction::Original,
            ct_status: Default::default(),
            in_port,
            out_port,
            ct_tuples: None,
            now,
            meta: &meta,
        };
        // raw table (before conntrack).
        let raw = if rs.raw_logs() {
            rs.eval_raw_log(raw_chain, &ctx, &mut self.counters, &mut &mut *log)
        } else {
            rs.eval_raw(raw_chain, &ctx, &mut self.counters)
        };
        if raw.drop {
            self.stats.verdict_drop += 1;
            self.stats.drop(DropReason::Policy);
            out.action = Action::Drop(DropReason::Policy);
            out.verdict = Some(Verdict::Drop);
            return out;
        }
        let mut helper = raw.helper.map(|h| match h {
            ruleset::Helper::Ftp => crate::conntrack::HelperKind::Ftp,
        });
        if helper.is_none() && !self.ftp_ports.is_empty() {
            if let packet::L4::Tcp(t) = p.l4 {
                if self.ftp_ports.contains(&t.dport) {
                    helper = Some(crate::conntrack::HelperKind::Ftp);
                }
            }
        }
        let opts = TrackOpts {
            notrack: raw.notrack,
            helper,
            hash: rx.hash,
            l4_csum_ok: rx.l4_csum_ok,
        };
        let t = self.table.track(frame, p, now, opts);
        self.stats.by_state[state_index(t.state)] += 1;
        out.track = Some(t);
        if t.table_full_drop {
            self.stats.drop(DropReason::TableFull);
            out.action = Action::Drop(DropReason::TableFull);
            return out;
        }
        ctx.ct_state = t.state;
        ctx.ct_dir = t.dir;
        ctx.ct_status = t.status;
        let mangle_on = rs.has_mangle();
        let mangle = mangle_chains(pair.mode, b.ingress);
        if mangle_on {
            self.mangle_attach(&meta, &t);
            if let Some(c) = mangle.0 {
                if rs.eval_mangle(c, &ctx, &mut self.counters, &mut &mut *log) {
                    return self.mangle_drop(&t, frame, p, now, out);
                }
            }
        }
        // NAT (worker/nat.rs), off the un-NATed path: an existing NATed connection's
        // packet shows the filter its translated destination and its tuples; a new
        // connection's first packet walks the destination-manip nat chain first.
        let nat_on = rs.has_nat();
        let nat_chain = nat_chains(pair.mode, b.ingress);
        let mut pre_dst = None;
        let prep;
        // A data connection of a NATed FTP master gets the master's NAT, not the nat
        // chains' (nf_nat_follow_master, at creation: the filter sees it translated).
        let followed = match t.handle.filter(|_| t.candidate) {
            Some(h) => match self.table.take_follow(h) {
                Some(req) => {
                    if self.bind_owned(h, &req, (p.family, p.proto), now).is_err() {
                        return self.nat_drop(&t, frame, p, now, out);
                    }
                    true
                }
                None => false,
            },
            None => false,
        };
        let walk = t.candidate && nat_on && !followed;
        if walk || followed || (!t.candidate && self.table.nat_bindings() > 0) {
            let tv = Track {
                candidate: t.candidate && !followed,
                ..t
            };
            prep = self.nat_prepare(rs, nat_chain.0, &tv, p, &ctx, &mut *log);
            if prep.drop {
                return self.nat_drop(&t, frame, p, now, out);
            }
            out.nat = prep.apply;
            pre_dst = prep.pre_dst;
            ctx.ct_status.0 |= prep.status;
            if let (true, Some(rw)) = (followed, prep.apply.and_then(|a| a.resolve(&self.table))) {
                use crate::conntrack::CtStatus;
                let r = rw.rewrite;
                ctx.ct_status.0 |= if r.set_src { CtStatus::SRC_NAT } else { 0 }
                    | if r.set_dst { CtStatus::DST_NAT } else { 0 };
            }
            if let Some(q) = &prep.shown {
                ctx.parsed = q;
            }
            if let Some(tu) = &prep.tuples {
                ctx.ct_tuples = Some(tu);
            }
        }
        if let Some(c) = mangle.1.filter(|_| mangle_on) {
            if rs.eval_mangle(c, &ctx, &mut self.counters, &mut &mut *log) {
                return self.mangle_drop(&t, frame, p, now, out);
            }
        }
        let v = self.filter_verdict(rs, filter_chain, &t, &ctx, &mut &mut *log);
        out.verdict = Some(v);
        if let Some(c) = mangle
            .2
            .filter(|_| mangle_on && matches!(v, Verdict::Accept))
        {
            if rs.eval_mangle(c, &ctx, &mut self.counters, &mut &mut *log) {
                return self.mangle_drop(&t, frame, p, now, out);
            }
        }
        if walk && matches!(v, Verdict::Accept) {
            let h = t.handle.expect("a candidate has a handle");
            if self
                .nat_post(rs, nat_chain.1, &ctx, (h, pre_dst), now, &mut *log)
                .is_err()
            {
                return self.nat_drop(&t, frame, p, now, out);
            }
        }
        let accepted = matches!(v, Verdict::Accept);
        // Linux's confirm step: the helper runs on accepted packets (it may drop), and a
        // NEW/RELATED entry is committed only if the packet is accepted.
        let confirmed = self.table.confirm(&t, accepted, frame, p, now);
        if t.candidate && (nat_on || followed) && confirmed.is_pass() {
            // The binding of the entry just confirmed (none if the candidate was merged
            // into an entry confirmed first: its handle is stale then).
            out.nat = t.handle.and_then(|h| {
                self.table.nat_rewrite(h, t.dir).map(|rw| NatRef {
                    handle: h,
                    dir: t.dir,
                    icmp_error: false,
                    rewrite: rw,
                })
            });
        } else if !confirmed.is_pass() {
            out.nat = None;
        }
        if mangle_on && accepted && confirmed.is_pass() {
            self.mangle_finish(&meta, &t, p, out_port, &mut out);
        }
        match v {
            Verdict::Accept if confirmed.is_pass() => {
                self.stats.verdict_accept += 1;
                self.stats.forwarded += 1;
            }
            Verdict::Accept if confirmed == ConfirmResult::HelperDrop => {
                self.stats.verdict_accept += 1;
                self.stats.drop(DropReason::Helper);
                out.action = Action::Drop(DropReason::Helper);
            }
            Verdict::Accept => {
                // The insert failed (a clash, or no free slot): Linux drops the packet.
                self.stats.verdict_accept += 1;
                self.stats.drop(DropReason::TableFull);
                out.action = Action::Drop(DropReason::TableFull);
            }
            Verdict::Drop => {
                self.stats.verdict_drop += 1;
                self.stats.drop(DropReason::Policy);
                out.action = Action::Drop(DropReason::Policy);
            }
            Verdict::Reject(kind) => {
                self.stats.verdict_reject += 1;
                self.stats.drop(DropReason::Reject);
                out.action = Action::Drop(DropReason::Reject);
                if let Some(n) = ruleset::build_reject(kind, frame, p, reply) {
                    out.reply_len = n;
                    self.stats.rejects_sent += 1;
                }
            }
        }
        out
    }

    #[cold]
    /// Drops a new connection's first packet for which NAT found no tuple (or no
    /// address): the candidate is released, `drops_total{reason="nat_no_port"}`.
    fn nat_drop(
        &mut self,
        t: &Track,
        frame: &[u8],
        p: &packet::Parsed,
        now: crate::Nanos,
        mut out: Outcome,
    ) -> Outcome {
        let _ = self.table.confirm(t, false, frame, p, now);
        self.stats.drop(DropReason::NatNoPort);
        out.action = Action::Drop(DropReason::NatNoPort);
        out.nat = None;
        out
    }
}
