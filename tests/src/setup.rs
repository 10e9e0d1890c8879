//! Set-up shared by the end-to-end tests (`tests/tests/*.rs`): a test's topology once its
//! prerequisites are met ([`Topology::for_test`]), a web root with one file ([`www_with`]),
//! starting a statewall child until its API answers ([`spawn_ready`]), stopping it, and
//! reading its Prometheus text.

use super::*;

impl Topology {
    /// Serves `www` with `python3 -m http.server` on `ip:port` in namespace `ns` for up to
    /// `secs` (logs `log_dir/<tag>.out`, `.err`), once it listens (within 10 s).
    pub fn http_server(
        &self,
        (ns, ip, port): (&str, &str, u16),
        www: &Path,
        (log_dir, tag): (&Path, &str),
        secs: u64,
    ) -> Background {
        let py = python3();
        let port_s = port.to_string();
        let args = [py.as_str(), "-m", "http.server", &port_s, "--bind", ip];
        let b = self.spawn_in(ns, secs, www, log_dir, tag, &args);
        self.wait_tcp_listen(ns, port, 10);
        b
    }

    /// The test's [`Topology`], or `None` when `needs` (built on [`e2e_needs`]) says the
    /// test must skip (it has printed why): `let Some(topo) = Topology::for_test(test,
    /// e2e_needs(test).tools(&["curl"])) else { return };`.
    pub fn for_test(test: &str, needs: prereq::Needs) -> Option<Topology> {
        if needs.skip() {
            return None;
        }
        Some(Topology::new(test))
    }
}

/// Creates `dir/www` holding one file `name` with `body`; returns the `www` path.
pub fn www_with(dir: &Path, name: &str, body: impl AsRef<[u8]>) -> PathBuf {
    let www = dir.join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join(name), body).unwrap();
    www
}

/// Stops a statewall child: SIGTERM, up to 3 s for it to exit, then SIGKILL.
pub fn stop_child(mut c: std::process::Child) {
    // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
    unsafe {
        libc::kill(c.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// Non-zero counters of the packet path (ports, states, drops, reloads, rules).
pub fn interesting(metrics: &str) -> String {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with("statewall_port_")
                || l.starts_with("statewall_packets_total")
                || l.starts_with("statewall_drops_total")
                || l.starts_with("statewall_ruleset_")
                || l.starts_with("statewall_conntrack_entries")
                || l.starts_with("statewall_rule_")
        })
        .filter(|l| !l.ends_with(" 0"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of `series` (exact name with labels) in Prometheus text; 0 when absent.
pub fn metric_value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Why [`spawn_ready`] gave up on a statewall it started.
pub(crate) enum NotReady {
    /// It exited first, with this status.
    Exited(std::process::ExitStatus),
    /// Its API did not answer within 15 s (the process has been killed and reaped).
    Timeout,
}

/// Starts `statewall run --config <config> --duration 600` in `dir`, its stdout and
/// stderr in `dir/<tag>.out` and `dir/<tag>.err`, and waits up to 15 s for its API at
/// `api` to answer `GET /api/v1/status` with 200.
pub(crate) fn spawn_ready(
    config: &Path,
    dir: &Path,
    tag: &str,
    api: &str,
) -> Result<Child, NotReady> {
    let bin = statewall_bin();
    let out = std::fs::File::create(dir.join(format!("{tag}.out"))).unwrap();
    let err = std::fs::File::create(dir.join(format!("{tag}.err"))).unwrap();
    let mut child = Command::new(&bin)
        .args(["run", "--config"])
        .arg(config)
        .args(["--duration", "600"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok((200, _)) = http_request(api, "GET", "/api/v1/status", "") {
            return Ok(child);
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(NotReady::Exited(st));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(NotReady::Timeout);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
