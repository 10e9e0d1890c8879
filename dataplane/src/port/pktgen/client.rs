//! The simulated clients behind the inside port: per-connection slots, the ready queue,
//! timeouts, and range traffic.

use super::stats::QueueGenStats;
use super::traffic::RangeProto;
use super::{
    addr16, fill_pattern, hash_of, ip4, v4_dst, v4_of, CLIENT_MAC, FW_INSIDE_MAC, MAX_PAYLOAD,
};
use crate::packet::build::PacketSpec;
use crate::packet::{parse, proto, tcp_flags as tf, Frame, Parsed, L4};
use crate::port::{bump, queue_of, symmetric_hash, Mbuf, MbufPool, Nanos};
use std::collections::VecDeque;
use std::net::SocketAddr;

/// What a connection slot does next. `Send*` states (and a queued `Free`) are in the
/// ready queue exactly once; `*Wait` states wait for a packet or a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum St {
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
pub(super) enum Kind {
    Tcp,
    Udp,
    Icmp,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Flow {
    pub(super) st: St,
    pub(super) kind: Kind,
    /// Client port (or ICMP id).
    pub(super) sport: u16,
    /// Server address.
    pub(super) server: u32,
    /// Client's next sequence number.
    pub(super) seq: u32,
    /// Client's next expected sequence number from the server (its ack).
    pub(super) ack: u32,
    /// Rounds completed.
    pub(super) round: u32,
    /// Ends with RST.
    pub(super) rst: bool,
    pub(super) deadline: Nanos,
}

pub(super) const EMPTY_FLOW: Flow = Flow {
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
pub(super) struct Plan {
    pub(super) weights: [u32; 3],
    pub(super) tcp_requests: u32,
    pub(super) udp_exchanges: u32,
    pub(super) request_size: usize,
    pub(super) rst_one_in: u32,
    pub(super) timeout_ns: u64,
    /// Established traffic: retransmit on timeout instead of abandoning; never close.
    pub(super) established: bool,
    pub(super) clients: u32,
    pub(super) servers: u32,
    pub(super) server_count: u32,
    pub(super) tcp_port: u16,
    pub(super) udp_port: u16,
    /// Connection limit for this queue.
    pub(super) limit: Option<u64>,
    /// Lifecycle: a slot's connections reuse one tuple per protocol.
    pub(super) reuse_ports: bool,
}

/// Range traffic of one queue: the flows steered to it, cycled.
#[derive(Debug)]
pub(super) struct RangeGen {
    pub(super) flows: Box<[(u32, u32, u16, u16)]>,
    pub(super) next: usize,
    pub(super) proto: RangeProto,
    pub(super) payload_len: usize,
}

/// The clients behind the inside port, one queue.
pub(super) struct ClientSim {
    pub(super) q: u16,
    pub(super) nq: u16,
    pub(super) plan: Plan,
    pub(super) flows: Box<[Flow]>,
    /// First client address of this queue.
    pub(super) base: u32,
    pub(super) ready: VecDeque<u32>,
    pub(super) started: u64,
    pub(super) conn_no: u64,
    pub(super) next_port: u16,
    pub(super) sweep: usize,
    pub(super) payload: Box<[u8]>,
    pub(super) range: Option<RangeGen>,
}

impl ClientSim {
    /// Queue `q`'s clients: `slots` free connection slots, all ready to start.
    pub(super) fn new(q: u16, nq: u16, plan: Plan, slots: usize, range: Option<RangeGen>) -> Self {
        let mut ready = VecDeque::with_capacity(slots);
        ready.extend(0..slots as u32);
        ClientSim {
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
        }
    }

    pub(super) fn client_ip(&self, slot: usize) -> u32 {
        self.base.wrapping_add(slot as u32)
    }

    /// The spec of the next packet of slot `i` (addresses and ports from the flow).
    pub(super) fn spec<'a>(&self, i: usize, f: &Flow, payload: &'a [u8]) -> PacketSpec<'a> {
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

    pub(super) fn set_flags(spec: &mut PacketSpec<'_>, fl: u8) {
        if let crate::packet::build::L4Spec::Tcp { ref mut flags, .. } = spec.l4 {
            *flags = fl;
        }
    }

    pub(super) fn tuple_hash(&self, i: usize, kind: Kind, server: u32, sport: u16) -> u32 {
        let c = addr16(self.client_ip(i));
        let s = addr16(server);
        match kind {
            Kind::Tcp => symmetric_hash(&c, &s, sport, self.plan.tcp_port, proto::TCP),
            Kind::Udp => symmetric_hash(&c, &s, sport, self.plan.udp_port, proto::UDP),
            Kind::Icmp => symmetric_hash(&c, &s, sport, sport, proto::ICMP),
        }
    }

    /// Starts a connection in free slot `i`; false when the limit is reached.
    pub(super) fn start(&mut self, i: usize, st: &QueueGenStats) -> bool {
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
        // The RST choice counts TCP connections only (counting all of them would never
        // pick a TCP one when `rst_one_in` is a multiple of the weights' sum).
        let tcp_index = n / u64::from(w[0] + w[1] + w[2]) * u64::from(w[0]) + u64::from(pick);
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
            rst: kind == Kind::Tcp && r > 0 && tcp_index % u64::from(r) == u64::from(r) - 1,
            deadline: 0,
        };
        true
    }

    pub(super) fn complete(&mut self, i: usize, st: &QueueGenStats) {
        bump(&st.completed, 1);
        self.flows[i].st = St::Free;
        self.ready.push_back(i as u32);
    }

    /// Writes the next packet of slot `i` into `m`; false when there is nothing to send.
    pub(super) fn emit(&mut self, i: usize, now: Nanos, m: &mut Mbuf, st: &QueueGenStats) -> bool {
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
    pub(super) fn receive(&mut self, m: &Mbuf, st: &QueueGenStats) {
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

    pub(super) fn on_packet(&mut self, i: usize, p: &Parsed, st: &QueueGenStats) -> bool {
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
    pub(super) fn sweep(&mut self, now: Nanos, budget: usize, st: &QueueGenStats) {
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

    pub(super) fn generate(
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

    pub(super) fn generate_range(
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
                RangeProto::Syn => PacketSpec::tcp(src, dst, tf::SYN, s ^ u32::from(sp), 0),
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
