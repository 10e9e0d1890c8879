//! The built-in traffic generator: a linked pair of virtual ports, "inside" and "outside".
//!
//! Simulated clients live behind the inside port, simulated servers behind the outside
//! port. What the firewall receives on inside is what the clients send; what it
//! transmits out of outside reaches the servers, which answer at once into outside's rx;
//! what it transmits out of inside reaches the clients, which go on with their
//! connection. So the generator both offers traffic and checks that it came through.
//!
//! Traffic ([`Traffic`]):
//! * [`Traffic::Range`]: pktgen-dpdk's "range" mode: one direction (clients to servers),
//!   a fixed number of flows cycled over address and port ranges, fixed frame size.
//! * [`Traffic::Lifecycle`]: N concurrent connections, each a full TCP connection (SYN,
//!   SYN/ACK, ACK, requests and responses, FIN both ways or a client RST), a UDP
//!   request/response exchange, or an ICMP echo; a new one starts as each finishes.
//!   Sequence and acknowledgement numbers are exact, so a Linux-faithful conntrack
//!   tracks every packet as valid.
//! * [`Traffic::Established`]: N TCP connections handshake once, then exchange small
//!   data segments (64-byte frames by default) forever, ping-pong per connection.
//!
//! Servers are stateless: a server's sequence number is the client's acknowledgement
//! (its ISN a hash of the tuple), which is exact as long as clients acknowledge what
//! they receive, as they do. Clients keep per-connection state in a slot array; a
//! client's address encodes its slot (no lookup table), and its source port (or ICMP id)
//! is chosen so that [`super::symmetric_hash`] steers the connection to the queue that
//! generated it: every packet of a connection, both directions, is on that queue.
//! A connection that stalls (the firewall dropped a packet) times out and is counted.
//!
//! Per queue, the client state is owned by the inside handle and the server state by the
//! outside handle, so both can be polled by one worker without a lock; the two sides share
//! only the statistics block ([`PktgenStats`]), whose fields each have one writer.
//!
//! No allocation per packet: frames are written straight into pool buffers with
//! [`PacketSpec::write`] from preallocated payload bytes; a server reply reuses the
//! buffer of the packet it answers; queues are preallocated `VecDeque`s never grown past
//! their capacity. Addresses are IPv4.

mod client;
mod plan;
mod server;
mod stats;
mod traffic;

pub use stats::{PktgenSnapshot, PktgenStats};
pub use traffic::{
    EstablishedTraffic, LifecycleTraffic, PktgenConfig, RangeProto, RangeTraffic, Traffic,
};

use super::{bump, symmetric_hash, Mbuf, MbufPool, Nanos, Port, PortCounters, PortStats};
use crate::packet::{Parsed, L4};
use client::ClientSim;
use plan::{queue_plan, share, QueuePlan};
use server::ServerSim;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x01];
const FW_INSIDE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const FW_OUTSIDE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Ethernet + IPv4 + TCP header bytes of a generated segment.
const TCP_HDRS: usize = 14 + 20 + 20;
/// Ethernet + IPv4 + UDP header bytes.
const UDP_HDRS: usize = 14 + 20 + 8;
const MAX_PAYLOAD: usize = 1460;

fn addr16(a: u32) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a.to_be_bytes());
    x
}

fn ip4(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn v4_of(p: &Parsed) -> u32 {
    u32::from_be_bytes([p.src[0], p.src[1], p.src[2], p.src[3]])
}

fn v4_dst(p: &Parsed) -> u32 {
    u32::from_be_bytes([p.dst[0], p.dst[1], p.dst[2], p.dst[3]])
}

/// The steering ports of a parsed packet (ICMP echo: the id twice).
fn hash_of(p: &Parsed) -> u32 {
    let (sp, dp) = match p.l4 {
        L4::Tcp(t) => (t.sport, t.dport),
        L4::Udp(u) => (u.sport, u.dport),
        L4::Icmp(i) => (i.id, i.id),
        _ => (0, 0),
    };
    symmetric_hash(&p.src, &p.dst, sp, dp, p.proto)
}

fn fill_pattern(n: usize) -> Box<[u8]> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A token bucket in packets, refilled from the burst's clock read.
#[derive(Debug)]
struct Rate {
    pps: u64,
    acc: u128,
    last: Nanos,
    tokens: u64,
}

impl Rate {
    fn budget(&mut self, now: Nanos, want: usize) -> usize {
        let dt = now.saturating_sub(self.last);
        self.last = now;
        self.acc += u128::from(dt) * u128::from(self.pps);
        let whole = (self.acc / 1_000_000_000) as u64;
        self.acc %= 1_000_000_000;
        // At most one burst of credit saved up (no catch-up storms after a stall).
        self.tokens = (self.tokens + whole).min(want.max(32) as u64);
        self.tokens.min(want as u64) as usize
    }

    fn spend(&mut self, n: usize) {
        self.tokens -= n as u64;
    }
}

enum Sim {
    Client(Box<ClientSim>),
    Server(Box<ServerSim>),
}

/// One side of a [`PktgenPair`]: a [`Port`] serving some or all of the pair's queues.
pub struct PktgenPort {
    name: String,
    port_id: u16,
    first: u16,
    nq: u16,
    sims: Vec<Sim>,
    counters: Arc<PortCounters>,
    stats: Arc<PktgenStats>,
    epoch: Instant,
    rate: Vec<Option<Rate>>,
}

impl PktgenPort {
    /// Sets the port id written into received buffers.
    pub fn set_port_id(&mut self, id: u16) {
        self.port_id = id;
    }

    /// The generator statistics of the whole pair.
    pub fn pktgen_stats(&self) -> Arc<PktgenStats> {
        self.stats.clone()
    }

    fn now(&self) -> Nanos {
        self.epoch.elapsed().as_nanos() as Nanos
    }

    /// Returns every buffer the generator holds (queued server replies) to `pool`.
    pub fn drain_into(&mut self, pool: &mut MbufPool) {
        for s in &mut self.sims {
            if let Sim::Server(s) = s {
                for m in s.replies.drain(..) {
                    pool.put(m);
                }
            }
        }
    }
}

impl Port for PktgenPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(
        &mut self,
        queue: u16,
        pool: &mut MbufPool,
        out: &mut Vec<Mbuf>,
        max: usize,
    ) -> usize {
        let Some(idx) = super::queue_index(self.first, self.sims.len(), queue) else {
            return 0;
        };
        let now = self.now();
        let st = &self.stats.queues[queue as usize];
        let start = out.len();
        let n = match &mut self.sims[idx] {
            Sim::Client(c) => {
                let budget = match &mut self.rate[idx] {
                    Some(r) => r.budget(now, max),
                    None => max,
                };
                let n = c.generate(now, budget, pool, out, st);
                if let Some(r) = &mut self.rate[idx] {
                    r.spend(n);
                }
                bump(&st.client_offered, n as u64);
                n
            }
            Sim::Server(s) => {
                let n = max.min(s.replies.len());
                out.extend(s.replies.drain(..n));
                bump(&st.server_offered, n as u64);
                n
            }
        };
        let mut bytes = 0u64;
        for m in &mut out[start..] {
            m.port = self.port_id;
            m.queue = queue;
            m.timestamp = now;
            bytes += m.len() as u64;
        }
        self.counters.queue(queue).add_rx(n as u64, bytes);
        n
    }

    fn tx_burst(&mut self, queue: u16, pkts: &mut Vec<Mbuf>, pool: &mut MbufPool) -> usize {
        let Some(idx) = super::queue_index(self.first, self.sims.len(), queue) else {
            return 0;
        };
        let st = &self.stats.queues[queue as usize];
        let n = pkts.len();
        let mut bytes = 0u64;
        match &mut self.sims[idx] {
            Sim::Client(c) => {
                for m in pkts.drain(..) {
                    bytes += m.len() as u64;
                    c.receive(&m, st);
                    pool.put(m);
                }
            }
            Sim::Server(s) => {
                for m in pkts.drain(..) {
                    bytes += m.len() as u64;
                    s.receive(m, pool, st);
                }
            }
        }
        self.counters.queue(queue).add_tx(n as u64, bytes);
        n
    }

    fn stats(&self) -> PortStats {
        self.counters
            .sum(self.first..self.first + self.sims.len() as u16)
    }

    fn queues(&self) -> u16 {
        self.nq
    }

    fn queue_range(&self) -> std::ops::Range<u16> {
        self.first..self.first + self.sims.len() as u16
    }

    fn counters(&self) -> Arc<PortCounters> {
        self.counters.clone()
    }

    fn steering(&self) -> Option<super::Steering> {
        Some(super::Steering::Symmetric)
    }
}

/// The linked inside/outside ports of the generator.
pub struct PktgenPair {
    inside: PktgenPort,
    outside: PktgenPort,
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("pktgen: {msg}"))
}

impl PktgenPair {
    /// Builds the pair: all per-queue state (connection slots, reply rings, range flow
    /// lists, payload bytes) is allocated here.
    pub fn new(cfg: &PktgenConfig) -> io::Result<Self> {
        let nq = cfg.queues;
        if nq == 0 {
            return Err(invalid("queues must be at least 1"));
        }
        let stats = PktgenStats::new(nq);
        let epoch = Instant::now();
        let mut clients = Vec::with_capacity(nq as usize);
        let mut servers = Vec::with_capacity(nq as usize);
        for q in 0..nq {
            let QueuePlan {
                plan,
                slots,
                range,
                response,
            } = queue_plan(&cfg.traffic, q, nq)?;
            clients.push(Sim::Client(Box::new(ClientSim::new(
                q, nq, plan, slots, range,
            ))));
            servers.push(Sim::Server(Box::new(ServerSim::new(
                q,
                nq,
                cfg.reply_ring,
                response,
                matches!(cfg.traffic, Traffic::Range(_)),
            ))));
        }
        let rate = |q: u16| {
            (cfg.rate_pps > 0).then(|| Rate {
                pps: share(cfg.rate_pps, q, nq).max(1),
                acc: 0,
                last: 0,
                tokens: 0,
            })
        };
        let port = |name: &str, sims: Vec<Sim>, rate: Vec<Option<Rate>>| PktgenPort {
            name: name.to_string(),
            port_id: 0,
            first: 0,
            nq,
            sims,
            counters: PortCounters::new(name, nq),
            stats: stats.clone(),
            epoch,
            rate,
        };
        Ok(PktgenPair {
            inside: port("pktgen:inside", clients, (0..nq).map(rate).collect()),
            outside: port("pktgen:outside", servers, (0..nq).map(|_| None).collect()),
        })
    }

    /// The generator statistics (shared with both ports; readable from any thread).
    pub fn stats(&self) -> Arc<PktgenStats> {
        self.inside.stats.clone()
    }

    /// The two ports, each serving every queue: `(inside, outside)`.
    pub fn into_ports(self) -> (PktgenPort, PktgenPort) {
        (self.inside, self.outside)
    }

    /// One `(inside, outside)` pair of handles per queue, for one worker per queue.
    pub fn into_queue_ports(self) -> Vec<(PktgenPort, PktgenPort)> {
        let split = |p: PktgenPort| -> Vec<PktgenPort> {
            let PktgenPort {
                name,
                port_id,
                nq,
                sims,
                counters,
                stats,
                epoch,
                rate,
                ..
            } = p;
            sims.into_iter()
                .zip(rate)
                .enumerate()
                .map(|(q, (sim, r))| PktgenPort {
                    name: name.clone(),
                    port_id,
                    first: q as u16,
                    nq,
                    sims: vec![sim],
                    counters: counters.clone(),
                    stats: stats.clone(),
                    epoch,
                    rate: vec![r],
                })
                .collect()
        };
        split(self.inside)
            .into_iter()
            .zip(split(self.outside))
            .collect()
    }
}

#[cfg(test)]
mod tests;
