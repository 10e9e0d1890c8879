//! The options of the nat-table targets (`iptables-extensions`(8)): SNAT
//! `--to-source [ipaddr[-ipaddr]][:port[-port]]` (IPv6: `[addr]:port`), DNAT
//! `--to-destination` likewise, MASQUERADE and REDIRECT `--to-ports port[-port]`,
//! NETMAP `--to address[/mask]`, and the flags `--random`, `--random-fully`,
//! `--persistent` where each target takes them.

use super::super::lex::Tok;
use super::super::values::{parse_port, prefix_mask};
use super::{Res, RuleParser};
use crate::packet::{Addr, Family};
use crate::ruleset::nat::{NatKind, NatTarget, F_PERSISTENT, F_RANDOM, F_RANDOM_FULLY};
use std::net::IpAddr;

/// A NAT target's options as read so far.
#[derive(Default)]
pub(super) struct NatDraft {
    /// `--to-source`/`--to-destination`/`--to-ports`/`--to` given (its column).
    to: Option<usize>,
    addrs: Option<(Addr, Addr)>,
    ports: Option<(u16, u16)>,
    netmap: Option<(Addr, u8)>,
    flags: u8,
}

/// The NAT kind of a target name.
pub(super) fn kind_of(name: &str) -> Option<NatKind> {
    Some(match name {
        "SNAT" => NatKind::Snat,
        "DNAT" => NatKind::Dnat,
        "MASQUERADE" => NatKind::Masquerade,
        "REDIRECT" => NatKind::Redirect,
        "NETMAP" => NatKind::Netmap,
        _ => return None,
    })
}

/// True when `opt` is an option of the NAT target `kind`.
pub(super) fn accepts(kind: NatKind, opt: &str) -> bool {
    match kind {
        NatKind::Snat => matches!(
            opt,
            "--to-source" | "--random" | "--random-fully" | "--persistent"
        ),
        NatKind::Dnat => matches!(opt, "--to-destination" | "--random" | "--persistent"),
        NatKind::Masquerade => matches!(opt, "--to-ports" | "--random" | "--random-fully"),
        NatKind::Redirect => matches!(opt, "--to-ports" | "--random"),
        NatKind::Netmap => opt == "--to",
    }
}

fn addr_of(ip: IpAddr) -> (Family, Addr) {
    let mut a = [0u8; 16];
    match ip {
        IpAddr::V4(v) => {
            a[..4].copy_from_slice(&v.octets());
            (Family::V4, a)
        }
        IpAddr::V6(v) => (Family::V6, v.octets()),
    }
}

fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let lo = parse_port(a)?;
    let hi = parse_port(b)?;
    if lo == 0 || hi == 0 {
        return Err(format!("port \"{s}\" not valid (ports are 1..65535)"));
    }
    if lo > hi {
        return Err(format!("bad port range \"{s}\" (the first port is larger)"));
    }
    Ok((lo, hi))
}

/// An address range's two ends as written, and the port part, of a `--to-*` value.
type ToParts<'a> = (Option<(String, String)>, Option<&'a str>);

/// Splits `[a]-[b]:p-q`, `a-b:p-q`, `a`, `:p` into (address part, port part).
fn split_to(s: &str) -> Result<ToParts<'_>, String> {
    let (addr, ports) = if let Some(rest) = s.strip_prefix('[') {
        // [a] or [a]-[b], then maybe :ports
        let (a, rest) = rest
            .split_once(']')
            .ok_or_else(|| format!("bad address \"{s}\" (missing \"]\")"))?;
        let (b, rest) = match rest.strip_prefix("-[") {
            Some(r) => {
                let (b, r) = r
                    .split_once(']')
                    .ok_or_else(|| format!("bad address \"{s}\" (missing \"]\")"))?;
                (b, r)
            }
            None => (a, rest),
        };
        let ports = match rest {
            "" => None,
            r => Some(
                r.strip_prefix(':')
                    .ok_or_else(|| format!("bad value \"{s}\""))?,
            ),
        };
        (Some((a.to_string(), b.to_string())), ports)
    } else if s.matches(':').count() > 1 {
        // A bare IPv6 address or range: no ports.
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        (Some((a.to_string(), b.to_string())), None)
    } else {
        let (a, p) = match s.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = if a.is_empty() {
            None
        } else {
            let (x, y) = a.split_once('-').unwrap_or((a, a));
            Some((x.to_string(), y.to_string()))
        };
        (addr, p)
    };
    Ok((addr, ports))
}

impl RuleParser<'_> {
    fn has_port_proto(&self) -> bool {
        matches!(self.proto, Some((6 | 17 | 132 | 33, false)))
    }

    /// Reads one option of the NAT target `kind` (already known to be one of its).
    pub(super) fn nat_option(&mut self, kind: NatKind, tok: &Tok) -> Res<()> {
        let o = tok.s.as_str();
        let flag = match o {
            "--random" => Some(F_RANDOM),
            "--random-fully" => Some(F_RANDOM_FULLY),
            "--persistent" => Some(F_PERSISTENT),
            _ => None,
        };
        if let Some(f) = flag {
            self.nat.flags |= f;
            return Ok(());
        }
        let v = self.value(tok, &mut None, false)?;
        if self.nat.to.is_some() {
            return Err(self.err(
                tok.col,
                format!(
                    "option \"{o}\" given twice (one range per rule; write one rule per range)"
                ),
            ));
        }
        self.nat.to = Some(tok.col);
        let port_err = |me: &Self| {
            me.err(
                v.col,
                "a port needs \"-p tcp\", \"-p udp\", \"-p sctp\" or \"-p dccp\" before it",
            )
        };
        match kind {
            NatKind::Masquerade | NatKind::Redirect => {
                if !self.has_port_proto() {
                    return Err(port_err(self));
                }
                let r = parse_ports(&v.s).map_err(|m| self.err(v.col, m))?;
                self.nat.ports = Some(r);
            }
            NatKind::Netmap => {
                let (a, len) = match v.s.split_once('/') {
                    Some((a, l)) => (a, Some(l)),
                    None => (v.s.as_str(), None),
                };
                let ip: IpAddr = a
                    .parse()
                    .map_err(|_| self.err(v.col, format!("bad address \"{a}\"")))?;
                let (fam, addr) = addr_of(ip);
                self.r.set_family(fam, v.col, &format!("address \"{a}\""))?;
                let width = if fam == Family::V4 { 32 } else { 128 };
                let len = match len {
                    None => width,
                    Some(l) => match l.parse::<u32>() {
                        Ok(n) if n <= width => n,
                        _ => {
                            // A dotted mask: must be contiguous.
                            let m: IpAddr = l
                                .parse()
                                .map_err(|_| self.err(v.col, format!("bad mask \"/{l}\"")))?;
                            let (mf, mb) = addr_of(m);
                            let bits = u128::from_be_bytes(mb);
                            let n = bits.leading_ones();
                            if mf != fam || prefix_mask(n, width) != bits {
                                return Err(self.err(v.col, format!("bad mask \"/{l}\"")));
                            }
                            n
                        }
                    },
                };
                let net = u128::from_be_bytes(addr) & prefix_mask(len, width);
                self.nat.netmap = Some((net.to_be_bytes(), len as u8));
            }
            NatKind::Snat | NatKind::Dnat => {
                let (addr, ports) = split_to(&v.s).map_err(|m| self.err(v.col, m))?;
                if let Some((a, b)) = addr {
                    let pa: IpAddr = a
                        .parse()
                        .map_err(|_| self.err(v.col, format!("bad address \"{a}\"")))?;
                    let pb: IpAddr = b
                        .parse()
                        .map_err(|_| self.err(v.col, format!("bad address \"{b}\"")))?;
                    let (fa, aa) = addr_of(pa);
                    let (fb, ab) = addr_of(pb);
                    if fa != fb {
                        return Err(self.err(v.col, format!("bad address range \"{}\"", v.s)));
                    }
                    if u128::from_be_bytes(aa) > u128::from_be_bytes(ab) {
                        return Err(self.err(
                            v.col,
                            format!("bad address range \"{}\" (the first is larger)", v.s),
                        ));
                    }
                    self.r.set_family(fa, v.col, &format!("address \"{a}\""))?;
                    self.nat.addrs = Some((aa, ab));
                }
                if let Some(p) = ports {
                    if !self.has_port_proto() {
                        return Err(port_err(self));
                    }
                    if p.contains('/') {
                        return Err(self.err(
                            v.col,
                            "a port range with a base port (\"/port\") is not supported",
                        ));
                    }
                    let r = parse_ports(p).map_err(|m| self.err(v.col, m))?;
                    self.nat.ports = Some(r);
                }
                if self.nat.addrs.is_none() && self.nat.ports.is_none() {
                    return Err(self.err(v.col, format!("bad value \"{}\"", v.s)));
                }
            }
        }
        Ok(())
    }

    /// The compiled target of a NAT rule, with its required options checked.
    pub(super) fn nat_target(&self, kind: NatKind, col: usize) -> Res<NatTarget> {
        let need = |opt: &str| self.err(col, format!("{} needs option \"{opt}\"", kind.name()));
        match kind {
            NatKind::Snat if self.nat.to.is_none() => return Err(need("--to-source")),
            NatKind::Dnat if self.nat.to.is_none() => return Err(need("--to-destination")),
            NatKind::Netmap if self.nat.to.is_none() => return Err(need("--to")),
            _ => {}
        }
        Ok(NatTarget {
            kind,
            addrs: self.nat.addrs,
            ports: self.nat.ports,
            netmap: self.nat.netmap,
            flags: self.nat.flags,
        })
    }
}
