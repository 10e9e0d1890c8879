//! `statewall doctor`: read-only host checks against a configuration
//! (deploy/host/doctor-checks.md). It changes nothing.
//!
//! Every check reads its files under [`Roots`] (`/sys`, `/proc`, `/dev` by default) so
//! tests can point it at a fixture tree. A check is FAIL when `statewall run` with this
//! configuration would not start, WARN when it would start but lose performance or
//! robustness, SKIP when no configured backend needs it.

mod checks;

pub use checks::run_checks;

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
    /// An OK check: `detail` says what was found.
    fn ok(check: &str, detail: impl Into<String>) -> Check {
        Check::new(check, Status::Ok, detail, "")
    }

    /// A check that does not apply here: `detail` says why.
    fn skip(check: &str, detail: impl Into<String>) -> Check {
        Check::new(check, Status::Skip, detail, "")
    }

    /// A WARN: what was found, and how to fix it.
    fn warn(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(check, Status::Warn, detail, fix)
    }

    /// A FAIL: what was found, and how to fix it.
    fn fail(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(check, Status::Fail, detail, fix)
    }

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
