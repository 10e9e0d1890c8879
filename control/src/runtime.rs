//! The [`Runtime`] handle of a running dataplane: [`Runtime::start`] opens the ports
//! named in the configuration (through [`crate::ports`]), compiles and publishes the
//! ruleset, and starts one pinned poll-mode worker per core; the handle then reloads or
//! replaces the ruleset, runs queries on the workers ([`Runtime::on_worker`],
//! [`Runtime::on_all`]), sums their published counters, and stops them. The
//! `statewall run` command around it is [`crate::run`]; the control API's views read it.

use crate::config::Config;
use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use dataplane::conntrack::{self, ConnTable};
use dataplane::port::{self, MbufPool, Port, PortCounters};
use dataplane::ruleset::Ruleset;
use dataplane::sets::SetRegistry;
use dataplane::steer::Steering;
use dataplane::worker::{
    Clock, HandoffLinks, NonIpPolicy, Ownership, PairMode, PairPorts, Pipeline, PublishedStats,
    Worker, WorkerHandle,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Ruleset reload bookkeeping (read by metrics and the API).
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Generation of the running ruleset.
    pub generation: AtomicU64,
    /// Successful reloads.
    pub ok: AtomicU64,
    /// Failed reloads.
    pub failed: AtomicU64,
    /// 1 when the last reload succeeded.
    pub last_ok: AtomicBool,
    /// Unix time of the last successful load.
    pub last_ok_time: AtomicU64,
}

/// One opt-in rule counter: (table, chain, name, packets, bytes).
pub type RuleMetric = (String, String, String, u64, u64);

/// A running dataplane.
pub struct Runtime {
    /// The configuration it was started with.
    pub cfg: Config,
    /// The published ruleset.
    pub ruleset: Arc<ArcSwap<Ruleset>>,
    /// One handle per worker.
    pub workers: Vec<WorkerHandle>,
    /// Counters of every port, by name.
    pub ports: Vec<(String, Arc<PortCounters>)>,
    /// Generator statistics when the pktgen backend is used.
    pub pktgen: Option<Arc<port::pktgen::PktgenStats>>,
    /// Reload bookkeeping.
    pub reloads: Arc<ReloadStats>,
    /// Serialises reloads.
    reload_lock: Mutex<()>,
    /// LOG events from the workers.
    pub log_events: Arc<crossbeam_queue::ArrayQueue<dataplane::worker::LogRecord>>,
    /// LOG events lost.
    pub log_lost: Arc<AtomicU64>,
    /// Per-shard capacity times workers.
    pub ct_limit: usize,
    /// Started from the embedded default (reloads re-read the demo ruleset).
    embedded: bool,
    /// Set to stop the workers.
    pub stop: Arc<AtomicBool>,
    /// The global expectation table every worker's shard shares.
    pub expect: Arc<conntrack::ExpectTable>,
    /// The clock the workers use (expectation timeouts are listed against it).
    pub clock: Clock,
    /// The IP sets (`-m set`, `-j SET`, `statewall ctl set`); changed without a reload.
    pub sets: SetRegistry,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The core of each of `n` workers: `dataplane.cores` where set, else the allowed cores
/// in turn.
pub fn worker_cores(cfg: &Config, n: usize) -> Vec<usize> {
    if cfg.dataplane.cores.is_empty() {
        let avail = core_affinity::get_core_ids()
            .map(|v| v.len())
            .unwrap_or(1)
            .max(1);
        (0..n).map(|i| i % avail).collect()
    } else {
        cfg.dataplane.cores.clone()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Builds the conntrack config from `[conntrack]`.
pub fn conntrack_config(cfg: &Config) -> Result<conntrack::Config> {
    let mut k = conntrack::Config::default();
    for (s, v) in cfg.conntrack.settings()? {
        s.set(&mut k, v)
            .map_err(|e| anyhow::anyhow!("conntrack.{}: {e}", s.name))?;
    }
    Ok(k)
}

/// Loads the rules named by the config: `rules.file` (iptables-restore) and
/// `rules.file6` (ip6tables-restore), paired so each packet meets its family's rules, as
/// with iptables and ip6tables. A family without a file meets empty ACCEPT chains, as an
/// empty ip6tables would give it. Without any file: the demo ruleset for the embedded
/// default, accept-all otherwise.
pub fn load_rules(cfg: &Config, embedded: bool) -> Result<Ruleset> {
    load_rules_with_sets(cfg, embedded, &load_sets(cfg)?)
}

/// Restores the `[sets] files` into a new registry, in order (time 0 of the workers'
/// clock: element timeouts count from start). A bad file is refused with
/// `sets.files[i]: FILE:LINE: message`.
pub fn load_sets(cfg: &Config) -> Result<SetRegistry> {
    let sets = SetRegistry::new();
    for (i, p) in cfg.sets.files.iter().enumerate() {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("sets.files[{i}]: reading {}", p.display()))?;
        sets.restore(&text, &p.display().to_string(), 0, false)
            .map_err(|e| anyhow::anyhow!("sets.files[{i}]: {e}"))?;
    }
    Ok(sets)
}

/// [`load_rules`] with the sets its rules may name.
pub fn load_rules_with_sets(cfg: &Config, embedded: bool, sets: &SetRegistry) -> Result<Ruleset> {
    let mut rs = load_rules_text(cfg, embedded, sets)?;
    // The ports' own addresses are the host's (`-m addrtype --dst-type LOCAL`).
    let own: Vec<std::net::IpAddr> = cfg.ports.iter().flat_map(|p| p.addresses()).collect();
    rs.set_local_addrs(&own);
    Ok(rs)
}

/// The default NAT addresses of a worker: the first pair's network port's (docs/NAT.md);
/// a port with its own `address` uses those ([`port_nat_addrs`]).
fn nat_addrs(cfg: &Config) -> dataplane::worker::NatAddrs {
    let net = cfg
        .pairs
        .first()
        .and_then(|pair| cfg.ports.iter().find(|p| p.name == pair.network));
    net.map(port_nat_addrs).unwrap_or_default()
}

/// A port's own addresses as MASQUERADE and REDIRECT take them.
fn port_nat_addrs(port: &crate::config::PortConfig) -> dataplane::worker::NatAddrs {
    let mut a = dataplane::worker::NatAddrs::default();
    for ip in port.addresses() {
        let x = Some(dataplane::packet::from_ip(ip).1);
        if ip.is_ipv4() {
            (a.masquerade_v4, a.local_v4) = (x, x);
        } else {
            (a.masquerade_v6, a.local_v6) = (x, x);
        }
    }
    a
}

fn load_rules_text(cfg: &Config, embedded: bool, sets: &SetRegistry) -> Result<Ruleset> {
    let read = |p: &std::path::Path, fam| {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("rules: reading {}", p.display()))?;
        dataplane::ruleset::parse_ruleset_with_sets(
            &text,
            &p.display().to_string(),
            Some(fam),
            sets,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))
    };
    let read_opt =
        |p: &Option<std::path::PathBuf>, fam| p.as_deref().map(|p| read(p, fam)).transpose();
    let v4 = read_opt(&cfg.rules.file, dataplane::packet::Family::V4)?;
    let v6 = read_opt(&cfg.rules.file6, dataplane::packet::Family::V6)?;
    match (v4, v6) {
        (Some(a), Some(b)) => a.with_other_family(b).map_err(|e| anyhow::anyhow!("{e}")),
        (Some(a), None) => Ok(a),
        (None, Some(b)) => Ok(b),
        (None, None) if embedded => {
            dataplane::ruleset::parse_ruleset(crate::config::DEMO_RULES, "demo.rules", None)
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
        (None, None) => Ok(Ruleset::accept_all()),
    }
}

impl Runtime {
    /// Starts ports and workers. `embedded` selects the demo ruleset when no rules file is set.
    pub fn start(cfg: Config, embedded: bool) -> Result<Runtime> {
        let n = cfg.worker_count();
        let sets = load_sets(&cfg)?;
        let rs = load_rules_with_sets(&cfg, embedded, &sets)?;
        let ct_cfg = conntrack_config(&cfg)?;
        let per_shard = cfg.conntrack.nf_conntrack_max.div_ceil(n).max(64);
        let non_ip = match cfg.dataplane.non_ip.as_str() {
            "pass" => NonIpPolicy::Pass,
            "drop" => NonIpPolicy::Drop,
            _ => NonIpPolicy::PassArp,
        };
        let (mut handles, pktgen) = crate::ports::open_ports(&cfg, n as u16)?;
        let ports = cfg
            .ports
            .iter()
            .zip(handles.iter())
            .map(|(pc, h)| (pc.name.clone(), h[0].counters()))
            .collect();
        let ruleset = Arc::new(ArcSwap::from_pointee(rs));
        let stop = Arc::new(AtomicBool::new(false));
        let clock = Clock::new();
        let log_events = Arc::new(crossbeam_queue::ArrayQueue::new(4096));
        let log_lost = Arc::new(AtomicU64::new(0));
        let cores = worker_cores(&cfg, n);
        // Take each port's handles queue by queue, from the back.
        let mut per_worker: Vec<Vec<Box<dyn Port>>> = (0..n).map(|_| Vec::new()).collect();
        for h in handles.iter_mut() {
            if h.len() != n {
                bail!(
                    "port {}: backend gave {} queues for {n} workers",
                    h[0].name(),
                    h.len()
                );
            }
            for (w, q) in h.drain(..).enumerate() {
                per_worker[w].push(q);
            }
        }
        let mut workers = Vec::new();
        // Workers already running are stopped and joined if a later step fails.
        let mut threads = Spawned {
            stop: stop.clone(),
            threads: Vec::new(),
        };
        let expect = Arc::new(conntrack::ExpectTable::new());
        // With several workers, every connection has one owner: the worker the ports'
        // steering model picks for it. Ports whose steering the workers can evaluate
        // (pktgen, af_packet's fanout program) deliver almost everything to its owner;
        // the exceptions (ICMP errors quoting a flow, datagrams reassembled from
        // fragments steered by addresses) are handed over through SPSC rings. Ports whose
        // steering is unknown (af_xdp and DPDK queues fed by NIC or veth RSS) have every
        // packet checked, and strays handed to their owner.
        let model = per_worker
            .first()
            .and_then(|ports| ports.iter().find_map(|p| p.steering()))
            .unwrap_or(Steering::Symmetric);
        let mut links: Vec<Option<HandoffLinks>> = if n > 1 {
            HandoffLinks::mesh(n).into_iter().map(Some).collect()
        } else {
            (0..n).map(|_| None).collect()
        };
        for (w, mut qports) in per_worker.into_iter().enumerate() {
            let mut pipeline = {
                let table =
                    ConnTable::with_expectations(per_shard, ct_cfg, expect.clone(), w as u16);
                Pipeline::new(table, &ruleset.load(), non_ip)
            };
            pipeline.set_ftp_ports(cfg.conntrack.ftp_ports.clone());
            pipeline.set_port_mtus(
                cfg.ports
                    .iter()
                    .filter_map(|p| Some((p.name.clone(), p.mtu?)))
                    .collect(),
            );
            pipeline.set_nat_addrs(nat_addrs(&cfg));
            for p in cfg.ports.iter().filter(|p| !p.address.is_empty()) {
                pipeline.set_port_nat_addrs(&p.name, port_nat_addrs(p));
            }
            pipeline.set_ownership((n > 1).then_some(Ownership {
                me: w as u16,
                workers: n as u16,
                model,
            }));
            let mut worker = Worker::builder(w, pipeline, ruleset.clone(), clock, stop.clone())
                .core(Some(cores[w]))
                .pool(MbufPool::new(cfg.dataplane.pool_size))
                .burst(cfg.dataplane.burst)
                .log(log_events.clone(), log_lost.clone())
                .handoff(links[w].take());
            // Move the handles out in config order.
            let mut slots: Vec<Option<Box<dyn Port>>> = qports.drain(..).map(Some).collect();
            for pair in &cfg.pairs {
                let ni = cfg
                    .ports
                    .iter()
                    .position(|p| p.name == pair.network)
                    .expect("validated");
                let hi = cfg
                    .ports
                    .iter()
                    .position(|p| p.name == pair.host)
                    .expect("validated");
                let (Some(np), Some(hp)) = (slots[ni].take(), slots[hi].take()) else {
                    bail!("pair: port used by two pairs");
                };
                let ports = PairPorts {
                    mode: if pair.mode == "host" {
                        PairMode::Host
                    } else {
                        PairMode::Forward
                    },
                    network: np,
                    host: hp,
                    queue: w as u16,
                };
                worker = worker.pair(ports, (pair.network.clone(), pair.host.clone()));
            }
            let worker = worker.build();
            workers.push(worker.handle());
            threads.threads.push(
                std::thread::Builder::new()
                    .name(format!("statewall-w{w}"))
                    .spawn(move || worker.run())
                    .context("spawning a worker")?,
            );
        }
        threads.threads.push(crate::sets::spawn_drainer(
            sets.clone(),
            clock,
            stop.clone(),
        )?);
        let reloads = Arc::new(ReloadStats::default());
        reloads.generation.store(1, Ordering::Relaxed);
        reloads.last_ok.store(true, Ordering::Relaxed);
        reloads.last_ok_time.store(unix_now(), Ordering::Relaxed);
        Ok(Runtime {
            ct_limit: per_shard * n,
            embedded,
            cfg,
            ruleset,
            workers,
            ports,
            pktgen,
            reloads,
            reload_lock: Mutex::new(()),
            log_events,
            log_lost,
            stop,
            expect,
            clock,
            sets,
            threads: Mutex::new(std::mem::take(&mut threads.threads)),
        })
    }

    /// Re-reads the rules file and publishes it atomically; on failure the running
    /// ruleset stays and the failure is counted and logged.
    pub fn reload(&self) -> Result<u64> {
        let _g = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let loaded = load_rules_with_sets(&self.cfg, self.embedded, &self.sets);
        self.publish(loaded, "reload")
    }

    /// Publishes a freshly compiled ruleset (or counts and logs the failure). Called
    /// with `reload_lock` held.
    fn publish(&self, loaded: Result<Ruleset>, what: &str) -> Result<u64> {
        match loaded {
            Ok(mut rs) => {
                let gen = self.reloads.generation.load(Ordering::Relaxed) + 1;
                rs.set_generation(gen);
                self.ruleset.store(Arc::new(rs));
                self.reloads.generation.store(gen, Ordering::Relaxed);
                self.reloads.ok.fetch_add(1, Ordering::Relaxed);
                self.reloads.last_ok.store(true, Ordering::Relaxed);
                self.reloads
                    .last_ok_time
                    .store(unix_now(), Ordering::Relaxed);
                tracing::info!(generation = gen, "{what}: ruleset published");
                crate::notify::status(&format!("ruleset generation {gen} ({what} ok)"));
                Ok(gen)
            }
            Err(e) => {
                self.reloads.failed.fetch_add(1, Ordering::Relaxed);
                self.reloads.last_ok.store(false, Ordering::Relaxed);
                let gen = self.reloads.generation.load(Ordering::Relaxed);
                tracing::error!(error = %format!("{e:#}"), generation = gen, "{what} failed; the running ruleset stays");
                crate::notify::status(&format!(
                    "ruleset generation {gen}; last {what} FAILED: {e:#}"
                ));
                Err(e)
            }
        }
    }

    /// Sum of a published counter over all workers.
    pub fn sum(&self, f: impl Fn(&PublishedStats) -> u64) -> u64 {
        self.workers.iter().map(|w| f(&w.stats)).sum()
    }

    /// Asks every worker to stop and joins them.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.join();
    }

    /// Joins the worker threads (after `stop` was set).
    pub fn join(&self) {
        let threads: Vec<_> = self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for t in threads {
            let _ = t.join();
        }
    }

    /// Live expectations (global table).
    pub fn expectations(&self) -> usize {
        self.expect.len()
    }

    /// Opt-in per-rule counters: rules whose comment starts with `metric:`; each as
    /// (table, chain, name, packets, bytes) summed over workers.
    pub fn rule_metrics(&self) -> Result<Vec<RuleMetric>> {
        let rs = self.ruleset.load_full();
        let named = rs.metric_rules();
        if named.is_empty() {
            return Ok(Vec::new());
        }
        let gen = rs.generation();
        // Workers whose counters are not (yet) of this generation answer None; retry a
        // few times so a reload racing with a scrape does not drop a worker's share.
        let mut snaps = Vec::new();
        for _ in 0..5 {
            snaps = self.on_all(move |p, _| p.counters_for(gen).map(|c| c.snapshot()))?;
            if snaps.iter().all(|s| s.is_some()) {
                break;
            }
        }
        Ok(named
            .into_iter()
            .map(|(id, table, chain, name)| {
                let (mut pk, mut by) = (0, 0);
                for s in snaps.iter().flatten() {
                    if let Some((p, b)) = s.get(id) {
                        pk += p;
                        by += b;
                    }
                }
                (table, chain, name, pk, by)
            })
            .collect())
    }
}

/// Worker threads started by [`Runtime::start`] before it returns: stopped and joined
/// when start-up fails half-way, so no worker is left spinning.
struct Spawned {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Runtime {
    /// Runs `f` on worker `w`'s pipeline between two of its bursts and returns the
    /// answer (waits at most two seconds).
    pub fn on_worker<T: Send + 'static>(
        &self,
        w: usize,
        f: impl FnOnce(&mut Pipeline, dataplane::conntrack::Nanos) -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let cmd: dataplane::worker::Command = Box::new(move |p, now| {
            let _ = tx.send(f(p, now));
        });
        if self.workers[w].commands.push(cmd).is_err() {
            bail!("worker {w}: command queue full");
        }
        rx.recv_timeout(Duration::from_secs(2))
            .map_err(|_| anyhow::anyhow!("worker {w}: no answer within 2 s"))
    }

    /// Runs `f` on every worker and collects the answers in worker order.
    pub fn on_all<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Pipeline, dataplane::conntrack::Nanos) -> T + Send + Sync + 'static,
    ) -> Result<Vec<T>> {
        let f = Arc::new(f);
        (0..self.workers.len())
            .map(|w| {
                let f = f.clone();
                self.on_worker(w, move |p, now| f(p, now))
            })
            .collect()
    }

    /// Replaces the running ruleset with `text` (validated first; refused whole on error).
    pub fn replace_rules(&self, text: &str, origin: &str) -> Result<u64> {
        let _g = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let parsed = dataplane::ruleset::parse_ruleset_with_sets(text, origin, None, &self.sets)
            .map_err(|e| anyhow::anyhow!("{e}"));
        self.publish(parsed, "replace")
    }
}
