//! `statewall ctl` against a running statewall (2 workers on pktgen ports): every
//! command, its output format and its effect.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BAD_RULES: &str = "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --dport 22 -j ACCEPT\n-A FORWARD -m bogus -j ACCEPT\nCOMMIT\n";

/// A ruleset that differs visibly from the demo one (a UDP rule first).
const OTHER_RULES: &str =
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A FORWARD -p udp -m udp --dport 53 -m comment --comment \"dns\" -j ACCEPT\n\
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
-A FORWARD -m conntrack --ctstate INVALID -j DROP\n\
-A FORWARD -i inside -m conntrack --ctstate NEW -j ACCEPT\n\
COMMIT\n";

/// `iptables -L` packet column: plain or with a K/M/G suffix.
fn num(s: &str) -> u64 {
    let (n, m) = match s.chars().last() {
        Some('K') => (&s[..s.len() - 1], 1_000),
        Some('M') => (&s[..s.len() - 1], 1_000_000),
        Some('G') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s, 1),
    };
    n.parse::<u64>()
        .unwrap_or_else(|_| panic!("not a counter: {s:?}"))
        * m
}

/// (pkts, bytes) of rule `n` of chain `chain` in a listing.
fn rule_counters(listing: &str, chain: &str, n: usize) -> (u64, u64) {
    let mut in_chain = false;
    for l in listing.lines() {
        if l.starts_with("Chain ") {
            in_chain = l.starts_with(&format!("Chain {chain} "));
            continue;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        if in_chain && f.first() == Some(&n.to_string().as_str()) {
            return (num(f[1]), num(f[2]));
        }
    }
    panic!("no rule {n} in chain {chain}:\n{listing}")
}

#[test]
fn status_ports_workers() {
    let sw = start(DEMO_RULES, "");
    sw.wait_traffic();
    let st: Value = serde_json::from_str(&sw.ok(&["status"])).unwrap();
    assert_eq!(st["workers"], 2);
    assert_eq!(st["ruleset_generation"], 1);
    assert_eq!(st["last_reload_successful"], true);
    assert_eq!(
        st["reloads"],
        serde_json::json!({"success": 0, "failure": 0})
    );
    assert_eq!(st["ports"], serde_json::json!(["inside", "outside"]));
    assert!(st["packets"].as_u64().unwrap() > 0, "{st}");
    assert!(st["conntrack_entries"].as_u64().unwrap() > 0, "{st}");

    let ports = sw.ok(&["ports"]);
    println!("{ports}");
    for (i, name) in ["inside", "outside"].iter().enumerate() {
        assert!(
            ports.contains(&format!(
                "######################## NIC statistics for port {i:<2} ({name}) ####"
            )),
            "{ports}"
        );
    }
    let rx: Vec<u64> = ports
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RX-packets:"))
        .map(|r| r.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(rx.len(), 2);
    assert!(rx.iter().all(|&n| n > 0), "{ports}");
    for w in [
        "RX-missed:",
        "RX-bytes:",
        "RX-errors:",
        "RX-nombuf:",
        "TX-packets:",
        "TX-errors:",
        "TX-bytes:",
    ] {
        assert!(ports.contains(w), "{w} missing:\n{ports}");
    }

    let ws: Value = serde_json::from_str(&sw.ok(&["workers"])).unwrap();
    let ws = ws.as_array().unwrap();
    assert_eq!(ws.len(), 2);
    for (i, w) in ws.iter().enumerate() {
        assert_eq!(w["worker"], i);
        assert!(w["packets"].as_u64().unwrap() > 0, "{w}");
        for k in ["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"] {
            assert!(w["states"][k].is_u64(), "{w}");
        }
        assert!(w["drops"]["policy"].is_u64(), "{w}");
    }
}

#[test]
fn rules_list_sums_both_workers() {
    let sw = start(DEMO_RULES, "[pktgen]\nrate_pps = 5000\nflows = 64\n");
    sw.wait_traffic();
    let per_worker = |w: usize| {
        sw.rt
            .on_worker(w, |p, _| p.counters().snapshot()[0].0)
            .unwrap()
    };
    let (a0, a1) = (per_worker(0), per_worker(1));
    let listing = sw.ok(&["rules", "list"]);
    let (b0, b1) = (per_worker(0), per_worker(1));
    println!("{listing}");
    assert!(
        listing.starts_with("Chain INPUT (policy ACCEPT "),
        "{listing}"
    );
    assert!(listing.contains("Chain FORWARD (policy DROP "), "{listing}");
    assert!(listing.contains(
        "num   pkts bytes target     prot opt in     out     source               destination"
    ));
    let (pk, by) = rule_counters(&listing, "FORWARD", 1);
    assert!(a0 > 0 && a1 > 0, "both workers saw traffic: {a0} {a1}");
    assert!(pk > 0 && by > 0);
    // The listing is the sum over both workers: more than either alone.
    assert!(
        pk >= a0 + a1 && pk <= b0 + b1,
        "{a0}+{a1} <= {pk} <= {b0}+{b1}"
    );
    let (new_pk, _) = rule_counters(&listing, "FORWARD", 3);
    assert!(new_pk > 0, "NEW rule counted:\n{listing}");
    let l3 = listing
        .lines()
        .find(|l| l.trim_start().starts_with("3 "))
        .unwrap();
    assert!(l3.contains("ACCEPT     all  --  inside *       0.0.0.0/0            0.0.0.0/0            ctstate NEW"), "{l3}");
}

#[test]
fn rules_check_good_and_bad() {
    let sw = start(DEMO_RULES, "");
    let good = sw.dir.path().join("good.rules");
    let bad = sw.dir.path().join("bad.rules");
    std::fs::write(&good, OTHER_RULES).unwrap();
    std::fs::write(&bad, BAD_RULES).unwrap();
    let out = sw.ok(&["rules", "check", good.to_str().unwrap()]);
    assert!(out.starts_with(&format!("{}: OK", good.display())), "{out}");
    let e = sw
        .ctl(&["rules", "check", bad.to_str().unwrap()])
        .unwrap_err();
    assert!(
        e.contains(&format!(
            "{}:4:12: unknown match \"-m bogus\"",
            bad.display()
        )),
        "{e}"
    );
    // Checking changed nothing.
    assert_eq!(sw.metric("statewall_ruleset_generation"), 1.0);

    // The binary: message on stderr as file:line:col, non-zero exit status.
    let o = Command::new(bin())
        .args([
            "ctl",
            "--socket",
            sw.sock.to_str().unwrap(),
            "rules",
            "check",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("{}:4:12: ", bad.display())),
        "{stderr}"
    );
    // And the offline check, without a running statewall.
    let o = Command::new(bin())
        .args(["rules", "check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("{}:4:12: ", bad.display())));
    let o = Command::new(bin())
        .args(["rules", "check", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
}

#[test]
fn rules_replace_refuses_a_bad_ruleset_whole() {
    let sw = start(DEMO_RULES, "");
    sw.wait_traffic();
    let bad = sw.dir.path().join("bad.rules");
    let good = sw.dir.path().join("other.rules");
    std::fs::write(&bad, BAD_RULES).unwrap();
    std::fs::write(&good, OTHER_RULES).unwrap();
    let before = sw.ok(&["rules", "list"]);
    let e = sw
        .ctl(&["rules", "replace", bad.to_str().unwrap()])
        .unwrap_err();
    assert!(e.contains("bad.rules:4:12: unknown match"), "{e}");
    let st: Value = serde_json::from_str(&sw.ok(&["status"])).unwrap();
    assert_eq!(st["ruleset_generation"], 1, "generation unchanged");
    assert_eq!(st["last_reload_successful"], false);
    let after = sw.ok(&["rules", "list"]);
    // Same rules (counters move): compare the listing without the counter columns.
    let shape = |l: &str| {
        l.lines()
            .map(|x| {
                let f: Vec<&str> = x.split_whitespace().collect();
                if f.len() > 3 && f[0].parse::<u32>().is_ok() {
                    f[3..].join(" ")
                } else if x.starts_with("Chain") {
                    x.split(" (").next().unwrap().to_string()
                } else {
                    x.to_string()
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&before), shape(&after), "the running ruleset stays");
    assert!(!after.contains("udp dpt:53"));
    let s = sw.scrape();
    assert_eq!(reloads(&s), (0.0, 0.0, 1.0));
    // Traffic still flows under the old rules.
    let p = sw
        .rt
        .sum(|w| w.forwarded.load(std::sync::atomic::Ordering::Relaxed));
    sw.wait(10, "forwarding", |s| {
        s.rt.sum(|w| w.forwarded.load(std::sync::atomic::Ordering::Relaxed)) > p + 100
    });

    let out = sw.ok(&["rules", "replace", good.to_str().unwrap()]);
    assert_eq!(out.trim(), "replaced: ruleset generation 2");
    let listing = sw.ok(&["rules", "list"]);
    assert!(listing.contains("udp dpt:53"), "{listing}");
    let s = sw.scrape();
    assert_eq!(metric(&s, "statewall_ruleset_generation"), 2.0);
    let (ok, success, _) = reloads(&s);
    assert_eq!((ok, success), (1.0, 1.0));
}

#[test]
fn rules_reload_rereads_the_file() {
    let sw = start(DEMO_RULES, "");
    assert_eq!(
        sw.ok(&["rules", "reload"]).trim(),
        "reloaded: ruleset generation 2"
    );
    std::fs::write(&sw.rules, OTHER_RULES).unwrap();
    assert_eq!(
        sw.ok(&["rules", "reload"]).trim(),
        "reloaded: ruleset generation 3"
    );
    assert!(sw.ok(&["rules", "list"]).contains("udp dpt:53"));
    // A broken file: refused, counted, the running ruleset stays.
    std::fs::write(&sw.rules, BAD_RULES).unwrap();
    let e = sw.ctl(&["rules", "reload"]).unwrap_err();
    assert!(e.contains("fw.rules:4:12: unknown match"), "{e}");
    assert!(sw.ok(&["rules", "list"]).contains("udp dpt:53"));
    let s = sw.scrape();
    assert_eq!(metric(&s, "statewall_ruleset_generation"), 3.0);
    assert_eq!(reloads(&s), (0.0, 2.0, 1.0));
}

#[test]
fn rules_reload_without_a_rules_file_stays_accept_all() {
    // Started with no rules file: accept-all, and a reload must not switch to the demo rules.
    let _serial = serial();
    let cfg = statewall::config::Config::parse(
        "[dataplane]\nworkers = 1\n[[port]]\nname = \"inside\"\nbackend = \"pktgen\"\nside = \"inside\"\n\
         [[port]]\nname = \"outside\"\nbackend = \"pktgen\"\nside = \"outside\"\n\
         [[pair]]\nnetwork = \"outside\"\nhost = \"inside\"\n[pktgen]\nrate_pps = 1000\n",
        "t.toml",
    )
    .unwrap();
    let rt = statewall::runtime::Runtime::start(cfg, false).unwrap();
    let before = rt.ruleset.load().listing(&[]);
    rt.reload().unwrap();
    assert_eq!(rt.ruleset.load().listing(&[]), before);
    assert!(before.contains("Chain FORWARD (policy ACCEPT"), "{before}");
    rt.shutdown();
}

fn json_list(sw: &Sw, filter: &[&str]) -> Vec<Value> {
    let mut a = vec!["conntrack", "list", "--json"];
    a.extend_from_slice(filter);
    let v: Value = serde_json::from_str(&sw.ok(&a)).unwrap();
    v.as_array().unwrap().clone()
}

#[test]
fn conntrack_list_json_and_filters() {
    let sw = start(DEMO_RULES, "");
    sw.wait_traffic();
    sw.wait(20, "tcp, udp and icmp entries", |s| {
        let all = json_list(s, &[]);
        [6, 17, 1]
            .iter()
            .all(|p| all.iter().any(|e| e["proto"] == *p))
    });
    let text = sw.ok(&["conntrack", "list"]);
    let line = regex::Regex::new(
        r"^(tcp      6 \d+ [A-Z_]+ src=\S+ dst=\S+ sport=\d+ dport=\d+( \[UNREPLIED\])? src=\S+ dst=\S+ sport=\d+ dport=\d+( \[ASSURED\])? mark=0 use=1|udp      17 \d+ src=\S+ dst=\S+ sport=\d+ dport=\d+( \[UNREPLIED\])? src=\S+ dst=\S+ sport=\d+ dport=\d+( \[ASSURED\])? mark=0 use=1|icmp     1 \d+ src=\S+ dst=\S+ type=\d+ code=\d+ id=\d+( \[UNREPLIED\])? src=\S+ dst=\S+ type=\d+ code=\d+ id=\d+ mark=0 use=1)$",
    )
    .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (last, entries) = lines.split_last().unwrap();
    assert!(
        regex::Regex::new(r"^statewall: \d+ flow entries have been shown\.$")
            .unwrap()
            .is_match(last),
        "{last}"
    );
    assert!(!entries.is_empty());
    for l in entries {
        assert!(line.is_match(l), "not a conntrack -L line: {l:?}");
    }

    let all = json_list(&sw, &[]);
    for e in &all {
        for k in [
            "family",
            "proto",
            "timeout",
            "tcp_state",
            "original",
            "reply",
            "status",
            "worker",
        ] {
            assert!(e.get(k).is_some(), "field {k} missing in {e}");
        }
        assert_eq!(e["family"], "ipv4");
        assert!(e["original"]["src"].is_string() && e["reply"]["dst"].is_string());
        assert!(e["status"].is_array());
    }
    let check = |filter: &[&str], pred: &dyn Fn(&Value) -> bool, must_match: bool| {
        let got = json_list(&sw, filter);
        assert!(!must_match || !got.is_empty(), "nothing matched {filter:?}");
        for e in &got {
            assert!(pred(e), "{filter:?} let through {e}");
        }
        // The text listing applies the same filter.
        let mut a = vec!["conntrack", "list"];
        a.extend_from_slice(filter);
        let t = sw.ok(&a);
        assert!(t.lines().count() >= 1);
    };
    check(&["-p", "tcp"], &|e| e["proto"] == 6, true);
    check(&["-p", "udp"], &|e| e["proto"] == 17, true);
    check(&["-p", "icmp"], &|e| e["proto"] == 1, true);
    let tcp = json_list(&sw, &["-p", "tcp", "--state", "TIME_WAIT"]);
    assert!(!tcp.is_empty());
    let e0 = &tcp[0];
    let src = e0["original"]["src"].as_str().unwrap().to_string();
    let dst = e0["original"]["dst"].as_str().unwrap().to_string();
    let sport = e0["original"]["sport"].to_string();
    check(
        &["-s", &src],
        &|e| e["original"]["src"] == src.as_str(),
        true,
    );
    check(
        &["-d", &dst],
        &|e| e["original"]["dst"] == dst.as_str(),
        true,
    );
    check(
        &["-p", "tcp", "--sport", &sport],
        &|e| e["original"]["sport"] == e0["original"]["sport"],
        true,
    );
    check(
        &["-p", "tcp", "--dport", "80"],
        &|e| e["original"]["dport"] == 80 && e["proto"] == 6,
        true,
    );
    check(
        &["--state", "TIME_WAIT"],
        &|e| e["tcp_state"] == "TIME_WAIT",
        true,
    );
    check(
        &["--status", "ASSURED"],
        &|e| e["status"].as_array().unwrap().contains(&"ASSURED".into()),
        true,
    );
    check(&["-p", "udp", "--dport", "80"], &|_| false, false);
    // A bad filter is an error, not an empty list.
    assert!(sw.ctl(&["conntrack", "list", "-s", "not-an-ip"]).is_err());
    assert!(sw.ctl(&["conntrack", "list", "--status", "BOGUS"]).is_err());
}

fn count(sw: &Sw, filter: &[&str]) -> u64 {
    let mut a = vec!["conntrack", "count"];
    a.extend_from_slice(filter);
    sw.ok(&a).trim().parse().unwrap()
}

#[test]
fn conntrack_count_and_stats() {
    let sw = start(DEMO_RULES, "");
    sw.wait_traffic();
    let all = count(&sw, &[]);
    let tcp = count(&sw, &["-p", "tcp"]);
    assert!(all > 0 && tcp > 0 && tcp <= all + 1000, "{all} {tcp}");
    assert_eq!(count(&sw, &["-p", "udp", "--dport", "80"]), 0);

    let stats = sw.ok(&["conntrack", "stats"]);
    println!("{stats}");
    // The `conntrack -S` fields, in its order, from the one table that names them.
    let fields: Vec<&str> = dataplane::conntrack::CtCounter::CONNTRACK_S
        .iter()
        .map(|c| c.name())
        .collect();
    assert_eq!(fields[0], "found");
    let insert = fields.iter().position(|f| *f == "insert").unwrap();
    let lines: Vec<&str> = stats.lines().collect();
    assert_eq!(lines.len(), 3, "two workers and a total:\n{stats}");
    assert!(lines[0].starts_with("cpu=0"));
    assert!(lines[1].starts_with("cpu=1"));
    assert!(lines[2].starts_with("total"));
    let parse = |l: &str| -> Vec<u64> {
        let kv: Vec<(&str, &str)> = l
            .split_whitespace()
            .skip(1)
            .map(|x| x.split_once('=').unwrap())
            .collect();
        assert_eq!(kv.iter().map(|x| x.0).collect::<Vec<_>>(), fields);
        kv.iter().map(|x| x.1.parse().unwrap()).collect()
    };
    let (w0, w1, t) = (parse(lines[0]), parse(lines[1]), parse(lines[2]));
    for i in 0..fields.len() {
        assert_eq!(t[i], w0[i] + w1[i], "{} adds up", fields[i]);
    }
    assert!(w0[insert] > 0 && w1[insert] > 0, "both workers inserted");
}

/// A run of 32 established pktgen flows at 5000 pps (`prefix`: more configuration before
/// the `[pktgen]` section), once all 32 are ESTABLISHED in the table.
fn established_32(prefix: &str) -> Sw {
    let sw = start(
        DEMO_RULES,
        &format!("{prefix}[pktgen]\nmode = \"established\"\nflows = 32\nrate_pps = 5000\n"),
    );
    sw.wait_traffic();
    sw.wait(10, "32 established flows", |s| {
        count(s, &["--state", "ESTABLISHED"]) == 32
    });
    sw
}

#[test]
fn conntrack_delete_makes_established_flows_invalid() {
    // Established traffic with nf_conntrack_tcp_loose = 0: an entry deleted in the middle
    // of a connection is not picked up again; its next packets are INVALID and dropped.
    let sw = established_32("[conntrack]\nnf_conntrack_tcp_loose = false\n");
    assert_eq!(sw.state("INVALID"), 0);
    let victim = json_list(&sw, &[])[0]["original"]["src"]
        .as_str()
        .unwrap()
        .to_string();
    let n = count(&sw, &["-s", &victim]);
    assert!(n >= 1);
    let out = sw.ok(&["conntrack", "delete", "-s", &victim]);
    assert!(
        out.ends_with(&format!("statewall: {n} flow entries have been deleted.\n")),
        "{out}"
    );
    assert!(
        out.lines().next().unwrap().starts_with("tcp      6 "),
        "{out}"
    );
    assert_eq!(count(&sw, &["-s", &victim]), 0, "entries gone");
    assert_eq!(count(&sw, &[]), 32 - n);
    // The flow's next packets (data, retransmissions) are INVALID and dropped.
    sw.wait(10, "INVALID packets", |s| s.state("INVALID") > 0);
    let drops = sw.metric("statewall_drops_total{reason=\"policy\"}");
    assert!(drops > 0.0);
    assert_eq!(
        count(&sw, &["-s", &victim]),
        0,
        "not picked up again with loose=0"
    );
    // A delete without a filter is refused (flush is the explicit way).
    assert!(sw
        .ctl(&["conntrack", "delete"])
        .unwrap_err()
        .contains("flush"));
    // Flush: the table empties and, with loose=0, stays empty.
    let out = sw.ok(&["conntrack", "flush"]);
    assert_eq!(
        out.trim(),
        format!(
            "connection tracking table has been emptied ({} entries)",
            32 - n
        )
    );
    assert_eq!(count(&sw, &[]), 0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(&sw, &[]), 0);
}

#[test]
fn conntrack_delete_with_loose_pickup_makes_flows_new_again() {
    // Default nf_conntrack_tcp_loose = 1: the deleted flow's next packet from the inside
    // is picked up mid-stream as NEW (and accepted by the demo ruleset).
    let sw = established_32("");
    let new_before = sw.state("NEW");
    assert_eq!(new_before, 32);
    sw.ok(&["conntrack", "delete", "-p", "tcp", "--dport", "80"]);
    sw.wait(10, "NEW packets after the delete", |s| {
        s.state("NEW") > new_before
    });
    sw.wait(10, "table refilled", |s| count(s, &[]) == 32);
}

#[test]
fn conntrack_flush_refills_from_traffic() {
    // 64 concurrent connections: after the flush, at most those in flight (picked up
    // again mid-stream, tcp_loose = 1) and the few opened since come back at once.
    let sw = start(DEMO_RULES, "[pktgen]\nrate_pps = 5000\nflows = 64\n");
    sw.wait_traffic();
    sw.wait(30, "a thousand entries", |s| count(s, &[]) > 1000);
    let before = count(&sw, &[]);
    let out = sw.ok(&["conntrack", "flush"]);
    let flushed: u64 = out
        .trim()
        .strip_prefix("connection tracking table has been emptied (")
        .and_then(|r| r.strip_suffix(" entries)"))
        .unwrap_or_else(|| panic!("{out}"))
        .parse()
        .unwrap();
    assert!(flushed >= before, "{flushed} >= {before}");
    let after = count(&sw, &[]);
    assert!(after < 250, "flushed: {before} -> {after}");
    sw.wait(10, "refill", |s| count(s, &[]) > after + 50);
}

/// `deploy/examples/pktgen-demo.toml` with its control API on `port` (socket in `dir`),
/// one worker, pktgen at 2000 packets/s and `[rules] file = <rules>`, written to
/// `dir/c.toml`; returns that path.
fn slow_demo_config(dir: &Path, port: u16, rules: &str) -> PathBuf {
    let cfg = dir.join("c.toml");
    let text = std::fs::read_to_string(repo().join("deploy/examples/pktgen-demo.toml")).unwrap();
    let text = relocate_control(&text, port, dir)
        .replace("workers = 0 ", "workers = 1 ")
        .replace(
            "reuse_ports = true\n",
            "reuse_ports = true\nrate_pps = 2000\n",
        )
        + &format!("[rules]\nfile = \"{rules}\"\n");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[test]
fn sigterm_stops_the_binary_cleanly() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = slow_demo_config(dir.path(), port, "demo.rules");
    std::fs::copy(
        repo().join("deploy/examples/demo.rules"),
        dir.path().join("demo.rules"),
    )
    .unwrap();
    let child = Command::new(bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let t = std::time::Instant::now();
    while statewall::ctl::request(&addr, "GET", "/api/v1/status", "").is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "statewall did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: kill() with a pid of our own child and a valid signal number.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "exit {:?}\n{stdout}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("statewall: stopped after"), "{stdout}");
    assert!(stdout.contains("summary:"), "{stdout}");
}

#[test]
fn busy_control_listen_fails_naming_the_field() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    let text = std::fs::read_to_string(repo().join("deploy/examples/pktgen-demo.toml")).unwrap();
    let text = relocate_control(&text, addr.port(), dir.path());
    std::fs::write(&cfg, text).unwrap();
    let o = Command::new(bin())
        .args(["run", "--config", cfg.to_str().unwrap(), "--duration", "5"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("control.listen: cannot listen on \"{addr}\"")),
        "{stderr}"
    );
    // It failed before starting anything.
    assert!(!String::from_utf8_lossy(&o.stdout).contains("worker(s)"));
}

#[test]
fn api_answers_garbage_without_dying() {
    let sw = start(DEMO_RULES, "[pktgen]\nrate_pps = 1000\n");
    for (m, p) in [
        ("GET", "/api/v1/conntrack?src=%"),
        ("GET", "/api/v1/conntrack?src=%C3%A9%C3"),
        ("GET", "/api/v1/conntrack?sport=99999"),
        ("GET", "/api/v1/conntrack?bogus=1"),
        ("DELETE", "/api/v1/conntrack?proto=nope"),
        ("GET", "/nope"),
        ("PUT", "/api/v1/rules"),
        ("POST", "/api/v1/rules/check?name=%ZZ"),
    ] {
        let send = if p.contains("check") { "garbage\n" } else { "" };
        let (code, body) = sw.sock_request(m, p, send);
        assert!((400..500).contains(&code), "{m} {p}: {code} {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].is_string());
    }
    // Still serving.
    assert!(sw.get("/").contains("/metrics"));
}

#[test]
fn sighup_reloads_and_tells_systemd() {
    use std::os::unix::net::UnixDatagram;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let cfg = slow_demo_config(dir.path(), port, "fw.rules");
    std::fs::write(dir.path().join("fw.rules"), DEMO_RULES).unwrap();
    let mut child = Command::new(bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(recv(), "READY=1");
    assert_eq!(recv(), "STATUS=ruleset generation 1");
    // SAFETY: kill() with a pid of our own child and a valid signal number.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    assert!(recv().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert_eq!(recv(), "STATUS=ruleset generation 2 (reload ok)");
    assert_eq!(recv(), "READY=1");
    // A broken file: the reload fails, the status says so.
    std::fs::write(dir.path().join("fw.rules"), BAD_RULES).unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    assert!(recv().starts_with("RELOADING=1"));
    let st = recv();
    assert!(
        st.starts_with("STATUS=ruleset generation 2; last reload FAILED: ")
            && st.contains("fw.rules:4:12"),
        "{st}"
    );
    assert_eq!(recv(), "READY=1");
    let (_, body) =
        statewall::ctl::request(&format!("127.0.0.1:{port}"), "GET", "/metrics", "").unwrap();
    assert_eq!(
        metric(&body, "statewall_ruleset_last_reload_successful"),
        0.0
    );
    assert_eq!(metric(&body, "statewall_ruleset_generation"), 2.0);
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(recv(), "STOPPING=1");
    assert!(child.wait().unwrap().success());
}

#[test]
fn expect_and_unreachable_address() {
    let sw = start(DEMO_RULES, "[pktgen]\nrate_pps = 1000\n");
    assert_eq!(
        sw.ok(&["expect"]),
        "statewall: 0 expectations have been shown.\n"
    );
    // A statewall that is not there: a clear error naming the address, exit status 1.
    let dead = format!("127.0.0.1:{}", free_port());
    let o = Command::new(bin())
        .args(["ctl", "--addr", &dead, "status"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!(
            "connecting to statewall at {dead} (is it running? see --api)"
        )),
        "{e}"
    );
}

/// A table larger than one scan step per worker: `conntrack count`, `-L` and the JSON
/// list walk each shard in bounded steps (one worker command per step) and still see
/// every connection once.
#[test]
fn conntrack_list_walks_large_tables_in_steps() {
    let flows = 40_000u64;
    let sw = start(
        DEMO_RULES,
        "[conntrack]\nnf_conntrack_max = 131072\n\
         [pktgen]\nmode = \"established\"\nflows = 40000\nrate_pps = 400000\n",
    );
    let per_shard: usize = sw
        .rt
        .on_all(|p, _| p.table().capacity())
        .unwrap()
        .into_iter()
        .min()
        .unwrap();
    assert!(
        per_shard > 2 * statewall::api::ctview::SCAN_STEP,
        "each shard takes several steps ({per_shard} slots)"
    );
    sw.wait(60, "every flow established", |s| {
        count(s, &["--state", "ESTABLISHED"]) == flows
    });
    let text = sw.ok(&["conntrack", "list"]);
    let lines = text.lines().filter(|l| l.starts_with("tcp")).count() as u64;
    assert_eq!(lines, flows);
    assert!(text.ends_with(&format!(
        "statewall: {flows} flow entries have been shown.\n"
    )));
    let all = json_list(&sw, &[]);
    assert_eq!(all.len() as u64, flows);
    let mut tuples: Vec<String> = all.iter().map(|e| e["original"].to_string()).collect();
    tuples.sort();
    tuples.dedup();
    assert_eq!(tuples.len() as u64, flows, "no entry listed twice");
}
