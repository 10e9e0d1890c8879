//! Scaling of the real runtime (pktgen, established traffic) with the number of workers.

use crate::report::Row;
use crate::Opts;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(crate) fn runtime_rate(workers: usize, secs: f64) -> Result<(f64, u64), String> {
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

pub(crate) fn scaling(o: &Opts, cores: usize) -> Vec<Row> {
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
