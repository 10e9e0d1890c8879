//! `statewall doctor`: read-only host checks against a configuration
//! (deploy/host/doctor-checks.md). It changes nothing.
//!
//! Every check reads its files under [`Roots`] (`/sys`, `/proc`, `/dev` by default) so
//! tests can point it at a fixture tree. A check is FAIL when `statewall run` with this
//! configuration would not start, WARN when it would start but lose performance or
//! robustness, SKIP when no configured backend needs it.

use crate::config::Config;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where the checks look.
#[derive(Debug, Clone)]
pub struct Roots {
    /// sysfs (`/sys`).
    pub sys: PathBuf,
    /// procfs (`/proc`).
    pub proc_: PathBuf,
    /// devtmpfs (`/dev`).
    pub dev: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            sys: "/sys".into(),
            proc_: "/proc".into(),
            dev: "/dev".into(),
        }
    }
}

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Would start, but slower or less robust.
    Warn,
    /// `statewall run` would not start.
    Fail,
    /// Not needed by this configuration.
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The check's name.
    pub check: String,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it (WARN/FAIL).
    pub fix: String,
}

impl Check {
    fn new(
        check: &str,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            check: check.into(),
            status,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    /// The report line: `[ OK ] name: detail (fix)`.
    pub fn line(&self) -> String {
        let tag = match self.status {
            Status::Ok => "[ OK ]",
            Status::Warn => "[WARN]",
            Status::Fail => "[FAIL]",
            Status::Skip => "[SKIP]",
        };
        if self.fix.is_empty() {
            format!("{tag} {}: {}", self.check, self.detail)
        } else {
            format!("{tag} {}: {} ({})", self.check, self.detail, self.fix)
        }
    }
}

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

/// Parses a kernel CPU list ("0-3,8,10-11").
pub fn cpu_list(s: &str) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.trim().parse() {
                    out.insert(a);
                }
            }
        }
    }
    out
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

/// Runs every check for `cfg`.
pub fn run_checks(cfg: &Config, roots: &Roots) -> Vec<Check> {
    let backends: BTreeSet<&str> = cfg.ports.iter().map(|p| p.backend.as_str()).collect();
    let has = |b: &str| backends.contains(b);
    let hw = has("dpdk") || has("af_xdp") || has("af_packet");
    let workers = cfg.worker_count();
    let mut out = vec![Check::new(
        "configuration",
        Status::Ok,
        format!(
            "{} port(s), {} pair(s), {} worker(s), backends {}",
            cfg.ports.len(),
            cfg.pairs.len(),
            workers,
            backends.iter().copied().collect::<Vec<_>>().join(",")
        ),
        "",
    )];
    // Memory the pools need: descriptors per queue per port + pool per worker, 2 KiB mbufs.
    let need_bytes: u64 = (cfg
        .ports
        .iter()
        .map(|p| p.descriptors as u64 * workers as u64)
        .sum::<u64>()
        + cfg.dataplane.pool_size as u64 * workers as u64)
        * 2048;

    // 2. hugepages, 3. hugetlbfs (dpdk).
    if has("dpdk") {
        let mut total = 0u64;
        let mut free = 0u64;
        let mut sizes = Vec::new();
        if let Ok(rd) = std::fs::read_dir(roots.sys.join("kernel/mm/hugepages")) {
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
            Check::new(
                "hugepages",
                Status::Fail,
                format!("none free ({} reserved)", total / 1024 / 1024),
                fix,
            )
        } else if free < need_bytes {
            Check::new(
                "hugepages",
                Status::Warn,
                format!(
                    "{} MiB free, the pools need about {} MiB",
                    free >> 20,
                    need_bytes >> 20
                ),
                fix,
            )
        } else {
            Check::new("hugepages", Status::Ok, sizes.join("; "), "")
        });
        let mounts = std::fs::read_to_string(roots.proc_.join("mounts")).unwrap_or_default();
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
                    Check::new("hugetlbfs", Status::Ok, format!("mounted on {m}, writable"), "")
                } else {
                    Check::new("hugetlbfs", Status::Fail, format!("{m} is not writable by this user"), "run as the statewall user with access to the mount, or mount hugetlbfs with uid=/gid=")
                }
            }
            None => Check::new("hugetlbfs", Status::Fail, "no hugetlbfs mount", "mount -t hugetlbfs nodev /dev/hugepages"),
        });
    } else {
        out.push(Check::new(
            "hugepages",
            Status::Skip,
            "no dpdk port in the configuration",
            "",
        ));
    }

    // 4. memlock (dpdk, af_xdp).
    let caps = cap_eff(roots);
    let root = euid(roots) == 0;
    let has_cap = |c: u32| root || caps.map(|m| m & (1u64 << c) != 0).unwrap_or(false);
    if has("dpdk") || has("af_xdp") {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into the valid, exclusively borrowed `rl`.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl) };
        let fix = "LimitMEMLOCK=infinity in the unit, or ulimit -l unlimited";
        out.push(if rc != 0 {
            Check::new(
                "memlock",
                Status::Warn,
                "getrlimit(RLIMIT_MEMLOCK) failed",
                fix,
            )
        } else if rl.rlim_cur == libc::RLIM_INFINITY {
            Check::new("memlock", Status::Ok, "unlimited", "")
        } else if has_cap(CAP_IPC_LOCK) {
            Check::new(
                "memlock",
                Status::Ok,
                format!("{} KiB, but CAP_IPC_LOCK is effective", rl.rlim_cur / 1024),
                "",
            )
        } else if rl.rlim_cur < need_bytes {
            Check::new(
                "memlock",
                Status::Fail,
                format!(
                    "{} KiB locked memory allowed, the pools need about {} KiB",
                    rl.rlim_cur / 1024,
                    need_bytes / 1024
                ),
                fix,
            )
        } else {
            Check::new(
                "memlock",
                Status::Warn,
                format!("{} KiB (finite)", rl.rlim_cur / 1024),
                fix,
            )
        });
    } else {
        out.push(Check::new(
            "memlock",
            Status::Skip,
            "no dpdk or af_xdp port in the configuration",
            "",
        ));
    }

    // 5. capabilities.
    let mut missing = Vec::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        let need: &[u32] = match p.backend.as_str() {
            "af_packet" => &[CAP_NET_RAW, CAP_NET_ADMIN],
            "af_xdp" => &[CAP_NET_RAW, CAP_NET_ADMIN],
            "dpdk" => &[CAP_NET_ADMIN],
            _ => &[],
        };
        for &c in need {
            if !has_cap(c) {
                missing.push(format!(
                    "{} missing (needed by port[{i}] {:?}, backend {})",
                    cap_name(c),
                    p.name,
                    p.backend
                ));
            }
        }
        if p.backend == "af_xdp" && !has_cap(CAP_BPF) && !has_cap(CAP_SYS_ADMIN) {
            missing.push(format!(
                "CAP_BPF or CAP_SYS_ADMIN missing (needed by port[{i}] {:?}, backend af_xdp)",
                p.name
            ));
        }
    }
    out.push(if !hw {
        Check::new("capability", Status::Skip, "no port needs privileges (pktgen/pcap only)", "")
    } else if missing.is_empty() {
        Check::new("capability", Status::Ok, if root { "running as root".to_string() } else { format!("CapEff {:#x}", caps.unwrap_or(0)) }, "")
    } else {
        Check::new("capability", Status::Fail, missing.join("; "), "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN in the unit, or setcap cap_net_raw,cap_net_admin+ep on the binary")
    });

    // 6. interfaces exist and are up.
    let ifaces: Vec<(usize, &str, &str)> = cfg
        .ports
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p.backend.as_str(), "af_packet" | "af_xdp"))
        .filter_map(|(i, p)| Some((i, p.name.as_str(), p.interface.as_deref()?)))
        .collect();
    if ifaces.is_empty() {
        out.push(Check::new(
            "interfaces",
            Status::Skip,
            "no af_packet or af_xdp port",
            "",
        ));
    }
    for (i, name, ifname) in ifaces {
        let dir = roots.sys.join("class/net").join(ifname);
        let check = format!("interface {ifname}");
        if !dir.exists() {
            out.push(Check::new(
                &check,
                Status::Fail,
                format!("does not exist (port[{i}] {name:?})"),
                format!("create it or fix port[{i}].interface"),
            ));
            continue;
        }
        let oper = read(dir.join("operstate")).unwrap_or_default();
        let mtu = read(dir.join("mtu")).unwrap_or_default();
        out.push(if oper == "up" || oper == "unknown" {
            Check::new(
                &check,
                Status::Ok,
                format!("operstate {oper}, mtu {mtu}"),
                "",
            )
        } else {
            Check::new(
                &check,
                Status::Warn,
                format!("operstate {oper}"),
                format!("ip link set {ifname} up, and check the cable"),
            )
        });
    }

    // 11. worker cores exist and are online; 12. isolated.
    let online = read(roots.sys.join("devices/system/cpu/online")).map(|s| cpu_list(&s));
    let cores: BTreeSet<usize> = if cfg.dataplane.cores.is_empty() {
        BTreeSet::new()
    } else {
        cfg.dataplane.cores.iter().copied().collect()
    };
    if cores.is_empty() {
        out.push(Check::new(
            "cores",
            Status::Ok,
            format!("{workers} worker(s) on cores chosen at start (no dataplane.cores)"),
            "",
        ));
    } else {
        match &online {
            Some(on) => {
                let off: BTreeSet<usize> = cores.difference(on).copied().collect();
                out.push(if off.is_empty() {
                    Check::new(
                        "cores",
                        Status::Ok,
                        format!("worker cores {} online", join(&cores)),
                        "",
                    )
                } else {
                    Check::new(
                        "cores",
                        Status::Fail,
                        format!(
                            "worker cores {} are offline or absent (online: {})",
                            join(&off),
                            join(on)
                        ),
                        "fix dataplane.cores",
                    )
                });
            }
            None => out.push(Check::new(
                "cores",
                Status::Warn,
                "cannot read /sys/devices/system/cpu/online",
                "",
            )),
        }
    }
    if !hw {
        out.push(Check::new(
            "isolcpus",
            Status::Skip,
            "no hardware port (performance checks do not apply)",
            "",
        ));
    } else {
        let wanted = if cores.is_empty() {
            (0..workers).collect()
        } else {
            cores.clone()
        };
        let iso = read(roots.sys.join("devices/system/cpu/isolated"))
            .map(|s| cpu_list(&s))
            .unwrap_or_default();
        let not: BTreeSet<usize> = wanted.difference(&iso).copied().collect();
        out.push(if not.is_empty() {
            Check::new(
                "isolcpus",
                Status::Ok,
                format!("worker cores {} isolated", join(&wanted)),
                "",
            )
        } else {
            let l = join(&not);
            Check::new(
                "isolcpus",
                Status::Warn,
                format!("worker cores {l} are not isolated"),
                format!("add isolcpus={l} nohz_full={l} rcu_nocbs={l} to the kernel command line"),
            )
        });
    }

    // 15. libdpdk.
    if has("dpdk") {
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
            (Some(v), _) => Check::new(
                "libdpdk",
                Status::Ok,
                format!("libdpdk {v} (pkg-config)"),
                "",
            ),
            (None, true) => Check::new(
                "libdpdk",
                Status::Ok,
                "librte_eal.so in the ldconfig cache",
                "",
            ),
            (None, false) => Check::new(
                "libdpdk",
                Status::Fail,
                "libdpdk not found (pkg-config libdpdk, ldconfig -p)",
                "apt-get install dpdk libdpdk-dev",
            ),
        });
        if !backends_built().contains(&"dpdk") {
            out.push(Check::new(
                "backend dpdk",
                Status::Fail,
                "this binary has no dpdk backend",
                "use a build with the dpdk backend, or another backend",
            ));
        }
    } else {
        out.push(Check::new(
            "libdpdk",
            Status::Skip,
            "no dpdk port in the configuration",
            "",
        ));
    }

    // 16. AF_XDP kernel support.
    if has("af_xdp") {
        let rel = read(roots.proc_.join("sys/kernel/osrelease")).unwrap_or_default();
        let mut it = rel
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|x| x.parse::<u32>().ok());
        let (maj, min) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        out.push(if (maj, min) < (4, 18) {
            Check::new(
                "af_xdp",
                Status::Fail,
                format!("kernel {rel} has no AF_XDP (needs 4.18)"),
                "upgrade the kernel to 5.10 or later",
            )
        } else if (maj, min) < (5, 10) {
            Check::new(
                "af_xdp",
                Status::Warn,
                format!("kernel {rel}: AF_XDP without need_wakeup"),
                "upgrade the kernel to 5.10 or later",
            )
        } else {
            Check::new("af_xdp", Status::Ok, format!("kernel {rel}"), "")
        });
        if !backends_built().contains(&"af_xdp") {
            out.push(Check::new(
                "backend af_xdp",
                Status::Fail,
                "this binary has no af_xdp backend",
                "use a build with the af_xdp backend, or af_packet",
            ));
        }
    } else {
        out.push(Check::new(
            "af_xdp",
            Status::Skip,
            "no af_xdp port in the configuration",
            "",
        ));
    }

    // 19. control address free.
    let l = &cfg.control.listen;
    if l.is_empty() {
        out.push(Check::new(
            "control.listen",
            Status::Skip,
            "control API disabled",
            "",
        ));
    } else {
        out.push(match std::net::TcpListener::bind(l.as_str()) {
            Ok(_) => Check::new("control.listen", Status::Ok, format!("{l} is free"), ""),
            Err(e) => Check::new(
                "control.listen",
                Status::Fail,
                format!("cannot bind {l}: {e}"),
                "stop whatever listens there, or change control.listen",
            ),
        });
    }

    // 20. conntrack memory.
    let meminfo = std::fs::read_to_string(roots.proc_.join("meminfo")).unwrap_or_default();
    let avail_kb: Option<u64> = meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
    let ct_bytes = cfg.conntrack.nf_conntrack_max as u64 * 256;
    out.push(match avail_kb {
        Some(a) if ct_bytes > a * 1024 / 2 => Check::new(
            "conntrack memory",
            Status::Warn,
            format!(
                "nf_conntrack_max {} needs about {} MiB, more than half of MemAvailable ({} MiB)",
                cfg.conntrack.nf_conntrack_max,
                ct_bytes >> 20,
                a >> 10
            ),
            "lower conntrack.nf_conntrack_max",
        ),
        Some(a) => Check::new(
            "conntrack memory",
            Status::Ok,
            format!("about {} MiB of {} MiB available", ct_bytes >> 20, a >> 10),
            "",
        ),
        None => Check::new(
            "conntrack memory",
            Status::Skip,
            "no MemAvailable in /proc/meminfo",
            "",
        ),
    });

    // 21. systemd.
    out.push(match std::env::var_os("NOTIFY_SOCKET") {
        Some(_) => Check::new(
            "systemd",
            Status::Ok,
            "running under systemd (NOTIFY_SOCKET set)",
            "",
        ),
        None => Check::new("systemd", Status::Skip, "not started by systemd", ""),
    });
    out
}

/// Backends this binary can open.
pub fn backends_built() -> &'static [&'static str] {
    &["pktgen", "pcap", "af_packet"]
}

/// `statewall doctor`: prints the report and returns the exit status (0 no FAIL,
/// 1 a FAIL, 2 the configuration is invalid).
pub fn doctor(
    config: Option<&Path>,
    json: bool,
    roots: &Roots,
    out: &mut dyn std::io::Write,
) -> std::io::Result<u8> {
    let default = Path::new("/etc/statewall/statewall.toml");
    let loaded = match config {
        Some(p) => Config::load(p).and_then(|c| crate::runtime::load_rules(&c, false).map(|_| c)),
        None if default.exists() => {
            Config::load(default).and_then(|c| crate::runtime::load_rules(&c, false).map(|_| c))
        }
        None => Ok(Config::embedded()),
    };
    let cfg = match loaded {
        Ok(c) => c,
        Err(e) => {
            let c = Check::new(
                "configuration",
                Status::Fail,
                format!("{e:#}"),
                "fix the configuration (statewall config check FILE)",
            );
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&[c]).unwrap_or_default()
                )?;
            } else {
                writeln!(out, "{}", c.line())?;
            }
            return Ok(2);
        }
    };
    let checks = run_checks(&cfg, roots);
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&checks).unwrap_or_default()
        )?;
    } else {
        for c in &checks {
            writeln!(out, "{}", c.line())?;
        }
    }
    Ok(if checks.iter().any(|c| c.status == Status::Fail) {
        1
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(
            cpu_list("0-3,8,10-11\n").into_iter().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert!(cpu_list("").is_empty());
    }
}
