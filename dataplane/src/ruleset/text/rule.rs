//! One `-A` line: its options, `-m` modules and target, checked and turned into a
//! [`DraftRule`] (matches in order, the target not yet resolved).

use super::ext;
use super::ext_target;
use super::lex::Tok;
use super::module::Module;
use super::values::*;
use super::{Reader, Res};
use crate::conntrack::Direction;
use crate::packet::{proto, Family};
use crate::ruleset::compile::{DraftRule, DraftTarget};
use crate::ruleset::cttuple::{CtField, CtTupleMatch};
use crate::ruleset::{
    Helper, Iface, LimitSpec, Match, Net, PortRange, PortsWhich, RejectKind, RulesetError, Table,
    Target,
};

mod nat;
mod net;
pub(super) mod stateful;
mod target;

/// Parses the options of one `-A` line.
pub(super) struct RuleParser<'r> {
    r: &'r mut Reader,
    table: Table,
    chain: usize,
    toks: &'r [Tok],
    pos: usize,
    chain_col: usize,
    proto: Option<(u8, bool)>,
    src: Option<(Net, bool)>,
    dst: Option<(Net, bool)>,
    iface_in: Option<(Iface, bool)>,
    iface_out: Option<(Iface, bool)>,
    frag: Option<bool>,
    modules: Vec<Module>,
    target: Option<(String, usize)>,
    goto: bool,
    reject: Option<(RejectKind, usize)>,
    log: (String, u8, u8),
    ct: (Option<Helper>, bool),
    nat: nat::NatDraft,
    /// The options of an extended target (MARK, CONNMARK, TCPMSS, ...; `ext.rs`).
    ext_target: Vec<ext::ExtOpt>,
    set_target: stateful::SetTargetDraft,
}

impl<'r> RuleParser<'r> {
    pub(super) fn new(
        r: &'r mut Reader,
        table: Table,
        chain: usize,
        toks: &'r [Tok],
        chain_col: usize,
    ) -> Self {
        RuleParser {
            r,
            table,
            chain,
            toks,
            pos: 0,
            chain_col,
            proto: None,
            src: None,
            dst: None,
            iface_in: None,
            iface_out: None,
            frag: None,
            modules: Vec::new(),
            target: None,
            goto: false,
            reject: None,
            log: (String::new(), 4, 0),
            ct: (None, false),
            nat: nat::NatDraft::default(),
            ext_target: Vec::new(),
            set_target: stateful::SetTargetDraft::default(),
        }
    }

    fn err(&self, col: usize, msg: impl Into<String>) -> RulesetError {
        self.r.err(col, msg)
    }

    /// The value after option `opt`; with `legacy_neg`, a `!` there is the old negation.
    fn value(&mut self, opt: &Tok, neg: &mut Option<usize>, legacy_neg: bool) -> Res<Tok> {
        let mut t = self.toks.get(self.pos).cloned();
        if legacy_neg {
            if let Some(x) = t.as_ref().filter(|x| x.s == "!") {
                if neg.is_some() {
                    return Err(self.err(x.col, "\"!\" given twice"));
                }
                *neg = Some(x.col);
                self.pos += 1;
                t = self.toks.get(self.pos).cloned();
            }
        }
        match t {
            Some(t) => {
                self.pos += 1;
                Ok(t)
            }
            None => Err(self.err(opt.col, format!("option \"{}\" needs a value", opt.s))),
        }
    }

    fn no_neg(&self, neg: Option<usize>, opt: &Tok) -> Res<()> {
        match neg {
            Some(c) => Err(self.err(c, format!("\"!\" cannot be used with \"{}\"", opt.s))),
            None => Ok(()),
        }
    }

    pub(super) fn run(mut self) -> Res<DraftRule> {
        let mut neg: Option<usize> = None;
        while let Some(tok) = self.toks.get(self.pos).cloned() {
            self.pos += 1;
            let o = tok.s.as_str();
            if o == "!" {
                if neg.is_some() {
                    return Err(self.err(tok.col, "\"!\" given twice"));
                }
                neg = Some(tok.col);
                continue;
            }
            match o {
                "-p" | "--protocol" => {
                    let v = self.value(&tok, &mut neg, true)?;
                    if self.proto.is_some() {
                        return Err(self.err(tok.col, "multiple -p flags not allowed"));
                    }
                    let p = proto::parse(&v.s)
                        .ok_or_else(|| self.err(v.col, format!("unknown protocol \"{}\"", v.s)))?;
                    if p == 0 && neg.is_some() {
                        return Err(self.err(tok.col, "rule would never match protocol"));
                    }
                    self.proto = Some((p, neg.take().is_some()));
                }
                "-s" | "--source" | "--src" | "-d" | "--destination" | "--dst" => {
                    let v = self.value(&tok, &mut neg, true)?;
                    let net = self.parse_net(&v)?;
                    let slot = if o.starts_with("-s") || o.starts_with("--s") {
                        &mut self.src
                    } else {
                        &mut self.dst
                    };
                    if slot.is_some() {
                        return Err(self
                            .r
                            .err(tok.col, format!("multiple {o} flags not allowed")));
                    }
                    *slot = Some((net, neg.take().is_some()));
                }
                "-i" | "--in-interface" | "-o" | "--out-interface" => {
                    let v = self.value(&tok, &mut neg, true)?;
                    let input = o == "-i" || o == "--in-interface";
                    let chain_name = self.r.d.chains[self.chain].name.clone();
                    let builtin = self.r.d.chains[self.chain].policy.is_some();
                    if builtin && input && (chain_name == "OUTPUT" || chain_name == "POSTROUTING") {
                        return Err(self.err(tok.col, format!("can't use -i with {chain_name}")));
                    }
                    if builtin && !input && (chain_name == "INPUT" || chain_name == "PREROUTING") {
                        return Err(self.err(tok.col, format!("can't use -o with {chain_name}")));
                    }
                    let iface = parse_iface(&v.s).map_err(|m| self.err(v.col, m))?;
                    let slot = if input {
                        &mut self.iface_in
                    } else {
                        &mut self.iface_out
                    };
                    if slot.is_some() {
                        return Err(self
                            .r
                            .err(tok.col, format!("multiple {o} flags not allowed")));
                    }
                    *slot = Some((iface, neg.take().is_some()));
                }
                "-f" | "--fragment" => {
                    if self.r.d.family == Some(Family::V6) {
                        return Err(self.err(tok.col, "-f is not valid in ip6tables (use -m frag)"));
                    }
                    self.r.set_family(Family::V4, tok.col, "-f")?;
                    self.frag = Some(neg.take().is_some());
                }
                "-m" | "--match" => {
                    self.no_neg(neg, &tok)?;
                    let v = self.value(&tok, &mut neg, false)?;
                    self.load_module(&tok, &v)?;
                }
                "-j" | "--jump" | "-g" | "--goto" => {
                    self.no_neg(neg, &tok)?;
                    let v = self.value(&tok, &mut neg, false)?;
                    if self.target.is_some() {
                        return Err(self.err(tok.col, "only one -j or -g per rule"));
                    }
                    self.goto = o == "-g" || o == "--goto";
                    self.target = Some((v.s.clone(), v.col));
                }
                _ if o.starts_with("--") => {
                    self.option(&tok, &mut neg)?;
                }
                _ => return Err(self.err(tok.col, format!("unknown option \"{o}\""))),
            }
        }
        if let Some(c) = neg {
            return Err(self.err(c, "\"!\" at the end of the rule"));
        }
        self.finish()
    }

    fn load_module(&mut self, tok: &Tok, v: &Tok) -> Res<()> {
        if let Some(m) = ext::load(&v.s, tok.col) {
            self.modules.push(Module::Ext(m));
            return Ok(());
        }
        if let Some(why) = ext::refused(&v.s) {
            return Err(self.err(tok.col, why));
        }
        let m = match v.s.as_str() {
            "tcp" => Module::Tcp {
                sport: None,
                dport: None,
                flags: None,
            },
            "udp" => Module::Udp {
                sport: None,
                dport: None,
            },
            "icmp" => {
                self.r.set_family(Family::V4, v.col, "-m icmp")?;
                Module::Icmp(None)
            }
            "icmp6" | "icmpv6" => {
                self.r.set_family(Family::V6, v.col, "-m icmp6")?;
                Module::Icmp6(None)
            }
            "multiport" => Module::Multiport(None),
            "state" => Module::State(None),
            "conntrack" => Module::Conntrack {
                state: None,
                status: None,
                dir: None,
                tuples: Vec::new(),
            },
            "comment" => Module::Comment(None),
            "limit" => Module::Limit {
                rate: None,
                burst: None,
            },
            "addrtype" => Module::AddrType {
                src: None,
                dst: None,
            },
            // A guard, so the list of unsupported matches below stays as it is.
            n if stateful::ExtModule::of(n).is_some() => {
                Module::Stateful(stateful::ExtModule::of(n).expect("ext has it"))
            }
            "mac" | "physdev" | "string" | "time" | "u32" | "connlimit" | "policy"
            | "ipv6header" | "hbh" | "dst" | "sctp" | "helper" | "quota" | "bpf" | "devgroup"
            | "realm" => {
                return Err(self.err(
                    tok.col,
                    format!("match \"-m {}\" is not supported by statewall", v.s),
                ))
            }
            other => return Err(self.err(tok.col, format!("unknown match \"-m {other}\""))),
        };
        self.check_module_proto(&m, tok.col)?;
        self.modules.push(m);
        Ok(())
    }

    fn check_module_proto(&self, m: &Module, col: usize) -> Res<()> {
        let want: &[u8] = match m {
            Module::Tcp { .. } => &[proto::TCP],
            Module::Udp { .. } => &[proto::UDP],
            Module::Icmp(_) => &[proto::ICMP],
            Module::Icmp6(_) => &[proto::ICMPV6],
            Module::Multiport(_) => &[proto::TCP, proto::UDP],
            _ => return Ok(()),
        };
        match self.proto {
            Some((p, false)) if want.contains(&p) => Ok(()),
            _ => {
                let names: Vec<_> = want
                    .iter()
                    .map(|&p| format!("-p {}", proto::save_name(p)))
                    .collect();
                Err(self.err(
                    col,
                    format!(
                        "match \"{}\" needs {} before it",
                        m.name(),
                        names.join(" or ")
                    ),
                ))
            }
        }
    }

    /// Handles a `--long` option: a module's or the target's.
    fn option(&mut self, tok: &Tok, neg: &mut Option<usize>) -> Res<()> {
        let o = tok.s.as_str();
        if self.target.as_ref().is_some_and(|t| t.0 == "SET") && self.ext_target_option(tok, neg)? {
            return Ok(());
        }
        if self.target.is_some() && self.target_option(tok, neg)? {
            return Ok(());
        }
        let mut owner = self.modules.iter().rposition(|m| m.accepts(o));
        if owner.is_none() {
            // Implicit protocol match (`-p tcp --dport 22` without `-m tcp`).
            let implicit = match (self.proto, o) {
                (Some((proto::TCP, false)), _) => Some(Module::Tcp {
                    sport: None,
                    dport: None,
                    flags: None,
                }),
                (Some((proto::UDP, false)), _) => Some(Module::Udp {
                    sport: None,
                    dport: None,
                }),
                (Some((proto::ICMP, false)), "--icmp-type") => Some(Module::Icmp(None)),
                (Some((proto::ICMPV6, false)), "--icmpv6-type") => Some(Module::Icmp6(None)),
                _ => None,
            };
            if let Some(m) = implicit.filter(|m| m.accepts(o)) {
                if matches!(m, Module::Icmp(_)) {
                    self.r.set_family(Family::V4, tok.col, "--icmp-type")?;
                }
                if matches!(m, Module::Icmp6(_)) {
                    self.r.set_family(Family::V6, tok.col, "--icmpv6-type")?;
                }
                self.modules.push(m);
                owner = Some(self.modules.len() - 1);
            }
        }
        let Some(idx) = owner else {
            let msg = match o {
                "--sport" | "--dport" | "--source-port" | "--destination-port" | "--tcp-flags"
                | "--syn" => format!("option \"{o}\" needs \"-p tcp\" or \"-p udp\" first"),
                "--reject-with" => "option \"--reject-with\" belongs to \"-j REJECT\"".into(),
                _ if o.starts_with("--log-") => format!("option \"{o}\" belongs to \"-j LOG\""),
                "--notrack" | "--helper" => format!("option \"{o}\" belongs to \"-j CT\""),
                "--ctproto" | "--ctexpire" => {
                    format!("option \"{o}\" of -m conntrack is not supported")
                }
                _ => format!("unknown option \"{o}\""),
            };
            return Err(self.err(tok.col, msg));
        };
        if let Module::Ext(m) = &self.modules[idx] {
            let takes = m.takes(o).expect("the module accepts it");
            let negc = neg.take();
            let val = if takes {
                Some(self.value(tok, &mut None, false)?)
            } else {
                None
            };
            if let Module::Ext(m) = &mut self.modules[idx] {
                m.opts.push(ext::ExtOpt {
                    opt: o.to_string(),
                    val,
                    neg: negc,
                    col: tok.col,
                });
            }
            return Ok(());
        }
        let negated = neg.take();
        let inv = negated.is_some();
        let flag = matches!(&self.modules[idx], Module::Stateful(x) if !x.takes_value(o));
        let v = if o == "--syn" || flag {
            None
        } else {
            Some(self.value(tok, &mut None, false)?)
        };
        let fam = self.r.d.family;
        let col = tok.col;
        let mut module = std::mem::replace(&mut self.modules[idx], Module::Comment(None));
        let res = self.apply(&mut module, o, v, inv, negated, col, fam);
        self.modules[idx] = module;
        res
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        module: &mut Module,
        o: &str,
        v: Option<Tok>,
        inv: bool,
        negated: Option<usize>,
        col: usize,
        fam: Option<Family>,
    ) -> Res<()> {
        let twice = |r: &Self| r.err(col, format!("option \"{o}\" given twice"));
        let no_inv = |r: &Self| match negated {
            Some(c) => Err(r.err(c, format!("\"!\" cannot be used with \"{o}\""))),
            None => Ok(()),
        };
        let v = v.unwrap_or(Tok {
            s: String::new(),
            col,
        });
        match module {
            Module::Tcp { sport, dport, .. } | Module::Udp { sport, dport }
                if o.contains("port") =>
            {
                let slot = if o == "--sport" || o == "--source-port" {
                    sport
                } else {
                    dport
                };
                if slot.is_some() {
                    return Err(twice(self));
                }
                let (lo, hi) = parse_port_range(&v.s).map_err(|m| self.err(v.col, m))?;
                *slot = Some(PortRange { lo, hi, neg: inv });
            }
            Module::Tcp { flags, .. } => {
                if flags.is_some() {
                    return Err(twice(self));
                }
                if o == "--syn" {
                    *flags = Some((0x17, 0x02, inv));
                } else {
                    let mask = parse_tcp_flags(&v.s).map_err(|m| self.err(v.col, m))?;
                    let c = self.value(&v, &mut None, false)?;
                    let comp = parse_tcp_flags(&c.s).map_err(|m| self.err(c.col, m))?;
                    *flags = Some((mask, comp, inv));
                }
            }
            Module::Udp { .. } => unreachable!("udp options all name ports"),
            Module::Ext(_) => unreachable!("extended options are collected in option()"),
            Module::Icmp(slot) => {
                if slot.is_some() {
                    return Err(twice(self));
                }
                let (ty, lo, hi, any) = parse_icmp_type(&v.s, false)
                    .ok_or_else(|| self.err(v.col, format!("unknown icmp type \"{}\"", v.s)))?;
                *slot = Some((ty, lo, hi, inv, any));
            }
            Module::Icmp6(slot) => {
                if slot.is_some() {
                    return Err(twice(self));
                }
                let (ty, lo, hi, _) = parse_icmp_type(&v.s, true)
                    .ok_or_else(|| self.err(v.col, format!("unknown icmpv6 type \"{}\"", v.s)))?;
                *slot = Some((ty, lo, hi, inv));
            }
            Module::Multiport(slot) => {
                if slot.is_some() {
                    return Err(self.err(col, "multiport can only have one option"));
                }
                let which = match o {
                    "--sports" | "--source-ports" => PortsWhich::Src,
                    "--dports" | "--destination-ports" => PortsWhich::Dst,
                    _ => PortsWhich::Either,
                };
                let ports = parse_multiport(&v.s).map_err(|m| self.err(v.col, m))?;
                *slot = Some((which, ports, inv));
            }
            Module::State(slot) => {
                if slot.is_some() {
                    return Err(twice(self));
                }
                let mask = parse_states(&v.s, false).map_err(|m| self.err(v.col, m))?;
                *slot = Some((mask, inv));
            }
            Module::Conntrack {
                state,
                status,
                dir,
                tuples,
            } => match o {
                _ if CtField::of(o).is_some() => {
                    let field = CtField::of(o).expect("checked");
                    if tuples.iter().any(|t| t.field == field) {
                        return Err(twice(self));
                    }
                    let mut m = CtTupleMatch {
                        field,
                        net: Net { net: 0, mask: 0 },
                        ports: (0, 65535),
                        neg: inv,
                    };
                    if field.is_port() {
                        m.ports = parse_port_range(&v.s).map_err(|e| self.err(v.col, e))?;
                    } else {
                        m.net = self.parse_net(&v)?;
                    }
                    tuples.push(m);
                }
                "--ctstate" => {
                    if state.is_some() {
                        return Err(twice(self));
                    }
                    *state = Some((
                        parse_states(&v.s, true).map_err(|m| self.err(v.col, m))?,
                        inv,
                    ));
                }
                "--ctstatus" => {
                    if status.is_some() {
                        return Err(twice(self));
                    }
                    *status = Some((parse_status(&v.s).map_err(|m| self.err(v.col, m))?, inv));
                }
                _ => {
                    no_inv(self)?;
                    if dir.is_some() {
                        return Err(twice(self));
                    }
                    let d = match v.s.to_ascii_uppercase().as_str() {
                        "ORIGINAL" => Direction::Original,
                        "REPLY" => Direction::Reply,
                        _ => {
                            return Err(self.err(
                                v.col,
                                format!("bad --ctdir \"{}\" (ORIGINAL or REPLY)", v.s),
                            ))
                        }
                    };
                    *dir = Some((d, false));
                }
            },
            Module::Comment(slot) => {
                no_inv(self)?;
                if slot.is_some() {
                    return Err(twice(self));
                }
                if v.s.chars().count() > 255 {
                    return Err(self.err(v.col, "comment is longer than 255 characters"));
                }
                *slot = Some(v.s.clone());
            }
            Module::Stateful(x) => self.ext_apply(x, o, v, inv, negated, col)?,
            Module::AddrType { src, dst } => {
                if o.starts_with("--limit-iface") {
                    return Err(self.err(col, format!("addrtype option \"{o}\" is not supported")));
                }
                let slot = if o == "--src-type" { src } else { dst };
                if slot.is_some() {
                    return Err(twice(self));
                }
                *slot = Some((parse_addr_types(&v.s).map_err(|m| self.err(v.col, m))?, inv));
            }
            Module::Limit { rate, burst } => {
                no_inv(self)?;
                if o == "--limit" {
                    if rate.is_some() {
                        return Err(twice(self));
                    }
                    *rate = Some(parse_rate(&v.s).map_err(|m| self.err(v.col, m))?);
                } else {
                    if burst.is_some() {
                        return Err(twice(self));
                    }
                    let b: u32 =
                        v.s.parse()
                            .ok()
                            .filter(|b| (1..=10000).contains(b))
                            .ok_or_else(|| {
                                self.err(v.col, format!("bad --limit-burst \"{}\" (1..10000)", v.s))
                            })?;
                    *burst = Some(b);
                }
            }
        }
        let _ = fam;
        Ok(())
    }

    fn finish(self) -> Res<DraftRule> {
        let mut matches = Vec::new();
        if let Some((net, neg)) = self.src {
            matches.push(Match::Src { net, neg });
        }
        if let Some((net, neg)) = self.dst {
            matches.push(Match::Dst { net, neg });
        }
        if let Some((iface, neg)) = self.iface_in.clone() {
            matches.push(Match::In { iface, neg });
        }
        if let Some((iface, neg)) = self.iface_out.clone() {
            matches.push(Match::Out { iface, neg });
        }
        if let Some((proto, neg)) = self.proto {
            if proto != 0 {
                matches.push(Match::Proto { proto, neg });
            }
        }
        if let Some(neg) = self.frag {
            matches.push(Match::Fragment { neg });
        }
        let mut comment = None;
        for m in &self.modules {
            let c = self.chain_col;
            let need = |what: &str| self.err(c, format!("match \"{}\" needs {what}", m.name()));
            let cm = match m {
                Module::Tcp {
                    sport,
                    dport,
                    flags,
                } => Match::Tcp {
                    sport: sport.unwrap_or(PortRange::ANY),
                    dport: dport.unwrap_or(PortRange::ANY),
                    flags: *flags,
                },
                Module::Udp { sport, dport } => Match::Udp {
                    sport: sport.unwrap_or(PortRange::ANY),
                    dport: dport.unwrap_or(PortRange::ANY),
                },
                Module::Icmp(t) => {
                    let (ty, code_lo, code_hi, neg, any) =
                        t.unwrap_or((0xff, 0, 0xff, false, true));
                    Match::Icmp {
                        ty,
                        code_lo,
                        code_hi,
                        neg,
                        any,
                    }
                }
                Module::Icmp6(t) => {
                    let (ty, code_lo, code_hi, neg) = t.ok_or_else(|| need("--icmpv6-type"))?;
                    Match::Icmp6 {
                        ty,
                        code_lo,
                        code_hi,
                        neg,
                    }
                }
                Module::Multiport(t) => {
                    let (which, ports, neg) = t
                        .clone()
                        .ok_or_else(|| need("--dports, --sports or --ports"))?;
                    Match::Multiport { which, ports, neg }
                }
                Module::State(t) => {
                    let (mask, neg) = t.ok_or_else(|| need("--state"))?;
                    Match::State { mask, neg }
                }
                Module::Conntrack {
                    state,
                    status,
                    dir,
                    tuples,
                } => {
                    if state.is_none() && status.is_none() && dir.is_none() && tuples.is_empty() {
                        return Err(need("--ctstate, --ctstatus, --ctdir or a tuple option"));
                    }
                    Match::Conntrack {
                        state: *state,
                        status: *status,
                        dir: *dir,
                        tuples: tuples.clone().into_boxed_slice(),
                    }
                }
                Module::Comment(t) => {
                    comment = Some(t.clone().ok_or_else(|| need("--comment"))?);
                    Match::Comment
                }
                Module::Stateful(x) => Match::Stateful(Box::new(self.ext_finish(x, c)?)),
                Module::AddrType { src, dst } => {
                    if src.is_none() && dst.is_none() {
                        return Err(need("--src-type or --dst-type"));
                    }
                    Match::AddrType {
                        src: *src,
                        dst: *dst,
                    }
                }
                Module::Ext(x) => Match::Ext(Box::new(ext::finish_match(self.r, x, self.proto)?)),
                Module::Limit { rate, burst } => {
                    let (count, unit, interval) =
                        rate.unwrap_or((3, "hour", 3_600_000_000_000 / 3));
                    let slot = self.r.d.limits.len() as u32;
                    self.r.d.limits.push(LimitSpec {
                        interval,
                        burst: burst.unwrap_or(5),
                        count,
                        unit,
                    });
                    Match::Limit { slot }
                }
            };
            matches.push(cm);
        }
        let table = self.table;
        let (target, target_col) = match self.target.clone() {
            None => (DraftTarget::Done(Target::None), self.chain_col),
            Some((name, col)) => {
                let t = match name.as_str() {
                    _ if self.goto => DraftTarget::Chain {
                        name: name.clone(),
                        goto: true,
                    },
                    "ACCEPT" => DraftTarget::Done(Target::Accept),
                    "DROP" if table == Table::Nat => return Err(self.err(
                        col,
                        "the nat table is not intended for filtering: DROP is not allowed in it",
                    )),
                    "DROP" => DraftTarget::Done(Target::Drop),
                    "RETURN" => DraftTarget::Done(Target::Return),
                    "REJECT" => {
                        if table != Table::Filter {
                            return Err(self.err(col, "REJECT is only valid in the filter table"));
                        }
                        let kind = self.reject.map_or(RejectKind::IcmpPortUnreachable, |r| r.0);
                        DraftTarget::Done(Target::Reject(kind))
                    }
                    "LOG" => DraftTarget::Done(Target::Log {
                        prefix: self.log.0.clone(),
                        level: self.log.1,
                        flags: self.log.2,
                    }),
                    "NOTRACK" | "CT" => {
                        if table != Table::Raw {
                            return Err(
                                self.err(col, format!("{name} is only valid in the raw table"))
                            );
                        }
                        if name == "NOTRACK" {
                            DraftTarget::Done(Target::Notrack)
                        } else {
                            if self.ct.1 && self.ct.0.is_some() {
                                return Err(
                                    self.err(col, "CT --notrack cannot be combined with --helper")
                                );
                            }
                            DraftTarget::Done(Target::Ct {
                                helper: self.ct.0,
                                notrack: self.ct.1,
                            })
                        }
                    }
                    n if nat::kind_of(n).is_some() => {
                        if table != Table::Nat {
                            return Err(
                                self.err(col, format!("{name} is only valid in the nat table"))
                            );
                        }
                        let k = nat::kind_of(n).expect("checked");
                        DraftTarget::Done(Target::Nat(Box::new(self.nat_target(k, col)?)))
                    }
                    // A guard, so the list of unsupported targets below stays as it is.
                    _ if name == "SET" => {
                        DraftTarget::Done(Target::Stateful(Box::new(self.ext_set_target(col)?)))
                    }
                    n if ext_target::target_opts(n).is_some() => {
                        let ch = &self.r.d.chains[self.chain];
                        let builtin = ch.policy.is_some().then(|| ch.name.clone());
                        let t = ext_target::finish_target(
                            self.r,
                            n,
                            &self.ext_target,
                            (table, builtin.as_deref()),
                            self.proto,
                            col,
                        )?;
                        DraftTarget::Done(Target::Ext(Box::new(t)))
                    }
                    "NFQUEUE" | "QUEUE" | "TRACE" | "CLASSIFY" | "TEE" | "AUDIT" | "SECMARK"
                    | "CONNSECMARK" | "IDLETIMER" | "LED" | "SYNPROXY" | "TPROXY" => {
                        return Err(self.err(
                            col,
                            format!("target \"{name}\" is not supported by statewall"),
                        ))
                    }
                    _ => DraftTarget::Chain {
                        name: name.clone(),
                        goto: false,
                    },
                };
                (t, col)
            }
        };
        Ok(DraftRule {
            chain: self.chain,
            line: self.r.line,
            matches,
            target,
            target_col,
            comment,
            default_reject: self.target.as_ref().is_some_and(|t| t.0 == "REJECT")
                && self.reject.is_none(),
        })
    }
}
