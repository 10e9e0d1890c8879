//! The simulated servers behind the outside port: stateless responders.

use super::stats::QueueGenStats;
use super::{fill_pattern, hash_of, ip4, v4_dst, v4_of, FW_OUTSIDE_MAC, MAX_PAYLOAD, SERVER_MAC};
use crate::packet::build::PacketSpec;
use crate::packet::{parse, tcp_flags as tf, Frame, L4};
use crate::port::{bump, queue_of, Mbuf, MbufPool};
use std::collections::VecDeque;
use std::net::SocketAddr;

/// The servers behind the outside port, one queue: stateless responders.
pub(super) struct ServerSim {
    pub(super) q: u16,
    pub(super) nq: u16,
    pub(super) replies: VecDeque<Mbuf>,
    pub(super) ring: usize,
    pub(super) response_size: usize,
    pub(super) payload: Box<[u8]>,
    /// Range traffic: servers only count what arrives.
    pub(super) sink: bool,
}

impl ServerSim {
    /// Queue `q`'s servers: a reply ring of `reply_ring` (at least 1) buffers; `sink`
    /// (range traffic) only counts what arrives.
    pub(super) fn new(
        q: u16,
        nq: u16,
        reply_ring: usize,
        response_size: usize,
        sink: bool,
    ) -> Self {
        ServerSim {
            q,
            nq,
            replies: VecDeque::with_capacity(reply_ring.max(1)),
            ring: reply_ring.max(1),
            response_size,
            payload: fill_pattern(MAX_PAYLOAD),
            sink,
        }
    }

    pub(super) fn receive(&mut self, mut m: Mbuf, pool: &mut MbufPool, st: &QueueGenStats) {
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
