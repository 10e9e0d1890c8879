//! Shared harness: a statewall runtime on pktgen ports, in-process, with its control
//! API on a free loopback port (reads) and a unix socket in its temporary directory
//! (everything; `Sw::ctl` uses it).
#![allow(dead_code)]

use clap::Parser;
use statewall::ctl::CtlArgs;
use statewall::runtime::Runtime;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Busy-polling workers on a 2-core machine: one running statewall per test binary at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The demo ruleset (inside may open connections; INVALID dropped).
pub const DEMO_RULES: &str = include_str!("../../../deploy/examples/demo.rules");

/// Takes the per-binary lock for a test that starts its own runtime.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running statewall.
pub struct Sw {
    pub rt: Arc<Runtime>,
    /// The TCP address (`/metrics`, reads).
    pub addr: String,
    /// The unix control socket (every endpoint; `ctl` uses it).
    pub sock: PathBuf,
    pub api: statewall::api::Api,
    pub dir: tempfile::TempDir,
    pub rules: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

/// Starts 2 workers on a pktgen pair with `rules` as the rules file and `extra` TOML
/// appended (e.g. a `[pktgen]` or `[conntrack]` section).
pub fn start(rules: &str, extra: &str) -> Sw {
    let serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("fw.rules");
    std::fs::write(&rules_path, rules).unwrap();
    let mut toml = format!(
        "[dataplane]\nworkers = 2\n\
         [[port]]\nname = \"inside\"\nbackend = \"pktgen\"\nside = \"inside\"\n\
         [[port]]\nname = \"outside\"\nbackend = \"pktgen\"\nside = \"outside\"\n\
         [[pair]]\nnetwork = \"outside\"\nhost = \"inside\"\n\
         [rules]\nfile = {:?}\n\
         [control]\nlisten = \"127.0.0.1:0\"\nstats_interval = 0\n",
        rules_path.display().to_string()
    );
    let sock = dir.path().join("control.sock");
    toml.push_str(&format!("socket = {:?}\n", sock.display().to_string()));
    toml.push_str(extra);
    if !extra.contains("[pktgen]") {
        toml.push_str("[pktgen]\nrate_pps = 20000\nflows = 256\n");
    }
    let cfg = statewall::config::Config::parse(&toml, "test.toml").unwrap();
    let listeners = statewall::api::Listeners::bind(&cfg.control).unwrap();
    let rt = Arc::new(Runtime::start(cfg, false).unwrap());
    let api = statewall::api::serve(rt.clone(), listeners).unwrap();
    let addr = api.tcp_addr().unwrap().to_string();
    Sw {
        rt,
        addr,
        sock,
        api,
        dir,
        rules: rules_path,
        _serial: serial,
    }
}

impl Drop for Sw {
    fn drop(&mut self) {
        self.rt.shutdown();
    }
}

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: CtlArgs,
}

impl Sw {
    /// `statewall ctl --socket SOCK ARGS...` through the library; Ok(stdout) or the error text.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let sock = self.sock.display().to_string();
        let mut argv = vec!["ctl", "--socket", &sock];
        argv.extend_from_slice(args);
        let w = Wrap::try_parse_from(argv).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        statewall::ctl::run(&w.args, &mut out).map_err(|e| format!("{e:#}"))?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// Like [`Sw::ctl`] but panics on error.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ctl(args)
            .unwrap_or_else(|e| panic!("statewall ctl {args:?} failed: {e}"))
    }

    /// One request over the unix socket (every endpoint); (status, body).
    pub fn sock_request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let ep = statewall::ctl::Endpoint::Socket(self.sock.clone());
        statewall::ctl::request_to(&ep, method, path, body).unwrap()
    }

    /// GET a path of the API.
    pub fn get(&self, path: &str) -> String {
        let (code, body) = statewall::ctl::request(&self.addr, "GET", path, "").unwrap();
        assert_eq!(code, 200, "GET {path}: {body}");
        body
    }

    /// The /metrics exposition.
    pub fn scrape(&self) -> String {
        self.get("/metrics")
    }

    /// Value of one series in a scrape (`name` or `name{labels}` exactly as exposed).
    pub fn metric(&self, series: &str) -> f64 {
        metric(&self.scrape(), series)
    }

    /// Per-state packet counts summed over workers.
    pub fn state(&self, name: &str) -> u64 {
        self.rt.sum(|w| {
            w.by_state[dataplane::worker::STATE_NAMES
                .iter()
                .position(|s| *s == name)
                .unwrap()]
            .load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Waits (at most `secs`) until `f` holds.
    pub fn wait(&self, secs: u64, what: &str, mut f: impl FnMut(&Sw) -> bool) {
        let t = Instant::now();
        while !f(self) {
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "timed out after {secs} s waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for traffic on both workers.
    pub fn wait_traffic(&self) {
        self.wait(20, "packets on both workers", |s| {
            s.rt.workers
                .iter()
                .all(|w| w.stats.packets.load(std::sync::atomic::Ordering::Relaxed) > 200)
        });
    }
}

/// Value of `series` in exposition text.
pub fn metric(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == series).then(|| v.parse::<f64>().unwrap())
        })
        .unwrap_or_else(|| panic!("no series {series} in the scrape:\n{scrape}"))
}

/// The reload series of a scrape: (`statewall_ruleset_last_reload_successful`,
/// `statewall_ruleset_reloads_total` with `result="success"`, with `result="failure"`).
pub fn reloads(scrape: &str) -> (f64, f64, f64) {
    let total = |r: &str| {
        metric(
            scrape,
            &format!("statewall_ruleset_reloads_total{{result=\"{r}\"}}"),
        )
    };
    (
        metric(scrape, "statewall_ruleset_last_reload_successful"),
        total("success"),
        total("failure"),
    )
}

/// Runs `cmd` with `input` on its stdin (stdout and stderr captured); its output once it
/// exits.
pub fn run_with_stdin(cmd: &mut std::process::Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut c = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input).unwrap();
    c.wait_with_output().unwrap()
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The demo configuration's control lines moved to `127.0.0.1:PORT` and a socket in
/// `dir`, so parallel tests (and a statewall running on the machine) don't collide.
pub fn relocate_control(text: &str, port: u16, dir: &std::path::Path) -> String {
    let sock = dir.join("control.sock");
    text.replace(
        "\"127.0.0.1:9469\"",
        &format!(
            "\"127.0.0.1:{port}\"\nsocket = {:?}",
            sock.display().to_string()
        ),
    )
}

/// The statewall binary built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_statewall"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Writes `frames` as a classic pcap (microsecond timestamps, Ethernet), one packet a
/// second from t = 1000 s.
pub fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) {
    let mut v = Vec::new();
    v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&65535u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        v.extend_from_slice(&(1000 + i as u32).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&(f.len() as u32).to_le_bytes());
        v.extend_from_slice(&(f.len() as u32).to_le_bytes());
        v.extend_from_slice(f);
    }
    std::fs::write(path, v).unwrap();
}
