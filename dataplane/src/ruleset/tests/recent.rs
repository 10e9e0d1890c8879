//! `-m recent` and `-m hashlimit`: xt_recent's hit counting and expiry, the token
//! buckets, state shared by two workers' evaluations, refusals and the save text.

use super::*;

const SEC: u64 = 1_000_000_000;

fn at(now: u64) -> Env<'static> {
    Env { now, ..ENV }
}

/// Two "workers": the same ruleset, separate per-worker counters.
fn two(r: &Ruleset) -> [RuleCounters; 2] {
    [RuleCounters::for_ruleset(r), RuleCounters::for_ruleset(r)]
}

fn run(r: &Ruleset, c: &mut RuleCounters, p: &Pkt, e: Env) -> Verdict {
    r.eval_filter(FilterChain::Forward, &ctx(p, e), c, &mut |_| {})
}

const SSH: &str = "-A FORWARD -p tcp --dport 22 -m recent --set --name SSH\n\
-A FORWARD -p tcp --dport 22 -m recent --update --seconds 60 --hitcount 4 --name SSH -j DROP\n\
-A FORWARD -p tcp --dport 22 -j ACCEPT";

#[test]
fn ruleset_recent_ssh_throttle_across_workers() {
    let r = filter(SSH);
    let mut w = two(&r);
    let p = tcp("10.0.0.1:1000", "10.0.0.2:22", tcp_flags::SYN);
    let other = tcp("10.0.0.9:1000", "10.0.0.2:22", tcp_flags::SYN);
    // Hits 1..3 pass, whichever worker sees them; the 4th within 60 s drops.
    for i in 0..3 {
        assert_eq!(
            run(&r, &mut w[i % 2], &p, at(i as u64 * SEC)),
            Verdict::Accept,
            "hit {}",
            i + 1
        );
    }
    assert_eq!(run(&r, &mut w[1], &p, at(3 * SEC)), Verdict::Drop);
    assert_eq!(
        run(&r, &mut w[0], &other, at(3 * SEC)),
        Verdict::Accept,
        "per address"
    );
    // 61 s after the last burst only the new hit is recent.
    assert_eq!(run(&r, &mut w[0], &p, at(65 * SEC)), Verdict::Accept);
}

#[test]
fn ruleset_recent_rcheck_remove_and_negation() {
    let r = filter(
        "-A FORWARD -p udp -m recent --set --name K --rdest\n\
         -A FORWARD -p tcp --dport 1 -m recent --remove --name K --rdest\n\
         -A FORWARD -p tcp -m recent --rcheck --name K --rdest -j ACCEPT\n\
         -A FORWARD -p icmp -m recent ! --rcheck --name K --rdest -j ACCEPT",
    );
    let mut c = RuleCounters::for_ruleset(&r);
    let t = tcp("10.0.0.1:5", "10.0.0.7:80", tcp_flags::SYN);
    let ping = icmp("10.0.0.1", "10.0.0.7", 8, 0);
    assert_eq!(
        run(&r, &mut c, &t, ENV),
        Verdict::Drop,
        "not in the list yet"
    );
    assert_eq!(run(&r, &mut c, &ping, ENV), Verdict::Accept, "! --rcheck");
    run(&r, &mut c, &udp("10.9.9.9:5", "10.0.0.7:53"), ENV);
    assert_eq!(
        run(&r, &mut c, &t, ENV),
        Verdict::Accept,
        "the destination was set"
    );
    assert_eq!(run(&r, &mut c, &ping, ENV), Verdict::Drop);
    run(
        &r,
        &mut c,
        &tcp("10.0.0.1:5", "10.0.0.7:1", tcp_flags::SYN),
        ENV,
    );
    assert_eq!(run(&r, &mut c, &t, ENV), Verdict::Drop, "removed");
}

#[test]
fn ruleset_recent_mask_and_rttl() {
    let r = filter(
        "-A FORWARD -p udp -m recent --set --name M --mask 255.255.255.0\n\
         -A FORWARD -p tcp -m recent --rcheck --name M --mask 255.255.255.0 -j ACCEPT",
    );
    let mut c = RuleCounters::for_ruleset(&r);
    run(&r, &mut c, &udp("10.1.2.3:5", "10.0.0.7:53"), ENV);
    assert_eq!(
        run(&r, &mut c, &tcp("10.1.2.200:5", "10.0.0.7:80", 0), ENV),
        Verdict::Accept
    );
    assert_eq!(
        run(&r, &mut c, &tcp("10.1.3.1:5", "10.0.0.7:80", 0), ENV),
        Verdict::Drop
    );
    let r = filter(
        "-A FORWARD -p udp -m recent --set --name T\n\
         -A FORWARD -p tcp -m recent --rcheck --rttl --name T -j ACCEPT",
    );
    let mut c = RuleCounters::for_ruleset(&r);
    run(&r, &mut c, &udp("10.1.2.3:5", "10.0.0.7:53"), ENV);
    let mut odd = mk(PacketSpec::tcp(
        sa("10.1.2.3:5"),
        sa("10.0.0.7:80"),
        0,
        1,
        0,
    ));
    odd.p.ttl = 3;
    assert_eq!(
        run(&r, &mut c, &tcp("10.1.2.3:5", "10.0.0.7:80", 0), ENV),
        Verdict::Accept
    );
    assert_eq!(run(&r, &mut c, &odd, ENV), Verdict::Drop, "another TTL");
}

#[test]
fn ruleset_hashlimit_upto_and_above() {
    let r = filter(
        "-A FORWARD -m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name h -j ACCEPT",
    );
    let mut w = two(&r);
    let a = tcp("10.0.0.1:1", "10.0.0.2:2", 0);
    let b = tcp("10.0.0.3:1", "10.0.0.2:2", 0);
    for i in 0..3 {
        assert_eq!(
            run(&r, &mut w[i % 2], &a, ENV),
            Verdict::Accept,
            "burst {i}"
        );
    }
    assert_eq!(
        run(&r, &mut w[0], &a, ENV),
        Verdict::Drop,
        "over the burst, on either worker"
    );
    assert_eq!(run(&r, &mut w[1], &a, ENV), Verdict::Drop);
    assert_eq!(
        run(&r, &mut w[1], &b, ENV),
        Verdict::Accept,
        "its own bucket"
    );
    assert_eq!(
        run(&r, &mut w[0], &a, at(SEC)),
        Verdict::Accept,
        "one token a second"
    );
    assert_eq!(run(&r, &mut w[0], &a, at(SEC)), Verdict::Drop);
    let r = filter(
        "-A FORWARD -m hashlimit --hashlimit-above 2/min --hashlimit-burst 2 --hashlimit-name ab -j DROP\n-A FORWARD -j ACCEPT",
    );
    let mut c = RuleCounters::for_ruleset(&r);
    assert_eq!(run(&r, &mut c, &a, ENV), Verdict::Accept);
    assert_eq!(
        run(&r, &mut c, &b, ENV),
        Verdict::Accept,
        "no mode: one bucket for all"
    );
    assert_eq!(run(&r, &mut c, &a, ENV), Verdict::Drop);
    assert_eq!(run(&r, &mut c, &a, at(30 * SEC)), Verdict::Accept);
}

#[test]
fn ruleset_recent_hashlimit_refusals() {
    let cases = [
        (
            "-m recent --set --seconds 5 --name x",
            "go with --rcheck or --update",
        ),
        (
            "-m recent --rcheck --reap --name x",
            "--reap needs --seconds",
        ),
        (
            "-m recent --rcheck --hitcount 21 --name x",
            "more than the 20",
        ),
        ("-m recent --set --rcheck", "only one of"),
        ("-m recent --name x", "needs one of"),
        (
            "-m hashlimit --hashlimit-upto 5/sec",
            "needs --hashlimit-name",
        ),
        ("-m hashlimit --hashlimit-name x", "needs --hashlimit-upto"),
        (
            "-m hashlimit --hashlimit-upto 5kb/s --hashlimit-name x",
            "byte rates",
        ),
        (
            "-m hashlimit --hashlimit-upto 5/fortnight --hashlimit-name x",
            "bad rate unit",
        ),
        (
            "-m hashlimit --hashlimit-upto 5/s --hashlimit-mode srcmac --hashlimit-name x",
            "bad --hashlimit-mode",
        ),
    ];
    for (rule, want) in cases {
        let e = err(&format!("*filter\n-A INPUT {rule} -j DROP\nCOMMIT\n"));
        assert!(e.contains(want), "{rule}: {e}");
    }
}

#[test]
fn ruleset_recent_hashlimit_save_text() {
    let body = "-A FORWARD -p tcp -m tcp --dport 22 -m recent --update --seconds 60 --hitcount 4 --name SSH --mask 255.255.255.255 --rsource -j DROP\n\
                -A FORWARD -m recent ! --rcheck --name DEFAULT --mask 255.255.255.0 --rdest -j DROP\n\
                -A FORWARD -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 20 --hashlimit-mode srcip,dstport --hashlimit-name web --hashlimit-srcmask 24 --hashlimit-htable-expire 60000 -j ACCEPT";
    let r = filter(body);
    let dump = r.dump();
    for line in body.lines() {
        assert!(dump.contains(line.trim()), "{line}\nnot in\n{dump}");
    }
    // A second read of the dump compiles to the same text.
    assert_eq!(rs(&dump).dump(), dump);
}

#[test]
fn ruleset_recent_runs_before_a_later_port_match() {
    // iptables runs the matches in order: --set records the source even though the
    // tcp match after it fails; the index must not skip the rule by its port.
    let r = filter(
        "-A FORWARD -p tcp -m recent --set --name P -m tcp --dport 22\n\
         -A FORWARD -p tcp -m recent --rcheck --name P -j ACCEPT",
    );
    let mut c = RuleCounters::for_ruleset(&r);
    let web = tcp("10.0.0.1:5", "10.0.0.7:80", tcp_flags::SYN);
    assert_eq!(run(&r, &mut c, &web, ENV), Verdict::Accept);
}
