//! /metrics against its consumers: `promtool check metrics`, a real Prometheus server,
//! the Grafana dashboard and alert rules contract, and reloads under traffic.

mod common;
use common::*;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn promtool_check_metrics_passes_without_warnings() {
    if prereq::needs("promtool_check_metrics_passes_without_warnings")
        .tools(&["promtool"])
        .skip()
    {
        return;
    }
    // Opt one rule into the per-rule counters so those families are checked too.
    let rules = DEMO_RULES.replace(
        "-A FORWARD -i inside -m conntrack --ctstate NEW -j ACCEPT",
        "-A FORWARD -i inside -m conntrack --ctstate NEW -m comment --comment \"metric:new_from_inside\" -j ACCEPT",
    );
    let sw = start(&rules, "");
    sw.wait_traffic();
    let scrape = sw.scrape();
    assert!(scrape.contains("statewall_rule_packets_total{table=\"filter\",chain=\"FORWARD\",rule=\"new_from_inside\"}"), "{scrape}");
    let o = run_with_stdin(
        Command::new("promtool").args(["check", "metrics"]),
        scrape.as_bytes(),
    );
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success() && out.trim().is_empty(),
        "promtool:\n{out}\nscrape:\n{scrape}"
    );

    // The contract in METRICS.md: counters end in _total, and every family has HELP and TYPE.
    for l in scrape.lines().filter(|l| l.starts_with("# TYPE ")) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f[3] == "counter" {
            assert!(f[2].ends_with("_total"), "{l}");
        }
        assert!(scrape.contains(&format!("# HELP {} ", f[2])), "{l}");
    }
    // Histogram well-formed: cumulative buckets ending at +Inf == _count, per worker.
    for w in 0..2 {
        let b: Vec<f64> = scrape
            .lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "statewall_worker_burst_size_bucket{{worker=\"{w}\""
                ))
            })
            .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
            .collect();
        assert!(b.len() >= 2 && b.windows(2).all(|x| x[0] <= x[1]), "{b:?}");
        assert_eq!(
            *b.last().unwrap(),
            metric(
                &scrape,
                &format!("statewall_worker_burst_size_count{{worker=\"{w}\"}}")
            )
        );
        let sum = metric(
            &scrape,
            &format!("statewall_worker_burst_size_sum{{worker=\"{w}\"}}"),
        );
        let count = *b.last().unwrap();
        assert!(
            sum >= count && sum <= count * 256.0,
            "sum {sum} count {count}"
        );
    }
    // Pre-initialised label sets.
    for r in [
        "policy",
        "reject",
        "malformed",
        "non_ip",
        "table_full",
        "helper",
        "tx_full",
        "no_buffer",
        "handoff_full",
        "fragment",
        "nat_no_port",
    ] {
        metric(&scrape, &format!("statewall_drops_total{{reason=\"{r}\"}}"));
    }
    assert_eq!(metric(&scrape, "statewall_nat_bindings"), 0.0);
    for s in ["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"] {
        metric(
            &scrape,
            &format!("statewall_packets_total{{state=\"{s}\"}}"),
        );
    }
    for p in ["tcp", "udp", "icmp", "icmpv6", "other"] {
        metric(
            &scrape,
            &format!("statewall_conntrack_expired_total{{proto=\"{p}\"}}"),
        );
    }
    for r in ["success", "failure"] {
        metric(
            &scrape,
            &format!("statewall_ruleset_reloads_total{{result=\"{r}\"}}"),
        );
    }
    for v in ["accept", "drop", "reject"] {
        metric(
            &scrape,
            &format!("statewall_verdicts_total{{verdict=\"{v}\"}}"),
        );
    }
}

#[test]
fn dashboard_and_alert_rules_find_their_metrics() {
    if prereq::needs("dashboard_and_alert_rules_find_their_metrics")
        .python3()
        .skip()
    {
        return;
    }
    let sw = start(DEMO_RULES, "");
    sw.wait_traffic();
    let dir = tempfile::tempdir().unwrap();
    let scrape = dir.path().join("scrape.txt");
    std::fs::write(&scrape, sw.scrape()).unwrap();
    for src in [
        "deploy/grafana/statewall-dashboard.json",
        "deploy/prometheus/statewall.rules.yml",
    ] {
        let o = Command::new(prereq::python3().unwrap())
            .arg(repo().join("deploy/tests/dashboard_metrics.py"))
            .arg(repo().join(src))
            .arg(&scrape)
            .output()
            .unwrap();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        println!("{out}");
        assert!(o.status.success(), "{src}:\n{out}");
        assert!(out.contains("all in METRICS.md and the scrape"), "{out}");
    }
}

/// A Prometheus server on a free loopback port; killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: statewall\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The value of an instant query's first sample, if any.
    fn query(&self, q: &str) -> Option<f64> {
        let mut s = std::net::TcpStream::connect(&self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let enc: String = q
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'_' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        write!(
            s,
            "GET /api/v1/query?query={enc} HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.addr
        )
        .ok()?;
        let mut r = String::new();
        s.read_to_string(&mut r).ok()?;
        let body = r.split_once("\r\n\r\n")?.1;
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_statewall() {
    if prereq::needs("a_real_prometheus_scrapes_statewall")
        .tools(&["prometheus"])
        .skip()
    {
        return;
    }
    let sw = start(DEMO_RULES, "");
    sw.wait_traffic();
    let prom = Prometheus::start(&sw.addr);
    let t = Instant::now();
    let mut got = (None, None);
    while t.elapsed() < Duration::from_secs(30) {
        got = (
            prom.query("sum(statewall_port_rx_packets_total)"),
            prom.query("statewall_conntrack_entries"),
        );
        if matches!(got, (Some(a), Some(b)) if a > 0.0 && b > 0.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        matches!(got, (Some(a), Some(b)) if a > 0.0 && b > 0.0),
        "no non-zero values from Prometheus within 30 s: {got:?}\n{}",
        prom.log()
    );
    assert_eq!(prom.query("up{job=\"statewall\"}"), Some(1.0));
}

#[test]
fn hundred_reloads_under_traffic_lose_nothing() {
    let sw = start(
        DEMO_RULES,
        "[pktgen]\nmode = \"lifecycle\"\nflows = 256\nrate_pps = 20000\n",
    );
    sw.wait_traffic();
    let started = sw
        .rt
        .pktgen
        .as_ref()
        .unwrap()
        .snapshot()
        .connections_started;
    // Through the control API, as `statewall ctl rules reload` does it.
    for i in 0..100u64 {
        assert_eq!(
            sw.ok(&["rules", "reload"]).trim(),
            format!("reloaded: ruleset generation {}", i + 2)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let connections opened around the last reload finish.
    std::thread::sleep(Duration::from_millis(1500));
    let s = sw.scrape();
    assert_eq!(reloads(&s), (1.0, 100.0, 0.0));
    assert_eq!(metric(&s, "statewall_ruleset_generation"), 101.0);
    for l in s
        .lines()
        .filter(|l| l.starts_with("statewall_drops_total{"))
    {
        assert!(l.ends_with(" 0"), "a drop during reloads: {l}");
    }
    sw.rt.shutdown();
    let g = sw.rt.pktgen.as_ref().unwrap().snapshot();
    println!("{g:?}");
    assert!(
        g.connections_started > started + 100,
        "traffic flowed during the reloads: {g:?}"
    );
    assert_eq!(g.tx_offered, g.rx_forwarded, "{g:?}");
    assert_eq!(g.dropped, 0, "{g:?}");
    assert_eq!(g.connections_timed_out, 0, "{g:?}");
    assert_eq!(g.unexpected, 0, "{g:?}");
    assert_eq!(sw.state("INVALID"), 0);
}
