//! The options of `-m set` (`--match-set NAME FLAGS`, `--return-nomatch`,
//! `! --update-counters`, `! --update-subcounters`, `--packets-*`, `--bytes-*`), of
//! `-j SET` (`--add-set`, `--del-set`, `--exist`, `--timeout`), of `-m recent` and of
//! `-m hashlimit` (`recent.rs`). A set named here must exist in the reader's registry,
//! as the kernel requires; the rule then holds it.

mod recent;

pub(in crate::ruleset::text) use recent::{HashlimitDraft, RecentDraft};

use super::super::lex::Tok;
use super::{Res, RuleParser};
use crate::ruleset::ext::{Cmp, ExtMatch, ExtTarget, SetMatch, SetTarget};
use crate::sets::{DimFlags, SetSlot, MAX_DIMS};
use std::sync::Arc;

/// `-m set` being filled in.
#[derive(Default)]
pub(in crate::ruleset::text) struct SetDraft {
    set: Option<(Arc<SetSlot>, DimFlags, bool)>,
    return_nomatch: bool,
    no_update_counters: bool,
    no_update_subcounters: bool,
    packets: Option<(Cmp, u64)>,
    bytes: Option<(Cmp, u64)>,
}

/// A module of this file being filled in.
pub(in crate::ruleset::text) enum ExtModule {
    Set(SetDraft),
    Recent(RecentDraft),
    Hashlimit(HashlimitDraft),
}

impl ExtModule {
    /// The module for `-m NAME`, if this file has it.
    pub(in crate::ruleset::text) fn of(name: &str) -> Option<ExtModule> {
        match name {
            "set" => Some(ExtModule::Set(SetDraft::default())),
            "recent" => Some(ExtModule::Recent(RecentDraft::default())),
            "hashlimit" => Some(ExtModule::Hashlimit(HashlimitDraft::default())),
            _ => None,
        }
    }

    pub(in crate::ruleset::text) fn name(&self) -> &'static str {
        match self {
            ExtModule::Set(_) => "set",
            ExtModule::Recent(_) => "recent",
            ExtModule::Hashlimit(_) => "hashlimit",
        }
    }

    pub(in crate::ruleset::text) fn accepts(&self, opt: &str) -> bool {
        match self {
            ExtModule::Set(_) => matches!(
                opt,
                "--match-set"
                    | "--set"
                    | "--return-nomatch"
                    | "--update-counters"
                    | "--update-subcounters"
                    | "--packets-eq"
                    | "--packets-lt"
                    | "--packets-gt"
                    | "--bytes-eq"
                    | "--bytes-lt"
                    | "--bytes-gt"
            ),
            ExtModule::Recent(_) => recent::RECENT_OPTS.contains(&opt),
            ExtModule::Hashlimit(_) => opt.starts_with("--hashlimit"),
        }
    }

    /// Whether the option reads a value (else it is a flag).
    pub(in crate::ruleset::text) fn takes_value(&self, opt: &str) -> bool {
        match self {
            ExtModule::Set(_) => !matches!(
                opt,
                "--return-nomatch" | "--update-counters" | "--update-subcounters"
            ),
            ExtModule::Recent(_) => matches!(opt, "--seconds" | "--hitcount" | "--name" | "--mask"),
            ExtModule::Hashlimit(_) => true,
        }
    }

    fn finish(&self) -> Result<ExtMatch, &'static str> {
        match self {
            ExtModule::Recent(_) | ExtModule::Hashlimit(_) => {
                unreachable!("finished by RuleParser::ext_finish")
            }
            ExtModule::Set(d) => {
                let (slot, flags, neg) = d.set.clone().ok_or("--match-set")?;
                Ok(ExtMatch::Set(SetMatch {
                    slot,
                    flags,
                    neg,
                    return_nomatch: d.return_nomatch,
                    no_update_counters: d.no_update_counters,
                    no_update_subcounters: d.no_update_subcounters,
                    packets: d.packets,
                    bytes: d.bytes,
                }))
            }
        }
    }
}

/// `-j SET` being filled in.
#[derive(Default)]
pub(in crate::ruleset::text) struct SetTargetDraft {
    add: Option<(Arc<SetSlot>, DimFlags)>,
    del: Option<(Arc<SetSlot>, DimFlags)>,
    exist: bool,
    timeout: Option<(u32, usize)>,
}

impl RuleParser<'_> {
    /// The set named by token `v`, or the kernel's refusal.
    fn named_set(&self, v: &Tok) -> Res<Arc<SetSlot>> {
        self.r
            .sets
            .get(&v.s)
            .ok_or_else(|| self.err(v.col, format!("set \"{}\" does not exist", v.s)))
    }

    /// `NAME FLAGS` after `--match-set`, `--add-set`, `--del-set`.
    fn set_and_flags(&mut self, opt: &Tok, name: &Tok) -> Res<(Arc<SetSlot>, DimFlags)> {
        let slot = self.named_set(name)?;
        let f = self.value(opt, &mut None, false)?;
        let flags = DimFlags::parse(&f.s).map_err(|m| self.err(f.col, m))?;
        if flags.n as usize > MAX_DIMS {
            return Err(self.err(f.col, "too many directions"));
        }
        Ok((slot, flags))
    }

    /// One option of a module of this file.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ext_apply(
        &mut self,
        m: &mut ExtModule,
        o: &str,
        v: Tok,
        inv: bool,
        negated: Option<usize>,
        col: usize,
    ) -> Res<()> {
        let opt = Tok {
            s: o.to_string(),
            col,
        };
        match m {
            ExtModule::Recent(d) => return self.recent_apply(d, o, v, inv, negated, col),
            ExtModule::Hashlimit(d) => return self.hashlimit_apply(d, o, v, negated, col),
            ExtModule::Set(d) => match o {
                "--match-set" | "--set" => {
                    if d.set.is_some() {
                        return Err(self.err(col, "option \"--match-set\" given twice"));
                    }
                    let (slot, flags) = self.set_and_flags(&opt, &v)?;
                    d.set = Some((slot, flags, inv));
                }
                "--return-nomatch" => {
                    self.no_neg(negated, &opt)?;
                    d.return_nomatch = true;
                }
                "--update-counters" | "--update-subcounters" => {
                    if !inv {
                        return Err(self.err(
                            col,
                            format!("\"{o}\" is the default; only \"! {o}\" can be given"),
                        ));
                    }
                    if o == "--update-counters" {
                        d.no_update_counters = true;
                    } else {
                        d.no_update_subcounters = true;
                    }
                }
                _ => {
                    let (what, op) = o
                        .trim_start_matches("--")
                        .split_once('-')
                        .expect("accepted options have a dash");
                    let cmp = match (op, inv) {
                        ("eq", false) => Cmp::Eq,
                        ("eq", true) => Cmp::Ne,
                        (_, true) => {
                            return Err(self.err(
                                negated.unwrap_or(col),
                                format!("\"!\" cannot be used with \"{o}\""),
                            ))
                        }
                        ("lt", _) => Cmp::Lt,
                        _ => Cmp::Gt,
                    };
                    let n: u64 =
                        v.s.parse()
                            .map_err(|_| self.err(v.col, format!("bad number \"{}\"", v.s)))?;
                    let slot = if what == "packets" {
                        &mut d.packets
                    } else {
                        &mut d.bytes
                    };
                    if slot.is_some() {
                        return Err(self.err(col, format!("option \"{o}\" given twice")));
                    }
                    *slot = Some((cmp, n));
                }
            },
        }
        Ok(())
    }

    /// The compiled match of a module of this file; `need` names what is missing.
    pub(super) fn ext_finish(&self, m: &ExtModule, col: usize) -> Res<ExtMatch> {
        match m {
            ExtModule::Recent(d) => return self.recent_finish(d, col),
            ExtModule::Hashlimit(d) => return self.hashlimit_finish(d, col),
            ExtModule::Set(_) => {}
        }
        m.finish()
            .map_err(|w| self.err(col, format!("match \"{}\" needs {w}", m.name())))
    }

    /// `-j SET` options; returns false when `tok` is not one.
    pub(super) fn ext_target_option(&mut self, tok: &Tok, neg: &mut Option<usize>) -> Res<bool> {
        let o = tok.s.as_str();
        if !matches!(
            o,
            "--add-set"
                | "--del-set"
                | "--exist"
                | "--timeout"
                | "--map-set"
                | "--map-mark"
                | "--map-prio"
                | "--map-queue"
        ) {
            return Ok(false);
        }
        self.no_neg(*neg, tok)?;
        match o {
            "--add-set" | "--del-set" => {
                let name = self.value(tok, neg, false)?;
                let (slot, flags) = self.set_and_flags(tok, &name)?;
                let t = &mut self.set_target;
                let slot_ref = if o == "--add-set" {
                    &mut t.add
                } else {
                    &mut t.del
                };
                if slot_ref.is_some() {
                    return Err(self.err(tok.col, format!("option \"{o}\" given twice")));
                }
                *slot_ref = Some((slot, flags));
            }
            "--exist" => self.set_target.exist = true,
            "--timeout" => {
                let v = self.value(tok, neg, false)?;
                let n: u32 =
                    v.s.parse()
                        .map_err(|_| self.err(v.col, format!("bad --timeout \"{}\"", v.s)))?;
                self.set_target.timeout = Some((n, tok.col));
            }
            _ => {
                return Err(self.err(
                    tok.col,
                    format!("SET option \"{o}\" is not supported by statewall (docs/SETS.md)"),
                ))
            }
        }
        Ok(true)
    }

    /// The `-j SET` target.
    pub(super) fn ext_set_target(&self, col: usize) -> Res<ExtTarget> {
        let t = &self.set_target;
        if t.add.is_none() && t.del.is_none() {
            return Err(self.err(col, "SET needs --add-set or --del-set"));
        }
        if let Some((_, c)) = t.timeout {
            let Some((s, _)) = &t.add else {
                return Err(self.err(c, "--timeout is for --add-set"));
            };
            if s.data().opts.timeout.is_none() {
                return Err(self.err(
                    c,
                    format!("set \"{}\" was created without timeout support", s.name()),
                ));
            }
        }
        Ok(ExtTarget::Set(SetTarget {
            add: t.add.clone(),
            del: t.del.clone(),
            exist: t.exist,
            timeout: t.timeout.map(|x| x.0),
        }))
    }
}
