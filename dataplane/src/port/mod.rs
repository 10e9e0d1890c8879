//! Ports: the DPDK poll-mode driver shape over preallocated packet buffers.
//!
//! * [`Mbuf`] / [`MbufPool`]: fixed-capacity packet buffers from a per-worker pool,
//!   preallocated at start; getting and putting a buffer never allocates.
//! * [`Port`]: `rx_burst` / `tx_burst` on a queue, plus counters ([`PortStats`]).
//! * Backends: [`pktgen`] (the built-in generator, a linked inside/outside pair),
//!   [`pcap`] (capture files), [`af_packet`] (TPACKET_V3 rings on any Linux interface),
//!   [`af_xdp`] (XDP sockets with raw system calls, copy or zero-copy mode).
//!   `dpdk` (DPDK poll-mode drivers and vdevs; cargo feature `dpdk`).
//! * Steering (which queue, and so which worker, a frame reaches) is not a port's
//!   business alone: the models live in [`crate::steer`], which ports and workers share.
//!
//! Threading model: a port *handle* owns one or more queues and is `Send`, not
//! shared: the worker that polls a queue owns the handle (backends split a
//! multi-queue port into one handle per queue, e.g. `AfPacketPort::split_queues`).
//! Counters are per queue and written only by the owning worker, with plain Relaxed
//! load+store on cache-padded atomics (no read-modify-write, no false sharing), so the
//! control plane can read them through [`PortCounters`] from any thread.
//!
//! Nothing here allocates or locks per packet. Backends that make system calls make them
//! per burst (or per ring block), never per packet.

pub mod af_packet;
pub mod af_xdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
mod mbuf;
pub mod pcap;
pub mod pktgen;
mod sys;
#[cfg(test)]
mod testnet;

pub use mbuf::{Mbuf, MbufPool, DEFAULT_MBUF_SIZE};

use crossbeam_utils::CachePadded;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

pub use crate::Nanos;
// Children (pktgen, pcap, af_packet, dpdk) name these as `super::…`.
use crate::steer::{queue_of, symmetric_hash, Steering};

/// A poll-mode port: bursts of buffers in and out of its queues.
///
/// A handle serves the queues in [`Port::queue_range`]; calling a burst function with a
/// queue outside that range returns 0 and moves nothing.
pub trait Port: Send {
    /// The port's name (interface, file, or `pktgen:inside`).
    fn name(&self) -> &str;

    /// Appends up to `max` received frames to `out`, taking buffers from `pool`.
    /// Returns the number appended. `out` must have capacity reserved up front (the
    /// burst size): this function never grows it beyond `out.len() + max`. When the pool
    /// runs dry, the frames left in the backend are counted in `rx_nombuf` (or stay
    /// queued, backend-dependent).
    fn rx_burst(
        &mut self,
        queue: u16,
        pool: &mut MbufPool,
        out: &mut Vec<Mbuf>,
        max: usize,
    ) -> usize;

    /// Sends buffers from the front of `pkts`; returns how many were sent. Sent buffers
    /// are removed from `pkts` and returned to `pool`; unsent ones stay in `pkts` in order
    /// (the caller frees or retries them).
    fn tx_burst(&mut self, queue: u16, pkts: &mut Vec<Mbuf>, pool: &mut MbufPool) -> usize;

    /// Counters of the queues this handle serves, summed.
    fn stats(&self) -> PortStats;

    /// Number of queues of the whole port (all handles together).
    fn queues(&self) -> u16;

    /// The queues this handle serves (all of them unless the port was split).
    fn queue_range(&self) -> Range<u16> {
        0..self.queues()
    }

    /// The shared counters of the whole port, readable from any thread.
    fn counters(&self) -> Arc<PortCounters>;

    /// How the port spreads received packets over its queues, when that is a function
    /// the workers can evaluate ([`Steering`]); `None` when it is not known (NIC or
    /// veth RSS): the workers then check the owner of every packet themselves.
    fn steering(&self) -> Option<Steering> {
        None
    }

    /// Whether packets can be taken to arrive where [`Port::steering`] says. False when
    /// the steering is a device configuration that statewall cannot confirm (a NIC's
    /// RSS: a driver may ignore the key or hash other fields): the workers then check
    /// every packet against the model, which costs a hash per packet and hands over
    /// only the packets the device placed differently.
    fn steering_trusted(&self) -> bool {
        true
    }
}

/// What a kernel-socket port handle (af_packet, af_xdp) holds about its queues: the
/// port's name and id, which queues this handle serves (`first..first + queues.len()`
/// of `nq`), the per-queue state `Q`, and the port-wide counters. Backends deref to it.
pub(crate) struct QueueHandle<Q> {
    pub name: String,
    pub port_id: u16,
    pub first: u16,
    pub nq: u16,
    pub queues: Vec<Q>,
    pub counters: Arc<PortCounters>,
}

impl<Q> QueueHandle<Q> {
    /// All `nq` queues of a port named `name`, with fresh counters.
    pub fn new(name: String, queues: Vec<Q>) -> Self {
        let nq = queues.len() as u16;
        QueueHandle {
            counters: PortCounters::new(&name, nq),
            name,
            port_id: 0,
            first: 0,
            nq,
            queues,
        }
    }

    /// One handle per queue (for one worker each); counters stay shared.
    pub fn split(self) -> Vec<QueueHandle<Q>> {
        let QueueHandle {
            name,
            port_id,
            first,
            nq,
            queues,
            counters,
        } = self;
        queues
            .into_iter()
            .enumerate()
            .map(|(i, q)| QueueHandle {
                name: name.clone(),
                port_id,
                first: first + i as u16,
                nq,
                queues: vec![q],
                counters: counters.clone(),
            })
            .collect()
    }

    /// The port queues this handle serves.
    pub fn range(&self) -> Range<u16> {
        self.first..self.first + self.queues.len() as u16
    }

    /// Counters of the queues this handle serves, summed.
    pub fn stats(&self) -> PortStats {
        self.counters.sum(self.range())
    }

    /// The index in `queues` of port queue `queue`, if this handle serves it.
    pub fn index(&self, queue: u16) -> Option<usize> {
        queue_index(self.first, self.queues.len(), queue)
    }

    /// The state and the counters of port queue `queue`, if this handle serves it: what
    /// every burst function starts with (one that gets `None` moves nothing).
    pub fn queue_mut(&mut self, queue: u16) -> Option<(&mut Q, &QueueCounters)> {
        let i = self.index(queue)?;
        Some((&mut self.queues[i], self.counters.queue(queue)))
    }
}

/// The [`Port`] methods a backend built on a [`QueueHandle`] field answers from it
/// (`stats`, `queues`, `queue_range`, `counters`); used inside `impl Port for …`.
macro_rules! queue_handle_methods {
    ($h:ident) => {
        fn stats(&self) -> $crate::port::PortStats {
            self.$h.stats()
        }

        fn queues(&self) -> u16 {
            self.$h.nq
        }

        fn queue_range(&self) -> std::ops::Range<u16> {
            self.$h.range()
        }

        fn counters(&self) -> std::sync::Arc<$crate::port::PortCounters> {
            self.$h.counters.clone()
        }
    };
}
pub(crate) use queue_handle_methods;

/// The index of port queue `queue` among the `len` queues a handle serves from `first`
/// on, if it serves it (the [`Port::queue_range`] rule every backend applies).
pub(crate) fn queue_index(first: u16, len: usize, queue: u16) -> Option<usize> {
    queue
        .checked_sub(first)
        .map(usize::from)
        .filter(|&i| i < len)
}

/// Port counters (one queue, or a sum).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received (frame length, no FCS).
    pub rx_bytes: u64,
    /// Frames the backend dropped before we saw them (ring full, kernel drops).
    pub rx_missed: u64,
    /// Frames dropped because the pool had no buffer.
    pub rx_nombuf: u64,
    /// Frames received in error (truncated, bad status).
    pub rx_errors: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames that could not be sent for an error (not for back-pressure).
    pub tx_errors: u64,
    /// Times the backend found its interface down or gone (a veth deleted, a link set
    /// down): counted once per transition, not per packet; while down, what is sent to
    /// the port is dropped into `tx_errors` with one system call per burst.
    pub down_events: u64,
}

impl std::ops::AddAssign for PortStats {
    fn add_assign(&mut self, o: Self) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.rx_missed += o.rx_missed;
        self.rx_nombuf += o.rx_nombuf;
        self.rx_errors += o.rx_errors;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.tx_errors += o.tx_errors;
        self.down_events += o.down_events;
    }
}

/// One queue's counters: written by the owning worker only (Relaxed load + store, no
/// read-modify-write), read by anyone.
#[derive(Debug, Default)]
pub struct QueueCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_missed: AtomicU64,
    rx_nombuf: AtomicU64,
    rx_errors: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_errors: AtomicU64,
    down_events: AtomicU64,
}

/// Adds to a single-writer counter: a plain load and store, no locked instruction.
#[inline(always)]
pub(crate) fn bump(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
    }
}

impl QueueCounters {
    /// Counts a received burst.
    #[inline]
    pub fn add_rx(&self, packets: u64, bytes: u64) {
        bump(&self.rx_packets, packets);
        bump(&self.rx_bytes, bytes);
    }

    /// Counts a sent burst.
    #[inline]
    pub fn add_tx(&self, packets: u64, bytes: u64) {
        bump(&self.tx_packets, packets);
        bump(&self.tx_bytes, bytes);
    }

    /// Counts frames the backend lost before reception.
    #[inline]
    pub fn add_rx_missed(&self, n: u64) {
        bump(&self.rx_missed, n);
    }

    /// Counts frames dropped for lack of a buffer.
    #[inline]
    pub fn add_rx_nombuf(&self, n: u64) {
        bump(&self.rx_nombuf, n);
    }

    /// Counts receive errors.
    #[inline]
    pub fn add_rx_errors(&self, n: u64) {
        bump(&self.rx_errors, n);
    }

    /// Counts transmit errors.
    #[inline]
    pub fn add_tx_errors(&self, n: u64) {
        bump(&self.tx_errors, n);
    }

    /// Counts the interface found down or gone (once per transition).
    #[inline]
    pub fn add_down_event(&self) {
        bump(&self.down_events, 1);
    }

    /// A snapshot.
    pub fn snapshot(&self) -> PortStats {
        PortStats {
            rx_packets: self.rx_packets.load(Relaxed),
            rx_bytes: self.rx_bytes.load(Relaxed),
            rx_missed: self.rx_missed.load(Relaxed),
            rx_nombuf: self.rx_nombuf.load(Relaxed),
            rx_errors: self.rx_errors.load(Relaxed),
            tx_packets: self.tx_packets.load(Relaxed),
            tx_bytes: self.tx_bytes.load(Relaxed),
            tx_errors: self.tx_errors.load(Relaxed),
            down_events: self.down_events.load(Relaxed),
        }
    }
}

/// The counters of every queue of a port, each on its own cache lines.
#[derive(Debug)]
pub struct PortCounters {
    name: String,
    queues: Box<[CachePadded<QueueCounters>]>,
}

impl PortCounters {
    /// Counters for `queues` queues, all zero.
    pub fn new(name: &str, queues: u16) -> Arc<Self> {
        Arc::new(PortCounters {
            name: name.to_string(),
            queues: (0..queues.max(1))
                .map(|_| CachePadded::new(QueueCounters::default()))
                .collect(),
        })
    }

    /// The port's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of queues.
    pub fn queues(&self) -> u16 {
        self.queues.len() as u16
    }

    /// One queue's counters (panics if `q` is out of range).
    pub fn queue(&self, q: u16) -> &QueueCounters {
        &self.queues[q as usize]
    }

    /// The sum over `range`.
    pub fn sum(&self, range: Range<u16>) -> PortStats {
        let mut s = PortStats::default();
        for q in range {
            if let Some(c) = self.queues.get(q as usize) {
                s += c.snapshot();
            }
        }
        s
    }

    /// The sum over all queues.
    pub fn total(&self) -> PortStats {
        self.sum(0..self.queues())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_counters_sum() {
        let c = PortCounters::new("x", 2);
        c.queue(0).add_rx(2, 120);
        c.queue(1).add_rx(1, 60);
        c.queue(1).add_tx(3, 180);
        let t = c.total();
        assert_eq!((t.rx_packets, t.rx_bytes, t.tx_packets), (3, 180, 3));
        assert_eq!(c.sum(1..2).rx_packets, 1);
    }
}
