//! `statewall-bench`: the benchmark suite and its peers (see `bench/README.md`).
//!
//! ```text
//! statewall-bench [--quick | --full] [--only a,b,..] [--ovs-ref-ms MS]
//! statewall-bench ovs-benchmark THREADS PACKETS BATCH [CHANGE]
//! statewall-bench flood DST_IP SECONDS [FLOWS]     (UDP generator for the kernel peer)
//! statewall-bench soak [--minutes N] [--workers W]  (long run; exits 1 on a failed check)
//! ```

mod flood;
mod peer;
mod report;
mod scenario;

use flood::flood_cmd;
use peer::kernel::kernel_peer;
use peer::ovs::{ovs_benchmark_cmd, ovs_scenario};
use report::{header, print_row, write_json, Row};
use scenario::churn::churn;
use scenario::established::established;
use scenario::nat::nat;
use scenario::pipeline::pipeline_range;
use scenario::ruleset::ruleset_size;
use scenario::scaling::scaling;
use scenario::sets::sets;
use scenario::soak::soak_cmd;
use scenario::swaps::rule_swaps;
use scenario::synflood::synflood;
use scenario::vcache::verdict_cache;
use std::sync::Mutex;
use std::time::Instant;

/// Checks a scenario found broken (lost packets, uncounted drops): printed at the end,
/// and the run exits with status 1. Figures are never checked, only correctness.
static FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records a failed correctness check of a scenario (the run will exit non-zero).
pub(crate) fn fail(msg: String) {
    eprintln!("statewall-bench: FAILED: {msg}");
    FAILURES.lock().unwrap_or_else(|e| e.into_inner()).push(msg);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Quick,
    Standard,
    Full,
}

pub(crate) struct Opts {
    pub(crate) mode: Mode,
    pub(crate) only: Vec<String>,
    pub(crate) ovs_ref_ms: Option<f64>,
}

impl Opts {
    pub(crate) fn secs(&self) -> f64 {
        match self.mode {
            Mode::Quick => 0.5,
            Mode::Standard => 1.5,
            Mode::Full => 2.5,
        }
    }
    pub(crate) fn wants(&self, s: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| s.starts_with(o.as_str()))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ovs-benchmark") => return ovs_benchmark_cmd(&args[1..]),
        Some("flood") => return flood_cmd(&args[1..]),
        Some("soak") => return soak_cmd(&args[1..]),
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
                println!("statewall-bench [--quick|--full] [--only SCEN,..] [--ovs-ref-ms MS]\nstatewall-bench ovs-benchmark THREADS PACKETS BATCH [CHANGE]\nstatewall-bench flood DST_IP SECONDS [FLOWS]\nstatewall-bench soak [--minutes N] [--seconds S] [--workers W]");
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
        (&["nat"], Box::new(|| nat(&o))),
        (&["vcache"], Box::new(|| verdict_cache(&o))),
        (&["pipeline"], Box::new(|| pipeline_range(&o))),
        (&["ruleset"], Box::new(|| ruleset_size(&o))),
        (&["sets"], Box::new(|| sets(&o))),
        (&["scaling"], Box::new(|| scaling(&o, cores))),
        (&["rule-swap"], Box::new(|| rule_swaps(&o))),
        (&["synflood"], Box::new(|| synflood(&o))),
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
    let failures = FAILURES.lock().unwrap_or_else(|e| e.into_inner());
    if !failures.is_empty() {
        eprintln!("statewall-bench: {} check(s) failed:", failures.len());
        for f in failures.iter() {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
}
