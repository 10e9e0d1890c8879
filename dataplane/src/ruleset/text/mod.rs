//! The text front end: reads `iptables-restore` text (tables, chains, policies,
//! COMMIT; each `-A` line through [`rule`]) into a [`Draft`], the compiler's input.
//! Every error carries `file:line:column`. Control-plane code: allocates freely.

mod ext;
mod ext_target;
mod lex;
mod module;
mod rule;
mod values;

use super::compile::{builtin_names, new_chain, Draft};
use super::{Policy, RulesetError, Table};
use crate::packet::Family;
use lex::{tokenize, Tok};
use rule::RuleParser;

/// The reader's state across lines.
struct Reader {
    /// What has been read so far.
    d: Draft,
    /// The line each chain was declared on (0: a built-in not declared yet).
    chain_lines: Vec<usize>,
    /// The open table and the first chain id of it.
    open: Option<(Table, usize, usize)>,
    line: usize,
    /// The sets `-m set` and `-j SET` may name.
    sets: crate::sets::SetRegistry,
}

type Res<T> = Result<T, RulesetError>;

impl Reader {
    fn err(&self, col: usize, msg: impl Into<String>) -> RulesetError {
        RulesetError {
            file: self.d.file.clone(),
            line: self.line,
            column: col,
            message: msg.into(),
        }
    }

    fn set_family(&mut self, f: Family, col: usize, what: &str) -> Res<()> {
        match self.d.family {
            None => {
                self.d.family = Some(f);
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
        if raw.trim_start().starts_with('#') {
            // A comment line is not tokenized (its text may hold lone quotes).
            return Ok(());
        }
        if raw.starts_with(':') || raw.starts_with('*') {
            // iptables-restore reads a chain line's name and policy (and a table line's
            // name) as whitespace-separated words and ignores what follows: text after
            // the counters (`:OUTPUT DROP [0:0] -m comment ...`) is not tokenized.
            let toks = plain_words(raw);
            if let Some(name) = toks[0].s.strip_prefix('*') {
                return self.table(name, &toks[..1]);
            }
            if let Some((table, first_chain, _)) = self.open {
                let name = toks[0].s[1..].to_string();
                return self.chain_decl(table, first_chain, &name, &toks);
            }
        }
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
                "expected a table (\"*filter\", \"*raw\", \"*nat\" or \"*mangle\") first",
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
            "nat" => Table::Nat,
            "mangle" => Table::Mangle,
            "security" => {
                return Err(self.err(
                    col,
                    "table \"security\" is not supported: it holds SELinux labels \
                     (SECMARK, CONNSECMARK) for local sockets, which a bypass fast path does \
                     not have (statewall has *filter, *raw, *nat and *mangle)",
                ))
            }
            _ => return Err(self.err(col, format!("unknown table \"{name}\""))),
        };
        if self.d.tables.contains(&table) {
            return Err(self.err(col, format!("table {name} given twice")));
        }
        self.d.tables.push(table);
        let first = self.d.chains.len();
        for b in builtin_names(table) {
            self.d
                .chains
                .push(new_chain(table, b, Some(Policy::Accept)));
            self.chain_lines.push(0);
        }
        self.open = Some((table, first, self.line));
        Ok(())
    }

    fn find_chain(&self, first: usize, name: &str) -> Option<usize> {
        (first..self.d.chains.len()).find(|&i| self.d.chains[i].name == name)
    }

    fn chain_decl(&mut self, table: Table, first: usize, name: &str, toks: &[Tok]) -> Res<()> {
        let col = toks[0].col;
        let Some(pol) = toks.get(1) else {
            return Err(self.err(col, format!("chain \"{name}\" needs a policy (or \"-\")")));
        };
        // What follows the policy (the counters, and any text after them) is ignored,
        // as iptables-restore does without --counters.
        let builtin = builtin_names(table).contains(&name);
        if let Some(id) = self.find_chain(first, name) {
            if !builtin || self.chain_lines[id] != 0 {
                return Err(self.err(col, format!("chain \"{name}\" declared twice")));
            }
        }
        if builtin {
            let p = match pol.s.as_str() {
                "ACCEPT" => Policy::Accept,
                "DROP" if table == Table::Nat => {
                    return Err(self.err(
                        pol.col,
                        "the nat table's built-in chains need the policy ACCEPT",
                    ))
                }
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
            self.d.chains[id].policy = Some(p);
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
        self.d.chains.push(new_chain(table, name, None));
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
        self.d.rules.push(draft);
        Ok(())
    }
}

fn fam_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
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
        "ACCEPT"
            | "DROP"
            | "REJECT"
            | "RETURN"
            | "LOG"
            | "CT"
            | "NOTRACK"
            | "QUEUE"
            | "SNAT"
            | "DNAT"
            | "MASQUERADE"
            | "REDIRECT"
            | "NETMAP"
    ) {
        return Err(format!("chain name \"{name}\" is a target name"));
    }
    Ok(())
}

/// Whitespace-separated words of a line with their columns (no quoting).
fn plain_words(line: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut cur: Option<Tok> = None;
    for (i, ch) in line.chars().enumerate() {
        if ch.is_whitespace() {
            out.extend(cur.take());
        } else {
            cur.get_or_insert(Tok {
                s: String::new(),
                col: i + 1,
            })
            .s
            .push(ch);
        }
    }
    out.extend(cur);
    out
}

fn parse_counters(s: &str) -> Option<(u64, u64)> {
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    let (a, b) = inner.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Reads the whole text into a [`Draft`] (`hint`: the family, if the caller knows it;
/// `sets`: the sets rules may name).
pub(super) fn read_with_sets(
    text: &str,
    file: &str,
    hint: Option<Family>,
    sets: &crate::sets::SetRegistry,
) -> Res<Draft> {
    let mut r = Reader {
        d: Draft {
            file: file.to_string(),
            family: hint,
            tables: Vec::new(),
            chains: Vec::new(),
            rules: Vec::new(),
            limits: Vec::new(),
        },
        chain_lines: Vec::new(),
        open: None,
        line: 0,
        sets: sets.clone(),
    };
    for (i, raw) in text.lines().enumerate() {
        r.line = i + 1;
        r.line(raw)?;
    }
    if let Some((t, _, line)) = r.open {
        r.line = line;
        return Err(r.err(1, format!("table {} has no COMMIT", t.name())));
    }
    Ok(r.d)
}
