//! `statewall run`: binds the control API, installs the signal handlers, starts the
//! [`Runtime`], prints testpmd-style port statistics, reloads on SIGHUP, and stops
//! cleanly on Ctrl-C, SIGTERM or after `--duration`, then prints a summary.

use crate::config::Config;
use crate::runtime::Runtime;
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Prints one testpmd-style block of port statistics.
fn print_stats(rt: &Runtime, prev: &mut Vec<(u64, u64)>, dt: f64) {
    println!("  ######################## NIC statistics ########################");
    for (i, (name, c)) in rt.ports.iter().enumerate() {
        let s = c.total();
        let (prx, ptx) = prev.get(i).copied().unwrap_or((0, 0));
        let rx_pps = (s.rx_packets - prx) as f64 / dt;
        let tx_pps = (s.tx_packets - ptx) as f64 / dt;
        println!(
            "  port {i} ({name:<8}) RX-packets: {:<12} RX-missed: {:<8} RX-nombuf: {:<8} RX-bytes: {:<14} Rx-pps: {:>12.0}",
            s.rx_packets, s.rx_missed, s.rx_nombuf, s.rx_bytes, rx_pps
        );
        println!(
            "  {:17} TX-packets: {:<12} TX-errors: {:<8} {:19} TX-bytes: {:<14} Tx-pps: {:>12.0}",
            "", s.tx_packets, s.tx_errors, "", s.tx_bytes, tx_pps
        );
        if prev.len() <= i {
            prev.push((0, 0));
        }
        prev[i] = (s.rx_packets, s.tx_packets);
    }
    let st = |i: usize| rt.sum(|w| load(&w.by_state[i]));
    println!(
        "  conntrack: entries {} / {}  NEW {}  ESTABLISHED {}  RELATED {}  INVALID {}  UNTRACKED {}  drops {}",
        rt.sum(|w| load(&w.ct_entries)),
        rt.ct_limit,
        st(0),
        st(1),
        st(2),
        st(3),
        st(4),
        rt.sum(|w| w.drops.iter().map(load).sum())
    );
    println!("  ############################################################################");
}

/// Raises the soft open-file limit to the hard one: every control connection (and a
/// burst of half-open ones) is a descriptor, and the default soft limit is often 1024.
fn raise_nofile() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid resource and a valid rlimit pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// `statewall run`: starts ports, workers and the control API; prints stats every
/// `stats_interval` seconds; reloads on SIGHUP; stops on Ctrl-C/SIGTERM or after
/// `duration`, then prints a summary.
pub fn run(cfg: Config, duration: Option<f64>, embedded: bool) -> Result<()> {
    let interval = cfg.control.stats_interval;
    // Bind the control listeners first: a busy or malformed `control.listen`, a live
    // statewall on `control.socket` or an unreadable token must fail before any port is
    // opened or worker started.
    raise_nofile();
    let listeners = crate::api::Listeners::bind(&cfg.control)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
            .context("installing the Ctrl-C handler")?;
    }
    // SIGTERM (systemd's default KillSignal, `kill`, Kubernetes) stops as cleanly as Ctrl-C.
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())
        .context("installing the SIGTERM handler")?;
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing the SIGHUP handler")?;
    // Signals are handled before the ports open: a SIGHUP or SIGTERM during start-up
    // must not kill the process with the default action half-way.
    let rt = Arc::new(Runtime::start(cfg, embedded)?);
    let api = crate::api::serve(rt.clone(), listeners)?;
    let where_ = api.describe();
    tracing::info!(
        workers = rt.workers.len(),
        ports = rt.ports.len(),
        generation = rt.reloads.generation.load(Ordering::Relaxed),
        api = %where_,
        "statewall started"
    );
    println!(
        "statewall: {} worker(s), {} port(s), ruleset generation {}{}",
        rt.workers.len(),
        rt.ports.len(),
        rt.reloads.generation.load(Ordering::Relaxed),
        if where_.is_empty() {
            String::new()
        } else {
            format!(", {where_}")
        }
    );
    crate::notify::ready();
    crate::notify::status(&format!(
        "ruleset generation {}",
        rt.reloads.generation.load(Ordering::Relaxed)
    ));
    let start = Instant::now();
    let mut last = Instant::now();
    let mut prev = Vec::new();
    // Per port: down transitions already logged (a port that vanishes is logged once).
    let mut downs: Vec<u64> = rt
        .ports
        .iter()
        .map(|(_, c)| c.total().down_events)
        .collect();
    let deadline = duration.map(|d| Duration::from_secs_f64(d.max(0.0)));
    while !stop.load(Ordering::Relaxed) {
        if let Some(d) = deadline {
            if start.elapsed() >= d {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        if hup.swap(false, Ordering::Relaxed) {
            crate::notify::reloading();
            api.reload_token();
            // Runtime::reload logs and counts the outcome and sets STATUS=.
            let _ = rt.reload();
            crate::notify::ready();
        }
        for ((name, c), seen) in rt.ports.iter().zip(downs.iter_mut()) {
            let d = c.total().down_events;
            if d != *seen {
                *seen = d;
                tracing::warn!(
                    port = %name,
                    down_events = d,
                    "port {name}: interface down or gone; what is sent to it is dropped and \
                     counted (port tx errors, drops tx_full); the other pairs go on"
                );
            }
        }
        while let Some(ev) = rt.log_events.pop() {
            tracing::info!(target: "statewall::log", "{}", ev);
        }
        if interval > 0 && last.elapsed() >= Duration::from_secs(interval) {
            let dt = last.elapsed().as_secs_f64();
            last = Instant::now();
            print_stats(&rt, &mut prev, dt);
        }
    }
    crate::notify::stopping();
    let elapsed = start.elapsed().as_secs_f64();
    rt.stop.store(true, Ordering::Relaxed);
    // Stop the API (its socket file goes with it), then wait for the workers.
    drop(api);
    rt.join();
    // Every port and mbuf went with the workers: release DPDK's EAL (runtime files).
    #[cfg(feature = "dpdk")]
    if let Err(e) = dataplane::port::dpdk::eal_cleanup() {
        tracing::warn!(error = %e, "DPDK cleanup");
    }
    let pk = rt.sum(|w| load(&w.packets));
    println!("statewall: stopped after {elapsed:.1} s");
    print_stats(&rt, &mut Vec::new(), elapsed.max(1e-9));
    println!(
        "  summary: {pk} packets processed ({:.3} Mpps over {} worker(s)), {} forwarded, {} dropped",
        pk as f64 / elapsed.max(1e-9) / 1e6,
        rt.workers.len(),
        rt.sum(|w| load(&w.forwarded)),
        rt.sum(|w| w.drops.iter().map(load).sum())
    );
    if let Some(g) = &rt.pktgen {
        println!("  pktgen: {:?}", g.snapshot());
    }
    Ok(())
}
