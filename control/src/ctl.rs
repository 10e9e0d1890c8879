//! `statewall ctl`: the operator CLI over the control API (HTTP/JSON), on the unix
//! socket by default (`--socket`, every command), or on TCP when asked (`--api
//! http://HOST:PORT`; mutations then need `--token-file`).

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod set;
pub use set::SetCtl;

/// `statewall ctl` arguments.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The running statewall's control socket (the default transport).
    #[arg(long, default_value = crate::config::DEFAULT_SOCKET, global = true)]
    pub socket: PathBuf,
    /// Use TCP instead: the control API's address (`http://HOST:PORT` or `HOST:PORT`).
    #[arg(long, visible_alias = "addr", global = true)]
    pub api: Option<String>,
    /// File with the bearer token for mutations over TCP (`control.token_file`).
    #[arg(long, global = true, requires = "api")]
    pub token_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: CtlCmd,
}

/// `statewall ctl` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CtlCmd {
    /// Version, workers, ports, ruleset generation.
    Status,
    /// Port statistics, like testpmd's `show port stats all`.
    Ports,
    /// Per-worker statistics.
    Workers,
    /// Rulesets.
    Rules {
        /// What to do with the rules.
        #[command(subcommand)]
        cmd: RulesCtl,
    },
    /// The connection table (like the `conntrack` tool).
    Conntrack {
        /// What to do with the table.
        #[command(subcommand)]
        cmd: ConntrackCtl,
    },
    /// Expectations (like `conntrack -L expect`).
    Expect,
    /// IP sets, with ipset's commands (`set add blocklist 10.0.0.1 timeout 60`).
    Set {
        /// What to do with the sets.
        #[command(subcommand)]
        cmd: SetCtl,
    },
}

/// `statewall ctl rules ...`.
#[derive(Debug, clap::Subcommand)]
pub enum RulesCtl {
    /// List rules with counters, like `iptables -L -v -n --line-numbers`.
    List,
    /// Re-read the rules file (like SIGHUP).
    Reload,
    /// Replace the running ruleset with FILE (validated first; refused whole on error).
    Replace {
        /// iptables-restore text.
        file: PathBuf,
    },
    /// Check FILE against the running statewall's parser without changing anything.
    Check {
        /// iptables-restore text.
        file: PathBuf,
    },
}

/// Filters with the `conntrack` tool's flags (applied to the original tuple).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CtFilterArgs {
    /// Protocol (tcp, udp, icmp, icmpv6, or a number).
    #[arg(short = 'p', long = "proto")]
    pub proto: Option<String>,
    /// Original source address.
    #[arg(short = 's', long = "src", alias = "orig-src")]
    pub src: Option<String>,
    /// Original destination address.
    #[arg(short = 'd', long = "dst", alias = "orig-dst")]
    pub dst: Option<String>,
    /// Original source port.
    #[arg(long = "sport", alias = "orig-port-src")]
    pub sport: Option<u16>,
    /// Original destination port.
    #[arg(long = "dport", alias = "orig-port-dst")]
    pub dport: Option<u16>,
    /// TCP state (ESTABLISHED, TIME_WAIT, ...).
    #[arg(long = "state")]
    pub state: Option<String>,
    /// Status (ASSURED, SEEN_REPLY, UNREPLIED, EXPECTED).
    #[arg(short = 'u', long = "status")]
    pub status: Option<String>,
    /// Source-NATed entries (`conntrack --src-nat [IP]`): with an IP, those translated
    /// to it.
    #[arg(short = 'n', long = "src-nat", num_args = 0..=1, default_missing_value = "", value_name = "IP")]
    pub src_nat: Option<String>,
    /// Destination-NATed entries (`conntrack --dst-nat [IP]`): with an IP, those
    /// translated to it.
    #[arg(short = 'g', long = "dst-nat", num_args = 0..=1, default_missing_value = "", value_name = "IP")]
    pub dst_nat: Option<String>,
}

impl CtFilterArgs {
    fn query(&self) -> String {
        let mut q = Vec::new();
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.push(format!("{k}={}", escape(&v)));
            }
        };
        add("proto", self.proto.clone());
        add("src", self.src.clone());
        add("dst", self.dst.clone());
        add("sport", self.sport.map(|x| x.to_string()));
        add("dport", self.dport.map(|x| x.to_string()));
        add("state", self.state.clone());
        add("status", self.status.clone());
        add("src_nat", self.src_nat.clone());
        add("dst_nat", self.dst_nat.clone());
        q.join("&")
    }
}

/// `statewall ctl conntrack ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ConntrackCtl {
    /// List entries in `conntrack -L` format (`-o json` / `--json` for JSON).
    List {
        /// Filters.
        #[command(flatten)]
        filter: CtFilterArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Delete matching entries (like `conntrack -D`).
    Delete {
        /// Filters (at least one is required).
        #[command(flatten)]
        filter: CtFilterArgs,
    },
    /// Delete every entry (like `conntrack -F`).
    Flush,
    /// Count entries (like `conntrack -C`).
    Count {
        /// Filters.
        #[command(flatten)]
        filter: CtFilterArgs,
    },
    /// Statistics per worker and summed (like `conntrack -S`).
    Stats,
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b':' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where the control API is.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// The unix socket (every endpoint; access by file permissions).
    Socket(PathBuf),
    /// TCP `HOST:PORT`, with the bearer token for mutations.
    Tcp {
        /// `HOST:PORT`.
        addr: String,
        /// The token, if any.
        token: Option<String>,
    },
}

impl Endpoint {
    /// The endpoint `args` name: `--api` (TCP) or `--socket`.
    pub fn from_args(args: &CtlArgs) -> Result<Endpoint> {
        Ok(match &args.api {
            None => Endpoint::Socket(args.socket.clone()),
            Some(a) => {
                if a.starts_with("https://") {
                    bail!("--api {a}: this ctl speaks plain HTTP; use the unix socket on the host, or an HTTPS client such as curl");
                }
                let addr = a.strip_prefix("http://").unwrap_or(a);
                let addr = addr.trim_end_matches('/').to_string();
                let token = match &args.token_file {
                    None => None,
                    Some(p) => Some(read_token_file(p)?),
                };
                Endpoint::Tcp { addr, token }
            }
        })
    }
}

fn read_token_file(p: &Path) -> Result<String> {
    let t = std::fs::read_to_string(p)
        .with_context(|| format!("--token-file: reading {}", p.display()))?;
    let t = t.trim();
    if t.is_empty() {
        bail!("--token-file: {} is empty", p.display());
    }
    Ok(t.to_string())
}

/// One HTTP/1.0 request over TCP to `addr`, without a token (reads); returns (status, body).
pub fn request(addr: &str, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let ep = Endpoint::Tcp {
        addr: addr.to_string(),
        token: None,
    };
    request_to(&ep, method, path, body)
}

/// One HTTP/1.0 request to the API at `ep`; returns (status, body).
pub fn request_to(ep: &Endpoint, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let ctype = if body.is_empty() {
        String::new()
    } else if body.trim_start().starts_with(['{', '[']) {
        "Content-Type: application/json\r\n".into()
    } else {
        "Content-Type: text/plain; charset=utf-8\r\n".into()
    };
    match ep {
        Endpoint::Socket(p) => {
            let s = UnixStream::connect(p).with_context(|| {
                format!(
                    "connecting to statewall at {} (is it running? see --socket, or --api for TCP)",
                    p.display()
                )
            })?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            let head = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n{ctype}");
            exchange(s, &head, body)
        }
        Endpoint::Tcp { addr, token } => {
            let s = TcpStream::connect(addr.as_str()).with_context(|| {
                format!("connecting to statewall at {addr} (is it running? see --api)")
            })?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            let auth = match token {
                Some(t) if method != "GET" => format!("Authorization: Bearer {t}\r\n"),
                _ => String::new(),
            };
            let head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{ctype}{auth}");
            exchange(s, &head, body)
        }
    }
}

fn exchange(mut s: impl Read + Write, head: &str, body: &str) -> Result<(u16, String)> {
    write!(
        s,
        "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let resp = String::from_utf8_lossy(&resp);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}

fn get_json(ep: &Endpoint, path: &str) -> Result<Value> {
    let (code, body) = request_to(ep, "GET", path, "")?;
    let v: Value =
        serde_json::from_str(&body).with_context(|| format!("bad answer from {path}: {body}"))?;
    if code != 200 {
        bail!("{}", v["error"].as_str().unwrap_or(&body));
    }
    Ok(v)
}

fn ok_or_error(code: u16, body: String) -> Result<String> {
    if code == 200 {
        Ok(body)
    } else {
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        bail!("{}", v["error"].as_str().unwrap_or(&body).trim_end())
    }
}

/// Runs a ctl command, printing to `out`.
pub fn run(args: &CtlArgs, out: &mut dyn Write) -> Result<()> {
    let a = &Endpoint::from_args(args)?;
    match &args.cmd {
        CtlCmd::Status => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&get_json(a, "/api/v1/status")?)?
        )?,
        CtlCmd::Workers => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&get_json(a, "/api/v1/workers")?)?
        )?,
        CtlCmd::Ports => {
            let v = get_json(a, "/api/v1/ports")?;
            for p in v.as_array().into_iter().flatten() {
                let g = |k: &str| p[k].as_u64().unwrap_or(0);
                writeln!(out, "\n  ######################## NIC statistics for port {:<2} ({}) ########################", g("port"), p["name"].as_str().unwrap_or(""))?;
                writeln!(
                    out,
                    "  RX-packets: {:<10} RX-missed: {:<10} RX-bytes:  {}",
                    g("ipackets"),
                    g("imissed"),
                    g("ibytes")
                )?;
                writeln!(out, "  RX-errors: {}", g("ierrors"))?;
                writeln!(out, "  RX-nombuf:  {}", g("rx_nombuf"))?;
                writeln!(
                    out,
                    "  TX-packets: {:<10} TX-errors: {:<10} TX-bytes:  {}",
                    g("opackets"),
                    g("oerrors"),
                    g("obytes")
                )?;
                writeln!(out, "  ############################################################################")?;
            }
        }
        CtlCmd::Rules { cmd } => match cmd {
            RulesCtl::List => {
                let (c, b) = request_to(a, "GET", "/api/v1/rules", "")?;
                write!(out, "{}", ok_or_error(c, b)?)?;
            }
            RulesCtl::Reload => {
                let (c, b) = request_to(a, "POST", "/api/v1/reload", "")?;
                let v: Value = serde_json::from_str(&ok_or_error(c, b)?)?;
                writeln!(out, "reloaded: ruleset generation {}", v["generation"])?;
            }
            RulesCtl::Replace { file } | RulesCtl::Check { file } => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let replace = matches!(cmd, RulesCtl::Replace { .. });
                let (m, p) = if replace {
                    ("PUT", "/api/v1/rules")
                } else {
                    ("POST", "/api/v1/rules/check")
                };
                let p = format!("{p}?name={}", escape(&file.display().to_string()));
                let (c, b) = request_to(a, m, &p, &text)?;
                let v: Value = serde_json::from_str(&ok_or_error(c, b)?)?;
                if replace {
                    writeln!(out, "replaced: ruleset generation {}", v["generation"])?;
                } else {
                    writeln!(
                        out,
                        "{}: OK\n{}",
                        file.display(),
                        v["summary"].as_str().unwrap_or("")
                    )?;
                }
            }
        },
        CtlCmd::Conntrack { cmd } => match cmd {
            ConntrackCtl::List { filter, json } => {
                let mut q = filter.query();
                if *json {
                    q = if q.is_empty() {
                        "format=json".into()
                    } else {
                        format!("{q}&format=json")
                    };
                }
                let (c, b) = request_to(a, "GET", &format!("/api/v1/conntrack?{q}"), "")?;
                write!(out, "{}", ok_or_error(c, b)?)?;
            }
            ConntrackCtl::Delete { filter } => {
                let q = filter.query();
                if q.is_empty() {
                    bail!("conntrack delete: give at least one filter (use `conntrack flush` to delete everything)");
                }
                let (c, b) = request_to(a, "DELETE", &format!("/api/v1/conntrack?{q}"), "")?;
                write!(out, "{}", ok_or_error(c, b)?)?;
            }
            ConntrackCtl::Flush => {
                let (c, b) = request_to(a, "POST", "/api/v1/conntrack/flush", "")?;
                let v: Value = serde_json::from_str(&ok_or_error(c, b)?)?;
                writeln!(
                    out,
                    "connection tracking table has been emptied ({} entries)",
                    v["flushed"]
                )?;
            }
            ConntrackCtl::Count { filter } => {
                let (c, b) = request_to(
                    a,
                    "GET",
                    &format!("/api/v1/conntrack/count?{}", filter.query()),
                    "",
                )?;
                write!(out, "{}", ok_or_error(c, b)?)?;
            }
            ConntrackCtl::Stats => {
                let v = get_json(a, "/api/v1/conntrack/stats")?;
                let line = |o: &Value| {
                    dataplane::conntrack::CtCounter::CONNTRACK_S
                        .iter()
                        .map(|c| format!("{}={}", c.name(), o[c.name()].as_u64().unwrap_or(0)))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                for w in v["workers"].as_array().into_iter().flatten() {
                    writeln!(out, "cpu={:<4}\t{}", w["cpu"], line(w))?;
                }
                writeln!(out, "total   \t{}", line(&v["total"]))?;
            }
        },
        CtlCmd::Expect => {
            let (c, b) = request_to(a, "GET", "/api/v1/expect", "")?;
            write!(out, "{}", ok_or_error(c, b)?)?;
        }
        CtlCmd::Set { cmd } => set::run(a, cmd, out)?,
    }
    Ok(())
}
