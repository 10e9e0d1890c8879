//! Set elements as ipset writes them (`10.0.0.1`, `10.0.0.0/8`, `10.0.0.1,tcp:80`,
//! `2001:db8::/32,udp:53`, `80-90`), parsed into the [`Key`]s a set stores. Ranges and
//! CIDRs of a hash:ip set and port ranges expand to one key each, as ipset does.
//! Control-plane code: allocates freely.

use super::{Family, FamilyExt, SetType};
use crate::packet::proto;
use std::net::IpAddr;

/// One stored element: an address (IPv4 in the top 32 bits) with its prefix length, and
/// a protocol and port (0 where the type has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The address, masked to `cidr` bits (big-endian in a u128, IPv4 in the top bits).
    pub addr: u128,
    /// The prefix length (the family's width for a host; 0 for bitmap:port).
    pub cidr: u8,
    /// The IP protocol of a `,port` element (0 when none).
    pub proto: u8,
    /// The port (ICMP: `type << 8 | code`).
    pub port: u16,
}

/// The mask of the first `bits` bits of a `width`-bit address in the u128 layout.
pub fn prefix(bits: u8, family: Family) -> u128 {
    let width = family.width();
    if bits == 0 {
        return 0;
    }
    let m = if bits >= 128 {
        u128::MAX
    } else {
        !(u128::MAX >> bits)
    };
    if width == 32 {
        m & (u128::MAX << 96)
    } else {
        m
    }
}

fn parse_ip(s: &str, family: Family) -> Result<u128, String> {
    let ip: IpAddr = s.parse().map_err(|_| format!("bad address \"{s}\""))?;
    match (ip, family) {
        (IpAddr::V4(a), Family::V4) => Ok((u32::from(a) as u128) << 96),
        (IpAddr::V6(a), Family::V6) => Ok(u128::from(a)),
        _ => Err(format!(
            "address \"{s}\" is not of the set's family ({})",
            family.name()
        )),
    }
}

/// Splits `lo..=hi` (host addresses) into the fewest CIDR blocks.
fn range_to_cidrs(lo: u128, hi: u128, family: Family, out: &mut Vec<(u128, u8)>) {
    let width = family.width() as u32;
    let shift = 128 - width;
    let (mut lo, hi) = (lo >> shift, hi >> shift);
    loop {
        // The largest block starting at lo that stays within hi.
        let mut size = if lo == 0 {
            width
        } else {
            lo.trailing_zeros().min(width)
        };
        while size > 0 && lo + ((1u128 << size) - 1) > hi {
            size -= 1;
        }
        out.push((lo << shift, (width - size) as u8));
        let next = lo + ((1u128 << size) - 1);
        if next >= hi {
            break;
        }
        lo = next + 1;
    }
}

/// An address part: `a`, `a/cidr` or `a-b` as (network, cidr) blocks.
fn parse_addr_part(
    s: &str,
    family: Family,
    net: bool,
    netmask: u8,
    out: &mut Vec<(u128, u8)>,
) -> Result<(), String> {
    let width = family.width();
    if let Some((a, b)) = s.split_once('-') {
        let (lo, hi) = (parse_ip(a, family)?, parse_ip(b, family)?);
        if lo > hi {
            return Err(format!("range \"{s}\" runs backwards"));
        }
        range_to_cidrs(lo, hi, family, out);
    } else if let Some((a, c)) = s.split_once('/') {
        let cidr: u8 = c
            .parse()
            .ok()
            .filter(|&c| c <= width)
            .ok_or_else(|| format!("bad prefix length \"/{c}\""))?;
        if net && cidr == 0 {
            return Err("a zero prefix length is not allowed in a hash:net set".into());
        }
        let addr = parse_ip(a, family)?;
        out.push((addr & prefix(cidr, family), cidr));
    } else {
        out.push((parse_ip(s, family)?, width));
    }
    if !net {
        // hash:ip stores hosts (masked by the set's netmask): expand the blocks.
        let nm = netmask.clamp(1, width);
        let blocks = std::mem::take(out);
        for (addr, cidr) in blocks {
            let base = addr & prefix(nm, family);
            if cidr >= nm {
                out.push((base, nm));
                continue;
            }
            let count = 1u128 << (nm - cidr).min(100);
            if out.len() as u128 + count > super::MAX_EXPAND as u128 {
                return Err(format!(
                    "\"{s}\" expands to more than {} elements",
                    super::MAX_EXPAND
                ));
            }
            let unit = 1u128 << (128 - nm as u32);
            for i in 0..count {
                out.push((base + i * unit, nm));
            }
        }
    }
    Ok(())
}

fn proto_by_name(s: &str) -> Option<u8> {
    match s {
        "tcp" => Some(proto::TCP),
        "udp" => Some(proto::UDP),
        "icmp" => Some(proto::ICMP),
        "icmpv6" | "ipv6-icmp" => Some(proto::ICMPV6),
        "sctp" => Some(132),
        "udplite" => Some(136),
        _ => s.parse().ok(),
    }
}

/// A port part: `80`, `tcp:80`, `udp:1000-2000`, `icmp:8/0`, `icmp:echo-request`.
fn parse_port_part(s: &str, out: &mut Vec<(u8, u16)>) -> Result<(), String> {
    let (p, ports) = match s.split_once(':') {
        Some((p, rest)) => (
            proto_by_name(p).ok_or_else(|| format!("unknown protocol \"{p}\""))?,
            rest,
        ),
        None => (proto::TCP, s),
    };
    if p == proto::ICMP || p == proto::ICMPV6 {
        let (ty, code) = match ports {
            "echo-request" if p == proto::ICMP => (8, 0),
            "echo-reply" if p == proto::ICMP => (0, 0),
            "echo-request" => (128, 0),
            "echo-reply" => (129, 0),
            _ => {
                let (t, c) = ports
                    .split_once('/')
                    .ok_or_else(|| format!("bad ICMP type/code \"{ports}\""))?;
                let t: u8 = t.parse().map_err(|_| format!("bad ICMP type \"{t}\""))?;
                let c: u8 = c.parse().map_err(|_| format!("bad ICMP code \"{c}\""))?;
                (t, c)
            }
        };
        out.push((p, (ty as u16) << 8 | code as u16));
        return Ok(());
    }
    let (lo, hi) = parse_port_range(ports)?;
    let carries_ports = matches!(p, proto::TCP | proto::UDP | 132 | 136);
    if !carries_ports {
        if lo != 0 || hi != 0 {
            return Err(format!("protocol {p} has no ports (write \"{p}:0\")"));
        }
        out.push((p, 0));
        return Ok(());
    }
    for port in lo..=hi {
        out.push((p, port));
    }
    Ok(())
}

/// `80` or `80-90` (ipset also writes `80:90` in some versions... not accepted: `:` is
/// the protocol separator).
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let one = |x: &str| x.parse::<u16>().map_err(|_| format!("bad port \"{x}\""));
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(format!("port range \"{s}\" runs backwards"));
            }
            Ok((a, b))
        }
        None => {
            let p = one(s)?;
            Ok((p, p))
        }
    }
}

/// What a set's type needs to read an element.
#[derive(Debug, Clone, Copy)]
pub struct ElemSpec {
    /// The set's type.
    pub ty: SetType,
    /// Its family.
    pub family: Family,
    /// hash:ip's `netmask` (the family's width when none).
    pub netmask: u8,
    /// bitmap:port's range.
    pub range: (u16, u16),
}

/// Parses one element (without its options) into the keys it stands for.
pub fn parse_elem(s: &str, spec: &ElemSpec) -> Result<Vec<Key>, String> {
    let mut keys = Vec::new();
    let mut addrs = Vec::new();
    let mut ports = Vec::new();
    match spec.ty {
        SetType::HashIp | SetType::HashNet => {
            if s.contains(',') {
                return Err(format!(
                    "element \"{s}\" has two parts; {} takes one",
                    spec.ty.name()
                ));
            }
            let net = spec.ty == SetType::HashNet;
            parse_addr_part(s, spec.family, net, spec.netmask, &mut addrs)?;
            ports.push((0, 0));
        }
        SetType::HashIpPort | SetType::HashNetPort => {
            let (a, p) = s
                .split_once(',')
                .ok_or_else(|| format!("element \"{s}\" needs \"address,port\""))?;
            let net = spec.ty == SetType::HashNetPort;
            let netmask = spec.family.width();
            parse_addr_part(a, spec.family, net, netmask, &mut addrs)?;
            parse_port_part(p, &mut ports)?;
        }
        SetType::BitmapPort => {
            let (lo, hi) = parse_port_range(s)?;
            if lo < spec.range.0 || hi > spec.range.1 {
                return Err(format!(
                    "port \"{s}\" is outside the set's range {}-{}",
                    spec.range.0, spec.range.1
                ));
            }
            for p in lo..=hi {
                keys.push(Key {
                    addr: 0,
                    cidr: 0,
                    proto: 0,
                    port: p,
                });
            }
            return Ok(keys);
        }
        SetType::ListSet => return Err("list:set elements are set names".into()),
    }
    if addrs.len() * ports.len() > super::MAX_EXPAND {
        return Err(format!(
            "\"{s}\" expands to more than {} elements",
            super::MAX_EXPAND
        ));
    }
    for &(addr, cidr) in &addrs {
        for &(proto, port) in &ports {
            keys.push(Key {
                addr,
                cidr,
                proto,
                port,
            });
        }
    }
    Ok(keys)
}

/// Writes a key back as ipset prints it.
pub fn format_key(k: &Key, spec: &ElemSpec) -> String {
    let addr = || -> String {
        match spec.family {
            Family::V4 => std::net::Ipv4Addr::from((k.addr >> 96) as u32).to_string(),
            Family::V6 => std::net::Ipv6Addr::from(k.addr).to_string(),
        }
    };
    let port = || -> String {
        match k.proto {
            proto::TCP => format!("tcp:{}", k.port),
            proto::UDP => format!("udp:{}", k.port),
            132 => format!("sctp:{}", k.port),
            136 => format!("udplite:{}", k.port),
            proto::ICMP => format!("icmp:{}/{}", k.port >> 8, k.port & 0xff),
            proto::ICMPV6 => format!("icmpv6:{}/{}", k.port >> 8, k.port & 0xff),
            p => format!("{p}:0"),
        }
    };
    let width = spec.family.width();
    match spec.ty {
        SetType::HashIp if spec.netmask == width => addr(),
        SetType::HashIp => format!("{}/{}", addr(), k.cidr),
        SetType::HashNet if k.cidr == width => addr(),
        SetType::HashNet => format!("{}/{}", addr(), k.cidr),
        SetType::HashIpPort => format!("{},{}", addr(), port()),
        SetType::HashNetPort if k.cidr == width => format!("{},{}", addr(), port()),
        SetType::HashNetPort => format!("{}/{},{}", addr(), k.cidr, port()),
        SetType::BitmapPort => k.port.to_string(),
        SetType::ListSet => String::new(),
    }
}
