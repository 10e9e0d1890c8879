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

use super::{queue_of, symmetric_hash, Mbuf, MbufPool, Nanos, Port, PortCounters, PortStats};
use crate::packet::build::PacketSpec;
use crate::packet::{parse, proto, tcp_flags as tf, Frame, Parsed, L4};
use crossbeam_utils::CachePadded;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
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

/// L4 protocol of range traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeProto {
    /// UDP datagrams.
    Udp,
    /// TCP segments with the ACK flag (as pktgen-dpdk sends them; conntrack without loose
    /// pickup calls them INVALID).
    Tcp,
}

/// pktgen-dpdk-like range traffic: flow `i` uses `min + i % (max - min + 1)` for each
/// field (all fields step together, as pktgen's range mode does), `flows` flows cycled.
#[derive(Debug, Clone)]
pub struct RangeTraffic {
    /// Protocol.
    pub proto: RangeProto,
    /// Source address range (inclusive).
    pub src_ip: (Ipv4Addr, Ipv4Addr),
    /// Destination address range (inclusive).
    pub dst_ip: (Ipv4Addr, Ipv4Addr),
    /// Source port range (inclusive).
    pub sport: (u16, u16),
    /// Destination port range (inclusive).
    pub dport: (u16, u16),
    /// Frame size in bytes (no FCS), at least the headers' size.
    pub frame_size: usize,
    /// Number of distinct flows cycled.
    pub flows: u32,
}

impl Default for RangeTraffic {
    fn default() -> Self {
        RangeTraffic {
            proto: RangeProto::Udp,
            src_ip: (Ipv4Addr::new(16, 0, 0, 1), Ipv4Addr::new(16, 0, 0, 254)),
            dst_ip: (Ipv4Addr::new(48, 0, 0, 1), Ipv4Addr::new(48, 0, 0, 254)),
            sport: (1024, 65535),
            dport: (5000, 5999),
            frame_size: 64,
            flows: 1024,
        }
    }
}

/// Realistic connection lifecycles.
#[derive(Debug, Clone)]
pub struct LifecycleTraffic {
    /// Concurrent connections (over all queues).
    pub concurrent: u32,
    /// Relative weight of TCP connections.
    pub tcp_weight: u32,
    /// Relative weight of UDP exchanges.
    pub udp_weight: u32,
    /// Relative weight of ICMP echoes.
    pub icmp_weight: u32,
    /// Request/response rounds per TCP connection (at least 1).
    pub tcp_requests: u32,
    /// Request/response rounds per UDP flow (at least 1).
    pub udp_exchanges: u32,
    /// Client request payload bytes.
    pub request_size: u16,
    /// Server response payload bytes.
    pub response_size: u16,
    /// One TCP connection in this many ends with a client RST instead of FINs (0: never).
    pub rst_one_in: u32,
    /// Total connections to start, over all queues (0: no limit).
    pub max_connections: u64,
    /// A connection with no progress for this long is abandoned and counted timed out.
    pub timeout_ns: u64,
    /// Every connection of a client slot reuses the slot's tuple (same source port,
    /// same server), like a load tester with a fixed port per client: a new TCP
    /// connection reopens the TIME_WAIT/CLOSE entry of the previous one (as Linux does)
    /// and UDP/ICMP exchanges refresh theirs, so the table holds about `concurrent`
    /// entries however long it runs. False: every connection takes a fresh source port
    /// (connection churn; TIME_WAIT entries pile up for 120 s each, as in Linux).
    pub reuse_ports: bool,
    /// First client address; client `i` uses this plus `i` (a /8 holds 16 M clients).
    pub clients: Ipv4Addr,
    /// First server address.
    pub servers: Ipv4Addr,
    /// Number of server addresses.
    pub server_count: u32,
    /// TCP server port.
    pub tcp_port: u16,
    /// UDP server port.
    pub udp_port: u16,
}

impl Default for LifecycleTraffic {
    fn default() -> Self {
        LifecycleTraffic {
            concurrent: 1024,
            tcp_weight: 8,
            udp_weight: 1,
            icmp_weight: 1,
            tcp_requests: 2,
            udp_exchanges: 1,
            request_size: 200,
            response_size: 1000,
            rst_one_in: 10,
            max_connections: 0,
            timeout_ns: 1_000_000_000,
            reuse_ports: false,
            clients: Ipv4Addr::new(10, 0, 0, 0),
            servers: Ipv4Addr::new(192, 168, 100, 1),
            server_count: 16,
            tcp_port: 80,
            udp_port: 53,
        }
    }
}

/// Established TCP connections exchanging small data segments.
#[derive(Debug, Clone)]
pub struct EstablishedTraffic {
    /// Connections (over all queues).
    pub flows: u32,
    /// Frame size of data segments (54 bytes of headers; 64 gives 10 payload bytes).
    pub frame_size: usize,
    /// A connection with no reply for this long retransmits its last segment.
    pub timeout_ns: u64,
    /// First client address.
    pub clients: Ipv4Addr,
    /// First server address.
    pub servers: Ipv4Addr,
    /// Number of server addresses.
    pub server_count: u32,
    /// Server port.
    pub port: u16,
}

impl Default for EstablishedTraffic {
    fn default() -> Self {
        EstablishedTraffic {
            flows: 1024,
            frame_size: 64,
            timeout_ns: 100_000_000,
            clients: Ipv4Addr::new(10, 0, 0, 0),
            servers: Ipv4Addr::new(192, 168, 100, 1),
            server_count: 16,
            port: 80,
        }
    }
}

/// What the generator offers.
#[derive(Debug, Clone)]
pub enum Traffic {
    /// pktgen-dpdk-like ranges, one direction.
    Range(RangeTraffic),
    /// Full connection lifecycles.
    Lifecycle(LifecycleTraffic),
    /// Handshaken TCP connections, then data only.
    Established(EstablishedTraffic),
}

/// Generator configuration.
#[derive(Debug, Clone)]
pub struct PktgenConfig {
    /// Queues per port (one per worker).
    pub queues: u16,
    /// Traffic.
    pub traffic: Traffic,
    /// Offered rate of client packets in packets per second, over all queues
    /// (0: as fast as the worker polls). Server replies are not rate limited.
    pub rate_pps: u64,
    /// Server replies waiting to be received, per queue (beyond: dropped and counted).
    pub reply_ring: usize,
}

impl Default for PktgenConfig {
    fn default() -> Self {
        PktgenConfig {
            queues: 1,
            traffic: Traffic::Lifecycle(LifecycleTraffic::default()),
            rate_pps: 0,
            reply_ring: 4096,
        }
    }
}

/// One queue's generator counters. Client fields are written only by the inside handle,
/// server fields only by the outside handle (Relaxed load + store).
#[derive(Debug, Default)]
struct QueueGenStats {
    client_offered: AtomicU64,
    client_received: AtomicU64,
    started: AtomicU64,
    completed: AtomicU64,
    reset: AtomicU64,
    timed_out: AtomicU64,
    retransmits: AtomicU64,
    client_unexpected: AtomicU64,
    nombuf: AtomicU64,
    server_offered: AtomicU64,
    server_received: AtomicU64,
    server_unexpected: AtomicU64,
    ring_full: AtomicU64,
    steer_mismatch: AtomicU64,
}

/// Generator statistics, per queue on separate cache lines; readable from any thread.
#[derive(Debug)]
pub struct PktgenStats {
    queues: Box<[CachePadded<QueueGenStats>]>,
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
}

impl PktgenSnapshot {
    /// Connections started and not yet completed or timed out.
    pub fn active(&self) -> u64 {
        self.connections_started
            .saturating_sub(self.connections_completed + self.connections_timed_out)
    }
}

impl PktgenStats {
    fn new(queues: u16) -> Arc<Self> {
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
        }
    }
}

use super::bump;

/// What a connection slot does next. `Send*` states (and a queued `Free`) are in the
/// ready queue exactly once; `*Wait` states wait for a packet or a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Free,
    SynWait,
    SendAck,
    SendReq,
    ReqWait,
    SendFin,
    FinWait,
    SendLastAck,
    SendRst,
    SendUdp,
    UdpWait,
    SendEcho,
    EchoWait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Udp,
    Icmp,
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    st: St,
    kind: Kind,
    /// Client port (or ICMP id).
    sport: u16,
    /// Server address.
    server: u32,
    /// Client's next sequence number.
    seq: u32,
    /// Client's next expected sequence number from the server (its ack).
    ack: u32,
    /// Rounds completed.
    round: u32,
    /// Ends with RST.
    rst: bool,
    deadline: Nanos,
}

const EMPTY_FLOW: Flow = Flow {
    st: St::Free,
    kind: Kind::Tcp,
    sport: 0,
    server: 0,
    seq: 0,
    ack: 0,
    round: 0,
    rst: false,
    deadline: 0,
};

/// What clients and servers do, derived from [`Traffic`].
#[derive(Debug, Clone)]
struct Plan {
    weights: [u32; 3],
    tcp_requests: u32,
    udp_exchanges: u32,
    request_size: usize,
    rst_one_in: u32,
    timeout_ns: u64,
    /// Established traffic: retransmit on timeout instead of abandoning; never close.
    established: bool,
    clients: u32,
    servers: u32,
    server_count: u32,
    tcp_port: u16,
    udp_port: u16,
    /// Connection limit for this queue.
    limit: Option<u64>,
    /// Lifecycle: a slot's connections reuse one tuple per protocol.
    reuse_ports: bool,
}

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

/// Range traffic of one queue: the flows steered to it, cycled.
#[derive(Debug)]
struct RangeGen {
    flows: Box<[(u32, u32, u16, u16)]>,
    next: usize,
    proto: RangeProto,
    payload_len: usize,
}

/// The clients behind the inside port, one queue.
struct ClientSim {
    q: u16,
    nq: u16,
    plan: Plan,
    flows: Box<[Flow]>,
    /// First client address of this queue.
    base: u32,
    ready: VecDeque<u32>,
    started: u64,
    conn_no: u64,
    next_port: u16,
    sweep: usize,
    payload: Box<[u8]>,
    range: Option<RangeGen>,
}

impl ClientSim {
    fn client_ip(&self, slot: usize) -> u32 {
        self.base.wrapping_add(slot as u32)
    }

    /// The spec of the next packet of slot `i` (addresses and ports from the flow).
    fn spec<'a>(&self, i: usize, f: &Flow, payload: &'a [u8]) -> PacketSpec<'a> {
        let c = ip4(self.client_ip(i));
        let s = ip4(f.server);
        let mut spec = match f.kind {
            Kind::Tcp => PacketSpec::tcp(
                SocketAddr::new(c, f.sport),
                SocketAddr::new(s, self.plan.tcp_port),
                0,
                f.seq,
                f.ack,
            ),
            Kind::Udp => PacketSpec::udp(
                SocketAddr::new(c, f.sport),
                SocketAddr::new(s, self.plan.udp_port),
            ),
            Kind::Icmp => PacketSpec::icmp_echo(c, s, 8, f.sport, f.round as u16),
        };
        spec.src_mac = CLIENT_MAC;
        spec.dst_mac = FW_INSIDE_MAC;
        spec.payload = payload;
        spec
    }

    fn set_flags(spec: &mut PacketSpec<'_>, fl: u8) {
        if let crate::packet::build::L4Spec::Tcp { ref mut flags, .. } = spec.l4 {
            *flags = fl;
        }
    }

    fn tuple_hash(&self, i: usize, kind: Kind, server: u32, sport: u16) -> u32 {
        let c = addr16(self.client_ip(i));
        let s = addr16(server);
        match kind {
            Kind::Tcp => symmetric_hash(&c, &s, sport, self.plan.tcp_port, proto::TCP),
            Kind::Udp => symmetric_hash(&c, &s, sport, self.plan.udp_port, proto::UDP),
            Kind::Icmp => symmetric_hash(&c, &s, sport, sport, proto::ICMP),
        }
    }

    /// Starts a connection in free slot `i`; false when the limit is reached.
    fn start(&mut self, i: usize, st: &QueueGenStats) -> bool {
        if self.plan.limit.is_some_and(|l| self.started >= l) {
            return false;
        }
        let n = self.conn_no;
        self.conn_no += 1;
        self.started += 1;
        bump(&st.started, 1);
        let w = self.plan.weights;
        let pick = (n % u64::from(w[0] + w[1] + w[2])) as u32;
        let kind = if pick < w[0] {
            Kind::Tcp
        } else if pick < w[0] + w[1] {
            Kind::Udp
        } else {
            Kind::Icmp
        };
        let reuse = self.plan.reuse_ports;
        let server_no = if reuse { i as u64 } else { n };
        let server = self
            .plan
            .servers
            .wrapping_add((server_no % u64::from(self.plan.server_count)) as u32);
        // A port whose tuple steers to this queue (about `nq` tries). With reuse, the
        // search starts from the same slot- and protocol-derived port every time, so it
        // finds the same port: the slot's tuple for this protocol never changes.
        if reuse {
            self.next_port = 1024 + ((i as u64 * 3 + kind as u64) * 7919 % 64_000) as u16;
        }
        let mut sport = self.next_port;
        for _ in 0..=65535u32 {
            sport = self.next_port;
            self.next_port = if self.next_port == 65535 {
                1024
            } else {
                self.next_port + 1
            };
            if queue_of(self.tuple_hash(i, kind, server, sport), self.nq) == self.q {
                break;
            }
        }
        let isn = symmetric_hash(&addr16(i as u32), &addr16(n as u32), 7, 9, 0);
        let r = self.plan.rst_one_in;
        self.flows[i] = Flow {
            st: match kind {
                Kind::Tcp => St::Free, // SYN written by the caller
                Kind::Udp => St::SendUdp,
                Kind::Icmp => St::SendEcho,
            },
            kind,
            sport,
            server,
            seq: isn,
            ack: 0,
            round: 0,
            rst: kind == Kind::Tcp && r > 0 && n % u64::from(r) == u64::from(r) - 1,
            deadline: 0,
        };
        true
    }

    fn complete(&mut self, i: usize, st: &QueueGenStats) {
        bump(&st.completed, 1);
        self.flows[i].st = St::Free;
        self.ready.push_back(i as u32);
    }

    /// Writes the next packet of slot `i` into `m`; false when there is nothing to send.
    fn emit(&mut self, i: usize, now: Nanos, m: &mut Mbuf, st: &QueueGenStats) -> bool {
        let mut fresh_tcp = false;
        if self.flows[i].st == St::Free {
            if !self.start(i, st) {
                return false;
            }
            fresh_tcp = self.flows[i].kind == Kind::Tcp;
        }
        let f = self.flows[i];
        let req = &self.payload[..self.plan.request_size];
        let (spec, next, seq_adv, requeue) = if fresh_tcp {
            let mut s = self.spec(i, &f, &[]);
            Self::set_flags(&mut s, tf::SYN);
            (s, St::SynWait, 1, false)
        } else {
            match f.st {
                St::SendAck => {
                    let mut s = self.spec(i, &f, &[]);
                    Self::set_flags(&mut s, tf::ACK);
                    (s, St::SendReq, 0, true)
                }
                St::SendReq => {
                    let mut s = self.spec(i, &f, req);
                    Self::set_flags(&mut s, tf::PSH | tf::ACK);
                    (s, St::ReqWait, req.len() as u32, false)
                }
                St::SendFin => {
                    let mut s = self.spec(i, &f, &[]);
                    Self::set_flags(&mut s, tf::FIN | tf::ACK);
                    (s, St::FinWait, 1, false)
                }
                St::SendLastAck => {
                    let mut s = self.spec(i, &f, &[]);
                    Self::set_flags(&mut s, tf::ACK);
                    (s, St::Free, 0, false)
                }
                St::SendRst => {
                    let mut s = self.spec(i, &f, &[]);
                    Self::set_flags(&mut s, tf::RST | tf::ACK);
                    (s, St::Free, 0, false)
                }
                St::SendUdp => (self.spec(i, &f, req), St::UdpWait, 0, false),
                St::SendEcho => (self.spec(i, &f, req), St::EchoWait, 0, false),
                _ => return false, // not a sending state (a stale ready entry)
            }
        };
        let Some(len) = spec.write(m.data_mut_full()) else {
            return false;
        };
        m.set_len(len);
        m.hash = self.tuple_hash(i, f.kind, f.server, f.sport);
        let fl = &mut self.flows[i];
        fl.seq = fl.seq.wrapping_add(seq_adv);
        fl.st = next;
        fl.deadline = now + self.plan.timeout_ns;
        if next == St::Free {
            if f.st == St::SendRst {
                bump(&st.reset, 1);
            }
            self.complete(i, st);
        } else if requeue {
            self.ready.push_back(i as u32);
        }
        true
    }

    /// A packet the firewall sent toward the clients.
    fn receive(&mut self, m: &Mbuf, st: &QueueGenStats) {
        bump(&st.client_received, 1);
        let Ok(Frame::Ip(p)) = parse(m.data()) else {
            bump(&st.client_unexpected, 1);
            return;
        };
        if queue_of(hash_of(&p), self.nq) != self.q {
            bump(&st.steer_mismatch, 1);
        }
        let slot = v4_dst(&p).wrapping_sub(self.base) as usize;
        let ok = slot < self.flows.len() && self.on_packet(slot, &p, st);
        if !ok {
            bump(&st.client_unexpected, 1);
        }
    }

    fn on_packet(&mut self, i: usize, p: &Parsed, st: &QueueGenStats) -> bool {
        let plan_requests = self.plan.tcp_requests;
        let exchanges = self.plan.udp_exchanges;
        let f = &mut self.flows[i];
        if v4_of(p) != f.server {
            return false;
        }
        let next = match (f.st, p.l4) {
            (St::SynWait, L4::Tcp(t))
                if t.dport == f.sport
                    && t.flags & (tf::SYN | tf::ACK | tf::RST) == tf::SYN | tf::ACK
                    && t.ack == f.seq =>
            {
                f.ack = t.seq.wrapping_add(1);
                St::SendAck
            }
            (St::ReqWait, L4::Tcp(t))
                if t.dport == f.sport && t.payload_len > 0 && t.seq == f.ack && t.ack == f.seq =>
            {
                f.ack = f.ack.wrapping_add(u32::from(t.payload_len));
                f.round = f.round.saturating_add(1);
                if f.round < plan_requests {
                    St::SendReq
                } else if f.rst {
                    St::SendRst
                } else {
                    St::SendFin
                }
            }
            (St::FinWait, L4::Tcp(t))
                if t.dport == f.sport
                    && t.flags & tf::FIN != 0
                    && t.seq == f.ack
                    && t.ack == f.seq =>
            {
                f.ack = f.ack.wrapping_add(1);
                St::SendLastAck
            }
            (St::UdpWait, L4::Udp(u)) if u.dport == f.sport => {
                f.round += 1;
                if f.round < exchanges {
                    St::SendUdp
                } else {
                    St::Free
                }
            }
            (St::EchoWait, L4::Icmp(c)) if c.ty == 0 && c.id == f.sport => {
                f.round += 1;
                St::Free
            }
            _ => return false,
        };
        if next == St::Free {
            self.complete(i, st);
        } else {
            f.st = next;
            self.ready.push_back(i as u32);
        }
        true
    }

    /// Looks at up to `budget` slots for stalled connections.
    fn sweep(&mut self, now: Nanos, budget: usize, st: &QueueGenStats) {
        let n = self.flows.len();
        for _ in 0..budget.min(n) {
            let i = self.sweep;
            self.sweep = if i + 1 == n { 0 } else { i + 1 };
            let f = &mut self.flows[i];
            let waiting = matches!(
                f.st,
                St::SynWait | St::ReqWait | St::FinWait | St::UdpWait | St::EchoWait
            );
            if !waiting || now < f.deadline {
                continue;
            }
            if self.plan.established && f.st == St::ReqWait {
                // Retransmit the unanswered segment.
                f.seq = f.seq.wrapping_sub(self.plan.request_size as u32);
                f.st = St::SendReq;
                bump(&st.retransmits, 1);
                self.ready.push_back(i as u32);
            } else {
                bump(&st.timed_out, 1);
                f.st = St::Free;
                self.ready.push_back(i as u32);
            }
        }
    }

    fn generate(
        &mut self,
        now: Nanos,
        budget: usize,
        pool: &mut MbufPool,
        out: &mut Vec<Mbuf>,
        st: &QueueGenStats,
    ) -> usize {
        if self.range.is_some() {
            return self.generate_range(budget, pool, out, st);
        }
        self.sweep(now, 64, st);
        let mut n = 0;
        while n < budget {
            let Some(i) = self.ready.pop_front() else {
                break;
            };
            let Some(mut m) = pool.get() else {
                self.ready.push_front(i);
                bump(&st.nombuf, 1);
                break;
            };
            if self.emit(i as usize, now, &mut m, st) {
                out.push(m);
                n += 1;
            } else {
                pool.put(m);
            }
        }
        n
    }

    fn generate_range(
        &mut self,
        budget: usize,
        pool: &mut MbufPool,
        out: &mut Vec<Mbuf>,
        st: &QueueGenStats,
    ) -> usize {
        let Some(r) = self.range.as_mut() else {
            return 0;
        };
        if r.flows.is_empty() {
            return 0;
        }
        let mut n = 0;
        while n < budget {
            let Some(mut m) = pool.get() else {
                bump(&st.nombuf, 1);
                break;
            };
            let (s, d, sp, dp) = r.flows[r.next];
            r.next = if r.next + 1 == r.flows.len() {
                0
            } else {
                r.next + 1
            };
            let (src, dst) = (SocketAddr::new(ip4(s), sp), SocketAddr::new(ip4(d), dp));
            let mut spec = match r.proto {
                RangeProto::Udp => PacketSpec::udp(src, dst),
                RangeProto::Tcp => PacketSpec::tcp(src, dst, tf::ACK, 1, 1),
            };
            spec.src_mac = CLIENT_MAC;
            spec.dst_mac = FW_INSIDE_MAC;
            spec.payload = &self.payload[..r.payload_len];
            match spec.write(m.data_mut_full()) {
                Some(len) => {
                    m.set_len(len);
                    let p = if r.proto == RangeProto::Udp {
                        proto::UDP
                    } else {
                        proto::TCP
                    };
                    m.hash = symmetric_hash(&addr16(s), &addr16(d), sp, dp, p);
                    out.push(m);
                    n += 1;
                }
                None => {
                    pool.put(m);
                    break;
                }
            }
        }
        n
    }
}

/// The servers behind the outside port, one queue: stateless responders.
struct ServerSim {
    q: u16,
    nq: u16,
    replies: VecDeque<Mbuf>,
    ring: usize,
    response_size: usize,
    payload: Box<[u8]>,
    /// Range traffic: servers only count what arrives.
    sink: bool,
}

impl ServerSim {
    fn receive(&mut self, mut m: Mbuf, pool: &mut MbufPool, st: &QueueGenStats) {
        bump(&st.server_received, 1);
        if self.sink {
            pool.put(m);
            return;
        }
        let p = match parse(m.data()) {
            Ok(Frame::Ip(p)) if p.family == crate::packet::Family::V4 => p,
            _ => {
                bump(&st.server_unexpected, 1);
                pool.put(m);
                return;
            }
        };
        let h = hash_of(&p);
        if queue_of(h, self.nq) != self.q {
            bump(&st.steer_mismatch, 1);
        }
        let (c, s) = (ip4(v4_of(&p)), ip4(v4_dst(&p)));
        let resp = &self.payload[..self.response_size];
        let mut spec = match p.l4 {
            L4::Tcp(t) => {
                let (cs, ss) = (SocketAddr::new(c, t.sport), SocketAddr::new(s, t.dport));
                let f = t.flags;
                if f & tf::RST != 0 {
                    pool.put(m);
                    return;
                } else if f & (tf::SYN | tf::ACK) == tf::SYN {
                    let isn = h ^ 0x5bd1_e995;
                    PacketSpec::tcp(ss, cs, tf::SYN | tf::ACK, isn, t.seq.wrapping_add(1))
                } else if t.payload_len > 0 {
                    let ack = t.seq.wrapping_add(u32::from(t.payload_len));
                    PacketSpec::tcp(ss, cs, tf::PSH | tf::ACK, t.ack, ack).payload(resp)
                } else if f & tf::FIN != 0 {
                    PacketSpec::tcp(ss, cs, tf::FIN | tf::ACK, t.ack, t.seq.wrapping_add(1))
                } else {
                    // A bare ACK (end of handshake, or the last ACK): nothing to answer.
                    pool.put(m);
                    return;
                }
            }
            L4::Udp(u) => PacketSpec::udp(SocketAddr::new(s, u.dport), SocketAddr::new(c, u.sport))
                .payload(resp),
            L4::Icmp(i) if !i.v6 && i.ty == 8 => {
                let n = (p.l4_len as usize).saturating_sub(8);
                PacketSpec::icmp_echo(s, c, 0, i.id, i.seq)
                    .payload(&self.payload[..n.min(self.payload.len())])
            }
            _ => {
                bump(&st.server_unexpected, 1);
                pool.put(m);
                return;
            }
        };
        if self.replies.len() >= self.ring {
            bump(&st.ring_full, 1);
            pool.put(m);
            return;
        }
        spec.src_mac = SERVER_MAC;
        spec.dst_mac = FW_OUTSIDE_MAC;
        match spec.write(m.data_mut_full()) {
            Some(len) => {
                m.set_len(len);
                m.hash = h;
                self.replies.push_back(m);
            }
            None => {
                bump(&st.server_unexpected, 1);
                pool.put(m);
            }
        }
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
        let Some(idx) = queue
            .checked_sub(self.first)
            .map(usize::from)
            .filter(|&i| i < self.sims.len())
        else {
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
        let Some(idx) = queue
            .checked_sub(self.first)
            .map(usize::from)
            .filter(|&i| i < self.sims.len())
        else {
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
        let share = |total: u64, q: u16| {
            total / u64::from(nq) + u64::from(u64::from(q) < total % u64::from(nq))
        };
        for q in 0..nq {
            let (plan, slots, range, response) = match &cfg.traffic {
                Traffic::Range(r) => {
                    let need = match r.proto {
                        RangeProto::Udp => UDP_HDRS,
                        RangeProto::Tcp => TCP_HDRS,
                    };
                    if r.frame_size < need || r.frame_size - need > MAX_PAYLOAD {
                        return Err(invalid(&format!(
                            "frame_size {} must be within {need}..={}",
                            r.frame_size,
                            need + MAX_PAYLOAD
                        )));
                    }
                    if r.flows == 0 {
                        return Err(invalid("flows must be at least 1"));
                    }
                    let span4 = |(a, b): (Ipv4Addr, Ipv4Addr)| {
                        let (a, b) = (u32::from(a), u32::from(b));
                        (a.min(b), b.max(a) - a.min(b) + 1)
                    };
                    let span16 =
                        |(a, b): (u16, u16)| (a.min(b), u32::from(b.max(a) - a.min(b)) + 1);
                    let (s0, sn) = span4(r.src_ip);
                    let (d0, dn) = span4(r.dst_ip);
                    let (sp0, spn) = span16(r.sport);
                    let (dp0, dpn) = span16(r.dport);
                    let p = if r.proto == RangeProto::Udp {
                        proto::UDP
                    } else {
                        proto::TCP
                    };
                    let flows: Box<[_]> = (0..r.flows)
                        .map(|i| {
                            (
                                s0.wrapping_add(i % sn),
                                d0.wrapping_add(i % dn),
                                sp0.wrapping_add((i % spn) as u16),
                                dp0.wrapping_add((i % dpn) as u16),
                            )
                        })
                        .filter(|&(s, d, sp, dp)| {
                            queue_of(symmetric_hash(&addr16(s), &addr16(d), sp, dp, p), nq) == q
                        })
                        .collect();
                    let gen = RangeGen {
                        flows,
                        next: 0,
                        proto: r.proto,
                        payload_len: r.frame_size - need,
                    };
                    let plan = Plan {
                        weights: [1, 0, 0],
                        tcp_requests: 1,
                        udp_exchanges: 1,
                        request_size: 0,
                        rst_one_in: 0,
                        timeout_ns: u64::MAX / 4,
                        established: false,
                        clients: 0,
                        servers: 0,
                        server_count: 1,
                        tcp_port: 0,
                        udp_port: 0,
                        limit: Some(0),
                        reuse_ports: false,
                    };
                    (plan, 0, Some(gen), 0)
                }
                Traffic::Lifecycle(l) => {
                    if l.concurrent == 0 || l.tcp_weight + l.udp_weight + l.icmp_weight == 0 {
                        return Err(invalid(
                            "concurrent and the sum of the weights must be at least 1",
                        ));
                    }
                    if usize::from(l.request_size) > MAX_PAYLOAD
                        || usize::from(l.response_size) > MAX_PAYLOAD
                    {
                        return Err(invalid(&format!(
                            "request_size and response_size must be at most {MAX_PAYLOAD}"
                        )));
                    }
                    if l.tcp_weight > 0 && (l.request_size == 0 || l.response_size == 0) {
                        return Err(invalid("TCP needs request_size and response_size >= 1"));
                    }
                    let per_q = l.concurrent.div_ceil(u32::from(nq));
                    let plan = Plan {
                        weights: [l.tcp_weight, l.udp_weight, l.icmp_weight],
                        tcp_requests: l.tcp_requests.max(1),
                        udp_exchanges: l.udp_exchanges.max(1),
                        request_size: usize::from(l.request_size),
                        rst_one_in: l.rst_one_in,
                        timeout_ns: l.timeout_ns,
                        established: false,
                        clients: u32::from(l.clients).wrapping_add(u32::from(q) * per_q),
                        servers: u32::from(l.servers),
                        server_count: l.server_count.max(1),
                        tcp_port: l.tcp_port,
                        udp_port: l.udp_port,
                        limit: (l.max_connections > 0).then(|| share(l.max_connections, q)),
                        reuse_ports: l.reuse_ports,
                    };
                    (plan, per_q as usize, None, usize::from(l.response_size))
                }
                Traffic::Established(e) => {
                    if e.flows == 0 {
                        return Err(invalid("flows must be at least 1"));
                    }
                    if e.frame_size <= TCP_HDRS || e.frame_size - TCP_HDRS > MAX_PAYLOAD {
                        return Err(invalid(&format!(
                            "frame_size {} must be within {}..={}",
                            e.frame_size,
                            TCP_HDRS + 1,
                            TCP_HDRS + MAX_PAYLOAD
                        )));
                    }
                    let per_q = e.flows.div_ceil(u32::from(nq));
                    let size = e.frame_size - TCP_HDRS;
                    let plan = Plan {
                        weights: [1, 0, 0],
                        tcp_requests: u32::MAX,
                        udp_exchanges: 1,
                        request_size: size,
                        rst_one_in: 0,
                        timeout_ns: e.timeout_ns,
                        established: true,
                        clients: u32::from(e.clients).wrapping_add(u32::from(q) * per_q),
                        servers: u32::from(e.servers),
                        server_count: e.server_count.max(1),
                        tcp_port: e.port,
                        udp_port: 0,
                        limit: None,
                        reuse_ports: false,
                    };
                    (plan, share(u64::from(e.flows), q) as usize, None, size)
                }
            };
            let mut ready = VecDeque::with_capacity(slots);
            ready.extend(0..slots as u32);
            clients.push(Sim::Client(Box::new(ClientSim {
                q,
                nq,
                base: plan.clients,
                plan,
                flows: vec![EMPTY_FLOW; slots].into_boxed_slice(),
                ready,
                started: 0,
                conn_no: 0,
                next_port: 1024,
                sweep: 0,
                payload: fill_pattern(MAX_PAYLOAD),
                range,
            })));
            servers.push(Sim::Server(Box::new(ServerSim {
                q,
                nq,
                replies: VecDeque::with_capacity(cfg.reply_ring.max(1)),
                ring: cfg.reply_ring.max(1),
                response_size: response,
                payload: fill_pattern(MAX_PAYLOAD),
                sink: matches!(cfg.traffic, Traffic::Range(_)),
            })));
        }
        let rate = |q: u16| {
            (cfg.rate_pps > 0).then(|| Rate {
                pps: share(cfg.rate_pps, q).max(1),
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
mod tests {
    use super::*;
    use crate::steer::frame_hash;
    use std::collections::HashMap;

    /// Checks exact TCP sequence/ack continuity per connection, both directions.
    #[derive(Default)]
    struct SeqChecker {
        /// (client addr, client port) -> (client next seq, server next seq)
        conns: HashMap<(u32, u16), (u32, u32)>,
        checked: u64,
    }

    impl SeqChecker {
        fn check(&mut self, frame: &[u8], from_client: bool) {
            let Ok(Frame::Ip(p)) = parse(frame) else {
                panic!("unparsable frame");
            };
            assert!(crate::packet::checksum::ipv4_header_ok(frame, &p));
            assert!(crate::packet::checksum::l4_ok(frame, &p), "bad L4 checksum");
            let L4::Tcp(t) = p.l4 else { return };
            let key = if from_client {
                (v4_of(&p), t.sport)
            } else {
                (v4_dst(&p), t.dport)
            };
            let adv = u32::from(t.payload_len) + u32::from(t.flags & (tf::SYN | tf::FIN) != 0);
            self.checked += 1;
            if t.flags & (tf::SYN | tf::ACK) == tf::SYN {
                assert!(from_client);
                self.conns.insert(key, (t.seq.wrapping_add(1), 0));
                return;
            }
            let e = self
                .conns
                .get_mut(&key)
                .expect("segment of an unknown connection");
            if t.flags & (tf::SYN | tf::ACK) == tf::SYN | tf::ACK {
                assert!(!from_client);
                assert_eq!(t.ack, e.0, "SYN/ACK acks the SYN");
                e.1 = t.seq.wrapping_add(1);
                return;
            }
            if from_client {
                assert_eq!((t.seq, t.ack), (e.0, e.1), "client seq/ack");
                e.0 = e.0.wrapping_add(adv);
            } else {
                assert_eq!((t.seq, t.ack), (e.1, e.0), "server seq/ack");
                e.1 = e.1.wrapping_add(adv);
            }
        }
    }

    /// Polls every queue once: inside rx -> outside tx, outside rx -> inside tx.
    /// `drop_every`: drop each n-th packet instead of forwarding (0: never).
    #[allow(clippy::too_many_arguments)]
    fn forward_once(
        ports: &mut [(PktgenPort, PktgenPort)],
        pool: &mut MbufPool,
        buf: &mut Vec<Mbuf>,
        checker: &mut SeqChecker,
        nq: u16,
        drop_every: u64,
        seen: &mut u64,
    ) -> usize {
        let mut moved = 0;
        for (q, (inside, outside)) in ports.iter_mut().enumerate() {
            let q = q as u16;
            for dir in 0..2 {
                let (rx, tx) = if dir == 0 {
                    (&mut *inside, &mut *outside)
                } else {
                    (&mut *outside, &mut *inside)
                };
                let n = rx.rx_burst(q, pool, buf, 32);
                moved += n;
                let mut i = 0;
                while i < buf.len() {
                    let m = &buf[i];
                    assert_eq!(m.hash, frame_hash(m.data()), "hash is the tuple's");
                    assert_eq!(queue_of(m.hash, nq), q, "steered to its queue");
                    assert_eq!(m.queue, q);
                    *seen += 1;
                    if drop_every > 0 && seen.is_multiple_of(drop_every) {
                        let m = buf.remove(i);
                        pool.put(m);
                        continue;
                    }
                    if drop_every == 0 {
                        checker.check(m.data(), dir == 0);
                    }
                    i += 1;
                }
                let k = buf.len();
                assert_eq!(tx.tx_burst(q, buf, pool), k);
                assert!(buf.is_empty());
            }
        }
        moved
    }

    #[test]
    fn port_pktgen_lifecycles_complete_through_a_forwarder() {
        let nq = 4;
        let cfg = PktgenConfig {
            queues: nq,
            traffic: Traffic::Lifecycle(LifecycleTraffic {
                concurrent: 64,
                tcp_weight: 6,
                udp_weight: 2,
                icmp_weight: 2,
                tcp_requests: 3,
                udp_exchanges: 2,
                rst_one_in: 4,
                max_connections: 1000,
                timeout_ns: 10_000_000_000,
                ..Default::default()
            }),
            ..Default::default()
        };
        let pair = PktgenPair::new(&cfg).unwrap();
        let stats = pair.stats();
        let mut ports = pair.into_queue_ports();
        assert_eq!(ports.len(), 4);
        assert_eq!(ports[2].0.queue_range(), 2..3);
        let mut pool = MbufPool::new(1024);
        let mut buf = Vec::with_capacity(32);
        let mut checker = SeqChecker::default();
        let mut seen = 0;
        for _ in 0..100_000 {
            if forward_once(
                &mut ports,
                &mut pool,
                &mut buf,
                &mut checker,
                nq,
                0,
                &mut seen,
            ) == 0
            {
                break;
            }
        }
        let s = stats.snapshot();
        assert_eq!(s.connections_started, 1000, "{s:?}");
        assert_eq!(s.connections_completed, 1000, "{s:?}");
        assert_eq!(s.connections_timed_out, 0, "{s:?}");
        assert!(s.connections_reset > 0, "{s:?}");
        assert_eq!(
            (s.unexpected, s.steer_mismatch, s.nombuf),
            (0, 0, 0),
            "{s:?}"
        );
        assert_eq!(s.dropped, 0, "{s:?}");
        assert_eq!(s.tx_offered, seen);
        assert!(checker.checked > 5000, "{}", checker.checked);
        for q in 0..nq {
            // Every queue did its share.
            assert_eq!(stats.queue(q).connections_completed, 250);
        }
        let inside = ports[0].0.stats();
        assert_eq!(
            inside.rx_packets,
            ports[0].0.counters().queue(0).snapshot().rx_packets
        );
        assert_eq!(pool.outstanding(), 0);
    }

    /// With `reuse_ports`, every connection of a slot reuses the slot's tuple: run
    /// through a real conntrack table, 2000 connections keep the table at most one
    /// entry per slot and protocol, every TCP connection after the first on a slot
    /// reopens the old entry (NEW again), and nothing is INVALID.
    #[test]
    fn port_pktgen_reused_ports_keep_the_table_small() {
        use crate::conntrack::{ConnTable, CtState, TrackOpts};
        let nq = 2;
        let cfg = PktgenConfig {
            queues: nq,
            traffic: Traffic::Lifecycle(LifecycleTraffic {
                concurrent: 32,
                max_connections: 2000,
                timeout_ns: 10_000_000_000,
                reuse_ports: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let pair = PktgenPair::new(&cfg).unwrap();
        let stats = pair.stats();
        let mut ports = pair.into_queue_ports();
        let mut table = ConnTable::new(4096, Default::default());
        let mut pool = MbufPool::new(1024);
        let mut buf = Vec::with_capacity(32);
        let (mut now, mut new, mut invalid, mut max_len) = (1_000_000_000u64, 0, 0, 0);
        for _ in 0..100_000 {
            let mut moved = 0;
            for (q, (inside, outside)) in ports.iter_mut().enumerate() {
                let q = q as u16;
                for dir in 0..2 {
                    let (rx, tx) = if dir == 0 {
                        (&mut *inside, &mut *outside)
                    } else {
                        (&mut *outside, &mut *inside)
                    };
                    moved += rx.rx_burst(q, &mut pool, &mut buf, 32);
                    now += 1_000;
                    for m in &buf {
                        let Ok(Frame::Ip(p)) = parse(m.data()) else {
                            panic!("pktgen sent a non-IP frame")
                        };
                        let t = table.track(m.data(), &p, now, TrackOpts::default());
                        let _ = table.confirm(&t, true, m.data(), &p, now);
                        new += u64::from(t.state == CtState::New);
                        invalid += u64::from(t.state == CtState::Invalid);
                    }
                    max_len = max_len.max(table.len());
                    tx.tx_burst(q, &mut buf, &mut pool);
                    pool.put_all(&mut buf);
                }
            }
            if moved == 0 {
                break;
            }
        }
        let s = stats.snapshot();
        assert_eq!(s.connections_completed, 2000, "{s:?}");
        assert_eq!((s.connections_timed_out, s.unexpected), (0, 0), "{s:?}");
        assert_eq!(invalid, 0);
        assert!(max_len <= 32 * 3, "table peaked at {max_len} entries");
        // TCP (8 of 10 connections) reopens: NEW once per connection, not once per slot.
        assert!(new >= 1500, "{new} NEW");
    }

    #[test]
    fn port_pktgen_drops_are_counted_and_stalled_connections_time_out() {
        let cfg = PktgenConfig {
            queues: 1,
            traffic: Traffic::Lifecycle(LifecycleTraffic {
                concurrent: 16,
                timeout_ns: 2_000_000,
                ..Default::default()
            }),
            ..Default::default()
        };
        let pair = PktgenPair::new(&cfg).unwrap();
        let stats = pair.stats();
        let mut ports = pair.into_queue_ports();
        let mut pool = MbufPool::new(256);
        let mut buf = Vec::with_capacity(32);
        let mut checker = SeqChecker::default();
        let mut seen = 0;
        let t0 = Instant::now();
        while t0.elapsed().as_millis() < 100 {
            forward_once(
                &mut ports,
                &mut pool,
                &mut buf,
                &mut checker,
                1,
                7,
                &mut seen,
            );
        }
        let s = stats.snapshot();
        assert!(s.connections_timed_out > 0, "{s:?}");
        assert!(s.connections_completed > 0, "{s:?}");
        assert!(s.dropped > 0, "{s:?}");
        assert!(s.active() <= 16, "{s:?}");
        let (inside, outside) = &mut ports[0];
        inside.drain_into(&mut pool);
        outside.drain_into(&mut pool);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn port_pktgen_established_sends_64_byte_data_both_ways() {
        let cfg = PktgenConfig {
            queues: 2,
            traffic: Traffic::Established(EstablishedTraffic {
                flows: 100,
                ..Default::default()
            }),
            ..Default::default()
        };
        let pair = PktgenPair::new(&cfg).unwrap();
        let stats = pair.stats();
        let mut ports = pair.into_queue_ports();
        let mut pool = MbufPool::new(512);
        let mut buf = Vec::with_capacity(32);
        let mut checker = SeqChecker::default();
        let mut seen = 0;
        for _ in 0..2000 {
            forward_once(
                &mut ports,
                &mut pool,
                &mut buf,
                &mut checker,
                2,
                0,
                &mut seen,
            );
        }
        let s = stats.snapshot();
        assert_eq!(s.connections_started, 100, "{s:?}");
        assert_eq!(
            (s.connections_timed_out, s.retransmits, s.unexpected),
            (0, 0, 0)
        );
        assert!(s.rx_forwarded > 20_000, "{s:?}");
        // After the handshakes, data segments are 64-byte frames.
        let mut out = Vec::with_capacity(32);
        let n = ports[0].0.rx_burst(0, &mut pool, &mut out, 32);
        assert!(n > 0);
        assert!(out.iter().all(|m| m.len() == 64));
        pool.put_all(&mut out);
    }

    #[test]
    fn port_pktgen_range_cycles_flows_steered_by_queue() {
        let cfg = PktgenConfig {
            queues: 2,
            traffic: Traffic::Range(RangeTraffic {
                flows: 500,
                frame_size: 128,
                ..Default::default()
            }),
            ..Default::default()
        };
        let pair = PktgenPair::new(&cfg).unwrap();
        let stats = pair.stats();
        let (mut inside, mut outside) = pair.into_ports();
        let mut pool = MbufPool::new(64);
        let mut out = Vec::with_capacity(32);
        let mut tuples = std::collections::HashSet::new();
        for _ in 0..100 {
            for q in inside.queue_range() {
                let n = inside.rx_burst(q, &mut pool, &mut out, 32);
                assert_eq!(n, 32);
                for m in &out {
                    assert_eq!(m.len(), 128);
                    assert_eq!(queue_of(m.hash, 2), q);
                    tuples.insert(m.data()[26..38].to_vec());
                }
                assert_eq!(outside.tx_burst(q, &mut out, &mut pool), 32);
            }
        }
        assert_eq!(tuples.len(), 500);
        let s = stats.snapshot();
        assert_eq!((s.tx_offered, s.rx_forwarded), (6400, 6400));
        assert_eq!(outside.stats().tx_packets, 6400);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn port_pktgen_rate_limit() {
        let cfg = PktgenConfig {
            queues: 1,
            traffic: Traffic::Range(RangeTraffic::default()),
            rate_pps: 20_000,
            ..Default::default()
        };
        let (mut inside, mut outside) = PktgenPair::new(&cfg).unwrap().into_ports();
        let mut pool = MbufPool::new(64);
        let mut out = Vec::with_capacity(32);
        let t0 = Instant::now();
        let mut total = 0;
        while t0.elapsed().as_millis() < 100 {
            total += inside.rx_burst(0, &mut pool, &mut out, 32);
            outside.tx_burst(0, &mut out, &mut pool);
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        // 2000 expected in 100 ms; generous bounds for a loaded machine.
        assert!((1000..=2300).contains(&total), "{total}");
    }

    #[test]
    fn port_pktgen_refuses_bad_config() {
        let mut cfg = PktgenConfig {
            queues: 0,
            ..Default::default()
        };
        assert!(PktgenPair::new(&cfg).is_err());
        cfg.queues = 1;
        cfg.traffic = Traffic::Range(RangeTraffic {
            frame_size: 20,
            ..Default::default()
        });
        let e = PktgenPair::new(&cfg).err().unwrap();
        assert!(e.to_string().contains("frame_size"), "{e}");
    }
}
