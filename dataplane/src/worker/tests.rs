//! Tests of the worker: the poll loop over in-memory ports, hand-offs between two
//! workers, and the pipeline on its own.

use super::*;
use crate::conntrack::{ConnTable, CtState, Direction};
use crate::steer::Steering;

/// Splits an IPv4 frame (no options) into fragments of `size` payload bytes (a multiple
/// of 8), each with its header checksum.
pub(super) fn fragments(frame: &[u8], size: usize) -> Vec<Vec<u8>> {
    let payload = &frame[34..];
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let n = size.min(payload.len() - off);
        let more = off + n < payload.len();
        let mut f = frame[..34].to_vec();
        f.extend_from_slice(&payload[off..off + n]);
        f[16..18].copy_from_slice(&((20 + n) as u16).to_be_bytes());
        let fo = (off / 8) as u16 | if more { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&fo.to_be_bytes());
        f[24] = 0;
        f[25] = 0;
        let c = crate::packet::checksum::fold(crate::packet::checksum::sum(&f[14..34], 0));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        out.push(f);
        off += n;
    }
    out
}

/// One frame through `pl` as a forward-mode pair whose ports are named `names`
/// (network, host), at `now`; the log events and any reply frame are thrown away.
pub(super) fn forward(
    pl: &mut Pipeline,
    rs: &Ruleset,
    names: (&str, &str),
    side: Side,
    now: u64,
    frame: &[u8],
) -> Outcome {
    let view = PairView {
        mode: PairMode::Forward,
        network: names.0,
        host: names.1,
    };
    let mut log = |_: ruleset::LogEvent<'_>| {};
    let mut reply = vec![0u8; 2048];
    pl.process(
        &mut Burst::new(rs, view, side, now, &mut log),
        frame,
        &mut reply,
    )
}

mod poll {
    use super::*;
    use crate::conntrack::Config;
    use crate::packet::build::PacketSpec;
    use crate::port::{PortCounters, PortStats};
    use crate::steer::owner_hash;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    type Queues = Arc<Mutex<Vec<VecDeque<Vec<u8>>>>>;

    /// An in-memory port handle serving one queue: frames pushed into `rx[q]` are
    /// received; transmitted frames are appended to `tx[q]`.
    struct MemPort {
        rx: Queues,
        tx: Queues,
        counters: Arc<PortCounters>,
        steering: Option<Steering>,
    }

    impl Port for MemPort {
        fn name(&self) -> &str {
            "mem"
        }
        fn rx_burst(
            &mut self,
            q: u16,
            pool: &mut MbufPool,
            out: &mut Vec<Mbuf>,
            max: usize,
        ) -> usize {
            let mut rx = self.rx.lock().unwrap();
            let mut n = 0;
            while n < max {
                let Some(f) = rx[q as usize].front() else {
                    break;
                };
                let Some(mut m) = pool.get() else { break };
                m.copy_from(f);
                rx[q as usize].pop_front();
                out.push(m);
                n += 1;
            }
            n
        }
        fn tx_burst(&mut self, q: u16, pkts: &mut Vec<Mbuf>, pool: &mut MbufPool) -> usize {
            let mut tx = self.tx.lock().unwrap();
            let n = pkts.len();
            for m in pkts.drain(..) {
                tx[q as usize].push_back(m.data().to_vec());
                pool.put(m);
            }
            n
        }
        fn stats(&self) -> PortStats {
            PortStats::default()
        }
        fn queues(&self) -> u16 {
            2
        }
        fn counters(&self) -> Arc<PortCounters> {
            self.counters.clone()
        }
        fn steering(&self) -> Option<Steering> {
            self.steering
        }
    }

    fn queues() -> Queues {
        Arc::new(Mutex::new(vec![VecDeque::new(), VecDeque::new()]))
    }

    fn v4(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }

    fn hash_of(f: &[u8]) -> u32 {
        match packet::parse(f).unwrap() {
            Frame::Ip(p) => owner_hash(f, &p),
            _ => unreachable!(),
        }
    }

    /// Two running workers in forward mode over in-memory ports whose steering is
    /// `steering` (None: unknown), ownership by the pktgen model; stopped on drop.
    struct TwoWorkers {
        net_rx: Queues,
        net_tx: Queues,
        host_rx: Queues,
        host_tx: Queues,
        stats: Vec<Arc<CachePadded<PublishedStats>>>,
        stop: Arc<AtomicBool>,
        threads: Vec<std::thread::JoinHandle<()>>,
    }

    impl TwoWorkers {
        fn start(steering: Option<Steering>) -> Self {
            let (net_rx, net_tx, host_rx, host_tx) = (queues(), queues(), queues(), queues());
            let rs = Arc::new(ArcSwap::from_pointee(Ruleset::accept_all()));
            let stop = Arc::new(AtomicBool::new(false));
            let clock = Clock::new();
            let mut stats = Vec::new();
            let mut threads = Vec::new();
            let expect = Arc::new(crate::conntrack::ExpectTable::new());
            for (w, link) in HandoffLinks::mesh_of_depth(2, 64).into_iter().enumerate() {
                let table =
                    ConnTable::with_expectations(256, Config::default(), expect.clone(), w as u16);
                let mut pipeline = Pipeline::new(table, &rs.load(), NonIpPolicy::PassArp);
                pipeline.set_ownership(Some(Ownership {
                    me: w as u16,
                    workers: 2,
                    model: Steering::Symmetric,
                }));
                let mk = |rx: &Queues, tx: &Queues| -> Box<dyn Port> {
                    Box::new(MemPort {
                        rx: rx.clone(),
                        tx: tx.clone(),
                        counters: PortCounters::new("mem", 2),
                        steering,
                    })
                };
                let worker = Worker {
                    id: w,
                    core: None,
                    pipeline,
                    pool: MbufPool::new(64),
                    pairs: vec![PairPorts {
                        mode: PairMode::Forward,
                        network: mk(&net_rx, &net_tx),
                        host: mk(&host_rx, &host_tx),
                        queue: w as u16,
                    }],
                    pair_names: vec![("net".into(), "host".into())],
                    burst: 32,
                    ruleset: rs.clone(),
                    stats: Arc::new(CachePadded::new(PublishedStats::default())),
                    commands: Arc::new(crossbeam_queue::ArrayQueue::new(8)),
                    stop: stop.clone(),
                    clock,
                    log_events: None,
                    log_lost: Arc::new(AtomicU64::new(0)),
                    handoff: Some(link),
                };
                stats.push(worker.stats.clone());
                threads.push(std::thread::spawn(move || worker.run()));
            }
            TwoWorkers {
                net_rx,
                net_tx,
                host_rx,
                host_tx,
                stats,
                stop,
                threads,
            }
        }

        /// Packets of worker `w` in conntrack state `s`.
        fn st(&self, w: usize, s: CtState) -> u64 {
            self.stats[w].by_state[state_index(s)].load(Ordering::Relaxed)
        }

        fn handed_off(&self, w: usize) -> u64 {
            self.stats[w].handed_off.load(Ordering::Relaxed)
        }

        fn packets(&self, w: usize) -> u64 {
            self.stats[w].packets.load(Ordering::Relaxed)
        }

        fn wait(&self, what: &str, f: &dyn Fn() -> bool) {
            let t0 = std::time::Instant::now();
            while !f() {
                assert!(t0.elapsed().as_secs() < 20, "timed out waiting for {what}");
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }

    impl Drop for TwoWorkers {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }

    /// The worker owning a whole packet's connection, by the pktgen model.
    fn owner2(f: &[u8]) -> usize {
        crate::steer::queue_of(hash_of(f), 2) as usize
    }

    /// Two workers, forward mode, in-memory ports. A UDP flow goes through its owner A;
    /// an ICMP port-unreachable about it arrives on B's queue and is handed to A, where
    /// it is RELATED; an ICMP error about an unknown flow is INVALID.
    #[test]
    fn worker_icmp_error_handed_to_owner() {
        let t = TwoWorkers::start(Some(Steering::Symmetric));
        // The client behind host, the server behind net.
        let c = "10.0.0.1:40000".parse().unwrap();
        let s = "10.0.0.2:53".parse().unwrap();
        let q = PacketSpec::udp(c, s).payload(b"query").to_vec();
        let r = PacketSpec::udp(s, c).payload(b"answer").to_vec();
        let a = owner2(&q);
        let b = 1 - a;
        t.host_rx.lock().unwrap()[a].push_back(q.clone());
        t.wait("NEW", &|| t.st(a, CtState::New) == 1);
        t.net_rx.lock().unwrap()[a].push_back(r);
        t.wait("ESTABLISHED", &|| t.st(a, CtState::Established) == 1);
        // Port unreachable from the server about the client's datagram, steered (by its
        // outer tuple) to B's queue.
        let err = PacketSpec::icmp(v4("10.0.0.2"), v4("10.0.0.1"), 3, 3, [0; 4])
            .payload(&q[14..])
            .to_vec();
        assert_eq!(owner2(&err), a, "owner = the quoted flow");
        t.net_rx.lock().unwrap()[b].push_back(err);
        t.wait("RELATED", &|| t.st(a, CtState::Related) == 1);
        assert_eq!(t.st(b, CtState::Related), 0);
        assert_eq!((t.handed_off(b), t.packets(b)), (1, 0));
        // It went out of the host port on A's queue.
        t.wait("forwarding", &|| t.host_tx.lock().unwrap()[a].len() == 2);
        // An error about a flow never seen: INVALID wherever it is owned.
        let q2 = PacketSpec::udp("10.0.0.7:1".parse().unwrap(), s).to_vec();
        let err2 = PacketSpec::icmp(v4("10.0.0.2"), v4("10.0.0.7"), 3, 3, [0; 4])
            .payload(&q2[14..])
            .to_vec();
        let o2 = owner2(&err2);
        t.net_rx.lock().unwrap()[1 - o2].push_back(err2);
        t.wait("INVALID", &|| {
            t.st(0, CtState::Invalid) + t.st(1, CtState::Invalid) == 1
        });
        assert_eq!(t.st(o2, CtState::Invalid), 1);
    }

    /// Fragments are steered by addresses only, so a datagram can be reassembled on a
    /// worker that does not own its connection: that worker hands the whole train to
    /// the owner, which reassembles it again, judges it once on its shard and forwards
    /// the fragments from its own queue.
    #[test]
    fn worker_fragment_train_handed_to_owner() {
        let t = TwoWorkers::start(Some(Steering::Symmetric));
        let s = "10.0.0.2:53".parse().unwrap();
        // A client port whose flow is owned by worker 1; its fragments land on worker 0.
        let (c, q) = (1024..2048u16)
            .map(|p| {
                let c: std::net::SocketAddr = std::net::SocketAddr::new(v4("10.0.0.1"), p);
                (c, PacketSpec::udp(c, s).payload(&[7u8; 3000]).to_vec())
            })
            .find(|(_, q)| owner2(q) == 1)
            .unwrap();
        let frags = super::fragments(&q, 1480);
        assert_eq!(frags.len(), 3);
        for f in &frags {
            t.host_rx.lock().unwrap()[0].push_back(f.clone());
        }
        t.wait("the datagram judged by its owner", &|| {
            t.st(1, CtState::New) == 1
        });
        assert_eq!(t.st(0, CtState::New), 0, "never judged on the wrong shard");
        assert_eq!(t.handed_off(0), 3);
        assert_eq!((t.packets(0), t.packets(1)), (0, 3));
        // The fragments leave, in order, from the owner's queue.
        t.wait("forwarding", &|| t.net_tx.lock().unwrap()[1].len() == 3);
        assert_eq!(Vec::from(t.net_tx.lock().unwrap()[1].clone()), frags);
        assert!(t.net_tx.lock().unwrap()[0].is_empty());
        // The unfragmented answer, steered by its ports to the owner: ESTABLISHED there.
        let r = PacketSpec::udp(s, c).payload(b"ok").to_vec();
        t.net_rx.lock().unwrap()[1].push_back(r);
        t.wait("ESTABLISHED", &|| t.st(1, CtState::Established) == 1);
        assert_eq!(t.st(0, CtState::Invalid) + t.st(1, CtState::Invalid), 0);
    }

    /// A port whose steering is unknown (NIC or veth RSS) can deliver any packet to any
    /// worker: each worker checks every packet against the model and hands strays to
    /// their owner, so every connection still lives on one shard.
    #[test]
    fn worker_unknown_steering_checks_every_packet() {
        let t = TwoWorkers::start(None);
        let s = "10.0.0.2:80".parse().unwrap();
        for (done, p) in (3000..3016u16).enumerate() {
            let conns = done as u64 + 1;
            let c = std::net::SocketAddr::new(v4("10.0.0.1"), p);
            let q = PacketSpec::udp(c, s).payload(b"q").to_vec();
            let r = PacketSpec::udp(s, c).payload(b"r").to_vec();
            // Worst case: the request on one queue, the answer on the other.
            let first = (p % 2) as usize;
            t.host_rx.lock().unwrap()[first].push_back(q);
            t.wait("NEW", &|| {
                t.st(0, CtState::New) + t.st(1, CtState::New) == conns
            });
            t.net_rx.lock().unwrap()[1 - first].push_back(r);
            t.wait("ESTABLISHED", &|| {
                t.st(0, CtState::Established) + t.st(1, CtState::Established) == conns
            });
        }
        // Half of the packets arrived at the worker that does not own them.
        assert_eq!(t.handed_off(0) + t.handed_off(1), 16);
        assert_eq!(t.packets(0) + t.packets(1), 32);
        assert!(t.st(0, CtState::New) > 0 && t.st(1, CtState::New) > 0);
    }

    /// A checksum the device verified is not checked again (Linux skips `nf_checksum`
    /// for `CHECKSUM_UNNECESSARY`); without that word from the device, a corrupted
    /// checksum is INVALID.
    #[test]
    fn device_verified_checksum_is_trusted() {
        let rs = Ruleset::accept_all();
        let view = PairView {
            mode: PairMode::Forward,
            network: "net",
            host: "host",
        };
        let mut reply = [0u8; 2048];
        let mut syn = PacketSpec::tcp(
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
            crate::packet::tcp_flags::SYN,
            1,
            0,
        )
        .to_vec();
        syn[14 + 20 + 16] ^= 0xff; // the TCP checksum
        let parsed = packet::parse(&syn);
        for (verified, state) in [(false, CtState::Invalid), (true, CtState::New)] {
            let mut pl = Pipeline::new(
                ConnTable::new(64, Config::default()),
                &rs,
                NonIpPolicy::Pass,
            );
            let rx = RxMeta {
                hash: 0,
                l4_csum_ok: verified,
            };
            let o = pl.process_parsed(
                &mut Burst::new(&rs, view, Side::Host, 1, &mut |_| {}),
                &syn,
                &parsed,
                rx,
                &mut reply,
            );
            assert_eq!(
                o.track.unwrap().state,
                state,
                "verified by the device: {verified}"
            );
        }
    }

    #[test]
    fn worker_helper_drop_counted() {
        // A partial FTP command on a helper-attached control connection is dropped by
        // the pipeline with DropReason::Helper; the connection stays ESTABLISHED.
        use crate::packet::tcp_flags::{ACK, PSH, SYN};
        let rs = Ruleset::accept_all();
        let mut pl = Pipeline::new(
            ConnTable::new(64, Config::default()),
            &rs,
            NonIpPolicy::Pass,
        );
        pl.ftp_ports = vec![21];
        let c = "10.0.0.1:40021".parse().unwrap();
        let s = "10.0.0.2:21".parse().unwrap();
        let view = PairView {
            mode: PairMode::Forward,
            network: "net",
            host: "host",
        };
        let mut reply = [0u8; 2048];
        let mut run = |pl: &mut Pipeline, f: Vec<u8>| {
            pl.process(
                &mut Burst::new(&rs, view, Side::Host, 1, &mut |_| {}),
                &f,
                &mut reply,
            )
        };
        let seg = |src, dst, fl, seq, ack, d: &[u8]| {
            PacketSpec::tcp(src, dst, fl, seq, ack).payload(d).to_vec()
        };
        run(&mut pl, seg(c, s, SYN, 1000, 0, b""));
        run(&mut pl, seg(s, c, SYN | ACK, 5000, 1001, b""));
        run(&mut pl, seg(c, s, ACK, 1001, 5001, b""));
        run(&mut pl, seg(c, s, PSH | ACK, 1001, 5001, b"USER a\r\n"));
        let o = run(&mut pl, seg(c, s, PSH | ACK, 1009, 5001, b"PORT x\r\n"));
        assert_eq!(o.action, Action::Drop(DropReason::Helper));
        assert_eq!(o.track.unwrap().state, CtState::Established);
        let hi = DropReason::ALL
            .iter()
            .position(|r| *r == DropReason::Helper)
            .unwrap();
        assert_eq!(pl.stats.drops[hi], 1);
        let o = run(
            &mut pl,
            seg(c, s, PSH | ACK, 1009, 5001, b"PORT 10,0,0,1,156,64\r\n"),
        );
        assert_eq!(o.action, Action::Forward);
        assert_eq!(pl.table.expectations().len(), 1);
    }
}

mod pipeline {
    use super::*;
    use crate::conntrack::Config;
    use crate::packet::build::PacketSpec;

    fn pipeline(rules: &str) -> (Pipeline, Ruleset) {
        let rs = crate::ruleset::parse_ruleset(rules, "t.rules", None).unwrap();
        (
            Pipeline::new(
                ConnTable::new(1024, Config::default()),
                &rs,
                NonIpPolicy::PassArp,
            ),
            rs,
        )
    }

    const PAIR: PairView<'static> = PairView {
        mode: PairMode::Forward,
        network: "outside",
        host: "inside",
    };

    /// A UDP datagram of an established flow arrives in three fragments, the last one
    /// first: the first two are held, the last completes it, and the whole datagram is
    /// judged once (ESTABLISHED) and forwarded with its held fragments.
    #[test]
    fn fragmented_datagram_of_an_established_flow_passes_whole() {
        let (mut pl, rs) = pipeline(
            "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m state --state ESTABLISHED -j ACCEPT\n-A FORWARD -i inside -m state --state NEW -j ACCEPT\nCOMMIT\n",
        );
        let mut reply = [0u8; 2048];
        let mut log = |_e: ruleset::LogEvent<'_>| {};
        let c = "10.0.0.1:5000".parse().unwrap();
        let s = "10.0.0.2:53".parse().unwrap();
        let q = PacketSpec::udp(c, s).payload(b"query").to_vec();
        let o = pl.process(
            &mut Burst::new(&rs, PAIR, Side::Host, 1, &mut log),
            &q,
            &mut reply,
        );
        assert_eq!(
            (o.action, o.track.unwrap().state),
            (Action::Forward, CtState::New)
        );
        let big: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let answer = PacketSpec::udp(s, c).payload(&big).to_vec();
        let mut frags = fragments(&answer, 1480);
        assert_eq!(frags.len(), 3);
        frags.rotate_right(1); // the last fragment arrives first
        let mut held = Vec::new();
        let mut done = None;
        for (i, f) in frags.iter().enumerate() {
            let o = pl.process(
                &mut Burst::new(&rs, PAIR, Side::Network, 2 + i as u64, &mut log),
                f,
                &mut reply,
            );
            match o.action {
                Action::Held(slot) => held.push((slot, i)),
                other => done = Some((i, other, o)),
            }
        }
        let (last, action, o) = done.expect("the datagram completed");
        assert_eq!(last, 2, "the third fragment to arrive completes it");
        assert_eq!(held.len(), 2);
        assert!(
            held.iter().all(|(slot, _)| Some(*slot) == o.completes),
            "held fragments are released with it"
        );
        assert_eq!(action, Action::Forward);
        let t = o.track.unwrap();
        assert_eq!((t.state, t.dir), (CtState::Established, Direction::Reply));
        assert_eq!(
            pl.stats.by_state[state_index(CtState::Established)],
            1,
            "judged once"
        );
        // An overlapping fragment train is discarded whole.
        let mut bad = fragments(&answer, 1480);
        bad[1][20..22].copy_from_slice(&(0x2000u16 | 100).to_be_bytes()); // offset 800: overlaps the first
        bad[1][24] = 0;
        bad[1][25] = 0;
        let ck = crate::packet::checksum::fold(crate::packet::checksum::sum(&bad[1][14..34], 0));
        bad[1][24..26].copy_from_slice(&ck.to_be_bytes());
        let o0 = pl.process(
            &mut Burst::new(&rs, PAIR, Side::Network, 10, &mut log),
            &bad[0],
            &mut reply,
        );
        assert!(matches!(o0.action, Action::Held(_)));
        let o1 = pl.process(
            &mut Burst::new(&rs, PAIR, Side::Network, 11, &mut log),
            &bad[1],
            &mut reply,
        );
        assert_eq!(o1.action, Action::Drop(DropReason::Fragment));
        assert!(
            o1.discard.is_some(),
            "the held first fragment is dropped too"
        );
    }
}
