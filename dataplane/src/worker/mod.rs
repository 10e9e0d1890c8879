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
//!
//! Rooms:
//! * `pipeline`: [`Pipeline`] and the verdict types ([`Outcome`], [`Action`], ...);
//! * `burst`: [`Burst`], what the packets of one burst share, and the transmit lists;
//! * `handoff`: the SPSC mesh to the worker owning a connection ([`HandoffLinks`]) and
//!   where each judged buffer goes;
//! * `stats`: [`DropReason`], [`LocalStats`], [`PublishedStats`];
//! * `log`: the LOG rate limiter and [`LogRecord`];
//! * `clock`: [`Clock`] and the cycle counter.
//!
//! This file holds the poll loop: [`Worker`], built with [`Worker::builder`].

mod burst;
mod clock;
mod handoff;
mod log;
mod mangle;
mod nat;
mod pipeline;
mod stats;
#[cfg(test)]
mod tests;
mod vcache;

pub use burst::{Burst, PairView};
pub use clock::{cycles, Clock};
pub use handoff::{Handoff, HandoffLinks, Origin, HANDOFF_RING};
pub use log::{LogLimiter, LogRecord, LOG_BURST, LOG_RATE_PER_SEC};
pub use mangle::apply_mangle;
pub use nat::{apply_nat, apply_nat_parsed, NatAddrs, NatApply, NatRef};
pub use pipeline::{Action, NonIpPolicy, Outcome, Ownership, PairMode, Pipeline, RxMeta, Side};
pub use stats::{burst_bucket, state_index, DropReason, LocalStats, PublishedStats, STATE_NAMES};

use crate::defrag::MAX_FRAGMENTS;
use crate::packet::{self, Frame, ParseError};
use crate::port::{Mbuf, MbufPool, Port};
use crate::ruleset::{self, Ruleset};
use crate::Nanos;
use arc_swap::ArcSwap;
use burst::TxLists;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

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

/// Depth of a worker's control command queue (commands are drained between bursts).
pub const COMMAND_QUEUE: usize = 64;

/// Conntrack buckets swept per loop iteration when the iteration carried packets: the
/// sweep touches random entries (a cache miss each), so under load it stays tiny and
/// lazy expiry on lookup does the rest; when idle the worker sweeps faster.
pub const SWEEP_BUDGET_BUSY: usize = 2;
/// Buckets swept per idle iteration.
pub const SWEEP_BUDGET_IDLE: usize = 64;
/// Datagrams each worker can reassemble at once.
pub const DEFRAG_SLOTS: usize = 64;
/// Packets per burst unless the builder is told otherwise.
pub const DEFAULT_BURST: usize = 32;

/// A poll-mode worker: owns its pipeline, buffer pool and its queue of every port.
/// Build one with [`Worker::builder`], keep its [`Worker::handle`], then move it to its
/// thread and call [`Worker::run`].
pub struct Worker {
    id: usize,
    core: Option<usize>,
    pipeline: Pipeline,
    pool: MbufPool,
    pairs: Vec<PairPorts>,
    /// Port names per pair (network, host).
    pair_names: Vec<(String, String)>,
    burst: usize,
    ruleset: Arc<ArcSwap<Ruleset>>,
    stats: Arc<CachePadded<PublishedStats>>,
    commands: Arc<ArrayQueue<Command>>,
    stop: Arc<AtomicBool>,
    clock: Clock,
    /// LOG records leave through this bounded queue (dropped and counted when full).
    log_events: Option<Arc<ArrayQueue<LogRecord>>>,
    log_lost: Arc<AtomicU64>,
    /// Rings to and from the other workers; None with one worker.
    handoff: Option<HandoffLinks>,
}

/// Builds a [`Worker`]: the dataplane chooses its queue depths, the caller what it owns.
pub struct WorkerBuilder {
    w: Worker,
}

impl WorkerBuilder {
    /// Pins the worker to core `core` (None: not pinned).
    pub fn core(mut self, core: Option<usize>) -> Self {
        self.w.core = core;
        self
    }

    /// The worker's buffer pool (default: 4096 buffers).
    pub fn pool(mut self, pool: MbufPool) -> Self {
        self.w.pool = pool;
        self
    }

    /// Adds a port pair to poll, with its ports' names (network, host).
    pub fn pair(mut self, ports: PairPorts, names: (String, String)) -> Self {
        self.w.pairs.push(ports);
        self.w.pair_names.push(names);
        self
    }

    /// Packets per burst (default [`DEFAULT_BURST`]).
    pub fn burst(mut self, burst: usize) -> Self {
        self.w.burst = burst.max(1);
        self
    }

    /// Sends LOG records into `events`, counting in `lost` those it cannot.
    pub fn log(mut self, events: Arc<ArrayQueue<LogRecord>>, lost: Arc<AtomicU64>) -> Self {
        self.w.log_events = Some(events);
        self.w.log_lost = lost;
        self
    }

    /// This worker's ends of the handoff mesh ([`HandoffLinks::mesh`]); without them
    /// the worker owns every connection it sees.
    pub fn handoff(mut self, links: Option<HandoffLinks>) -> Self {
        self.w.handoff = links;
        self
    }

    /// The worker, ready to [`Worker::run`].
    pub fn build(self) -> Worker {
        self.w
    }
}

impl Worker {
    /// Starts building worker `id` around `pipeline`, reading the published `ruleset`,
    /// the shared `clock`, and stopping when `stop` is set.
    pub fn builder(
        id: usize,
        pipeline: Pipeline,
        ruleset: Arc<ArcSwap<Ruleset>>,
        clock: Clock,
        stop: Arc<AtomicBool>,
    ) -> WorkerBuilder {
        WorkerBuilder {
            w: Worker {
                id,
                core: None,
                pipeline,
                pool: MbufPool::new(4096),
                pairs: Vec::new(),
                pair_names: Vec::new(),
                burst: DEFAULT_BURST,
                ruleset,
                stats: Arc::new(CachePadded::new(PublishedStats::default())),
                commands: Arc::new(ArrayQueue::new(COMMAND_QUEUE)),
                stop,
                clock,
                log_events: None,
                log_lost: Arc::new(AtomicU64::new(0)),
                handoff: None,
            },
        }
    }

    /// The worker's index.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The handle the control plane keeps.
    pub fn handle(&self) -> WorkerHandle {
        WorkerHandle {
            stats: self.stats.clone(),
            commands: self.commands.clone(),
            core: self.core,
        }
    }

    /// Judges the packets in `st.rx` (one burst from side `ingress` of pair `pi`) and
    /// sends them on: stage 1 parses every packet, hashes it, prefetches its bucket and
    /// finds the ones another worker owns; stage 2 prefetches the candidate entries;
    /// then each packet runs through the pipeline and the transmit lists are flushed.
    /// The poll loop and the handoff drain share this body.
    fn run_burst(&mut self, pi: usize, ingress: Side, rs: &Ruleset, now: Nanos, st: &mut Scratch) {
        st.dest.clear();
        st.parsed.clear();
        st.hashes.clear();
        let own = self.pipeline.ownership;
        let check_all = st.unknown.get(pi).is_some_and(|u| u[ingress as usize]);
        for m in st.rx.iter() {
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
            st.dest.push(d);
            st.parsed.push(r);
            st.hashes.push(h);
        }
        // Stage 2: the buckets are arriving; prefetch the candidate entries.
        for &h in st.hashes.iter() {
            self.pipeline.table.prefetch_entries(h);
        }
        let names = &self.pair_names[pi];
        let pair = PairView {
            mode: self.pairs[pi].mode,
            network: &names.0,
            host: &names.1,
        };
        let log_q = &self.log_events;
        let log_lost = &self.log_lost;
        let limiter = &mut st.limiter;
        let mut log = |e: ruleset::LogEvent<'_>| {
            let Some(q) = log_q else { return };
            // Rate-limited hand-off: the verdict never waits for logging.
            if !limiter.allow(now) || q.push(LogRecord::from_event(&e)).is_err() {
                log_lost.fetch_add(1, Ordering::Relaxed);
            }
        };
        let mut b = Burst {
            rs,
            pair,
            ingress,
            now,
            log: &mut log,
        };
        let from = Origin {
            pair: pi as u16,
            ingress,
        };
        let links = self.handoff.as_ref().map(|l| (l, from));
        for (i, m) in st.rx.drain(..).enumerate() {
            let o = if st.dest[i] != u16::MAX {
                // Owned by another worker: counted there, not here.
                Outcome::handed_off(st.dest[i])
            } else {
                let rx = RxMeta {
                    hash: st.hashes[i],
                    l4_csum_ok: m.l4_csum_ok,
                };
                self.pipeline
                    .process_parsed(&mut b, m.data(), &st.parsed[i], rx, &mut st.reply)
            };
            st.tx.dispose(
                &o,
                (m, Some(&st.parsed[i])),
                &st.reply,
                &mut self.pool,
                (&mut self.pipeline.stats, &self.pipeline.table),
                links,
            );
        }
        st.tx.flush(
            &mut self.pairs[pi],
            ingress,
            &mut self.pool,
            &mut self.pipeline.stats,
        );
    }

    /// Processes the packets other workers handed to this one (packets of connections
    /// of this shard), a burst of consecutive packets from the same pair and side at a
    /// time, and gives buffers back (see [`HandoffLinks`]).
    fn drain_handoffs(&mut self, rs: &Ruleset, now: Nanos, st: &mut Scratch) {
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
            let mut group: Option<Origin> = None;
            for _ in 0..self.burst {
                let Some(item) = ring.pop() else {
                    break;
                };
                if (item.from.pair as usize) < self.pairs.len() {
                    if group.is_some_and(|g| g != item.from) {
                        let g = group.take().unwrap();
                        self.run_burst(g.pair as usize, g.ingress, rs, now, st);
                    }
                    group = Some(item.from);
                    st.rx.push(item.m);
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
            if let Some(g) = group {
                self.run_burst(g.pair as usize, g.ingress, rs, now, st);
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
        let mut current = self.ruleset.load_full();
        if self.handoff.is_none() {
            // No rings to hand anything to: this worker owns every connection it sees.
            self.pipeline.set_ownership(None);
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
        let mut st = Scratch::new(burst, unknown);
        let loop_start = cycles(&self.clock);
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
                self.drain_handoffs(&rs, now, &mut st);
            }
            for pi in 0..self.pairs.len() {
                for ingress in [Side::Network, Side::Host] {
                    let t0 = cycles(&self.clock);
                    let pair = &mut self.pairs[pi];
                    let rx_port = match ingress {
                        Side::Network => &mut pair.network,
                        Side::Host => &mut pair.host,
                    };
                    polls += 1;
                    let n = rx_port.rx_burst(pair.queue, &mut self.pool, &mut st.rx, burst);
                    if n == 0 {
                        continue;
                    }
                    busy_polls += 1;
                    hist[burst_bucket(n)] += 1;
                    let now = self.clock.now();
                    self.run_burst(pi, ingress, &rs, now, &mut st);
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
            let held = &mut st.tx.held;
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
            s.nat_bindings
                .store(self.pipeline.table.nat_bindings() as u64, Ordering::Relaxed);
            s.publish_conntrack(self.pipeline.table.stats());
        }
    }
}

/// The poll loop's buffers, allocated once before the loop: the receive burst, each
/// packet's stage-1 results, the transmit lists, the REJECT reply buffer and the LOG
/// limiter.
struct Scratch {
    rx: Vec<Mbuf>,
    /// Per rx packet: the worker it is handed to (u16::MAX: this one).
    dest: Vec<u16>,
    /// Each packet's parse from stage 1, reused by the pipeline.
    parsed: Vec<Result<Frame, ParseError>>,
    hashes: Vec<u64>,
    tx: TxLists,
    reply: [u8; 2048],
    limiter: LogLimiter,
    /// Per pair and side: check the owner of every packet (the port's steering is not
    /// the ownership model).
    unknown: Vec<[bool; 2]>,
}

impl Scratch {
    fn new(burst: usize, unknown: Vec<[bool; 2]>) -> Self {
        Scratch {
            rx: Vec::with_capacity(burst),
            dest: Vec::with_capacity(burst),
            parsed: Vec::with_capacity(burst),
            hashes: Vec::with_capacity(burst),
            tx: TxLists::new(burst, DEFRAG_SLOTS, MAX_FRAGMENTS),
            reply: [0u8; 2048],
            limiter: LogLimiter::new(LOG_RATE_PER_SEC, LOG_BURST),
            unknown,
        }
    }
}
