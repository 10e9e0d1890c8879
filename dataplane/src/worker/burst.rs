//! What the packets of one burst share, and where judged packets wait for the
//! transmit burst.
//!
//! A poll-loop iteration pulls a burst from one side of one port pair; every packet of
//! it is judged against the same ruleset (loaded once per iteration), at the same time,
//! for the same pair and side, logging through the same rate-limited sink: a
//! [`Burst`]. [`TxLists`] collects where each judged packet goes and sends the lists
//! out once per burst.

use super::pipeline::{PairMode, Side};
use super::stats::{DropReason, LocalStats};
use super::PairPorts;
use crate::port::{Mbuf, MbufPool};
use crate::ruleset::{self, Ruleset};
use crate::Nanos;

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

/// The context every packet of one burst shares: what [`super::Pipeline::process`]
/// needs besides the frame itself.
pub struct Burst<'a> {
    /// The ruleset, loaded once for the whole burst.
    pub rs: &'a Ruleset,
    /// The pair the burst arrived on.
    pub pair: PairView<'a>,
    /// The side of the pair it arrived on.
    pub ingress: Side,
    /// The time of the burst (one clock read).
    pub now: Nanos,
    /// Where LOG events go (rate-limited by the poll loop; the verdict never waits).
    pub log: &'a mut dyn FnMut(ruleset::LogEvent<'_>),
}

impl<'a> Burst<'a> {
    /// The context of a burst from side `ingress` of `pair` at `now`, judged by `rs`,
    /// logging into `log`.
    pub fn new(
        rs: &'a Ruleset,
        pair: PairView<'a>,
        ingress: Side,
        now: Nanos,
        log: &'a mut dyn FnMut(ruleset::LogEvent<'_>),
    ) -> Self {
        Burst {
            rs,
            pair,
            ingress,
            now,
            log,
        }
    }
}

impl std::fmt::Debug for Burst<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Burst")
            .field("pair", &self.pair)
            .field("ingress", &self.ingress)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// Where the judged packets of a burst wait: out of the paired port (`fwd`), back out
/// of the ingress port (`back`: REJECT replies), or held for reassembly by slot.
#[derive(Debug)]
pub(super) struct TxLists {
    /// Out of the paired port (room for a burst plus a completed datagram's fragments).
    pub(super) fwd: Vec<Mbuf>,
    /// Back out of the ingress port.
    pub(super) back: Vec<Mbuf>,
    /// Fragments held per reassembly slot.
    pub(super) held: Vec<Vec<Mbuf>>,
}

impl TxLists {
    /// Lists for bursts of `burst` packets and `slots` reassembly slots.
    pub(super) fn new(burst: usize, slots: usize, fragments: usize) -> Self {
        TxLists {
            fwd: Vec::with_capacity(burst + fragments),
            back: Vec::with_capacity(burst),
            held: (0..slots).map(|_| Vec::with_capacity(fragments)).collect(),
        }
    }

    /// Sends `fwd` out of the port opposite `ingress` and `back` out of `ingress`'s
    /// own port, on the pair's queue; what a full queue did not take is dropped
    /// (`DropReason::TxFull`) and its buffer returned to `pool`.
    pub(super) fn flush(
        &mut self,
        pair: &mut PairPorts,
        ingress: Side,
        pool: &mut MbufPool,
        stats: &mut LocalStats,
    ) {
        let q = pair.queue;
        let (rx_port, tx_port) = match ingress {
            Side::Network => (&mut pair.network, &mut pair.host),
            Side::Host => (&mut pair.host, &mut pair.network),
        };
        for (port, list) in [(tx_port, &mut self.fwd), (rx_port, &mut self.back)] {
            if !list.is_empty() {
                port.tx_burst(q, list, pool);
                for m in list.drain(..) {
                    stats.drop(DropReason::TxFull);
                    pool.put(m);
                }
            }
        }
    }
}
