//! The worker: the per-packet pipeline and the poll loop around it.
//!
//! [`Pipeline::process`] is the one code path every packet takes, in `statewall run`
//! and in `statewall replay` alike: parse -> raw table -> conntrack -> filter table ->
//! confirm. [`Worker::run`] is the poll-mode loop: for each port pair it pulls a burst,
//! loads the ruleset pointer once for the whole burst, prefetches the table buckets,
//! runs every packet through the pipeline, and sends what was accepted out of the
//! paired port (REJECT replies out of the ingress port).
//!
//! The hot path never allocates, locks or makes a system call per packet: buffers come
//! from the worker's own pool, statistics are worker-local and published once per burst
//! into a cache-padded block that the control plane reads, and control requests arrive
//! through a bounded command queue drained between bursts.

use crate::conntrack::{ConfirmResult, ConnTable, CtState, Direction, Nanos, Track, TrackOpts};
use crate::defrag::{Defrag, DefragResult, MAX_FRAGMENTS};
use crate::packet::{self, Frame, ParseError, ETH_P_ARP};
use crate::port::{Mbuf, MbufPool, Port};
use crate::ruleset::{self, FilterChain, PacketCtx, RawChain, RuleCounters, Ruleset, Verdict};
use crate::steer::Steering;
use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

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

/// Why the worker dropped a packet: the closed set behind `statewall_drops_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

impl DropReason {
    /// Every reason, in a stable order (metrics pre-initialise all of them).
    pub const ALL: [DropReason; 10] = [
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
        }
    }
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
}

impl Outcome {
    /// The outcome of a packet handed, unjudged, to worker `to`.
    pub fn handed_off(to: u16) -> Self {
        Self::action(Action::HandOff(to))
    }

    /// An outcome with `action` and nothing else known yet.
    fn action(action: Action) -> Self {
        Outcome {
            action,
            track: None,
            parse_error: None,
            verdict: None,
            reply_len: 0,
            completes: None,
            discard: None,
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
    /// Drops by [`DropReason::ALL`] index.
    pub drops: [u64; 10],
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
    fn drop(&mut self, r: DropReason) {
        self.drops[DropReason::ALL.iter().position(|x| *x == r).unwrap_or(0)] += 1;
    }
}

/// The per-packet pipeline of one worker: its conntrack shard, its per-rule counters
/// and its local statistics.
pub struct Pipeline {
    /// This worker's conntrack shard (single writer).
    pub table: ConnTable,
    /// Per-rule counters for the current ruleset.
    pub counters: RuleCounters,
    /// The ruleset generation `counters` was sized for.
    pub counters_generation: u64,
    /// Local statistics.
    pub stats: LocalStats,
    /// Non-IP policy.
    pub non_ip: NonIpPolicy,
    /// Ports on which the FTP helper is attached by default (config `ftp_ports`).
    pub ftp_ports: Vec<u16>,
    /// Virtual reassembly of fragments.
    pub defrag: Defrag,
    /// Scratch copy of a reassembled datagram.
    whole: Box<[u8]>,
    /// Which worker owns a connection, with several workers (None: this one owns all).
    pub ownership: Option<Ownership>,
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

/// Names and mode of the pair a packet is travelling through.
#[derive(Debug, Clone, Copy)]
pub struct PairView<'a> {
    /// Forward or host mode.
    pub mode: PairMode,
    /// Name of the network-facing port.
    pub network: &'a str,
    /// Name of the host-facing port.
    pub host: &'a str,
}

impl Pipeline {
    /// A pipeline around a conntrack shard, with counters for `rs`.
    pub fn new(table: ConnTable, rs: &Ruleset, non_ip: NonIpPolicy) -> Self {
        Pipeline {
            table,
            counters: RuleCounters::for_ruleset(rs),
            counters_generation: rs.generation(),
            stats: LocalStats::default(),
            non_ip,
            ftp_ports: Vec::new(),
            defrag: Defrag::new(DEFRAG_SLOTS),
            whole: vec![0u8; 65536 + 128].into_boxed_slice(),
            ownership: None,
        }
    }

    /// Makes sure the per-rule counters belong to `rs` (after a reload), carrying over
    /// the counters of rules that did not change.
    pub fn adopt(&mut self, old: Option<&Ruleset>, rs: &Ruleset) {
        if self.counters_generation == rs.generation() {
            return;
        }
        self.counters = match old {
            Some(o) => self.counters.carry_over(o, rs),
            None => RuleCounters::for_ruleset(rs),
        };
        self.counters_generation = rs.generation();
    }

    /// Runs one frame through parse -> raw -> conntrack -> filter -> confirm.
    /// A REJECT reply, if any, is written into `reply` (its length in the outcome).
    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &mut self,
        rs: &Ruleset,
        frame: &[u8],
        pair: PairView<'_>,
        ingress: Side,
        now: Nanos,
        reply: &mut [u8],
        log: &mut dyn FnMut(ruleset::LogEvent<'_>),
    ) -> Outcome {
        let parsed = packet::parse(frame);
        let rx = RxMeta::default();
        self.process_parsed(rs, frame, &parsed, rx, pair, ingress, now, reply, log)
    }

    /// [`Pipeline::process`] for a frame the caller has already parsed (the poll loop
    /// parses a whole burst first to prefetch the table buckets), with what the receive
    /// path knows about it (`rx`).
    #[allow(clippy::too_many_arguments)]
    pub fn process_parsed(
        &mut self,
        rs: &Ruleset,
        frame: &[u8],
        parsed: &Result<Frame, ParseError>,
        rx: RxMeta,
        pair: PairView<'_>,
        ingress: Side,
        now: Nanos,
        reply: &mut [u8],
        log: &mut dyn FnMut(ruleset::LogEvent<'_>),
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
            match self.defrag.push(frame, p, now) {
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
                                None => self.judge(
                                    rs,
                                    &whole[..n],
                                    &wp,
                                    // A reassembled datagram: checked here, whole.
                                    RxMeta::default(),
                                    pair,
                                    ingress,
                                    now,
                                    reply,
                                    log,
                                    out,
                                ),
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
        self.judge(rs, frame, p, rx, pair, ingress, now, reply, log, out)
    }

    /// Raw table, conntrack, filter table and confirm for one whole IP packet.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &mut self,
        rs: &Ruleset,
        frame: &[u8],
        p: &packet::Parsed,
        rx: RxMeta,
        pair: PairView<'_>,
        ingress: Side,
        now: Nanos,
        reply: &mut [u8],
        log: &mut dyn FnMut(ruleset::LogEvent<'_>),
        mut out: Outcome,
    ) -> Outcome {
        // Which chains and interface names apply.
        let (raw_chain, filter_chain, in_port, out_port) = match (pair.mode, ingress) {
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
        let mut ctx = PacketCtx {
            frame,
            parsed: p,
            ct_state: CtState::Invalid,
            ct_dir: Direction::Original,
            ct_status: Default::default(),
            in_port,
            out_port,
            now,
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
        let v = rs.eval_filter(filter_chain, &ctx, &mut self.counters, &mut &mut *log);
        out.verdict = Some(v);
        let accepted = matches!(v, Verdict::Accept);
        // Linux's confirm step: the helper runs on accepted packets (it may drop), and a
        // NEW/RELATED entry is committed only if the packet is accepted.
        let confirmed = self.table.confirm(&t, accepted, frame, p, now);
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
    pub drops: [AtomicU64; 10],
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
    /// Conntrack `-S` counters: found, invalid, ignore, insert, insert_failed, drop, early_drop, search_restart.
    pub ct_stats: [AtomicU64; 8],
    /// Entries expired by protocol: tcp, udp, icmp, icmpv6, other.
    pub expired: [AtomicU64; 5],
    /// Packets handed to the worker owning their connection.
    pub handed_off: AtomicU64,
}

impl PublishedStats {
    fn publish(&self, s: &LocalStats) {
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
}

/// A control request to a worker, drained between bursts: a closure run on the worker's
/// pipeline (conntrack list/get/delete/flush/count, per-rule counter snapshots). It
/// answers through whatever channel it captured. This is how the control plane reaches a
/// worker's state without any lock on the hot path.
pub type Command = Box<dyn FnOnce(&mut Pipeline, Nanos) + Send>;

/// What the control plane holds for each worker.
pub struct WorkerHandle {
    /// Published statistics.
    pub stats: Arc<CachePadded<PublishedStats>>,
    /// The command queue into the worker.
    pub commands: Arc<crossbeam_queue::ArrayQueue<Command>>,
    /// The core the worker is pinned to, if any.
    pub core: Option<usize>,
}

/// One port pair as a worker polls it: one queue of each port.
pub struct PairPorts {
    /// Forward or host mode.
    pub mode: PairMode,
    /// Network-facing port (this worker's queue of it).
    pub network: Box<dyn Port>,
    /// Host-facing port (this worker's queue of it).
    pub host: Box<dyn Port>,
    /// Queue index on both ports.
    pub queue: u16,
}

/// Shared clock: nanoseconds since the runtime started (one read per burst).
#[derive(Debug, Clone, Copy)]
pub struct Clock(std::time::Instant);

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Clock(std::time::Instant::now())
    }
    /// Nanoseconds since start.
    pub fn now(&self) -> Nanos {
        self.0.elapsed().as_nanos() as Nanos
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads a cycle counter: the TSC on x86_64, nanoseconds elsewhere.
#[inline(always)]
pub fn cycles(clock: &Clock) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let _ = clock;
        // SAFETY: RDTSC has no preconditions; it only reads the time-stamp counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        clock.now()
    }
}

/// A poll-mode worker: owns its pipeline, buffer pool and its queue of every port.
pub struct Worker {
    /// Worker index.
    pub id: usize,
    /// Core to pin to.
    pub core: Option<usize>,
    /// The pipeline.
    pub pipeline: Pipeline,
    /// Buffer pool.
    pub pool: MbufPool,
    /// The pairs this worker polls.
    pub pairs: Vec<PairPorts>,
    /// Port names per pair (network, host).
    pub pair_names: Vec<(String, String)>,
    /// Packets per burst.
    pub burst: usize,
    /// The published ruleset.
    pub ruleset: Arc<ArcSwap<Ruleset>>,
    /// Published statistics.
    pub stats: Arc<CachePadded<PublishedStats>>,
    /// Control requests.
    pub commands: Arc<crossbeam_queue::ArrayQueue<Command>>,
    /// Set to stop the loop.
    pub stop: Arc<AtomicBool>,
    /// Shared clock.
    pub clock: Clock,
    /// LOG records leave through this bounded queue (dropped and counted when full).
    pub log_events: Option<Arc<crossbeam_queue::ArrayQueue<LogRecord>>>,
    /// LOG events lost because the queue was full.
    pub log_lost: Arc<AtomicU64>,
    /// Rings to and from the other workers (ICMP errors about a flow another worker
    /// owns); None with one worker, or when the backend's steering hash is not ours.
    pub handoff: Option<HandoffLinks>,
}

/// A packet handed to the worker owning its connection, with where it came in.
#[derive(Debug)]
pub struct Handoff {
    /// The frame (a buffer of the sending worker's pool).
    pub m: Mbuf,
    /// Index of the port pair it arrived on.
    pub pair: u16,
    /// The side it arrived on.
    pub ingress: Side,
}

/// One worker's ends of the handoff mesh (one SPSC ring per ordered worker pair).
///
/// Steering sends a packet to some worker's queue; [`Ownership`] says which worker owns
/// its connection. A packet owned elsewhere (an ICMP error about another worker's flow,
/// the fragments of a datagram whose ports hash to another worker, any stray packet of
/// a port whose steering is not known) is pushed into the ring to its owner (a
/// fragment train all or nothing; full ring: dropped, `DropReason::HandoffFull`). The
/// owner drains its incoming rings every loop iteration, runs the packets through its
/// pipeline (with the recorded pair and side) and sends them on its own queue.
///
/// Buffers: a handed-off buffer belongs to the sender's pool. Pools never grow past
/// their preallocated count (`MbufPool::put` frees a buffer beyond it), so for every
/// handed-off packet it processed the receiver sends one buffer of its own pool back
/// through the return ring to the sender, which puts it in its pool: both pools keep
/// their size. (When the receiver's pool is empty or the return ring is full, nothing
/// is returned; the sender's pool is then one short until a later handoff.)
#[derive(Debug, Default)]
pub struct HandoffLinks {
    /// `to[w]`: packets from this worker to worker `w` (None for itself).
    pub to: Vec<Option<Arc<ArrayQueue<Handoff>>>>,
    /// `from[w]`: packets from worker `w` to this worker.
    pub from: Vec<Option<Arc<ArrayQueue<Handoff>>>>,
    /// `ret_to[w]`: buffers this worker gives back to worker `w`.
    pub ret_to: Vec<Option<Arc<ArrayQueue<Mbuf>>>>,
    /// `ret_from[w]`: buffers worker `w` gives back to this worker.
    pub ret_from: Vec<Option<Arc<ArrayQueue<Mbuf>>>>,
}

impl HandoffLinks {
    /// The full mesh for `n` workers, rings of `depth` entries.
    pub fn mesh(n: usize, depth: usize) -> Vec<HandoffLinks> {
        let ring = || Arc::new(ArrayQueue::<Handoff>::new(depth.max(1)));
        let bring = || Arc::new(ArrayQueue::<Mbuf>::new(depth.max(1)));
        // pk[f][t]: packets f -> t; rb[f][t]: buffers returned f -> t.
        let pk: Vec<Vec<_>> = (0..n)
            .map(|f| (0..n).map(|t| (f != t).then(ring)).collect())
            .collect();
        let rb: Vec<Vec<_>> = (0..n)
            .map(|f| (0..n).map(|t| (f != t).then(bring)).collect())
            .collect();
        (0..n)
            .map(|w| HandoffLinks {
                to: pk[w].clone(),
                from: (0..n).map(|f| pk[f][w].clone()).collect(),
                ret_to: rb[w].clone(),
                ret_from: (0..n).map(|f| rb[f][w].clone()).collect(),
            })
            .collect()
    }

    /// Pushes the fragments `held` (possibly none) and then `m` into the ring to worker
    /// `to`, all or none: a train that does not fit is dropped whole
    /// (`DropReason::HandoffFull`), since a part would only time out at the owner.
    /// `counted`: the pipeline already counted these packets in `packets`/`bytes` (a
    /// fragment train); they leave those counters, since their owner counts them.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        to: u16,
        held: &mut Vec<Mbuf>,
        m: Mbuf,
        counted: bool,
        pair: u16,
        ingress: Side,
        pool: &mut MbufPool,
        stats: &mut LocalStats,
    ) {
        let k = held.len() as u64 + 1;
        let ring = self.to.get(to as usize).and_then(Option::as_ref);
        // Single producer: the free room seen here can only grow until we push.
        let fits = ring.is_some_and(|r| r.capacity() - r.len() >= k as usize);
        for m in held.drain(..).chain(std::iter::once(m)) {
            if counted {
                stats.packets = stats.packets.saturating_sub(1);
                stats.bytes = stats.bytes.saturating_sub(m.len() as u64);
            }
            let item = Handoff { m, pair, ingress };
            let pushed = match ring {
                Some(r) if fits => r.push(item),
                _ => Err(item),
            };
            match pushed {
                Ok(()) => stats.handed_off += 1,
                Err(item) => {
                    stats.drop(DropReason::HandoffFull);
                    pool.put(item.m);
                }
            }
        }
    }
}

/// Where one packet goes once the pipeline has decided: forwarded (with the fragments
/// it completes), held for reassembly, dropped (its buffer reused for a REJECT reply),
/// or handed to the worker owning its connection.
#[allow(clippy::too_many_arguments)]
fn dispose(
    o: &Outcome,
    m: Mbuf,
    reply: &[u8],
    held: &mut [Vec<Mbuf>],
    fwd: &mut Vec<Mbuf>,
    back: &mut Vec<Mbuf>,
    pool: &mut MbufPool,
    stats: &mut LocalStats,
    links: Option<&HandoffLinks>,
    pair: u16,
    ingress: Side,
) {
    if let Some(slot) = o.discard {
        pool.put_all(&mut held[slot]);
    }
    match o.action {
        Action::Held(slot) => held[slot].push(m),
        Action::Forward => {
            if let Some(slot) = o.completes {
                fwd.append(&mut held[slot]);
            }
            fwd.push(m);
        }
        Action::HandOff(to) => {
            // A completed train went through the pipeline (and its counters); a packet
            // the poll loop found owned elsewhere did not.
            let mut none = Vec::new();
            let (train, counted) = match o.completes {
                Some(slot) => (&mut held[slot], true),
                None => (&mut none, false),
            };
            match links {
                Some(l) => l.send(to, train, m, counted, pair, ingress, pool, stats),
                None => {
                    // No rings (cannot happen: ownership is only set with them).
                    pool.put_all(train);
                    pool.put(m);
                }
            }
        }
        Action::Drop(_) => {
            if let Some(slot) = o.completes {
                pool.put_all(&mut held[slot]);
            }
            if o.reply_len > 0 {
                // Reuse the offending packet's buffer for the reply.
                let mut m = m;
                m.data_mut_full()[..o.reply_len].copy_from_slice(&reply[..o.reply_len]);
                m.set_len(o.reply_len);
                back.push(m);
            } else {
                pool.put(m);
            }
        }
    }
}

/// Conntrack buckets swept per loop iteration when the iteration carried packets: the
/// sweep touches random entries (a cache miss each), so under load it stays tiny and
/// lazy expiry on lookup does the rest; when idle the worker sweeps faster.
pub const SWEEP_BUDGET_BUSY: usize = 2;
/// Buckets swept per idle iteration.
pub const SWEEP_BUDGET_IDLE: usize = 64;
/// Datagrams each worker can reassemble at once.
pub const DEFRAG_SLOTS: usize = 64;

impl Worker {
    /// The handle the control plane keeps.
    pub fn handle(&self) -> WorkerHandle {
        WorkerHandle {
            stats: self.stats.clone(),
            commands: self.commands.clone(),
            core: self.core,
        }
    }

    /// Processes the packets other workers handed to this one (packets of connections
    /// of this shard) and gives buffers back (see [`HandoffLinks`]).
    #[allow(clippy::too_many_arguments)]
    fn drain_handoffs(
        &mut self,
        rs: &Ruleset,
        now: Nanos,
        held: &mut [Vec<Mbuf>],
        fwd: &mut Vec<Mbuf>,
        back: &mut Vec<Mbuf>,
        reply: &mut [u8],
        limiter: &mut LogLimiter,
    ) {
        let Some(h) = self.handoff.take() else {
            return;
        };
        // What was handed here is owned here: no second hand-off (a datagram another
        // worker found owned here is reassembled and judged here).
        let ownership = self.pipeline.ownership.take();
        for f in 0..h.from.len() {
            if let Some(r) = &h.ret_from[f] {
                while let Some(m) = r.pop() {
                    self.pool.put(m);
                }
            }
            let Some(ring) = &h.from[f] else {
                continue;
            };
            for _ in 0..self.burst {
                let Some(item) = ring.pop() else {
                    break;
                };
                let pi = item.pair as usize;
                if pi < self.pairs.len() {
                    let names = &self.pair_names[pi];
                    let view = PairView {
                        mode: self.pairs[pi].mode,
                        network: &names.0,
                        host: &names.1,
                    };
                    let log_q = &self.log_events;
                    let log_lost = &self.log_lost;
                    let mut log = |e: ruleset::LogEvent<'_>| {
                        let Some(q) = log_q else { return };
                        if !limiter.allow(now) || q.push(LogRecord::from_event(&e)).is_err() {
                            log_lost.fetch_add(1, Ordering::Relaxed);
                        }
                    };
                    let parsed = packet::parse(item.m.data());
                    let rx = RxMeta {
                        hash: 0,
                        l4_csum_ok: item.m.l4_csum_ok,
                    };
                    let o = self.pipeline.process_parsed(
                        rs,
                        item.m.data(),
                        &parsed,
                        rx,
                        view,
                        item.ingress,
                        now,
                        reply,
                        &mut log,
                    );
                    dispose(
                        &o,
                        item.m,
                        reply,
                        held,
                        fwd,
                        back,
                        &mut self.pool,
                        &mut self.pipeline.stats,
                        None,
                        item.pair,
                        item.ingress,
                    );
                    let pair = &mut self.pairs[pi];
                    let q = pair.queue;
                    let (rx_port, tx_port) = match item.ingress {
                        Side::Network => (&mut pair.network, &mut pair.host),
                        Side::Host => (&mut pair.host, &mut pair.network),
                    };
                    for (port, list) in [(tx_port, &mut *fwd), (rx_port, &mut *back)] {
                        if !list.is_empty() {
                            port.tx_burst(q, list, &mut self.pool);
                            for m in list.drain(..) {
                                self.pipeline.stats.drop(DropReason::TxFull);
                                self.pool.put(m);
                            }
                        }
                    }
                } else {
                    self.pool.put(item.m);
                }
                // One buffer back to the sender for the one it lent.
                if let Some(r) = &h.ret_to[f] {
                    if let Some(b) = self.pool.get() {
                        if let Err(b) = r.push(b) {
                            self.pool.put(b);
                        }
                    }
                }
            }
        }
        self.pipeline.ownership = ownership;
        self.handoff = Some(h);
    }

    /// Runs the poll loop until `stop` is set. Pins the thread first.
    pub fn run(mut self) {
        if let Some(c) = self.core {
            core_affinity::set_for_current(core_affinity::CoreId { id: c });
        }
        let burst = self.burst;
        let mut rx: Vec<Mbuf> = Vec::with_capacity(burst);
        // Room for a burst plus a completed datagram's held fragments.
        let mut fwd: Vec<Mbuf> = Vec::with_capacity(burst + MAX_FRAGMENTS);
        let mut held: Vec<Vec<Mbuf>> = (0..DEFRAG_SLOTS)
            .map(|_| Vec::with_capacity(MAX_FRAGMENTS))
            .collect();
        let mut back: Vec<Mbuf> = Vec::with_capacity(burst);
        // Per rx packet: the worker it is handed to (u16::MAX: this one).
        let mut dest: Vec<u16> = Vec::with_capacity(burst);
        // Each packet's parse from stage 1, reused by the pipeline in stage 2.
        let mut parsed: Vec<Result<Frame, ParseError>> = Vec::with_capacity(burst);
        let mut hashes: Vec<u64> = Vec::with_capacity(burst);
        let mut reply = [0u8; 2048];
        let mut current = self.ruleset.load_full();
        if self.handoff.is_none() {
            // No rings to hand anything to: this worker owns every connection it sees.
            self.pipeline.ownership = None;
        }
        // Per pair and side: the port's steering is not the ownership model, so the
        // owner of every packet it delivers must be checked.
        let model = self.pipeline.ownership.map(|o| o.model);
        let unknown: Vec<[bool; 2]> = self
            .pairs
            .iter()
            .map(|p| {
                let check = |port: &dyn Port| port.steering() != model || !port.steering_trusted();
                [check(&*p.network), check(&*p.host)]
            })
            .collect();
        let loop_start = cycles(&self.clock);
        let mut log_limiter = LogLimiter::new(LOG_RATE_PER_SEC, LOG_BURST);
        let mut local_busy = 0u64;
        let mut polls = 0u64;
        let mut busy_polls = 0u64;
        let mut hist = [0u64; 10];
        while !self.stop.load(Ordering::Relaxed) {
            let busy_before = busy_polls;
            // One ruleset load per iteration (per burst of every pair). Adopt it before
            // running control commands, so that a command issued after a reload sees the
            // per-rule counters of the new generation.
            let rs = self.ruleset.load_full();
            if !Arc::ptr_eq(&rs, &current) {
                self.pipeline.adopt(Some(&current), &rs);
                current = rs.clone();
            }
            while let Some(cmd) = self.commands.pop() {
                let now = self.clock.now();
                cmd(&mut self.pipeline, now);
            }
            if self.handoff.is_some() {
                let now = self.clock.now();
                self.drain_handoffs(
                    &rs,
                    now,
                    &mut held,
                    &mut fwd,
                    &mut back,
                    &mut reply,
                    &mut log_limiter,
                );
            }
            for pi in 0..self.pairs.len() {
                for ingress in [Side::Network, Side::Host] {
                    let t0 = cycles(&self.clock);
                    let pair = &mut self.pairs[pi];
                    let q = pair.queue;
                    let mode = pair.mode;
                    let (rx_port, tx_port) = match ingress {
                        Side::Network => (&mut pair.network, &mut pair.host),
                        Side::Host => (&mut pair.host, &mut pair.network),
                    };
                    polls += 1;
                    let n = rx_port.rx_burst(q, &mut self.pool, &mut rx, burst);
                    if n == 0 {
                        continue;
                    }
                    busy_polls += 1;
                    hist[burst_bucket(n)] += 1;
                    let now = self.clock.now();
                    // Stage 1: parse every packet, hash it and prefetch its bucket (and
                    // find the ICMP errors another worker owns).
                    dest.clear();
                    parsed.clear();
                    hashes.clear();
                    let own = self.pipeline.ownership;
                    let check_all = unknown.get(pi).is_some_and(|u| u[ingress as usize]);
                    for m in rx.iter() {
                        let mut d = u16::MAX;
                        let mut h = 0;
                        let r = packet::parse(m.data());
                        if let Ok(Frame::Ip(p)) = &r {
                            h = self.pipeline.table.prefetch(p);
                            // Fragments are checked once reassembled (in the pipeline).
                            if let Some(ow) = own.filter(|_| !p.frag.is_fragment()) {
                                let error = matches!(p.l4, packet::L4::Icmp(i) if i.is_error());
                                if check_all || error {
                                    d = ow.elsewhere(m.data(), p).unwrap_or(u16::MAX);
                                }
                            }
                        }
                        dest.push(d);
                        parsed.push(r);
                        hashes.push(h);
                    }
                    // Stage 2: the buckets are arriving; prefetch the candidate entries.
                    for &h in hashes.iter() {
                        self.pipeline.table.prefetch_entries(h);
                    }
                    let names = &self.pair_names[pi];
                    let view = PairView {
                        mode,
                        network: &names.0,
                        host: &names.1,
                    };
                    let log_q = &self.log_events;
                    let log_lost = &self.log_lost;
                    let limiter = &mut log_limiter;
                    let mut log = |e: ruleset::LogEvent<'_>| {
                        let Some(q) = log_q else { return };
                        // Rate-limited hand-off: the verdict never waits for logging.
                        if !limiter.allow(now) || q.push(LogRecord::from_event(&e)).is_err() {
                            log_lost.fetch_add(1, Ordering::Relaxed);
                        }
                    };
                    for (i, m) in rx.drain(..).enumerate() {
                        let o = if dest[i] != u16::MAX {
                            // Owned by another worker: counted there, not here.
                            Outcome::handed_off(dest[i])
                        } else {
                            self.pipeline.process_parsed(
                                &rs,
                                m.data(),
                                &parsed[i],
                                RxMeta {
                                    hash: hashes[i],
                                    l4_csum_ok: m.l4_csum_ok,
                                },
                                view,
                                ingress,
                                now,
                                &mut reply,
                                &mut log,
                            )
                        };
                        dispose(
                            &o,
                            m,
                            &reply,
                            &mut held,
                            &mut fwd,
                            &mut back,
                            &mut self.pool,
                            &mut self.pipeline.stats,
                            self.handoff.as_ref(),
                            pi as u16,
                            ingress,
                        );
                    }
                    if !fwd.is_empty() {
                        tx_port.tx_burst(q, &mut fwd, &mut self.pool);
                        for m in fwd.drain(..) {
                            self.pipeline.stats.drop(DropReason::TxFull);
                            self.pool.put(m);
                        }
                    }
                    if !back.is_empty() {
                        rx_port.tx_burst(q, &mut back, &mut self.pool);
                        for m in back.drain(..) {
                            self.pipeline.stats.drop(DropReason::TxFull);
                            self.pool.put(m);
                        }
                    }
                    local_busy += cycles(&self.clock).wrapping_sub(t0);
                }
            }
            let now = self.clock.now();
            let budget = if busy_polls != busy_before {
                SWEEP_BUDGET_BUSY
            } else {
                SWEEP_BUDGET_IDLE
            };
            self.pipeline.table.expire(now, budget);
            // Expectation timers (a sweep at most once a second, by any worker).
            self.pipeline.table.expectations().maybe_expire(now);
            let pool = &mut self.pool;
            self.pipeline
                .defrag
                .expire(now, |slot| pool.put_all(&mut held[slot]));
            // Publish once per iteration.
            let s = &self.stats;
            s.publish(&self.pipeline.stats);
            s.busy_cycles.store(local_busy, Ordering::Relaxed);
            s.total_cycles.store(
                cycles(&self.clock).wrapping_sub(loop_start),
                Ordering::Relaxed,
            );
            s.polls.store(polls, Ordering::Relaxed);
            s.busy_polls.store(busy_polls, Ordering::Relaxed);
            for (i, h) in hist.iter().enumerate() {
                s.burst_hist[i].store(*h, Ordering::Relaxed);
            }
            s.ct_entries
                .store(self.pipeline.table.len() as u64, Ordering::Relaxed);
            let cs = self.pipeline.table.stats();
            for (i, v) in [
                cs.found,
                cs.invalid,
                cs.ignore,
                cs.insert,
                cs.insert_failed,
                cs.drop,
                cs.early_drop,
                cs.search_restart,
            ]
            .into_iter()
            .enumerate()
            {
                s.ct_stats[i].store(v, Ordering::Relaxed);
            }
            for (i, v) in [
                cs.expired_tcp,
                cs.expired_udp,
                cs.expired_icmp,
                cs.expired_icmpv6,
                cs.expired_generic,
            ]
            .into_iter()
            .enumerate()
            {
                s.expired[i].store(v, Ordering::Relaxed);
            }
        }
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

/// LOG records a worker hands off per second (beyond: counted as lost).
pub const LOG_RATE_PER_SEC: u64 = 200;
/// LOG burst.
pub const LOG_BURST: u64 = 400;

/// A token bucket for LOG records (time passed in; no clock reads).
#[derive(Debug, Clone)]
pub struct LogLimiter {
    tokens: u64,
    last: Nanos,
    rate: u64,
    burst: u64,
}

impl LogLimiter {
    /// `rate` records per second, at most `burst` at once.
    pub fn new(rate: u64, burst: u64) -> Self {
        LogLimiter {
            tokens: burst,
            last: 0,
            rate,
            burst,
        }
    }

    /// Takes a token if one is available at `now`.
    pub fn allow(&mut self, now: Nanos) -> bool {
        let elapsed = now.saturating_sub(self.last);
        let add = elapsed.saturating_mul(self.rate) / 1_000_000_000;
        if add > 0 {
            self.tokens = (self.tokens + add).min(self.burst);
            self.last = now;
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// An owned, fixed-size copy of a LOG event, formatted off the hot path like the
/// kernel's LOG target (`PREFIX IN=.. OUT=.. SRC=.. DST=.. LEN=.. PROTO=.. SPT=.. DPT=..`).
#[derive(Debug, Clone, Copy)]
pub struct LogRecord {
    /// Rule id.
    pub rule_id: usize,
    /// Syslog level.
    pub level: u8,
    prefix: [u8; 32],
    prefix_len: u8,
    in_port: [u8; 16],
    in_len: u8,
    out_port: [u8; 16],
    out_len: u8,
    /// The packet summary.
    pub parsed: packet::Parsed,
}

fn copy_str<const N: usize>(s: &str) -> ([u8; N], u8) {
    let mut a = [0u8; N];
    let n = s.len().min(N);
    a[..n].copy_from_slice(&s.as_bytes()[..n]);
    (a, n as u8)
}

impl LogRecord {
    /// Copies what is needed out of a borrowed event (no allocation).
    pub fn from_event(e: &ruleset::LogEvent<'_>) -> Self {
        let (prefix, prefix_len) = copy_str::<32>(e.prefix);
        let (in_port, in_len) = copy_str::<16>(e.in_port);
        let (out_port, out_len) = copy_str::<16>(e.out_port);
        LogRecord {
            rule_id: e.rule_id,
            level: e.level,
            prefix,
            prefix_len,
            in_port,
            in_len,
            out_port,
            out_len,
            parsed: *e.parsed,
        }
    }
}

impl std::fmt::Display for LogRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let p = &self.parsed;
        write!(
            f,
            "{}IN={} OUT={} SRC={} DST={} LEN={} TTL={} PROTO=",
            s(&self.prefix[..self.prefix_len as usize]),
            s(&self.in_port[..self.in_len as usize]),
            s(&self.out_port[..self.out_len as usize]),
            packet::to_ip(p.family, &p.src),
            packet::to_ip(p.family, &p.dst),
            p.ip_len(),
            p.ttl
        )?;
        match p.l4 {
            packet::L4::Tcp(t) => {
                write!(f, "TCP SPT={} DPT={} WINDOW={}", t.sport, t.dport, t.window)?;
                for (bit, name) in [
                    (0x20, "URG"),
                    (0x10, "ACK"),
                    (0x08, "PSH"),
                    (0x04, "RST"),
                    (0x02, "SYN"),
                    (0x01, "FIN"),
                ] {
                    if t.flags & bit != 0 {
                        write!(f, " {name}")?;
                    }
                }
                Ok(())
            }
            packet::L4::Udp(u) => write!(f, "UDP SPT={} DPT={} LEN={}", u.sport, u.dport, u.len),
            packet::L4::Icmp(i) => write!(
                f,
                "{} TYPE={} CODE={} ID={}",
                if i.v6 { "ICMPv6" } else { "ICMP" },
                i.ty,
                i.code,
                i.id
            ),
            _ => write!(f, "{}", p.proto),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::Config;
    use crate::packet::build::PacketSpec;
    use crate::port::{PortCounters, PortStats};
    use crate::steer::owner_hash;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    type Queues = Arc<Mutex<Vec<VecDeque<Vec<u8>>>>>;

    /// An in-memory port handle serving one queue: frames pushed into `rx[q]` are
    /// received; transmitted frames are appended to `tx[q]`.
    struct MemPort {
        rx: Queues,
        tx: Queues,
        counters: Arc<PortCounters>,
        steering: Option<Steering>,
    }

    impl Port for MemPort {
        fn name(&self) -> &str {
            "mem"
        }
        fn rx_burst(
            &mut self,
            q: u16,
            pool: &mut MbufPool,
            out: &mut Vec<Mbuf>,
            max: usize,
        ) -> usize {
            let mut rx = self.rx.lock().unwrap();
            let mut n = 0;
            while n < max {
                let Some(f) = rx[q as usize].front() else {
                    break;
                };
                let Some(mut m) = pool.get() else { break };
                m.copy_from(f);
                rx[q as usize].pop_front();
                out.push(m);
                n += 1;
            }
            n
        }
        fn tx_burst(&mut self, q: u16, pkts: &mut Vec<Mbuf>, pool: &mut MbufPool) -> usize {
            let mut tx = self.tx.lock().unwrap();
            let n = pkts.len();
            for m in pkts.drain(..) {
                tx[q as usize].push_back(m.data().to_vec());
                pool.put(m);
            }
            n
        }
        fn stats(&self) -> PortStats {
            PortStats::default()
        }
        fn queues(&self) -> u16 {
            2
        }
        fn counters(&self) -> Arc<PortCounters> {
            self.counters.clone()
        }
        fn steering(&self) -> Option<Steering> {
            self.steering
        }
    }

    fn queues() -> Queues {
        Arc::new(Mutex::new(vec![VecDeque::new(), VecDeque::new()]))
    }

    fn v4(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }

    fn hash_of(f: &[u8]) -> u32 {
        match packet::parse(f).unwrap() {
            Frame::Ip(p) => owner_hash(f, &p),
            _ => unreachable!(),
        }
    }

    /// Two running workers in forward mode over in-memory ports whose steering is
    /// `steering` (None: unknown), ownership by the pktgen model; stopped on drop.
    struct TwoWorkers {
        net_rx: Queues,
        net_tx: Queues,
        host_rx: Queues,
        host_tx: Queues,
        stats: Vec<Arc<CachePadded<PublishedStats>>>,
        stop: Arc<AtomicBool>,
        threads: Vec<std::thread::JoinHandle<()>>,
    }

    impl TwoWorkers {
        fn start(steering: Option<Steering>) -> Self {
            let (net_rx, net_tx, host_rx, host_tx) = (queues(), queues(), queues(), queues());
            let rs = Arc::new(ArcSwap::from_pointee(Ruleset::accept_all()));
            let stop = Arc::new(AtomicBool::new(false));
            let clock = Clock::new();
            let mut stats = Vec::new();
            let mut threads = Vec::new();
            let expect = Arc::new(crate::conntrack::ExpectTable::new());
            for (w, link) in HandoffLinks::mesh(2, 64).into_iter().enumerate() {
                let table =
                    ConnTable::with_expectations(256, Config::default(), expect.clone(), w as u16);
                let mut pipeline = Pipeline::new(table, &rs.load(), NonIpPolicy::PassArp);
                pipeline.ownership = Some(Ownership {
                    me: w as u16,
                    workers: 2,
                    model: Steering::Symmetric,
                });
                let mk = |rx: &Queues, tx: &Queues| -> Box<dyn Port> {
                    Box::new(MemPort {
                        rx: rx.clone(),
                        tx: tx.clone(),
                        counters: PortCounters::new("mem", 2),
                        steering,
                    })
                };
                let worker = Worker {
                    id: w,
                    core: None,
                    pipeline,
                    pool: MbufPool::new(64),
                    pairs: vec![PairPorts {
                        mode: PairMode::Forward,
                        network: mk(&net_rx, &net_tx),
                        host: mk(&host_rx, &host_tx),
                        queue: w as u16,
                    }],
                    pair_names: vec![("net".into(), "host".into())],
                    burst: 32,
                    ruleset: rs.clone(),
                    stats: Arc::new(CachePadded::new(PublishedStats::default())),
                    commands: Arc::new(crossbeam_queue::ArrayQueue::new(8)),
                    stop: stop.clone(),
                    clock,
                    log_events: None,
                    log_lost: Arc::new(AtomicU64::new(0)),
                    handoff: Some(link),
                };
                stats.push(worker.stats.clone());
                threads.push(std::thread::spawn(move || worker.run()));
            }
            TwoWorkers {
                net_rx,
                net_tx,
                host_rx,
                host_tx,
                stats,
                stop,
                threads,
            }
        }

        /// Packets of worker `w` in conntrack state `s`.
        fn st(&self, w: usize, s: CtState) -> u64 {
            self.stats[w].by_state[state_index(s)].load(Ordering::Relaxed)
        }

        fn handed_off(&self, w: usize) -> u64 {
            self.stats[w].handed_off.load(Ordering::Relaxed)
        }

        fn packets(&self, w: usize) -> u64 {
            self.stats[w].packets.load(Ordering::Relaxed)
        }

        fn wait(&self, what: &str, f: &dyn Fn() -> bool) {
            let t0 = std::time::Instant::now();
            while !f() {
                assert!(t0.elapsed().as_secs() < 20, "timed out waiting for {what}");
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }

    impl Drop for TwoWorkers {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }

    /// The worker owning a whole packet's connection, by the pktgen model.
    fn owner2(f: &[u8]) -> usize {
        crate::steer::queue_of(hash_of(f), 2) as usize
    }

    /// Two workers, forward mode, in-memory ports. A UDP flow goes through its owner A;
    /// an ICMP port-unreachable about it arrives on B's queue and is handed to A, where
    /// it is RELATED; an ICMP error about an unknown flow is INVALID.
    #[test]
    fn worker_icmp_error_handed_to_owner() {
        let t = TwoWorkers::start(Some(Steering::Symmetric));
        // The client behind host, the server behind net.
        let c = "10.0.0.1:40000".parse().unwrap();
        let s = "10.0.0.2:53".parse().unwrap();
        let q = PacketSpec::udp(c, s).payload(b"query").to_vec();
        let r = PacketSpec::udp(s, c).payload(b"answer").to_vec();
        let a = owner2(&q);
        let b = 1 - a;
        t.host_rx.lock().unwrap()[a].push_back(q.clone());
        t.wait("NEW", &|| t.st(a, CtState::New) == 1);
        t.net_rx.lock().unwrap()[a].push_back(r);
        t.wait("ESTABLISHED", &|| t.st(a, CtState::Established) == 1);
        // Port unreachable from the server about the client's datagram, steered (by its
        // outer tuple) to B's queue.
        let err = PacketSpec::icmp(v4("10.0.0.2"), v4("10.0.0.1"), 3, 3, [0; 4])
            .payload(&q[14..])
            .to_vec();
        assert_eq!(owner2(&err), a, "owner = the quoted flow");
        t.net_rx.lock().unwrap()[b].push_back(err);
        t.wait("RELATED", &|| t.st(a, CtState::Related) == 1);
        assert_eq!(t.st(b, CtState::Related), 0);
        assert_eq!((t.handed_off(b), t.packets(b)), (1, 0));
        // It went out of the host port on A's queue.
        t.wait("forwarding", &|| t.host_tx.lock().unwrap()[a].len() == 2);
        // An error about a flow never seen: INVALID wherever it is owned.
        let q2 = PacketSpec::udp("10.0.0.7:1".parse().unwrap(), s).to_vec();
        let err2 = PacketSpec::icmp(v4("10.0.0.2"), v4("10.0.0.7"), 3, 3, [0; 4])
            .payload(&q2[14..])
            .to_vec();
        let o2 = owner2(&err2);
        t.net_rx.lock().unwrap()[1 - o2].push_back(err2);
        t.wait("INVALID", &|| {
            t.st(0, CtState::Invalid) + t.st(1, CtState::Invalid) == 1
        });
        assert_eq!(t.st(o2, CtState::Invalid), 1);
    }

    /// Fragments are steered by addresses only, so a datagram can be reassembled on a
    /// worker that does not own its connection: that worker hands the whole train to
    /// the owner, which reassembles it again, judges it once on its shard and forwards
    /// the fragments from its own queue.
    #[test]
    fn worker_fragment_train_handed_to_owner() {
        let t = TwoWorkers::start(Some(Steering::Symmetric));
        let s = "10.0.0.2:53".parse().unwrap();
        // A client port whose flow is owned by worker 1; its fragments land on worker 0.
        let (c, q) = (1024..2048u16)
            .map(|p| {
                let c: std::net::SocketAddr = std::net::SocketAddr::new(v4("10.0.0.1"), p);
                (c, PacketSpec::udp(c, s).payload(&[7u8; 3000]).to_vec())
            })
            .find(|(_, q)| owner2(q) == 1)
            .unwrap();
        let frags = super::pipeline_tests::fragments(&q, 1480);
        assert_eq!(frags.len(), 3);
        for f in &frags {
            t.host_rx.lock().unwrap()[0].push_back(f.clone());
        }
        t.wait("the datagram judged by its owner", &|| {
            t.st(1, CtState::New) == 1
        });
        assert_eq!(t.st(0, CtState::New), 0, "never judged on the wrong shard");
        assert_eq!(t.handed_off(0), 3);
        assert_eq!((t.packets(0), t.packets(1)), (0, 3));
        // The fragments leave, in order, from the owner's queue.
        t.wait("forwarding", &|| t.net_tx.lock().unwrap()[1].len() == 3);
        assert_eq!(Vec::from(t.net_tx.lock().unwrap()[1].clone()), frags);
        assert!(t.net_tx.lock().unwrap()[0].is_empty());
        // The unfragmented answer, steered by its ports to the owner: ESTABLISHED there.
        let r = PacketSpec::udp(s, c).payload(b"ok").to_vec();
        t.net_rx.lock().unwrap()[1].push_back(r);
        t.wait("ESTABLISHED", &|| t.st(1, CtState::Established) == 1);
        assert_eq!(t.st(0, CtState::Invalid) + t.st(1, CtState::Invalid), 0);
    }

    /// A port whose steering is unknown (NIC or veth RSS) can deliver any packet to any
    /// worker: each worker checks every packet against the model and hands strays to
    /// their owner, so every connection still lives on one shard.
    #[test]
    fn worker_unknown_steering_checks_every_packet() {
        let t = TwoWorkers::start(None);
        let s = "10.0.0.2:80".parse().unwrap();
        for (done, p) in (3000..3016u16).enumerate() {
            let conns = done as u64 + 1;
            let c = std::net::SocketAddr::new(v4("10.0.0.1"), p);
            let q = PacketSpec::udp(c, s).payload(b"q").to_vec();
            let r = PacketSpec::udp(s, c).payload(b"r").to_vec();
            // Worst case: the request on one queue, the answer on the other.
            let first = (p % 2) as usize;
            t.host_rx.lock().unwrap()[first].push_back(q);
            t.wait("NEW", &|| {
                t.st(0, CtState::New) + t.st(1, CtState::New) == conns
            });
            t.net_rx.lock().unwrap()[1 - first].push_back(r);
            t.wait("ESTABLISHED", &|| {
                t.st(0, CtState::Established) + t.st(1, CtState::Established) == conns
            });
        }
        // Half of the packets arrived at the worker that does not own them.
        assert_eq!(t.handed_off(0) + t.handed_off(1), 16);
        assert_eq!(t.packets(0) + t.packets(1), 32);
        assert!(t.st(0, CtState::New) > 0 && t.st(1, CtState::New) > 0);
    }

    /// A checksum the device verified is not checked again (Linux skips `nf_checksum`
    /// for `CHECKSUM_UNNECESSARY`); without that word from the device, a corrupted
    /// checksum is INVALID.
    #[test]
    fn device_verified_checksum_is_trusted() {
        let rs = Ruleset::accept_all();
        let view = PairView {
            mode: PairMode::Forward,
            network: "net",
            host: "host",
        };
        let mut reply = [0u8; 2048];
        let mut syn = PacketSpec::tcp(
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
            crate::packet::tcp_flags::SYN,
            1,
            0,
        )
        .to_vec();
        syn[14 + 20 + 16] ^= 0xff; // the TCP checksum
        let parsed = packet::parse(&syn);
        for (verified, state) in [(false, CtState::Invalid), (true, CtState::New)] {
            let mut pl = Pipeline::new(
                ConnTable::new(64, Config::default()),
                &rs,
                NonIpPolicy::Pass,
            );
            let rx = RxMeta {
                hash: 0,
                l4_csum_ok: verified,
            };
            let o = pl.process_parsed(
                &rs,
                &syn,
                &parsed,
                rx,
                view,
                Side::Host,
                1,
                &mut reply,
                &mut |_| {},
            );
            assert_eq!(
                o.track.unwrap().state,
                state,
                "verified by the device: {verified}"
            );
        }
    }

    #[test]
    fn worker_helper_drop_counted() {
        // A partial FTP command on a helper-attached control connection is dropped by
        // the pipeline with DropReason::Helper; the connection stays ESTABLISHED.
        use crate::packet::tcp_flags::{ACK, PSH, SYN};
        let rs = Ruleset::accept_all();
        let mut pl = Pipeline::new(
            ConnTable::new(64, Config::default()),
            &rs,
            NonIpPolicy::Pass,
        );
        pl.ftp_ports = vec![21];
        let c = "10.0.0.1:40021".parse().unwrap();
        let s = "10.0.0.2:21".parse().unwrap();
        let view = PairView {
            mode: PairMode::Forward,
            network: "net",
            host: "host",
        };
        let mut reply = [0u8; 2048];
        let mut run = |pl: &mut Pipeline, f: Vec<u8>| {
            pl.process(&rs, &f, view, Side::Host, 1, &mut reply, &mut |_| {})
        };
        let seg = |src, dst, fl, seq, ack, d: &[u8]| {
            PacketSpec::tcp(src, dst, fl, seq, ack).payload(d).to_vec()
        };
        run(&mut pl, seg(c, s, SYN, 1000, 0, b""));
        run(&mut pl, seg(s, c, SYN | ACK, 5000, 1001, b""));
        run(&mut pl, seg(c, s, ACK, 1001, 5001, b""));
        run(&mut pl, seg(c, s, PSH | ACK, 1001, 5001, b"USER a\r\n"));
        let o = run(&mut pl, seg(c, s, PSH | ACK, 1009, 5001, b"PORT x\r\n"));
        assert_eq!(o.action, Action::Drop(DropReason::Helper));
        assert_eq!(o.track.unwrap().state, CtState::Established);
        let hi = DropReason::ALL
            .iter()
            .position(|r| *r == DropReason::Helper)
            .unwrap();
        assert_eq!(pl.stats.drops[hi], 1);
        let o = run(
            &mut pl,
            seg(c, s, PSH | ACK, 1009, 5001, b"PORT 10,0,0,1,156,64\r\n"),
        );
        assert_eq!(o.action, Action::Forward);
        assert_eq!(pl.table.expectations().len(), 1);
    }
}

#[cfg(test)]
mod pipeline_tests {
    use super::*;
    use crate::conntrack::Config;
    use crate::packet::build::PacketSpec;

    fn pipeline(rules: &str) -> (Pipeline, Ruleset) {
        let rs = crate::ruleset::parse_ruleset(rules, "t.rules", None).unwrap();
        (
            Pipeline::new(
                ConnTable::new(1024, Config::default()),
                &rs,
                NonIpPolicy::PassArp,
            ),
            rs,
        )
    }

    const PAIR: PairView<'static> = PairView {
        mode: PairMode::Forward,
        network: "outside",
        host: "inside",
    };

    /// Splits an IPv4 frame into fragments of `size` payload bytes (multiple of 8).
    pub(super) fn fragments(frame: &[u8], size: usize) -> Vec<Vec<u8>> {
        let payload = &frame[34..];
        let mut out = Vec::new();
        let mut off = 0;
        while off < payload.len() {
            let n = size.min(payload.len() - off);
            let more = off + n < payload.len();
            let mut f = frame[..34].to_vec();
            f.extend_from_slice(&payload[off..off + n]);
            f[16..18].copy_from_slice(&((20 + n) as u16).to_be_bytes());
            let fo = (off / 8) as u16 | if more { 0x2000 } else { 0 };
            f[20..22].copy_from_slice(&fo.to_be_bytes());
            f[24] = 0;
            f[25] = 0;
            let c = crate::packet::checksum::fold(crate::packet::checksum::sum(&f[14..34], 0));
            f[24..26].copy_from_slice(&c.to_be_bytes());
            out.push(f);
            off += n;
        }
        out
    }

    /// A UDP datagram of an established flow arrives in three fragments, the last one
    /// first: the first two are held, the last completes it, and the whole datagram is
    /// judged once (ESTABLISHED) and forwarded with its held fragments.
    #[test]
    fn fragmented_datagram_of_an_established_flow_passes_whole() {
        let (mut pl, rs) = pipeline(
            "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m state --state ESTABLISHED -j ACCEPT\n-A FORWARD -i inside -m state --state NEW -j ACCEPT\nCOMMIT\n",
        );
        let mut reply = [0u8; 2048];
        let mut log = |_e: ruleset::LogEvent<'_>| {};
        let c = "10.0.0.1:5000".parse().unwrap();
        let s = "10.0.0.2:53".parse().unwrap();
        let q = PacketSpec::udp(c, s).payload(b"query").to_vec();
        let o = pl.process(&rs, &q, PAIR, Side::Host, 1, &mut reply, &mut log);
        assert_eq!(
            (o.action, o.track.unwrap().state),
            (Action::Forward, CtState::New)
        );
        let big: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let answer = PacketSpec::udp(s, c).payload(&big).to_vec();
        let mut frags = fragments(&answer, 1480);
        assert_eq!(frags.len(), 3);
        frags.rotate_right(1); // the last fragment arrives first
        let mut held = Vec::new();
        let mut done = None;
        for (i, f) in frags.iter().enumerate() {
            let o = pl.process(
                &rs,
                f,
                PAIR,
                Side::Network,
                2 + i as u64,
                &mut reply,
                &mut log,
            );
            match o.action {
                Action::Held(slot) => held.push((slot, i)),
                other => done = Some((i, other, o)),
            }
        }
        let (last, action, o) = done.expect("the datagram completed");
        assert_eq!(last, 2, "the third fragment to arrive completes it");
        assert_eq!(held.len(), 2);
        assert!(
            held.iter().all(|(slot, _)| Some(*slot) == o.completes),
            "held fragments are released with it"
        );
        assert_eq!(action, Action::Forward);
        let t = o.track.unwrap();
        assert_eq!((t.state, t.dir), (CtState::Established, Direction::Reply));
        assert_eq!(
            pl.stats.by_state[state_index(CtState::Established)],
            1,
            "judged once"
        );
        // An overlapping fragment train is discarded whole.
        let mut bad = fragments(&answer, 1480);
        bad[1][20..22].copy_from_slice(&(0x2000u16 | 100).to_be_bytes()); // offset 800: overlaps the first
        bad[1][24] = 0;
        bad[1][25] = 0;
        let ck = crate::packet::checksum::fold(crate::packet::checksum::sum(&bad[1][14..34], 0));
        bad[1][24..26].copy_from_slice(&ck.to_be_bytes());
        let o0 = pl.process(&rs, &bad[0], PAIR, Side::Network, 10, &mut reply, &mut log);
        assert!(matches!(o0.action, Action::Held(_)));
        let o1 = pl.process(&rs, &bad[1], PAIR, Side::Network, 11, &mut reply, &mut log);
        assert_eq!(o1.action, Action::Drop(DropReason::Fragment));
        assert!(
            o1.discard.is_some(),
            "the held first fragment is dropped too"
        );
    }
}
