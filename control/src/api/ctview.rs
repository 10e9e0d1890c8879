//! Conntrack views for the API: filters with the `conntrack` tool's flags, `-L`
//! lines and JSON, delete/flush/count across every worker's shard. Every request runs
//! on the workers themselves through their command queues (no lock on the hot path).

use crate::runtime::Runtime;
use anyhow::{bail, Result};
use dataplane::conntrack::{CtStatus, EntryView, FlowKey, TcpState, Tuple};
use dataplane::packet::{from_ip, proto, to_ip, Family};
use serde_json::{json, Value};
use std::net::IpAddr;

/// An entry filter (all given fields must match; applied to the original tuple).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Protocol number.
    pub proto: Option<u8>,
    /// Original source address.
    pub src: Option<IpAddr>,
    /// Original destination address.
    pub dst: Option<IpAddr>,
    /// Original source port.
    pub sport: Option<u16>,
    /// Original destination port.
    pub dport: Option<u16>,
    /// TCP state name (ESTABLISHED, TIME_WAIT, ...).
    pub state: Option<String>,
    /// Status: ASSURED, SEEN_REPLY, UNREPLIED, EXPECTED.
    pub status: Option<String>,
    /// Source-NATed entries; with an address, those whose source was translated to it
    /// (the reply tuple's destination), as `conntrack --src-nat [IP]`.
    pub src_nat: Option<Option<IpAddr>>,
    /// Destination-NATed entries; with an address, those whose destination was
    /// translated to it (the reply tuple's source), as `conntrack --dst-nat [IP]`.
    pub dst_nat: Option<Option<IpAddr>>,
}

/// The value `v` of query parameter `k`, parsed; refused as "`k`: bad `what` `v`".
fn value<T: std::str::FromStr>(k: &str, v: &str, what: &str) -> Result<T> {
    v.parse()
        .map_err(|_| anyhow::anyhow!("{k}: bad {what} {v:?}"))
}

impl Filter {
    /// Builds a filter from query parameters; unknown keys are refused.
    pub fn from_query(q: &[(String, String)]) -> Result<Filter> {
        let mut f = Filter::default();
        for (k, v) in q {
            match k.as_str() {
                "format" => {}
                "proto" => {
                    f.proto = Some(
                        proto::parse(v)
                            .ok_or_else(|| anyhow::anyhow!("proto: unknown protocol {v:?}"))?,
                    )
                }
                "src" => f.src = Some(value(k, v, "address")?),
                "dst" => f.dst = Some(value(k, v, "address")?),
                "sport" => f.sport = Some(value(k, v, "port")?),
                "dport" => f.dport = Some(value(k, v, "port")?),
                "state" => f.state = Some(v.to_ascii_uppercase()),
                "status" => {
                    let s = v.to_ascii_uppercase();
                    if !["ASSURED", "SEEN_REPLY", "UNREPLIED", "EXPECTED"].contains(&s.as_str()) {
                        bail!("status: expected ASSURED, SEEN_REPLY, UNREPLIED or EXPECTED, got {v:?}");
                    }
                    f.status = Some(s);
                }
                "src_nat" | "dst_nat" => {
                    let a = if v.is_empty() {
                        None
                    } else {
                        Some(value(k, v, "address")?)
                    };
                    if k == "src_nat" {
                        f.src_nat = Some(a);
                    } else {
                        f.dst_nat = Some(a);
                    }
                }
                other => {
                    bail!("unknown filter {other:?} (proto, src, dst, sport, dport, state, status, src_nat, dst_nat)")
                }
            }
        }
        Ok(f)
    }

    /// True when `e` passes the filter.
    pub fn matches(&self, e: &EntryView) -> bool {
        let addr = |a: &[u8; 16]| to_ip(e.family, a);
        self.proto.is_none_or(|p| p == e.proto)
            && self.src.is_none_or(|a| a == addr(&e.orig.src))
            && self.dst.is_none_or(|a| a == addr(&e.orig.dst))
            && self
                .sport
                .is_none_or(|p| p == e.orig.sport && e.orig.icmp.is_none())
            && self
                .dport
                .is_none_or(|p| p == e.orig.dport && e.orig.icmp.is_none())
            && self.state.as_deref().is_none_or(|s| {
                // `conntrack -L --state`: the TCP or SCTP state name.
                e.tcp_state.map(|t| t.to_string() == s).unwrap_or(false)
                    || e.sctp_state.is_some_and(|t| t.name() == s)
            })
            && self.status.as_deref().is_none_or(|s| match s {
                "ASSURED" => e.status.has(CtStatus::ASSURED),
                "SEEN_REPLY" => e.status.has(CtStatus::SEEN_REPLY),
                "UNREPLIED" => !e.status.has(CtStatus::SEEN_REPLY),
                "EXPECTED" => e.status.has(CtStatus::EXPECTED),
                _ => false,
            })
            && self.src_nat.is_none_or(|a| {
                e.status.has(CtStatus::SRC_NAT) && a.is_none_or(|a| a == addr(&e.reply.dst))
            })
            && self.dst_nat.is_none_or(|a| {
                e.status.has(CtStatus::DST_NAT) && a.is_none_or(|a| a == addr(&e.reply.src))
            })
    }
}

fn tuple_json(fam: Family, t: &Tuple) -> Value {
    let mut v =
        json!({ "src": to_ip(fam, &t.src).to_string(), "dst": to_ip(fam, &t.dst).to_string() });
    match t.icmp {
        Some((ty, code, id)) => {
            v["type"] = json!(ty);
            v["code"] = json!(code);
            v["id"] = json!(id);
        }
        None => {
            v["sport"] = json!(t.sport);
            v["dport"] = json!(t.dport);
        }
    }
    v
}

/// One entry as JSON.
pub fn entry_json(e: &EntryView, worker: usize) -> Value {
    let mut status = Vec::new();
    if !e.status.has(CtStatus::SEEN_REPLY) {
        status.push("UNREPLIED");
    }
    if e.status.has(CtStatus::ASSURED) {
        status.push("ASSURED");
    }
    if e.status.has(CtStatus::EXPECTED) {
        status.push("EXPECTED");
    }
    if e.status.has(CtStatus::SRC_NAT) {
        status.push("SRC_NAT");
    }
    if e.status.has(CtStatus::DST_NAT) {
        status.push("DST_NAT");
    }
    json!({
        "family": if e.family == Family::V4 { "ipv4" } else { "ipv6" },
        "proto": e.proto,
        "timeout": e.timeout_secs,
        "tcp_state": e.tcp_state.map(|s: TcpState| s.to_string()),
        "sctp_state": e.sctp_state.map(|s| s.name()),
        "original": tuple_json(e.family, &e.orig),
        "reply": tuple_json(e.family, &e.reply),
        "status": status,
        "helper": e.helper.map(|_| "ftp"),
        "worker": worker,
    })
}

/// Table slots a worker walks per control command (a few hundred microseconds away
/// from its packets at most, however large the table).
pub const SCAN_STEP: usize = 16_384;

/// Walks every worker's table in steps of [`SCAN_STEP`] slots, one worker command per
/// step: `step(pipeline, now, from, out)` runs in the worker, appends what it finds to
/// `out` and returns where the next step starts ([`ConnTable::scan`]'s cursor). The
/// results are collected per worker. A `conntrack -L` of ten million entries thus never
/// holds a worker for the whole walk.
///
/// [`ConnTable::scan`]: dataplane::conntrack::ConnTable::scan
pub fn walk<T: Send + 'static>(
    rt: &Runtime,
    step: impl Fn(
            &mut dataplane::worker::Pipeline,
            dataplane::conntrack::Nanos,
            usize,
            &mut Vec<T>,
        ) -> Option<usize>
        + Send
        + Sync
        + 'static,
) -> Result<Vec<Vec<T>>> {
    let step = std::sync::Arc::new(step);
    let mut per = Vec::with_capacity(rt.workers.len());
    for w in 0..rt.workers.len() {
        let mut acc = Vec::new();
        let mut cursor = Some(0usize);
        while let Some(from) = cursor {
            let step = step.clone();
            let (items, next) = rt.on_worker(w, move |p, now| {
                let mut out = Vec::new();
                let next = step(p, now, from, &mut out);
                (out, next)
            })?;
            acc.extend(items);
            cursor = next;
        }
        per.push(acc);
    }
    Ok(per)
}

/// Lists matching entries: `conntrack -L` lines, or a JSON array.
pub fn list(rt: &Runtime, f: Filter, json: bool) -> Result<(&'static str, String)> {
    let per = walk(rt, move |p, now, from, out| {
        p.table_mut().scan(from, SCAN_STEP, now, |e| {
            if f.matches(&e) {
                out.push(e)
            }
        })
    })?;
    if json {
        let all: Vec<Value> = per
            .iter()
            .enumerate()
            .flat_map(|(w, es)| es.iter().map(move |e| entry_json(e, w)))
            .collect();
        return Ok(("application/json", serde_json::to_string(&all)? + "\n"));
    }
    let mut out = String::new();
    let mut n = 0;
    for es in &per {
        for e in es {
            out.push_str(&e.conntrack_line());
            out.push('\n');
            n += 1;
        }
    }
    out.push_str(&format!("statewall: {n} flow entries have been shown.\n"));
    Ok(("text/plain; charset=utf-8", out))
}

/// Counts matching entries (like `conntrack -C`).
pub fn count(rt: &Runtime, f: Filter) -> Result<(&'static str, String)> {
    let per = walk(rt, move |p, now, from, out: &mut Vec<()>| {
        p.table_mut().scan(from, SCAN_STEP, now, |e| {
            if f.matches(&e) {
                out.push(())
            }
        })
    })?;
    Ok((
        "text/plain; charset=utf-8",
        format!("{}\n", per.iter().map(Vec::len).sum::<usize>()),
    ))
}

fn key_of(e: &EntryView) -> Option<FlowKey> {
    match e.orig.icmp {
        Some((ty, code, id)) => FlowKey::icmp(e.family, e.orig.src, e.orig.dst, id, ty, code),
        None => Some(FlowKey::new(
            e.family,
            e.proto,
            e.orig.src,
            e.orig.sport,
            e.orig.dst,
            e.orig.dport,
        )),
    }
}

/// Deletes matching entries (like `conntrack -D`).
pub fn delete(rt: &Runtime, f: Filter) -> Result<(&'static str, String)> {
    let per = walk(rt, move |p, now, from, lines| {
        let mut victims = Vec::new();
        let next = p.table_mut().scan(from, SCAN_STEP, now, |e| {
            if f.matches(&e) {
                victims.push(e)
            }
        });
        for e in victims {
            if let Some(k) = key_of(&e) {
                if p.table_mut().delete(&k) {
                    lines.push(e.conntrack_line());
                }
            }
        }
        next
    })?;
    let n: usize = per.iter().map(|v| v.len()).sum();
    let mut out = per.into_iter().flatten().collect::<Vec<_>>().join("\n");
    if n > 0 {
        out.push('\n');
    }
    out.push_str(&format!("statewall: {n} flow entries have been deleted.\n"));
    Ok(("text/plain; charset=utf-8", out))
}

/// Deletes every entry (like `conntrack -F`); returns how many there were.
pub fn flush(rt: &Runtime) -> Result<usize> {
    // In steps, like a listing: a flush of millions of entries never holds a worker.
    let per = walk(rt, |p, _, from, out: &mut Vec<usize>| {
        let (n, next) = p.table_mut().flush_step(from, SCAN_STEP);
        out.push(n);
        next
    })?
    .into_iter()
    .map(|v| v.into_iter().sum::<usize>())
    .collect::<Vec<_>>();
    Ok(per.iter().sum())
}

/// Expectations (like `conntrack -L expect`).
pub fn expectations(rt: &Runtime) -> Result<String> {
    let list = rt.expect.list(rt.clock.now());
    let mut out = String::new();
    for e in &list {
        out.push_str(&e.conntrack_line());
        out.push('\n');
    }
    out.push_str(&format!(
        "statewall: {} expectations have been shown.\n",
        list.len()
    ));
    Ok(out)
}

/// Parses an address into the table's form.
pub fn addr(ip: IpAddr) -> (Family, [u8; 16]) {
    from_ip(ip)
}

#[cfg(test)]
mod nat_filter_tests {
    use super::*;
    use dataplane::conntrack::nat::range_flags;
    use dataplane::conntrack::{Config, ConnTable, NatRange, NatRequest, TrackOpts};
    use dataplane::packet::build::PacketSpec;
    use dataplane::packet::Frame;

    #[test]
    fn src_nat_and_dst_nat_filters_and_json_status() {
        let mut t = ConnTable::new(64, Config::default());
        let f = PacketSpec::udp(
            "10.0.0.2:1234".parse().unwrap(),
            "198.51.100.9:53".parse().unwrap(),
        )
        .to_vec();
        let Ok(Frame::Ip(p)) = dataplane::packet::parse(&f) else {
            panic!()
        };
        let now = 1_000_000_000;
        let tr = t.track(&f, &p, now, TrackOpts::default());
        let pub_ip = from_ip("192.0.2.1".parse().unwrap()).1;
        let req = NatRequest {
            dst: None,
            src: Some(NatRange {
                flags: range_flags::MAP_IPS,
                min_addr: pub_ip,
                max_addr: pub_ip,
                ..Default::default()
            }),
        };
        t.bind_nat(tr.handle.unwrap(), &req, now, |_| true).unwrap();
        assert!(t.confirm(&tr, true, &f, &p, now).is_pass());
        let e = t.iter(now).next().unwrap();
        let q = |k: &str, v: &str| {
            Filter::from_query(&[(k.to_string(), v.to_string())])
                .unwrap()
                .matches(&e)
        };
        assert!(q("src_nat", ""));
        assert!(q("src_nat", "192.0.2.1"));
        assert!(!q("src_nat", "192.0.2.2"));
        assert!(!q("dst_nat", ""));
        assert!(Filter::from_query(&[("src_nat".into(), "x".into())]).is_err());
        let j = entry_json(&e, 0);
        assert_eq!(j["reply"]["dst"], "192.0.2.1");
        assert!(j["status"].as_array().unwrap().contains(&json!("SRC_NAT")));
    }
}
