//! The TOML configuration: ports, pairs, workers, conntrack sizing and timeouts,
//! helpers, the rules file, metrics and control addresses.
//!
//! Unknown keys are refused, and every semantic check names the field it is about
//! (`port[1].backend: unknown backend "foo"`), so an operator can fix it at once.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

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
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConntrackConfig {
    /// Total entries over all workers (`nf_conntrack_max`).
    #[serde(default = "default_ct_max")]
    pub nf_conntrack_max: usize,
    /// `nf_conntrack_tcp_loose`.
    #[serde(default)]
    pub nf_conntrack_tcp_loose: Option<bool>,
    /// `nf_conntrack_tcp_be_liberal`.
    #[serde(default)]
    pub nf_conntrack_tcp_be_liberal: Option<bool>,
    /// `nf_conntrack_tcp_ignore_invalid_rst`.
    #[serde(default)]
    pub nf_conntrack_tcp_ignore_invalid_rst: Option<bool>,
    /// `nf_conntrack_tcp_max_retrans`.
    #[serde(default)]
    pub nf_conntrack_tcp_max_retrans: Option<u32>,
    /// `nf_conntrack_checksum`.
    #[serde(default)]
    pub nf_conntrack_checksum: Option<bool>,
    /// Timeouts in seconds by their sysctl names without the `nf_conntrack_` prefix,
    /// e.g. `tcp_timeout_established = 432000`, `udp_timeout = 30`.
    #[serde(default)]
    pub timeouts: std::collections::BTreeMap<String, u32>,
    /// Helpers attached by default: e.g. `ftp_ports = [21]` (same as a raw-table
    /// `-p tcp --dport 21 -j CT --helper ftp`).
    #[serde(default)]
    pub ftp_ports: Vec<u16>,
}

fn default_ct_max() -> usize {
    262_144
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            nf_conntrack_max: default_ct_max(),
            nf_conntrack_tcp_loose: None,
            nf_conntrack_tcp_be_liberal: None,
            nf_conntrack_tcp_ignore_invalid_rst: None,
            nf_conntrack_tcp_max_retrans: None,
            nf_conntrack_checksum: None,
            timeouts: Default::default(),
            ftp_ports: Vec::new(),
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

/// `[control]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// HTTP address for the API and `/metrics` ("" disables it).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Seconds between terminal stats lines (0 = quiet).
    #[serde(default = "default_stats_interval")]
    pub stats_interval: u64,
}

fn default_listen() -> String {
    "127.0.0.1:9469".into()
}
fn default_stats_interval() -> u64 {
    1
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            listen: default_listen(),
            stats_interval: default_stats_interval(),
        }
    }
}

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
        for k in self.conntrack.timeouts.keys() {
            if !TIMEOUT_NAMES.contains(&k.as_str()) {
                bail!(
                    "conntrack.timeouts.{k}: unknown timeout (expected one of {})",
                    TIMEOUT_NAMES.join(", ")
                );
            }
        }
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

/// Timeout names accepted under `[conntrack.timeouts]` (Linux sysctl names without
/// the `nf_conntrack_` prefix).
pub const TIMEOUT_NAMES: &[&str] = &[
    "tcp_timeout_syn_sent",
    "tcp_timeout_syn_recv",
    "tcp_timeout_established",
    "tcp_timeout_fin_wait",
    "tcp_timeout_close_wait",
    "tcp_timeout_last_ack",
    "tcp_timeout_time_wait",
    "tcp_timeout_close",
    "tcp_timeout_max_retrans",
    "tcp_timeout_unacknowledged",
    "udp_timeout",
    "udp_timeout_stream",
    "icmp_timeout",
    "icmpv6_timeout",
    "generic_timeout",
];

#[cfg(test)]
mod tests {
    use super::*;

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
