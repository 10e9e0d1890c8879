//! The IP set endpoints (`statewall ctl set …` speaks them):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/api/v1/sets[?name=SET]` | `ipset list` (every set, or one) |
//! | GET | `/api/v1/sets/save[?name=SET]` | `ipset save` text |
//! | GET | `/api/v1/sets/test?name=SET&elem=ELEM` | `ipset test`: `{"in": bool}` |
//! | POST | `/api/v1/sets/restore[?exist=1][&origin=NAME]` | apply `ipset restore` text as one batch |
//!
//! Every change (`add`, `del`, `create`, `destroy`, `flush`, `swap`) is a restore text:
//! checked whole against working copies and published per set in one atomic store, so a
//! refused text changes nothing and a batch of a million `add` lines costs one copy of
//! each set it touches. No ruleset is reloaded.

use super::{err, JSON, TEXT};
use crate::runtime::Runtime;
use dataplane::sets::{save_text_of, SetSlot};
use serde_json::json;
use std::sync::Arc;

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter()
        .find(|(x, _)| x == k)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `ipset list` of one set: its header and members.
fn list_one(s: &Arc<SetSlot>, now: u64, members: bool) -> String {
    let d = s.data();
    // The registry and this call hold two references; the rest are rules and lists.
    let refs = Arc::strong_count(s).saturating_sub(2);
    let mut o = format!(
        "Name: {}\nType: {}\nHeader: {}\nReferences: {refs}\nNumber of entries: {}\n",
        s.name(),
        d.opts.ty.name(),
        d.opts.save_text(),
        d.len(now)
    );
    if members {
        o.push_str("Members:\n");
        let prefix = format!("add {} ", s.name());
        for l in save_text_of(s, now).lines().skip(1) {
            o.push_str(l.strip_prefix(&prefix).unwrap_or(l));
            o.push('\n');
        }
    }
    o
}

/// Handles a request under `/api/v1/sets`.
pub fn handle(
    rt: &Runtime,
    method: &str,
    path: &str,
    q: &[(String, String)],
    body: &str,
) -> (u16, &'static str, String) {
    let now = rt.clock.now();
    let named = |n: &str| {
        rt.sets
            .get(n)
            .ok_or_else(|| err(404, format!("set \"{n}\" does not exist")))
    };
    match (method, path) {
        ("GET", "/api/v1/sets") => match param(q, "name") {
            Some(n) => match named(n) {
                Ok(s) => (200, TEXT, list_one(&s, now, true)),
                Err(e) => e,
            },
            None => {
                let all: Vec<String> = rt
                    .sets
                    .all()
                    .iter()
                    .map(|s| list_one(s, now, true))
                    .collect();
                (200, TEXT, all.join("\n"))
            }
        },
        ("GET", "/api/v1/sets/save") => match param(q, "name") {
            Some(n) => match named(n) {
                Ok(s) => (200, TEXT, save_text_of(&s, now)),
                Err(e) => e,
            },
            None => (200, TEXT, rt.sets.save(now)),
        },
        ("GET", "/api/v1/sets/test") => {
            let (Some(n), Some(elem)) = (param(q, "name"), param(q, "elem")) else {
                return err(400, "test needs name=SET and elem=ELEMENT");
            };
            let s = match named(n) {
                Ok(s) => s,
                Err(e) => return e,
            };
            match s.test_elem(elem, now) {
                Ok(hit) => (
                    200,
                    JSON,
                    json!({ "set": n, "elem": elem, "in": hit }).to_string() + "\n",
                ),
                Err(e) => err(400, format!("test {n} {elem}: {e}")),
            }
        }
        ("POST", "/api/v1/sets/restore") => {
            let exist = matches!(param(q, "exist"), Some("1" | "true"));
            let origin = param(q, "origin").unwrap_or("api");
            match rt.sets.restore(body, origin, now, exist) {
                Ok(n) => (200, JSON, json!({ "applied": n }).to_string() + "\n"),
                Err(e) => err(400, e),
            }
        }
        _ => err(404, format!("no route for {method} {path}")),
    }
}
