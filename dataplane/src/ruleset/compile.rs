//! The compiler: a [`Draft`] (what the text front end read) becomes a [`Ruleset`].
//! It resolves chain targets, refuses loops and too-deep call chains, writes each rule's
//! canonical text and builds the per-chain index. Control-plane code: allocates freely.

use super::index::build_index;
use super::{
    list, Chain, LimitSpec, Match, Policy, RejectKind, Rule, Ruleset, RulesetError, Table, Target,
    MAX_CALL_DEPTH,
};
use crate::packet::Family;

/// What the text front end produces and the compiler takes: the tables read, their
/// chains (built-ins with their policies, then user chains; no rules yet), the rules
/// with chain targets still by name, and the `-m limit` specs.
pub(super) struct Draft {
    /// The file name, for errors and the compiled ruleset.
    pub(super) file: String,
    /// The family the text showed, if any (`None` compiles as IPv4).
    pub(super) family: Option<Family>,
    /// The tables given, in order.
    pub(super) tables: Vec<Table>,
    /// Every chain of the given tables; `rules` and `index` are filled in by [`compile`].
    pub(super) chains: Vec<Chain>,
    /// The rules in file order.
    pub(super) rules: Vec<DraftRule>,
    /// The `-m limit` specs, by slot.
    pub(super) limits: Vec<LimitSpec>,
}

/// A parsed rule before chain names are resolved.
pub(super) struct DraftRule {
    pub(super) chain: usize,
    pub(super) line: usize,
    pub(super) matches: Vec<Match>,
    pub(super) target: DraftTarget,
    pub(super) target_col: usize,
    pub(super) comment: Option<String>,
    pub(super) default_reject: bool,
}

/// A rule's target: final, or a chain still named.
pub(super) enum DraftTarget {
    Done(Target),
    Chain { name: String, goto: bool },
}

type Res<T> = Result<T, RulesetError>;

/// Resolves chain targets, checks loops and depth, builds the rules and the index.
pub(super) fn compile(mut r: Draft) -> Res<Ruleset> {
    let family = r.family.unwrap_or(Family::V4);
    for t in [Table::Raw, Table::Filter, Table::Nat, Table::Mangle] {
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
        find(Table::Nat, "PREROUTING"),
        find(Table::Nat, "INPUT"),
        find(Table::Nat, "OUTPUT"),
        find(Table::Nat, "POSTROUTING"),
    ];
    let mut rules = Vec::with_capacity(r.rules.len());
    let mut cols = Vec::with_capacity(r.rules.len());
    let drafts = std::mem::take(&mut r.rules);
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
                    let msg = if r.chains.iter().any(|c| c.table == table && c.name == name) {
                        format!("cannot jump to built-in chain \"{name}\"")
                    } else {
                        format!("unknown target or chain \"{name}\"")
                    };
                    return Err(RulesetError {
                        file: r.file,
                        line: d.line,
                        column: d.target_col,
                        message: msg,
                    });
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
    check_graph(&r.file, &r.chains, &rules, &cols)?;
    super::nat::check_hooks(
        &r.chains,
        &rules,
        [builtin[5], builtin[6], builtin[7], builtin[8]],
    )
    .map_err(|(rid, message)| RulesetError {
        file: r.file.clone(),
        line: rules[rid].line,
        column: cols[rid],
        message,
    })?;
    let nat_rules = rules.iter().any(|x| r.chains[x.chain].table == Table::Nat);
    for rule in rules.iter_mut() {
        rule.text = list::rule_text(rule, &r.chains, &r.limits, family);
    }
    let raw_logs = rules
        .iter()
        .any(|x| r.chains[x.chain].table == Table::Raw && x.target.logs());
    let mangle_builtin = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]
        .map(|n| find_in(&r.chains, Table::Mangle, n));
    let mangle_on = rules
        .iter()
        .any(|x| r.chains[x.chain].table == Table::Mangle)
        || mangle_builtin
            .iter()
            .any(|&c| r.chains[c].policy == Some(Policy::Drop))
        || rules.iter().any(|x| {
            matches!(x.target, Target::Ext(_))
                || x.matches
                    .iter()
                    .any(|m| matches!(m, Match::Ext(e) if e.uses_marks()))
        });
    for c in 0..r.chains.len() {
        let idx = build_index(&rules, &r.chains[c].rules);
        r.chains[c].index = idx;
    }
    let vc_pure = super::vcache::pure_rules(&rules);
    Ok(Ruleset {
        family,
        file: r.file,
        tables: r.tables,
        chains: r.chains,
        rules,
        limits: r.limits,
        builtin,
        raw_logs,
        nat_rules,
        mangle_builtin,
        mangle_on,
        local_addrs: Vec::new(),
        vc_pure,
        generation: 1,
        other: None,
    })
}

/// Refuses loops through -j/-g and call chains deeper than [`MAX_CALL_DEPTH`].
fn check_graph(file: &str, chains: &[Chain], rules: &[Rule], cols: &[usize]) -> Res<()> {
    let n = chains.len();
    // 0 = unvisited, 1 = on the path, 2 = done; depth = most -j frames below a chain.
    let mut state = vec![0u8; n];
    let mut depth = vec![0usize; n];
    let fail = |rid: usize, msg: String| RulesetError {
        file: file.to_string(),
        line: rules[rid].line,
        column: cols[rid],
        message: msg,
    };
    fn visit(
        c: usize,
        chains: &[Chain],
        rules: &[Rule],
        state: &mut [u8],
        depth: &mut [usize],
        fail: &dyn Fn(usize, String) -> RulesetError,
    ) -> Result<(), RulesetError> {
        state[c] = 1;
        let mut d = 0;
        for &rid in &chains[c].rules {
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
                            chains[c].name, chains[to].name
                        ),
                    ))
                }
                0 => visit(to, chains, rules, state, depth, fail)?,
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
            visit(c, chains, rules, &mut state, &mut depth, &fail)?;
        }
    }
    Ok(())
}

fn find_in(chains: &[Chain], t: Table, n: &str) -> usize {
    chains
        .iter()
        .position(|c| c.table == t && c.name == n)
        .expect("built-in chain exists")
}

/// The built-in chains of a table.
pub(super) fn builtin_names(t: Table) -> &'static [&'static str] {
    match t {
        Table::Filter => &["INPUT", "FORWARD", "OUTPUT"],
        Table::Raw => &["PREROUTING", "OUTPUT"],
        Table::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        Table::Mangle => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    }
}

/// A chain with no rules yet.
pub(super) fn new_chain(table: Table, name: &str, policy: Option<Policy>) -> Chain {
    Chain {
        table,
        name: name.to_string(),
        policy,
        rules: Vec::new(),
        index: Default::default(),
        references: 0,
    }
}
