//! `/metrics`: the Prometheus exposition of a running statewall (names in
//! `deploy/METRICS.md`).
//!
//! Why the `prometheus` crate and not the `metrics` facade: our numbers already live in
//! per-worker, cache-padded blocks that the workers publish with relaxed stores, and the
//! exporter must *sum* them at scrape time without touching the hot path. The facade is
//! built for code that records into a global recorder as events happen, which would put
//! a shared recorder (and its hashing) on the hot path or force us to mirror every
//! counter into it. With `prometheus` we build the metric families at scrape time from
//! the blocks (a custom collector in all but name) and let its `TextEncoder` produce
//! well-formed exposition text, so `promtool check metrics` passes.

use crate::runtime::Runtime;
use dataplane::conntrack::CtCounter;
use dataplane::port::PortStats;
use dataplane::worker::{DropReason, PublishedStats, STATE_NAMES};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};
use std::sync::atomic::{AtomicU64, Ordering};

fn ld(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn labels(ls: &[(&str, String)]) -> Vec<LabelPair> {
    ls.iter()
        .map(|(k, v)| {
            let mut l = LabelPair::default();
            l.set_name(k.to_string());
            l.set_value(v.clone());
            l
        })
        .collect()
}

struct Fams(Vec<MetricFamily>);

impl Fams {
    fn family(&mut self, name: &str, help: &str, ty: MetricType, metrics: Vec<Metric>) {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(ty);
        f.set_metric(metrics);
        self.0.push(f);
    }

    /// A family of `ty` from `(labels, value)` series; `set` stores a value in its metric.
    fn series<V>(
        &mut self,
        (name, help, ty): (&str, &str, MetricType),
        series: Vec<(Vec<(&str, String)>, V)>,
        set: impl Fn(&mut Metric, V),
    ) {
        let ms = series
            .into_iter()
            .map(|(ls, v)| {
                let mut m = Metric::default();
                m.set_label(labels(&ls));
                set(&mut m, v);
                m
            })
            .collect();
        self.family(name, help, ty, ms);
    }

    fn counter(&mut self, name: &str, help: &str, series: Vec<(Vec<(&str, String)>, u64)>) {
        self.series((name, help, MetricType::COUNTER), series, |m, v| {
            let mut c = Counter::default();
            c.set_value(v as f64);
            m.set_counter(c);
        });
    }

    fn gauge(&mut self, name: &str, help: &str, series: Vec<(Vec<(&str, String)>, f64)>) {
        self.series((name, help, MetricType::GAUGE), series, |m, v| {
            let mut g = Gauge::default();
            g.set_value(v);
            m.set_gauge(g);
        });
    }
}

/// One metric family (or a table-driven set of alike families): adds itself to the
/// exposition.
type FamilyFn = fn(&mut Fams, &Runtime);

/// Every family, in exposition order.
const FAMILIES: &[FamilyFn] = &[
    build_info,
    port_counters,
    worker_counters,
    worker_info,
    worker_burst_size,
    conntrack_entries,
    nat_bindings,
    conntrack_entries_limit,
    conntrack_stats,
    conntrack_expired,
    packets_by_state,
    drops,
    verdicts,
    ruleset_gauges,
    ruleset_reloads,
    expectations,
    expectation_events,
    log_events_lost,
    rule_counters,
    set_elements,
    set_changes_lost,
];

/// `statewall_set_elements`, by set.
fn set_elements(f: &mut Fams, rt: &Runtime) {
    let now = rt.clock.now();
    let series = rt
        .sets
        .all()
        .iter()
        .map(|s| {
            (
                vec![("set", s.name().to_string())],
                s.data().len(now) as f64,
            )
        })
        .collect();
    f.gauge(
        "statewall_set_elements",
        "Live elements of each IP set.",
        series,
    );
}

/// `statewall_set_changes_lost_total`, by set.
fn set_changes_lost(f: &mut Fams, rt: &Runtime) {
    let series = rt
        .sets
        .all()
        .iter()
        .map(|s| (vec![("set", s.name().to_string())], ld(&s.lost)))
        .collect();
    f.counter(
        "statewall_set_changes_lost_total",
        "-j SET changes dropped because the set's queue was full.",
        series,
    );
}

/// Renders the whole exposition.
pub fn render(rt: &Runtime) -> String {
    let mut f = Fams(Vec::new());
    for family in FAMILIES {
        family(&mut f, rt);
    }
    // A family without series (e.g. the opt-in rule counters when no rule opts in) is
    // left out: the encoder refuses it, and would stop at it, truncating the exposition.
    let fams: Vec<MetricFamily> =
        f.0.into_iter()
            .filter(|m| !m.get_metric().is_empty())
            .collect();
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&fams, &mut out) {
        tracing::error!(error = %e, "encoding /metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The workers' published blocks, in worker order.
fn worker_stats(rt: &Runtime) -> Vec<&PublishedStats> {
    rt.workers.iter().map(|w| &**w.stats).collect()
}

/// The `worker` label of worker `i`.
fn wl(i: usize) -> Vec<(&'static str, String)> {
    vec![("worker", i.to_string())]
}

/// A published counter summed over every worker.
fn sum(rt: &Runtime, g: &dyn Fn(&PublishedStats) -> u64) -> u64 {
    worker_stats(rt).iter().map(|w| g(w)).sum::<u64>()
}

/// One series per label value, `label="<value i>"` summing slot `i` of the per-worker
/// array `slots` picks: the shape of every "by state / reason / verdict" family.
fn by_label<'a>(
    rt: &Runtime,
    label: &'static str,
    values: impl IntoIterator<Item = &'a str>,
    slots: fn(&PublishedStats) -> &[AtomicU64],
) -> Vec<(Vec<(&'static str, String)>, u64)> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (vec![(label, v.to_string())], sum(rt, &|w| ld(&slots(w)[i]))))
        .collect()
}

/// `statewall_build_info`.
fn build_info(f: &mut Fams, _: &Runtime) {
    f.gauge(
        "statewall_build_info",
        "Build information.",
        vec![(
            vec![("version", env!("CARGO_PKG_VERSION").to_string())],
            1.0,
        )],
    );
}

/// A port counter: name, help, the field.
type PortField = (&'static str, &'static str, fn(&PortStats) -> u64);

/// `statewall_port_*_total`, one family per field.
const PORT_COUNTERS: [PortField; 9] = [
    (
        "statewall_port_rx_packets_total",
        "Frames received by the port.",
        |s| s.rx_packets,
    ),
    (
        "statewall_port_rx_bytes_total",
        "Bytes received by the port.",
        |s| s.rx_bytes,
    ),
    (
        "statewall_port_rx_missed_total",
        "Frames the port dropped because its receive ring was full.",
        |s| s.rx_missed,
    ),
    (
        "statewall_port_rx_nombuf_total",
        "Frames lost for lack of a buffer.",
        |s| s.rx_nombuf,
    ),
    ("statewall_port_rx_errors_total", "Receive errors.", |s| {
        s.rx_errors
    }),
    (
        "statewall_port_tx_packets_total",
        "Frames sent by the port.",
        |s| s.tx_packets,
    ),
    (
        "statewall_port_tx_bytes_total",
        "Bytes sent by the port.",
        |s| s.tx_bytes,
    ),
    (
        "statewall_port_tx_errors_total",
        "Frames the port failed to send.",
        |s| s.tx_errors,
    ),
    (
        "statewall_port_down_events_total",
        "Times the port found its interface down or gone (once per transition).",
        |s| s.down_events,
    ),
];

/// The port counters ([`PORT_COUNTERS`]), by port.
fn port_counters(f: &mut Fams, rt: &Runtime) {
    let ps: Vec<_> = rt
        .ports
        .iter()
        .map(|(n, c)| (n.clone(), c.total()))
        .collect();
    for (name, help, get) in PORT_COUNTERS {
        f.counter(
            name,
            help,
            ps.iter()
                .map(|(n, s)| (vec![("port", n.clone())], get(s)))
                .collect(),
        );
    }
}

/// A worker counter: name, help, the field.
type WorkerField = (
    &'static str,
    &'static str,
    fn(&PublishedStats) -> &AtomicU64,
);

/// `statewall_worker_*_total`, one family per field.
const WORKER_COUNTERS: [WorkerField; 4] = [
    (
        "statewall_worker_busy_cycles_total",
        "Cycles spent on bursts that carried packets.",
        |w| &w.busy_cycles,
    ),
    (
        "statewall_worker_total_cycles_total",
        "Cycles spent in the poll loop.",
        |w| &w.total_cycles,
    ),
    (
        "statewall_worker_packets_total",
        "Packets processed by the worker.",
        |w| &w.packets,
    ),
    (
        "statewall_worker_handoff_packets_total",
        "Packets handed to the worker owning their connection (ICMP errors, reassembled \
         fragments, packets a port steered elsewhere).",
        |w| &w.handed_off,
    ),
];

/// The worker counters ([`WORKER_COUNTERS`]), by worker.
fn worker_counters(f: &mut Fams, rt: &Runtime) {
    let ws = worker_stats(rt);
    for (name, help, get) in WORKER_COUNTERS {
        f.counter(
            name,
            help,
            ws.iter()
                .enumerate()
                .map(|(i, w)| (wl(i), ld(get(w))))
                .collect(),
        );
    }
}

/// `statewall_worker_info`: worker to core.
fn worker_info(f: &mut Fams, rt: &Runtime) {
    f.gauge(
        "statewall_worker_info",
        "Worker to core mapping.",
        rt.workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                (
                    vec![
                        ("worker", i.to_string()),
                        ("cpu", w.core.map(|c| c.to_string()).unwrap_or_default()),
                    ],
                    1.0,
                )
            })
            .collect(),
    );
}

/// `statewall_worker_burst_size`: bucket i (1..=9) holds bursts of size in
/// (2^(i-2), 2^(i-1)].
fn worker_burst_size(f: &mut Fams, rt: &Runtime) {
    let hist: Vec<Metric> = worker_stats(rt)
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut m = Metric::default();
            m.set_label(labels(&wl(i)));
            let mut h = Histogram::default();
            let mut cum = 0u64;
            let mut buckets = Vec::new();
            for b in 1..10 {
                let c = ld(&w.burst_hist[b]);
                cum += c;
                let ub = (1u64 << (b - 1)) as f64;
                let mut bk = Bucket::default();
                bk.set_cumulative_count(cum);
                bk.set_upper_bound(ub);
                buckets.push(bk);
            }
            h.set_bucket(buckets);
            h.set_sample_count(cum);
            // Every packet received is processed once, so the sum of the burst sizes is
            // exactly the worker's packet count (published in the same iteration).
            h.set_sample_sum(ld(&w.packets) as f64);
            m.set_histogram(h);
            m
        })
        .collect();
    f.family(
        "statewall_worker_burst_size",
        "Packets per non-empty receive burst.",
        MetricType::HISTOGRAM,
        hist,
    );
}

/// `statewall_conntrack_entries`.
fn conntrack_entries(f: &mut Fams, rt: &Runtime) {
    f.gauge(
        "statewall_conntrack_entries",
        "Tracked connections.",
        vec![(vec![], sum(rt, &|w| ld(&w.ct_entries)) as f64)],
    );
}

/// `statewall_nat_bindings`.
fn nat_bindings(f: &mut Fams, rt: &Runtime) {
    f.gauge(
        "statewall_nat_bindings",
        "Tracked connections with a NAT binding.",
        vec![(vec![], sum(rt, &|w| ld(&w.nat_bindings)) as f64)],
    );
}

/// `statewall_conntrack_entries_limit`.
fn conntrack_entries_limit(f: &mut Fams, rt: &Runtime) {
    f.gauge(
        "statewall_conntrack_entries_limit",
        "Connection table capacity (nf_conntrack_max).",
        vec![(vec![], rt.ct_limit as f64)],
    );
}

/// `statewall_conntrack_{field}_total`, one family per `conntrack -S` field.
fn conntrack_stats(f: &mut Fams, rt: &Runtime) {
    for &c in CtCounter::CONNTRACK_S {
        let field = c.name();
        f.counter(
            &format!("statewall_conntrack_{field}_total"),
            &format!("conntrack -S field {field}, summed over workers."),
            vec![(vec![], sum(rt, &|w| w.ct(c)))],
        );
    }
}

/// `statewall_conntrack_expired_total`, by protocol.
fn conntrack_expired(f: &mut Fams, rt: &Runtime) {
    f.counter(
        "statewall_conntrack_expired_total",
        "Connections expired, by protocol.",
        CtCounter::EXPIRED
            .iter()
            .map(|&c| {
                let p = c.expired_proto().unwrap_or("other");
                (vec![("proto", p.to_string())], sum(rt, &|w| w.ct(c)))
            })
            .collect(),
    );
}

/// `statewall_packets_total`, by conntrack state.
fn packets_by_state(f: &mut Fams, rt: &Runtime) {
    f.counter(
        "statewall_packets_total",
        "Packets by conntrack state.",
        by_label(rt, "state", STATE_NAMES, |w| &w.by_state),
    );
}

/// `statewall_drops_total`, by reason.
fn drops(f: &mut Fams, rt: &Runtime) {
    f.counter(
        "statewall_drops_total",
        "Packets dropped, by reason (closed set, see deploy/METRICS.md).",
        by_label(rt, "reason", DropReason::ALL.map(|r| r.as_str()), |w| {
            &w.drops
        }),
    );
}

/// `statewall_verdicts_total`, by verdict.
fn verdicts(f: &mut Fams, rt: &Runtime) {
    f.counter(
        "statewall_verdicts_total",
        "Ruleset verdicts.",
        by_label(rt, "verdict", ["accept", "drop", "reject"], |w| &w.verdicts),
    );
}

/// `statewall_ruleset_generation`, `statewall_ruleset_last_reload_successful` and
/// `statewall_ruleset_last_reload_success_timestamp_seconds`: one unlabelled gauge each.
fn ruleset_gauges(f: &mut Fams, rt: &Runtime) {
    let r = &rt.reloads;
    let ok = if r.last_ok.load(Ordering::Relaxed) {
        1.0
    } else {
        0.0
    };
    for (name, help, v) in [
        (
            "statewall_ruleset_generation",
            "Generation of the running ruleset.",
            ld(&r.generation) as f64,
        ),
        (
            "statewall_ruleset_last_reload_successful",
            "1 if the last ruleset reload succeeded.",
            ok,
        ),
        (
            "statewall_ruleset_last_reload_success_timestamp_seconds",
            "Unix time of the last successful ruleset load.",
            ld(&r.last_ok_time) as f64,
        ),
    ] {
        f.gauge(name, help, vec![(vec![], v)]);
    }
}

/// `statewall_ruleset_reloads_total`, by result.
fn ruleset_reloads(f: &mut Fams, rt: &Runtime) {
    let r = &rt.reloads;
    f.counter(
        "statewall_ruleset_reloads_total",
        "Ruleset reload attempts by result.",
        vec![
            (vec![("result", "success".into())], ld(&r.ok)),
            (vec![("result", "failure".into())], ld(&r.failed)),
        ],
    );
}

/// `statewall_expectations`.
fn expectations(f: &mut Fams, rt: &Runtime) {
    f.gauge(
        "statewall_expectations",
        "Live conntrack expectations.",
        vec![(vec![], rt.expectations() as f64)],
    );
}

/// `statewall_expectation_events_total`, by event.
fn expectation_events(f: &mut Fams, rt: &Runtime) {
    let es = rt.expect.stats();
    f.counter(
        "statewall_expectation_events_total",
        "Conntrack expectation events: created, used, expired, evicted (max_expected), master_gone, register_failed (packet dropped).",
        vec![
            (vec![("event", "created".into())], es.created),
            (vec![("event", "used".into())], es.used),
            (vec![("event", "expired".into())], es.expired),
            (vec![("event", "evicted".into())], es.evicted),
            (vec![("event", "master_gone".into())], es.master_gone),
            (vec![("event", "register_failed".into())], es.register_failed),
        ],
    );
}

/// `statewall_log_events_lost_total`.
fn log_events_lost(f: &mut Fams, rt: &Runtime) {
    f.counter(
        "statewall_log_events_lost_total",
        "LOG records dropped because the log queue was full.",
        vec![(vec![], ld(&rt.log_lost))],
    );
}

/// `statewall_rule_packets_total` and `statewall_rule_bytes_total`: the opt-in per-rule
/// counters (one query of the workers for both).
fn rule_counters(f: &mut Fams, rt: &Runtime) {
    if let Ok(rules) = rt.rule_metrics() {
        let mut pk = Vec::new();
        let mut by = Vec::new();
        for (table, chain, rule, p, b) in rules {
            let ls = vec![("table", table), ("chain", chain), ("rule", rule)];
            pk.push((ls.clone(), p));
            by.push((ls, b));
        }
        f.counter(
            "statewall_rule_packets_total",
            "Packets matched by opted-in rules.",
            pk,
        );
        f.counter(
            "statewall_rule_bytes_total",
            "Bytes matched by opted-in rules.",
            by,
        );
    }
}
