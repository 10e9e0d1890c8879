//! `statewall ctl set …`: ipset's commands over the API. Each change is sent as one
//! line of `ipset restore` text (`restore` sends a whole file as one batch), so the
//! syntax is ipset's: `statewall ctl set add blocklist 10.0.0.1 timeout 60`.

use super::{escape, ok_or_error, request_to, Endpoint};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;

/// `statewall ctl set ...`.
#[derive(Debug, clap::Subcommand)]
pub enum SetCtl {
    /// Create a set: `create NAME TYPE [family inet|inet6] [timeout N] [counters] ...`.
    Create {
        /// Set name.
        name: String,
        /// hash:ip, hash:net, hash:ip,port, hash:net,port, bitmap:port, list:set.
        #[arg(value_name = "TYPE")]
        ty: String,
        /// Create options, as ipset takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        opts: Vec<String>,
        /// Do not fail when an identical set exists (ipset's -exist).
        #[arg(long)]
        exist: bool,
    },
    /// Add an element: `add NAME ELEM [timeout N] [nomatch] [comment TEXT]`.
    Add {
        /// Set name.
        name: String,
        /// Element (`10.0.0.1`, `10.0.0.0/8`, `10.0.0.1,tcp:80`, `20-25`, a set name).
        elem: String,
        /// Element options.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        opts: Vec<String>,
        /// Refresh an element already there instead of failing (ipset's -exist).
        #[arg(long)]
        exist: bool,
    },
    /// Delete an element.
    Del {
        /// Set name.
        name: String,
        /// Element.
        elem: String,
        /// Do not fail when the element is not there (ipset's -exist).
        #[arg(long)]
        exist: bool,
    },
    /// Is an element in the set? (exits with an error when it is not, as ipset does).
    Test {
        /// Set name.
        name: String,
        /// Element.
        elem: String,
    },
    /// `ipset list`: every set, or one, with its members.
    List {
        /// Set name.
        name: Option<String>,
    },
    /// `ipset save`: restore text of every set, or one.
    Save {
        /// Set name.
        name: Option<String>,
    },
    /// Remove every element of a set (or of every set).
    Flush {
        /// Set name.
        name: Option<String>,
    },
    /// Destroy a set (or every set); refused while a rule uses it.
    Destroy {
        /// Set name.
        name: Option<String>,
    },
    /// Exchange the contents of two sets of one type (rules see the other's elements).
    Swap {
        /// One set.
        a: String,
        /// The other.
        b: String,
    },
    /// Apply `ipset restore` text from FILE (or standard input) as one batch.
    Restore {
        /// The file (default: standard input).
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// ipset's -exist.
        #[arg(long)]
        exist: bool,
    },
}

/// A word of a restore line, quoted when it holds white space.
fn word(s: &str) -> String {
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}

/// Splits ipset's `-exist` / `-!` out of trailing options.
fn take_exist(opts: &[String], exist: bool) -> (Vec<String>, bool) {
    let mut e = exist;
    let rest = opts
        .iter()
        .filter(|o| {
            let flag = matches!(o.as_str(), "-exist" | "--exist" | "-!");
            e |= flag;
            !flag
        })
        .map(|o| word(o))
        .collect();
    (rest, e)
}

fn restore(ep: &Endpoint, text: &str, exist: bool, origin: &str) -> Result<u64> {
    let path = format!(
        "/api/v1/sets/restore?origin={}{}",
        escape(origin),
        if exist { "&exist=1" } else { "" }
    );
    let (c, b) = request_to(ep, "POST", &path, text)?;
    let v: Value = serde_json::from_str(&ok_or_error(c, b)?)?;
    Ok(v["applied"].as_u64().unwrap_or(0))
}

fn name_q(name: &Option<String>) -> String {
    name.as_deref()
        .map(|n| format!("?name={}", escape(n)))
        .unwrap_or_default()
}

/// Runs `statewall ctl set CMD`.
pub(super) fn run(ep: &Endpoint, cmd: &SetCtl, out: &mut dyn Write) -> Result<()> {
    let opt = |n: &Option<String>| {
        n.as_deref()
            .map(|n| format!(" {}", word(n)))
            .unwrap_or_default()
    };
    match cmd {
        SetCtl::Create {
            name,
            ty,
            opts,
            exist,
        } => {
            let (o, e) = take_exist(opts, *exist);
            let line = format!("create {} {} {}\n", word(name), word(ty), o.join(" "));
            restore(ep, &line, e, "ctl")?;
        }
        SetCtl::Add {
            name,
            elem,
            opts,
            exist,
        } => {
            let (o, e) = take_exist(opts, *exist);
            let line = format!("add {} {} {}\n", word(name), word(elem), o.join(" "));
            restore(ep, &line, e, "ctl")?;
        }
        SetCtl::Del { name, elem, exist } => {
            restore(
                ep,
                &format!("del {} {}\n", word(name), word(elem)),
                *exist,
                "ctl",
            )?;
        }
        SetCtl::Flush { name } => {
            restore(ep, &format!("flush{}\n", opt(name)), false, "ctl")?;
        }
        SetCtl::Destroy { name } => {
            restore(ep, &format!("destroy{}\n", opt(name)), false, "ctl")?;
        }
        SetCtl::Swap { a, b } => {
            restore(ep, &format!("swap {} {}\n", word(a), word(b)), false, "ctl")?;
        }
        SetCtl::Test { name, elem } => {
            let path = format!(
                "/api/v1/sets/test?name={}&elem={}",
                escape(name),
                escape(elem)
            );
            let (c, b) = request_to(ep, "GET", &path, "")?;
            let v: Value = serde_json::from_str(&ok_or_error(c, b)?)?;
            if v["in"].as_bool() == Some(true) {
                writeln!(out, "{elem} is in set {name}.")?;
            } else {
                bail!("{elem} is NOT in set {name}.");
            }
        }
        SetCtl::List { name } => {
            let (c, b) = request_to(ep, "GET", &format!("/api/v1/sets{}", name_q(name)), "")?;
            write!(out, "{}", ok_or_error(c, b)?)?;
        }
        SetCtl::Save { name } => {
            let (c, b) = request_to(ep, "GET", &format!("/api/v1/sets/save{}", name_q(name)), "")?;
            write!(out, "{}", ok_or_error(c, b)?)?;
        }
        SetCtl::Restore { file, exist } => {
            let (text, origin) = match file {
                Some(p) => (
                    std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?,
                    p.display().to_string(),
                ),
                None => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("reading standard input")?;
                    (s, "stdin".to_string())
                }
            };
            let n = restore(ep, &text, *exist, &origin)?;
            writeln!(out, "restored: {n} commands")?;
        }
    }
    Ok(())
}
