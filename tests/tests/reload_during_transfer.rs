//! Rule reloads in the middle of a long transfer do not break it: a 48 MiB download from
//! outside to inside through statewall (forward mode) while the ruleset is reloaded 24
//! times, alternating two equivalent rulesets (20 through `statewall ctl rules reload`,
//! 4 through SIGHUP). The file must arrive whole and byte-identical, and every reload
//! must be counted as a success.

use statewall_e2e::*;
use std::time::{Duration, Instant};

const SIZE: usize = 48 << 20;
const RELOADS_CTL: usize = 20;
const RELOADS_HUP: usize = 4;

/// Equivalent to demo.rules: the same decisions, written differently (a TCP-only NEW
/// rule ahead of the general one, comments, a user chain).
const RULES_B: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:from-inside - [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"replies\" -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i inside -j from-inside
-A FORWARD -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD -j REJECT --reject-with icmp-port-unreachable
-A from-inside -p tcp -m conntrack --ctstate NEW -j ACCEPT
-A from-inside -m conntrack --ctstate NEW -j ACCEPT
COMMIT
";

fn pseudo_random(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

#[test]
fn reload_during_transfer_keeps_it_intact() {
    let test = "reload_during_transfer_keeps_it_intact";
    let Some(topo) = Topology::for_test(test, e2e_needs(test).tools(&["curl"])) else {
        return;
    };
    let sw = Statewall::start(&topo, Mode::Forward, DEMO_RULES, "");
    let d = sw.dir.path();
    let www = d.join("www");
    std::fs::create_dir(&www).unwrap();
    let data = pseudo_random(SIZE);
    std::fs::write(www.join("big.bin"), &data).unwrap();
    let outside = (topo.outside_ns.as_str(), topo.outside_ip.as_str(), 8080);
    let _srv = topo.http_server(outside, &www, (d, "http-out"), 180);

    let ok0 = sw.metric(r#"statewall_ruleset_reloads_total{result="success"}"#);
    let gen0 = sw.metric("statewall_ruleset_generation");
    let dst = d.join("big.out");
    let url = format!("http://{}:8080/big.bin", topo.outside_ip);
    // ~8 s at 6 MB/s: long enough for all the reloads to land mid-transfer.
    let t0 = Instant::now();
    let mut curl = topo.spawn_in(
        &topo.inside_ns,
        120,
        d,
        d,
        "curl",
        &[
            "curl",
            "-sS",
            "-m",
            "110",
            "--limit-rate",
            "6M",
            "-o",
            dst.to_str().unwrap(),
            "-w",
            "%{http_code} %{size_download}",
            &url,
        ],
    );
    // Wait until the download is under way.
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    while size(&dst) < (1 << 20) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "download did not start: curl {} {}\n{}",
            curl.stdout(),
            curl.stderr(),
            sw.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rules_a = DEMO_RULES;
    let mut sizes_at_reload = Vec::new();
    for i in 0..RELOADS_CTL + RELOADS_HUP {
        let text = if i % 2 == 0 { RULES_B } else { rules_a };
        std::fs::write(&sw.rules_path, text).unwrap();
        if i < RELOADS_CTL {
            let o = sw.ctl(&["rules", "reload"]);
            assert!(
                o.status.success(),
                "reload {i} via ctl failed: {}\n{}",
                show(&o),
                sw.logs()
            );
        } else {
            let want = ok0 + i as f64 + 1.0;
            sw.signal(libc::SIGHUP);
            let got = sw
                .wait_metric_at_least(r#"statewall_ruleset_reloads_total{result="success"}"#, want);
            assert!(
                got >= want,
                "SIGHUP reload {i} not counted ({got} < {want})\n{}",
                sw.logs()
            );
        }
        sizes_at_reload.push(size(&dst));
        std::thread::sleep(Duration::from_millis(120));
    }
    let last = *sizes_at_reload.last().unwrap();
    assert!(
        last < SIZE as u64,
        "the transfer ended before the last reload ({last} bytes of {SIZE}); not a mid-transfer test"
    );
    let status = curl.wait_exit(100);
    let took = t0.elapsed();
    let out = curl.stdout();
    assert!(
        status.is_some_and(|s| s.success()) && out.trim() == format!("200 {SIZE}"),
        "download broken by reloads: exit {status:?}, curl said {out:?} / {:?}, got {} of {SIZE} bytes; sizes at reloads {sizes_at_reload:?}\n{}",
        curl.stderr(),
        size(&dst),
        sw.logs()
    );
    let got = std::fs::read(&dst).unwrap();
    assert!(
        got == data,
        "downloaded file differs from the original (length {})",
        got.len()
    );
    let ok = sw.metric(r#"statewall_ruleset_reloads_total{result="success"}"#) - ok0;
    let failed = sw.metric(r#"statewall_ruleset_reloads_total{result="failure"}"#);
    let gen = sw.metric("statewall_ruleset_generation") - gen0;
    let n = (RELOADS_CTL + RELOADS_HUP) as f64;
    assert!(
        ok == n && gen == n && failed == 0.0,
        "reload accounting: success +{ok}, generation +{gen}, failure {failed}; expected +{n}\n{}",
        sw.logs()
    );
    println!(
        "{test}: ok: {SIZE} bytes in {took:?} through {n} reloads (file size at each: {sizes_at_reload:?})"
    );
}
