//! The TOML configuration: ports, pairs, workers, conntrack sizing and timeouts,
//! helpers, the rules file, metrics and control addresses.
//!
//! Unknown keys are refused, and every semantic check names the field it is about
//! (`port[1].backend: unknown backend "foo"`), so an operator can fix it at once.

use anyhow::{bail, Context, Result};
use dataplane::conntrack::sysctl::{Kind, Value as SysctlValue};
use dataplane::conntrack::{Sysctl, SYSCTLS};
use serde::Deserialize;
use std::path::{Path, PathBuf};

mod control;
pub use control::{check_exposure, DEFAULT_SOCKET};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Worker threads and their cores.
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    /// Ports, by name.
    #[serde(default, rename = "port")]
    pub ports: Vec<PortConfig>,
    /// Port pairs and their mode.
    #[serde(default, rename = "pair")]
    pub pairs: Vec<PairConfig>,
    /// Connection tracking sizing and Linux sysctls.
    #[serde(default)]
    pub conntrack: ConntrackConfig,
    /// The rules file.
    #[serde(default)]
    pub rules: RulesConfig,
    /// IP sets loaded at start (`ipset save` files).
    #[serde(default)]
    pub sets: SetsConfig,
    /// Metrics and control API.
    #[serde(default)]
    pub control: ControlConfig,
    /// The built-in generator (pktgen backend).
    #[serde(default)]
    pub pktgen: PktgenSection,
    /// DPDK's EAL (dpdk backend).
    #[serde(default)]
    pub dpdk: DpdkSection,
}

/// `[dpdk]`: how DPDK's EAL is initialised (once per process, before the first dpdk port
/// opens).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct DpdkSection {
    /// Arguments passed verbatim to `rte_eal_init` (`-l`, `-a`, `--vdev`, `--file-prefix`,
    /// `--socket-mem`, `--in-memory`, `--no-huge`, ...).
    #[serde(default)]
    pub eal_args: Vec<String>,
}

/// `[pktgen]`: what the built-in generator offers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PktgenSection {
    /// "lifecycle" (TCP/UDP/ICMP connections from start to end), "established"
    /// (handshaken flows exchanging data) or "range" (pktgen-dpdk range traffic).
    #[serde(default = "default_pktgen_mode")]
    pub mode: String,
    /// Concurrent connections (lifecycle) or flows (established, range).
    #[serde(default = "default_flows")]
    pub flows: u32,
    /// Offered client packets per second over all queues (0 = as fast as possible).
    #[serde(default)]
    pub rate_pps: u64,
    /// Frame size for established and range traffic.
    #[serde(default = "default_frame_size")]
    pub frame_size: usize,
    /// Range traffic protocol: "udp" or "tcp".
    #[serde(default = "default_range_proto")]
    pub proto: String,
    /// Lifecycle traffic: each client slot reconnects from the same port to the same
    /// server, so TCP connections reopen their TIME_WAIT entries and the table stays
    /// near `flows` entries (false: a fresh port per connection, the table fills with
    /// TIME_WAIT entries as Linux's would under the same churn).
    #[serde(default)]
    pub reuse_ports: bool,
}

fn default_pktgen_mode() -> String {
    "lifecycle".into()
}
fn default_flows() -> u32 {
    1024
}
fn default_frame_size() -> usize {
    64
}
fn default_range_proto() -> String {
    "udp".into()
}

impl Default for PktgenSection {
    fn default() -> Self {
        PktgenSection {
            mode: default_pktgen_mode(),
            flows: default_flows(),
            rate_pps: 0,
            frame_size: default_frame_size(),
            proto: default_range_proto(),
            reuse_ports: false,
        }
    }
}

/// `[dataplane]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataplaneConfig {
    /// Number of workers; 0 = one per available core (at least one).
    #[serde(default)]
    pub workers: usize,
    /// Cores to pin workers to (in order); empty = cores 0..workers.
    #[serde(default)]
    pub cores: Vec<usize>,
    /// Packets per rx burst.
    #[serde(default = "default_burst")]
    pub burst: usize,
    /// Buffers per worker pool.
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    /// What to do with non-IP frames: "pass-arp" (default), "pass", "drop".
    #[serde(default = "default_non_ip")]
    pub non_ip: String,
}

fn default_burst() -> usize {
    32
}
fn default_pool() -> usize {
    4096
}
fn default_non_ip() -> String {
    "pass-arp".into()
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            workers: 0,
            cores: Vec::new(),
            burst: default_burst(),
            pool_size: default_pool(),
            non_ip: default_non_ip(),
        }
    }
}

/// `[[port]]`: one port and its backend.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// The port's name (used by pairs, `-i`/`-o` matches and metrics).
    pub name: String,
    /// "pktgen", "pcap", "af_packet", "af_xdp" or "dpdk".
    pub backend: String,
    /// Linux interface (af_packet, af_xdp).
    #[serde(default)]
    pub interface: Option<String>,
    /// pcap: file to read (rx).
    #[serde(default)]
    pub pcap_in: Option<PathBuf>,
    /// pcap: file to write (tx).
    #[serde(default)]
    pub pcap_out: Option<PathBuf>,
    /// Ring/descriptor size per queue.
    #[serde(default = "default_ring")]
    pub descriptors: usize,
    /// pktgen: which side of the generator pair this port is ("inside" or "outside").
    #[serde(default)]
    pub side: Option<String>,
    /// dpdk: the DPDK device name: a vdev (`net_memif0`, `net_null0`) or a PCI address
    /// (`0000:03:00.0`).
    #[serde(default)]
    pub device: Option<String>,
    /// dpdk: rx (and tx) queues; must equal the number of workers (the default: one per
    /// worker, steered by symmetric RSS).
    #[serde(default)]
    pub rx_queues: Option<u16>,
    /// dpdk: NUMA socket for the port's mempools and rings (default: the device's).
    #[serde(default)]
    pub socket_id: Option<i32>,
    /// The port's own IP addresses (at most one IPv4 and one IPv6), as an interface
    /// has them: MASQUERADE translates to the network port's, REDIRECT to it as well,
    /// and `-m addrtype --dst-type LOCAL` matches every port's (see docs/NAT.md).
    #[serde(default)]
    pub address: Vec<String>,
    /// The port's MTU (default 1500): `-j TCPMSS --clamp-mss-to-pmtu` clamps SYNs leaving
    /// through this port to it (MSS = MTU - 40 on IPv4, MTU - 60 on IPv6).
    #[serde(default)]
    pub mtu: Option<u16>,
}

impl PortConfig {
    /// The parsed [`PortConfig::address`] list (checked by [`Config::validate`]).
    pub fn addresses(&self) -> Vec<std::net::IpAddr> {
        self.address.iter().filter_map(|a| a.parse().ok()).collect()
    }
}

fn default_ring() -> usize {
    2048
}

/// `[[pair]]`: two ports forwarding into each other.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PairConfig {
    /// "forward" (FORWARD chain) or "host" (INPUT toward the host, OUTPUT from it).
    #[serde(default = "default_mode")]
    pub mode: String,
    /// The port facing the network ("outside").
    pub network: String,
    /// The port facing the protected host or inside network.
    pub host: String,
}

fn default_mode() -> String {
    "forward".into()
}

/// `[conntrack]`: sizing and the Linux sysctls, with Linux names and defaults.
///
/// Besides the fields below, every switch and count of
/// [`dataplane::conntrack::SYSCTLS`] is a key here by its full sysctl name
/// (`nf_conntrack_tcp_loose = false`, `nf_conntrack_tcp_max_retrans = 3`), and every
/// timeout a key of `[conntrack.timeouts]`; [`ConntrackConfig::settings`] checks them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ConntrackConfig {
    /// Total entries over all workers (`nf_conntrack_max`).
    #[serde(default = "default_ct_max")]
    pub nf_conntrack_max: usize,
    /// Timeouts in seconds by their sysctl names without the `nf_conntrack_` prefix,
    /// e.g. `tcp_timeout_established = 432000`, `udp_timeout = 30`.
    #[serde(default)]
    pub timeouts: std::collections::BTreeMap<String, u32>,
    /// Helpers attached by default: e.g. `ftp_ports = [21]` (same as a raw-table
    /// `-p tcp --dport 21 -j CT --helper ftp`).
    #[serde(default)]
    pub ftp_ports: Vec<u16>,
    /// The other keys: sysctls by their full names (`nf_conntrack_tcp_loose`).
    #[serde(flatten)]
    pub sysctls: std::collections::BTreeMap<String, toml::Value>,
}

impl ConntrackConfig {
    /// The sysctls this section sets, typed: its `nf_conntrack_*` keys (switches and
    /// counts) and its `[conntrack.timeouts]`, in that order. An unknown key, a
    /// timeout outside `timeouts` (or a switch inside), or a value of the wrong type is
    /// an error naming the key.
    pub fn settings(&self) -> Result<Vec<(&'static Sysctl, SysctlValue)>> {
        let mut out = Vec::new();
        let names = |pick: fn(&Sysctl) -> bool, full: bool| {
            SYSCTLS
                .iter()
                .filter(|s| s.name != "max" && pick(s))
                .map(|s| {
                    if full {
                        s.sysctl_name()
                    } else {
                        s.name.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (k, v) in &self.sysctls {
            let s = k
                .strip_prefix("nf_conntrack_")
                .and_then(Sysctl::find)
                .filter(|s| s.kind != Kind::Secs && s.name != "max")
                .with_context(|| {
                    format!(
                        "conntrack.{k}: unknown setting (expected one of nf_conntrack_max, {}, timeouts, ftp_ports)",
                        names(|s| s.kind != Kind::Secs, true)
                    )
                })?;
            let value = match (s.kind, v) {
                (Kind::Bool, toml::Value::Boolean(b)) => SysctlValue::Bool(*b),
                (Kind::Count, toml::Value::Integer(n)) if u32::try_from(*n).is_ok() => {
                    SysctlValue::Num(*n as u32)
                }
                (Kind::Bool, _) => bail!("conntrack.{k}: expected true or false, got {v}"),
                _ => bail!("conntrack.{k}: expected a number 0..=4294967295, got {v}"),
            };
            out.push((s, value));
        }
        for (k, v) in &self.timeouts {
            let s = Sysctl::find(k)
                .filter(|s| s.kind == Kind::Secs && s.name == k.as_str())
                .with_context(|| {
                    format!(
                        "conntrack.timeouts.{k}: unknown timeout (expected one of {})",
                        names(|s| s.kind == Kind::Secs, false)
                    )
                })?;
            out.push((s, SysctlValue::Num(*v)));
        }
        Ok(out)
    }
}

fn default_ct_max() -> usize {
    262_144
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            nf_conntrack_max: default_ct_max(),
            timeouts: Default::default(),
            ftp_ports: Vec::new(),
            sysctls: Default::default(),
        }
    }
}

/// `[rules]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// iptables-restore file (IPv4).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// ip6tables-restore file (IPv6).
    #[serde(default)]
    pub file6: Option<PathBuf>,
}

/// `[sets]`: `ipset save` files restored at start, in order, before the rules are read
/// (docs/SETS.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SetsConfig {
    /// `ipset save` / `ipset restore` files.
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

pub use control::ControlConfig;

/// The embedded default: two pktgen ports in a forward pair, the demo ruleset.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../deploy/examples/pktgen-demo.toml");

/// The demo ruleset used by the embedded default.
pub const DEMO_RULES: &str = include_str!("../../deploy/examples/demo.rules");

const BACKENDS: &[&str] = &["pktgen", "pcap", "af_packet", "af_xdp", "dpdk"];

impl Config {
    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        let cfg: Config =
            toml::from_str(text).with_context(|| format!("{origin}: invalid configuration"))?;
        cfg.validate()
            .with_context(|| format!("{origin}: invalid configuration"))?;
        Ok(cfg)
    }

    /// Reads and validates a configuration file. Relative paths inside it are
    /// resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut cfg = Config::parse(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(x) = p {
                if x.is_relative() {
                    *x = base.join(&*x);
                }
            }
        };
        fix(&mut cfg.rules.file);
        fix(&mut cfg.rules.file6);
        for f in &mut cfg.sets.files {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
        cfg.control.resolve_paths(base);
        for port in &mut cfg.ports {
            fix(&mut port.pcap_in);
            fix(&mut port.pcap_out);
        }
        Ok(cfg)
    }

    /// The embedded default configuration.
    pub fn embedded() -> Config {
        Config::parse(EMBEDDED_DEFAULT, "embedded default").expect("embedded default is valid")
    }

    /// Semantic checks; each error names its field.
    pub fn validate(&self) -> Result<()> {
        self.control.validate()?;
        let d = &self.dataplane;
        if d.burst == 0 || d.burst > 256 {
            bail!("dataplane.burst: must be 1..=256, got {}", d.burst);
        }
        if d.pool_size < 2 * d.burst {
            bail!(
                "dataplane.pool_size: must be at least 2 x burst ({}), got {}",
                2 * d.burst,
                d.pool_size
            );
        }
        if !["pass-arp", "pass", "drop"].contains(&d.non_ip.as_str()) {
            bail!(
                "dataplane.non_ip: expected \"pass-arp\", \"pass\" or \"drop\", got {:?}",
                d.non_ip
            );
        }
        if !d.cores.is_empty() && d.workers != 0 && d.cores.len() != d.workers {
            bail!(
                "dataplane.cores: {} cores listed for {} workers",
                d.cores.len(),
                d.workers
            );
        }
        if self.ports.is_empty() {
            bail!("port: at least one [[port]] is required");
        }
        for (i, p) in self.ports.iter().enumerate() {
            if p.name.is_empty() {
                bail!("port[{i}].name: must not be empty");
            }
            if let Some(m) = p.mtu.filter(|m| !(576..=9216).contains(m)) {
                bail!("port[{i}].mtu: must be 576..=9216, got {m}");
            }
            if self.ports[..i].iter().any(|q| q.name == p.name) {
                bail!("port[{i}].name: duplicate port name {:?}", p.name);
            }
            if !BACKENDS.contains(&p.backend.as_str()) {
                bail!(
                    "port[{i}].backend: unknown backend {:?} (expected one of {})",
                    p.backend,
                    BACKENDS.join(", ")
                );
            }
            match p.backend.as_str() {
                "af_packet" | "af_xdp" if p.interface.is_none() => {
                    bail!("port[{i}].interface: required for backend {:?}", p.backend)
                }
                "pcap" if p.pcap_in.is_none() && p.pcap_out.is_none() => {
                    bail!("port[{i}].pcap_in: a pcap port needs pcap_in and/or pcap_out")
                }
                "dpdk" if p.device.is_none() => bail!(
                    "port[{i}].device: required for backend \"dpdk\" (a vdev name such as \"net_memif0\", or a PCI address)"
                ),
                "pktgen" => match p.side.as_deref() {
                    Some("inside") | Some("outside") => {}
                    other => bail!("port[{i}].side: a pktgen port needs side = \"inside\" or \"outside\", got {other:?}"),
                },
                _ => {}
            }
            if !p.descriptors.is_power_of_two() || p.descriptors < 64 {
                bail!(
                    "port[{i}].descriptors: must be a power of two >= 64, got {}",
                    p.descriptors
                );
            }
            if p.backend == "dpdk" && p.descriptors > 32768 {
                bail!(
                    "port[{i}].descriptors: at most 32768 for a dpdk port, got {}",
                    p.descriptors
                );
            }
            if let Some(q) = p.rx_queues {
                if p.backend != "dpdk" {
                    bail!("port[{i}].rx_queues: only for backend \"dpdk\"");
                }
                if usize::from(q) != self.worker_count() {
                    bail!(
                        "port[{i}].rx_queues: must equal the number of workers ({}), one rx queue per worker; got {q}",
                        self.worker_count()
                    );
                }
            }
            if p.backend != "dpdk" && (p.device.is_some() || p.socket_id.is_some()) {
                bail!("port[{i}].device: device and socket_id are only for backend \"dpdk\"");
            }
            let mut fams = [false; 2];
            for a in &p.address {
                let ip: std::net::IpAddr = a
                    .parse()
                    .map_err(|_| anyhow::anyhow!("port[{i}].address: bad IP address {a:?}"))?;
                let f = &mut fams[usize::from(ip.is_ipv6())];
                if *f {
                    bail!(
                        "port[{i}].address: at most one IPv4 and one IPv6 address, got {a:?} too"
                    );
                }
                *f = true;
            }
        }
        if self.pairs.is_empty() {
            bail!("pair: at least one [[pair]] is required");
        }
        for (i, pair) in self.pairs.iter().enumerate() {
            if pair.mode != "forward" && pair.mode != "host" {
                bail!(
                    "pair[{i}].mode: expected \"forward\" or \"host\", got {:?}",
                    pair.mode
                );
            }
            for (field, name) in [("network", &pair.network), ("host", &pair.host)] {
                if !self.ports.iter().any(|p| &p.name == name) {
                    bail!("pair[{i}].{field}: no port named {name:?}");
                }
            }
            if pair.network == pair.host {
                bail!("pair[{i}].host: a pair needs two different ports");
            }
        }
        let g = &self.pktgen;
        if !["lifecycle", "established", "range"].contains(&g.mode.as_str()) {
            bail!(
                "pktgen.mode: expected \"lifecycle\", \"established\" or \"range\", got {:?}",
                g.mode
            );
        }
        if g.flows == 0 {
            bail!("pktgen.flows: must be > 0");
        }
        if !(60..=1518).contains(&g.frame_size) {
            bail!("pktgen.frame_size: must be 60..=1518, got {}", g.frame_size);
        }
        if g.proto != "udp" && g.proto != "tcp" {
            bail!(
                "pktgen.proto: expected \"udp\" or \"tcp\", got {:?}",
                g.proto
            );
        }
        if self.conntrack.nf_conntrack_max == 0 {
            bail!("conntrack.nf_conntrack_max: must be > 0");
        }
        self.conntrack.settings()?;
        Ok(())
    }

    /// Number of workers to start (resolving 0 to the available cores).
    pub fn worker_count(&self) -> usize {
        match (self.dataplane.workers, self.dataplane.cores.len()) {
            (0, 0) => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .max(1),
            (0, n) => n,
            (w, _) => w,
        }
    }
}

/// The `[conntrack]` settings as a Markdown table (docs/CONFIG.md holds a copy, and a
/// test keeps it equal): the TOML key, the Linux sysctl, the kind, the default.
pub fn sysctl_table() -> String {
    let linux = dataplane::conntrack::Config::default();
    let mut t = String::from(
        "| TOML key | Linux sysctl (`net.netfilter.`) | kind | default | what it does |\n|---|---|---|---|---|\n",
    );
    for s in SYSCTLS {
        let key = match (s.kind, s.name) {
            (_, "max") => "`[conntrack] nf_conntrack_max` (all workers)".to_string(),
            (Kind::Secs, n) => format!("`[conntrack.timeouts] {n}`"),
            _ => format!("`[conntrack] {}`", s.sysctl_name()),
        };
        let kind = match s.kind {
            Kind::Bool => "0/1",
            Kind::Secs => "seconds",
            Kind::Count => "count",
        };
        let sysctl = if s.linux {
            format!("`{}`", s.sysctl_name())
        } else {
            "(statewall only)".into()
        };
        t += &format!(
            "| {key} | {sysctl} | {kind} | {} | {} |\n",
            s.get(&linux),
            s.doc
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_config_lists_every_sysctl() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIG.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let table = sysctl_table();
        assert!(
            doc.contains(&table),
            "docs/CONFIG.md's sysctl table is out of date; it should read:\n{table}"
        );
    }

    #[test]
    fn every_sysctl_is_a_toml_key() {
        let base = "[[port]]\nname='a'\nbackend='pktgen'\nside='inside'\n[[port]]\nname='b'\nbackend='pktgen'\nside='outside'\n[[pair]]\nnetwork='b'\nhost='a'\n";
        let linux = dataplane::conntrack::Config::default();
        for s in SYSCTLS.iter().filter(|s| s.name != "max") {
            // A value other than the default, written where the docs table says.
            let (section, key, v) = match (s.kind, s.get(&linux)) {
                (Kind::Secs, SysctlValue::Num(n)) => (
                    "[conntrack.timeouts]",
                    s.name.to_string(),
                    (n + 1).to_string(),
                ),
                (_, SysctlValue::Num(n)) => ("[conntrack]", s.sysctl_name(), (n + 1).to_string()),
                (_, SysctlValue::Bool(b)) => ("[conntrack]", s.sysctl_name(), (!b).to_string()),
            };
            let c = Config::parse(&format!("{base}{section}\n{key} = {v}\n"), "t.toml")
                .unwrap_or_else(|e| panic!("{key}: {e:#}"));
            let k = crate::runtime::conntrack_config(&c).unwrap();
            assert_ne!(
                s.get(&k),
                s.get(&linux),
                "{key} did not reach the conntrack config"
            );
        }
        assert!(err(&format!(
            "{base}[conntrack]\nnf_conntrack_tcp_timeout_close = 3\n"
        ))
        .contains("conntrack.nf_conntrack_tcp_timeout_close: unknown setting"));
        assert!(err(&format!("{base}[conntrack.timeouts]\ntcp_loose = 1\n"))
            .contains("conntrack.timeouts.tcp_loose: unknown timeout"));
        assert!(
            err(&format!("{base}[conntrack]\nnf_conntrack_tcp_loose = 1\n"))
                .contains("conntrack.nf_conntrack_tcp_loose: expected true or false")
        );
        assert!(err(&format!(
            "{base}[conntrack]\nnf_conntrack_tcp_max_retrans = -1\n"
        ))
        .contains("conntrack.nf_conntrack_tcp_max_retrans: expected a number"));
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded();
        assert_eq!(c.ports.len(), 2);
        assert!(c.worker_count() >= 1);
    }

    fn err(text: &str) -> String {
        format!("{:#}", Config::parse(text, "t.toml").unwrap_err())
    }

    #[test]
    fn errors_name_the_field() {
        let base = "[[port]]\nname='a'\nbackend='pktgen'\nside='inside'\n[[port]]\nname='b'\nbackend='pktgen'\nside='outside'\n[[pair]]\nnetwork='b'\nhost='a'\n";
        assert!(Config::parse(base, "t.toml").is_ok());
        assert!(
            err(&base.replace("backend='pktgen'\nside='inside'", "backend='foo'"))
                .contains("port[0].backend: unknown backend \"foo\"")
        );
        assert!(err(&format!("{base}[dataplane]\nburst=0\n")).contains("dataplane.burst"));
        assert!(err(&base.replace("host='a'", "host='zz'"))
            .contains("pair[0].host: no port named \"zz\""));
        assert!(err(&format!("{base}[conntrack.timeouts]\nudp_timeot=3\n"))
            .contains("conntrack.timeouts.udp_timeot"));
        let e = err(&format!("{base}[conntrack]\nnf_conntrack_mx=3\n"));
        assert!(e.contains("nf_conntrack_mx"), "{e}");
        assert!(
            err(&base.replace("backend='pktgen'\nside='inside'", "backend='af_packet'"))
                .contains("port[0].interface")
        );
    }

    #[test]
    fn dpdk_section_and_port_fields() {
        let text = "[dpdk]\neal_args = ['-l', '0-1', '--vdev=net_null0', '--vdev=net_null1']\n\
            [dataplane]\nworkers = 1\n\
            [[port]]\nname='a'\nbackend='dpdk'\ndevice='net_null0'\nrx_queues=1\nsocket_id=0\n\
            [[port]]\nname='b'\nbackend='dpdk'\ndevice='net_null1'\n\
            [[pair]]\nnetwork='a'\nhost='b'\n";
        let c = Config::parse(text, "t.toml").unwrap();
        assert_eq!(c.dpdk.eal_args[2], "--vdev=net_null0");
        assert_eq!(c.ports[0].device.as_deref(), Some("net_null0"));
        assert_eq!(
            (c.ports[0].rx_queues, c.ports[0].socket_id),
            (Some(1), Some(0))
        );
        assert!(err(&text.replace("device='net_null1'\n", ""))
            .contains("port[1].device: required for backend \"dpdk\""));
        assert!(err(&text.replace("rx_queues=1", "rx_queues=3"))
            .contains("port[0].rx_queues: must equal the number of workers (1)"));
        assert!(err(&text.replace("eal_args", "eal_arg")).contains("eal_arg"));
    }

    #[test]
    fn port_address_field() {
        let base = "[[port]]\nname='a'\nbackend='pktgen'\nside='inside'\n[[port]]\nname='b'\nbackend='pktgen'\nside='outside'\naddress=['192.0.2.1', '2001:db8::1']\n[[pair]]\nnetwork='b'\nhost='a'\n";
        let c = Config::parse(base, "t.toml").unwrap();
        assert_eq!(c.ports[1].addresses().len(), 2);
        assert!(err(&base.replace("'192.0.2.1'", "'192.0.2.300'"))
            .contains("port[1].address: bad IP address \"192.0.2.300\""));
        assert!(err(&base.replace("'2001:db8::1'", "'192.0.2.2'"))
            .contains("port[1].address: at most one IPv4 and one IPv6 address"));
    }
}
