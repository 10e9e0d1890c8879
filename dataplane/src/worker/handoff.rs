//! Handing packets to the worker that owns their connection, and where every judged
//! packet's buffer goes ([`TxLists::dispose`]).

use super::burst::TxLists;
use super::pipeline::{Action, Outcome, Side};
use super::stats::{DropReason, LocalStats};
use crate::packet::{Frame, ParseError};
use crate::port::{Mbuf, MbufPool};
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;

/// Depth of each handoff ring (packets from one worker to another per loop iteration
/// of the receiver; beyond it a packet is dropped, `DropReason::HandoffFull`).
pub const HANDOFF_RING: usize = 1024;

/// A packet handed to the worker owning its connection, with where it came in.
#[derive(Debug)]
pub struct Handoff {
    /// The frame (a buffer of the sending worker's pool).
    pub m: Mbuf,
    /// Where it arrived.
    pub from: Origin,
}

/// Where a packet arrived: the index of the port pair and the side of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Index of the port pair it arrived on.
    pub pair: u16,
    /// The side it arrived on.
    pub ingress: Side,
}

/// A fragment train (possibly empty) and the packet that ends it, handed over whole.
pub(super) struct Train<'a> {
    /// The fragments held before `last`.
    pub(super) held: &'a mut Vec<Mbuf>,
    /// The packet handed over.
    pub(super) last: Mbuf,
    /// The pipeline already counted these packets in `packets`/`bytes` (a completed
    /// train went through it); they leave those counters, since their owner counts them.
    pub(super) counted: bool,
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
    /// The full mesh for `n` workers, rings of [`HANDOFF_RING`] entries.
    pub fn mesh(n: usize) -> Vec<HandoffLinks> {
        Self::mesh_of_depth(n, HANDOFF_RING)
    }

    /// The full mesh for `n` workers, rings of `depth` entries (tests use small rings).
    pub fn mesh_of_depth(n: usize, depth: usize) -> Vec<HandoffLinks> {
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

    /// Pushes `train` (its held fragments, then its last packet) into the ring to worker
    /// `to`, all or none: a train that does not fit is dropped whole
    /// (`DropReason::HandoffFull`), since a part would only time out at the owner.
    pub(super) fn send(
        &self,
        to: u16,
        train: Train<'_>,
        from: Origin,
        pool: &mut MbufPool,
        stats: &mut LocalStats,
    ) {
        let k = train.held.len() as u64 + 1;
        let ring = self.to.get(to as usize).and_then(Option::as_ref);
        // Single producer: the free room seen here can only grow until we push.
        let fits = ring.is_some_and(|r| r.capacity() - r.len() >= k as usize);
        for m in train.held.drain(..).chain(std::iter::once(train.last)) {
            if train.counted {
                stats.packets = stats.packets.saturating_sub(1);
                stats.bytes = stats.bytes.saturating_sub(m.len() as u64);
            }
            let item = Handoff { m, from };
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

impl TxLists {
    /// Where one packet goes once the pipeline has decided: forwarded (with the
    /// fragments it completes), held for reassembly, dropped (its buffer reused for a
    /// REJECT reply), or handed to the worker owning its connection (`handoff`: the
    /// rings, and where the packet arrived).
    pub(super) fn dispose(
        &mut self,
        o: &Outcome,
        (m, parsed): (Mbuf, Option<&Result<Frame, ParseError>>),
        reply: &[u8],
        pool: &mut MbufPool,
        (stats, table): (&mut LocalStats, &crate::conntrack::ConnTable),
        handoff: Option<(&HandoffLinks, Origin)>,
    ) {
        let held = &mut self.held;
        if let Some(slot) = o.discard {
            pool.put_all(&mut held[slot]);
        }
        match o.action {
            Action::Held(slot) => held[slot].push(m),
            Action::Forward => {
                let mut m = m;
                if let Some(n) = o.nat.and_then(|r| r.resolve(table)) {
                    // NAT: the bytes change only now, for a packet that goes out.
                    let n = match o.completes {
                        Some(slot) => {
                            let nf = n.for_fragment();
                            for f in held[slot].iter_mut() {
                                let len = f.len();
                                if let Some(l) = super::apply_nat(f.data_mut_full(), len, &nf) {
                                    f.set_len(l);
                                }
                            }
                            nf
                        }
                        None => n,
                    };
                    let len = m.len();
                    let done = match parsed {
                        // The burst's own parse of these very bytes.
                        Some(Ok(Frame::Ip(p))) => {
                            super::apply_nat_parsed(m.data_mut_full(), len, p, &n)
                        }
                        _ => super::apply_nat(m.data_mut_full(), len, &n),
                    };
                    match done {
                        Some(l) => m.set_len(l),
                        None if n.mangle.is_some() || n.seq.is_some() => {
                            // The helper's rewrite found no room, or the options under
                            // sequence adjustment were malformed: the kernel drops it.
                            if let Some(slot) = o.completes {
                                pool.put_all(&mut held[slot]);
                            }
                            stats.forwarded = stats.forwarded.saturating_sub(1);
                            stats.drop(DropReason::Helper);
                            pool.put(m);
                            return;
                        }
                        None => {}
                    }
                }
                if !o.mangle.is_empty() {
                    // mangle targets' header edits (TCPMSS, DSCP, TTL, ...), after NAT.
                    if let Some(slot) = o.completes {
                        for f in held[slot].iter_mut() {
                            super::apply_mangle(f.data_mut(), &o.mangle);
                        }
                    }
                    super::apply_mangle(m.data_mut(), &o.mangle);
                }
                if let Some(slot) = o.completes {
                    self.fwd.append(&mut held[slot]);
                }
                self.fwd.push(m);
            }
            Action::HandOff(to) => {
                // A completed train went through the pipeline (and its counters); a
                // packet the poll loop found owned elsewhere did not.
                let mut none = Vec::new();
                let (train, counted) = match o.completes {
                    Some(slot) => (&mut held[slot], true),
                    None => (&mut none, false),
                };
                match handoff {
                    Some((links, from)) => {
                        let train = Train {
                            held: train,
                            last: m,
                            counted,
                        };
                        links.send(to, train, from, pool, stats)
                    }
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
                    self.back.push(m);
                } else {
                    pool.put(m);
                }
            }
        }
    }
}
