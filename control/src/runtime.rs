//! The runtime behind `statewall run`: builds the ports named in the configuration,
//! compiles and publishes the ruleset, starts one pinned poll-mode worker per core,
//! prints testpmd-style port statistics, and stops cleanly on Ctrl-C or after
//! `--duration`.

use crate::config::{Config, PortConfig};
use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use dataplane::conntrack::{self, ConnTable};
use dataplane::port::{self, MbufPool, Port, PortCounters, Steering};
use dataplane::ruleset::Ruleset;
/// Entries of each worker-to-worker handoff ring.
const HANDOFF_RING: usize = 1024;

use dataplane::worker::{
    Clock, HandoffLinks, NonIpPolicy, Ownership, PairMode, PairPorts, Pipeline, PublishedStats,
    Worker, WorkerHandle,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Builds the conntrack config from `[conntrack]`.
pub fn conntrack_config(cfg: &Config) -> Result<conntrack::Config> {
    let c = &cfg.conntrack;
    let mut k = conntrack::Config::default();
    let mut set = |name: &str, v: String| -> Result<()> {
        k.set(name, &v)
            .map_err(|e| anyhow::anyhow!("conntrack.{name}: {e}"))
    };
    if let Some(v) = c.nf_conntrack_tcp_loose {
        set("tcp_loose", (v as u8).to_string())?;
    }
    if let Some(v) = c.nf_conntrack_tcp_be_liberal {
        set("tcp_be_liberal", (v as u8).to_string())?;
    }
    if let Some(v) = c.nf_conntrack_tcp_ignore_invalid_rst {
        set("tcp_ignore_invalid_rst", (v as u8).to_string())?;
    }
    if let Some(v) = c.nf_conntrack_tcp_max_retrans {
        set("tcp_max_retrans", v.to_string())?;
    }
    if let Some(v) = c.nf_conntrack_checksum {
        set("checksum", (v as u8).to_string())?;
    }
    for (name, v) in &c.timeouts {
        k.set(name, &v.to_string())
            .map_err(|e| anyhow::anyhow!("conntrack.timeouts.{name}: {e}"))?;
    }
    Ok(k)
}

/// Loads the rules named by the config: `rules.file` (iptables-restore) and
/// `rules.file6` (ip6tables-restore), paired so each packet meets its family's rules, as
/// with iptables and ip6tables. A family without a file meets empty ACCEPT chains, as an
/// empty ip6tables would give it. Without any file: the demo ruleset for the embedded
/// default, accept-all otherwise.
pub fn load_rules(cfg: &Config, embedded: bool) -> Result<Ruleset> {
    let read = |p: &std::path::Path, fam| {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("rules: reading {}", p.display()))?;
        dataplane::ruleset::parse_ruleset(&text, &p.display().to_string(), Some(fam))
            .map_err(|e| anyhow::anyhow!("{e}"))
    };
    let v4 = cfg
        .rules
        .file
        .as_deref()
        .map(|p| read(p, dataplane::packet::Family::V4))
        .transpose()?;
    let v6 = cfg
        .rules
        .file6
        .as_deref()
        .map(|p| read(p, dataplane::packet::Family::V6))
        .transpose()?;
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

/// One port's queue handles.
type PortHandles = Vec<Box<dyn Port>>;
/// Every port's queue handles, in config order.
type PortQueues = Vec<PortHandles>;

/// Per-queue port handles for every configured port: `handles[port][queue]`.
fn open_ports(
    cfg: &Config,
    queues: u16,
) -> Result<(PortQueues, Option<Arc<port::pktgen::PktgenStats>>)> {
    let mut out: Vec<Option<Vec<Box<dyn Port>>>> = cfg.ports.iter().map(|_| None).collect();
    let mut pktgen_stats = None;
    // pktgen ports come as a linked pair.
    let gens: Vec<usize> = (0..cfg.ports.len())
        .filter(|&i| cfg.ports[i].backend == "pktgen")
        .collect();
    if !gens.is_empty() {
        if gens.len() != 2 {
            bail!("port: the pktgen backend needs exactly two ports (side = \"inside\" and \"outside\"), found {}", gens.len());
        }
        let inside = gens
            .iter()
            .copied()
            .find(|&i| cfg.ports[i].side.as_deref() == Some("inside"));
        let outside = gens
            .iter()
            .copied()
            .find(|&i| cfg.ports[i].side.as_deref() == Some("outside"));
        let (Some(ii), Some(oi)) = (inside, outside) else {
            bail!(
                "port[{}].side: the two pktgen ports must be one \"inside\" and one \"outside\"",
                gens[1]
            );
        };
        let gcfg = pktgen_config(cfg, queues);
        let pair = port::pktgen::PktgenPair::new(&gcfg).context("pktgen")?;
        pktgen_stats = Some(pair.stats());
        let (ins, outs): (PortHandles, PortHandles) = pair
            .into_queue_ports()
            .into_iter()
            .map(|(a, b)| (Box::new(a) as Box<dyn Port>, Box::new(b) as Box<dyn Port>))
            .unzip();
        out[ii] = Some(ins);
        out[oi] = Some(outs);
    }
    for (i, p) in cfg.ports.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        out[i] = Some(open_one(cfg, i, p, queues)?);
    }
    Ok((
        out.into_iter()
            .map(|o| o.expect("every port opened"))
            .collect(),
        pktgen_stats,
    ))
}

/// The generator configuration from `[pktgen]`.
pub fn pktgen_config(cfg: &Config, queues: u16) -> port::pktgen::PktgenConfig {
    use port::pktgen::{EstablishedTraffic, LifecycleTraffic, RangeProto, RangeTraffic, Traffic};
    let g = &cfg.pktgen;
    let traffic = match g.mode.as_str() {
        "established" => Traffic::Established(EstablishedTraffic {
            flows: g.flows,
            frame_size: g.frame_size,
            ..Default::default()
        }),
        "range" => Traffic::Range(RangeTraffic {
            proto: if g.proto == "tcp" {
                RangeProto::Tcp
            } else {
                RangeProto::Udp
            },
            frame_size: g.frame_size,
            flows: g.flows,
            ..Default::default()
        }),
        _ => Traffic::Lifecycle(LifecycleTraffic {
            concurrent: g.flows,
            reuse_ports: g.reuse_ports,
            ..Default::default()
        }),
    };
    port::pktgen::PktgenConfig {
        queues,
        traffic,
        rate_pps: g.rate_pps,
        ..Default::default()
    }
}

fn open_one(cfg: &Config, i: usize, p: &PortConfig, queues: u16) -> Result<Vec<Box<dyn Port>>> {
    match p.backend.as_str() {
        "pcap" => {
            if queues != 1 {
                bail!("port[{i}].backend: a pcap port supports one worker (set dataplane.workers = 1)");
            }
            let port = port::pcap::PcapPort::open(p.pcap_in.as_deref(), p.pcap_out.as_deref())
                .with_context(|| format!("port[{i}] ({}): opening pcap", p.name))?;
            Ok(vec![Box::new(port)])
        }
        "af_packet" => {
            let ifname = p.interface.as_deref().unwrap_or_default();
            let port = port::af_packet::AfPacketPort::open(ifname, queues, &Default::default())
                .with_context(|| {
                    format!("port[{i}] ({}): opening af_packet on {ifname}", p.name)
                })?;
            Ok(port
                .split_queues()
                .into_iter()
                .map(|q| Box::new(q) as Box<dyn Port>)
                .collect())
        }
        "af_xdp" => {
            let ifname = p.interface.as_deref().unwrap_or_default();
            let descriptors = u32::try_from(p.descriptors).unwrap_or(u32::MAX);
            let cfg = port::af_xdp::XdpConfig::with_descriptors(descriptors);
            let port = port::af_xdp::AfXdpPort::open(ifname, queues, &cfg)
                .with_context(|| format!("port[{i}] ({}): opening af_xdp on {ifname}", p.name))?;
            Ok(port
                .split_queues()
                .into_iter()
                .map(|q| Box::new(q) as Box<dyn Port>)
                .collect())
        }
        "dpdk" => open_dpdk(cfg, i, p, queues),
        other => bail!("port[{i}].backend: backend {other:?} is not built into this binary"),
    }
}

/// Opens a dpdk port, initialising DPDK's EAL first (once per process) with
/// `[dpdk] eal_args`.
#[cfg(feature = "dpdk")]
fn open_dpdk(cfg: &Config, i: usize, p: &PortConfig, queues: u16) -> Result<Vec<Box<dyn Port>>> {
    use port::dpdk;
    dpdk::eal_init(&cfg.dpdk.eal_args).context("[dpdk] eal_args")?;
    let device = p.device.as_deref().unwrap_or_default();
    let pcfg = dpdk::DpdkPortConfig {
        queues: p.rx_queues.unwrap_or(queues),
        descriptors: u16::try_from(p.descriptors).unwrap_or(u16::MAX),
        pool_size: u32::try_from(cfg.dataplane.pool_size).unwrap_or(u32::MAX),
        socket_id: p.socket_id,
        ..Default::default()
    };
    let port = dpdk::DpdkPort::open(&p.name, device, &pcfg)
        .with_context(|| format!("port[{i}] ({}): opening DPDK device {device:?}", p.name))?;
    if !port.link_up() {
        tracing::warn!(port = %p.name, device, "DPDK link is down (memif: is the peer running?)");
    }
    Ok(port
        .split_queues()
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn Port>)
        .collect())
}

#[cfg(not(feature = "dpdk"))]
fn open_dpdk(_cfg: &Config, i: usize, _p: &PortConfig, _queues: u16) -> Result<Vec<Box<dyn Port>>> {
    bail!("port[{i}].backend: this binary was built without DPDK support (rebuild with --features dpdk)")
}

impl Runtime {
    /// Starts ports and workers. `embedded` selects the demo ruleset when no rules file is set.
    pub fn start(cfg: Config, embedded: bool) -> Result<Runtime> {
        let n = cfg.worker_count();
        let rs = load_rules(&cfg, embedded)?;
        let ct_cfg = conntrack_config(&cfg)?;
        let per_shard = cfg.conntrack.nf_conntrack_max.div_ceil(n).max(64);
        let non_ip = match cfg.dataplane.non_ip.as_str() {
            "pass" => NonIpPolicy::Pass,
            "drop" => NonIpPolicy::Drop,
            _ => NonIpPolicy::PassArp,
        };
        let (mut handles, pktgen) = open_ports(&cfg, n as u16)?;
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
        let cores: Vec<usize> = if cfg.dataplane.cores.is_empty() {
            let avail = core_affinity::get_core_ids()
                .map(|v| v.len())
                .unwrap_or(1)
                .max(1);
            (0..n).map(|i| i % avail).collect()
        } else {
            cfg.dataplane.cores.clone()
        };
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
            HandoffLinks::mesh(n, HANDOFF_RING)
                .into_iter()
                .map(Some)
                .collect()
        } else {
            (0..n).map(|_| None).collect()
        };
        for (w, mut qports) in per_worker.into_iter().enumerate() {
            let mut pairs = Vec::new();
            let mut names = Vec::new();
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
                pairs.push(PairPorts {
                    mode: if pair.mode == "host" {
                        PairMode::Host
                    } else {
                        PairMode::Forward
                    },
                    network: np,
                    host: hp,
                    queue: w as u16,
                });
                names.push((pair.network.clone(), pair.host.clone()));
            }
            let table = ConnTable::with_expectations(per_shard, ct_cfg, expect.clone(), w as u16);
            let mut pipeline = Pipeline::new(table, &ruleset.load(), non_ip);
            pipeline.ftp_ports = cfg.conntrack.ftp_ports.clone();
            pipeline.ownership = (n > 1).then_some(Ownership {
                me: w as u16,
                workers: n as u16,
                model,
            });
            let worker = Worker {
                id: w,
                core: Some(cores[w]),
                pipeline,
                pool: MbufPool::new(cfg.dataplane.pool_size),
                pairs,
                pair_names: names,
                burst: cfg.dataplane.burst,
                ruleset: ruleset.clone(),
                stats: Arc::new(crossbeam_utils::CachePadded::new(PublishedStats::default())),
                commands: Arc::new(crossbeam_queue::ArrayQueue::new(64)),
                stop: stop.clone(),
                clock,
                log_events: Some(log_events.clone()),
                log_lost: log_lost.clone(),
                handoff: links[w].take(),
            };
            workers.push(worker.handle());
            threads.threads.push(
                std::thread::Builder::new()
                    .name(format!("statewall-w{w}"))
                    .spawn(move || worker.run())
                    .context("spawning a worker")?,
            );
        }
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
            threads: Mutex::new(std::mem::take(&mut threads.threads)),
        })
    }

    /// Re-reads the rules file and publishes it atomically; on failure the running
    /// ruleset stays and the failure is counted and logged.
    pub fn reload(&self) -> Result<u64> {
        let _g = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let loaded = load_rules(&self.cfg, self.embedded);
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
            snaps = self.on_all(move |p, _| {
                (p.counters_generation == gen).then(|| p.counters.snapshot())
            })?;
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

/// `statewall run`: starts ports, workers and the control API; prints stats every
/// `stats_interval` seconds; reloads on SIGHUP; stops on Ctrl-C/SIGTERM or after
/// `duration`, then prints a summary.
pub fn run(cfg: Config, duration: Option<f64>, embedded: bool) -> Result<()> {
    let interval = cfg.control.stats_interval;
    let listen = cfg.control.listen.clone();
    // Bind the control address first: a busy or malformed `control.listen` must fail
    // before any port is opened or worker started.
    let server = if listen.is_empty() {
        None
    } else {
        Some(crate::api::bind(&listen)?)
    };
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
    let api = match server {
        None => None,
        Some(server) => Some(crate::api::serve_on(rt.clone(), server)?),
    };
    tracing::info!(
        workers = rt.workers.len(),
        ports = rt.ports.len(),
        generation = rt.reloads.generation.load(Ordering::Relaxed),
        api = ?api,
        "statewall started"
    );
    println!(
        "statewall: {} worker(s), {} port(s), ruleset generation {}{}",
        rt.workers.len(),
        rt.ports.len(),
        rt.reloads.generation.load(Ordering::Relaxed),
        api.map(|a| format!(", control API and /metrics on http://{a}"))
            .unwrap_or_default()
    );
    crate::notify::ready();
    crate::notify::status(&format!(
        "ruleset generation {}",
        rt.reloads.generation.load(Ordering::Relaxed)
    ));
    let start = Instant::now();
    let mut last = Instant::now();
    let mut prev = Vec::new();
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
            // Runtime::reload logs and counts the outcome and sets STATUS=.
            let _ = rt.reload();
            crate::notify::ready();
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
    // Wait for the workers: the API thread keeps its clone of the runtime, so join here.
    rt.join();
    // Every port and mbuf went with the workers: release DPDK's EAL (runtime files).
    #[cfg(feature = "dpdk")]
    if let Err(e) = port::dpdk::eal_cleanup() {
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
        let parsed = dataplane::ruleset::parse_ruleset(text, origin, None)
            .map_err(|e| anyhow::anyhow!("{e}"));
        self.publish(parsed, "replace")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(backend: &str, interface: &str) -> PortConfig {
        PortConfig {
            name: "wan".into(),
            backend: backend.into(),
            interface: Some(interface.into()),
            pcap_in: None,
            pcap_out: None,
            descriptors: 256,
            side: None,
            device: None,
            rx_queues: None,
            socket_id: None,
        }
    }

    #[test]
    fn open_one_af_xdp_names_port_and_interface_on_error() {
        for backend in ["af_packet", "af_xdp"] {
            let e = open_one(&Config::embedded(), 0, &live(backend, "sw-nosuch0"), 1)
                .err()
                .expect("no such interface");
            let msg = format!("{e:#}");
            assert!(
                msg.contains(&format!("port[0] (wan): opening {backend} on sw-nosuch0")),
                "{msg}"
            );
            assert!(msg.contains("no such interface"), "{msg}");
        }
    }
}
