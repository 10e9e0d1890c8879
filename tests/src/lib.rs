//! Helpers for end-to-end tests: network namespaces wired through a running `statewall`.
//!
//! ```text
//!   netns <inside>                      root netns                      netns <outside>
//!   [in_veth 10.77.N.1/24] ==veth== [fw_in]  statewall  [fw_out] ==veth== [out_veth 10.77.N.2/24]
//!          fd77:N::1/64             port "inside"     port "outside"          fd77:N::2/64
//! ```
//!
//! `statewall` runs in the root namespace with two `af_packet` ports on the root ends of
//! two veth pairs and bridges them at layer 2 (a bump in the wire): the two namespaces
//! share one subnet, ARP crosses (`non_ip = "pass-arp"`), and every IP packet goes through
//! conntrack and the ruleset. The root ends carry no address (IPv6 disabled on them) so the
//! root namespace's stack stays out of the way.
//!
//! Everything is named `sw<pid><counter>...` (interfaces, at most 15 bytes) and
//! `swe2e-<pid>-<counter>-...` (namespaces), so tests run in parallel, and across test
//! processes; [`Topology`] and [`Statewall`] clean up in `Drop`, also when a test panics.
//! Namespaces left behind by a killed test process are removed by the next run.
//!
//! Every external command runs under `timeout`, so a test is bounded in time.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

pub use prereq;

/// What every namespace test needs: root, `ip netns`, the programs [`Topology`] runs
/// (`ip`, `ethtool`, `sysctl`, `timeout`, `ss`) and a Python 3 for the test servers. Add
/// the test's own programs and finish with `.skip()`:
/// `if statewall_e2e::e2e_needs(test).tools(&["curl"]).skip() { return; }`.
pub fn e2e_needs(test: &str) -> prereq::Needs {
    prereq::needs(test)
        .netns()
        .tools(&["ethtool", "sysctl", "timeout", "ss"])
        .python3()
}

/// The full path of `tool` on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    prereq::which(tool)
}

/// A system python3 (not a pyenv shim, which may not work in a namespace's environment);
/// [`e2e_needs`] has checked that one exists.
pub fn python3() -> String {
    prereq::python3().unwrap_or_else(|| "python3".to_string())
}

/// Runs `args` (program first) under `timeout -k 2 <secs>`; never fails, the caller
/// checks the status. Output is captured.
pub fn run_timeout(secs: u64, args: &[&str]) -> Output {
    let mut c = Command::new("timeout");
    c.args(["-k", "2", &secs.to_string()]).args(args);
    c.stdin(Stdio::null());
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Runs a setup command (10 s bound) and panics with its output when it fails.
pub fn must(args: &[&str]) -> String {
    let o = run_timeout(10, args);
    if !o.status.success() {
        panic!(
            "setup command {:?} failed ({}): {}{}",
            args,
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stdout and stderr of an output, for messages.
pub fn show(o: &Output) -> String {
    format!(
        "status {}; stdout: {:?}; stderr: {:?}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

static COUNTER: AtomicU32 = AtomicU32::new(0);
static STALE: Once = Once::new();

/// Removes the namespaces named `<prefix><pid>-...` (and so their interfaces) left by
/// test processes that no longer exist (a test binary killed with SIGKILL cannot run its
/// destructors).
fn clean_stale(prefix: &str) {
    let Ok(o) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run_timeout(10, &["ip", "netns", "del", name]);
        }
    }
    // Root ends of veths die with their peers' namespaces; nothing else to do.
}

/// Two namespaces, `inside` and `outside`, and the two veth pairs toward statewall's ports.
pub struct Topology {
    /// Test name (for messages).
    pub test: String,
    /// Namespace of the protected side.
    pub inside_ns: String,
    /// Namespace of the network side.
    pub outside_ns: String,
    /// Interface in `inside_ns`.
    pub in_veth: String,
    /// Interface in `outside_ns`.
    pub out_veth: String,
    /// Root-namespace end of the inside pair (statewall port "inside").
    pub fw_in: String,
    /// Root-namespace end of the outside pair (statewall port "outside").
    pub fw_out: String,
    /// Inside address, `10.77.N.1`.
    pub inside_ip: String,
    /// Outside address, `10.77.N.2`.
    pub outside_ip: String,
    /// Inside IPv6 address, `fd77:N::1`.
    pub inside_ip6: String,
    /// Outside IPv6 address, `fd77:N::2`.
    pub outside_ip6: String,
}

impl Topology {
    /// Creates the namespaces and veths, addresses them, switches offloads off (so the
    /// af_packet ports see real-sized frames with complete checksums) and brings
    /// everything up. Panics with the failing command's output on error (after cleaning
    /// up what was created).
    pub fn new(test: &str) -> Topology {
        STALE.call_once(|| clean_stale("swe2e-"));
        Topology::named(test, ("swe2e", "sw"), 77, &COUNTER)
    }

    /// The `n`-th topology of a family (`n` drawn from `counter`): namespaces
    /// `<ns>-<pid>-<n>-in`/`-out`, interfaces `<ifc><pid>{i,o,a,b}<n>`, addresses
    /// `10.<net>.N.1`/`.2` and `fd<net>:N::1`/`::2`; then [`Topology::setup`].
    fn named(test: &str, (ns, ifc): (&str, &str), net: u8, counter: &AtomicU32) -> Topology {
        let pid = std::process::id();
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let sub = n % 250 + 1;
        let t = Topology {
            test: test.to_string(),
            inside_ns: format!("{ns}-{pid}-{n}-in"),
            outside_ns: format!("{ns}-{pid}-{n}-out"),
            in_veth: format!("{ifc}{pid}i{n}"),
            out_veth: format!("{ifc}{pid}o{n}"),
            fw_in: format!("{ifc}{pid}a{n}"),
            fw_out: format!("{ifc}{pid}b{n}"),
            inside_ip: format!("10.{net}.{sub}.1"),
            outside_ip: format!("10.{net}.{sub}.2"),
            inside_ip6: format!("fd{net}:{sub}::1"),
            outside_ip6: format!("fd{net}:{sub}::2"),
        };
        assert!(
            t.fw_in.len() <= 15 && t.in_veth.len() <= 15,
            "interface name too long"
        );
        t.setup();
        t
    }

    fn setup(&self) {
        must(&["ip", "netns", "add", &self.inside_ns]);
        must(&["ip", "netns", "add", &self.outside_ns]);
        for (ns, v, fw, ip, ip6) in [
            (
                &self.inside_ns,
                &self.in_veth,
                &self.fw_in,
                &self.inside_ip,
                &self.inside_ip6,
            ),
            (
                &self.outside_ns,
                &self.out_veth,
                &self.fw_out,
                &self.outside_ip,
                &self.outside_ip6,
            ),
        ] {
            must(&[
                "ip", "link", "add", fw, "type", "veth", "peer", "name", v, "netns", ns,
            ]);
            // The root end: no addresses, no IPv6 (no DAD, no router solicitations).
            let _ = run_timeout(
                5,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{fw}.disable_ipv6=1"),
                ],
            );
            must(&[
                "ethtool", "-K", fw, "tx", "off", "rx", "off", "gso", "off", "gro", "off", "tso",
                "off",
            ]);
            must(&["ip", "link", "set", fw, "up"]);
            let x = |args: &[&str]| {
                let mut v = vec!["ip", "netns", "exec", ns.as_str()];
                v.extend_from_slice(args);
                must(&v)
            };
            x(&["ip", "link", "set", "lo", "up"]);
            x(&[
                "ethtool", "-K", v, "tx", "off", "rx", "off", "gso", "off", "gro", "off", "tso",
                "off",
            ]);
            x(&["ip", "addr", "add", &format!("{ip}/24"), "dev", v]);
            x(&["ip", "addr", "add", &format!("{ip6}/64"), "dev", v, "nodad"]);
            x(&["ip", "link", "set", v, "up"]);
        }
    }

    /// A command running `args` in namespace `ns` under `timeout -k 2 secs`.
    pub fn cmd_in(ns: &str, secs: u64, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, "timeout", "-k", "2", &secs.to_string()]);
        c.args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs `args` in the inside namespace (bounded by `secs`), output captured.
    pub fn inside(&self, secs: u64, args: &[&str]) -> Output {
        Self::cmd_in(&self.inside_ns, secs, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
    }

    /// Runs `args` in the outside namespace (bounded by `secs`), output captured.
    pub fn outside(&self, secs: u64, args: &[&str]) -> Output {
        Self::cmd_in(&self.outside_ns, secs, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
    }

    /// Starts `args` in the background in namespace `ns` (bounded by `secs`), in the
    /// working directory `cwd`; stdout and stderr go to files in `log_dir`. The returned
    /// guard kills the whole process group when dropped.
    pub fn spawn_in(
        &self,
        ns: &str,
        secs: u64,
        cwd: &Path,
        log_dir: &Path,
        tag: &str,
        args: &[&str],
    ) -> Background {
        let out = std::fs::File::create(log_dir.join(format!("{tag}.out"))).unwrap();
        let err = std::fs::File::create(log_dir.join(format!("{tag}.err"))).unwrap();
        let mut c = Self::cmd_in(ns, secs, args);
        c.current_dir(cwd).stdout(out).stderr(err).process_group(0);
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?}: {e}"));
        Background {
            child,
            tag: tag.to_string(),
            log_dir: log_dir.to_path_buf(),
        }
    }

    /// Waits until something listens on TCP `port` in namespace `ns` (via `ss`), up to
    /// `secs`. Panics otherwise.
    pub fn wait_tcp_listen(&self, ns: &str, port: u16, secs: u64) {
        self.wait_listen(ns, ("tcp", "-Hltn"), port, secs);
    }

    /// Waits until something listens on UDP `port` in namespace `ns`.
    pub fn wait_udp_listen(&self, ns: &str, port: u16, secs: u64) {
        self.wait_listen(ns, ("udp", "-Hlun"), port, secs);
    }

    /// Waits until `ss <flags>` lists a listener on `port` in `ns`, up to `secs`.
    fn wait_listen(&self, ns: &str, (proto, flags): (&str, &str), port: u16, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let o = Self::cmd_in(ns, 5, &["ss", flags, &format!("sport = :{port}")])
                .output()
                .unwrap();
            if !String::from_utf8_lossy(&o.stdout).trim().is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: nothing listens on {proto} port {port} in {ns}",
                    self.test
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends, and with them their peers.
        for ns in [&self.inside_ns, &self.outside_ns] {
            let _ = run_timeout(10, &["ip", "netns", "del", ns]);
        }
        for fw in [&self.fw_in, &self.fw_out] {
            if Path::new(&format!("/sys/class/net/{fw}")).exists() {
                let _ = run_timeout(10, &["ip", "link", "del", fw]);
            }
        }
    }
}

/// A background process (server, capture); its process group is killed on drop.
pub struct Background {
    child: Child,
    tag: String,
    log_dir: PathBuf,
}

impl Background {
    /// Stops the process group with `sig` and waits (up to 3 s) for the leader.
    pub fn stop(&mut self, sig: i32) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on the process group we created for this child.
        unsafe {
            libc::kill(-pid, sig);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself, up to `secs`; its exit status, or
    /// None on timeout.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.log_dir.join(format!("{}.out", self.tag))).unwrap_or_default()
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.log_dir.join(format!("{}.err", self.tag))).unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop(libc::SIGTERM);
        } else {
            // The leader is gone; its group may not be.
            // SAFETY: kill(2) on the group we created; harmless if it is empty.
            unsafe {
                libc::kill(-(self.child.id() as i32), libc::SIGKILL);
            }
        }
    }
}

static BUILD: Once = Once::new();
static BUILD_ERR: Mutex<Option<String>> = Mutex::new(None);

/// The `statewall` binary: `$STATEWALL_BIN`, else `statewall` next to this test
/// binary's `deps/` directory (the same target directory and profile), built with
/// `cargo build -p statewall` once if it is not there yet or is older than a source
/// file of `control/` or `dataplane/` (so `cargo test -p statewall-e2e` alone never
/// runs a stale binary).
pub fn statewall_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("STATEWALL_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf();
    let bin = profile_dir.join("statewall");
    BUILD.call_once(|| {
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let newest = ["control/src", "dataplane/src", "control/Cargo.toml"]
            .iter()
            .filter_map(|d| newest_mtime(&root.join(d)))
            .max();
        if let (Some(b), Some(n)) = (built, newest) {
            if b >= n {
                return;
            }
        }
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let target_dir = profile_dir.parent().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(["build", "-p", "statewall", "--bin", "statewall"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            c.arg("--release");
        }
        match c.output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                *BUILD_ERR.lock().unwrap() = Some(format!(
                    "cargo build -p statewall failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ))
            }
            Err(e) => *BUILD_ERR.lock().unwrap() = Some(format!("cannot run cargo: {e}")),
        }
    });
    if let Some(e) = BUILD_ERR.lock().unwrap().as_ref() {
        panic!("{e}");
    }
    assert!(bin.is_file(), "{} does not exist", bin.display());
    bin
}

/// The newest modification time of a file, or of any file under a directory.
fn newest_mtime(p: &Path) -> Option<std::time::SystemTime> {
    let m = std::fs::metadata(p).ok()?;
    if !m.is_dir() {
        return m.modified().ok();
    }
    std::fs::read_dir(p)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Pair mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// FORWARD chain.
    Forward,
    /// INPUT toward the inside namespace, OUTPUT from it.
    Host,
}

/// A running `statewall run` bridging a [`Topology`]'s two root-side veths.
pub struct Statewall {
    child: Option<Child>,
    /// Control API address (`127.0.0.1:<port>`).
    pub api: String,
    /// Temporary directory with the config, rules, logs (and anything the test puts there).
    pub dir: tempfile::TempDir,
    /// The rules file named by the config.
    pub rules_path: PathBuf,
    /// The config file.
    pub config_path: PathBuf,
}

impl Statewall {
    /// Writes a config (one worker; port "inside" on `topo.fw_in`, port "outside" on
    /// `topo.fw_out`; one pair in `mode`; `extra_toml` appended) and `rules`, starts
    /// `statewall run` and waits until its API answers. Panics with its output if it
    /// does not come up within 15 s.
    pub fn start(topo: &Topology, mode: Mode, rules: &str, extra_toml: &str) -> Statewall {
        Statewall::start_dual(topo, mode, rules, None, extra_toml)
    }

    /// [`Statewall::start`] with an IPv6 ruleset too (`rules.file6`).
    pub fn start_dual(
        topo: &Topology,
        mode: Mode,
        rules: &str,
        rules6: Option<&str>,
        extra_toml: &str,
    ) -> Statewall {
        Statewall::start_with(topo, mode, rules, rules6, extra_toml, 1)
    }

    /// [`Statewall::start_dual`] with `workers` workers (one af_packet queue each).
    pub fn start_with(
        topo: &Topology,
        mode: Mode,
        rules: &str,
        rules6: Option<&str>,
        extra_toml: &str,
        workers: usize,
    ) -> Statewall {
        let dir = tempfile::Builder::new()
            .prefix("statewall-e2e-")
            .tempdir()
            .expect("tempdir");
        let rules_path = dir.path().join("rules.v4");
        std::fs::write(&rules_path, rules).unwrap();
        let file6 = match rules6 {
            Some(r6) => {
                std::fs::write(dir.path().join("rules.v6"), r6).unwrap();
                "file6 = \"rules.v6\"\n"
            }
            None => "",
        };
        let config_path = dir.path().join("statewall.toml");
        let mut last_err = String::new();
        // The free port may be taken between our probe and statewall's bind: retry then.
        for _attempt in 0..3 {
            let api = format!("127.0.0.1:{}", free_port());
            let config = format!(
                r#"# generated by statewall-e2e for {test}
[dataplane]
workers = {workers}
non_ip = "pass-arp"

[[port]]
name = "inside"
backend = "af_packet"
interface = "{fw_in}"

[[port]]
name = "outside"
backend = "af_packet"
interface = "{fw_out}"

[[pair]]
mode = "{mode}"
network = "outside"
host = "inside"

[rules]
file = "rules.v4"
{file6}
[control]
listen = "{api}"
socket = "{sock}"
stats_interval = 0
{extra_toml}
"#,
                test = topo.test,
                sock = dir.path().join("control.sock").display(),
                fw_in = topo.fw_in,
                fw_out = topo.fw_out,
                mode = if mode == Mode::Host {
                    "host"
                } else {
                    "forward"
                },
            );
            std::fs::write(&config_path, &config).unwrap();
            let stderr =
                || std::fs::read_to_string(dir.path().join("statewall.err")).unwrap_or_default();
            match setup::spawn_ready(&config_path, dir.path(), "statewall", &api) {
                Ok(child) => {
                    return Statewall {
                        child: Some(child),
                        api,
                        dir,
                        rules_path,
                        config_path,
                    }
                }
                Err(setup::NotReady::Exited(st)) => {
                    last_err = format!("statewall exited early ({st}); stderr:\n{}", stderr());
                }
                Err(setup::NotReady::Timeout) => panic!(
                    "{}: statewall API {api} not ready after 15 s; stderr:\n{}",
                    topo.test,
                    stderr()
                ),
            }
            if !last_err.to_lowercase().contains("in use") {
                break;
            }
        }
        panic!("{}: statewall did not start: {last_err}", topo.test);
    }

    /// One HTTP/1.0 request to the control API; (status, body).
    pub fn http(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        http_request(&self.api, method, path, body)
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        match self.http("GET", "/metrics", "") {
            Ok((200, b)) => b,
            other => panic!("GET /metrics: {other:?}\n{}", self.logs()),
        }
    }

    /// The value of one series, e.g. `statewall_packets_total{state="INVALID"}`
    /// (0 when absent).
    pub fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics(), series)
    }

    /// Polls `series` until it reaches `min` (the worker publishes its counters a little
    /// after the packet), up to 3 s; returns the last value.
    pub fn wait_metric_at_least(&self, series: &str, min: f64) -> f64 {
        let t0 = Instant::now();
        loop {
            let v = self.metric(series);
            if v >= min || t0.elapsed() >= Duration::from_secs(3) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `statewall ctl --socket <dir>/control.sock <args...>` (10 s bound): the
    /// unix socket serves every command, mutations included.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let bin = statewall_bin();
        let bin = bin.to_str().unwrap();
        let sock = self.dir.path().join("control.sock");
        let sock = sock.to_str().unwrap();
        let mut v = vec![bin, "ctl", "--socket", sock];
        v.extend_from_slice(args);
        run_timeout(10, &v)
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// The last lines of statewall's stdout and stderr, and the interesting counters,
    /// for failure messages.
    pub fn logs(&self) -> String {
        let tail = |name: &str| {
            let s = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(25)..].join("\n")
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "--- statewall stdout (tail) ---\n{}",
            tail("statewall.out")
        );
        let _ = writeln!(
            s,
            "--- statewall stderr (tail) ---\n{}",
            tail("statewall.err")
        );
        if let Ok((200, m)) = self.http("GET", "/metrics", "") {
            let _ = writeln!(
                s,
                "--- statewall counters (non-zero) ---\n{}",
                interesting(&m)
            );
        }
        s
    }
}

impl Drop for Statewall {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            stop_child(c);
        }
    }
}

/// A minimal HTTP/1.0 client (the control API closes after each response).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// The seed host ruleset of the issue: replies to what the host opened come in,
/// everything else toward it is refused with icmp-port-unreachable.
pub const SEED_RULES: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -j REJECT
COMMIT
";

/// `deploy/examples/demo.rules`: the inside may open connections, replies come back,
/// nobody outside can open one (TCP gets a reset, the rest port-unreachable).
pub const DEMO_RULES: &str = include_str!("../../deploy/examples/demo.rules");

// ---- Fault tests (tests/tests/fault_*.rs): several pairs, any backend, kill -9 and restart ----
mod fault;
pub use fault::{on_backend, FaultPort, FaultWall, ACCEPT_ALL};
mod setup;
pub use setup::{interesting, metric_value, stop_child, www_with};
