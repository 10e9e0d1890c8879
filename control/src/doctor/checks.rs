//! The host checks of `statewall doctor`, one function per check, run in the order of
//! [`CHECKS`] (deploy/host/doctor-checks.md numbers them). Each reads its files under
//! the [`Roots`] and returns its report lines; none changes anything.

use super::{backends_built, cpu_list, Check, Roots};
use crate::config::Config;
use std::collections::BTreeSet;
use std::path::Path;

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_IPC_LOCK: u32 = 14;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

fn read(p: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn join(s: &BTreeSet<usize>) -> String {
    s.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Effective capabilities from `/proc/self/status` (`CapEff:` hex mask).
fn cap_eff(roots: &Roots) -> Option<u64> {
    let st = std::fs::read_to_string(roots.proc_.join("self/status")).ok()?;
    let line = st.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

/// Effective uid from `/proc/self/status` (`Uid: real effective saved fs`), else geteuid().
fn euid(roots: &Roots) -> u32 {
    std::fs::read_to_string(roots.proc_.join("self/status"))
        .ok()
        .and_then(|st| {
            st.lines()
                .find(|l| l.starts_with("Uid:"))?
                .split_whitespace()
                .nth(2)?
                .parse()
                .ok()
        })
        // SAFETY: geteuid has no preconditions.
        .unwrap_or_else(|| unsafe { libc::geteuid() })
}

fn cap_name(c: u32) -> &'static str {
    match c {
        CAP_NET_ADMIN => "CAP_NET_ADMIN",
        CAP_NET_RAW => "CAP_NET_RAW",
        CAP_IPC_LOCK => "CAP_IPC_LOCK",
        CAP_SYS_ADMIN => "CAP_SYS_ADMIN",
        _ => "CAP_BPF",
    }
}

/// What every check reads: the configuration, the roots, and the facts several checks
/// share (backends, worker count, pool memory, capabilities).
struct Host<'a> {
    cfg: &'a Config,
    roots: &'a Roots,
    /// The configured ports' backends.
    backends: BTreeSet<&'a str>,
    /// A port needs privileges (dpdk, af_xdp or af_packet).
    hw: bool,
    workers: usize,
    /// Memory the pools need: descriptors per queue per port + pool per worker, 2 KiB mbufs.
    need_bytes: u64,
    /// Effective capabilities (`CapEff:`).
    caps: Option<u64>,
    /// Running as uid 0.
    root: bool,
}

impl Host<'_> {
    fn has(&self, b: &str) -> bool {
        self.backends.contains(b)
    }

    fn has_cap(&self, c: u32) -> bool {
        self.root || self.caps.map(|m| m & (1u64 << c) != 0).unwrap_or(false)
    }
}

/// One check: the report lines it adds (one, or one per item checked).
type CheckFn = fn(&Host) -> Vec<Check>;

/// Every check, in report order (the numbers are deploy/host/doctor-checks.md's).
const CHECKS: &[CheckFn] = &[
    configuration,
    hugepages,
    memlock,
    capability,
    interfaces,
    cores,
    isolcpus,
    libdpdk,
    af_xdp,
    control_listen,
    conntrack_memory,
    systemd,
];

/// Runs every check for `cfg`.
pub fn run_checks(cfg: &Config, roots: &Roots) -> Vec<Check> {
    let backends: BTreeSet<&str> = cfg.ports.iter().map(|p| p.backend.as_str()).collect();
    let hw =
        backends.contains("dpdk") || backends.contains("af_xdp") || backends.contains("af_packet");
    let workers = cfg.worker_count();
    // Memory the pools need: descriptors per queue per port + pool per worker, 2 KiB mbufs.
    let need_bytes: u64 = (cfg
        .ports
        .iter()
        .map(|p| p.descriptors as u64 * workers as u64)
        .sum::<u64>()
        + cfg.dataplane.pool_size as u64 * workers as u64)
        * 2048;
    let host = Host {
        cfg,
        roots,
        backends,
        hw,
        workers,
        need_bytes,
        caps: cap_eff(roots),
        root: euid(roots) == 0,
    };
    CHECKS.iter().flat_map(|check| check(&host)).collect()
}

/// The configured worker cores (empty: chosen at start).
fn worker_cores(cfg: &Config) -> BTreeSet<usize> {
    if cfg.dataplane.cores.is_empty() {
        BTreeSet::new()
    } else {
        cfg.dataplane.cores.iter().copied().collect()
    }
}

/// 1. The configuration's shape.
fn configuration(h: &Host) -> Vec<Check> {
    vec![Check::ok(
        "configuration",
        format!(
            "{} port(s), {} pair(s), {} worker(s), backends {}",
            h.cfg.ports.len(),
            h.cfg.pairs.len(),
            h.workers,
            h.backends.iter().copied().collect::<Vec<_>>().join(",")
        ),
    )]
}

/// 2. hugepages, 3. hugetlbfs (dpdk).
fn hugepages(h: &Host) -> Vec<Check> {
    let mut out = Vec::new();
    if h.has("dpdk") {
        let mut total = 0u64;
        let mut free = 0u64;
        let mut sizes = Vec::new();
        if let Ok(rd) = std::fs::read_dir(h.roots.sys.join("kernel/mm/hugepages")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let kb: u64 = name
                    .trim_start_matches("hugepages-")
                    .trim_end_matches("kB")
                    .parse()
                    .unwrap_or(0);
                let n: u64 = read(e.path().join("nr_hugepages"))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let f: u64 = read(e.path().join("free_hugepages"))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if n > 0 {
                    sizes.push(format!("{n} x {kb}kB reserved, {f} free"));
                }
                total += n * kb * 1024;
                free += f * kb * 1024;
            }
        }
        let fix = "reserve hugepages: echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages, or hugepages=1024 on the kernel command line";
        out.push(if free == 0 {
            Check::fail(
                "hugepages",
                format!("none free ({} reserved)", total / 1024 / 1024),
                fix,
            )
        } else if free < h.need_bytes {
            Check::warn(
                "hugepages",
                format!(
                    "{} MiB free, the pools need about {} MiB",
                    free >> 20,
                    h.need_bytes >> 20
                ),
                fix,
            )
        } else {
            Check::ok("hugepages", sizes.join("; "))
        });
        let mounts = std::fs::read_to_string(h.roots.proc_.join("mounts")).unwrap_or_default();
        let mount = mounts
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[2] == "hugetlbfs")
            .map(|f| f[1].to_string());
        out.push(match mount {
            Some(m) => {
                let c = std::ffi::CString::new(m.clone()).unwrap_or_default();
                // SAFETY: access() reads a NUL-terminated path we own.
                let w = unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0;
                if w {
                    Check::ok("hugetlbfs", format!("mounted on {m}, writable"))
                } else {
                    Check::fail("hugetlbfs", format!("{m} is not writable by this user"), "run as the statewall user with access to the mount, or mount hugetlbfs with uid=/gid=")
                }
            }
            None => Check::fail("hugetlbfs", "no hugetlbfs mount", "mount -t hugetlbfs nodev /dev/hugepages"),
        });
    } else {
        out.push(Check::skip(
            "hugepages",
            "no dpdk port in the configuration",
        ));
    }
    out
}

/// 4. memlock (dpdk, af_xdp).
fn memlock(h: &Host) -> Vec<Check> {
    let mut out = Vec::new();
    if h.has("dpdk") || h.has("af_xdp") {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into the valid, exclusively borrowed `rl`.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl) };
        let fix = "LimitMEMLOCK=infinity in the unit, or ulimit -l unlimited";
        out.push(if rc != 0 {
            Check::warn("memlock", "getrlimit(RLIMIT_MEMLOCK) failed", fix)
        } else if rl.rlim_cur == libc::RLIM_INFINITY {
            Check::ok("memlock", "unlimited")
        } else if h.has_cap(CAP_IPC_LOCK) {
            Check::ok(
                "memlock",
                format!("{} KiB, but CAP_IPC_LOCK is effective", rl.rlim_cur / 1024),
            )
        } else if rl.rlim_cur < h.need_bytes {
            Check::fail(
                "memlock",
                format!(
                    "{} KiB locked memory allowed, the pools need about {} KiB",
                    rl.rlim_cur / 1024,
                    h.need_bytes / 1024
                ),
                fix,
            )
        } else {
            Check::warn(
                "memlock",
                format!("{} KiB (finite)", rl.rlim_cur / 1024),
                fix,
            )
        });
    } else {
        out.push(Check::skip(
            "memlock",
            "no dpdk or af_xdp port in the configuration",
        ));
    }
    out
}

/// 5. capabilities.
fn capability(h: &Host) -> Vec<Check> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (i, p) in h.cfg.ports.iter().enumerate() {
        let need: &[u32] = match p.backend.as_str() {
            "af_packet" => &[CAP_NET_RAW, CAP_NET_ADMIN],
            "af_xdp" => &[CAP_NET_RAW, CAP_NET_ADMIN],
            "dpdk" => &[CAP_NET_ADMIN],
            _ => &[],
        };
        for &c in need {
            if !h.has_cap(c) {
                missing.push(format!(
                    "{} missing (needed by port[{i}] {:?}, backend {})",
                    cap_name(c),
                    p.name,
                    p.backend
                ));
            }
        }
        if p.backend == "af_xdp" && !h.has_cap(CAP_BPF) && !h.has_cap(CAP_SYS_ADMIN) {
            missing.push(format!(
                "CAP_BPF or CAP_SYS_ADMIN missing (needed by port[{i}] {:?}, backend af_xdp)",
                p.name
            ));
        }
    }
    out.push(if !h.hw {
        Check::skip("capability", "no port needs privileges (pktgen/pcap only)")
    } else if missing.is_empty() {
        Check::ok("capability", if h.root { "running as root".to_string() } else { format!("CapEff {:#x}", h.caps.unwrap_or(0)) })
    } else {
        Check::fail("capability", missing.join("; "), "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN in the unit, or setcap cap_net_raw,cap_net_admin+ep on the binary")
    });
    out
}

/// 6. interfaces exist and are up.
fn interfaces(h: &Host) -> Vec<Check> {
    let mut out = Vec::new();
    let ifaces: Vec<(usize, &str, &str)> = h
        .cfg
        .ports
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p.backend.as_str(), "af_packet" | "af_xdp"))
        .filter_map(|(i, p)| Some((i, p.name.as_str(), p.interface.as_deref()?)))
        .collect();
    if ifaces.is_empty() {
        out.push(Check::skip("interfaces", "no af_packet or af_xdp port"));
    }
    for (i, name, ifname) in ifaces {
        let dir = h.roots.sys.join("class/net").join(ifname);
        let check = format!("interface {ifname}");
        if !dir.exists() {
            out.push(Check::fail(
                &check,
                format!("does not exist (port[{i}] {name:?})"),
                format!("create it or fix port[{i}].interface"),
            ));
            continue;
        }
        let oper = read(dir.join("operstate")).unwrap_or_default();
        let mtu = read(dir.join("mtu")).unwrap_or_default();
        out.push(if oper == "up" || oper == "unknown" {
            Check::ok(&check, format!("operstate {oper}, mtu {mtu}"))
        } else {
            Check::warn(
                &check,
                format!("operstate {oper}"),
                format!("ip link set {ifname} up, and check the cable"),
            )
        });
    }
    out
}

/// 11. worker cores exist and are online.
fn cores(h: &Host) -> Vec<Check> {
    let mut out = Vec::new();
    let online = read(h.roots.sys.join("devices/system/cpu/online")).map(|s| cpu_list(&s));
    let cores = worker_cores(h.cfg);
    if cores.is_empty() {
        out.push(Check::ok(
            "cores",
            format!(
                "{} worker(s) on cores chosen at start (no dataplane.cores)",
                h.workers
            ),
        ));
    } else {
        match &online {
            Some(on) => {
                let off: BTreeSet<usize> = cores.difference(on).copied().collect();
                out.push(if off.is_empty() {
                    Check::ok("cores", format!("worker cores {} online", join(&cores)))
                } else {
                    Check::fail(
                        "cores",
                        format!(
                            "worker cores {} are offline or absent (online: {})",
                            join(&off),
                            join(on)
                        ),
                        "fix dataplane.cores",
                    )
                });
            }
            None => out.push(Check::warn(
                "cores",
                "cannot read /sys/devices/system/cpu/online",
                "",
            )),
        }
    }
    out
}

/// 12. worker cores isolated.
fn isolcpus(h: &Host) -> Vec<Check> {
    let mut out = Vec::new();
    let cores = worker_cores(h.cfg);
    if !h.hw {
        out.push(Check::skip(
            "isolcpus",
            "no hardware port (performance checks do not apply)",
        ));
    } else {
        let wanted = if cores.is_empty() {
            (0..h.workers).collect()
        } else {
            cores.clone()
        };
        let iso = read(h.roots.sys.join("devices/system/cpu/isolated"))
            .map(|s| cpu_list(&s))
            .unwrap_or_default();
        let not: BTreeSet<usize> = wanted.difference(&iso).copied().collect();
        out.push(if not.is_empty() {
            Check::ok(
                "isolcpus",
                format!("worker cores {} isolated", join(&wanted)),
            )
        } else {
            let l = join(&not);
            Check::warn(
                "isolcpus",
                format!("worker cores {l} are not isolated"),
                format!("add isolcpus={l} nohz_full={l} rcu_nocbs={l} to the kernel command line"),
            )
        });
    }
    out
}

/// 15. libdpdk.
fn libdpdk(h: &Host) -> Vec<Check> {
    let mut out = Vec::new();
    if h.has("dpdk") {
        let pc = std::process::Command::new("pkg-config")
            .args(["--modversion", "libdpdk"])
            .output();
        let ver = pc
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        let ld = std::process::Command::new("ldconfig")
            .arg("-p")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("librte_eal.so"))
            .unwrap_or(false);
        out.push(match (ver, ld) {
            (Some(v), _) => Check::ok("libdpdk", format!("libdpdk {v} (pkg-config)")),
            (None, true) => Check::ok("libdpdk", "librte_eal.so in the ldconfig cache"),
            (None, false) => Check::fail(
                "libdpdk",
                "libdpdk not found (pkg-config libdpdk, ldconfig -p)",
                "apt-get install dpdk libdpdk-dev",
            ),
        });
        out.extend(missing_backend("dpdk", "another backend"));
    } else {
        out.push(Check::skip("libdpdk", "no dpdk port in the configuration"));
    }
    out
}

/// FAIL `backend <name>` when this binary was built without the `name` backend (the fix
/// names the build, or `instead`).
fn missing_backend(name: &str, instead: &str) -> Option<Check> {
    (!backends_built().contains(&name)).then(|| {
        Check::fail(
            &format!("backend {name}"),
            format!("this binary has no {name} backend"),
            format!("use a build with the {name} backend, or {instead}"),
        )
    })
}

/// 16. AF_XDP kernel support.
fn af_xdp(h: &Host) -> Vec<Check> {
    let mut out = Vec::new();
    if h.has("af_xdp") {
        let rel = read(h.roots.proc_.join("sys/kernel/osrelease")).unwrap_or_default();
        let mut it = rel
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|x| x.parse::<u32>().ok());
        let (maj, min) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        out.push(if (maj, min) < (4, 18) {
            Check::fail(
                "af_xdp",
                format!("kernel {rel} has no AF_XDP (needs 4.18)"),
                "upgrade the kernel to 5.10 or later",
            )
        } else if (maj, min) < (5, 10) {
            Check::warn(
                "af_xdp",
                format!("kernel {rel}: AF_XDP without need_wakeup"),
                "upgrade the kernel to 5.10 or later",
            )
        } else {
            Check::ok("af_xdp", format!("kernel {rel}"))
        });
        out.extend(missing_backend("af_xdp", "af_packet"));
    } else {
        out.push(Check::skip("af_xdp", "no af_xdp port in the configuration"));
    }
    out
}

/// 19. control address free.
fn control_listen(h: &Host) -> Vec<Check> {
    let mut out = Vec::new();
    let l = &h.cfg.control.listen;
    if l.is_empty() {
        out.push(Check::skip("control.listen", "control API disabled"));
    } else {
        out.push(match std::net::TcpListener::bind(l.as_str()) {
            Ok(_) => Check::ok("control.listen", format!("{l} is free")),
            Err(e) => Check::fail(
                "control.listen",
                format!("cannot bind {l}: {e}"),
                "stop whatever listens there, or change control.listen",
            ),
        });
    }
    out
}

/// 20. conntrack memory, and the conntrack sysctls that differ from Linux's defaults.
fn conntrack_memory(h: &Host) -> Vec<Check> {
    let mut out = Vec::new();
    let meminfo = std::fs::read_to_string(h.roots.proc_.join("meminfo")).unwrap_or_default();
    let avail_kb: Option<u64> = meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
    let ct_bytes = h.cfg.conntrack.nf_conntrack_max as u64 * 256;
    out.push(match avail_kb {
        Some(a) if ct_bytes > a * 1024 / 2 => Check::warn(
            "conntrack memory",
            format!(
                "nf_conntrack_max {} needs about {} MiB, more than half of MemAvailable ({} MiB)",
                h.cfg.conntrack.nf_conntrack_max,
                ct_bytes >> 20,
                a >> 10
            ),
            "lower conntrack.nf_conntrack_max",
        ),
        Some(a) => Check::ok(
            "conntrack memory",
            format!("about {} MiB of {} MiB available", ct_bytes >> 20, a >> 10),
        ),
        None => Check::skip("conntrack memory", "no MemAvailable in /proc/meminfo"),
    });
    // The sysctls that differ from Linux's defaults, read off the one table.
    let linux = dataplane::conntrack::Config::default();
    out.push(match crate::runtime::conntrack_config(h.cfg) {
        Ok(k) => {
            let changed: Vec<String> = dataplane::conntrack::SYSCTLS
                .iter()
                .filter(|s| s.name != "max" && s.get(&k) != s.get(&linux))
                .map(|s| {
                    format!(
                        "{}={} (Linux: {})",
                        s.sysctl_name(),
                        s.get(&k),
                        s.get(&linux)
                    )
                })
                .collect();
            let detail = if changed.is_empty() {
                "Linux defaults".to_string()
            } else {
                changed.join(", ")
            };
            Check::ok("conntrack sysctls", detail)
        }
        Err(e) => Check::fail(
            "conntrack sysctls",
            format!("{e:#}"),
            "fix [conntrack] in the configuration",
        ),
    });
    out
}

/// 21. systemd.
fn systemd(_: &Host) -> Vec<Check> {
    vec![match std::env::var_os("NOTIFY_SOCKET") {
        Some(_) => Check::ok("systemd", "running under systemd (NOTIFY_SOCKET set)"),
        None => Check::skip("systemd", "not started by systemd"),
    }]
}
