//! Tests of per-connection verdict caching: exact counters, swaps, uncacheable paths,
//! per-direction entries and port keys.

use super::super::{Action, Burst, NonIpPolicy, PairMode, PairView, Pipeline, Side};
use crate::conntrack::{Config, ConnTable, CtState, Direction, EntryHandle};
use crate::packet::build::PacketSpec;
use crate::ruleset::{self, parse_ruleset, Ruleset};
use crate::worker::DropReason;

const PAIR: PairView<'static> = PairView {
    mode: PairMode::Forward,
    network: "outside",
    host: "inside",
};

fn rules(text: &str) -> Ruleset {
    parse_ruleset(text, "t.rules", None).unwrap()
}

fn pipeline(rs: &Ruleset, cache: bool) -> Pipeline {
    let mut pl = Pipeline::new(
        ConnTable::new(1024, Config::default()),
        rs,
        NonIpPolicy::PassArp,
    );
    pl.set_verdict_cache(cache);
    pl
}

/// One UDP flow: client 10.0.0.1:5000 (inside) to 10.0.0.2:53 (outside).
fn query(n: usize) -> Vec<u8> {
    let c = "10.0.0.1:5000".parse().unwrap();
    let s = "10.0.0.2:53".parse().unwrap();
    PacketSpec::udp(c, s).payload(&vec![7u8; n]).to_vec()
}

fn answer(n: usize) -> Vec<u8> {
    let c = "10.0.0.1:5000".parse().unwrap();
    let s = "10.0.0.2:53".parse().unwrap();
    PacketSpec::udp(s, c).payload(&vec![9u8; n]).to_vec()
}

/// Runs one packet; returns (action, state, dir, handle) and counts LOG events in `logs`.
fn step(
    pl: &mut Pipeline,
    rs: &Ruleset,
    pair: PairView<'_>,
    side: Side,
    frame: &[u8],
    now: u64,
    logs: &mut usize,
) -> (Action, CtState, Direction, Option<EntryHandle>) {
    let mut reply = [0u8; 2048];
    let mut log = |_e: ruleset::LogEvent<'_>| *logs += 1;
    let o = pl.process(
        &mut Burst::new(rs, pair, side, now, &mut log),
        frame,
        &mut reply,
    );
    let t = o.track.unwrap();
    (o.action, t.state, t.dir, t.handle)
}

/// The flow: a query from inside, then `n` rounds of answer + query, sizes varying.
fn flow(pl: &mut Pipeline, rs: &Ruleset, n: usize, logs: &mut usize) -> Vec<Action> {
    let mut out = vec![step(pl, rs, PAIR, Side::Host, &query(10), 1, logs).0];
    for i in 0..n {
        let now = 10 + 2 * i as u64;
        out.push(step(pl, rs, PAIR, Side::Network, &answer(20 + i), now, logs).0);
        out.push(step(pl, rs, PAIR, Side::Host, &query(30 + i), now + 1, logs).0);
    }
    out
}

const EST_ACCEPT: &str = "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p udp --dport 9999 -j DROP\n-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n-A FORWARD -i inside -m state --state NEW -j ACCEPT\nCOMMIT\n";

/// A cached flow keeps counting its rule: packets and bytes per rule equal those of
/// the same traffic with the cache off, and the cache did skip walks.
#[test]
fn cached_flow_keeps_counting_its_rule() {
    let rs = rules(EST_ACCEPT);
    let (mut on, mut off) = (pipeline(&rs, true), pipeline(&rs, false));
    let mut logs = 0;
    let a = flow(&mut on, &rs, 20, &mut logs);
    let b = flow(&mut off, &rs, 20, &mut logs);
    assert_eq!(a, b);
    assert!(a.iter().all(|x| *x == Action::Forward));
    assert_eq!(on.counters().snapshot(), off.counters().snapshot());
    assert_eq!(off.verdict_cache_hits(), 0);
    // 40 ESTABLISHED packets; the first of each direction walks, and a direction walks
    // again when its status bits change (SEEN_REPLY, ASSURED).
    assert!(on.verdict_cache_hits() >= 35, "{}", on.verdict_cache_hits());
    let est = on.counters().get(1);
    assert_eq!(
        est.0, 40,
        "the ESTABLISHED rule counts every established packet"
    );
}

/// A swap to a ruleset that drops the flow takes effect on the very next packet, with
/// or without [`Pipeline::adopt`] (a new generation, or another ruleset object).
#[test]
fn swap_to_a_dropping_ruleset_takes_effect_at_once() {
    let rs = rules(EST_ACCEPT);
    let mut pl = pipeline(&rs, true);
    let mut logs = 0;
    flow(&mut pl, &rs, 5, &mut logs);
    let hits = pl.verdict_cache_hits();
    assert!(hits > 0);
    let mut drop = rules(
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m conntrack --ctstate ESTABLISHED -j DROP\nCOMMIT\n",
    );
    drop.set_generation(2);
    pl.adopt(Some(&rs), &drop);
    let s = step(
        &mut pl,
        &drop,
        PAIR,
        Side::Network,
        &answer(5),
        100,
        &mut logs,
    );
    assert_eq!(
        (s.0, s.1),
        (Action::Drop(DropReason::Policy), CtState::Established)
    );
    assert_eq!(pl.counters().get(0).0, 1, "the DROP rule counted it");
    // Back to an accepting ruleset (generation 3): the first packet walks, then the
    // cache serves again.
    let mut again = rules(EST_ACCEPT);
    again.set_generation(3);
    pl.adopt(Some(&drop), &again);
    let before = pl.verdict_cache_hits();
    let s = step(
        &mut pl,
        &again,
        PAIR,
        Side::Network,
        &answer(5),
        101,
        &mut logs,
    );
    assert_eq!(s.0, Action::Forward);
    assert_eq!(pl.verdict_cache_hits(), before, "walked, not replayed");
    let s = step(
        &mut pl,
        &again,
        PAIR,
        Side::Network,
        &answer(5),
        102,
        &mut logs,
    );
    assert_eq!(s.0, Action::Forward);
    assert_eq!(pl.verdict_cache_hits(), before + 1);
    // A ruleset the pipeline never adopted, with the same generation (as tests hand
    // rulesets around): treated as new, nothing cached carries over.
    let mut stray = rules(
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m conntrack --ctstate ESTABLISHED -j DROP\n-A FORWARD -j DROP\nCOMMIT\n",
    );
    stray.set_generation(3);
    let s = step(
        &mut pl,
        &stray,
        PAIR,
        Side::Network,
        &answer(5),
        103,
        &mut logs,
    );
    assert_eq!(s.0, Action::Drop(DropReason::Policy));
}

/// LOG, `-m limit` or a counting rule on the path make the flow uncacheable.
#[test]
fn log_limit_or_counting_rule_on_the_path_is_not_cached() {
    for extra in [
        "-A FORWARD -j LOG --log-prefix x\n",
        "-A FORWARD -m limit --limit 1/hour --limit-burst 1 -j DROP\n",
        "-A FORWARD -p udp\n",
        "-A FORWARD -m ttl --ttl-eq 3 -j DROP\n",
    ] {
        let text = format!(
            "*filter\n:FORWARD DROP [0:0]\n{extra}-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n-A FORWARD -i inside -j ACCEPT\nCOMMIT\n"
        );
        let rs = rules(&text);
        let (mut on, mut off) = (pipeline(&rs, true), pipeline(&rs, false));
        let (mut l1, mut l2) = (0, 0);
        let a = flow(&mut on, &rs, 10, &mut l1);
        let b = flow(&mut off, &rs, 10, &mut l2);
        assert_eq!(a, b, "{extra}");
        assert_eq!(on.verdict_cache_hits(), 0, "{extra}");
        assert_eq!(l1, l2, "{extra}");
        assert_eq!(
            on.counters().snapshot(),
            off.counters().snapshot(),
            "{extra}"
        );
    }
    // A LOG rule that matches only NEW packets is off the ESTABLISHED path: cached.
    let rs = rules("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m state --state NEW -j LOG\n-A FORWARD -m state --state NEW,ESTABLISHED -j ACCEPT\nCOMMIT\n");
    let mut pl = pipeline(&rs, true);
    let mut logs = 0;
    flow(&mut pl, &rs, 10, &mut logs);
    assert_eq!(logs, 1);
    assert!(pl.verdict_cache_hits() > 0);
}

/// Each direction has its own entry: the reply direction's walk meets a LOG rule (not
/// cached) while the original direction's is cached.
#[test]
fn caching_is_per_direction() {
    let rs = rules("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -i inside -m state --state ESTABLISHED -j ACCEPT\n-A FORWARD -i outside -j LOG\n-A FORWARD -i outside -m state --state ESTABLISHED -j ACCEPT\n-A FORWARD -i inside -m state --state NEW -j ACCEPT\nCOMMIT\n");
    let (mut on, mut off) = (pipeline(&rs, true), pipeline(&rs, false));
    let (mut l1, mut l2) = (0, 0);
    let a = flow(&mut on, &rs, 10, &mut l1);
    let b = flow(&mut off, &rs, 10, &mut l2);
    assert_eq!(a, b);
    assert_eq!((l1, l2), (10, 10), "every answer logged");
    assert_eq!(on.counters().snapshot(), off.counters().snapshot());
    let h = step(&mut on, &rs, PAIR, Side::Host, &query(1), 50, &mut l1)
        .3
        .unwrap();
    assert_ne!(on.table().verdict(h, Direction::Original).epoch, 0);
    assert_eq!(on.table().verdict(h, Direction::Reply).epoch, 0);
    let hits = on.verdict_cache_hits();
    assert!((8..=10).contains(&hits), "{hits}: the queries only");
}

/// A rule with `-i` keys the cached verdict on the ports: the same connection direction
/// arriving through another port walks again (and is dropped there).
#[test]
fn interface_match_keys_on_the_ports() {
    let rs = rules("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -i inside -m state --state ESTABLISHED -j ACCEPT\n-A FORWARD -i inside -m state --state NEW -j ACCEPT\n-A FORWARD -i outside -m state --state ESTABLISHED -j ACCEPT\nCOMMIT\n");
    let mut pl = pipeline(&rs, true);
    let mut logs = 0;
    flow(&mut pl, &rs, 4, &mut logs);
    let hits = pl.verdict_cache_hits();
    assert!(hits > 0);
    let other = PairView {
        mode: PairMode::Forward,
        network: "outside",
        host: "inside2",
    };
    let s = step(&mut pl, &rs, other, Side::Host, &query(3), 60, &mut logs);
    assert_eq!(
        (s.0, s.1),
        (Action::Drop(DropReason::Policy), CtState::Established)
    );
    assert_eq!(pl.verdict_cache_hits(), hits);
    let s = step(&mut pl, &rs, PAIR, Side::Host, &query(3), 61, &mut logs);
    assert_eq!(s.0, Action::Forward);
    assert_eq!(
        pl.verdict_cache_hits(),
        hits + 1,
        "the cached entry still serves its ports"
    );
}

/// The side array is allocated (24 B a connection) only for a ruleset where the cache
/// can spare ESTABLISHED packets a walk: not where every filter chain starts with the
/// ESTABLISHED accept (the walk ends there anyway), nor with empty chains; yes where a
/// rule comes before it; and a swap to such a ruleset turns it on.
#[test]
fn cache_is_allocated_only_where_it_can_spare_a_walk() {
    let head = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n";
    let first = rules(&format!(
        "{head}-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A FORWARD -i inside -j ACCEPT\n-A INPUT -m state --state ESTABLISHED -m comment --comment x -j ACCEPT\nCOMMIT\n"
    ));
    let behind = rules(&format!(
        "{head}-A FORWARD -d 192.0.2.9 -j DROP\n\
         -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n"
    ));
    assert!(!first.verdict_cache_worth());
    assert!(!rules(&format!("{head}COMMIT\n")).verdict_cache_worth());
    assert!(behind.verdict_cache_worth());
    let mem = |rs: &Ruleset| {
        Pipeline::new(
            ConnTable::new(1024, Config::default()),
            rs,
            NonIpPolicy::PassArp,
        )
        .table()
        .memory_bytes()
    };
    assert_eq!(
        mem(&behind) - mem(&first),
        1024 * 24,
        "24 B a slot, only when worth it"
    );
    let mut pl = Pipeline::new(
        ConnTable::new(1024, Config::default()),
        &first,
        NonIpPolicy::PassArp,
    );
    let before = pl.table().memory_bytes();
    let mut next = behind.clone();
    next.set_generation(first.generation() + 1);
    pl.adopt(Some(&first), &next);
    assert_eq!(pl.table().memory_bytes() - before, 1024 * 24);
}
