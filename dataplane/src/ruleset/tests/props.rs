//! The indexed evaluator against a naive reference interpreter (proptest), and scale.

use super::*;

/// The reference: a straight linear walk of every rule with an explicit call stack.
fn reference(r: &Ruleset, base: usize, c: &PacketCtx, counters: &mut RuleCounters) -> Verdict {
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let (mut chain, mut pos) = (base, 0usize);
    let policy = |counters: &mut RuleCounters| {
        let s = &mut counters.slots[r.rule_count() + base];
        s.0 += 1;
        s.1 += c.parsed.ip_len() as u64;
        match r.chains[base].policy {
            Some(Policy::Drop) => Verdict::Drop,
            _ => Verdict::Accept,
        }
    };
    loop {
        let rules = &r.chains[chain].rules;
        if pos >= rules.len() {
            match stack.pop() {
                Some((ch, p)) => {
                    (chain, pos) = (ch, p);
                    continue;
                }
                None => return policy(counters),
            }
        }
        let rid = rules[pos] as usize;
        pos += 1;
        match r.rule_matches(&r.rules[rid].matches, c, &mut counters.limits) {
            Hit::No => continue,
            Hit::HotDrop => return Verdict::Drop,
            Hit::Yes => {}
        }
        counters.slots[rid].0 += 1;
        counters.slots[rid].1 += c.parsed.ip_len() as u64;
        match &r.rules[rid].target {
            Target::Accept => return Verdict::Accept,
            Target::Drop => return Verdict::Drop,
            Target::Reject(k) => return Verdict::Reject(*k),
            Target::Return => match stack.pop() {
                Some((ch, p)) => (chain, pos) = (ch, p),
                None => return policy(counters),
            },
            Target::Jump(t) => {
                stack.push((chain, pos));
                (chain, pos) = (*t, 0);
            }
            Target::Goto(t) => (chain, pos) = (*t, 0),
            _ => {}
        }
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn rule_strategy(chain: usize) -> impl Strategy<Value = String> {
        let proto = prop_oneof![
            Just(""),
            Just("-p tcp"),
            Just("-p udp"),
            Just("-p icmp"),
            Just("! -p tcp"),
        ];
        let extra = prop_oneof![
            Just(""),
            Just("--dport 22"),
            Just("--dport 80"),
            Just("! --dport 80"),
            Just("--dport 1000:2000"),
            Just("--dport 20:"),
            Just("-m multiport --dports 22,443,1500"),
            Just("--sport 5"),
            Just("--syn"),
        ];
        let misc = prop_oneof![
            Just(""),
            Just("-s 10.0.0.0/8"),
            Just("! -s 10.0.0.0/8"),
            Just("-s 10.1.1.1"),
            Just("-s 11.1.1.1/32"),
            Just("-s 11.1.1.0/24"),
            Just("-s 10.1.1.0/24 -d 192.168.0.1"),
            Just("-m state --state NEW"),
            Just("-m conntrack --ctstate RELATED,ESTABLISHED"),
            Just("-i eth+"),
        ];
        let mut targets = vec![
            "-j ACCEPT".to_string(),
            "-j DROP".to_string(),
            "-j REJECT".to_string(),
            "-j RETURN".to_string(),
            "".to_string(),
        ];
        for c in chain + 1..4 {
            targets.push(format!("-j c{c}"));
            targets.push(format!("-g c{c}"));
        }
        (proto, extra, misc, proptest::sample::select(targets)).prop_map(|(p, e, m, t)| {
            let e = match (p, e) {
                ("-p tcp", e) => e.to_string(),
                ("-p udp", e) if e != "--syn" => e.to_string(),
                _ => String::new(),
            };
            format!("{p} {e} {m} {t}")
        })
    }

    fn ruleset_strategy() -> impl Strategy<Value = String> {
        let chains: Vec<_> = (0..4)
            .map(|c| proptest::collection::vec(rule_strategy(c), 0..8))
            .collect();
        (chains, any::<bool>()).prop_map(|(chains, drop)| {
            let mut s = format!(
                "*filter\n:INPUT {} [0:0]\n:c1 - [0:0]\n:c2 - [0:0]\n:c3 - [0:0]\n",
                if drop { "DROP" } else { "ACCEPT" }
            );
            for (i, rules) in chains.iter().enumerate() {
                let name = if i == 0 {
                    "INPUT".to_string()
                } else {
                    format!("c{i}")
                };
                for r in rules {
                    s.push_str(&format!("-A {name} {r}\n"));
                }
            }
            s.push_str("COMMIT\n");
            s
        })
    }

    fn packet_strategy() -> impl Strategy<Value = (u8, u16, u16, bool, u8, u8)> {
        (
            0u8..3,
            prop_oneof![
                Just(22u16),
                Just(80),
                Just(443),
                Just(1500),
                Just(5),
                Just(19),
                Just(20),
                Just(2000),
                Just(2001)
            ],
            prop_oneof![Just(5u16), Just(40000)],
            any::<bool>(),
            0u8..3,
            any::<u8>(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn ruleset_index_matches_reference(text in ruleset_strategy(), pkts in proptest::collection::vec(packet_strategy(), 1..8)) {
            let r = rs(&text);
            let mut c1 = RuleCounters::for_ruleset(&r);
            let mut c2 = RuleCounters::for_ruleset(&r);
            for (proto, dport, sport, src10, st, flags) in pkts {
                let src = if src10 { "10.1.1.1" } else { "11.1.1.1" };
                let p = match proto {
                    0 => mk(PacketSpec::tcp(sa(&format!("{src}:{sport}")), sa(&format!("192.168.0.1:{dport}")), flags, 1, 2)),
                    1 => udp(&format!("{src}:{sport}"), &format!("192.168.0.1:{dport}")),
                    _ => icmp(src, "192.168.0.1", 8, 0),
                };
                let state = [CtState::New, CtState::Established, CtState::Invalid][st as usize];
                let e = Env { state, ..ENV };
                let a = r.eval_filter(FilterChain::Input, &ctx(&p, e), &mut c1, &mut |_| {});
                let b = reference(&r, r.builtin[2], &ctx(&p, e), &mut c2);
                prop_assert_eq!(a, b, "{}", text);
            }
            prop_assert_eq!(c1.snapshot(), c2.snapshot());
        }

        /// Swapping rulesets while packets are evaluated (the worker's way: one
        /// `ArcSwap` load per burst) never yields a verdict that neither the old nor the
        /// new ruleset gives.
        #[test]
        fn ruleset_swap_never_mixes(a in ruleset_strategy(), b in ruleset_strategy(),
                                    pkts in proptest::collection::vec(packet_strategy(), 1..6)) {
            let ra = std::sync::Arc::new(rs(&a));
            let rb = std::sync::Arc::new(rs(&b));
            let frames: Vec<Pkt> = pkts
                .iter()
                .map(|&(proto, dport, sport, _, _, flags)| match proto {
                    0 => mk(PacketSpec::tcp(sa(&format!("10.1.1.1:{sport}")), sa(&format!("192.168.0.1:{dport}")), flags, 1, 2)),
                    1 => udp(&format!("10.1.1.1:{sport}"), &format!("192.168.0.1:{dport}")),
                    _ => icmp("10.1.1.1", "192.168.0.1", 8, 0),
                })
                .collect();
            let states: Vec<CtState> = pkts.iter().map(|p| [CtState::New, CtState::Established, CtState::Invalid][p.4 as usize]).collect();
            // The verdicts each ruleset alone gives.
            let alone = |r: &Ruleset| -> Vec<Verdict> {
                let mut c = RuleCounters::for_ruleset(r);
                frames.iter().zip(&states).map(|(p, &state)| {
                    r.eval_filter(FilterChain::Input, &ctx(p, Env { state, ..ENV }), &mut c, &mut |_| {})
                }).collect()
            };
            let (va, vb) = (alone(&ra), alone(&rb));
            let current = std::sync::Arc::new(arc_swap::ArcSwap::new(ra.clone()));
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let swapper = {
                let (current, stop, ra, rb) = (current.clone(), stop.clone(), ra.clone(), rb.clone());
                std::thread::spawn(move || {
                    let mut flip = false;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        current.store(if flip { ra.clone() } else { rb.clone() });
                        flip = !flip;
                        std::thread::yield_now();
                    }
                })
            };
            for _ in 0..200 {
                // One burst: one load, every packet judged by that ruleset.
                let r = current.load_full();
                let mut c = RuleCounters::for_ruleset(&r);
                let mut got = Vec::with_capacity(frames.len());
                for (p, &state) in frames.iter().zip(&states) {
                    got.push(r.eval_filter(FilterChain::Input, &ctx(p, Env { state, ..ENV }), &mut c, &mut |_| {}));
                }
                for (i, v) in got.iter().enumerate() {
                    prop_assert!(*v == va[i] || *v == vb[i], "verdict {:?} for packet {} is neither old {:?} nor new {:?}", v, i, va[i], vb[i]);
                }
                prop_assert!(got == va || got == vb, "a burst mixed two rulesets: {:?} vs {:?} / {:?}", got, va, vb);
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            swapper.join().unwrap();
        }
    }
}

fn big_ruleset(n: usize) -> String {
    let mut s =
        String::from("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    s.push_str("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    for i in 0..n {
        let net = format!("10.{}.{}.0/24", (i >> 8) & 255, i & 255);
        match i % 4 {
            0 => s.push_str(&format!(
                "-A FORWARD -s {net} -p tcp -m tcp --dport {} -j ACCEPT\n",
                1000 + i % 20000
            )),
            1 => s.push_str(&format!(
                "-A FORWARD -d {net} -p udp -m udp --dport {} -j DROP\n",
                1000 + i % 20000
            )),
            2 => s.push_str(&format!(
                "-A FORWARD -s {net} -p tcp -m multiport --dports {},{} -j REJECT\n",
                1000 + i % 20000,
                30000 + i % 1000
            )),
            _ => s.push_str(&format!(
                "-A FORWARD -s {net} -p tcp -m tcp --dport {}:{} -j ACCEPT\n",
                40000 + i % 1000,
                40010 + i % 1000
            )),
        }
    }
    s.push_str("-A FORWARD -p tcp -m tcp --dport 443 -j ACCEPT\nCOMMIT\n");
    s
}

#[test]
fn ruleset_large_compiles_and_skips() {
    let text = big_ruleset(10_000);
    let t = std::time::Instant::now();
    let r = rs(&text);
    let compile = t.elapsed();
    assert_eq!(r.rule_count(), 10_002);
    let p = tcp("172.16.0.1:5000", "192.168.0.1:443", tcp_flags::SYN);
    let mut c = RuleCounters::for_ruleset(&r);
    let n = 20_000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        assert_eq!(
            r.eval_filter(FilterChain::Forward, &ctx(&p, ENV), &mut c, &mut |_| {}),
            Verdict::Accept
        );
    }
    let per = t.elapsed() / n;
    // Both ends agree with the reference.
    let mut c2 = RuleCounters::for_ruleset(&r);
    assert_eq!(
        reference(&r, r.builtin[3], &ctx(&p, ENV), &mut c2),
        Verdict::Accept
    );
    let q = tcp("10.0.4.0:5000", "192.168.0.1:1004", tcp_flags::SYN);
    assert_eq!(
        r.eval_filter(FilterChain::Forward, &ctx(&q, ENV), &mut c, &mut |_| {}),
        Verdict::Accept
    );
    assert_eq!(
        reference(&r, r.builtin[3], &ctx(&q, ENV), &mut c2),
        Verdict::Accept
    );
    eprintln!("10k rules: compile {compile:?}, {per:?} per NEW packet");
    // Generous bounds for unoptimised, shared CI machines; release numbers come from bench/.
    assert!(compile.as_millis() < 5_000);
    assert!(per.as_micros() < 200);
}

#[test]
fn ruleset_is_send_sync_and_shareable() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Ruleset>();
    check::<RuleCounters>();
    let r = std::sync::Arc::new(rs(SEED));
    let r2 = r.clone();
    let h = std::thread::spawn(move || r2.rule_count());
    assert_eq!(h.join().unwrap(), 2);
}
