//! The value parsers of the rule language: ports, port lists, TCP flags, ICMP types,
//! conntrack states and statuses, rates, REJECT types, LOG levels, interfaces.

use crate::conntrack::CtStatus;
use crate::packet::{tcp_flags, Family};
use crate::ruleset::{state_bits, Iface, RejectKind};

pub(super) fn prefix_mask(n: u32, width: u32) -> u128 {
    let top = if n == 0 { 0 } else { u128::MAX << (128 - n) };
    if width == 32 {
        top & (u128::from(u32::MAX) << 96)
    } else {
        top
    }
}

pub(super) fn parse_iface(s: &str) -> Result<Iface, String> {
    let (name, prefix) = match s.strip_suffix('+') {
        Some(n) => (n, true),
        None => (s, false),
    };
    if s.len() > 15 {
        return Err(format!(
            "interface name \"{s}\" is longer than 15 characters"
        ));
    }
    if name.contains(['/', ' ']) || (!prefix && name.is_empty()) {
        return Err(format!("bad interface name \"{s}\""));
    }
    Ok(Iface {
        name: name.to_string(),
        prefix,
    })
}

/// A few service names (iptables resolves them with /etc/services; saves write numbers).
pub(super) fn parse_port(s: &str) -> Result<u16, String> {
    if let Ok(p) = s.parse::<u16>() {
        return Ok(p);
    }
    Ok(match s {
        "ftp-data" => 20,
        "ftp" => 21,
        "ssh" => 22,
        "telnet" => 23,
        "smtp" => 25,
        "domain" => 53,
        "bootps" => 67,
        "bootpc" => 68,
        "tftp" => 69,
        "http" | "www" => 80,
        "pop3" => 110,
        "ntp" => 123,
        "imap" | "imap2" => 143,
        "snmp" => 161,
        "bgp" => 179,
        "ldap" => 389,
        "https" => 443,
        "submission" => 587,
        "imaps" => 993,
        "pop3s" => 995,
        "openvpn" => 1194,
        "mysql" => 3306,
        "postgresql" => 5432,
        _ => return Err(format!("bad port \"{s}\"")),
    })
}

pub(super) fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    match s.split_once(':') {
        None => {
            let p = parse_port(s)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            let lo = if a.is_empty() { 0 } else { parse_port(a)? };
            let hi = if b.is_empty() { 65535 } else { parse_port(b)? };
            if lo > hi {
                return Err(format!("invalid port range \"{s}\" (min > max)"));
            }
            Ok((lo, hi))
        }
    }
}

pub(super) fn parse_multiport(s: &str) -> Result<Vec<(u16, u16)>, String> {
    let mut out = Vec::new();
    let mut count = 0;
    for part in s.split(',') {
        if part.is_empty() {
            return Err(format!("bad port list \"{s}\""));
        }
        match part.split_once(':') {
            None => {
                let p = parse_port(part)?;
                out.push((p, p));
                count += 1;
            }
            Some((a, b)) => {
                let (lo, hi) = (parse_port(a)?, parse_port(b)?);
                if lo > hi {
                    return Err(format!("invalid port range \"{part}\" (min > max)"));
                }
                out.push((lo, hi));
                count += 2;
            }
        }
    }
    if count > 15 {
        return Err(format!(
            "too many ports in \"{s}\" (at most 15, a range counts as 2)"
        ));
    }
    Ok(out)
}

/// The bit called `n` (upper case) in a name table.
fn bit<T: Copy>(names: &[(T, &str)], n: &str) -> Option<T> {
    names.iter().find(|(_, x)| *x == n).map(|&(b, _)| b)
}

pub(super) fn parse_tcp_flags(s: &str) -> Result<u8, String> {
    let mut f = 0u8;
    for n in s.split(',') {
        f |= match n.to_ascii_uppercase().as_str() {
            "ALL" => tcp_flags::NAMES.iter().fold(0, |a, &(b, _)| a | b),
            "NONE" => 0,
            u => bit(tcp_flags::NAMES, u).ok_or_else(|| format!("unknown TCP flag \"{n}\""))?,
        };
    }
    Ok(f)
}

pub(super) const ICMP_NAMES: &[(&str, u8, u8, u8)] = &[
    ("echo-reply", 0, 0, 0xff),
    ("pong", 0, 0, 0xff),
    ("destination-unreachable", 3, 0, 0xff),
    ("network-unreachable", 3, 0, 0),
    ("host-unreachable", 3, 1, 1),
    ("protocol-unreachable", 3, 2, 2),
    ("port-unreachable", 3, 3, 3),
    ("fragmentation-needed", 3, 4, 4),
    ("source-route-failed", 3, 5, 5),
    ("network-unknown", 3, 6, 6),
    ("host-unknown", 3, 7, 7),
    ("network-prohibited", 3, 9, 9),
    ("host-prohibited", 3, 10, 10),
    ("TOS-network-unreachable", 3, 11, 11),
    ("TOS-host-unreachable", 3, 12, 12),
    ("communication-prohibited", 3, 13, 13),
    ("host-precedence-violation", 3, 14, 14),
    ("precedence-cutoff", 3, 15, 15),
    ("source-quench", 4, 0, 0xff),
    ("redirect", 5, 0, 0xff),
    ("network-redirect", 5, 0, 0),
    ("host-redirect", 5, 1, 1),
    ("TOS-network-redirect", 5, 2, 2),
    ("TOS-host-redirect", 5, 3, 3),
    ("echo-request", 8, 0, 0xff),
    ("ping", 8, 0, 0xff),
    ("router-advertisement", 9, 0, 0xff),
    ("router-solicitation", 10, 0, 0xff),
    ("time-exceeded", 11, 0, 0xff),
    ("ttl-exceeded", 11, 0, 0xff),
    ("ttl-zero-during-transit", 11, 0, 0),
    ("ttl-zero-during-reassembly", 11, 1, 1),
    ("parameter-problem", 12, 0, 0xff),
    ("ip-header-bad", 12, 0, 0),
    ("required-option-missing", 12, 1, 1),
    ("timestamp-request", 13, 0, 0xff),
    ("timestamp-reply", 14, 0, 0xff),
    ("address-mask-request", 17, 0, 0xff),
    ("address-mask-reply", 18, 0, 0xff),
];

pub(super) const ICMP6_NAMES: &[(&str, u8, u8, u8)] = &[
    ("destination-unreachable", 1, 0, 0xff),
    ("no-route", 1, 0, 0),
    ("communication-prohibited", 1, 1, 1),
    ("beyond-scope", 1, 2, 2),
    ("address-unreachable", 1, 3, 3),
    ("port-unreachable", 1, 4, 4),
    ("failed-policy", 1, 5, 5),
    ("reject-route", 1, 6, 6),
    ("packet-too-big", 2, 0, 0xff),
    ("time-exceeded", 3, 0, 0xff),
    ("ttl-exceeded", 3, 0, 0xff),
    ("ttl-zero-during-transit", 3, 0, 0),
    ("ttl-zero-during-reassembly", 3, 1, 1),
    ("parameter-problem", 4, 0, 0xff),
    ("bad-header", 4, 0, 0),
    ("unknown-header-type", 4, 1, 1),
    ("unknown-option", 4, 2, 2),
    ("echo-request", 128, 0, 0xff),
    ("ping", 128, 0, 0xff),
    ("echo-reply", 129, 0, 0xff),
    ("pong", 129, 0, 0xff),
    ("mld-listener-query", 130, 0, 0xff),
    ("mld-listener-report", 131, 0, 0xff),
    ("mld-listener-done", 132, 0, 0xff),
    ("mld-listener-reduction", 132, 0, 0xff),
    ("router-solicitation", 133, 0, 0xff),
    ("router-advertisement", 134, 0, 0xff),
    ("neighbour-solicitation", 135, 0, 0xff),
    ("neighbor-solicitation", 135, 0, 0xff),
    ("neighbour-advertisement", 136, 0, 0xff),
    ("neighbor-advertisement", 136, 0, 0xff),
    ("redirect", 137, 0, 0xff),
];

/// `TYPE[/CODE]` or a name; returns (type, code_lo, code_hi, any).
pub(super) fn parse_icmp_type(s: &str, v6: bool) -> Option<(u8, u8, u8, bool)> {
    if !v6 && s.eq_ignore_ascii_case("any") {
        return Some((0xff, 0, 0xff, true));
    }
    let names = if v6 { ICMP6_NAMES } else { ICMP_NAMES };
    if let Some(&(_, t, lo, hi)) = names.iter().find(|n| n.0.eq_ignore_ascii_case(s)) {
        return Some((t, lo, hi, false));
    }
    match s.split_once('/') {
        None => Some((s.parse().ok()?, 0, 0xff, false)),
        Some((t, c)) => {
            let c: u8 = c.parse().ok()?;
            Some((t.parse().ok()?, c, c, false))
        }
    }
}

pub(super) fn parse_states(s: &str, conntrack: bool) -> Result<u16, String> {
    let mut m = 0;
    for n in s.split(',') {
        m |= match bit(state_bits::NAMES, &n.to_ascii_uppercase()) {
            Some(b) if conntrack || b & (state_bits::SNAT | state_bits::DNAT) == 0 => b,
            _ => return Err(format!("bad state \"{n}\"")),
        };
    }
    Ok(m)
}

pub(super) fn parse_status(s: &str) -> Result<u8, String> {
    let mut m = 0;
    for n in s.split(',') {
        m |= match n.to_ascii_uppercase().as_str() {
            "NONE" => 0,
            u => bit(CtStatus::NAMES, u).ok_or_else(|| format!("bad ctstatus \"{n}\""))?,
        };
    }
    Ok(m)
}

/// `N/unit` (unit a prefix of second, minute, hour, day) -> (N, unit, ns per token).
pub(super) fn parse_rate(s: &str) -> Result<(u32, &'static str, u64), String> {
    let (n, unit) = s.split_once('/').unwrap_or((s, "second"));
    let n: u32 = n
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("bad rate \"{s}\""))?;
    let u = unit.to_ascii_lowercase();
    let (name, secs) = [
        ("second", 1u64),
        ("minute", 60),
        ("hour", 3600),
        ("day", 86400),
    ]
    .into_iter()
    .find(|(name, _)| !u.is_empty() && name.starts_with(u.as_str()))
    .ok_or_else(|| format!("bad rate unit in \"{s}\" (second, minute, hour or day)"))?;
    let interval = secs * 1_000_000_000 / n as u64;
    if interval < 100_000 {
        return Err(format!("rate \"{s}\" too fast (at most 10000/second)"));
    }
    let short = match name {
        "second" => "sec",
        "minute" => "min",
        other => other,
    };
    Ok((n, short, interval))
}

pub(super) fn parse_reject(s: &str) -> Option<(RejectKind, Option<Family>)> {
    use RejectKind::*;
    let v4 = Some(Family::V4);
    let v6 = Some(Family::V6);
    Some(match s {
        "icmp-net-unreachable" => (IcmpNetUnreachable, v4),
        "icmp-host-unreachable" => (IcmpHostUnreachable, v4),
        "icmp-port-unreachable" => (IcmpPortUnreachable, v4),
        "icmp-proto-unreachable" => (IcmpProtoUnreachable, v4),
        "icmp-net-prohibited" => (IcmpNetProhibited, v4),
        "icmp-host-prohibited" => (IcmpHostProhibited, v4),
        "icmp-admin-prohibited" => (IcmpAdminProhibited, v4),
        "icmp6-no-route" | "no-route" => (Icmp6NoRoute, v6),
        "icmp6-adm-prohibited" | "adm-prohibited" => (Icmp6AdmProhibited, v6),
        "icmp6-addr-unreachable" | "addr-unreach" => (Icmp6AddrUnreachable, v6),
        "icmp6-port-unreachable" | "port-unreach" => (Icmp6PortUnreachable, v6),
        "tcp-reset" => (TcpReset, None),
        _ => return None,
    })
}

/// `-m addrtype` types: a comma list of names.
pub(super) fn parse_addr_types(s: &str) -> Result<u16, String> {
    let mut m = 0;
    for n in s.split(',') {
        let u = n.to_ascii_uppercase();
        match crate::ruleset::addr_types::NAMES.iter().find(|(_, x)| *x == u) {
            Some((b, _)) => m |= b,
            None if matches!(
                u.as_str(),
                "BLACKHOLE" | "UNREACHABLE" | "PROHIBIT" | "THROW" | "NAT" | "XRESOLVE"
            ) =>
            {
                return Err(format!("address type \"{n}\" is not supported (UNSPEC, UNICAST, LOCAL, BROADCAST, ANYCAST, MULTICAST)"))
            }
            None => return Err(format!("unknown address type \"{n}\"")),
        }
    }
    Ok(m)
}

pub(super) fn parse_log_level(s: &str) -> Option<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return (n <= 7).then_some(n);
    }
    Some(match s {
        "emerg" | "panic" => 0,
        "alert" => 1,
        "crit" => 2,
        "err" | "error" => 3,
        "warning" | "warn" => 4,
        "notice" => 5,
        "info" => 6,
        "debug" => 7,
        _ => return None,
    })
}
