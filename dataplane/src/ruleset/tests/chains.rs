//! Chain semantics (`-j`, `-g`, RETURN, policies), the LOG and no-target rules, and the
//! raw table.

use super::*;

#[test]
fn ruleset_chains_jump_return_goto_policy() {
    let r = rs("*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:a - [0:0]
:b - [0:0]
:c - [0:0]
-A INPUT -p tcp -j a
-A INPUT -p udp -m udp --dport 1 -j ACCEPT
-A INPUT -p udp -m udp --dport 2 -g c
-A INPUT -p udp -m udp --dport 3 -j RETURN
-A INPUT -p udp -m udp --dport 4 -j b
-A INPUT -p udp -j REJECT --reject-with icmp-host-prohibited
-A a -p tcp -m tcp --dport 1 -j RETURN
-A a -p tcp -m tcp --dport 2 -g b
-A a -p tcp -m tcp --dport 3 -j b
-A a -p tcp -m tcp --dport 4 -j DROP
-A a -j ACCEPT
-A b -p tcp -m tcp --dport 2 -j RETURN
-A b -p tcp -m tcp --dport 3 -j RETURN
-A c -j RETURN
COMMIT
");
    let eval = |p: &Pkt| {
        let mut c = RuleCounters::for_ruleset(&r);
        r.eval_filter(FilterChain::Input, &ctx(p, ENV), &mut c, &mut |_| {})
    };
    let t = |port| tcp("10.0.0.1:9", &format!("10.0.0.2:{port}"), tcp_flags::SYN);
    let u = |port| udp("10.0.0.1:9", &format!("10.0.0.2:{port}"));
    // RETURN from a: back in INPUT, tcp matches nothing else -> policy DROP.
    assert_eq!(eval(&t(1)), Verdict::Drop);
    // goto b from a, RETURN in b goes to INPUT (a's caller), not a -> policy DROP.
    assert_eq!(eval(&t(2)), Verdict::Drop);
    // jump b from a, RETURN back into a, then "-j ACCEPT".
    assert_eq!(eval(&t(3)), Verdict::Accept);
    assert_eq!(eval(&t(4)), Verdict::Drop);
    // falls off a's other rules into ACCEPT.
    assert_eq!(eval(&t(5)), Verdict::Accept);
    assert_eq!(eval(&u(1)), Verdict::Accept);
    // goto c from INPUT: RETURN in c with an empty stack applies INPUT's policy.
    assert_eq!(eval(&u(2)), Verdict::Drop);
    // RETURN in a built-in chain applies its policy.
    assert_eq!(eval(&u(3)), Verdict::Drop);
    // b is empty for udp: falls off, back into INPUT, then REJECT.
    assert_eq!(eval(&u(4)), Verdict::Reject(RejectKind::IcmpHostProhibited));
    // counters of the policy and the rules.
    let mut c = RuleCounters::for_ruleset(&r);
    r.eval_filter(FilterChain::Input, &ctx(&u(3), ENV), &mut c, &mut |_| {});
    let input = r.builtin[2];
    assert_eq!(c.get(r.rule_count() + input).0, 1);
    assert_eq!(c.get(3).0, 1);
    assert_eq!(c.get(0).0, 0);
}

#[test]
fn ruleset_targets_log_and_none() {
    let r = filter(
        "-A FORWARD -p udp -m limit --limit 1/sec --limit-burst 1 -j LOG --log-prefix \"fw: \" --log-level info --log-tcp-options\n-A FORWARD -p udp\n-A FORWARD -j ACCEPT",
    );
    let p = udp("10.0.0.1:1", "10.0.0.2:2");
    let mut c = RuleCounters::for_ruleset(&r);
    let mut events = Vec::new();
    for _ in 0..3 {
        let v = r.eval_filter(FilterChain::Forward, &ctx(&p, ENV), &mut c, &mut |e| {
            events.push((
                e.rule_id,
                e.prefix.to_string(),
                e.level,
                e.flags,
                e.chain.to_string(),
                e.in_port.to_string(),
            ))
        });
        // LOG never decides (and its limit never limits the verdict).
        assert_eq!(v, Verdict::Accept);
    }
    assert_eq!(
        events,
        vec![(
            0,
            "fw: ".to_string(),
            6,
            2,
            "FORWARD".to_string(),
            "eth0".to_string()
        )]
    );
    assert_eq!(c.get(1).0, 3); // the target-less rule counts
    assert_eq!(c.get(2).0, 3);
}

fn raw_rs() -> Ruleset {
    rs("*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A PREROUTING -p udp -m udp --dport 53 -j CT --notrack
-A PREROUTING -p udp -j CT --helper ftp
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
-A PREROUTING -p tcp -m tcp --dport 22 -j NOTRACK
-A PREROUTING -p tcp -m tcp --dport 23 -j DROP
-A PREROUTING -p tcp -m tcp --dport 24 -j ACCEPT
-A PREROUTING -p tcp -m tcp --dport 24 -j NOTRACK
-A PREROUTING -p icmp -j LOG
-A OUTPUT -p udp -j ACCEPT
COMMIT
")
}

#[test]
fn ruleset_raw_table() {
    let r = raw_rs();
    assert!(r.raw_logs());
    let ev = |p: &Pkt, ch| {
        let mut c = RuleCounters::for_ruleset(&r);
        r.eval_raw(ch, &ctx(p, ENV), &mut c)
    };
    let pre = RawChain::Prerouting;
    let v = ev(&udp("10.0.0.1:1", "10.0.0.2:53"), pre);
    // The first CT wins; the later CT --helper does nothing.
    assert_eq!(
        v,
        RawVerdict {
            notrack: true,
            helper: None,
            drop: false
        }
    );
    let v = ev(&udp("10.0.0.1:1", "10.0.0.2:54"), pre);
    assert_eq!(
        v,
        RawVerdict {
            notrack: false,
            helper: Some(Helper::Ftp),
            drop: false
        }
    );
    let v = ev(&tcp("10.0.0.1:1", "10.0.0.2:21", tcp_flags::SYN), pre);
    assert_eq!(v.helper, Some(Helper::Ftp));
    assert!(ev(&tcp("10.0.0.1:1", "10.0.0.2:22", tcp_flags::SYN), pre).notrack);
    assert!(ev(&tcp("10.0.0.1:1", "10.0.0.2:23", tcp_flags::SYN), pre).drop);
    assert_eq!(
        ev(&tcp("10.0.0.1:1", "10.0.0.2:24", tcp_flags::SYN), pre),
        RawVerdict::default()
    );
    assert_eq!(
        ev(&tcp("10.0.0.1:1", "10.0.0.2:25", tcp_flags::SYN), pre),
        RawVerdict::default()
    );
    // OUTPUT policy DROP.
    assert!(ev(&tcp("10.0.0.1:1", "10.0.0.2:25", 0), RawChain::Output).drop);
    assert!(!ev(&udp("10.0.0.1:1", "10.0.0.2:25"), RawChain::Output).drop);
    let mut c = RuleCounters::for_ruleset(&r);
    let mut n = 0;
    r.eval_raw_log(
        pre,
        &ctx(&icmp("10.0.0.1", "10.0.0.2", 8, 0), ENV),
        &mut c,
        &mut |_| n += 1,
    );
    assert_eq!(n, 1);
}
