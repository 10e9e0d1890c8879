//! What a test needs from the machine it runs on, checked in one place.
//!
//! A test that needs root, network namespaces, an external program, a kernel feature or
//! a Python module says so before it touches any of them:
//!
//! ```no_run
//! if prereq::needs("forward_demo").root().netns().tools(&["curl", "ping"]).skip() {
//!     return;
//! }
//! ```
//!
//! When everything is there, [`Needs::skip`] returns false and the test runs. When
//! something is missing it prints one line naming each missing thing —
//! `SKIP: forward_demo: missing ping, curl (not on PATH)` — and returns true, so the
//! README's `cargo test --workspace` passes on a bare machine and says what it could not
//! run. Under CI (`STATEWALL_TEST_NO_SKIP=1`, which `.ci/run` sets because it installs
//! every tool) a missing prerequisite fails the test instead: a broken install step
//! cannot hide behind a skip.
//!
//! Checks look only at what the test will use: `tools` searches `PATH` exactly as
//! `Command::new` does, `netns` runs `ip netns list`, `af_xdp` opens (and closes) an
//! `AF_XDP` socket, `kernel_module` looks in `/sys/module` and tries `modprobe`,
//! `python_modules` imports each module in the Python the tests run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The environment variable that turns every skip into a failure (set by `.ci/run`).
pub const NO_SKIP_ENV: &str = "STATEWALL_TEST_NO_SKIP";

/// The prerequisites of one test; build with [`needs`], finish with [`Needs::skip`].
#[derive(Debug)]
#[must_use = "call .skip() and return when it says true"]
pub struct Needs {
    test: String,
    missing: Vec<String>,
    tools: Vec<String>,
}

/// Starts the list of what test `test` needs.
pub fn needs(test: &str) -> Needs {
    Needs {
        test: test.to_string(),
        missing: Vec::new(),
        tools: Vec::new(),
    }
}

impl Needs {
    fn lack(mut self, what: impl Into<String>) -> Self {
        let what = what.into();
        if !self.missing.contains(&what) {
            self.missing.push(what);
        }
        self
    }

    /// Needs effective uid 0 (namespaces, raw sockets, BPF).
    pub fn root(self) -> Self {
        if is_root() {
            self
        } else {
            self.lack("root (CI runs as root)")
        }
    }

    /// Needs `ip netns` to work: root and the `ip` program (iproute2).
    pub fn netns(self) -> Self {
        let s = self.root().tools(&["ip"]);
        if !s.missing.is_empty() || which("ip").is_none() {
            return s;
        }
        let ok = Command::new("ip")
            .args(["netns", "list"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|st| st.success());
        if ok {
            s
        } else {
            s.lack("network namespaces (`ip netns list` failed)")
        }
    }

    /// Needs each of `tools` on `PATH`.
    pub fn tools(mut self, tools: &[&str]) -> Self {
        for t in tools {
            if which(t).is_none() && !self.tools.iter().any(|m| m == t) {
                self.tools.push(t.to_string());
            }
        }
        self
    }

    /// Needs a Python 3 that can import each of `modules` (none: just a Python 3).
    pub fn python_modules(self, modules: &[&str]) -> Self {
        let Some(py) = python3() else {
            return self.lack("python3");
        };
        let absent: Vec<&str> = modules
            .iter()
            .copied()
            .filter(|m| {
                !Command::new(&py)
                    .args(["-c", &format!("import {m}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .collect();
        if absent.is_empty() {
            self
        } else {
            self.lack(format!("python3 module {}", absent.join(", ")))
        }
    }

    /// Needs a Python 3 (see [`python3`]).
    pub fn python3(self) -> Self {
        self.python_modules(&[])
    }

    /// Needs the kernel to open `AF_XDP` sockets (and root, which that takes).
    pub fn af_xdp(self) -> Self {
        let s = self.root();
        if !s.missing.is_empty() {
            return s;
        }
        // SAFETY: socket(2) takes plain integers and returns a new descriptor or -1.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return s.lack(format!("AF_XDP sockets ({e})"));
        }
        // SAFETY: `fd` was just returned by socket(2) and is closed exactly once.
        unsafe { libc::close(fd) };
        s
    }

    /// Needs kernel module `name` loaded or loadable (`/sys/module/NAME`, else `modprobe`).
    pub fn kernel_module(self, name: &str) -> Self {
        if Path::new("/sys/module").join(name).exists() {
            return self;
        }
        let loaded = which("modprobe").is_some()
            && Command::new("modprobe")
                .arg(name)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            && Path::new("/sys/module").join(name).exists();
        if loaded {
            self
        } else {
            self.lack(format!("kernel module {name}"))
        }
    }

    /// Needs the file `path` (a device node, a library, a fixture built elsewhere).
    pub fn file(self, path: &str, what: &str) -> Self {
        if Path::new(path).exists() {
            self
        } else {
            self.lack(format!("{what} ({path})"))
        }
    }

    /// The missing prerequisites so far, as printed by [`Needs::skip`]: the programs
    /// not on `PATH` first (one entry), then everything else.
    pub fn missing(&self) -> Vec<String> {
        let mut all = Vec::new();
        if !self.tools.is_empty() {
            all.push(format!(
                "{} (not on PATH; .ci/run and .ci/e2e-deps.sh install them)",
                self.tools.join(", ")
            ));
        }
        all.extend(self.missing.iter().cloned());
        all
    }

    /// True when something is missing: prints `SKIP: TEST: missing ...` and the test
    /// returns. Under `STATEWALL_TEST_NO_SKIP=1` it panics with the same text instead.
    pub fn skip(self) -> bool {
        let missing = self.missing();
        if missing.is_empty() {
            return false;
        }
        skip_because(&self.test, &format!("missing {}", missing.join("; ")));
        true
    }
}

/// Reports that `test` cannot run here for `reason`, discovered while running (the kernel
/// refused AF_XDP, say): prints `SKIP: TEST: REASON`, or panics under
/// `STATEWALL_TEST_NO_SKIP=1`.
pub fn skip_because(test: &str, reason: &str) {
    let line = format!("SKIP: {test}: {reason}");
    if strict() {
        panic!(
            "{line} — {NO_SKIP_ENV} is set (CI installs every prerequisite), so this is a failure"
        );
    }
    // Straight to the process's stderr, past the test harness's capture of print!
    // output, so `cargo test` shows every skip without --nocapture.
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// True when skips are failures (`STATEWALL_TEST_NO_SKIP` set to anything but `0` or empty).
pub fn strict() -> bool {
    std::env::var(NO_SKIP_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// True when the effective uid is 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The full path of `tool` on `PATH`, as `Command::new(tool)` would find it.
pub fn which(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        return Path::new(tool).is_file().then(|| PathBuf::from(tool));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The Python 3 tests run: the system one (`/usr/bin/python3`, which works inside a
/// namespace's environment, unlike a pyenv shim), else the one on `PATH`.
pub fn python3() -> Option<String> {
    for p in ["/usr/bin/python3", "/usr/local/bin/python3"] {
        if Path::new(p).is_file() {
            return Some(p.to_string());
        }
    }
    which("python3").map(|p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_that_does_not_exist_is_named() {
        let n = needs("t").tools(&["sh", "no-such-tool-statewall"]);
        assert_eq!(n.missing().len(), 1);
        assert!(
            n.missing()[0].contains("no-such-tool-statewall"),
            "{:?}",
            n.missing()
        );
        assert!(!n.missing()[0].contains("sh,"), "{:?}", n.missing());
    }

    #[test]
    fn nothing_missing_means_no_skip() {
        assert!(!needs("t").tools(&["sh"]).skip());
    }

    #[test]
    fn a_missing_file_is_named_with_its_purpose() {
        let n = needs("t").file("/nonexistent/statewall", "the fixture");
        assert_eq!(n.missing(), ["the fixture (/nonexistent/statewall)"]);
    }

    #[test]
    fn root_checks_follow_the_uid() {
        let n = needs("t").root();
        assert_eq!(n.missing().is_empty(), is_root());
    }
}
