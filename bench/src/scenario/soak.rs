//! `statewall-bench soak --minutes N`: the whole runtime under mixed load for N minutes,
//! then checks that nothing leaked and every counter adds up. Exits 1 on a failed check.
//!
//! What runs, in this process:
//! * a [`Runtime`] as `statewall run` starts it, with the built-in generator's two ports
//!   in a forward pair and a stateful ruleset (`FORWARD DROP`, ESTABLISHED/RELATED
//!   accepted, NEW TCP/80, UDP/53 and ICMP echo from the inside accepted);
//! * mixed lifecycles: pktgen lifecycle traffic (full TCP connections with FIN or RST,
//!   UDP exchanges, ICMP echoes), each connection on a fresh source port;
//! * table churn: short closing timeouts (TIME_WAIT, CLOSE, UDP, ICMP 2 s) so entries
//!   are inserted and expired all the time;
//! * control-API load: a thread sends requests through the API's router
//!   ([`statewall::api::handle`], what the HTTP server calls for each request, so the
//!   check does not depend on the transport): `/metrics`, `/api/v1/status` and a
//!   conntrack count every 20 ms; a reload (`POST /api/v1/reload`, after rewriting the
//!   rules file) or a replacement (`PUT /api/v1/rules`) twice a second, alternating
//!   between two rulesets that judge the generated traffic alike; and every 5 s a bad
//!   ruleset, which must be refused with the running one kept.
//!
//! Checks at the end (the workers stopped, so every counter is final):
//! * RSS (`VmRSS` of /proc/self/status): after the warm-up (a quarter of the run, at
//!   most 20 s: the table's preallocated pages are touched by then, since the working
//!   set is steady), the highest sample exceeds the warm-up sample by at most
//!   [`RSS_BOUND_KIB`];
//! * no drop reason but `policy` counted;
//! * per port, what the port counted equals what the generator counted at the other
//!   end (inside rx = client packets offered, inside tx = packets the clients received,
//!   outside likewise with the servers), and over the pair rx = tx + drops by reason;
//! * the generator's hosts saw no packet that fits no connection state;
//! * every API request answered as expected, every good reload published, every bad
//!   one refused and the generation unchanged by it;
//! * the scenario did what it says: TCP, UDP and ICMP entries were expired, and some TCP
//!   connections ended with a RST.

use dataplane::conntrack::CtCounter;
use dataplane::worker::DropReason;
use statewall::config::Config;
use statewall::runtime::Runtime;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Largest RSS growth accepted after the warm-up, in KiB.
pub(crate) const RSS_BOUND_KIB: u64 = 8 * 1024;

const RULES_A: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i inside -p tcp --dport 80 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i inside -p udp --dport 53 -j ACCEPT
-A FORWARD -i inside -p icmp --icmp-type echo-request -j ACCEPT
COMMIT
";

/// The same verdicts for the generated traffic, other rules around them.
const RULES_B: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i outside -p tcp --dport 22 -j DROP
-A FORWARD -i inside -p tcp -m multiport --dports 80,443 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i inside -p udp --dport 53 -j ACCEPT
-A FORWARD -i inside -p icmp -j ACCEPT
-A FORWARD -i inside -p tcp --dport 25 -j DROP
COMMIT
";

/// Refused whole (an unknown target), the running ruleset stays.
const RULES_BAD: &str = "*filter
:FORWARD DROP [0:0]
-A FORWARD -p tcp --dport 80 -j NOSUCHTARGET
COMMIT
";

/// `VmRSS` of this process in KiB (0 when unreadable).
pub(crate) fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// What the API-load thread did.
#[derive(Debug, Default)]
struct ApiLoad {
    reads: AtomicU64,
    reloads: AtomicU64,
    bad_refused: AtomicU64,
    wrong: AtomicU64,
    first_wrong: std::sync::Mutex<Option<String>>,
}

impl ApiLoad {
    fn wrong(&self, what: String) {
        self.wrong.fetch_add(1, Relaxed);
        let mut f = self.first_wrong.lock().unwrap_or_else(|e| e.into_inner());
        f.get_or_insert(what);
    }
}

/// The API load: reads every 20 ms, a reload or replacement every 500 ms, a bad
/// ruleset every 5 s, until `stop`.
fn api_load(rt: &Runtime, rules_path: &std::path::Path, stop: &AtomicBool, a: &ApiLoad) {
    let t0 = Instant::now();
    let (mut next_reload, mut next_bad, mut n) = (0.5, 5.0, 0u64);
    while !stop.load(Relaxed) {
        for url in ["/metrics", "/api/v1/status", "/api/v1/conntrack/count"] {
            let (code, _, body) = statewall::api::handle(rt, "GET", url, "");
            if code != 200 || body.is_empty() {
                a.wrong(format!("GET {url}: {code} {body:.200}"));
            }
            a.reads.fetch_add(1, Relaxed);
        }
        let t = t0.elapsed().as_secs_f64();
        if t >= next_reload {
            next_reload += 0.5;
            n += 1;
            let text = if n % 2 == 0 { RULES_A } else { RULES_B };
            let (code, body) = if n % 4 < 2 {
                // A reload re-reads the rules file, as SIGHUP does.
                if let Err(e) = std::fs::write(rules_path, text) {
                    a.wrong(format!("writing the rules file: {e}"));
                }
                let (c, _, b) = statewall::api::handle(rt, "POST", "/api/v1/reload", "");
                (c, b)
            } else {
                let (c, _, b) = statewall::api::handle(rt, "PUT", "/api/v1/rules?name=soak", text);
                (c, b)
            };
            if code == 200 {
                a.reloads.fetch_add(1, Relaxed);
            } else {
                a.wrong(format!("reload {n}: {code} {body:.300}"));
            }
        }
        if t >= next_bad {
            next_bad += 5.0;
            let before = rt.reloads.generation.load(Relaxed);
            let (code, _, body) =
                statewall::api::handle(rt, "PUT", "/api/v1/rules?name=bad", RULES_BAD);
            let after = rt.reloads.generation.load(Relaxed);
            if code == 400 && after == before {
                a.bad_refused.fetch_add(1, Relaxed);
            } else {
                a.wrong(format!(
                    "bad ruleset: {code} (generation {before} -> {after}) {body:.200}"
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The figures and the verdict of one soak run.
#[derive(Debug, Default)]
pub(crate) struct SoakReport {
    /// Lines of the report (figures).
    pub(crate) lines: Vec<String>,
    /// Failed checks (empty: passed).
    pub(crate) failures: Vec<String>,
}

fn config_text(dir: &std::path::Path, workers: usize) -> String {
    format!(
        r#"[dataplane]
workers = {workers}

[[port]]
name = "inside"
backend = "pktgen"
side = "inside"

[[port]]
name = "outside"
backend = "pktgen"
side = "outside"

[[pair]]
mode = "forward"
network = "outside"
host = "inside"

[pktgen]
mode = "lifecycle"
flows = 2048
reuse_ports = false
rate_pps = 300000

[rules]
file = "{rules}"

[conntrack]
nf_conntrack_max = 262144

[conntrack.timeouts]
tcp_timeout_time_wait = 2
tcp_timeout_close = 2
udp_timeout = 2
udp_timeout_stream = 2
icmp_timeout = 2

[control]
listen = ""
stats_interval = 0
"#,
        rules = dir.join("rules.v4").display()
    )
}

/// Runs the soak for `secs` seconds with `workers` workers; prints progress every
/// `progress` seconds.
pub(crate) fn run_soak(secs: f64, workers: usize, progress: f64) -> SoakReport {
    let mut r = SoakReport::default();
    let dir = std::env::temp_dir().join(format!("statewall-soak-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        r.failures.push(format!("creating {}: {e}", dir.display()));
        return r;
    }
    let rules_path = dir.join("rules.v4");
    let rss_start = rss_kib();
    if let Err(e) = std::fs::write(&rules_path, RULES_A) {
        r.failures
            .push(format!("writing {}: {e}", rules_path.display()));
        return r;
    }
    let started =
        Config::parse(&config_text(&dir, workers), "soak").and_then(|c| Runtime::start(c, false));
    let rt = match started {
        Ok(rt) => rt,
        Err(e) => {
            r.failures.push(format!("runtime start: {e:#}"));
            let _ = std::fs::remove_dir_all(&dir);
            return r;
        }
    };
    let rss_running = rss_kib();
    let warm = (secs / 4.0).min(20.0);
    let stop_api = AtomicBool::new(false);
    let load = ApiLoad::default();
    let t0 = Instant::now();
    let (mut rss_warm, mut rss_max_after, mut samples) = (0u64, 0u64, 0u64);
    let mut next_progress = progress;
    std::thread::scope(|s| {
        s.spawn(|| api_load(&rt, &rules_path, &stop_api, &load));
        while t0.elapsed().as_secs_f64() < secs {
            std::thread::sleep(Duration::from_millis(250));
            let t = t0.elapsed().as_secs_f64();
            let rss = rss_kib();
            if t >= warm {
                if rss_warm == 0 {
                    rss_warm = rss;
                }
                rss_max_after = rss_max_after.max(rss);
                samples += 1;
            }
            if progress > 0.0 && t >= next_progress {
                next_progress += progress;
                let g = rt.pktgen.as_ref().map(|p| p.snapshot()).unwrap_or_default();
                println!(
                    "soak: {t:>6.0} s  connections {:>10} done {:>10}  entries {:>7}  \
                     reloads {:>5}  api reads {:>7}  RSS {} KiB",
                    g.connections_started,
                    g.connections_completed,
                    rt.sum(|w| w.ct_entries.load(Relaxed)),
                    load.reloads.load(Relaxed),
                    load.reads.load(Relaxed),
                    rss
                );
            }
        }
        stop_api.store(true, Relaxed);
    });
    let elapsed = t0.elapsed().as_secs_f64();
    rt.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    check(&rt, &load, elapsed, &mut r);
    // RSS.
    let growth = rss_max_after.saturating_sub(rss_warm);
    r.lines.push(format!(
        "RSS: {rss_start} KiB before start, {rss_running} KiB running (table and pools \
         preallocated), {rss_warm} KiB after {warm:.0} s warm-up, max {rss_max_after} KiB \
         after it ({samples} samples): growth {growth} KiB (bound {RSS_BOUND_KIB} KiB)"
    ));
    if rss_warm == 0 || samples == 0 {
        r.failures
            .push("RSS: no sample after the warm-up (run longer)".into());
    } else if growth > RSS_BOUND_KIB {
        r.failures.push(format!(
            "RSS grew by {growth} KiB after the warm-up (bound {RSS_BOUND_KIB} KiB)"
        ));
    }
    r
}

/// The counter and behaviour checks, on a stopped runtime.
fn check(rt: &Runtime, load: &ApiLoad, elapsed: f64, r: &mut SoakReport) {
    let ld = |a: &AtomicU64| a.load(Relaxed);
    let g = rt.pktgen.as_ref().map(|p| p.snapshot()).unwrap_or_default();
    let packets = rt.sum(|w| ld(&w.packets));
    r.lines.push(format!(
        "ran {elapsed:.1} s: {} connections started, {} completed ({} reset, {} timed out), \
         {packets} packets ({:.2} Mpps), {} forwarded",
        g.connections_started,
        g.connections_completed,
        g.connections_reset,
        g.connections_timed_out,
        packets as f64 / elapsed / 1e6,
        rt.sum(|w| ld(&w.forwarded)),
    ));
    let ct = |c: CtCounter| rt.sum(|w| w.ct(c));
    let exp = |i: usize| {
        let c = [
            CtCounter::ExpiredTcp,
            CtCounter::ExpiredUdp,
            CtCounter::ExpiredIcmp,
        ][i];
        ct(c)
    };
    r.lines.push(format!(
        "table churn: {} inserts, expired tcp {} udp {} icmp {}, early drops {}, \
         entries at the end {} of {}",
        ct(CtCounter::Insert),
        exp(0),
        exp(1),
        exp(2),
        ct(CtCounter::EarlyDrop),
        rt.sum(|w| ld(&w.ct_entries)),
        rt.ct_limit
    ));
    if g.connections_reset == 0 {
        r.failures
            .push("no TCP connection ended with a RST: the mix did not run".into());
    }
    for (i, p) in ["tcp", "udp", "icmp"].iter().enumerate() {
        if exp(i) == 0 {
            r.failures
                .push(format!("no {p} entry expired: the mix did not run"));
        }
    }
    // Drops: only policy.
    let mut drops = 0;
    let mut by_reason = Vec::new();
    for reason in DropReason::ALL {
        let n = rt.sum(|w| ld(&w.drops[reason as usize]));
        drops += n;
        if n > 0 {
            by_reason.push(format!("{} {n}", reason.as_str()));
        }
        if n > 0 && reason != DropReason::Policy {
            r.failures
                .push(format!("{n} packets dropped for {}", reason.as_str()));
        }
    }
    r.lines.push(format!(
        "drops: {drops} ({})",
        if by_reason.is_empty() {
            "none".to_string()
        } else {
            by_reason.join(", ")
        }
    ));
    // Per port: the port's counters against the generator's at the other end.
    let port = |name: &str| {
        rt.ports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.total())
            .unwrap_or_default()
    };
    let (pi, po) = (port("inside"), port("outside"));
    for (name, what, got, want) in [
        ("inside", "rx", pi.rx_packets, g.client_offered),
        ("inside", "tx", pi.tx_packets, g.client_received),
        ("outside", "rx", po.rx_packets, g.server_offered),
        ("outside", "tx", po.tx_packets, g.server_received),
    ] {
        r.lines
            .push(format!("port {name}: {what} {got} (generator: {want})"));
        if got != want {
            r.failures.push(format!(
                "port {name}: {what} {got} but the generator counted {want}"
            ));
        }
    }
    let (rx, tx) = (pi.rx_packets + po.rx_packets, pi.tx_packets + po.tx_packets);
    r.lines
        .push(format!("pair: rx {rx} = tx {tx} + drops {drops}"));
    if rx != tx + drops {
        r.failures.push(format!(
            "counters do not add up: rx {rx} != tx {tx} + drops {drops} (by reason)"
        ));
    }
    if g.unexpected > 0 {
        r.failures.push(format!(
            "{} packets reached a simulated host that fit no connection state",
            g.unexpected
        ));
    }
    // The API.
    let (ok, failed) = (ld(&rt.reloads.ok), ld(&rt.reloads.failed));
    r.lines.push(format!(
        "control API: {} reads, {} reloads published (runtime: {ok} ok, {failed} failed), \
         {} bad rulesets refused, {} unexpected answers",
        ld(&load.reads),
        ld(&load.reloads),
        ld(&load.bad_refused),
        ld(&load.wrong)
    ));
    if ld(&load.wrong) > 0 {
        let first = load
            .first_wrong
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        r.failures.push(format!(
            "{} API answers were not the expected ones; first: {first}",
            ld(&load.wrong)
        ));
    }
    if ok != ld(&load.reloads) || failed != ld(&load.bad_refused) {
        r.failures.push(format!(
            "reload bookkeeping: runtime {ok} ok / {failed} failed, the load thread saw \
             {} ok / {} refused",
            ld(&load.reloads),
            ld(&load.bad_refused)
        ));
    }
    if ld(&load.reloads) == 0 || ld(&load.reads) == 0 {
        r.failures
            .push("the API load did not run (no reload or no read)".into());
    }
}

/// `statewall-bench soak [--minutes N] [--seconds S] [--workers W]`.
pub(crate) fn soak_cmd(args: &[String]) {
    let (mut secs, mut workers) = (60.0, 1usize);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().and_then(|v| v.parse::<f64>().ok());
        match (a.as_str(), v) {
            ("--minutes", Some(m)) if m > 0.0 => secs = m * 60.0,
            ("--seconds", Some(s)) if s > 0.0 => secs = s,
            ("--workers", Some(w)) if w >= 1.0 => workers = w as usize,
            _ => {
                eprintln!("usage: statewall-bench soak [--minutes N] [--seconds S] [--workers W]");
                std::process::exit(2);
            }
        }
    }
    println!("statewall-bench soak: {secs:.0} s, {workers} worker(s)");
    let progress = if secs >= 120.0 { 30.0 } else { 10.0 };
    let r = run_soak(secs, workers, progress);
    for l in &r.lines {
        println!("soak: {l}");
    }
    if r.failures.is_empty() {
        println!("soak: PASS");
    } else {
        for f in &r.failures {
            eprintln!("soak: FAIL: {f}");
        }
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short soak passes every check (the same checks the long one makes).
    #[test]
    fn soak_short_run_passes_its_checks() {
        let r = run_soak(6.0, 1, 0.0);
        assert!(r.failures.is_empty(), "{:#?}\n{:#?}", r.failures, r.lines);
    }
}
