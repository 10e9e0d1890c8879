//! What each queue's clients and servers do: the [`Plan`], slot count, range flow list and
//! response size of one queue, derived from the configured [`Traffic`] and checked
//! (a bad configuration is an `InvalidInput` error, before anything runs).

use super::client::{Plan, RangeGen};
use super::traffic::{EstablishedTraffic, LifecycleTraffic, RangeProto, RangeTraffic, Traffic};
use super::{addr16, invalid, MAX_PAYLOAD, TCP_HDRS, UDP_HDRS};
use crate::packet::proto;
use crate::port::{queue_of, symmetric_hash};
use std::io;
use std::net::Ipv4Addr;

/// One queue's part of the traffic.
pub(super) struct QueuePlan {
    /// What the clients do.
    pub(super) plan: Plan,
    /// Connection slots of the clients.
    pub(super) slots: usize,
    /// Range traffic: the flows of this queue.
    pub(super) range: Option<RangeGen>,
    /// Response payload bytes of the servers.
    pub(super) response: usize,
}

/// Queue `q`'s share of `total` over `nq` queues (the remainder goes to the first ones).
pub(super) fn share(total: u64, q: u16, nq: u16) -> u64 {
    total / u64::from(nq) + u64::from(u64::from(q) < total % u64::from(nq))
}

/// The plan of queue `q` of `nq` for `traffic`.
pub(super) fn queue_plan(traffic: &Traffic, q: u16, nq: u16) -> io::Result<QueuePlan> {
    match traffic {
        Traffic::Range(r) => range(r, q, nq),
        Traffic::Lifecycle(l) => lifecycle(l, q, nq),
        Traffic::Established(e) => established(e, q, nq),
    }
}

/// Range traffic: the flows of the ranges that steer to queue `q`.
fn range(r: &RangeTraffic, q: u16, nq: u16) -> io::Result<QueuePlan> {
    let need = match r.proto {
        RangeProto::Udp => UDP_HDRS,
        RangeProto::Tcp | RangeProto::Syn => TCP_HDRS,
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
    let span16 = |(a, b): (u16, u16)| (a.min(b), u32::from(b.max(a) - a.min(b)) + 1);
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
    Ok(QueuePlan {
        plan,
        slots: 0,
        range: Some(gen),
        response: 0,
    })
}

/// Lifecycle traffic: queue `q`'s share of the concurrent connections.
fn lifecycle(l: &LifecycleTraffic, q: u16, nq: u16) -> io::Result<QueuePlan> {
    if l.concurrent == 0 || l.tcp_weight + l.udp_weight + l.icmp_weight == 0 {
        return Err(invalid(
            "concurrent and the sum of the weights must be at least 1",
        ));
    }
    if usize::from(l.request_size) > MAX_PAYLOAD || usize::from(l.response_size) > MAX_PAYLOAD {
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
        limit: (l.max_connections > 0).then(|| share(l.max_connections, q, nq)),
        reuse_ports: l.reuse_ports,
    };
    Ok(QueuePlan {
        plan,
        slots: per_q as usize,
        range: None,
        response: usize::from(l.response_size),
    })
}

/// Established traffic: queue `q`'s share of the flows.
fn established(e: &EstablishedTraffic, q: u16, nq: u16) -> io::Result<QueuePlan> {
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
    Ok(QueuePlan {
        plan,
        slots: share(u64::from(e.flows), q, nq) as usize,
        range: None,
        response: size,
    })
}
