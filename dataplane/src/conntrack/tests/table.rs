//! The table: entry layout, `conntrack -L` lines, INVALID reason names, the L cases of
//! `docs/CONNTRACK.md` §7 (limits, early drop, deadlines), expiry, scans, flushes and the
//! property tests.

use super::*;

// ----- layout, state table, formatting ------------------------------------------------

#[test]
fn entry_fits_one_cache_line() {
    assert!(std::mem::size_of::<crate::conntrack::table::Entry>() <= 64);
    assert_eq!(std::mem::align_of::<crate::conntrack::table::Entry>(), 64);
    assert_eq!(ENTRY_SIZE, 64);
}

#[test]
fn invalid_reasons_have_names() {
    let mut names: Vec<_> = InvalidReason::ALL.iter().map(|r| r.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), InvalidReason::ALL.len());
    assert!(InvalidReason::ALL
        .iter()
        .all(|r| r.spec_id().starts_with("INV-")));
}

#[test]
fn conntrack_lines() {
    let mut h = H::new();
    hs(&mut h);
    assert_eq!(
        h.view(&syn()).unwrap().conntrack_line(),
        "tcp      6 432000 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 \
         src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED] mark=0 use=1"
    );
    let u = udp("10.0.0.1:5353", "10.0.0.2:53");
    h.go(&u);
    assert_eq!(
        h.view(&u).unwrap().conntrack_line(),
        "udp      17 30 src=10.0.0.1 dst=10.0.0.2 sport=5353 dport=53 [UNREPLIED] \
         src=10.0.0.2 dst=10.0.0.1 sport=53 dport=5353 mark=0 use=1"
    );
    let e = echo("10.0.0.1", "10.0.0.2", 8, 7, 1);
    h.go(&e);
    h.adv(1.0);
    h.go(&echo("10.0.0.2", "10.0.0.1", 0, 7, 1));
    assert_eq!(
        h.view(&e).unwrap().conntrack_line(),
        "icmp     1 30 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 \
         src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7 mark=0 use=1"
    );
    assert_eq!(h.t.iter(h.now).count(), 3);
}

// ----- table limits -------------------------------------------------------------------

fn flow(i: u16) -> Vec<u8> {
    udp(
        &format!("10.0.{}.{}:{}", i / 250, i % 250 + 1, 1024 + i),
        US,
    )
}

/// Runs `flow(0)` .. `flow(n - 1)` through `h`; returns their results.
fn fill(h: &mut H, n: usize) -> Vec<Track> {
    (0..n as u16).map(|i| h.go(&flow(i))).collect()
}

#[test]
fn l01_early_drop_unreplied() {
    let n = 64;
    let mut h = H::sized(n);
    for t in fill(&mut h, n) {
        expect(&t, New, None);
    }
    assert_eq!(h.t.len(), n);
    let t = h.go(&flow(1000));
    expect(&t, New, None);
    assert!(!t.table_full_drop);
    assert!(h.t.stats()[CtCounter::EarlyDrop] >= 1);
    assert!(h.t.len() <= n);
    assert!(h.view(&flow(1000)).is_some());
}

#[test]
fn l02_full_of_assured_drops() {
    let n = 32;
    let mut h = H::sized(n);
    fill(&mut h, n);
    h.adv(0.5);
    for i in 0..n as u16 {
        let p = parsed(&flow(i));
        let (a, b) = (p.src, p.dst);
        let r = PacketSpec::udp(
            SocketAddr::new(packet::to_ip(p.family, &b), 53),
            SocketAddr::new(packet::to_ip(p.family, &a), 1024 + i),
        )
        .to_vec();
        h.check(&r, Est, None);
    }
    h.adv(3.0);
    for i in 0..n as u16 {
        assert!(h.go(&flow(i)).status.has(CtStatus::ASSURED));
    }
    let t = h.go(&flow(1000));
    assert!(t.table_full_drop);
    assert!(t.handle.is_none());
    assert_eq!(h.t.stats()[CtCounter::Drop], 1);
    assert_eq!(h.t.stats()[CtCounter::Invalid], 0);
    assert_eq!(h.t.len(), n);
}

#[test]
fn l03_dead_at_exactly_the_deadline() {
    for (dt, want) in [(29.99, Est), (30.0, New)] {
        let mut h = H::new();
        h.go(&udp(UC, US));
        h.go(&udp(US, UC)); // refreshed at t
        h.adv(dt);
        h.check(&udp(UC, US), want, None);
    }
}

#[test]
fn l04_dropped_first_packet_leaves_nothing() {
    let mut h = H::new();
    expect(&h.dropped(&syn()), New, None);
    assert_eq!(h.t.len(), 0);
    assert!(h.view(&syn()).is_none());
    h.check(&syn(), New, None);
    assert_eq!(h.t.len(), 1);
}

#[test]
fn expire_sweep_and_control() {
    let mut h = H::new();
    for i in 0..100u16 {
        h.go(&flow(i));
    }
    hs(&mut h);
    assert_eq!(h.t.len(), 101);
    h.adv(31.0);
    let mut reaped = 0;
    for _ in 0..1000 {
        reaped += h.t.expire(h.now, 16);
    }
    assert_eq!(reaped, 100);
    assert_eq!(h.t.len(), 1);
    assert_eq!(h.t.iter(h.now).count(), 1);
    let k = FlowKey::from_parsed(&parsed(&syn())).unwrap();
    let rk = FlowKey::from_parsed(&parsed(&tcp(S, C, ACK, 1, 1))).unwrap();
    assert_eq!(k, rk);
    assert_eq!(k.symmetric_hash(), rk.symmetric_hash());
    assert!(h.t.delete(&k));
    assert!(!h.t.delete(&k));
    h.go(&flow(1));
    h.t.flush();
    assert!(h.t.is_empty());
    assert_eq!(h.t.iter(h.now).count(), 0);
}

#[test]
fn burst_duplicate_candidates() {
    // Two SYNs of one flow in the same burst: both NEW; the second confirm clashes (TCP: drop).
    let mut h = H::new();
    let s = syn();
    let p = parsed(&s);
    let t1 = h.t.track(&s, &p, h.now, TrackOpts::default());
    let t2 = h.t.track(&s, &p, h.now, TrackOpts::default());
    assert!(h.t.confirm(&t1, true, &s, &p, h.now).is_pass());
    assert!(!h.t.confirm(&t2, true, &s, &p, h.now).is_pass());
    assert_eq!(h.t.stats()[CtCounter::InsertFailed], 1);
    // UDP: merged.
    let u = udp(UC, US);
    let p = parsed(&u);
    let t1 = h.t.track(&u, &p, h.now, TrackOpts::default());
    let t2 = h.t.track(&u, &p, h.now, TrackOpts::default());
    assert!(h.t.confirm(&t1, true, &u, &p, h.now).is_pass());
    assert!(h.t.confirm(&t2, true, &u, &p, h.now).is_pass());
    assert_eq!(h.t.len(), 2);
}

// ----- properties ---------------------------------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Op {
        kind: u8,
        src: u8,
        dst: u8,
        sport: u16,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
        dt_ms: u32,
        accept: bool,
    }

    fn op() -> impl Strategy<Value = Op> {
        (
            0u8..4,
            0u8..4,
            0u8..4,
            prop::sample::select(vec![53u16, 80, 1000]),
            prop::sample::select(vec![53u16, 80, 1000]),
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            prop_oneof![0u32..2000, 0u32..200_000],
            prop::bool::weighted(0.9),
        )
            .prop_map(
                |(kind, src, dst, sport, dport, flags, seq, ack, dt_ms, accept)| Op {
                    kind,
                    src,
                    dst,
                    sport,
                    dport,
                    flags,
                    seq,
                    ack,
                    dt_ms,
                    accept,
                },
            )
    }

    fn host(i: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, i + 1])
    }

    fn frame(o: &Op) -> Vec<u8> {
        let (s, d) = (host(o.src), host(o.dst));
        match o.kind {
            0 => PacketSpec::tcp(
                SocketAddr::new(s, o.sport),
                SocketAddr::new(d, o.dport),
                o.flags,
                o.seq,
                o.ack,
            )
            .to_vec(),
            1 => PacketSpec::udp(SocketAddr::new(s, o.sport), SocketAddr::new(d, o.dport)).to_vec(),
            2 => PacketSpec::icmp_echo(s, d, if o.flags & 1 == 0 { 8 } else { 0 }, o.sport, 0)
                .to_vec(),
            _ => PacketSpec::new(s, d, L4Spec::Raw { proto: 50 })
                .payload(&[0; 8])
                .to_vec(),
        }
    }

    fn reverse(o: &Op) -> Op {
        let mut r = o.clone();
        r.src = o.dst;
        r.dst = o.src;
        if o.kind != 2 {
            r.sport = o.dport;
            r.dport = o.sport;
        }
        r.flags = o.flags ^ 1; // echo request <-> reply for kind 2
        r
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Capacity is never exceeded; whatever iter/get return is live; an accepted
        /// UDP/ICMP/generic candidate is found from both directions right after.
        #[test]
        fn table_invariants(ops in prop::collection::vec(op(), 1..80), cap in 1usize..24) {
            let mut t = ConnTable::new(cap, Config::default());
            let mut now: Nanos = NS;
            for o in &ops {
                now += o.dt_ms as u64 * 1_000_000;
                let f = frame(o);
                let p = parsed(&f);
                let tr = t.track(&f, &p, now, TrackOpts::default());
                let ok = t.confirm(&tr, o.accept, &f, &p, now).is_pass();
                prop_assert!(t.len() <= t.capacity());
                if tr.candidate && o.accept && ok {
                    let k = FlowKey::from_parsed(&p).unwrap();
                    prop_assert!(t.get(&k, now).is_some());
                    if o.kind != 0 {
                        let r = frame(&reverse(o));
                        let rp = parsed(&r);
                        prop_assert_eq!(FlowKey::from_parsed(&rp), Some(k));
                        let rt = t.track(&r, &rp, now, TrackOpts::default());
                        prop_assert_eq!(rt.state, CtState::Established);
                        prop_assert_eq!(rt.dir, Direction::Reply);
                    }
                }
                for v in t.iter(now) {
                    prop_assert!(v.timeout_secs <= 432_000);
                    let k = if let Some((ty, code, id)) = v.orig.icmp {
                        FlowKey::icmp(v.family, v.orig.src, v.orig.dst, id, ty, code).unwrap()
                    } else {
                        FlowKey::new(v.family, v.proto, v.orig.src, v.orig.sport, v.orig.dst, v.orig.dport)
                    };
                    prop_assert!(t.get(&k, now).is_some());
                }
                prop_assert!(t.iter(now).count() <= t.len());
            }
        }

        /// A confirmed UDP flow is found from both directions until it expires, and
        /// never after.
        #[test]
        fn found_until_expiry(steps in prop::collection::vec((any::<bool>(), 0u64..40_000), 1..40)) {
            let mut t = ConnTable::new(16, Config::default());
            let q = udp(UC, US);
            let r = udp(US, UC);
            let mut now: Nanos = NS;
            let tr = t.track(&q, &parsed(&q), now, TrackOpts::default());
            prop_assert!(t.confirm(&tr, true, &q, &parsed(&q), now).is_pass());
            let mut deadline = now + 30 * NS;
            let key = FlowKey::from_parsed(&parsed(&q)).unwrap();
            let mut orig_fwd = true;
            for (fwd, dt_ms) in steps {
                now += dt_ms * 1_000_000;
                let alive = now < deadline;
                prop_assert_eq!(t.get(&key, now).is_some(), alive);
                prop_assert_eq!(t.iter(now).count(), alive as usize);
                let f = if fwd { &q } else { &r };
                let tr = t.track(f, &parsed(f), now, TrackOpts::default());
                if alive {
                    prop_assert!(tr.handle.is_some() && !tr.candidate);
                    prop_assert_eq!(tr.dir, if fwd == orig_fwd { Direction::Original } else { Direction::Reply });
                } else {
                    prop_assert_eq!(tr.state, CtState::New);
                    prop_assert!(tr.candidate);
                    orig_fwd = fwd;
                }
                prop_assert!(t.confirm(&tr, true, f, &parsed(f), now).is_pass());
                let v = t.get(&key, now).unwrap();
                deadline = now + v.timeout_secs as u64 * NS;
            }
        }

        /// track never panics on arbitrary bytes that parse.
        #[test]
        fn arbitrary_bytes_never_panic(
            proto_num in prop::sample::select(vec![1u8, 6, 17, 58, 50, 44, 0, 43, 60, 51]),
            v6 in any::<bool>(),
            body in prop::collection::vec(any::<u8>(), 0..120),
            raw in prop::collection::vec(any::<u8>(), 0..200),
            checksum in any::<bool>(),
        ) {
            let (s, d) = if v6 { (ip(C6I), ip(S6I)) } else { (ip(CI), ip(SI)) };
            let f = PacketSpec::new(s, d, L4Spec::Raw { proto: proto_num }).payload(&body).to_vec();
            let mut t = ConnTable::new(4, Config { checksum, ..Config::default() });
            for frame in [f.as_slice(), raw.as_slice()] {
                if let Ok(Frame::Ip(p)) = packet::parse(frame) {
                    for i in 0..3u64 {
                        let tr = t.track(frame, &p, NS * (1 + i), TrackOpts::default());
                        let _ = t.confirm(&tr, true, frame, &p, NS * (1 + i));
                        t.prefetch(&p);
                        let _ = ConnTable::hash_of(&p);
                    }
                }
            }
            prop_assert!(t.len() <= 4);
        }
    }
}

/// A harness holding `n` UDP flows to 10.9.9.9:53, flow `i` from
/// `<a>.<b>.<i / 200>.<i % 200 + 1>:<port + i>`.
fn udp_flows(n: u16, (a, b): (u8, u8), port: u16) -> H {
    let mut h = H::new();
    for i in 0..n {
        let src = format!("{a}.{b}.{}.{}:{}", i / 200, i % 200 + 1, port + i);
        h.go(&udp(&src, "10.9.9.9:53"));
    }
    h
}

/// A walk in bounded steps (`scan`) sees every live entry once, whatever the step size,
/// and agrees with `iter`; entries deleted mid-walk do not disturb the rest.
#[test]
fn scan_in_steps_sees_every_entry_once() {
    let mut h = udp_flows(300, (10, 0), 1000);
    let all: Vec<_> = h.t.iter(h.now).map(|e| e.handle).collect();
    assert_eq!(all.len(), 300);
    for step in [1usize, 7, 64, 1000, 100_000] {
        let mut seen = Vec::new();
        let mut cursor = Some(0);
        let mut steps = 0;
        while let Some(from) = cursor {
            cursor = h.t.scan(from, step, h.now, |e| seen.push(e.handle));
            steps += 1;
        }
        assert_eq!(seen, all, "step {step}");
        assert_eq!(steps, h.t.capacity().div_ceil(step).max(1), "step {step}");
    }
    // Deleting entries between steps (what `conntrack -D` does per step) disturbs
    // nothing: every entry is still seen once, and half of them are gone after.
    let mut seen = Vec::new();
    let mut cursor = Some(0);
    while let Some(from) = cursor {
        let mut step = Vec::new();
        cursor = h.t.scan(from, 50, h.now, |e| step.push(e));
        for (k, e) in step.iter().enumerate() {
            seen.push(e.handle);
            if k % 2 == 0 {
                let o = &e.orig;
                assert!(h.t.delete(&FlowKey::new(
                    e.family, e.proto, o.src, o.sport, o.dst, o.dport
                )));
            }
        }
    }
    assert_eq!(seen, all);
    assert!((140..=160).contains(&h.t.len()), "{}", h.t.len());
}

/// A flush in bounded steps removes every entry and counts them; the table is usable
/// afterwards.
#[test]
fn flush_in_steps_empties_the_table() {
    let mut h = udp_flows(300, (10, 1), 2000);
    assert_eq!(h.t.len(), 300);
    let (mut removed, mut cursor) = (0, Some(0));
    while let Some(from) = cursor {
        let (n, next) = h.t.flush_step(from, 7);
        removed += n;
        cursor = next;
    }
    assert_eq!((removed, h.t.len()), (300, 0));
    assert_eq!(h.t.iter(h.now).count(), 0);
    let q = udp("10.1.0.1:2000", "10.9.9.9:53");
    assert_eq!(h.go(&q).state, CtState::New, "a flushed flow starts again");
    assert_eq!(h.t.len(), 1);
}
