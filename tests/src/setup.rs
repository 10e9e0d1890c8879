//! Set-up shared by the end-to-end tests (`tests/tests/*.rs`): a test's topology once its
//! prerequisites are met ([`Topology::for_test`]), a web root with one file ([`www_with`]),
//! stopping a statewall child, and reading its Prometheus text.

use super::*;

impl Topology {
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
