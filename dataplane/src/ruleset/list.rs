//! Control-plane views of a ruleset: the canonical rule text (`iptables-save` form, also a
//! rule's identity across reloads), `iptables -L -v -n --line-numbers`, the summary.

use super::{
    addr_types, state_bits, Chain, ChainSummary, LimitSpec, Match, Net, Policy, PortRange,
    PortsWhich, Rule, Ruleset, Summary, Table, Target,
};
use crate::conntrack::{CtStatus, Direction};
use crate::packet::{proto, tcp_flags, Family};
use std::fmt::Write;

fn net_str(n: &Net, fam: Family, save: bool) -> String {
    let width = if fam == Family::V4 { 32 } else { 128 };
    let ip = match fam {
        Family::V4 => std::net::IpAddr::from(std::net::Ipv4Addr::from((n.net >> 96) as u32)),
        Family::V6 => std::net::IpAddr::from(std::net::Ipv6Addr::from(n.net)),
    };
    let m = if fam == Family::V4 {
        n.mask >> 96
    } else {
        n.mask
    };
    let ones = m.count_ones();
    let top = if ones == 0 {
        0
    } else {
        (u128::MAX >> (128 - width)) & !((1u128 << (width - ones)) - 1)
    };
    let contiguous = m == top;
    if contiguous {
        if ones == width && !save {
            ip.to_string()
        } else {
            format!("{ip}/{ones}")
        }
    } else {
        let mask = std::net::Ipv4Addr::from(m as u32);
        format!("{ip}/{mask}")
    }
}

fn ports_str(r: &PortRange) -> String {
    if r.lo == r.hi {
        r.lo.to_string()
    } else {
        format!("{}:{}", r.lo, r.hi)
    }
}

/// The names of the bits set in `m`, joined by commas, in the table's order.
fn bits_str<T>(m: T, names: &[(T, &str)]) -> String
where
    T: Copy + PartialEq + Default + std::ops::BitAnd<Output = T>,
{
    names
        .iter()
        .filter(|&&(b, _)| m & b != T::default())
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

fn flags_str(f: u8) -> String {
    if f == 0 {
        return "NONE".into();
    }
    bits_str(f, tcp_flags::NAMES)
}

fn states_str(m: u16) -> String {
    bits_str(m, state_bits::NAMES)
}

fn status_str(m: u8) -> String {
    if m == 0 {
        return "NONE".into();
    }
    bits_str(m, CtStatus::NAMES)
}

fn multi_str(p: &[(u16, u16)]) -> String {
    p.iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}:{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn icmp_str(ty: u8, lo: u8, hi: u8) -> String {
    if lo == 0 && hi == 0xff {
        ty.to_string()
    } else if lo == hi {
        format!("{ty}/{lo}")
    } else {
        format!("{ty}/{lo}:{hi}")
    }
}

/// Quotes like `xtables_save_string`: always in double quotes, `\` and `"` escaped.
pub(crate) fn quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            o.push('\\');
        }
        o.push(c);
    }
    o.push('"');
    o
}

fn neg(b: bool) -> &'static str {
    if b {
        "! "
    } else {
        ""
    }
}

/// The rule in `iptables-save` form, without the leading `-A CHAIN `.
pub(crate) fn rule_text(r: &Rule, chains: &[Chain], limits: &[LimitSpec], fam: Family) -> String {
    let mut o = String::new();
    for m in &r.matches {
        match m {
            Match::Src { net, neg: n } => write!(o, " {}-s {}", neg(*n), net_str(net, fam, true)),
            Match::Dst { net, neg: n } => write!(o, " {}-d {}", neg(*n), net_str(net, fam, true)),
            Match::In { iface, neg: n } => write!(
                o,
                " {}-i {}{}",
                neg(*n),
                iface.name,
                if iface.prefix { "+" } else { "" }
            ),
            Match::Out { iface, neg: n } => write!(
                o,
                " {}-o {}{}",
                neg(*n),
                iface.name,
                if iface.prefix { "+" } else { "" }
            ),
            Match::Proto { proto, neg: n } => {
                write!(o, " {}-p {}", neg(*n), proto::save_name(*proto))
            }
            Match::Fragment { neg: n } => write!(o, " {}-f", neg(*n)),
            Match::Tcp {
                sport,
                dport,
                flags,
            } => {
                let _ = write!(o, " -m tcp");
                if *sport != PortRange::ANY {
                    let _ = write!(o, " {}--sport {}", neg(sport.neg), ports_str(sport));
                }
                if *dport != PortRange::ANY {
                    let _ = write!(o, " {}--dport {}", neg(dport.neg), ports_str(dport));
                }
                if let Some((mask, comp, n)) = flags {
                    let _ = write!(
                        o,
                        " {}--tcp-flags {} {}",
                        neg(*n),
                        flags_str(*mask),
                        flags_str(*comp)
                    );
                }
                Ok(())
            }
            Match::Udp { sport, dport } => {
                let _ = write!(o, " -m udp");
                if *sport != PortRange::ANY {
                    let _ = write!(o, " {}--sport {}", neg(sport.neg), ports_str(sport));
                }
                if *dport != PortRange::ANY {
                    let _ = write!(o, " {}--dport {}", neg(dport.neg), ports_str(dport));
                }
                Ok(())
            }
            Match::Icmp {
                ty,
                code_lo,
                code_hi,
                neg: n,
                any,
            } => {
                if *any {
                    write!(o, " -m icmp {}--icmp-type any", neg(*n))
                } else {
                    write!(
                        o,
                        " -m icmp {}--icmp-type {}",
                        neg(*n),
                        icmp_str(*ty, *code_lo, *code_hi)
                    )
                }
            }
            Match::Icmp6 {
                ty,
                code_lo,
                code_hi,
                neg: n,
            } => write!(
                o,
                " -m icmp6 {}--icmpv6-type {}",
                neg(*n),
                icmp_str(*ty, *code_lo, *code_hi)
            ),
            Match::Multiport {
                which,
                ports,
                neg: n,
            } => {
                let opt = match which {
                    PortsWhich::Src => "--sports",
                    PortsWhich::Dst => "--dports",
                    PortsWhich::Either => "--ports",
                };
                write!(o, " -m multiport {}{opt} {}", neg(*n), multi_str(ports))
            }
            Match::State { mask, neg: n } => {
                write!(o, " -m state {}--state {}", neg(*n), states_str(*mask))
            }
            Match::Conntrack {
                state,
                status,
                dir,
                tuples,
            } => {
                let _ = write!(o, " -m conntrack");
                if let Some((m, n)) = state {
                    let _ = write!(o, " {}--ctstate {}", neg(*n), states_str(*m));
                }
                // iptables-save's order: addresses, then ports.
                for t in tuples.iter().filter(|t| !t.field.is_port()) {
                    let _ = write!(
                        o,
                        " {}{} {}",
                        neg(t.neg),
                        t.field.option(),
                        net_str(&t.net, fam, true)
                    );
                }
                for t in tuples.iter().filter(|t| t.field.is_port()) {
                    let (lo, hi) = t.ports;
                    let p = if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}:{hi}")
                    };
                    let _ = write!(o, " {}{} {p}", neg(t.neg), t.field.option());
                }
                if let Some((m, n)) = status {
                    let _ = write!(o, " {}--ctstatus {}", neg(*n), status_str(*m));
                }
                if let Some((d, _)) = dir {
                    let _ = write!(o, " --ctdir {}", dir_str(*d));
                }
                Ok(())
            }
            Match::AddrType { src, dst } => {
                let _ = write!(o, " -m addrtype");
                for (opt, spec) in [("--src-type", src), ("--dst-type", dst)] {
                    if let Some((m, n)) = spec {
                        let _ = write!(o, " {}{opt} {}", neg(*n), bits_str(*m, addr_types::NAMES));
                    }
                }
                Ok(())
            }
            Match::Ext(x) => write!(o, "{}", x.save_text(fam)),
            Match::Stateful(x) => {
                o.push_str(&x.save_text());
                Ok(())
            }
            Match::Comment => write!(
                o,
                " -m comment --comment {}",
                quote(r.comment.as_deref().unwrap_or(""))
            ),
            Match::Limit { slot } => {
                let l = &limits[*slot as usize];
                let _ = write!(o, " -m limit --limit {}/{}", l.count, l.unit);
                if l.burst != 5 {
                    let _ = write!(o, " --limit-burst {}", l.burst);
                }
                Ok(())
            }
        }
        .expect("write to a String");
    }
    let t = match &r.target {
        Target::None => String::new(),
        Target::Accept => " -j ACCEPT".into(),
        Target::Drop => " -j DROP".into(),
        Target::Return => " -j RETURN".into(),
        Target::Reject(k) => format!(" -j REJECT --reject-with {}", k.name()),
        Target::Log {
            prefix,
            level,
            flags,
        } => {
            let mut s = String::from(" -j LOG");
            if !prefix.is_empty() {
                let _ = write!(s, " --log-prefix {}", quote(prefix));
            }
            if *level != 4 {
                let _ = write!(s, " --log-level {level}");
            }
            for (b, n) in [
                (0x01, "--log-tcp-sequence"),
                (0x02, "--log-tcp-options"),
                (0x04, "--log-ip-options"),
                (0x08, "--log-uid"),
                (0x20, "--log-macdecode"),
            ] {
                if flags & b != 0 {
                    let _ = write!(s, " {n}");
                }
            }
            s
        }
        Target::Jump(c) => format!(" -j {}", chains[*c].name),
        Target::Goto(c) => format!(" -g {}", chains[*c].name),
        Target::Notrack => " -j NOTRACK".into(),
        Target::Nat(n) => n.save_text(fam),
        Target::Ext(x) => x.save_text(),
        Target::Stateful(x) => x.save_text(),
        Target::Ct { helper, notrack } => {
            let mut s = String::from(" -j CT");
            if *notrack {
                s.push_str(" --notrack");
            }
            if let Some(h) = helper {
                let _ = write!(s, " --helper {}", h.name());
            }
            s
        }
    };
    o.push_str(&t);
    o.trim_start().to_string()
}

fn dir_str(d: Direction) -> &'static str {
    match d {
        Direction::Original => "ORIGINAL",
        Direction::Reply => "REPLY",
    }
}

/// `xtables_print_num` with K/M/G/T suffixes; `table` pads for the rule columns.
fn num(n: u64, table: bool) -> String {
    if n <= 99999 {
        return if table {
            format!("{n:>5} ")
        } else {
            format!("{n} ")
        };
    }
    let mut v = n;
    for suffix in ['K', 'M', 'G', 'T'] {
        v = (v + 500) / 1000;
        if v <= 9999 || suffix == 'T' {
            return if table {
                format!("{v:>4}{suffix} ")
            } else {
                format!("{v}{suffix} ")
            };
        }
    }
    unreachable!("T is the last suffix")
}

impl Ruleset {
    fn chain_order(&self, table: Table) -> Vec<usize> {
        let mut builtins: Vec<usize> = (0..self.chains.len())
            .filter(|&c| self.chains[c].table == table && self.chains[c].policy.is_some())
            .collect();
        let mut users: Vec<usize> = (0..self.chains.len())
            .filter(|&c| self.chains[c].table == table && self.chains[c].policy.is_none())
            .collect();
        users.sort_by(|&a, &b| self.chains[a].name.cmp(&self.chains[b].name));
        builtins.append(&mut users);
        builtins
    }

    fn listing_extras(&self, r: &Rule) -> String {
        let mut o = String::new();
        if matches!(r.target, Target::Goto(_)) {
            o.push_str(" [goto]");
        }
        for m in &r.matches {
            match m {
                Match::Tcp {
                    sport,
                    dport,
                    flags,
                } => {
                    o.push_str(" tcp");
                    list_ports(&mut o, sport, dport);
                    if let Some((m, c, n)) = flags {
                        let _ =
                            write!(o, " flags:{}0x{m:02X}/0x{c:02X}", if *n { "!" } else { "" });
                    }
                }
                Match::Udp { sport, dport } => {
                    o.push_str(" udp");
                    list_ports(&mut o, sport, dport);
                }
                Match::Icmp {
                    ty,
                    code_lo,
                    code_hi,
                    neg: n,
                    any,
                } => {
                    if *any {
                        let _ = write!(o, " icmp {}any", if *n { "!" } else { "" });
                    } else {
                        list_icmp(&mut o, "icmp", *ty, *code_lo, *code_hi, *n);
                    }
                }
                Match::Icmp6 {
                    ty,
                    code_lo,
                    code_hi,
                    neg: n,
                } => list_icmp(&mut o, "ipv6-icmp", *ty, *code_lo, *code_hi, *n),
                Match::Multiport {
                    which,
                    ports,
                    neg: n,
                } => {
                    let w = match which {
                        PortsWhich::Src => "sports",
                        PortsWhich::Dst => "dports",
                        PortsWhich::Either => "ports",
                    };
                    let _ = write!(
                        o,
                        " multiport {w} {}{}",
                        if *n { "!" } else { "" },
                        multi_str(ports)
                    );
                }
                Match::State { mask, neg: n } => {
                    let _ = write!(o, " {}state {}", neg(*n), states_str(*mask));
                }
                Match::Conntrack {
                    state, status, dir, ..
                } => {
                    if let Some((m, n)) = state {
                        let _ = write!(o, " {}ctstate {}", neg(*n), states_str(*m));
                    }
                    if let Some((m, n)) = status {
                        let _ = write!(o, " {}ctstatus {}", neg(*n), status_str(*m));
                    }
                    if let Some((d, _)) = dir {
                        let _ = write!(o, " ctdir {}", dir_str(*d));
                    }
                }
                Match::Comment => {
                    let _ = write!(o, " /* {} */", r.comment.as_deref().unwrap_or(""));
                }
                Match::Ext(x) => o.push_str(&x.list_text(self.family)),
                Match::AddrType { src, dst } => {
                    o.push_str(" ADDRTYPE match");
                    for (what, spec) in [("src-type", src), ("dst-type", dst)] {
                        if let Some((m, n)) = spec {
                            let bang = if *n { "!" } else { "" };
                            let _ = write!(o, " {what} {bang}{}", bits_str(*m, addr_types::NAMES));
                        }
                    }
                }
                Match::Stateful(x) => o.push_str(&x.list_text()),
                Match::Limit { slot } => {
                    let l = &self.limits[*slot as usize];
                    let _ = write!(o, " limit: avg {}/{} burst {}", l.count, l.unit, l.burst);
                }
                _ => {}
            }
        }
        match &r.target {
            Target::Reject(k) => {
                let _ = write!(o, " reject-with {}", k.name());
            }
            Target::Log {
                prefix,
                level,
                flags,
            } => {
                let _ = write!(o, " LOG flags {flags} level {level}");
                if !prefix.is_empty() {
                    let _ = write!(o, " prefix \"{prefix}\"");
                }
            }
            Target::Notrack => o.push_str(" NOTRACK"),
            Target::Stateful(x) => o.push_str(&x.list_text()),
            Target::Nat(n) => o.push_str(&n.list_text(self.family)),
            Target::Ext(x) => {
                let t = x.save_text();
                let name = format!(" -j {}", x.name());
                o.push_str(
                    &t.replacen(&name, &format!(" {}", x.name()), 1)
                        .replace(" --", " "),
                );
            }
            Target::Ct { helper, notrack } => {
                if *notrack {
                    o.push_str(" CT notrack");
                }
                if let Some(h) = helper {
                    let _ = write!(o, " CT helper {}", h.name());
                }
            }
            _ => {}
        }
        o
    }

    /// The chains of `table` as `iptables -L -v -n --line-numbers` prints them, with
    /// `counters` the summed [`super::RuleCounters::snapshot`]s (missing slots read 0).
    pub fn list(&self, table: Table, counters: &[(u64, u64)]) -> String {
        let get = |i: usize| counters.get(i).copied().unwrap_or((0, 0));
        let v4 = self.family == Family::V4;
        let any = if v4 { "0.0.0.0/0" } else { "::/0" };
        let mut o = String::new();
        for (n, &c) in self.chain_order(table).iter().enumerate() {
            let ch = &self.chains[c];
            if n > 0 {
                o.push('\n');
            }
            match ch.policy {
                Some(p) => {
                    let (pk, by) = get(self.rules.len() + c);
                    let _ = writeln!(
                        o,
                        "Chain {} (policy {} {}packets, {}bytes)",
                        ch.name,
                        if p == Policy::Accept {
                            "ACCEPT"
                        } else {
                            "DROP"
                        },
                        num(pk, false),
                        num(by, false)
                    );
                }
                None => {
                    let _ = writeln!(o, "Chain {} ({} references)", ch.name, ch.references);
                }
            }
            let _ = writeln!(
                o,
                "{:<4} {:>5} {:>5} {:<9}  prot opt {:<6} {:<6}  {:<19}  {:<19} ",
                "num", "pkts", "bytes", "target", "in", "out", "source", "destination"
            );
            for (pos, &rid) in ch.rules.iter().enumerate() {
                let r = &self.rules[rid as usize];
                let (pk, by) = get(rid as usize);
                let target = match &r.target {
                    Target::None => String::new(),
                    Target::Accept => "ACCEPT".into(),
                    Target::Drop => "DROP".into(),
                    Target::Reject(_) => "REJECT".into(),
                    Target::Log { .. } => "LOG".into(),
                    Target::Return => "RETURN".into(),
                    Target::Jump(t) | Target::Goto(t) => self.chains[*t].name.clone(),
                    Target::Notrack => "NOTRACK".into(),
                    Target::Ct { .. } => "CT".into(),
                    Target::Nat(n) => n.kind().name().into(),
                    Target::Ext(x) => x.name().into(),
                    Target::Stateful(x) => x.name().into(),
                };
                let mut prot = (false, "all".to_string());
                let (mut src, mut dst) = ((false, any.to_string()), (false, any.to_string()));
                let (mut inp, mut outp) = ((false, "*".to_string()), (false, "*".to_string()));
                let mut frag = None;
                for m in &r.matches {
                    match m {
                        Match::Proto { proto, neg } => prot = (*neg, proto::save_name(*proto)),
                        Match::Src { net, neg } => src = (*neg, net_str(net, self.family, false)),
                        Match::Dst { net, neg } => dst = (*neg, net_str(net, self.family, false)),
                        Match::In { iface, neg } => {
                            inp = (
                                *neg,
                                format!("{}{}", iface.name, if iface.prefix { "+" } else { "" }),
                            )
                        }
                        Match::Out { iface, neg } => {
                            outp = (
                                *neg,
                                format!("{}{}", iface.name, if iface.prefix { "+" } else { "" }),
                            )
                        }
                        Match::Fragment { neg } => frag = Some(*neg),
                        _ => {}
                    }
                }
                let bang = |b: bool| if b { "!" } else { " " };
                let opt = if !v4 {
                    "   ".to_string()
                } else {
                    match frag {
                        None => "-- ".into(),
                        Some(true) => "!f ".into(),
                        Some(false) => "-f ".into(),
                    }
                };
                let _ = writeln!(
                    o,
                    "{:<4} {}{}{:<9} {}{:<5}{} {:<6} {:<6} {}{:<19} {}{:<19} {}",
                    pos + 1,
                    num(pk, true),
                    num(by, true),
                    target,
                    bang(prot.0),
                    prot.1,
                    opt,
                    format!("{}{}", if inp.0 { "!" } else { "" }, inp.1),
                    format!("{}{}", if outp.0 { "!" } else { "" }, outp.1),
                    bang(src.0),
                    src.1,
                    bang(dst.0),
                    dst.1,
                    self.listing_extras(r)
                );
            }
        }
        o
    }

    /// The ruleset in `iptables-save` form (tables it was given, chains with `[0:0]`
    /// counters, every rule in canonical form). Reading it back gives the same ruleset.
    pub fn dump(&self) -> String {
        let mut o = String::new();
        for &t in &self.tables {
            let _ = writeln!(o, "*{}", t.name());
            let order = self.chain_order(t);
            for &c in &order {
                let ch = &self.chains[c];
                let pol = match ch.policy {
                    Some(Policy::Accept) => "ACCEPT",
                    Some(Policy::Drop) => "DROP",
                    None => "-",
                };
                let _ = writeln!(o, ":{} {pol} [0:0]", ch.name);
            }
            for &c in &order {
                for &rid in &self.chains[c].rules {
                    let r = &self.rules[rid as usize];
                    let sep = if r.text.is_empty() { "" } else { " " };
                    let _ = writeln!(o, "-A {}{sep}{}", self.chains[c].name, r.text);
                }
            }
            o.push_str("COMMIT\n");
        }
        o
    }

    /// What the ruleset holds (for `statewall rules check`).
    pub fn summary(&self) -> Summary {
        let tables = self
            .tables
            .iter()
            .map(|&t| {
                let chains = self
                    .chain_order(t)
                    .into_iter()
                    .map(|c| {
                        let ch = &self.chains[c];
                        let pol = match ch.policy {
                            Some(Policy::Accept) => "ACCEPT",
                            Some(Policy::Drop) => "DROP",
                            None => "-",
                        };
                        ChainSummary {
                            name: ch.name.clone(),
                            policy: pol.to_string(),
                            rules: ch.rules.len(),
                        }
                    })
                    .collect();
                (t, chains)
            })
            .collect();
        Summary {
            family: self.family,
            tables,
            rules: self.rules.len(),
        }
    }

    /// The file name the ruleset was read from.
    pub fn file_name(&self) -> &str {
        &self.file
    }
}

/// ` icmp[ !]type T[ code C]` (or `ipv6-icmp`) as `iptables -L` shows an ICMP match.
fn list_icmp(o: &mut String, proto: &str, ty: u8, code_lo: u8, code_hi: u8, neg: bool) {
    let _ = write!(o, " {proto}{}type {ty}", if neg { " !" } else { "" });
    if !(code_lo == 0 && code_hi == 0xff) {
        let _ = write!(o, " code {code_lo}");
    }
}

fn list_ports(o: &mut String, s: &PortRange, d: &PortRange) {
    for (name, r) in [("spt", s), ("dpt", d)] {
        if *r == PortRange::ANY {
            continue;
        }
        let inv = if r.neg { "!" } else { "" };
        if r.lo == r.hi {
            let _ = write!(o, " {name}:{inv}{}", r.lo);
        } else {
            let _ = write!(o, " {name}s:{inv}{}:{}", r.lo, r.hi);
        }
    }
}
