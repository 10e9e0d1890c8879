//! Sets: element parsing, lookups (prefixes, nomatch, timeouts), batches, the restore
//! language, swap/destroy, and the `-j SET` queue.

use super::*;
use crate::packet::build::PacketSpec;
use crate::packet::{Frame, Parsed};

const SEC: u64 = 1_000_000_000;

fn reg(text: &str) -> SetRegistry {
    let r = SetRegistry::new();
    r.restore(text, "t.save", 0, false).expect("restores");
    r
}

fn parsed(spec: PacketSpec) -> (Vec<u8>, Parsed) {
    let f = spec.to_vec();
    let Ok(Frame::Ip(p)) = crate::packet::parse(&f) else {
        panic!("test frame does not parse")
    };
    (f, p)
}

fn pkt_v4(src: &str, dst: &str, sport: u16, dport: u16) -> (Vec<u8>, Parsed) {
    let s = std::net::SocketAddr::new(src.parse().unwrap(), sport);
    let d = std::net::SocketAddr::new(dst.parse().unwrap(), dport);
    parsed(PacketSpec::tcp(s, d, 0x02, 1, 0))
}

const SRC: DimFlags = DimFlags { n: 1, dst: 0 };
const DST: DimFlags = DimFlags { n: 1, dst: 1 };

#[test]
fn hash_ip_lookup_and_timeouts() {
    let r = reg(
        "create bl hash:ip family inet hashsize 1024 maxelem 65536 timeout 300\n\
                 add bl 10.0.0.1 timeout 10\nadd bl 10.0.0.2\nadd bl 10.0.1.0/30 timeout 0\n",
    );
    let s = r.get("bl").unwrap();
    let (_, p) = pkt_v4("10.0.0.1", "192.0.2.1", 1000, 80);
    assert_eq!(s.test(&p, SRC, 0, 60, true), TestResult::Match);
    assert_eq!(s.test(&p, DST, 0, 60, true), TestResult::Miss);
    assert_eq!(
        s.test(&p, SRC, 10 * SEC, 60, true),
        TestResult::Match,
        "live at its deadline"
    );
    assert_eq!(
        s.test(&p, SRC, 10 * SEC + 1, 60, true),
        TestResult::Miss,
        "expired"
    );
    let (_, p2) = pkt_v4("10.0.0.2", "192.0.2.1", 1000, 80);
    assert_eq!(s.test(&p2, SRC, 299 * SEC, 60, true), TestResult::Match);
    assert_eq!(
        s.test(&p2, SRC, 300 * SEC + 1, 60, true),
        TestResult::Miss,
        "set default"
    );
    let (_, p3) = pkt_v4("10.0.1.3", "192.0.2.1", 1000, 80);
    assert_eq!(
        s.test(&p3, SRC, 1_000_000 * SEC, 60, true),
        TestResult::Match,
        "permanent"
    );
    assert_eq!(s.data().len(0), 6, "the /30 expands to 4 hosts");
}

#[test]
fn hash_net_longest_prefix_and_nomatch() {
    let r = reg("create nets hash:net family inet\nadd nets 10.0.0.0/8\nadd nets 10.1.0.0/16 nomatch\nadd nets 10.1.2.0/24\n");
    let s = r.get("nets").unwrap();
    let t = |a: &str| s.test(&pkt_v4(a, "192.0.2.1", 1, 2).1, SRC, 0, 0, true);
    assert_eq!(t("10.9.9.9"), TestResult::Match);
    assert_eq!(t("10.1.9.9"), TestResult::NoMatch);
    assert_eq!(t("10.1.2.9"), TestResult::Match);
    assert_eq!(t("11.0.0.1"), TestResult::Miss);
}

#[test]
fn ip_port_and_bitmap_port() {
    let r = reg(
        "create svc hash:ip,port family inet\nadd svc 192.0.2.1,tcp:80\nadd svc 192.0.2.1,udp:53\n\
                 create ports bitmap:port range 0-1024\nadd ports 20-22\n",
    );
    let svc = r.get("svc").unwrap();
    let dd = DimFlags::parse("dst,dst").unwrap();
    assert_eq!(
        svc.test(&pkt_v4("10.0.0.1", "192.0.2.1", 999, 80).1, dd, 0, 0, true),
        TestResult::Match
    );
    assert_eq!(
        svc.test(&pkt_v4("10.0.0.1", "192.0.2.1", 999, 53).1, dd, 0, 0, true),
        TestResult::Miss,
        "tcp:53 is not udp:53"
    );
    assert_eq!(
        svc.test(&pkt_v4("10.0.0.1", "192.0.2.1", 999, 80).1, DST, 0, 0, true),
        TestResult::Miss,
        "too few dimensions"
    );
    let ports = r.get("ports").unwrap();
    assert_eq!(
        ports.test(&pkt_v4("10.0.0.1", "192.0.2.1", 999, 22).1, DST, 0, 0, true),
        TestResult::Match
    );
    assert_eq!(
        ports.test(&pkt_v4("10.0.0.1", "192.0.2.1", 999, 23).1, DST, 0, 0, true),
        TestResult::Miss
    );
}

#[test]
fn ipv6_sets() {
    let r = reg("create v6 hash:net family inet6\nadd v6 2001:db8::/32\n");
    let s = r.get("v6").unwrap();
    let (_, p) = pkt_v4("2001:db8::1", "2001:db9::1", 1, 2);
    assert_eq!(s.test(&p, SRC, 0, 0, true), TestResult::Match);
    assert_eq!(s.test(&p, DST, 0, 0, true), TestResult::Miss);
    let (_, p4) = pkt_v4("10.0.0.1", "192.0.2.1", 1, 2);
    assert_eq!(
        s.test(&p4, SRC, 0, 0, true),
        TestResult::Miss,
        "family mismatch"
    );
}

#[test]
fn list_set_tries_members() {
    let r = reg("create a hash:ip\nadd a 10.0.0.1\ncreate b hash:net\nadd b 192.168.0.0/16\ncreate l list:set size 8\nadd l a\nadd l b\n");
    let l = r.get("l").unwrap();
    assert_eq!(
        l.test(&pkt_v4("192.168.3.4", "1.1.1.1", 1, 2).1, SRC, 0, 0, true),
        TestResult::Match
    );
    assert_eq!(
        l.test(&pkt_v4("10.0.0.1", "1.1.1.1", 1, 2).1, SRC, 0, 0, true),
        TestResult::Match
    );
    assert_eq!(
        l.test(&pkt_v4("10.0.0.2", "1.1.1.1", 1, 2).1, SRC, 0, 0, true),
        TestResult::Miss
    );
    assert!(
        r.destroy("a").unwrap_err().contains("in use"),
        "a list:set uses it"
    );
}

#[test]
fn restore_errors_name_line_and_option_and_change_nothing() {
    let r = SetRegistry::new();
    let e = r
        .restore(
            "create bl hash:ip\nadd bl 10.0.0.1\nadd bl 10.0.0.300\n",
            "bad.save",
            0,
            false,
        )
        .unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.to_string().starts_with("bad.save:3: add bl"), "{e}");
    assert!(
        r.get("bl").is_none(),
        "the set created by the failed text is gone"
    );
    let e = r
        .restore("create x hash:ip frobnicate 3\n", "f", 0, false)
        .unwrap_err();
    assert!(e.message.contains("unknown option \"frobnicate\""), "{e}");
    let e = r.restore("create x hash:mac\n", "f", 0, false).unwrap_err();
    assert!(e.message.contains("hash:mac"), "{e}");
    let r = reg("create bl hash:ip\n");
    let e = r
        .restore("add bl 10.0.0.1 timeout 5\n", "f", 0, false)
        .unwrap_err();
    assert!(e.message.contains("timeout support"), "{e}");
    let e = r
        .restore("add bl 10.0.0.1\nadd bl 10.0.0.1\n", "f", 0, false)
        .unwrap_err();
    assert!(e.message.contains("already"), "{e}");
    assert!(r.get("bl").unwrap().data().is_empty(0), "all or nothing");
    r.restore("add bl 10.0.0.1\nadd bl 10.0.0.1\n", "f", 0, true)
        .expect("-exist");
    let e = r.restore("del bl 10.0.0.9\n", "f", 0, false).unwrap_err();
    assert!(e.message.contains("not in the set"), "{e}");
}

#[test]
fn save_round_trips() {
    let text = "create bl hash:ip family inet hashsize 1024 maxelem 65536 timeout 300 counters\n\
                add bl 10.0.0.1 timeout 100 packets 3 bytes 180\n\
                create n hash:net,port family inet6 hashsize 1024 maxelem 65536\n\
                add n 2001:db8::/48,udp:53\nadd n 2001:db8:1::/48,tcp:80 nomatch\n";
    let r = reg(text);
    let saved = r.save(0);
    assert!(
        saved.contains("add bl 10.0.0.1 timeout 100 packets 3 bytes 180\n"),
        "{saved}"
    );
    assert!(
        saved.contains("add n 2001:db8:1::/48,tcp:80 nomatch\n"),
        "{saved}"
    );
    let r2 = SetRegistry::new();
    r2.restore(&saved, "saved", 0, false).unwrap();
    assert_eq!(r2.save(0), saved);
}

#[test]
fn swap_and_destroy() {
    let r = reg(
        "create a hash:ip\nadd a 10.0.0.1\ncreate b hash:ip\nadd b 10.0.0.2\ncreate c hash:net\n",
    );
    let a = r.get("a").unwrap();
    r.swap("a", "b").unwrap();
    let (_, p) = pkt_v4("10.0.0.2", "1.1.1.1", 1, 2);
    assert_eq!(
        a.test(&p, SRC, 0, 0, true),
        TestResult::Match,
        "a now holds b's elements"
    );
    assert!(r.swap("a", "c").unwrap_err().contains("type"));
    assert!(
        r.destroy("a").unwrap_err().contains("in use"),
        "held by `a` here, as a rule would"
    );
    drop(a);
    r.destroy("a").unwrap();
    assert!(r.get("a").is_none());
}

#[test]
fn queued_adds_from_workers_are_drained() {
    let r = reg("create seen hash:ip timeout 60\n");
    let s = r.get("seen").unwrap();
    let (_, p) = pkt_v4("10.0.0.7", "1.1.1.1", 1, 2);
    s.queue(QueuedOp {
        add: true,
        exist: false,
        timeout: Some(5),
        flags: SRC,
        fields: Fields::of(&p),
    });
    assert_eq!(
        s.test(&p, SRC, 0, 0, true),
        TestResult::Miss,
        "not yet drained"
    );
    assert_eq!(r.drain(0), 1);
    assert_eq!(s.test(&p, SRC, SEC, 0, true), TestResult::Match);
    assert_eq!(s.test(&p, SRC, 5 * SEC + 1, 0, true), TestResult::Miss);
    for _ in 0..QUEUE_CAPACITY + 3 {
        s.queue(QueuedOp {
            add: false,
            exist: false,
            timeout: None,
            flags: SRC,
            fields: Fields::of(&p),
        });
    }
    assert_eq!(s.lost.load(std::sync::atomic::Ordering::Relaxed), 3);
}

#[test]
fn counters_count_matches() {
    let r = reg("create c hash:ip counters\nadd c 10.0.0.1\n");
    let s = r.get("c").unwrap();
    let (_, p) = pkt_v4("10.0.0.1", "1.1.1.1", 1, 2);
    s.test(&p, SRC, 0, 40, true);
    s.test(&p, SRC, 0, 40, true);
    s.test(&p, SRC, 0, 40, false);
    assert_eq!(s.counters_of(&p, SRC, 0), Some((2, 80)));
}

#[test]
fn range_expansion() {
    let spec = SetOptions::new(SetType::HashNet, Family::V4).spec();
    let keys = elem::parse_elem("10.0.0.1-10.0.0.6", &spec).unwrap();
    let cidrs: Vec<_> = keys.iter().map(|k| k.cidr).collect();
    assert_eq!(cidrs, vec![32, 31, 31, 32], "1, 2-3, 4-5, 6");
}

#[test]
fn test_elem_as_ipset_test() {
    let r = reg("create n hash:net\nadd n 10.0.0.0/8\nadd n 10.1.0.0/16 nomatch\ncreate l list:set\nadd l n\n");
    let n = r.get("n").unwrap();
    assert!(n.test_elem("10.2.3.4", 0).unwrap());
    assert!(!n.test_elem("10.1.3.4", 0).unwrap(), "nomatch");
    assert!(n.test_elem("10.0.0.0/8", 0).unwrap());
    assert!(!n.test_elem("10.0.0.0/9", 0).unwrap());
    assert!(r.get("l").unwrap().test_elem("n", 0).unwrap());
}

#[test]
fn hashlimit_burst_is_shared_exactly_by_concurrent_workers() {
    use super::hashlimit::{HashlimitSpec, HashlimitTable};
    let t = std::sync::Arc::new(HashlimitTable::new("t"));
    let spec = HashlimitSpec {
        interval: 86_400 * SEC,
        burst: 100,
        above: false,
        mode: 0,
        srcmask: 0,
        dstmask: 0,
        expire: 0,
    };
    let (_, p) = pkt_v4("10.0.0.1", "1.1.1.1", 1, 2);
    let hits: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| (0..1000).filter(|_| spec.eval(&t, &p, 5 * SEC)).count()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(
        hits, 100,
        "the burst, no more and no less, over all threads"
    );
}

#[test]
fn shared_table_keeps_keys_inserted_concurrently() {
    use super::recent::{RecentCmd, RecentSpec, RecentTable};
    let t = RecentTable::new("r");
    let set = RecentSpec {
        cmd: RecentCmd::Set,
        seconds: 0,
        hitcount: 0,
        rttl: false,
        reap: false,
        dest: false,
        mask: u128::MAX,
        neg: false,
        family: Family::V4,
    };
    let check = RecentSpec {
        cmd: RecentCmd::Check,
        ..set.clone()
    };
    let pkts: Vec<_> = (0..400)
        .map(|i| {
            pkt_v4(
                &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                "1.1.1.1",
                1,
                2,
            )
            .1
        })
        .collect();
    std::thread::scope(|s| {
        for w in 0..4 {
            let (t, set, pkts) = (&t, &set, &pkts);
            s.spawn(move || {
                for p in pkts.iter().skip(w).step_by(4) {
                    assert!(set.eval(t, p, SEC));
                }
            });
        }
    });
    let found = pkts.iter().filter(|p| check.eval(&t, p, 2 * SEC)).count();
    assert_eq!(
        found, 400,
        "every address one worker set is seen by another"
    );
}

#[test]
fn destroy_all_is_all_or_nothing() {
    let r = reg("create a hash:ip\ncreate b hash:ip\n");
    let held = r.get("b").unwrap();
    let e = r.restore("destroy\n", "ctl", 0, false).unwrap_err();
    assert!(e.message.contains("\"b\" is in use"), "{e}");
    assert!(r.get("a").is_some(), "nothing destroyed");
    drop(held);
    r.restore("destroy\n", "ctl", 0, false).unwrap();
    assert!(r.all().is_empty());
}
