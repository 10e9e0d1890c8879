//! The `iptables-restore` reader and the compiler (chain resolution, loop and depth
//! checks, the per-chain index). Control-plane code: allocates freely.

use super::{
    list, state_bits, Chain, Helper, Iface, LimitSpec, Match, Net, Policy, PortRange, PortsWhich,
    ProtoIndex, RejectKind, Rule, Ruleset, RulesetError, Table, Target, MAX_CALL_DEPTH,
    PROTO_CLASSES,
};
use crate::conntrack::{CtStatus, Direction};
use crate::packet::{proto, Family};
use std::net::IpAddr;

/// A word of a line and its 1-based column.
#[derive(Debug, Clone)]
struct Tok {
    s: String,
    col: usize,
}

/// Splits a line as iptables-restore does: whitespace separates, `"` or `'` quote,
/// a backslash escapes the next character.
fn tokenize(line: &str) -> Result<Vec<Tok>, (usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<Tok> = None;
    let mut quote: Option<(char, usize)> = None;
    let mut escaped = false;
    for (i, ch) in line.chars().enumerate() {
        let col = i + 1;
        if escaped {
            cur.get_or_insert(Tok {
                s: String::new(),
                col,
            })
            .s
            .push(ch);
            escaped = false;
            continue;
        }
        if ch == '\\' {
            cur.get_or_insert(Tok {
                s: String::new(),
                col,
            });
            escaped = true;
            continue;
        }
        if let Some((q, _)) = quote {
            if ch == q {
                quote = None;
            } else {
                cur.as_mut().expect("token open in quote").s.push(ch);
            }
            continue;
        }
        if ch == '"' || ch == '\'' {
            cur.get_or_insert(Tok {
                s: String::new(),
                col,
            });
            quote = Some((ch, col));
            continue;
        }
        if ch.is_whitespace() {
            if let Some(t) = cur.take() {
                out.push(t);
            }
            continue;
        }
        cur.get_or_insert(Tok {
            s: String::new(),
            col,
        })
        .s
        .push(ch);
    }
    if let Some((_, col)) = quote {
        return Err((col, "unterminated quote".into()));
    }
    if escaped {
        return Err((line.chars().count(), "backslash at end of line".into()));
    }
    out.extend(cur);
    Ok(out)
}

/// A parsed rule before chain names are resolved.
struct Draft {
    chain: usize,
    line: usize,
    matches: Vec<Match>,
    target: DraftTarget,
    target_col: usize,
    comment: Option<String>,
    default_reject: bool,
}

enum DraftTarget {
    Done(Target),
    Chain { name: String, goto: bool },
}

/// `-m multiport`: which ports, the list, `!`.
type MultiportSpec = (PortsWhich, Vec<(u16, u16)>, bool);

/// A `-m` module being filled in by its options.
enum Module {
    Tcp {
        sport: Option<PortRange>,
        dport: Option<PortRange>,
        flags: Option<(u8, u8, bool)>,
    },
    Udp {
        sport: Option<PortRange>,
        dport: Option<PortRange>,
    },
    Icmp(Option<(u8, u8, u8, bool, bool)>),
    Icmp6(Option<(u8, u8, u8, bool)>),
    Multiport(Option<MultiportSpec>),
    State(Option<(u16, bool)>),
    Conntrack {
        state: Option<(u16, bool)>,
        status: Option<(u8, bool)>,
        dir: Option<(Direction, bool)>,
    },
    Comment(Option<String>),
    Limit {
        rate: Option<(u32, &'static str, u64)>,
        burst: Option<u32>,
    },
}

impl Module {
    fn name(&self) -> &'static str {
        match self {
            Module::Tcp { .. } => "tcp",
            Module::Udp { .. } => "udp",
            Module::Icmp(_) => "icmp",
            Module::Icmp6(_) => "icmp6",
            Module::Multiport(_) => "multiport",
            Module::State(_) => "state",
            Module::Conntrack { .. } => "conntrack",
            Module::Comment(_) => "comment",
            Module::Limit { .. } => "limit",
        }
    }

    fn accepts(&self, opt: &str) -> bool {
        match self {
            Module::Tcp { .. } => matches!(
                opt,
                "--sport"
                    | "--source-port"
                    | "--dport"
                    | "--destination-port"
                    | "--tcp-flags"
                    | "--syn"
            ),
            Module::Udp { .. } => matches!(
                opt,
                "--sport" | "--source-port" | "--dport" | "--destination-port"
            ),
            Module::Icmp(_) => opt == "--icmp-type",
            Module::Icmp6(_) => opt == "--icmpv6-type",
            Module::Multiport(_) => matches!(
                opt,
                "--sports" | "--source-ports" | "--dports" | "--destination-ports" | "--ports"
            ),
            Module::State(_) => opt == "--state",
            Module::Conntrack { .. } => matches!(opt, "--ctstate" | "--ctstatus" | "--ctdir"),
            Module::Comment(_) => opt == "--comment",
            Module::Limit { .. } => matches!(opt, "--limit" | "--limit-burst"),
        }
    }
}

/// The reader's state across lines.
struct Reader<'a> {
    file: &'a str,
    family: Option<Family>,
    chains: Vec<Chain>,
    chain_lines: Vec<usize>,
    drafts: Vec<Draft>,
    tables: Vec<Table>,
    limits: Vec<LimitSpec>,
    /// The open table and the first chain id of it.
    open: Option<(Table, usize, usize)>,
    line: usize,
}

type Res<T> = Result<T, RulesetError>;

impl<'a> Reader<'a> {
    fn err(&self, col: usize, msg: impl Into<String>) -> RulesetError {
        RulesetError {
            file: self.file.to_string(),
            line: self.line,
            column: col,
            message: msg.into(),
        }
    }

    fn set_family(&mut self, f: Family, col: usize, what: &str) -> Res<()> {
        match self.family {
            None => {
                self.family = Some(f);
                Ok(())
            }
            Some(g) if g == f => Ok(()),
            Some(g) => Err(self.err(
                col,
                format!(
                    "{what} is {} but this is an {} ruleset",
                    fam_name(f),
                    fam_name(g)
                ),
            )),
        }
    }

    fn line(&mut self, raw: &str) -> Res<()> {
        let toks = tokenize(raw).map_err(|(c, m)| self.err(c, m))?;
        let Some(first) = toks.first() else {
            return Ok(());
        };
        if first.s.starts_with('#') {
            return Ok(());
        }
        if let Some(name) = first.s.strip_prefix('*') {
            return self.table(name, &toks);
        }
        if first.s == "COMMIT" {
            if toks.len() > 1 {
                return Err(self.err(toks[1].col, "unexpected text after COMMIT"));
            }
            if self.open.take().is_none() {
                return Err(self.err(first.col, "COMMIT without a table"));
            }
            return Ok(());
        }
        let Some((table, first_chain, _)) = self.open else {
            return Err(self.err(
                first.col,
                "expected a table (\"*filter\" or \"*raw\") first",
            ));
        };
        if let Some(name) = first.s.strip_prefix(':') {
            return self.chain_decl(table, first_chain, name, &toks);
        }
        self.rule(table, first_chain, &toks)
    }

    fn table(&mut self, name: &str, toks: &[Tok]) -> Res<()> {
        let col = toks[0].col;
        if let Some((t, _, line)) = self.open {
            return Err(self.err(
                col,
                format!("table {} (line {line}) has no COMMIT", t.name()),
            ));
        }
        if toks.len() > 1 {
            return Err(self.err(toks[1].col, "unexpected text after the table name"));
        }
        let table = match name {
            "filter" => Table::Filter,
            "raw" => Table::Raw,
            "nat" | "mangle" | "security" => {
                return Err(self.err(
                    col,
                    format!(
                        "table \"{name}\" is not supported (statewall has *filter and *raw only)"
                    ),
                ))
            }
            _ => return Err(self.err(col, format!("unknown table \"{name}\""))),
        };
        if self.tables.contains(&table) {
            return Err(self.err(col, format!("table {name} given twice")));
        }
        self.tables.push(table);
        let first = self.chains.len();
        let builtins: &[&str] = match table {
            Table::Filter => &["INPUT", "FORWARD", "OUTPUT"],
            Table::Raw => &["PREROUTING", "OUTPUT"],
        };
        for b in builtins {
            self.chains.push(new_chain(table, b, Some(Policy::Accept)));
            self.chain_lines.push(0);
        }
        self.open = Some((table, first, self.line));
        Ok(())
    }

    fn find_chain(&self, first: usize, name: &str) -> Option<usize> {
        (first..self.chains.len()).find(|&i| self.chains[i].name == name)
    }

    fn chain_decl(&mut self, table: Table, first: usize, name: &str, toks: &[Tok]) -> Res<()> {
        let col = toks[0].col;
        let Some(pol) = toks.get(1) else {
            return Err(self.err(col, format!("chain \"{name}\" needs a policy (or \"-\")")));
        };
        if let Some(t) = toks.get(2) {
            parse_counters(&t.s)
                .ok_or_else(|| self.err(t.col, "bad counters, want [pkts:bytes]"))?;
        }
        if let Some(t) = toks.get(3) {
            return Err(self.err(t.col, "unexpected text after the chain counters"));
        }
        let builtin = builtin_names(table).contains(&name);
        if let Some(id) = self.find_chain(first, name) {
            if !builtin || self.chain_lines[id] != 0 {
                return Err(self.err(col, format!("chain \"{name}\" declared twice")));
            }
        }
        if builtin {
            let p = match pol.s.as_str() {
                "ACCEPT" => Policy::Accept,
                "DROP" => Policy::Drop,
                "-" => {
                    return Err(self.err(
                        pol.col,
                        format!("built-in chain {name} needs a policy ACCEPT or DROP"),
                    ))
                }
                other => {
                    return Err(
                        self.err(pol.col, format!("bad policy \"{other}\" (ACCEPT or DROP)"))
                    )
                }
            };
            let id = self.find_chain(first, name).expect("built-ins exist");
            self.chains[id].policy = Some(p);
            self.chain_lines[id] = self.line;
            return Ok(());
        }
        if pol.s != "-" {
            return Err(self.err(
                pol.col,
                format!("user chain \"{name}\" cannot have a policy (write \"-\")"),
            ));
        }
        check_chain_name(name).map_err(|m| self.err(col + 1, m))?;
        self.chains.push(new_chain(table, name, None));
        self.chain_lines.push(self.line);
        Ok(())
    }

    fn rule(&mut self, table: Table, first: usize, toks: &[Tok]) -> Res<()> {
        let mut i = 0;
        if toks[0].s.starts_with('[') {
            parse_counters(&toks[0].s)
                .ok_or_else(|| self.err(toks[0].col, "bad counters, want [pkts:bytes]"))?;
            i = 1;
        }
        let Some(cmd) = toks.get(i) else {
            return Err(self.err(toks[0].col, "counters without a rule"));
        };
        match cmd.s.as_str() {
            "-A" | "--append" => {}
            "-I" | "--insert" | "-D" | "--delete" | "-R" | "--replace" | "-N" | "--new-chain"
            | "-P" | "--policy" | "-F" | "--flush" | "-X" | "--delete-chain" | "-Z" | "--zero"
            | "-E" | "--rename-chain" => {
                return Err(self.err(
                    cmd.col,
                    format!(
                        "command \"{}\" is not supported (iptables-save files use -A and :CHAIN lines only)",
                        cmd.s
                    ),
                ))
            }
            other => return Err(self.err(cmd.col, format!("unknown command \"{other}\""))),
        }
        let Some(cname) = toks.get(i + 1) else {
            return Err(self.err(cmd.col, "-A needs a chain name"));
        };
        let Some(chain) = self.find_chain(first, &cname.s) else {
            return Err(self.err(
                cname.col,
                format!(
                    "chain \"{}\" does not exist in table {}",
                    cname.s,
                    table.name()
                ),
            ));
        };
        let draft = RuleParser::new(self, table, chain, &toks[i + 2..], cname.col).run()?;
        self.drafts.push(draft);
        Ok(())
    }
}

fn fam_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

fn builtin_names(t: Table) -> &'static [&'static str] {
    match t {
        Table::Filter => &["INPUT", "FORWARD", "OUTPUT"],
        Table::Raw => &["PREROUTING", "OUTPUT"],
    }
}

fn new_chain(table: Table, name: &str, policy: Option<Policy>) -> Chain {
    Chain {
        table,
        name: name.to_string(),
        policy,
        rules: Vec::new(),
        index: Default::default(),
        references: 0,
    }
}

fn check_chain_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty chain name".into());
    }
    if name.chars().count() > 28 {
        return Err(format!(
            "chain name \"{name}\" is longer than 28 characters"
        ));
    }
    if name.starts_with('-') || name.starts_with('!') {
        return Err(format!("bad chain name \"{name}\""));
    }
    if matches!(
        name,
        "ACCEPT" | "DROP" | "REJECT" | "RETURN" | "LOG" | "CT" | "NOTRACK" | "QUEUE"
    ) {
        return Err(format!("chain name \"{name}\" is a target name"));
    }
    Ok(())
}

fn parse_counters(s: &str) -> Option<(u64, u64)> {
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    let (a, b) = inner.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Parses the options of one `-A` line.
struct RuleParser<'r, 'a> {
    r: &'r mut Reader<'a>,
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
}

impl<'r, 'a> RuleParser<'r, 'a> {
    fn new(
        r: &'r mut Reader<'a>,
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

    fn run(mut self) -> Res<Draft> {
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
                    let p = parse_proto(&v.s)
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
                    let chain_name = self.r.chains[self.chain].name.clone();
                    let builtin = self.r.chains[self.chain].policy.is_some();
                    if builtin && input && chain_name == "OUTPUT" {
                        return Err(self.err(tok.col, "can't use -i with OUTPUT"));
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
                    if self.r.family == Some(Family::V6) {
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

    fn parse_net(&mut self, v: &Tok) -> Res<Net> {
        let (addr, mask) = match v.s.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (v.s.as_str(), None),
        };
        if addr.contains(',') {
            return Err(self.err(
                v.col,
                "several addresses in one option are not supported; write one rule per address",
            ));
        }
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| self.err(v.col, format!("bad address \"{addr}\"")))?;
        let (fam, bits) = match ip {
            IpAddr::V4(a) => (Family::V4, (u32::from(a) as u128) << 96),
            IpAddr::V6(a) => (Family::V6, u128::from(a)),
        };
        self.r
            .set_family(fam, v.col, &format!("address \"{addr}\""))?;
        let width = if fam == Family::V4 { 32 } else { 128 };
        let mask = match mask {
            None => prefix_mask(width, width),
            Some(m) => {
                if let Ok(n) = m.parse::<u32>() {
                    if n > width {
                        return Err(self.err(v.col, format!("bad prefix length \"/{m}\"")));
                    }
                    prefix_mask(n, width)
                } else {
                    match (fam, m.parse::<IpAddr>()) {
                        (Family::V4, Ok(IpAddr::V4(a))) => (u32::from(a) as u128) << 96,
                        (Family::V6, Ok(IpAddr::V6(a))) => u128::from(a),
                        _ => return Err(self.err(v.col, format!("bad mask \"/{m}\""))),
                    }
                }
            }
        };
        Ok(Net {
            net: bits & mask,
            mask,
        })
    }

    fn load_module(&mut self, tok: &Tok, v: &Tok) -> Res<()> {
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
            },
            "comment" => Module::Comment(None),
            "limit" => Module::Limit {
                rate: None,
                burst: None,
            },
            "recent" | "addrtype" | "set" | "mark" | "connmark" | "owner" | "mac" | "iprange"
            | "hashlimit" | "length" | "physdev" | "string" | "time" | "u32" | "connlimit"
            | "pkttype" | "ttl" | "hl" | "tos" | "dscp" | "policy" | "frag" | "rt"
            | "ipv6header" | "hbh" | "dst" | "ah" | "esp" | "sctp" | "helper" | "quota"
            | "statistic" | "bpf" | "cgroup" | "socket" | "devgroup" | "realm" | "ecn"
            | "tcpmss" => {
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
                    .map(|&p| format!("-p {}", proto_name(p)))
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
                "--ctproto" | "--ctorigsrc" | "--ctorigdst" | "--ctreplsrc" | "--ctrepldst"
                | "--ctorigsrcport" | "--ctorigdstport" | "--ctreplsrcport" | "--ctrepldstport"
                | "--ctexpire" => {
                    format!("option \"{o}\" of -m conntrack is not supported")
                }
                _ => format!("unknown option \"{o}\""),
            };
            return Err(self.err(tok.col, msg));
        };
        let negated = neg.take();
        let inv = negated.is_some();
        let v = if o == "--syn" {
            None
        } else {
            Some(self.value(tok, &mut None, false)?)
        };
        let fam = self.r.family;
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
            Module::Conntrack { state, status, dir } => match o {
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

    /// Target options; returns false when `tok` is not one of the target's.
    fn target_option(&mut self, tok: &Tok, neg: &mut Option<usize>) -> Res<bool> {
        let (target, _) = self.target.clone().expect("target set");
        let o = tok.s.as_str();
        let known = match target.as_str() {
            "REJECT" => o == "--reject-with",
            "LOG" => o.starts_with("--log-"),
            "CT" => matches!(
                o,
                "--notrack"
                    | "--helper"
                    | "--zone"
                    | "--zone-orig"
                    | "--zone-reply"
                    | "--timeout"
                    | "--ctevents"
                    | "--expevents"
                    | "--ctmask"
                    | "--nfmask"
            ),
            _ => false,
        };
        if !known {
            return Ok(false);
        }
        self.no_neg(*neg, tok)?;
        match o {
            "--reject-with" => {
                let v = self.value(tok, neg, false)?;
                if self.reject.is_some() {
                    return Err(self.err(tok.col, "option \"--reject-with\" given twice"));
                }
                let (kind, fam) = parse_reject(&v.s)
                    .ok_or_else(|| self.err(v.col, format!("unknown --reject-with \"{}\"", v.s)))?;
                if let Some(f) = fam {
                    self.r
                        .set_family(f, v.col, &format!("--reject-with {}", v.s))?;
                }
                if kind == RejectKind::TcpReset && self.proto != Some((proto::TCP, false)) {
                    return Err(self.err(v.col, "tcp-reset is only valid with \"-p tcp\""));
                }
                self.reject = Some((kind, v.col));
            }
            "--log-prefix" => {
                let v = self.value(tok, neg, false)?;
                if v.s.chars().count() > 29 {
                    return Err(self.err(v.col, "--log-prefix is longer than 29 characters"));
                }
                self.log.0 = v.s;
            }
            "--log-level" => {
                let v = self.value(tok, neg, false)?;
                self.log.1 = parse_log_level(&v.s)
                    .ok_or_else(|| self.err(v.col, format!("bad --log-level \"{}\"", v.s)))?;
            }
            "--log-tcp-sequence" => self.log.2 |= 0x01,
            "--log-tcp-options" => self.log.2 |= 0x02,
            "--log-ip-options" => self.log.2 |= 0x04,
            "--log-uid" => self.log.2 |= 0x08,
            "--log-macdecode" => self.log.2 |= 0x20,
            "--notrack" => self.ct.1 = true,
            "--helper" => {
                let v = self.value(tok, neg, false)?;
                if v.s != "ftp" {
                    return Err(self.err(
                        v.col,
                        format!("helper \"{}\" is not supported (only \"ftp\")", v.s),
                    ));
                }
                self.ct.0 = Some(Helper::Ftp);
            }
            _ if o.starts_with("--log-") => {
                return Err(self.err(tok.col, format!("unknown option \"{o}\"")))
            }
            _ => {
                return Err(self.err(
                    tok.col,
                    format!("CT option \"{o}\" is not supported (only --notrack and --helper)"),
                ))
            }
        }
        Ok(true)
    }

    fn finish(self) -> Res<Draft> {
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
                Module::Conntrack { state, status, dir } => {
                    if state.is_none() && status.is_none() && dir.is_none() {
                        return Err(need("--ctstate, --ctstatus or --ctdir"));
                    }
                    Match::Conntrack {
                        state: *state,
                        status: *status,
                        dir: *dir,
                    }
                }
                Module::Comment(t) => {
                    comment = Some(t.clone().ok_or_else(|| need("--comment"))?);
                    Match::Comment
                }
                Module::Limit { rate, burst } => {
                    let (count, unit, interval) =
                        rate.unwrap_or((3, "hour", 3_600_000_000_000 / 3));
                    let slot = self.r.limits.len() as u32;
                    self.r.limits.push(LimitSpec {
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
                    "DNAT" | "SNAT" | "MASQUERADE" | "REDIRECT" | "NETMAP" | "MARK"
                    | "CONNMARK" | "TCPMSS" | "NFLOG" | "ULOG" | "NFQUEUE" | "QUEUE" | "TRACE"
                    | "SET" | "TOS" | "DSCP" | "TTL" | "HL" | "CLASSIFY" | "TEE" | "AUDIT"
                    | "CHECKSUM" | "SECMARK" | "CONNSECMARK" | "IDLETIMER" | "LED" | "SYNPROXY" => {
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
        Ok(Draft {
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

fn prefix_mask(n: u32, width: u32) -> u128 {
    let top = if n == 0 { 0 } else { u128::MAX << (128 - n) };
    if width == 32 {
        top & (u128::from(u32::MAX) << 96)
    } else {
        top
    }
}

pub(crate) fn parse_proto(s: &str) -> Option<u8> {
    let l = s.to_ascii_lowercase();
    Some(match l.as_str() {
        "all" => 0,
        "tcp" => proto::TCP,
        "udp" => proto::UDP,
        "icmp" => proto::ICMP,
        "icmpv6" | "ipv6-icmp" | "icmp6" => proto::ICMPV6,
        "esp" => proto::ESP,
        "ah" => proto::AH,
        "gre" => proto::GRE,
        "sctp" => proto::SCTP,
        "udplite" => 136,
        "igmp" => 2,
        "ipip" | "ipencap" => 4,
        "ipv6" => 41,
        "ospf" => 89,
        "pim" => 103,
        "vrrp" => 112,
        "mh" | "ipv6-mh" => 135,
        _ => return l.parse::<u8>().ok(),
    })
}

pub(crate) fn proto_name(p: u8) -> String {
    match p {
        0 => "all".into(),
        proto::TCP => "tcp".into(),
        proto::UDP => "udp".into(),
        proto::ICMP => "icmp".into(),
        proto::ICMPV6 => "ipv6-icmp".into(),
        proto::ESP => "esp".into(),
        proto::AH => "ah".into(),
        proto::GRE => "gre".into(),
        proto::SCTP => "sctp".into(),
        136 => "udplite".into(),
        _ => p.to_string(),
    }
}

fn parse_iface(s: &str) -> Result<Iface, String> {
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
fn parse_port(s: &str) -> Result<u16, String> {
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

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
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

fn parse_multiport(s: &str) -> Result<Vec<(u16, u16)>, String> {
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

fn parse_tcp_flags(s: &str) -> Result<u8, String> {
    let mut f = 0u8;
    for n in s.split(',') {
        f |= match n.to_ascii_uppercase().as_str() {
            "FIN" => 0x01,
            "SYN" => 0x02,
            "RST" => 0x04,
            "PSH" => 0x08,
            "ACK" => 0x10,
            "URG" => 0x20,
            "ALL" => 0x3f,
            "NONE" => 0,
            _ => return Err(format!("unknown TCP flag \"{n}\"")),
        };
    }
    Ok(f)
}

const ICMP_NAMES: &[(&str, u8, u8, u8)] = &[
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

const ICMP6_NAMES: &[(&str, u8, u8, u8)] = &[
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
fn parse_icmp_type(s: &str, v6: bool) -> Option<(u8, u8, u8, bool)> {
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

fn parse_states(s: &str, conntrack: bool) -> Result<u16, String> {
    let mut m = 0;
    for n in s.split(',') {
        m |= match n.to_ascii_uppercase().as_str() {
            "INVALID" => state_bits::INVALID,
            "ESTABLISHED" => state_bits::ESTABLISHED,
            "NEW" => state_bits::NEW,
            "RELATED" => state_bits::RELATED,
            "UNTRACKED" => state_bits::UNTRACKED,
            "SNAT" if conntrack => state_bits::SNAT,
            "DNAT" if conntrack => state_bits::DNAT,
            _ => return Err(format!("bad state \"{n}\"")),
        };
    }
    Ok(m)
}

fn parse_status(s: &str) -> Result<u8, String> {
    let mut m = 0;
    for n in s.split(',') {
        m |= match n.to_ascii_uppercase().as_str() {
            "NONE" => 0,
            "EXPECTED" => CtStatus::EXPECTED,
            "SEEN_REPLY" => CtStatus::SEEN_REPLY,
            "ASSURED" => CtStatus::ASSURED,
            "CONFIRMED" => CtStatus::CONFIRMED,
            _ => return Err(format!("bad ctstatus \"{n}\"")),
        };
    }
    Ok(m)
}

/// `N/unit` (unit a prefix of second, minute, hour, day) -> (N, unit, ns per token).
fn parse_rate(s: &str) -> Result<(u32, &'static str, u64), String> {
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

fn parse_reject(s: &str) -> Option<(RejectKind, Option<Family>)> {
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

fn parse_log_level(s: &str) -> Option<u8> {
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

/// Reads the whole text, then compiles.
pub(crate) fn parse(text: &str, file: &str, hint: Option<Family>) -> Res<Ruleset> {
    let mut r = Reader {
        file,
        family: hint,
        chains: Vec::new(),
        chain_lines: Vec::new(),
        drafts: Vec::new(),
        tables: Vec::new(),
        limits: Vec::new(),
        open: None,
        line: 0,
    };
    for (i, raw) in text.lines().enumerate() {
        r.line = i + 1;
        r.line(raw)?;
    }
    if let Some((t, _, line)) = r.open {
        r.line = line;
        return Err(r.err(1, format!("table {} has no COMMIT", t.name())));
    }
    compile(r)
}

/// Resolves chain targets, checks loops and depth, builds the rules and the index.
fn compile(mut r: Reader) -> Res<Ruleset> {
    let family = r.family.unwrap_or(Family::V4);
    for t in [Table::Raw, Table::Filter] {
        if !r.tables.contains(&t) {
            for b in builtin_names(t) {
                r.chains.push(new_chain(t, b, Some(Policy::Accept)));
            }
        }
    }
    let find = |t: Table, n: &str| {
        r.chains
            .iter()
            .position(|c| c.table == t && c.name == n)
            .expect("built-in chain exists")
    };
    let builtin = [
        find(Table::Raw, "PREROUTING"),
        find(Table::Raw, "OUTPUT"),
        find(Table::Filter, "INPUT"),
        find(Table::Filter, "FORWARD"),
        find(Table::Filter, "OUTPUT"),
    ];
    let mut rules = Vec::with_capacity(r.drafts.len());
    let mut cols = Vec::with_capacity(r.drafts.len());
    let drafts = std::mem::take(&mut r.drafts);
    for d in drafts {
        let table = r.chains[d.chain].table;
        let target = match d.target {
            DraftTarget::Done(Target::Reject(_)) if d.default_reject && family == Family::V6 => {
                Target::Reject(RejectKind::Icmp6PortUnreachable)
            }
            DraftTarget::Done(t) => t,
            DraftTarget::Chain { name, goto } => {
                let Some(c) = r
                    .chains
                    .iter()
                    .position(|c| c.table == table && c.name == name && c.policy.is_none())
                else {
                    r.line = d.line;
                    let msg = if r.chains.iter().any(|c| c.table == table && c.name == name) {
                        format!("cannot jump to built-in chain \"{name}\"")
                    } else {
                        format!("unknown target or chain \"{name}\"")
                    };
                    return Err(r.err(d.target_col, msg));
                };
                r.chains[c].references += 1;
                if goto {
                    Target::Goto(c)
                } else {
                    Target::Jump(c)
                }
            }
        };
        let id = rules.len() as u32;
        r.chains[d.chain].rules.push(id);
        cols.push(d.target_col);
        rules.push(Rule {
            chain: d.chain,
            line: d.line,
            matches: d.matches,
            target,
            comment: d.comment,
            text: String::new(),
        });
    }
    check_graph(&r, &rules, &cols)?;
    for rule in rules.iter_mut() {
        rule.text = list::rule_text(rule, &r.chains, &r.limits, family);
    }
    let raw_logs = rules
        .iter()
        .any(|x| r.chains[x.chain].table == Table::Raw && matches!(x.target, Target::Log { .. }));
    for c in 0..r.chains.len() {
        let idx = build_index(&rules, &r.chains[c].rules);
        r.chains[c].index = idx;
    }
    Ok(Ruleset {
        family,
        file: r.file.to_string(),
        tables: r.tables,
        chains: r.chains,
        rules,
        limits: r.limits,
        builtin,
        raw_logs,
        generation: 1,
        other: None,
    })
}

/// Refuses loops through -j/-g and call chains deeper than [`MAX_CALL_DEPTH`].
fn check_graph(r: &Reader, rules: &[Rule], cols: &[usize]) -> Res<()> {
    let n = r.chains.len();
    // 0 = unvisited, 1 = on the path, 2 = done; depth = most -j frames below a chain.
    let mut state = vec![0u8; n];
    let mut depth = vec![0usize; n];
    let fail = |rid: usize, msg: String| RulesetError {
        file: r.file.to_string(),
        line: rules[rid].line,
        column: cols[rid],
        message: msg,
    };
    fn visit(
        c: usize,
        r: &Reader,
        rules: &[Rule],
        state: &mut [u8],
        depth: &mut [usize],
        fail: &dyn Fn(usize, String) -> RulesetError,
    ) -> Result<(), RulesetError> {
        state[c] = 1;
        let mut d = 0;
        for &rid in &r.chains[c].rules {
            let rid = rid as usize;
            let (to, call) = match rules[rid].target {
                Target::Jump(t) => (t, 1),
                Target::Goto(t) => (t, 0),
                _ => continue,
            };
            match state[to] {
                1 => {
                    return Err(fail(
                        rid,
                        format!(
                            "loop: chain \"{}\" jumps back to \"{}\"",
                            r.chains[c].name, r.chains[to].name
                        ),
                    ))
                }
                0 => visit(to, r, rules, state, depth, fail)?,
                _ => {}
            }
            d = d.max(depth[to] + call);
            if d > MAX_CALL_DEPTH {
                return Err(fail(
                    rid,
                    format!("chain calls nested deeper than {MAX_CALL_DEPTH}"),
                ));
            }
        }
        depth[c] = d;
        state[c] = 2;
        Ok(())
    }
    for c in 0..n {
        if state[c] == 0 {
            visit(c, r, rules, &mut state, &mut depth, &fail)?;
        }
    }
    Ok(())
}

/// A rule's protocol class requirement, its destination-port ranges (if indexable) and
/// its source network (if it has a plain, non-negated `-s`).
type RuleKeys = (Option<usize>, Option<Vec<(u16, u16)>>, Option<Net>);

fn rule_keys(rule: &Rule) -> RuleKeys {
    let mut class = None;
    let mut ports = None;
    let mut src = None;
    for m in &rule.matches {
        match m {
            Match::Proto { proto, neg: false } => class = Some(super::proto_class(*proto)),
            Match::Tcp { dport, .. } | Match::Udp { dport, .. }
                if ports.is_none() && !dport.neg && *dport != PortRange::ANY =>
            {
                ports = Some(vec![(dport.lo, dport.hi)]);
            }
            Match::Multiport {
                which: PortsWhich::Dst,
                ports: p,
                neg: false,
            } if ports.is_none() => ports = Some(p.clone()),
            Match::Src { net, neg: false } if src.is_none() && net.mask != 0 => src = Some(*net),
            _ => {}
        }
    }
    (class, ports, src)
}

/// Most port segments one rule may be listed in before it counts as a wildcard.
const MAX_SEGMENTS_PER_RULE: usize = 64;
/// Fewest rules sharing one `-s` prefix length before a source index pays off (1 in
/// tests, so the property test against the reference interpreter exercises it).
const MIN_SRC_INDEXED: usize = if cfg!(test) { 1 } else { 8 };

/// Builds the candidate lists of one chain (see [`ProtoIndex`]): for each protocol
/// class, TCP/UDP rules with destination ports go into port segments; of the rest, the
/// rules with a plain `-s` of the most common prefix length go into a source index;
/// what remains is `wild`. A packet's candidates are `wild`, its port segment and its
/// source network's list, merged in rule order, so first-match order is exact.
fn build_index(rules: &[Rule], chain_rules: &[u32]) -> [ProtoIndex; PROTO_CLASSES] {
    let keys: Vec<_> = chain_rules
        .iter()
        .map(|&id| (id, rule_keys(&rules[id as usize])))
        .collect();
    let mut out: [ProtoIndex; PROTO_CLASSES] = Default::default();
    for (class, ix) in out.iter_mut().enumerate() {
        let members: Vec<_> = keys
            .iter()
            .filter(|(_, (c, _, _))| c.is_none_or(|c| c == class))
            .collect();
        ix.all = members.iter().map(|(id, _)| *id).collect();
        // Port segments (TCP and UDP classes only).
        let mut port_segs: Vec<Option<Vec<usize>>> = vec![None; members.len()];
        if class <= 1 {
            let mut bounds: Vec<u16> = vec![0];
            for (_, (c, p, _)) in &members {
                if let (Some(_), Some(p)) = (c, p) {
                    for &(lo, hi) in p {
                        bounds.push(lo);
                        if hi < 65535 {
                            bounds.push(hi + 1);
                        }
                    }
                }
            }
            bounds.sort_unstable();
            bounds.dedup();
            let seg_of = |port: u16| bounds.partition_point(|&b| b <= port) - 1;
            for (k, (_, (c, p, _))) in members.iter().enumerate() {
                if let (Some(_), Some(p)) = (c, p) {
                    let mut v = Vec::new();
                    for &(lo, hi) in p {
                        v.extend(seg_of(lo)..=seg_of(hi));
                    }
                    v.sort_unstable();
                    v.dedup();
                    if v.len() <= MAX_SEGMENTS_PER_RULE {
                        port_segs[k] = Some(v);
                    }
                }
            }
            if port_segs.iter().any(|s| s.is_some()) {
                let mut per_seg: Vec<Vec<u32>> = vec![Vec::new(); bounds.len()];
                for (k, segs) in port_segs.iter().enumerate() {
                    if let Some(v) = segs {
                        v.iter().for_each(|&s| per_seg[s].push(members[k].0));
                    }
                }
                ix.seg_start = Vec::with_capacity(bounds.len() + 1);
                for s in &per_seg {
                    ix.seg_start.push(ix.seg_rules.len() as u32);
                    ix.seg_rules.extend_from_slice(s);
                }
                ix.seg_start.push(ix.seg_rules.len() as u32);
                ix.bounds = bounds;
            }
        }
        // Source index over the rules not in a port segment.
        let mut by_mask: std::collections::HashMap<u128, usize> = Default::default();
        for (k, (_, (_, _, src))) in members.iter().enumerate() {
            if let (None, Some(n)) = (&port_segs[k], src) {
                *by_mask.entry(n.mask).or_default() += 1;
            }
        }
        let best = by_mask
            .into_iter()
            .filter(|&(_, n)| n >= MIN_SRC_INDEXED)
            .max_by_key(|&(m, n)| (n, m));
        let mut src_lists: std::collections::BTreeMap<u128, Vec<u32>> = Default::default();
        for (k, (id, (_, _, src))) in members.iter().enumerate() {
            if port_segs[k].is_some() {
                continue;
            }
            match (best, src) {
                (Some((mask, _)), Some(n)) if n.mask == mask => {
                    src_lists.entry(n.net).or_default().push(*id)
                }
                _ => ix.wild.push(*id),
            }
        }
        if let Some((mask, _)) = best {
            ix.src_mask = mask;
            for (net, list) in src_lists {
                ix.src_keys.push(net);
                ix.src_start.push(ix.src_rules.len() as u32);
                ix.src_rules.extend_from_slice(&list);
            }
            ix.src_start.push(ix.src_rules.len() as u32);
        }
    }
    out
}
