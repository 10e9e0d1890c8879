//! The `*nat` table: its targets (SNAT, DNAT, MASQUERADE, REDIRECT, NETMAP), where
//! each may run, their `iptables-save` text, the chain walk that finds a new
//! connection's NAT ([`Ruleset::eval_nat`]) and the turn of a target into the
//! [`NatRange`] conntrack binds ([`NatTarget::range`]). See `docs/NAT.md`.
//!
//! As in Linux, the nat chains see only the first packet of a connection; the binding
//! then holds for all of its packets, both directions.

use super::eval::End;
use super::{Chain, LogEvent, PacketCtx, RuleCounters, Ruleset, Target};
use crate::conntrack::nat::range_flags;
use crate::conntrack::NatRange;
use crate::packet::{to_ip, Addr, Family, Parsed};
use std::fmt::Write as _;

/// The built-in chains of the nat table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatChain {
    /// PREROUTING: new connections from the network (DNAT, REDIRECT, NETMAP).
    Prerouting,
    /// INPUT: new connections toward the host (SNAT, NETMAP).
    Input,
    /// OUTPUT: new connections from the host (DNAT, REDIRECT, NETMAP).
    Output,
    /// POSTROUTING: new connections leaving (SNAT, MASQUERADE, NETMAP).
    Postrouting,
}

impl NatChain {
    /// The chain's name.
    pub fn name(self) -> &'static str {
        match self {
            NatChain::Prerouting => "PREROUTING",
            NatChain::Input => "INPUT",
            NatChain::Output => "OUTPUT",
            NatChain::Postrouting => "POSTROUTING",
        }
    }

    /// True for the chains whose manip changes the destination.
    pub fn is_dst(self) -> bool {
        matches!(self, NatChain::Prerouting | NatChain::Output)
    }

    const ALL: [NatChain; 4] = [
        NatChain::Prerouting,
        NatChain::Input,
        NatChain::Output,
        NatChain::Postrouting,
    ];
}

/// Which NAT target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// `-j SNAT --to-source`.
    Snat,
    /// `-j DNAT --to-destination`.
    Dnat,
    /// `-j MASQUERADE`: SNAT to the outgoing port's own address.
    Masquerade,
    /// `-j REDIRECT`: DNAT to the host's own (local) address.
    Redirect,
    /// `-j NETMAP --to`: map one network prefix onto another, 1:1.
    Netmap,
}

impl NatKind {
    /// The target's name.
    pub fn name(self) -> &'static str {
        match self {
            NatKind::Snat => "SNAT",
            NatKind::Dnat => "DNAT",
            NatKind::Masquerade => "MASQUERADE",
            NatKind::Redirect => "REDIRECT",
            NatKind::Netmap => "NETMAP",
        }
    }

    /// The nat chains a target may run from (directly or through user chains).
    fn hooks(self) -> &'static [NatChain] {
        match self {
            NatKind::Snat => &[NatChain::Postrouting, NatChain::Input],
            NatKind::Masquerade => &[NatChain::Postrouting],
            NatKind::Dnat | NatKind::Redirect => &[NatChain::Prerouting, NatChain::Output],
            NatKind::Netmap => &NatChain::ALL,
        }
    }
}

/// `--random` on a NAT target.
pub(crate) const F_RANDOM: u8 = 1 << 0;
/// `--random-fully`.
pub(crate) const F_RANDOM_FULLY: u8 = 1 << 1;
/// `--persistent`.
pub(crate) const F_PERSISTENT: u8 = 1 << 2;

/// One compiled NAT target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatTarget {
    pub(crate) kind: NatKind,
    /// SNAT/DNAT address range (inclusive), if given.
    pub(crate) addrs: Option<(Addr, Addr)>,
    /// SNAT/DNAT port range or `--to-ports`, if given.
    pub(crate) ports: Option<(u16, u16)>,
    /// NETMAP: the network and its prefix length.
    pub(crate) netmap: Option<(Addr, u8)>,
    /// `F_*` bits.
    pub(crate) flags: u8,
}

impl NatTarget {
    /// The target's kind.
    pub fn kind(&self) -> NatKind {
        self.kind
    }

    /// The range conntrack binds for a new connection's packet `p` met in `chain`:
    /// `(true, range)` for a destination manip, `(false, range)` for a source manip.
    /// MASQUERADE takes `masq` (the outgoing port's address of the packet's family),
    /// REDIRECT `local` (the host's address); None when that address is missing (Linux
    /// drops such a packet: the caller counts `nat_no_port`).
    pub fn range(
        &self,
        p: &Parsed,
        chain: NatChain,
        masq: Option<Addr>,
        local: Option<Addr>,
    ) -> Option<(bool, NatRange)> {
        let mut r = NatRange::default();
        if self.flags & F_RANDOM != 0 {
            r.flags |= range_flags::RANDOM;
        }
        if self.flags & F_RANDOM_FULLY != 0 {
            r.flags |= range_flags::RANDOM_FULLY;
        }
        if self.flags & F_PERSISTENT != 0 {
            r.flags |= range_flags::PERSISTENT;
        }
        if let Some((lo, hi)) = self.ports {
            r.flags |= range_flags::PROTO_SPECIFIED;
            r.min_port = lo;
            r.max_port = hi;
        }
        let mut one = |a: Addr| {
            r.flags |= range_flags::MAP_IPS;
            r.min_addr = a;
            r.max_addr = a;
        };
        let dst = match self.kind {
            NatKind::Snat | NatKind::Dnat => {
                if let Some((lo, hi)) = self.addrs {
                    r.flags |= range_flags::MAP_IPS;
                    r.min_addr = lo;
                    r.max_addr = hi;
                }
                self.kind == NatKind::Dnat
            }
            NatKind::Masquerade => {
                one(masq?);
                false
            }
            NatKind::Redirect => {
                one(local?);
                true
            }
            NatKind::Netmap => {
                let (net, len) = self.netmap?;
                let is_dst = chain.is_dst();
                let old = if is_dst { p.dst } else { p.src };
                let width = if p.family == Family::V4 { 32 } else { 128 };
                let m = prefix(len as u32, width);
                let v = (u128::from_be_bytes(old) & !m) | (u128::from_be_bytes(net) & m);
                one(v.to_be_bytes());
                is_dst
            }
        };
        Some((dst, r))
    }

    /// The target in `iptables-save` form, after ` -j`.
    pub(crate) fn save_text(&self, fam: Family) -> String {
        let mut s = format!(" -j {}", self.kind.name());
        let ip = |a: &Addr| to_ip(fam, a).to_string();
        match self.kind {
            NatKind::Snat | NatKind::Dnat => {
                let opt = if self.kind == NatKind::Snat {
                    "--to-source"
                } else {
                    "--to-destination"
                };
                let _ = write!(s, " {opt} ");
                let v6 = fam == Family::V6 && self.ports.is_some();
                let br = |a: &Addr| {
                    if v6 {
                        format!("[{}]", ip(a))
                    } else {
                        ip(a)
                    }
                };
                if let Some((lo, hi)) = &self.addrs {
                    s.push_str(&br(lo));
                    if lo != hi {
                        let _ = write!(s, "-{}", br(hi));
                    }
                }
                if let Some((lo, hi)) = self.ports {
                    let _ = write!(s, ":{lo}");
                    if lo != hi {
                        let _ = write!(s, "-{hi}");
                    }
                }
            }
            NatKind::Masquerade | NatKind::Redirect => {
                if let Some((lo, hi)) = self.ports {
                    let _ = write!(s, " --to-ports {lo}");
                    if lo != hi {
                        let _ = write!(s, "-{hi}");
                    }
                }
            }
            NatKind::Netmap => {
                if let Some((net, len)) = &self.netmap {
                    let _ = write!(s, " --to {}/{len}", ip(net));
                }
            }
        }
        for (b, n) in [
            (F_RANDOM, "--random"),
            (F_RANDOM_FULLY, "--random-fully"),
            (F_PERSISTENT, "--persistent"),
        ] {
            if self.flags & b != 0 {
                let _ = write!(s, " {n}");
            }
        }
        s
    }

    /// The `iptables -t nat -L` extras (`to:1.2.3.4:80`, `masq ports: 1024-65535`, ...).
    pub(crate) fn list_text(&self, fam: Family) -> String {
        let t = self.save_text(fam);
        let body = t
            .split_once(' ')
            .and_then(|(_, rest)| rest.split_once(' '))
            .map_or("", |(_, b)| b);
        match self.kind {
            NatKind::Snat | NatKind::Dnat => {
                let v = body.split_whitespace().nth(1).unwrap_or("");
                let rest: Vec<&str> = body.split_whitespace().skip(2).collect();
                format!(
                    " to:{v}{}{}",
                    if rest.is_empty() { "" } else { " " },
                    rest.join(" ")
                )
            }
            NatKind::Masquerade => self
                .ports
                .map(|(l, h)| format!(" masq ports: {l}-{h}"))
                .unwrap_or_default(),
            NatKind::Redirect => self
                .ports
                .map(|(l, h)| format!(" redir ports {l}-{h}"))
                .unwrap_or_default(),
            NatKind::Netmap => format!(" {}", body),
        }
    }
}

fn prefix(n: u32, width: u32) -> u128 {
    let top = if n == 0 { 0 } else { u128::MAX << (128 - n) };
    if width == 32 {
        top & (u128::from(u32::MAX) << 96)
    } else {
        top
    }
}

/// Refuses a NAT target in a chain reachable from a built-in nat chain it may not run
/// from (as the kernel's `xt_check_target` does at load): `Err((rule id, message))`.
pub(super) fn check_hooks(
    chains: &[Chain],
    rules: &[super::Rule],
    nat_builtin: [usize; 4],
) -> Result<(), (usize, String)> {
    // Which built-in nat chains reach each chain.
    let mut reach = vec![0u8; chains.len()];
    for (i, &b) in nat_builtin.iter().enumerate() {
        let mut stack = vec![b];
        while let Some(c) = stack.pop() {
            if reach[c] & (1 << i) != 0 {
                continue;
            }
            reach[c] |= 1 << i;
            for &rid in &chains[c].rules {
                if let Target::Jump(t) | Target::Goto(t) = rules[rid as usize].target {
                    stack.push(t);
                }
            }
        }
    }
    for (rid, r) in rules.iter().enumerate() {
        let Target::Nat(n) = &r.target else { continue };
        let allowed = n.kind.hooks();
        for (i, h) in NatChain::ALL.iter().enumerate() {
            if reach[r.chain] & (1 << i) != 0 && !allowed.contains(h) {
                let names: Vec<_> = allowed.iter().map(|c| c.name()).collect();
                return Err((
                    rid,
                    format!(
                        "{} is used from the nat {} chain, but is only valid in {}",
                        n.kind.name(),
                        h.name(),
                        names.join(" and ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl Ruleset {
    /// The host's own addresses (the ports' addresses: `masquerade_address`,
    /// `local_address`), which `-m addrtype --dst-type LOCAL` matches besides loopback
    /// (127.0.0.0/8, ::1). Set before publishing; applies to the paired other-family
    /// ruleset too.
    pub fn set_local_addrs(&mut self, addrs: &[std::net::IpAddr]) {
        self.local_addrs = addrs
            .iter()
            .map(|ip| crate::packet::from_ip(*ip))
            .filter(|(f, _)| *f == self.family)
            .map(|(_, a)| a)
            .collect();
        if let Some(o) = &mut self.other {
            std::sync::Arc::make_mut(o).set_local_addrs(addrs);
        }
    }

    /// The `-m addrtype` type bit of an address of this ruleset's family.
    pub(super) fn addr_type(&self, a: &Addr) -> u16 {
        use super::addr_types as t;
        let v4 = self.family == Family::V4;
        let loopback = if v4 {
            a[0] == 127
        } else {
            *a == std::net::Ipv6Addr::LOCALHOST.octets()
        };
        if loopback || self.local_addrs.contains(a) {
            return t::LOCAL;
        }
        let zero = if v4 { a[..4] == [0; 4] } else { *a == [0; 16] };
        if zero {
            t::UNSPEC
        } else if (v4 && a[0] >> 4 == 0xe) || (!v4 && a[0] == 0xff) {
            t::MULTICAST
        } else if v4 && a[..4] == [255; 4] {
            t::BROADCAST
        } else {
            t::UNICAST
        }
    }

    /// True when the ruleset (or its other-family pair) has NAT rules: only then do new
    /// connections walk the nat chains.
    #[inline]
    pub fn has_nat(&self) -> bool {
        self.nat_rules || self.other.as_ref().is_some_and(|o| o.nat_rules)
    }

    /// Runs a new connection's first packet through a nat-table built-in chain: the NAT
    /// target that matched (None: ACCEPT, RETURN or the policy: no NAT from this chain).
    pub fn eval_nat(
        &self,
        chain: NatChain,
        ctx: &PacketCtx,
        counters: &mut RuleCounters,
        log: &mut impl FnMut(LogEvent),
    ) -> Option<&NatTarget> {
        if ctx.parsed.family != self.family {
            return match (self.for_family(ctx.parsed.family), counters.for_other()) {
                (Some(o), Some(c)) => o.eval_nat(chain, ctx, c, log),
                _ => None,
            };
        }
        if !self.nat_rules {
            return None;
        }
        let base = self.builtin[5 + chain as usize];
        if self.chains[base].rules.is_empty() {
            // An empty chain: its policy, without setting up a walk.
            let _ = self.policy_end(base, counters, ctx.parsed.ip_len() as u64);
            return None;
        }
        let end = self.walk(base, ctx, counters, |rid, _| {
            if let Some(ev) = self.log_event(rid, ctx) {
                log(ev)
            }
        });
        match end {
            End::Nat(rid) => match &self.rules[rid].target {
                Target::Nat(n) => Some(n),
                _ => None,
            },
            End::Policy => {
                let _ = self.policy_end(base, counters, ctx.parsed.ip_len() as u64);
                None
            }
            _ => None,
        }
    }
}
