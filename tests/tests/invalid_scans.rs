//! Stealth scans toward the protected host under the seed ruleset (host mode): FIN, NULL
//! and Xmas probes are INVALID in Linux conntrack (flag combinations `tcp_valid_flags`
//! refuses), a lone ACK is NEW (nf_conntrack_tcp_loose=1 picks the connection up). None
//! of them may reach the inside; the seed ruleset rejects all of them.
//!
//! What reaches the inside namespace is counted by an nftables counter at the start of
//! its prerouting path (priority -400, before anything else in that namespace).

use statewall_e2e::*;

const INVALID: &str = r#"statewall_packets_total{state="INVALID"}"#;
const NEW: &str = r#"statewall_packets_total{state="NEW"}"#;
const REJECT: &str = r#"statewall_drops_total{reason="reject"}"#;

fn nft_counter_setup(topo: &Topology) {
    let rules = "table inet e2e {
  chain pre {
    type filter hook prerouting priority -400; policy accept;
    tcp dport 8081 counter name probes
  }
  counter probes { }
}
";
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("counter.nft");
    std::fs::write(
        &f,
        rules.replace(
            "tcp dport 8081 counter name probes",
            "tcp dport 8081 counter name \"probes\"",
        ),
    )
    .unwrap();
    let o = topo.inside(10, &["nft", "-f", f.to_str().unwrap()]);
    assert!(o.status.success(), "nft setup: {}", show(&o));
}

/// Packets counted by the inside namespace's nft counter.
fn reached_inside(topo: &Topology) -> u64 {
    let o = topo.inside(10, &["nft", "list", "counter", "inet", "e2e", "probes"]);
    let s = String::from_utf8_lossy(&o.stdout);
    s.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read nft counter: {}", show(&o)))
}

#[test]
fn invalid_scans_never_reach_inside() {
    let test = "invalid_scans_never_reach_inside";
    let Some(topo) = Topology::for_test(test, e2e_needs(test).tools(&["hping3", "nft", "ping"]))
    else {
        return;
    };
    let sw = Statewall::start(&topo, Mode::Host, SEED_RULES, "");
    nft_counter_setup(&topo);
    // Resolve ARP both ways first so the probes are the only IP traffic.
    let _ = topo.inside(5, &["ping", "-c", "1", "-W", "1", &topo.outside_ip]);
    // (that ping's own entry; icmp_timeout is 30 s, longer than this test)
    let entries0 = sw.metric("statewall_conntrack_entries");

    let mut report = String::new();
    // (name, hping3 flags, expected INVALID delta, expected NEW delta)
    let cases: [(&str, &[&str], f64, f64); 4] = [
        ("FIN", &["-F"], 3.0, 0.0),
        ("NULL", &[], 3.0, 0.0),
        ("Xmas", &["-F", "-P", "-U"], 3.0, 0.0),
        ("ACK", &["-A"], 0.0, 3.0),
    ];
    for (name, flags, want_invalid, want_new) in cases {
        let (inv0, new0, rej0) = (sw.metric(INVALID), sw.metric(NEW), sw.metric(REJECT));
        let mut args = vec![
            "hping3", "-q", "-c", "3", "-i", "u100000", "-p", "8081", "-s", "40000",
        ];
        args.extend_from_slice(flags);
        args.push(&topo.inside_ip);
        let o = topo.outside(15, &args);
        let rej = sw.wait_metric_at_least(REJECT, rej0 + 3.0);
        let (inv, new) = (sw.metric(INVALID) - inv0, sw.metric(NEW) - new0);
        let reached = reached_inside(&topo);
        report += &format!(
            "{name}: INVALID +{inv} NEW +{new} rejected +{} reached inside {reached}\n",
            rej - rej0
        );
        assert_eq!(
            reached,
            0,
            "{name} probes reached the inside namespace\n{report}hping3: {}\n{}",
            show(&o),
            sw.logs()
        );
        assert!(
            inv == want_invalid && new == want_new,
            "{name} probes: Linux says INVALID +{want_invalid} NEW +{want_new}, statewall counted INVALID +{inv} NEW +{new}\n{report}{}",
            sw.logs()
        );
        assert!(
            rej - rej0 >= 3.0,
            "{name} probes: the seed ruleset rejects them, but only {} rejects were counted\n{}",
            rej - rej0,
            sw.logs()
        );
    }
    // A rejected NEW ACK leaves no entry (Linux confirms only accepted packets).
    assert_eq!(
        sw.metric("statewall_conntrack_entries"),
        entries0,
        "rejected probes left conntrack entries\n{}",
        sw.logs()
    );
    println!("{test}: ok\n{report}");
}

#[test]
fn nmap_stealth_scans_see_filtered() {
    let test = "nmap_stealth_scans_see_filtered";
    let Some(topo) = Topology::for_test(test, e2e_needs(test).tools(&["nmap", "nft"])) else {
        return;
    };
    let sw = Statewall::start(&topo, Mode::Host, SEED_RULES, "");
    nft_counter_setup(&topo);
    let mut report = String::new();
    for scan in ["-sF", "-sN", "-sX", "-sA"] {
        let inv0 = sw.metric(INVALID);
        let o = topo.outside(
            60,
            &[
                "nmap",
                scan,
                "-Pn",
                "-n",
                "--max-retries",
                "1",
                "--host-timeout",
                "20s",
                "-p",
                "8081",
                &topo.inside_ip,
            ],
        );
        let out = String::from_utf8_lossy(&o.stdout);
        let line = out
            .lines()
            .find(|l| l.starts_with("8081/tcp"))
            .unwrap_or("")
            .to_string();
        let inv = sw.metric(INVALID) - inv0;
        report += &format!("nmap {scan}: {line:?} INVALID +{inv}\n");
        // Through a REJECT (icmp-port-unreachable) every probe reads "filtered"; had a
        // probe reached the inside host, its RST would read "closed" / "unfiltered".
        assert!(
            line.contains(" filtered"),
            "nmap {scan} should see the port filtered: {}\n{report}{}",
            show(&o),
            sw.logs()
        );
        if scan != "-sA" {
            assert!(
                inv >= 1.0,
                "nmap {scan}: no INVALID counted\n{report}{}",
                sw.logs()
            );
        }
    }
    assert_eq!(reached_inside(&topo), 0, "probes reached inside\n{report}");
    println!("{test}: ok\n{report}");
}
