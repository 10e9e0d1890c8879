//! `statewall-bench`: the benchmark suite and its peers (see `bench/README.md`).
//!
//! ```text
//! statewall-bench [--quick | --full] [--only a,b,..] [--ovs-ref-ms MS]
//! statewall-bench ovs-benchmark THREADS PACKETS BATCH [CHANGE]
//! statewall-bench flood DST_IP SECONDS [FLOWS]     (UDP generator for the kernel peer)
//! ```

use arc_swap::ArcSwap;
use dataplane::conntrack::{ConnTable, CtState, Nanos, TrackOpts};
use dataplane::packet::build::PacketSpec;
use dataplane::packet::{tcp_flags as tf, Parsed};
use dataplane::port::pktgen::{PktgenConfig, PktgenPair, RangeProto, RangeTraffic, Traffic};
use dataplane::port::{Mbuf, MbufPool, Port};
use dataplane::ruleset::{parse_ruleset, Ruleset};
use dataplane::worker::{Action, NonIpPolicy, PairMode, PairView, Pipeline, Side};
use serde_json::{json, Value};
use statewall_bench::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quick,
    Standard,
    Full,
}

struct Opts {
    mode: Mode,
    only: Vec<String>,
    ovs_ref_ms: Option<f64>,
}

impl Opts {
    fn secs(&self) -> f64 {
        match self.mode {
            Mode::Quick => 0.5,
            Mode::Standard => 1.5,
            Mode::Full => 2.5,
        }
    }
    fn wants(&self, s: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| s.starts_with(o.as_str()))
    }
}

/// One line of the table (and one object of the JSON).
#[derive(Default)]
struct Row {
    scenario: String,
    params: String,
    mpps: Option<f64>,
    ns_pkt: Option<f64>,
    cps: Option<f64>,
    peer: String,
    extra: Value,
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

fn print_row(r: &Row) {
    println!(
        "{:<22} {:<34} {:>9} {:>9} {:>11}  {}",
        r.scenario,
        r.params,
        fmt_opt(r.mpps, 3),
        fmt_opt(r.ns_pkt, 1),
        r.cps
            .map(|c| format!("{:.0}", c))
            .unwrap_or_else(|| "-".into()),
        r.peer
    );
}

fn header() {
    println!(
        "{:<22} {:<34} {:>9} {:>9} {:>11}  peer / notes",
        "scenario", "parameters", "Mpps/core", "ns/pkt", "conn/s"
    );
    println!("{}", "-".repeat(130));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ovs-benchmark") => return ovs_benchmark_cmd(&args[1..]),
        Some("flood") => return flood_cmd(&args[1..]),
        _ => {}
    }
    let mut o = Opts {
        mode: Mode::Standard,
        only: Vec::new(),
        ovs_ref_ms: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.mode = Mode::Quick,
            "--full" => o.mode = Mode::Full,
            "--only" => {
                o.only = it
                    .next()
                    .map(|s| s.split(',').map(String::from).collect())
                    .unwrap_or_default()
            }
            "--ovs-ref-ms" => o.ovs_ref_ms = it.next().and_then(|s| s.parse().ok()),
            "-h" | "--help" => {
                println!("statewall-bench [--quick|--full] [--only SCEN,..] [--ovs-ref-ms MS]\nstatewall-bench ovs-benchmark THREADS PACKETS BATCH [CHANGE]\nstatewall-bench flood DST_IP SECONDS [FLOWS]");
                return;
            }
            other => {
                eprintln!("statewall-bench: unknown argument {other:?} (see --help)");
                std::process::exit(2);
            }
        }
    }
    if std::env::var("STATEWALL_BENCH_FULL").as_deref() == Ok("1") {
        o.mode = Mode::Full;
    }
    let started = Instant::now();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "statewall-bench: mode {:?}, {} core(s) available, {}",
        o.mode,
        cores,
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |s| s.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string())
            )
            .unwrap_or_default()
    );
    let mut rows: Vec<Row> = Vec::new();
    header();
    // Each scenario family: the names `--only` selects it by, and its runner.
    type Runner<'a> = Box<dyn Fn() -> Vec<Row> + 'a>;
    let scenarios: Vec<(&[&str], Runner)> = vec![
        (&["established", "memory"], Box::new(|| established(&o))),
        (&["churn"], Box::new(|| churn(&o))),
        (&["pipeline"], Box::new(|| pipeline_range(&o))),
        (&["ruleset"], Box::new(|| ruleset_size(&o))),
        (&["scaling"], Box::new(|| scaling(&o, cores))),
        (&["rule-swap"], Box::new(|| rule_swaps(&o))),
        (&["ovs"], Box::new(|| ovs_scenario(&o, cores))),
        (&["kernel"], Box::new(|| kernel_peer(&o))),
    ];
    for (names, run) in &scenarios {
        if names.iter().any(|n| o.wants(n)) {
            for r in run() {
                print_row(&r);
                rows.push(r);
            }
        }
    }
    let total = started.elapsed().as_secs_f64();
    println!("statewall-bench: done in {total:.1} s");
    if let Err(e) = write_json(&o, &rows, cores, total) {
        eprintln!("statewall-bench: could not write results: {e}");
    }
}

fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

fn utc_stamp() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (s.div_euclid(86400), s.rem_euclid(86400));
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn write_json(o: &Opts, rows: &[Row], cores: usize, total: f64) -> std::io::Result<()> {
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    let stamp = utc_stamp();
    let v = json!({
        "timestamp": stamp,
        "mode": format!("{:?}", o.mode).to_lowercase(),
        "cores": cores,
        "duration_s": total,
        "rows": rows.iter().map(|r| json!({
            "scenario": r.scenario,
            "params": r.params,
            "mpps_per_core": r.mpps,
            "ns_per_packet": r.ns_pkt,
            "connections_per_s": r.cps,
            "peer": r.peer,
            "extra": r.extra,
        })).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&v).expect("json");
    let path = dir.join(format!("{stamp}.json"));
    std::fs::write(&path, &text)?;
    std::fs::write(dir.join("latest.json"), &text)?;
    let svg = plot_svg(rows);
    std::fs::write(dir.join(format!("{stamp}.svg")), &svg)?;
    std::fs::write(dir.join("latest.svg"), &svg)?;
    println!(
        "statewall-bench: results in {} (plot: latest.svg)",
        path.display()
    );
    Ok(())
}

/// One line of a chart: a label, a colour and its (x, y) points.
type Series = (String, &'static str, Vec<(f64, f64)>);

/// Two charts as one SVG: established Mpps per core against the number of tracked
/// connections (log x, uniform and zipf), and total Mpps against workers (scaling).
fn plot_svg(rows: &[Row]) -> String {
    let mut est: Vec<Series> = vec![
        ("uniform".into(), "#1f77b4", Vec::new()),
        ("zipf".into(), "#ff7f0e", Vec::new()),
    ];
    let mut scale: Vec<Series> = vec![("total Mpps".into(), "#2ca02c", Vec::new())];
    for r in rows {
        match (r.scenario.as_str(), r.mpps) {
            ("established", Some(m)) => {
                let n = r.extra["connections"].as_f64().unwrap_or(0.0);
                let i = usize::from(r.extra["pattern"].as_str() == Some("zipf"));
                est[i].2.push((n.log10(), m));
            }
            ("scaling", Some(_)) => {
                if let (Some(w), Some(t)) =
                    (r.extra["workers"].as_f64(), r.extra["total_mpps"].as_f64())
                {
                    scale[0].2.push((w, t));
                }
            }
            _ => {}
        }
    }
    let mut out = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"920\" height=\"360\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"920\" height=\"360\" fill=\"white\"/>\n",
    );
    out += &chart(
        0.0,
        "Established packets: Mpps per core vs tracked connections",
        "connections (log10)",
        &est,
    );
    out += &chart(
        460.0,
        "Scaling: total Mpps vs workers (pktgen, established)",
        "workers",
        &scale,
    );
    out += "</svg>\n";
    out
}

fn chart(x0: f64, title: &str, xlabel: &str, series: &[Series]) -> String {
    let (w, h, l, t) = (400.0, 260.0, x0 + 50.0, 50.0);
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.2.iter().copied()).collect();
    let mut o = format!(
        "<text x=\"{}\" y=\"24\" font-weight=\"bold\">{title}</text>\n",
        x0 + 10.0
    );
    if pts.is_empty() {
        return o + &format!(
            "<text x=\"{}\" y=\"150\">no data in this run</text>\n",
            l + 100.0
        );
    }
    let (xmin, xmax) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let ymax = pts.iter().fold(0.0f64, |a, p| a.max(p.1)) * 1.1;
    let xspan = if xmax > xmin { xmax - xmin } else { 1.0 };
    let sx = |x: f64| l + (x - xmin) / xspan * w;
    let sy = |y: f64| t + h - y / ymax.max(1e-9) * h;
    o += &format!(
        "<line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{}\" stroke=\"black\"/>\n",
        t + h, l + w, t + h, t + h
    );
    o += &format!(
        "<text x=\"{}\" y=\"{}\">{xlabel}</text>\n",
        l + w / 2.0 - 40.0,
        t + h + 35.0
    );
    for k in 0..=4 {
        let y = ymax * k as f64 / 4.0;
        o += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{y:.1}</text>\n",
            l - 5.0,
            sy(y) + 4.0
        );
    }
    for &(x, _) in &pts {
        o += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x:.0}</text>\n",
            sx(x),
            t + h + 15.0
        );
    }
    for (i, (name, colour, p)) in series.iter().enumerate() {
        let mut p = p.clone();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = p
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        o += &format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n",
            path.join(" ")
        );
        for &(x, y) in &p {
            o += &format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>\n",
                sx(x),
                sy(y)
            );
        }
        o += &format!(
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>\n",
            l + w - 80.0,
            t + 15.0 + 15.0 * i as f64
        );
    }
    o
}

// ---------------------------------------------------------------- established + memory

fn established(o: &Opts) -> Vec<Row> {
    let mut sizes = vec![1_000u32, 100_000, 1_000_000];
    if o.mode == Mode::Full {
        sizes.push(10_000_000);
    }
    let lookups: usize = match o.mode {
        Mode::Quick => 1 << 21,
        _ => 1 << 23,
    };
    let peer = build_rte_hash_peer();
    let mut out = Vec::new();
    if let Err(why) = &peer {
        out.push(Row {
            scenario: "peer rte_hash".into(),
            params: "skipped".into(),
            peer: why.clone(),
            ..Default::default()
        });
    }
    for &n in &sizes {
        let frames = data_frames(n);
        let rss0 = rss_bytes();
        let t0 = Instant::now();
        let (mut table, failed) = established_table(n as usize, n);
        let setup = t0.elapsed().as_secs_f64();
        let rss1 = rss_bytes();
        let mem = table.memory_bytes();
        let keys = peer.as_ref().ok().map(|_| write_keys(n));
        for pat in [Pattern::Uniform, Pattern::Zipf] {
            let order = access_order(n, lookups, pat, 42 + n as u64);
            let (ns, est) = time_established(&mut table, &frames, &order);
            let mut r = Row {
                scenario: "established".into(),
                params: format!("{} conns, {}, 64B", human(n as u64), pat.name()),
                mpps: Some(1e3 / ns),
                ns_pkt: Some(ns),
                extra: json!({"connections": n, "pattern": pat.name(), "packets": order.len(),
                              "established_fraction": est as f64 / order.len() as f64,
                              "handshake_failures": failed, "setup_s": setup}),
                ..Default::default()
            };
            match (&peer, &keys) {
                (Ok(bin), Some(Ok(kf))) => match run_rte_hash(bin, kf, &order) {
                    Ok(rns) => {
                        r.peer = format!(
                            "rte_hash bulk {rns:.1} ns/key; statewall/rte_hash = {:.2}x",
                            ns / rns
                        );
                        r.extra["rte_hash_ns_per_key"] = json!(rns);
                        r.extra["ratio_vs_rte_hash"] = json!(ns / rns);
                    }
                    Err(e) => r.peer = format!("rte_hash failed: {e}"),
                },
                (Ok(_), Some(Err(e))) => r.peer = format!("rte_hash: key file: {e}"),
                _ => r.peer = "rte_hash skipped".into(),
            }
            out.push(r);
        }
        if n >= 1_000_000 {
            let conns = table.len() as f64;
            out.push(Row {
                scenario: "memory".into(),
                params: format!("{} conns tracked", human(n as u64)),
                peer: format!(
                    "RSS delta {:.1} B/conn; table {:.1} B/entry of capacity (ENTRY_SIZE {})",
                    (rss1.saturating_sub(rss0)) as f64 / conns,
                    mem as f64 / table.capacity() as f64,
                    dataplane::conntrack::ENTRY_SIZE
                ),
                extra: json!({"connections": conns, "rss_delta_bytes": rss1.saturating_sub(rss0),
                              "rss_bytes_per_conn": (rss1.saturating_sub(rss0)) as f64 / conns,
                              "table_bytes": mem, "capacity": table.capacity(),
                              "table_bytes_per_entry": mem as f64 / table.capacity() as f64}),
                ..Default::default()
            });
        }
        if let Some(Ok(kf)) = keys {
            let _ = std::fs::remove_file(kf);
        }
    }
    out
}

fn human(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Times parse + hash/prefetch + track of data packets in bursts of 32 (frames copied
/// into a hot burst buffer first, untimed); the first 10 % of `order` warms up untimed.
fn time_established(t: &mut ConnTable, frames: &[u8], order: &[u32]) -> (f64, u64) {
    let mut hot = [[0u8; FRAME]; BURST];
    let mut ps: Vec<Parsed> = vec![parsed(&frames[..FRAME]); BURST];
    let mut now: Nanos = 2_000_000_000;
    let mut timed = Duration::ZERO;
    let mut est = 0u64;
    let mut counted = 0u64;
    let warm = order.len() / 10 / BURST * BURST;
    for (b, chunk) in order.chunks_exact(BURST).enumerate() {
        for (k, &i) in chunk.iter().enumerate() {
            let o = i as usize * FRAME;
            hot[k].copy_from_slice(&frames[o..o + FRAME]);
        }
        now += 1_000;
        let t0 = Instant::now();
        let mut hs = [0u64; BURST];
        for k in 0..BURST {
            ps[k] = parsed(&hot[k]);
            hs[k] = t.prefetch(&ps[k]);
        }
        for &h in &hs {
            t.prefetch_entries(h);
        }
        let mut e = 0u64;
        for k in 0..BURST {
            // The stage-1 hash goes along, as the worker's pipeline passes it.
            let opts = TrackOpts {
                hash: hs[k],
                ..Default::default()
            };
            let tr = t.track(&hot[k], &ps[k], now, opts);
            let _ = t.confirm(&tr, true, &hot[k], &ps[k], now);
            e += (tr.state == CtState::Established) as u64;
        }
        let dt = t0.elapsed();
        if b * BURST >= warm {
            timed += dt;
            est += e;
            counted += BURST as u64;
        }
    }
    (timed.as_nanos() as f64 / counted.max(1) as f64, est)
}

fn build_rte_hash_peer() -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/rte_hash_bench.c");
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "libdpdk"])
        .output()
        .map_err(|e| format!("pkg-config not found ({e}); install pkg-config libdpdk-dev"))?;
    if !flags.status.success() {
        return Err(
            "libdpdk-dev not installed (pkg-config libdpdk failed): rte_hash peer skipped".into(),
        );
    }
    let out = std::env::temp_dir().join(format!("statewall-rte-hash-bench-{}", std::process::id()));
    let flags = String::from_utf8_lossy(&flags.stdout).to_string();
    let st = Command::new("cc")
        .args(["-O3", "-march=native", "-o"])
        .arg(&out)
        .arg(&src)
        .args(flags.split_whitespace())
        .output()
        .map_err(|e| format!("cc not found: {e}"))?;
    if !st.status.success() {
        return Err(format!(
            "building rte_hash_bench failed: {}",
            String::from_utf8_lossy(&st.stderr)
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    Ok(out)
}

/// 16-byte keys (src ip, dst ip, sport, dport, proto, 3 bytes of padding) of flows 0..n.
fn write_keys(n: u32) -> Result<PathBuf, String> {
    let mut v = Vec::with_capacity(n as usize * 16);
    for i in 0..n {
        let (c, s) = (client(i), server(i));
        let (IpAddr::V4(ca), IpAddr::V4(sa)) = (c.ip(), s.ip()) else {
            unreachable!()
        };
        v.extend_from_slice(&ca.octets());
        v.extend_from_slice(&sa.octets());
        v.extend_from_slice(&c.port().to_be_bytes());
        v.extend_from_slice(&s.port().to_be_bytes());
        v.extend_from_slice(&[6, 0, 0, 0]);
    }
    let p = std::env::temp_dir().join(format!("statewall-keys-{}-{n}.bin", std::process::id()));
    std::fs::write(&p, v).map_err(|e| e.to_string())?;
    Ok(p)
}

fn run_rte_hash(bin: &Path, keys: &Path, order: &[u32]) -> Result<f64, String> {
    let of = std::env::temp_dir().join(format!("statewall-order-{}.bin", std::process::id()));
    let bytes: Vec<u8> = order.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&of, bytes).map_err(|e| e.to_string())?;
    let out = Command::new(bin)
        .arg(keys)
        .arg(&of)
        .arg(BURST.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&of);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("rte_hash "))
        .ok_or_else(|| {
            format!(
                "no result: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )
        })?;
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .map(str::to_string)
    };
    let found: u64 = field("found=").and_then(|x| x.parse().ok()).unwrap_or(0);
    let lookups: u64 = field("lookups=").and_then(|x| x.parse().ok()).unwrap_or(1);
    if found != lookups {
        return Err(format!("rte_hash found {found} of {lookups}"));
    }
    field("ns_per_key=")
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| "unparsable".into())
}

// ---------------------------------------------------------------- churn

fn churn(o: &Opts) -> Vec<Row> {
    vec![churn_tcp(o.secs()), churn_udp(o.secs())]
}

/// Frames of one lifecycle step for a group of flows.
struct Burst {
    buf: Vec<[u8; 128]>,
    len: Vec<usize>,
}

impl Burst {
    fn new() -> Self {
        Burst {
            buf: vec![[0u8; 128]; BURST],
            len: vec![0; BURST],
        }
    }
}

/// Runs bursts through `t` (parse + prefetch all, then track + confirm each; the
/// bounded expiry sweep the worker does after a busy burst). Returns INVALID packets.
fn run_bursts(t: &mut ConnTable, bursts: &[Burst], ps: &mut [Parsed], now: Nanos) -> u64 {
    let mut invalid = 0;
    for b in bursts {
        let mut hs = [0u64; BURST];
        for (k, p) in ps.iter_mut().enumerate().take(BURST) {
            *p = parsed(&b.buf[k][..b.len[k]]);
            hs[k] = t.prefetch(p);
        }
        for &h in &hs {
            t.prefetch_entries(h);
        }
        for (k, p) in ps.iter().enumerate().take(BURST) {
            let f = &b.buf[k][..b.len[k]];
            let tr = t.track(f, p, now, TrackOpts::default());
            let _ = t.confirm(&tr, true, f, p, now);
            invalid += (tr.state == CtState::Invalid) as u64;
        }
        t.expire(now, dataplane::worker::SWEEP_BUDGET_BUSY);
    }
    invalid
}

fn churn_tcp(secs: f64) -> Row {
    let cap = 1 << 20;
    let mut t = ConnTable::new(cap, Default::default());
    let mut bursts: Vec<Burst> = (0..7).map(|_| Burst::new()).collect();
    let mut ps: Vec<Parsed> = vec![parsed(&ovs_packet(0, 0, false)); BURST];
    let mut next = 0u32;
    let (mut timed, mut conns, mut invalid) = (Duration::ZERO, 0u64, 0u64);
    let mut now: Nanos = 1_000_000_000;
    let wall = Instant::now();
    while timed.as_secs_f64() < secs && wall.elapsed().as_secs_f64() < secs * 4.0 + 5.0 {
        for k in 0..BURST {
            let i = next % 16_000_000;
            next += 1;
            let (c, s) = isn(i);
            let steps: [(bool, u8, u32, u32, &[u8]); 7] = [
                (true, tf::SYN, c, 0, &[]),
                (false, tf::SYN | tf::ACK, s, c.wrapping_add(1), &[]),
                (true, tf::ACK, c.wrapping_add(1), s.wrapping_add(1), &[]),
                (
                    true,
                    tf::PSH | tf::ACK,
                    c.wrapping_add(1),
                    s.wrapping_add(1),
                    &[0x5a; 10],
                ),
                (
                    true,
                    tf::FIN | tf::ACK,
                    c.wrapping_add(11),
                    s.wrapping_add(1),
                    &[],
                ),
                (
                    false,
                    tf::FIN | tf::ACK,
                    s.wrapping_add(1),
                    c.wrapping_add(12),
                    &[],
                ),
                (true, tf::ACK, c.wrapping_add(12), s.wrapping_add(2), &[]),
            ];
            for (st, b) in steps.iter().zip(bursts.iter_mut()) {
                b.len[k] = tcp_frame(i, st.0, st.1, st.2, st.3, st.4, &mut b.buf[k]);
            }
        }
        now += 10_000;
        let t0 = Instant::now();
        invalid += run_bursts(&mut t, &bursts, &mut ps, now);
        timed += t0.elapsed();
        conns += BURST as u64;
        if t.len() > cap / 2 {
            t.flush(); // untimed: TIME_WAIT entries would otherwise fill the table
        }
    }
    let s = timed.as_secs_f64();
    Row {
        scenario: "churn tcp".into(),
        params: "SYN..last ACK, 7 pkts/conn".into(),
        mpps: Some(conns as f64 * 7.0 / s / 1e6),
        ns_pkt: Some(s * 1e9 / (conns as f64 * 7.0)),
        cps: Some(conns as f64 / s),
        peer: format!("{conns} conns, {invalid} INVALID pkts"),
        extra: json!({"connections": conns, "invalid_packets": invalid, "timed_s": s}),
    }
}

fn churn_udp(secs: f64) -> Row {
    let cap = 1 << 20;
    let mut t = ConnTable::new(cap, Default::default());
    let mut bursts: Vec<Burst> = (0..2).map(|_| Burst::new()).collect();
    let mut ps: Vec<Parsed> = vec![parsed(&ovs_packet(0, 0, false)); BURST];
    let mut next = 0u32;
    let (mut timed, mut conns, mut invalid) = (Duration::ZERO, 0u64, 0u64);
    let mut now: Nanos = 1_000_000_000;
    let wall = Instant::now();
    while timed.as_secs_f64() < secs && wall.elapsed().as_secs_f64() < secs * 4.0 + 5.0 {
        for k in 0..BURST {
            let i = next % 16_000_000;
            next += 1;
            bursts[0].len[k] = udp_frame(i, true, &[0x11; 32], &mut bursts[0].buf[k]);
            bursts[1].len[k] = udp_frame(i, false, &[0x22; 48], &mut bursts[1].buf[k]);
        }
        now += 10_000;
        let t0 = Instant::now();
        invalid += run_bursts(&mut t, &bursts, &mut ps, now);
        timed += t0.elapsed();
        conns += BURST as u64;
        if t.len() > cap / 2 {
            t.flush();
        }
    }
    let s = timed.as_secs_f64();
    Row {
        scenario: "churn udp".into(),
        params: "request + response, 2 pkts/flow".into(),
        mpps: Some(conns as f64 * 2.0 / s / 1e6),
        ns_pkt: Some(s * 1e9 / (conns as f64 * 2.0)),
        cps: Some(conns as f64 / s),
        peer: format!("{conns} flows, {invalid} INVALID pkts"),
        extra: json!({"connections": conns, "invalid_packets": invalid, "timed_s": s}),
    }
}

// ---------------------------------------------------------------- pktgen pair loops

/// A worker-shaped loop over one pktgen pair for `secs`: rx a burst on each side, (with a
/// pipeline) prefetch + `Pipeline::process` each packet, tx what is forwarded out of the
/// other side; without a pipeline it only forwards (the raw I/O ceiling).
/// Returns (packets received, packets forwarded, seconds).
fn pair_loop(
    traffic: Traffic,
    mut pl: Option<(&mut Pipeline, &Ruleset)>,
    secs: f64,
) -> (u64, u64, f64) {
    let pair = PktgenPair::new(&PktgenConfig {
        queues: 1,
        traffic,
        rate_pps: 0,
        ..Default::default()
    })
    .expect("pktgen");
    let (mut inside, mut outside) = pair.into_ports();
    let mut pool = MbufPool::new(4096);
    let mut rx: Vec<Mbuf> = Vec::with_capacity(BURST);
    let mut fwd: Vec<Mbuf> = Vec::with_capacity(BURST);
    let mut reply = [0u8; 2048];
    let clock = dataplane::worker::Clock::new();
    let (mut pkts, mut fwded) = (0u64, 0u64);
    let start = Instant::now();
    let mut iter = 0u64;
    loop {
        iter += 1;
        if iter.is_multiple_of(64) && start.elapsed().as_secs_f64() >= secs {
            break;
        }
        for side in [Side::Host, Side::Network] {
            let (rxp, txp): (&mut dyn Port, &mut dyn Port) = match side {
                Side::Host => (&mut inside, &mut outside),
                Side::Network => (&mut outside, &mut inside),
            };
            let n = rxp.rx_burst(0, &mut pool, &mut rx, BURST);
            if n == 0 {
                continue;
            }
            pkts += n as u64;
            let now = clock.now();
            match pl.as_mut() {
                None => fwd.append(&mut rx),
                Some((p, rs)) => {
                    for m in rx.iter() {
                        if let Ok(dataplane::packet::Frame::Ip(pp)) =
                            dataplane::packet::parse(m.data())
                        {
                            p.table.prefetch(&pp);
                        }
                    }
                    let view = PairView {
                        mode: PairMode::Forward,
                        network: "outside",
                        host: "inside",
                    };
                    for m in rx.drain(..) {
                        let o = p.process(rs, m.data(), view, side, now, &mut reply, &mut |_| {});
                        match o.action {
                            Action::Forward => fwd.push(m),
                            _ => pool.put(m),
                        }
                    }
                }
            }
            fwded += fwd.len() as u64;
            txp.tx_burst(0, &mut fwd, &mut pool);
            pool.put_all(&mut fwd);
        }
        if let Some((p, _)) = pl.as_mut() {
            p.table
                .expire(clock.now(), dataplane::worker::SWEEP_BUDGET_BUSY);
        }
    }
    (pkts, fwded, start.elapsed().as_secs_f64())
}

fn realistic_rules() -> Ruleset {
    let text = include_str!("../../deploy/examples/rules.v4");
    parse_ruleset(text, "rules.v4", None).expect("rules.v4 compiles")
}

fn pipeline_range(o: &Opts) -> Vec<Row> {
    let traffic = || {
        Traffic::Range(RangeTraffic {
            proto: RangeProto::Udp,
            src_ip: (
                Ipv4Addr::new(203, 0, 113, 1),
                Ipv4Addr::new(203, 0, 113, 254),
            ),
            flows: 4096,
            ..Default::default()
        })
    };
    let (rp, rf, rs_) = pair_loop(traffic(), None, o.secs());
    let raw_mpps = rp as f64 / rs_ / 1e6;
    let rs = realistic_rules();
    let mut p = Pipeline::new(
        ConnTable::new(1 << 16, Default::default()),
        &rs,
        NonIpPolicy::PassArp,
    );
    let (sp, sf, ss) = pair_loop(traffic(), Some((&mut p, &rs)), o.secs());
    let sw_mpps = sp as f64 / ss / 1e6;
    vec![
        Row {
            scenario: "peer raw I/O".into(),
            params: "pktgen range udp 4096 flows, fwd only".into(),
            mpps: Some(raw_mpps),
            ns_pkt: Some(1e3 / raw_mpps),
            peer: format!("I/O ceiling; {rf} of {rp} forwarded"),
            extra: json!({"packets": rp, "forwarded": rf}),
            ..Default::default()
        },
        Row {
            scenario: "pipeline range".into(),
            params: "pktgen range udp 4096 flows, rules.v4".into(),
            mpps: Some(sw_mpps),
            ns_pkt: Some(1e3 / sw_mpps),
            peer: format!(
                "{:.0}% of raw I/O; {sf} of {sp} forwarded",
                100.0 * sw_mpps / raw_mpps
            ),
            extra: json!({"packets": sp, "forwarded": sf, "ratio_vs_raw_io": sw_mpps / raw_mpps,
                          "rules": rs.rule_count()}),
            ..Default::default()
        },
    ]
}

// ---------------------------------------------------------------- ruleset size

fn syn_frame(i: u32, dport: u16, buf: &mut [u8]) -> usize {
    let c = client(i);
    let s = SocketAddr::new(server(i).ip(), dport);
    PacketSpec::tcp(c, s, tf::SYN, isn(i).0, 0)
        .write(buf)
        .expect("fits")
}

/// Handshakes flows `0..n` through the pipeline itself (inside opens, outside answers).
fn pipeline_handshakes(p: &mut Pipeline, rs: &Ruleset, n: u32) -> u32 {
    let view = PairView {
        mode: PairMode::Forward,
        network: "outside",
        host: "inside",
    };
    let mut buf = [0u8; 128];
    let mut reply = [0u8; 2048];
    let mut ok = 0;
    for i in 0..n {
        let (c, s) = isn(i);
        let mut fwd = true;
        for (from_client, flags, seq, ack) in [
            (true, tf::SYN, c, 0),
            (false, tf::SYN | tf::ACK, s, c.wrapping_add(1)),
            (true, tf::ACK, c.wrapping_add(1), s.wrapping_add(1)),
        ] {
            let len = tcp_frame(i, from_client, flags, seq, ack, &[], &mut buf);
            let side = if from_client {
                Side::Host
            } else {
                Side::Network
            };
            let o = p.process(rs, &buf[..len], view, side, 1_000, &mut reply, &mut |_| {});
            fwd &= o.action == Action::Forward;
        }
        ok += fwd as u32;
    }
    ok
}

fn ruleset_size(o: &Opts) -> Vec<Row> {
    let mut out = Vec::new();
    let view = PairView {
        mode: PairMode::Forward,
        network: "outside",
        host: "inside",
    };
    let flows = 1024u32;
    let data = data_frames(flows);
    let syn_n = 1u32 << 16;
    let mut syns = vec![0u8; syn_n as usize * FRAME];
    let mut syn_len = 0;
    for i in 0..syn_n {
        let o = i as usize * FRAME;
        syn_len = syn_frame(100_000 + i, 80, &mut syns[o..o + FRAME]);
    }
    let mut reply = [0u8; 2048];
    for n in [10usize, 1000, 10_000] {
        let text = ruleset_text(n, None);
        let t0 = Instant::now();
        let rs = parse_ruleset(&text, "bench", None).expect("compiles");
        let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
        for mix in [RuleMix::EstablishedHeavy, RuleMix::NewHeavy] {
            let mut p = Pipeline::new(
                ConnTable::new(1 << 17, Default::default()),
                &rs,
                NonIpPolicy::PassArp,
            );
            let ok = pipeline_handshakes(&mut p, &rs, flows);
            let (mut timed, mut pkts, mut fwd) = (Duration::ZERO, 0u64, 0u64);
            let wall = Instant::now();
            let per = o.secs() * 0.6;
            while timed.as_secs_f64() < per && wall.elapsed().as_secs_f64() < per * 4.0 + 5.0 {
                let now = 2_000_000 + pkts;
                let t0 = Instant::now();
                match mix {
                    RuleMix::EstablishedHeavy => {
                        for k in 0..flows as usize {
                            let f = &data[k * FRAME..(k + 1) * FRAME];
                            let r =
                                p.process(&rs, f, view, Side::Host, now, &mut reply, &mut |_| {});
                            fwd += (r.action == Action::Forward) as u64;
                        }
                        pkts += flows as u64;
                    }
                    RuleMix::NewHeavy => {
                        for k in 0..syn_n as usize {
                            let f = &syns[k * FRAME..k * FRAME + syn_len];
                            let r =
                                p.process(&rs, f, view, Side::Host, now, &mut reply, &mut |_| {});
                            fwd += (r.action == Action::Forward) as u64;
                        }
                        pkts += syn_n as u64;
                    }
                }
                timed += t0.elapsed();
                if mix == RuleMix::NewHeavy {
                    p.table.flush(); // untimed: the next pass inserts the same flows afresh
                    pipeline_handshakes(&mut p, &rs, 0);
                }
            }
            let ns = timed.as_nanos() as f64 / pkts as f64;
            out.push(Row {
                scenario: "ruleset size".into(),
                params: format!("{n} rules, {}-heavy (Pipeline)", mix.name()),
                mpps: Some(1e3 / ns),
                ns_pkt: Some(ns),
                cps: if mix == RuleMix::NewHeavy { Some(1e9 / ns) } else { None },
                peer: format!("compile {compile_ms:.1} ms; {fwd}/{pkts} forwarded; {ok} handshakes"),
                extra: json!({"rules": n, "mix": mix.name(), "compile_ms": compile_ms, "packets": pkts, "forwarded": fwd}),
            });
        }
    }
    out
}

// ---------------------------------------------------------------- scaling (real runtime)

fn runtime_rate(workers: usize, secs: f64) -> Result<(f64, u64), String> {
    let mut cfg = statewall::config::Config::embedded();
    cfg.dataplane.workers = workers;
    cfg.pktgen.mode = "established".into();
    cfg.pktgen.flows = 4096;
    cfg.control.listen = String::new();
    cfg.control.stats_interval = 0;
    let rt = statewall::runtime::Runtime::start(cfg, true).map_err(|e| format!("{e:#}"))?;
    let sum = |rt: &statewall::runtime::Runtime| rt.sum(|w| w.packets.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_millis(300));
    let (p0, t0) = (sum(&rt), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (p1, dt) = (sum(&rt), t0.elapsed().as_secs_f64());
    rt.stop.store(true, Ordering::Relaxed);
    rt.join();
    Ok(((p1 - p0) as f64 / dt / 1e6, p1 - p0))
}

fn scaling(o: &Opts, cores: usize) -> Vec<Row> {
    let mut out = Vec::new();
    let mut base = None;
    for w in 1..=cores.max(1) {
        match runtime_rate(w, o.secs() * 1.5) {
            Ok((mpps, pk)) => {
                let b = *base.get_or_insert(mpps);
                out.push(Row {
                    scenario: "scaling".into(),
                    params: format!("{w} worker(s), Runtime, pktgen established 4k"),
                    mpps: Some(mpps / w as f64),
                    ns_pkt: Some(1e3 * w as f64 / mpps),
                    peer: format!("total {mpps:.3} Mpps; {w}w/1w = {:.2}x", mpps / b),
                    extra: json!({"workers": w, "total_mpps": mpps, "packets": pk, "ratio_vs_1_worker": mpps / b}),
                    ..Default::default()
                });
            }
            Err(e) => out.push(Row {
                scenario: "scaling".into(),
                params: format!("{w} worker(s)"),
                peer: format!("failed: {e}"),
                ..Default::default()
            }),
        }
    }
    out
}

// ---------------------------------------------------------------- rule swaps under load

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn rule_swaps(o: &Opts) -> Vec<Row> {
    let n_rules = 1000;
    let text_a = ruleset_text(n_rules, Some(80));
    let text_b = ruleset_text(n_rules, Some(81));
    let compile = |t: &str, g: u64| {
        let mut r = parse_ruleset(t, "swap", None).expect("compiles");
        r.set_generation(g);
        r
    };
    // Frames: per burst 16 established data packets, 8 SYNs to port 80, 8 to port 81.
    let est_flows = 2048u32;
    let data = data_frames(est_flows);
    let syn_flows = 4096u32;
    let mut syns: Vec<(Vec<u8>, u16)> = Vec::new();
    for i in 0..syn_flows {
        let port = if i % 2 == 0 { 80 } else { 81 };
        let mut b = [0u8; 128];
        let n = syn_frame(1_000_000 + i, port, &mut b);
        syns.push((b[..n].to_vec(), port));
    }
    let mut out = Vec::new();
    let mut base_p99 = 0u64;
    for swapping in [false, true] {
        let shared = Arc::new(ArcSwap::from_pointee(compile(&text_a, 1)));
        let mut p = Pipeline::new(
            ConnTable::new(1 << 16, Default::default()),
            &shared.load(),
            NonIpPolicy::PassArp,
        );
        pipeline_handshakes(&mut p, &shared.load(), est_flows);
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let swapper = swapping.then(|| {
            let (shared, stop, swaps, ta, tb) = (
                shared.clone(),
                stop.clone(),
                swaps.clone(),
                text_a.clone(),
                text_b.clone(),
            );
            std::thread::spawn(move || {
                let mut g = 1u64;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    next += Duration::from_millis(10);
                    g += 1;
                    // Compile a fresh ruleset (as a reload does) and publish it.
                    let rs = compile(if g % 2 == 1 { &ta } else { &tb }, g);
                    shared.store(Arc::new(rs));
                    swaps.fetch_add(1, Ordering::Relaxed);
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                }
            })
        });
        let view = PairView {
            mode: PairMode::Forward,
            network: "outside",
            host: "inside",
        };
        let mut reply = [0u8; 2048];
        let mut lat: Vec<u64> = Vec::with_capacity(1 << 22);
        let (mut offered, mut verdicts, mut mismatches) = (0u64, 0u64, 0u64);
        let mut current = shared.load_full();
        let (mut ei, mut si) = (0usize, 0usize);
        let clock = dataplane::worker::Clock::new();
        let start = Instant::now();
        let secs = o.secs() * 2.0;
        while start.elapsed().as_secs_f64() < secs {
            let rs = shared.load_full();
            let t0 = Instant::now();
            if !Arc::ptr_eq(&rs, &current) {
                p.adopt(Some(&current), &rs);
                current = rs.clone();
            }
            let a_rules = rs.generation() % 2 == 1;
            let now = clock.now() + 10_000_000;
            for k in 0..BURST {
                offered += 1;
                let (frame, expect_fwd): (&[u8], bool) = if k < 16 {
                    let f = &data[ei * FRAME..(ei + 1) * FRAME];
                    ei = (ei + 1) % est_flows as usize;
                    (f, true)
                } else {
                    let (f, port) = &syns[si];
                    si = (si + 1) % syns.len();
                    (f.as_slice(), (*port == 80) == a_rules)
                };
                let r = p.process(&rs, frame, view, Side::Host, now, &mut reply, &mut |_| {});
                if r.verdict.is_some() {
                    verdicts += 1;
                }
                if (r.action == Action::Forward) != expect_fwd {
                    mismatches += 1;
                }
            }
            drop(rs);
            lat.push(t0.elapsed().as_nanos() as u64);
        }
        let elapsed = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        if let Some(h) = swapper {
            let _ = h.join();
        }
        let bursts = lat.len();
        let busy: u64 = lat.iter().sum();
        lat.sort_unstable();
        let (p50, p99, p999, max) = (
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 0.999),
            *lat.last().unwrap_or(&0),
        );
        let nswaps = swaps.load(Ordering::Relaxed);
        if !swapping {
            base_p99 = p99;
        }
        let ns = busy as f64 / offered as f64;
        out.push(Row {
            scenario: "rule swap".into(),
            params: if swapping {
                format!("{nswaps} swaps in {elapsed:.1}s ({:.0}/s), {n_rules} rules", nswaps as f64 / elapsed)
            } else {
                format!("no swaps, {n_rules} rules")
            },
            mpps: Some(1e3 / ns),
            ns_pkt: Some(ns),
            peer: format!(
                "lost {} mismatched {}; burst p50 {p50} p99 {p99} p99.9 {p999} max {max} ns{}",
                offered - verdicts,
                mismatches,
                if swapping && base_p99 > 0 { format!(" (p99 {:+} ns vs no swaps)", p99 as i64 - base_p99 as i64) } else { String::new() }
            ),
            extra: json!({"swaps": nswaps, "offered": offered, "verdicts": verdicts, "lost": offered - verdicts,
                          "mismatches": mismatches, "bursts": bursts,
                          "burst_ns": {"p50": p50, "p99": p99, "p999": p999, "max": max}}),
            ..Default::default()
        });
    }
    out
}

// ---------------------------------------------------------------- OVS benchmark

/// Runs OVS's `test-conntrack benchmark` traffic; returns elapsed milliseconds (between
/// the two barriers, as OVS measures) and committed packets.
fn ovs_benchmark(threads: usize, packets: u64, batch: usize, change: bool) -> (f64, u64) {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|tid| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                let mut th = OvsThread::new(tid as u16, batch, change);
                b.wait();
                let ok = th.run(packets);
                b.wait();
                ok
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    barrier.wait();
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let ok = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    (ms, ok)
}

fn ovs_benchmark_cmd(args: &[String]) {
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(d);
    if args.len() < 3 {
        eprintln!("usage: statewall-bench ovs-benchmark THREADS PACKETS BATCH [CHANGE]");
        std::process::exit(2);
    }
    let (threads, packets, batch, change) = (
        num(0, 1) as usize,
        num(1, 0),
        num(2, 32) as usize,
        num(3, 0) == 1,
    );
    let (ms, _) = ovs_benchmark(threads.max(1), packets, batch.clamp(1, 255), change);
    println!("conntrack:  {:5.0} ms", ms);
}

fn ovs_scenario(o: &Opts, cores: usize) -> Vec<Row> {
    let packets: u64 = match o.mode {
        Mode::Quick => 1 << 22,
        Mode::Standard => 1 << 24,
        Mode::Full => 1 << 25,
    };
    let mut out = Vec::new();
    let mut configs = vec![(1usize, 1u64), (1, 0)];
    if cores > 1 {
        configs.push((cores, 1));
    }
    for (i, (threads, change)) in configs.into_iter().enumerate() {
        let (ms, ok) = ovs_benchmark(threads, packets, 32, change == 1);
        let mpps_core = packets as f64 / (ms * 1e3);
        let peer = match (i, o.ovs_ref_ms) {
            (0, Some(r)) => format!(
                "QUOTED OVS figure {r:.0} ms (not measured here): statewall is {:.2}x faster",
                r / ms
            ),
            (0, None) => "OVS reference: no figure supplied (--ovs-ref-ms); nothing quoted".into(),
            _ => String::new(),
        };
        out.push(Row {
            scenario: "ovs-benchmark".into(),
            params: format!("{threads} {packets} 32 {change}  => {ms:.0} ms"),
            mpps: Some(mpps_core),
            ns_pkt: Some(1e3 / mpps_core),
            peer: format!("{peer}{}{} committed", if peer.is_empty() { "" } else { "; " }, ok),
            extra: json!({"threads": threads, "packets_per_thread": packets, "batch": 32, "change": change,
                          "ms": ms, "quoted_ovs_ms": if i == 0 { o.ovs_ref_ms } else { None }}),
            ..Default::default()
        });
    }
    out
}

// ---------------------------------------------------------------- kernel peer (veth)

/// `flood DST SECONDS [FLOWS]`: sends 64-byte UDP frames (18-byte payload) to DST as fast
/// as sendmmsg allows, cycling FLOWS destination ports; prints packets sent.
fn flood_cmd(args: &[String]) {
    let dst: Ipv4Addr = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(Ipv4Addr::new(10, 99, 2, 2));
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let flows: u16 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
    // SAFETY: plain socket syscalls on buffers that outlive them.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(fd >= 0, "socket");
        const N: usize = 64;
        let payload = [0x5au8; 18];
        let mut addrs: Vec<libc::sockaddr_in> = Vec::with_capacity(N);
        let mut iovs: Vec<libc::iovec> = Vec::with_capacity(N);
        let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(N);
        for _ in 0..N {
            let mut a: libc::sockaddr_in = std::mem::zeroed();
            a.sin_family = libc::AF_INET as u16;
            a.sin_addr.s_addr = u32::from(dst).to_be();
            addrs.push(a);
            iovs.push(libc::iovec {
                iov_base: payload.as_ptr() as *mut _,
                iov_len: payload.len(),
            });
        }
        for k in 0..N {
            let mut m: libc::mmsghdr = std::mem::zeroed();
            m.msg_hdr.msg_name = &mut addrs[k] as *mut _ as *mut _;
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            m.msg_hdr.msg_iov = &mut iovs[k];
            m.msg_hdr.msg_iovlen = 1;
            msgs.push(m);
        }
        let start = Instant::now();
        let (mut sent, mut f) = (0u64, 0u16);
        while start.elapsed().as_secs_f64() < secs {
            for a in addrs.iter_mut() {
                a.sin_port = (10_000 + f).to_be();
                f = (f + 1) % flows.max(1);
            }
            let r = libc::sendmmsg(fd, msgs.as_mut_ptr(), N as u32, 0);
            if r > 0 {
                sent += r as u64;
            }
        }
        println!(
            "flood: sent {sent} in {:.2} s",
            start.elapsed().as_secs_f64()
        );
    }
}

fn sh(cmd: &str) -> Result<String, String> {
    let o = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!(
            "`{cmd}`: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).to_string())
}

fn rx_packets(ns: &str, dev: &str) -> u64 {
    sh(&format!(
        "ip netns exec {ns} cat /sys/class/net/{dev}/statistics/rx_packets"
    ))
    .ok()
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(0)
}

fn kernel_peer(o: &Opts) -> Vec<Row> {
    let skip = |why: &str| {
        vec![Row {
            scenario: "peer kernel nft".into(),
            params: "skipped".into(),
            peer: why.into(),
            ..Default::default()
        }]
    };
    if o.mode != Mode::Full {
        return skip("full mode only (--full)");
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("needs root (network namespaces, nftables)");
    }
    if sh("command -v nft && command -v ip").is_err() {
        return skip("nft or ip not installed");
    }
    match kernel_peer_run(o.secs() * 1.5) {
        Ok(rows) => rows,
        Err(e) => {
            let _ = kernel_teardown();
            skip(&format!("failed: {e}"))
        }
    }
}

fn kernel_teardown() -> Result<String, String> {
    sh("ip netns del swb-a 2>/dev/null; ip netns del swb-fw 2>/dev/null; ip netns del swb-b 2>/dev/null; true")
}

fn kernel_peer_run(secs: f64) -> Result<Vec<Row>, String> {
    kernel_teardown()?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let me = me.display();
    // a (10.99.1.2) -- veth fa/af -- fw -- veth fb/bf -- b (10.99.2.2)
    sh("ip netns add swb-a && ip netns add swb-fw && ip netns add swb-b \
        && ip link add af netns swb-a type veth peer name fa netns swb-fw \
        && ip link add bf netns swb-b type veth peer name fb netns swb-fw \
        && ip -n swb-a addr add 10.99.1.2/24 dev af && ip -n swb-a link set af up && ip -n swb-a link set lo up \
        && ip -n swb-b addr add 10.99.2.2/24 dev bf && ip -n swb-b link set bf up && ip -n swb-b link set lo up \
        && ip -n swb-fw link set fa up && ip -n swb-fw link set fb up \
        && ip -n swb-a route add default via 10.99.1.1 \
        && ip -n swb-a neigh replace 10.99.1.1 lladdr 02:00:00:00:99:01 dev af \
        && ip -n swb-fw link set fa address 02:00:00:00:99:01 \
        && ip -n swb-fw link set fa promisc on && ip -n swb-fw link set fb promisc on \
        && ip -n swb-b link set bf promisc on")?;
    // Checksum offload off, as for any veth statewall polls: with it on, frames from a
    // local stack carry partial checksums that conntrack (like the receiving hosts)
    // would call invalid.
    for (ns, dev) in [
        ("swb-a", "af"),
        ("swb-fw", "fa"),
        ("swb-fw", "fb"),
        ("swb-b", "bf"),
    ] {
        sh(&format!(
            "ip netns exec {ns} ethtool -K {dev} tx off rx off gso off gro off tso off >/dev/null 2>&1 || true"
        ))?;
    }
    let measure = |label: &str| -> Result<(f64, u64), String> {
        let r0 = rx_packets("swb-b", "bf");
        let out = sh(&format!(
            "ip netns exec swb-a {me} flood 10.99.2.2 {secs} 1024"
        ))?;
        std::thread::sleep(Duration::from_millis(200));
        let r1 = rx_packets("swb-b", "bf");
        let sent: u64 = out
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let _ = label;
        Ok(((r1 - r0) as f64 / secs, sent))
    };
    // Kernel: routing + nftables conntrack in swb-fw.
    sh("ip -n swb-fw addr add 10.99.1.1/24 dev fa && ip -n swb-fw addr add 10.99.2.1/24 dev fb \
        && ip netns exec swb-fw sysctl -qw net.ipv4.ip_forward=1 \
        && ip -n swb-fw neigh replace 10.99.2.2 lladdr $(ip -n swb-b -br link show bf | awk '{print $3}') dev fb")?;
    sh("ip netns exec swb-fw nft -f - <<'EOF'\ntable inet swb {\n chain forward_filter {\n  type filter hook forward priority 0; policy drop;\n  ct state established,related accept\n  ct state invalid drop\n  iifname \"fa\" ct state new accept\n }\n}\nEOF")?;
    let (k_pps, k_sent) = measure("kernel")?;
    // statewall: no kernel forwarding; af_packet on fa/fb with the demo rules.
    sh("ip netns exec swb-fw nft flush ruleset && ip netns exec swb-fw sysctl -qw net.ipv4.ip_forward=0 \
        && ip -n swb-fw addr flush dev fa && ip -n swb-fw addr flush dev fb")?;
    let cfg = std::env::temp_dir().join("statewall-bench-veth.toml");
    let rules = std::env::temp_dir().join("statewall-bench-veth.rules");
    std::fs::write(&rules, "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A FORWARD -m conntrack --ctstate INVALID -j DROP\n-A FORWARD -i inside -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n").map_err(|e| e.to_string())?;
    std::fs::write(&cfg, format!("[dataplane]\nworkers = 1\n[[port]]\nname = \"inside\"\nbackend = \"af_packet\"\ninterface = \"fa\"\n[[port]]\nname = \"outside\"\nbackend = \"af_packet\"\ninterface = \"fb\"\n[[pair]]\nmode = \"forward\"\nnetwork = \"outside\"\nhost = \"inside\"\n[rules]\nfile = \"{}\"\n[control]\nlisten = \"\"\nstats_interval = 0\n", rules.display())).map_err(|e| e.to_string())?;
    let sw = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/statewall");
    if !sw.exists() {
        return Err(format!(
            "{} not built (cargo build --release -p statewall)",
            sw.display()
        ));
    }
    let child = Command::new("ip")
        .args(["netns", "exec", "swb-fw"])
        .arg(&sw)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--duration", &format!("{}", secs + 3.0)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(1000));
    let s = measure("statewall");
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let summary = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("summary:"))
        .unwrap_or("")
        .trim()
        .to_string();
    let (s_pps, s_sent) = s?;
    kernel_teardown()?;
    Ok(vec![
        Row {
            scenario: "peer kernel nft".into(),
            params: "veth, forward + nft ct, udp 1024 flows".into(),
            mpps: Some(k_pps / 1e6),
            peer: format!("received at sink; generator sent {k_sent}"),
            extra: json!({"pps": k_pps, "sent": k_sent}),
            ..Default::default()
        },
        Row {
            scenario: "statewall af_packet".into(),
            params: "same veth topology, 1 worker".into(),
            mpps: Some(s_pps / 1e6),
            peer: format!(
                "statewall/kernel = {:.2}x; sent {s_sent}; {summary}",
                s_pps / k_pps.max(1.0)
            ),
            extra: json!({"pps": s_pps, "sent": s_sent, "ratio_vs_kernel": s_pps / k_pps.max(1.0)}),
            ..Default::default()
        },
    ])
}
