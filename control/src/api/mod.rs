//! The control API: HTTP/JSON on the unix socket `control.socket` (default
//! `/run/statewall/control.sock`, every endpoint; its file permissions are the access
//! control) and on `control.listen` (default 127.0.0.1:9469: `/metrics` and the GETs to
//! anyone, mutations only with the bearer token of `control.token_file`; optional TLS).
//! [`guard`] has the rules, [`server`] the hyper server on a one-thread tokio runtime
//! (slow clients time out, connections are capped), [`socket`] the socket file.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/` | landing page |
//! | GET | `/metrics` | Prometheus exposition |
//! | GET | `/api/v1/status` | version, workers, ports, ruleset generation |
//! | GET | `/api/v1/ports` | port counters (testpmd words) |
//! | GET | `/api/v1/workers` | per-worker counters |
//! | GET | `/api/v1/rules` | `iptables -L -v -n --line-numbers` listing with counters |
//! | PUT | `/api/v1/rules?name=FILE` | replace the ruleset with the body (refused whole on error) |
//! | POST | `/api/v1/rules/check?name=FILE` | parse and compile the body, change nothing |
//! | POST | `/api/v1/reload` | re-read the rules file (same as SIGHUP) |
//! | GET | `/api/v1/conntrack?FILTERS` | list entries (`format=json` for JSON) |
//! | GET | `/api/v1/conntrack/count?FILTERS` | count entries |
//! | DELETE | `/api/v1/conntrack?FILTERS` | delete matching entries |
//! | POST | `/api/v1/conntrack/flush` | delete all entries |
//! | GET | `/api/v1/conntrack/stats` | `conntrack -S` per worker and summed |
//! | GET | `/api/v1/expect` | expectations |
//! | GET, POST | `/api/v1/sets…` | IP sets: list, save, test, restore ([`sets`]) |
//!
//! FILTERS are the `conntrack` tool's: `proto`, `src`, `dst`, `sport`, `dport` (on the
//! original tuple), `state` (TCP state), `status` (ASSURED, SEEN_REPLY, UNREPLIED).
//!
//! This module is the server and the router ([`handle`]); the views live beside it:
//! [`metrics`] (the Prometheus exposition), [`status`] (JSON views of the runtime) and
//! [`ctview`] (conntrack filters, listings, delete and flush).

pub mod ctview;
pub mod guard;
pub mod metrics;
mod server;
pub mod sets;
pub mod socket;
pub mod status;
#[cfg(feature = "tls")]
mod tls;

pub use server::{serve, Api, Listeners, MAX_CONN_LIFE};

use crate::runtime::Runtime;
use ctview::Filter;
use serde_json::json;

const LANDING: &str = "<html><head><title>statewall</title></head><body><h1>statewall</h1>\
<p>A stateful firewall fast path with Linux conntrack semantics.</p>\
<ul><li><a href=\"/metrics\">/metrics</a> (Prometheus)</li>\
<li><a href=\"/api/v1/status\">/api/v1/status</a></li>\
<li><a href=\"/api/v1/ports\">/api/v1/ports</a></li>\
<li><a href=\"/api/v1/rules\">/api/v1/rules</a></li>\
<li><a href=\"/api/v1/conntrack\">/api/v1/conntrack</a></li>\
<li><a href=\"/api/v1/conntrack/stats\">/api/v1/conntrack/stats</a></li></ul></body></html>\n";

fn query(url: &str) -> (&str, Vec<(String, String)>) {
    match url.split_once('?') {
        None => (url, Vec::new()),
        Some((p, q)) => (
            p,
            q.split('&')
                .filter(|s| !s.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (unescape(k), unescape(v))
                })
                .collect(),
        ),
    }
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

fn err(code: u16, msg: impl std::fmt::Display) -> (u16, &'static str, String) {
    (
        code,
        JSON,
        json!({ "error": msg.to_string() }).to_string() + "\n",
    )
}

/// Handles one request: (status, content type, body).
pub fn handle(rt: &Runtime, method: &str, url: &str, body: &str) -> (u16, &'static str, String) {
    let (path, q) = query(url);
    let want_json = q.iter().any(|(k, v)| k == "format" && v == "json");
    // `name=FILE` names uploaded rules in errors (`FILE:line:col: message`).
    let origin = q
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .unwrap_or("api");
    match (method, path) {
        ("GET", "/") => (200, "text/html; charset=utf-8", LANDING.to_string()),
        ("GET", "/metrics") => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(rt),
        ),
        ("GET", "/api/v1/status") => (200, JSON, status::status_json(rt).to_string() + "\n"),
        ("GET", "/api/v1/ports") => (200, JSON, status::ports_json(rt).to_string() + "\n"),
        ("GET", "/api/v1/workers") => (200, JSON, status::workers_json(rt).to_string() + "\n"),
        ("GET", "/api/v1/rules") => match status::rules_listing(rt) {
            Ok(t) => (200, TEXT, t),
            Err(e) => err(500, e),
        },
        // An empty body would replace the firewall with an empty (accept-all) ruleset;
        // iptables-restore changes nothing on empty input, so refuse it.
        ("PUT", "/api/v1/rules") if body.trim().is_empty() => err(
            400,
            "empty ruleset refused (send iptables-restore text with at least one table)",
        ),
        ("PUT", "/api/v1/rules") => match rt.replace_rules(body, origin) {
            Ok(g) => (200, JSON, json!({ "generation": g }).to_string() + "\n"),
            Err(e) => err(400, format!("{e:#}")),
        },
        ("POST", "/api/v1/rules/check") => {
            match dataplane::ruleset::parse_ruleset_with_sets(body, origin, None, &rt.sets) {
                Ok(rs) => (
                    200,
                    JSON,
                    json!({ "ok": true, "summary": rs.summary().to_string() }).to_string() + "\n",
                ),
                Err(e) => err(400, e),
            }
        }
        ("POST", "/api/v1/reload") => {
            crate::notify::reloading();
            let r = rt.reload();
            crate::notify::ready();
            // Runtime::reload logs and counts the outcome.
            match r {
                Ok(g) => (200, JSON, json!({ "generation": g }).to_string() + "\n"),
                Err(e) => err(400, format!("{e:#}")),
            }
        }
        ("GET", "/api/v1/conntrack")
        | ("GET", "/api/v1/conntrack/count")
        | ("DELETE", "/api/v1/conntrack") => {
            let filter = match Filter::from_query(&q) {
                Ok(f) => f,
                Err(e) => return err(400, e),
            };
            let r = match (method, path) {
                ("GET", "/api/v1/conntrack") => ctview::list(rt, filter, want_json),
                ("GET", _) => ctview::count(rt, filter),
                _ => ctview::delete(rt, filter),
            };
            match r {
                Ok((ct, text)) => (200, ct, text),
                Err(e) => err(500, format!("{e:#}")),
            }
        }
        ("POST", "/api/v1/conntrack/flush") => match ctview::flush(rt) {
            Ok(n) => (200, JSON, json!({ "flushed": n }).to_string() + "\n"),
            Err(e) => err(500, format!("{e:#}")),
        },
        ("GET", "/api/v1/conntrack/stats") => {
            (200, JSON, status::ct_stats_json(rt).to_string() + "\n")
        }
        ("GET", "/api/v1/expect") => match ctview::expectations(rt) {
            Ok(t) => (200, TEXT, t),
            Err(e) => err(500, format!("{e:#}")),
        },
        (_, p) if p == "/api/v1/sets" || p.starts_with("/api/v1/sets/") => {
            sets::handle(rt, method, p, &q, body)
        }
        _ => err(404, format!("no route for {method} {path}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unescape_never_panics() {
        assert_eq!(super::unescape("a%20b+c"), "a b c");
        assert_eq!(super::unescape("%zz%"), "%zz%");
        assert_eq!(super::unescape("%\u{e9}\u{e9}"), "%\u{e9}\u{e9}");
        assert_eq!(super::unescape("%4"), "%4");
        let (p, q) = super::query("/x?%C3%A9=%\u{e9}&&k");
        assert_eq!(p, "/x");
        assert_eq!(
            q,
            vec![
                ("\u{e9}".to_string(), "%\u{e9}".to_string()),
                ("k".into(), "".into())
            ]
        );
    }
}
