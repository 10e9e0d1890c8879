//! Fault: `statewall run` with DPDK ports killed with SIGKILL, then started again with
//! the same EAL `--file-prefix`. A killed primary leaves its runtime directory
//! (`/var/run/dpdk/<prefix>/`: the config file, fbarrays) and, with hugepages, its
//! hugepage files behind; none of that may stop the restart: the EAL's lock on the config
//! file died with the process, and a new primary clears the hugepage files no live
//! process holds. Two `net_null` vdevs (rx returns frames, tx frees them) make traffic
//! flow through the worker while it is killed. The EAL runs with `--no-huge` (no
//! hugepages on CI machines); where hugepages are free, the test runs a second round
//! with them.
#![cfg(feature = "dpdk")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut b = String::new();
    s.read_to_string(&mut b).ok()?;
    let ok = b.lines().next()?.split_whitespace().nth(1) == Some("200");
    ok.then(|| b.split_once("\r\n\r\n").map(|(_, x)| x.to_string()))
        .flatten()
}

fn rx_packets(addr: &str) -> f64 {
    get(addr, "/metrics")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("statewall_port_rx_packets_total{port=\"a\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Starts statewall on `cfg`; waits until its API answers and packets flow.
fn start(cfg: &Path, api: &str, log: &Path) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_statewall"))
        .args(["run", "--config"])
        .arg(cfg)
        .args(["--duration", "120"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if rx_packets(api) > 0.0 {
            return c;
        }
        if let Ok(Some(st)) = c.try_wait() {
            panic!(
                "statewall exited ({st}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!(
                "statewall with DPDK ports did not forward within 30 s:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hugepages_free() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn kill_and_restart(tag: &str, memory: &str) {
    let pid = std::process::id();
    let prefix = format!("fl-dpdk-{tag}-{pid}");
    let dir = tempfile::Builder::new()
        .prefix("fl-dpdk-")
        .tempdir()
        .unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let cfg = dir.path().join("statewall.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[dpdk]
eal_args = ["-l", "0", {memory}, "--no-pci", "--no-telemetry",
            "--file-prefix={prefix}", "--vdev=net_null0", "--vdev=net_null1"]
[dataplane]
workers = 1
cores = [0]
pool_size = 1024
[[port]]
name = "a"
backend = "dpdk"
device = "net_null0"
descriptors = 256
[[port]]
name = "b"
backend = "dpdk"
device = "net_null1"
descriptors = 256
[[pair]]
network = "a"
host = "b"
[control]
listen = "{api}"
stats_interval = 0
"#
        ),
    )
    .unwrap();
    let runtime_dir = Path::new("/var/run/dpdk").join(&prefix);
    let mut sw = start(&cfg, &api, &dir.path().join("1.err"));
    // SIGKILL while the worker polls: no rte_eal_cleanup, no destructor.
    sw.kill().unwrap();
    sw.wait().unwrap();
    let left: Vec<String> = std::fs::read_dir(&runtime_dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    eprintln!("{tag}: left in {}: {left:?}", runtime_dir.display());
    assert!(
        left.iter().any(|f| f == "config"),
        "{tag}: the killed primary left its runtime files ({left:?}), the case under test"
    );
    // The restart, same prefix, same control address.
    let mut sw = start(&cfg, &api, &dir.path().join("2.err"));
    // A clean stop releases the EAL (rte_eal_cleanup) and exits 0.
    // SAFETY: kill(2) on our own child's pid, not yet reaped.
    unsafe {
        libc::kill(sw.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Ok(Some(st)) = sw.try_wait() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = sw.kill();
            let _ = sw.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_dir_all(&runtime_dir);
    assert!(
        status.is_some_and(|s| s.success()),
        "{tag}: the restarted statewall stops cleanly ({status:?}):\n{}",
        std::fs::read_to_string(dir.path().join("2.err")).unwrap_or_default()
    );
}

#[test]
fn fault_dpdk_kill9_then_restart_same_file_prefix() {
    if prereq::needs("fault_dpdk_kill9_then_restart_same_file_prefix")
        .root()
        .skip()
    {
        return;
    }
    kill_and_restart("nohuge", r#""--no-huge", "-m", "256""#);
    if hugepages_free() >= 128 {
        kill_and_restart("huge", r#""-m", "256""#);
    } else {
        eprintln!(
            "fault_dpdk_kill9_then_restart_same_file_prefix: fewer than 128 free hugepages; \
             the hugepage round did not run"
        );
    }
}
