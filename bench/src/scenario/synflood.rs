//! Table full under a SYN flood: established connections keep flowing while spoofed
//! SYNs fill the connection table and Linux's early drop makes room for each new one.
//!
//! One real [`Worker`] polls two pktgen pairs through one pipeline and one 64 k shard:
//! pair 0 carries established TCP connections (handshaken, then ping-pong data, each
//! segment checked by the simulated hosts), pair 1 a SYN flood (pktgen range traffic,
//! [`RangeProto::Syn`]: 1 M distinct tuples from spoofed clients that never answer).
//! The flood starts once the established connections are assured. As in Linux
//! (`early_drop()`, see CONNTRACK.md), a new entry for a full table evicts an entry
//! that never saw a reply near the new key's bucket; assured entries are never evicted,
//! so the established connections must lose nothing.
//!
//! Reported: the SYN rate reached, established packets lost (offered by the generator
//! and not delivered), early drops, and table_full drops. The run fails when an
//! established packet is lost or the table never needed an early drop (the check is
//! correctness, never the rate).

use crate::report::Row;
use crate::Opts;
use arc_swap::ArcSwap;
use dataplane::conntrack::{ConnTable, CtCounter};
use dataplane::port::pktgen::{
    EstablishedTraffic, PktgenConfig, PktgenPair, PktgenSnapshot, PktgenStats, RangeProto,
    RangeTraffic, Traffic,
};
use dataplane::port::{Mbuf, MbufPool, Port, PortCounters, PortStats};
use dataplane::ruleset::Ruleset;
use dataplane::worker::{
    Clock, DropReason, NonIpPolicy, PairMode, PairPorts, Pipeline, PublishedStats, Worker,
};
use serde_json::json;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A port that receives nothing until its gate opens (the flood waits for the
/// established connections to be assured).
pub(crate) struct Gated<P> {
    pub(crate) inner: P,
    pub(crate) open: Arc<AtomicBool>,
}

impl<P: Port> Port for Gated<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn rx_burst(&mut self, q: u16, pool: &mut MbufPool, out: &mut Vec<Mbuf>, max: usize) -> usize {
        if !self.open.load(Relaxed) {
            return 0;
        }
        self.inner.rx_burst(q, pool, out, max)
    }
    fn tx_burst(&mut self, q: u16, pkts: &mut Vec<Mbuf>, pool: &mut MbufPool) -> usize {
        self.inner.tx_burst(q, pkts, pool)
    }
    fn stats(&self) -> PortStats {
        self.inner.stats()
    }
    fn queues(&self) -> u16 {
        self.inner.queues()
    }
    fn counters(&self) -> Arc<PortCounters> {
        self.inner.counters()
    }
    fn steering(&self) -> Option<dataplane::steer::Steering> {
        self.inner.steering()
    }
}

/// What one SYN-flood run measured.
#[derive(Debug, Clone)]
pub(crate) struct SynFlood {
    /// Seconds the flood ran.
    pub(crate) secs: f64,
    /// SYNs the generator offered to the worker.
    pub(crate) syns: u64,
    /// Established traffic: the generator's view (offered, delivered, retransmits).
    pub(crate) est: PktgenSnapshot,
    /// Established packets offered during the flood.
    pub(crate) est_during: u64,
    /// Conntrack early drops.
    pub(crate) early_drops: u64,
    /// New connections dropped because nothing could be evicted.
    pub(crate) table_full: u64,
    /// Entries in the table at the end, and its capacity.
    pub(crate) entries: u64,
    pub(crate) capacity: usize,
}

impl SynFlood {
    /// Established packets the firewall did not deliver (or that had to be resent).
    pub(crate) fn est_loss(&self) -> u64 {
        self.est.dropped + self.est.retransmits + self.est.connections_timed_out
    }
}

fn est_traffic(flows: u32) -> Traffic {
    Traffic::Established(EstablishedTraffic {
        flows,
        ..Default::default()
    })
}

fn syn_traffic() -> Traffic {
    Traffic::Range(RangeTraffic {
        proto: RangeProto::Syn,
        src_ip: (
            Ipv4Addr::new(100, 64, 0, 0),
            Ipv4Addr::new(100, 64, 255, 255),
        ),
        dst_ip: (
            Ipv4Addr::new(198, 51, 100, 1),
            Ipv4Addr::new(198, 51, 100, 1),
        ),
        sport: (1024, 65535),
        dport: (80, 80),
        frame_size: 54,
        flows: 1 << 20,
    })
}

fn pair(t: Traffic) -> (PktgenPair, Arc<PktgenStats>) {
    let p = PktgenPair::new(&PktgenConfig {
        queues: 1,
        traffic: t,
        ..Default::default()
    })
    .expect("pktgen");
    let s = p.stats();
    (p, s)
}

/// Runs the established connections alone until they are all assured (or 2 s), then
/// the flood for `secs`, on a table of `capacity` entries.
pub(crate) fn run_synflood(capacity: usize, est_flows: u32, secs: f64) -> SynFlood {
    let rs = Arc::new(ArcSwap::from_pointee(Ruleset::accept_all()));
    let pipeline = Pipeline::new(
        ConnTable::new(capacity, Default::default()),
        &rs.load(),
        NonIpPolicy::PassArp,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(AtomicBool::new(false));
    let (est, est_stats) = pair(est_traffic(est_flows));
    let (syn, syn_stats) = pair(syn_traffic());
    let (e_in, e_out) = est.into_ports();
    let (s_in, s_out) = syn.into_ports();
    let worker = Worker::builder(0, pipeline, rs, Clock::new(), stop.clone())
        .pool(MbufPool::new(8192))
        .pair(
            PairPorts {
                mode: PairMode::Forward,
                network: Box::new(e_out),
                host: Box::new(e_in),
                queue: 0,
            },
            ("est-out".into(), "est-in".into()),
        )
        .pair(
            PairPorts {
                mode: PairMode::Forward,
                network: Box::new(s_out),
                host: Box::new(Gated {
                    inner: s_in,
                    open: gate.clone(),
                }),
                queue: 0,
            },
            ("syn-out".into(), "syn-in".into()),
        )
        .build();
    let h = worker.handle();
    let t = std::thread::spawn(move || worker.run());
    let ws: &PublishedStats = &h.stats;
    // Warm-up: every established connection handshaken (assured once the handshake's
    // last ACK passed, as in Linux) and exchanging data; the generator serves its
    // connections round robin, so 8 delivered packets per connection is well past it.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        let s = est_stats.snapshot();
        if s.connections_started >= u64::from(est_flows)
            && s.rx_forwarded > 8 * u64::from(est_flows)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = est_stats.snapshot();
    gate.store(true, Relaxed);
    let f0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Relaxed);
    let secs = f0.elapsed().as_secs_f64();
    t.join().expect("worker");
    let est = est_stats.snapshot();
    SynFlood {
        secs,
        syns: syn_stats.snapshot().tx_offered,
        est,
        est_during: est.tx_offered - before.tx_offered,
        early_drops: ws.ct(CtCounter::EarlyDrop),
        table_full: ws.drops[DropReason::TableFull as usize].load(Relaxed),
        entries: ws.ct_entries.load(Relaxed),
        capacity,
    }
}

pub(crate) fn synflood(o: &Opts) -> Vec<Row> {
    let est_flows = 1024;
    let r = run_synflood(1 << 16, est_flows, o.secs() * 2.0);
    let rate = r.syns as f64 / r.secs;
    let loss = r.est_loss();
    if loss > 0 || r.early_drops == 0 || r.est_during == 0 {
        crate::fail(format!(
            "synflood: established loss {loss} (must be 0; {} packets during the flood), \
             early drops {} (must be > 0): {r:?}",
            r.est_during, r.early_drops
        ));
    }
    vec![Row {
        scenario: "synflood".into(),
        params: format!(
            "64k table, {est_flows} est. flows, {:.2} M SYN/s",
            rate / 1e6
        ),
        mpps: Some((r.syns + r.est_during) as f64 / r.secs / 1e6),
        ns_pkt: None,
        peer: format!(
            "established loss {loss} of {}; early drops {}; table_full {}; entries {}/{}",
            r.est_during, r.early_drops, r.table_full, r.entries, r.capacity
        ),
        extra: json!({"syn_per_sec": rate, "syns": r.syns, "established_offered": r.est_during,
                      "established_loss": loss, "early_drops": r.early_drops,
                      "table_full": r.table_full, "entries": r.entries, "capacity": r.capacity,
                      "retransmits": r.est.retransmits, "timed_out": r.est.connections_timed_out}),
        ..Default::default()
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The acceptance check at whatever rate this machine reaches: the flood fills the
    /// table, early drop makes room (counted), and not one established packet is lost.
    #[test]
    fn synflood_keeps_established_flows_and_early_drops() {
        let r = run_synflood(1 << 16, 512, 1.0);
        assert!(r.syns > 1 << 16, "the flood outgrew the table: {r:?}");
        assert!(r.early_drops > 0, "early drop made room: {r:?}");
        assert!(
            r.est_during > 0,
            "established traffic ran during the flood: {r:?}"
        );
        assert_eq!(r.est_loss(), 0, "no established packet lost: {r:?}");
        assert_eq!(r.est.unexpected, 0, "{r:?}");
        assert!(r.entries as usize <= r.capacity);
    }
}
