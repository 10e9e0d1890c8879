//! `-m set` and `-j SET`: matching through the registry's sets, changes at runtime
//! without a reload, the refusals (unknown set, bad options) with file:line:column, and
//! the iptables-save round trip.

use super::*;
use crate::sets::SetRegistry;

fn sets() -> SetRegistry {
    let r = SetRegistry::new();
    r.restore(
        "create bl hash:ip timeout 300\nadd bl 10.0.0.1\n\
         create nets hash:net\nadd nets 10.9.0.0/16\nadd nets 10.9.9.0/24 nomatch\n\
         create svc hash:ip,port\nadd svc 10.0.0.2,tcp:80\n\
         create seen hash:ip timeout 60\ncreate c hash:ip counters\nadd c 10.0.0.1\n",
        "sets",
        0,
        false,
    )
    .unwrap();
    r
}

fn with_sets(body: &str, s: &SetRegistry) -> Result<Ruleset, RulesetError> {
    parse_ruleset_with_sets(
        &format!("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n{body}\nCOMMIT\n"),
        "rules.v4",
        None,
        s,
    )
}

fn accepts(r: &Ruleset, p: &Pkt) -> bool {
    fwd(r, p, ENV) == Verdict::Accept
}

#[test]
fn ruleset_set_match_src_dst_and_negation() {
    let s = sets();
    let r = with_sets("-A FORWARD -m set --match-set bl src -j ACCEPT", &s).unwrap();
    assert!(accepts(&r, &tcp("10.0.0.1:1", "10.0.0.2:80", 0)));
    assert!(!accepts(&r, &tcp("10.0.0.3:1", "10.0.0.1:80", 0)));
    let r = with_sets("-A FORWARD -m set ! --match-set bl dst -j ACCEPT", &s).unwrap();
    assert!(accepts(&r, &tcp("10.0.0.1:1", "10.0.0.2:80", 0)));
    assert!(!accepts(&r, &tcp("10.0.0.3:1", "10.0.0.1:80", 0)));
    let r = with_sets(
        "-A FORWARD -p tcp -m set --match-set svc dst,dst -j ACCEPT",
        &s,
    )
    .unwrap();
    assert!(accepts(&r, &tcp("10.0.0.7:1", "10.0.0.2:80", 0)));
    assert!(!accepts(&r, &tcp("10.0.0.7:1", "10.0.0.2:81", 0)));
}

#[test]
fn ruleset_set_changes_without_reload() {
    let s = sets();
    let r = with_sets("-A FORWARD -m set --match-set bl src -j ACCEPT", &s).unwrap();
    let p = tcp("10.5.5.5:1", "10.0.0.2:80", 0);
    assert!(!accepts(&r, &p));
    s.restore("add bl 10.5.5.5 timeout 10\n", "ctl", 0, false)
        .unwrap();
    assert!(
        accepts(&r, &p),
        "the same compiled ruleset sees the new element"
    );
    let late = Env {
        now: 10_000_000_001,
        ..ENV
    };
    assert_ne!(
        fwd(&r, &p, late),
        Verdict::Accept,
        "expired after its timeout"
    );
    s.restore("flush bl\n", "ctl", 0, false).unwrap();
    assert!(!accepts(&r, &tcp("10.0.0.1:1", "10.0.0.2:80", 0)));
}

#[test]
fn ruleset_set_nomatch_and_return_nomatch() {
    let s = sets();
    let r = with_sets("-A FORWARD -m set --match-set nets src -j ACCEPT", &s).unwrap();
    assert!(accepts(&r, &tcp("10.9.1.1:1", "1.1.1.1:80", 0)));
    assert!(
        !accepts(&r, &tcp("10.9.9.1:1", "1.1.1.1:80", 0)),
        "nomatch entry"
    );
    let r = with_sets(
        "-A FORWARD -m set --match-set nets src --return-nomatch -j ACCEPT",
        &s,
    )
    .unwrap();
    assert!(
        accepts(&r, &tcp("10.9.9.1:1", "1.1.1.1:80", 0)),
        "--return-nomatch"
    );
}

#[test]
fn ruleset_set_counters_options() {
    let s = sets();
    let r = with_sets(
        "-A FORWARD -m set --match-set c src --packets-gt 2 -j ACCEPT",
        &s,
    )
    .unwrap();
    let p = tcp("10.0.0.1:1", "1.1.1.1:80", 0);
    assert!(!accepts(&r, &p));
    assert!(!accepts(&r, &p));
    assert!(accepts(&r, &p), "the third packet makes the counter 3 > 2");
    let r = with_sets(
        "-A FORWARD -m set --match-set c src ! --update-counters -j ACCEPT",
        &s,
    )
    .unwrap();
    let before = s
        .get("c")
        .unwrap()
        .counters_of(&p.p, crate::sets::DimFlags { n: 1, dst: 0 }, 0);
    accepts(&r, &p);
    let after = s
        .get("c")
        .unwrap()
        .counters_of(&p.p, crate::sets::DimFlags { n: 1, dst: 0 }, 0);
    assert_eq!(before, after);
}

#[test]
fn ruleset_set_target_queues_adds_and_dels() {
    let s = sets();
    let r = with_sets(
        "-A FORWARD -p tcp --dport 22 -j SET --add-set seen src --exist --timeout 30\n\
         -A FORWARD -p tcp --dport 23 -j SET --del-set seen src\n\
         -A FORWARD -m set --match-set seen src -j ACCEPT",
        &s,
    )
    .unwrap();
    let ssh = tcp("10.7.7.7:1", "1.1.1.1:22", 0);
    assert!(!accepts(&r, &ssh), "queued, not yet applied");
    assert_eq!(s.drain(0), 1);
    assert!(accepts(&r, &ssh));
    let seen = s.get("seen").unwrap();
    let left = crate::sets::save_text_of(&seen, 0);
    assert!(left.contains("add seen 10.7.7.7 timeout 30"), "{left}");
    accepts(&r, &tcp("10.7.7.7:1", "1.1.1.1:23", 0));
    s.drain(0);
    assert!(!accepts(&r, &ssh), "deleted");
}

#[test]
fn ruleset_set_refusals() {
    let s = sets();
    let e = with_sets("-A FORWARD -m set --match-set nope src -j ACCEPT", &s).unwrap_err();
    assert_eq!((e.line, e.column), (5, 31), "{e}");
    assert!(e.message.contains("set \"nope\" does not exist"), "{e}");
    let e = with_sets("-A FORWARD -m set --match-set bl sideways -j ACCEPT", &s).unwrap_err();
    assert!(e.message.contains("bad direction"), "{e}");
    let e = with_sets("-A FORWARD -m set -j ACCEPT", &s).unwrap_err();
    assert!(e.message.contains("needs --match-set"), "{e}");
    let e = with_sets("-A FORWARD -j SET --add-set nets src --timeout 5", &s).unwrap_err();
    assert!(e.message.contains("without timeout support"), "{e}");
    let e = with_sets("-A FORWARD -j SET --exist", &s).unwrap_err();
    assert!(e.message.contains("needs --add-set or --del-set"), "{e}");
    let e = with_sets("-A FORWARD -m set --match-set bl src --update-counters", &s).unwrap_err();
    assert!(e.message.contains("only \"! --update-counters\""), "{e}");
    // Without a registry no set exists.
    let e = parse_ruleset(
        "*filter\n-A INPUT -m set --match-set bl src -j DROP\nCOMMIT\n",
        "r",
        None,
    )
    .unwrap_err();
    assert!(e.message.contains("does not exist"), "{e}");
}

#[test]
fn ruleset_set_rules_hold_their_sets() {
    let s = sets();
    let r = with_sets("-A FORWARD -m set --match-set bl src -j DROP", &s).unwrap();
    assert!(s.destroy("bl").unwrap_err().contains("in use"));
    drop(r);
    s.destroy("bl").unwrap();
}

#[test]
fn ruleset_set_save_round_trip() {
    let s = sets();
    let body = "-A FORWARD -m set ! --match-set nets src,dst --return-nomatch ! --update-counters --packets-gt 5 -j DROP\n\
                -A FORWARD -j SET --add-set seen src --del-set bl dst --exist --timeout 9";
    let r = with_sets(body, &s).unwrap();
    let dump = r.dump();
    for line in body.lines() {
        assert!(dump.contains(line.trim()), "{line}\nnot in\n{dump}");
    }
    let listing = r.listing(&[]);
    assert!(
        listing.contains("! match-set nets src,dst return-nomatch"),
        "{listing}"
    );
    assert!(listing.contains("SET "), "{listing}");
}
