//! The generator's statistics: per-queue counters, each field with one writer, and the
//! summed [`PktgenSnapshot`].

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// One queue's generator counters. Client fields are written only by the inside handle,
/// server fields only by the outside handle (Relaxed load + store).
#[derive(Debug, Default)]
pub(super) struct QueueGenStats {
    pub(super) client_offered: AtomicU64,
    pub(super) client_received: AtomicU64,
    pub(super) started: AtomicU64,
    pub(super) completed: AtomicU64,
    pub(super) reset: AtomicU64,
    pub(super) timed_out: AtomicU64,
    pub(super) retransmits: AtomicU64,
    pub(super) client_unexpected: AtomicU64,
    pub(super) nombuf: AtomicU64,
    pub(super) server_offered: AtomicU64,
    pub(super) server_received: AtomicU64,
    pub(super) server_unexpected: AtomicU64,
    pub(super) ring_full: AtomicU64,
    pub(super) steer_mismatch: AtomicU64,
}

/// Generator statistics, per queue on separate cache lines; readable from any thread.
#[derive(Debug)]
pub struct PktgenStats {
    pub(super) queues: Box<[CachePadded<QueueGenStats>]>,
}

/// A summed view of [`PktgenStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PktgenSnapshot {
    /// Packets the generator handed to the firewall (client packets on inside rx plus
    /// server replies on outside rx).
    pub tx_offered: u64,
    /// Packets the firewall transmitted that reached a simulated host.
    pub rx_forwarded: u64,
    /// `tx_offered - rx_forwarded`: packets the firewall did not forward (dropped, or
    /// still in the worker's hands at the moment of reading).
    pub dropped: u64,
    /// Connections started.
    pub connections_started: u64,
    /// Connections that ran to their end (FIN exchange, RST, or last reply).
    pub connections_completed: u64,
    /// Of the completed TCP connections, those ended by a client RST.
    pub connections_reset: u64,
    /// Connections abandoned after a timeout with no progress.
    pub connections_timed_out: u64,
    /// Data segments retransmitted after a timeout (established traffic).
    pub retransmits: u64,
    /// Packets a simulated host received that fit no connection state.
    pub unexpected: u64,
    /// Client packets not generated because the pool was empty.
    pub nombuf: u64,
    /// Server replies dropped because the reply ring was full.
    pub reply_ring_full: u64,
    /// Packets transmitted on a queue other than the one their hash steers to.
    pub steer_mismatch: u64,
    /// Of `tx_offered`: client packets (the inside port's rx).
    pub client_offered: u64,
    /// Of `tx_offered`: server replies (the outside port's rx).
    pub server_offered: u64,
    /// Of `rx_forwarded`: packets the clients received (the inside port's tx).
    pub client_received: u64,
    /// Of `rx_forwarded`: packets the servers received (the outside port's tx).
    pub server_received: u64,
}

impl PktgenSnapshot {
    /// Connections started and not yet completed or timed out.
    pub fn active(&self) -> u64 {
        self.connections_started
            .saturating_sub(self.connections_completed + self.connections_timed_out)
    }
}

impl PktgenStats {
    pub(super) fn new(queues: u16) -> Arc<Self> {
        Arc::new(PktgenStats {
            queues: (0..queues)
                .map(|_| CachePadded::new(QueueGenStats::default()))
                .collect(),
        })
    }

    /// Number of queues.
    pub fn queues(&self) -> u16 {
        self.queues.len() as u16
    }

    /// The sum over all queues.
    pub fn snapshot(&self) -> PktgenSnapshot {
        let mut s = PktgenSnapshot::default();
        for q in 0..self.queues() {
            let x = self.queue(q);
            s.tx_offered += x.tx_offered;
            s.rx_forwarded += x.rx_forwarded;
            s.connections_started += x.connections_started;
            s.connections_completed += x.connections_completed;
            s.connections_reset += x.connections_reset;
            s.connections_timed_out += x.connections_timed_out;
            s.retransmits += x.retransmits;
            s.unexpected += x.unexpected;
            s.nombuf += x.nombuf;
            s.reply_ring_full += x.reply_ring_full;
            s.steer_mismatch += x.steer_mismatch;
            s.client_offered += x.client_offered;
            s.server_offered += x.server_offered;
            s.client_received += x.client_received;
            s.server_received += x.server_received;
        }
        s.dropped = s.tx_offered.saturating_sub(s.rx_forwarded);
        s
    }

    /// One queue's counters.
    pub fn queue(&self, q: u16) -> PktgenSnapshot {
        let x = &self.queues[q as usize];
        let l = |a: &AtomicU64| a.load(Relaxed);
        let tx_offered = l(&x.client_offered) + l(&x.server_offered);
        let rx_forwarded = l(&x.client_received) + l(&x.server_received);
        PktgenSnapshot {
            tx_offered,
            rx_forwarded,
            dropped: tx_offered.saturating_sub(rx_forwarded),
            connections_started: l(&x.started),
            connections_completed: l(&x.completed),
            connections_reset: l(&x.reset),
            connections_timed_out: l(&x.timed_out),
            retransmits: l(&x.retransmits),
            unexpected: l(&x.client_unexpected) + l(&x.server_unexpected),
            nombuf: l(&x.nombuf),
            reply_ring_full: l(&x.ring_full),
            steer_mismatch: l(&x.steer_mismatch),
            client_offered: l(&x.client_offered),
            server_offered: l(&x.server_offered),
            client_received: l(&x.client_received),
            server_received: l(&x.server_received),
        }
    }
}
