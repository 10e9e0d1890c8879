//! Tests of the generator: lifecycles through a forwarder with exact sequence checks,
//! drops and timeouts, established and range traffic, rate limit, bad configurations.

use super::*;
use crate::packet::{parse, tcp_flags as tf, Frame};
use crate::port::queue_of;
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

/// Calls `f(queue, from_inside, rx, tx)` for every queue pair and both directions:
/// inside rx -> outside tx, then outside rx -> inside tx.
fn each_direction(
    ports: &mut [(PktgenPort, PktgenPort)],
    mut f: impl FnMut(u16, bool, &mut PktgenPort, &mut PktgenPort),
) {
    for (q, (inside, outside)) in ports.iter_mut().enumerate() {
        let q = q as u16;
        f(q, true, &mut *inside, &mut *outside);
        f(q, false, &mut *outside, &mut *inside);
    }
}

/// A pktgen config of `queues` queues sending `traffic`, the rest default.
fn config(queues: u16, traffic: Traffic) -> PktgenConfig {
    PktgenConfig {
        queues,
        traffic,
        ..Default::default()
    }
}

/// A pair's queue ports behind a checking forwarder ([`Fwd::step`]), with its pool.
struct Fwd {
    stats: Arc<PktgenStats>,
    ports: Vec<(PktgenPort, PktgenPort)>,
    pool: MbufPool,
    buf: Vec<Mbuf>,
    checker: SeqChecker,
    seen: u64,
}

impl Fwd {
    fn new(cfg: &PktgenConfig, mbufs: usize) -> Fwd {
        let pair = PktgenPair::new(cfg).unwrap();
        Fwd {
            stats: pair.stats(),
            ports: pair.into_queue_ports(),
            pool: MbufPool::new(mbufs),
            buf: Vec::with_capacity(32),
            checker: SeqChecker::default(),
            seen: 0,
        }
    }
    /// Polls every queue once, forwarding what it receives ([`each_direction`]); checks
    /// each frame's hash and queue, drops every `drop_every`-th frame (0: none) and,
    /// without drops, checks TCP sequence continuity. Returns the packets moved.
    fn step(&mut self, nq: u16, drop_every: u64) -> usize {
        let (pool, buf, checker, seen) = (
            &mut self.pool,
            &mut self.buf,
            &mut self.checker,
            &mut self.seen,
        );
        let mut moved = 0;
        each_direction(&mut self.ports, |q, from_inside, rx, tx| {
            moved += rx.rx_burst(q, pool, buf, 32);
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
                    checker.check(m.data(), from_inside);
                }
                i += 1;
            }
            let k = buf.len();
            assert_eq!(tx.tx_burst(q, buf, pool), k);
            assert!(buf.is_empty());
        });
        moved
    }
}

#[test]
fn port_pktgen_lifecycles_complete_through_a_forwarder() {
    let nq = 4;
    let cfg = config(
        nq,
        Traffic::Lifecycle(LifecycleTraffic {
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
    );
    let mut fwd = Fwd::new(&cfg, 1024);
    assert_eq!(fwd.ports.len(), 4);
    assert_eq!(fwd.ports[2].0.queue_range(), 2..3);
    for _ in 0..100_000 {
        if fwd.step(nq, 0) == 0 {
            break;
        }
    }
    let Fwd {
        stats,
        ports,
        pool,
        checker,
        seen,
        ..
    } = fwd;
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
    let cfg = config(
        nq,
        Traffic::Lifecycle(LifecycleTraffic {
            concurrent: 32,
            max_connections: 2000,
            timeout_ns: 10_000_000_000,
            reuse_ports: true,
            ..Default::default()
        }),
    );
    let pair = PktgenPair::new(&cfg).unwrap();
    let stats = pair.stats();
    let mut ports = pair.into_queue_ports();
    let mut table = ConnTable::new(4096, Default::default());
    let mut pool = MbufPool::new(1024);
    let mut buf = Vec::with_capacity(32);
    let (mut now, mut new, mut invalid, mut max_len) = (1_000_000_000u64, 0, 0, 0);
    for _ in 0..100_000 {
        let mut moved = 0;
        each_direction(&mut ports, |q, _, rx, tx| {
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
        });
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
    let cfg = config(
        1,
        Traffic::Lifecycle(LifecycleTraffic {
            concurrent: 16,
            timeout_ns: 2_000_000,
            ..Default::default()
        }),
    );
    let mut fwd = Fwd::new(&cfg, 256);
    let t0 = Instant::now();
    while t0.elapsed().as_millis() < 100 {
        fwd.step(1, 7);
    }
    let Fwd {
        stats, ports, pool, ..
    } = &mut fwd;
    let s = stats.snapshot();
    assert!(s.connections_timed_out > 0, "{s:?}");
    assert!(s.connections_completed > 0, "{s:?}");
    assert!(s.dropped > 0, "{s:?}");
    assert!(s.active() <= 16, "{s:?}");
    let (inside, outside) = &mut ports[0];
    inside.drain_into(pool);
    outside.drain_into(pool);
    assert_eq!(pool.outstanding(), 0);
}

#[test]
fn port_pktgen_established_sends_64_byte_data_both_ways() {
    let cfg = config(
        2,
        Traffic::Established(EstablishedTraffic {
            flows: 100,
            ..Default::default()
        }),
    );
    let mut fwd = Fwd::new(&cfg, 512);
    for _ in 0..2000 {
        fwd.step(2, 0);
    }
    let Fwd {
        stats, ports, pool, ..
    } = &mut fwd;
    let s = stats.snapshot();
    assert_eq!(s.connections_started, 100, "{s:?}");
    assert_eq!(
        (s.connections_timed_out, s.retransmits, s.unexpected),
        (0, 0, 0)
    );
    assert!(s.rx_forwarded > 20_000, "{s:?}");
    // After the handshakes, data segments are 64-byte frames.
    let mut out = Vec::with_capacity(32);
    let n = ports[0].0.rx_burst(0, pool, &mut out, 32);
    assert!(n > 0);
    assert!(out.iter().all(|m| m.len() == 64));
    pool.put_all(&mut out);
}

#[test]
fn port_pktgen_range_cycles_flows_steered_by_queue() {
    let cfg = config(
        2,
        Traffic::Range(RangeTraffic {
            flows: 500,
            frame_size: 128,
            ..Default::default()
        }),
    );
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
        rate_pps: 20_000,
        ..config(1, Traffic::Range(RangeTraffic::default()))
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
