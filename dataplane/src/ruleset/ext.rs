//! Matches and targets whose state lives outside the ruleset and spans packets:
//! `-m set` and `-j SET` (the sets of [`crate::sets`]), `-m recent` and `-m hashlimit`
//! (shared tables of atomic slots). Each rule holds its set's or table's `Arc`, bound
//! when the ruleset was read, so evaluation never looks a name up.
//! Evaluation is lock-free and allocation-free: a set test is an atomic load and a hash
//! probe; `-j SET` pushes onto the set's bounded queue (docs/SETS.md).

use super::PacketCtx;
use crate::sets::hashlimit::{HashlimitSpec, HashlimitTable};
use crate::sets::recent::{RecentCmd, RecentSpec, RecentTable};
use crate::sets::{DimFlags, Fields, QueuedOp, SetSlot, TestResult};
use std::fmt::Write;
use std::sync::Arc;

/// A counter comparison of `-m set` (`--packets-gt 10`, `! --bytes-eq 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Gt,
}

impl Cmp {
    fn holds(self, a: u64, b: u64) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Gt => a > b,
        }
    }

    fn save(self, what: &str) -> String {
        match self {
            Cmp::Eq => format!("--{what}-eq"),
            Cmp::Ne => format!("! --{what}-eq"),
            Cmp::Lt => format!("--{what}-lt"),
            Cmp::Gt => format!("--{what}-gt"),
        }
    }
}

/// `-m set --match-set NAME FLAGS` and its options.
#[derive(Debug, Clone)]
pub(crate) struct SetMatch {
    pub slot: Arc<SetSlot>,
    pub flags: DimFlags,
    pub neg: bool,
    pub return_nomatch: bool,
    /// `! --update-counters`.
    pub no_update_counters: bool,
    /// `! --update-subcounters` (accepted; list:set members count as their own sets).
    pub no_update_subcounters: bool,
    pub packets: Option<(Cmp, u64)>,
    pub bytes: Option<(Cmp, u64)>,
}

/// `-m hashlimit` as written (for the listing) and compiled.
#[derive(Debug, Clone)]
pub(crate) struct HashlimitMatch {
    pub table: Arc<HashlimitTable>,
    pub spec: HashlimitSpec,
    /// The rate as written: (count, unit name).
    pub rate: (u64, &'static str),
    /// `--hashlimit-srcmask`/`-dstmask` prefix lengths as written (None: default).
    pub masks: (Option<u8>, Option<u8>),
    /// `--hashlimit-htable-expire` in ms as written.
    pub expire_ms: Option<u64>,
}

/// A match of this module.
#[derive(Debug, Clone)]
pub(crate) enum ExtMatch {
    Set(SetMatch),
    Recent(Arc<RecentTable>, RecentSpec),
    Hashlimit(HashlimitMatch),
}

impl PartialEq for ExtMatch {
    fn eq(&self, other: &Self) -> bool {
        // Two rules are the same rule when they print the same.
        self.save_text() == other.save_text()
    }
}

impl Eq for ExtMatch {}

impl ExtMatch {
    /// True when evaluating the match changes state (recent's lists, hashlimit's
    /// buckets): the index must not skip the rule on a later match's ports.
    pub(crate) fn has_side_effects(&self) -> bool {
        match self {
            ExtMatch::Set(_) => false,
            ExtMatch::Recent(_, s) => s.cmd != RecentCmd::Check || s.reap,
            ExtMatch::Hashlimit(_) => true,
        }
    }

    /// Does the packet match? Lock-free; no allocation.
    #[inline]
    pub(crate) fn matches(&self, ctx: &PacketCtx) -> bool {
        match self {
            ExtMatch::Set(m) => {
                let bytes = ctx.parsed.ip_len() as u64;
                let r = m
                    .slot
                    .test(ctx.parsed, m.flags, ctx.now, bytes, !m.no_update_counters);
                let mut hit = match r {
                    TestResult::Match => true,
                    TestResult::NoMatch => m.return_nomatch,
                    TestResult::Miss => false,
                };
                if hit && r == TestResult::Match && (m.packets.is_some() || m.bytes.is_some()) {
                    // The kernel compares after updating the element's counters.
                    let (p, b) = m
                        .slot
                        .counters_of(ctx.parsed, m.flags, ctx.now)
                        .unwrap_or((0, 0));
                    hit = m.packets.is_none_or(|(c, v)| c.holds(p, v))
                        && m.bytes.is_none_or(|(c, v)| c.holds(b, v));
                }
                hit != m.neg
            }
            ExtMatch::Recent(t, spec) => spec.eval(t, ctx.parsed, ctx.now),
            ExtMatch::Hashlimit(h) => h.spec.eval(&h.table, ctx.parsed, ctx.now),
        }
    }

    /// The match as iptables-save prints it (with its leading space).
    pub(crate) fn save_text(&self) -> String {
        let mut o = String::new();
        match self {
            ExtMatch::Set(m) => {
                let _ = write!(
                    o,
                    " -m set {}--match-set {} {}",
                    if m.neg { "! " } else { "" },
                    m.slot.name(),
                    m.flags.text()
                );
                if m.return_nomatch {
                    o.push_str(" --return-nomatch");
                }
                if m.no_update_counters {
                    o.push_str(" ! --update-counters");
                }
                if m.no_update_subcounters {
                    o.push_str(" ! --update-subcounters");
                }
                if let Some((c, v)) = m.packets {
                    let _ = write!(o, " {} {v}", c.save("packets"));
                }
                if let Some((c, v)) = m.bytes {
                    let _ = write!(o, " {} {v}", c.save("bytes"));
                }
            }
            ExtMatch::Recent(t, s) => {
                o.push_str(" -m recent");
                let cmd = match s.cmd {
                    RecentCmd::Set => "--set",
                    RecentCmd::Check => "--rcheck",
                    RecentCmd::Update => "--update",
                    RecentCmd::Remove => "--remove",
                };
                let _ = write!(o, " {}{cmd}", if s.neg { "! " } else { "" });
                if s.seconds > 0 {
                    let _ = write!(o, " --seconds {}", s.seconds);
                }
                if s.reap {
                    o.push_str(" --reap");
                }
                if s.hitcount > 0 {
                    let _ = write!(o, " --hitcount {}", s.hitcount);
                }
                if s.rttl {
                    o.push_str(" --rttl");
                }
                let _ = write!(
                    o,
                    " --name {} --mask {}",
                    user_name(&t.name),
                    mask_text(s.mask, s.family)
                );
                o.push_str(if s.dest { " --rdest" } else { " --rsource" });
            }
            ExtMatch::Hashlimit(h) => {
                let s = &h.spec;
                let _ = write!(
                    o,
                    " -m hashlimit --hashlimit-{} {}/{}",
                    if s.above { "above" } else { "upto" },
                    h.rate.0,
                    h.rate.1
                );
                if s.burst != 5 {
                    let _ = write!(o, " --hashlimit-burst {}", s.burst);
                }
                if s.mode != 0 {
                    let names: Vec<&str> = crate::sets::hashlimit::mode::NAMES
                        .iter()
                        .filter(|(b, _)| s.mode & b != 0)
                        .map(|(_, n)| *n)
                        .collect();
                    let _ = write!(o, " --hashlimit-mode {}", names.join(","));
                }
                let _ = write!(o, " --hashlimit-name {}", user_name(&h.table.name));
                if let Some(m) = h.masks.0 {
                    let _ = write!(o, " --hashlimit-srcmask {m}");
                }
                if let Some(m) = h.masks.1 {
                    let _ = write!(o, " --hashlimit-dstmask {m}");
                }
                if let Some(e) = h.expire_ms {
                    let _ = write!(o, " --hashlimit-htable-expire {e}");
                }
            }
        }
        o
    }

    /// The match as `iptables -L -n` prints it (with its leading space).
    pub(crate) fn list_text(&self) -> String {
        match self {
            ExtMatch::Set(m) => {
                let mut o = format!(
                    " {}match-set {} {}",
                    if m.neg { "! " } else { "" },
                    m.slot.name(),
                    m.flags.text()
                );
                if m.return_nomatch {
                    o.push_str(" return-nomatch");
                }
                o
            }
            ExtMatch::Recent(..) | ExtMatch::Hashlimit(_) => {
                // iptables -L prints these as their save options without the dashes.
                let s = self.save_text();
                s.replacen(" -m ", " ", 1).replace(" --", " ")
            }
        }
    }
}

/// `-j SET`: `--add-set NAME FLAGS`, `--del-set NAME FLAGS`, `--exist`, `--timeout N`.
#[derive(Debug, Clone)]
pub(crate) struct SetTarget {
    pub add: Option<(Arc<SetSlot>, DimFlags)>,
    pub del: Option<(Arc<SetSlot>, DimFlags)>,
    pub exist: bool,
    pub timeout: Option<u32>,
}

/// A target of this module (non-terminal: evaluation goes on after it).
#[derive(Debug, Clone)]
pub(crate) enum ExtTarget {
    Set(SetTarget),
}

impl PartialEq for ExtTarget {
    fn eq(&self, other: &Self) -> bool {
        self.save_text() == other.save_text()
    }
}

impl Eq for ExtTarget {}

impl ExtTarget {
    /// Runs the target for a packet: queues the set changes (lock-free, no allocation).
    #[inline]
    pub(crate) fn run(&self, ctx: &PacketCtx) {
        match self {
            ExtTarget::Set(t) => {
                let fields = Fields::of(ctx.parsed);
                for (slot, flags, add) in [
                    t.add.as_ref().map(|(s, f)| (s, *f, true)),
                    t.del.as_ref().map(|(s, f)| (s, *f, false)),
                ]
                .into_iter()
                .flatten()
                {
                    slot.queue(QueuedOp {
                        add,
                        exist: t.exist,
                        timeout: if add { t.timeout } else { None },
                        flags,
                        fields,
                    });
                }
            }
        }
    }

    /// The target's name as `iptables -L` prints it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ExtTarget::Set(_) => "SET",
        }
    }

    /// The target as iptables-save prints it (with its leading space).
    pub(crate) fn save_text(&self) -> String {
        match self {
            ExtTarget::Set(t) => {
                let mut o = String::from(" -j SET");
                if let Some((s, f)) = &t.add {
                    let _ = write!(o, " --add-set {} {}", s.name(), f.text());
                }
                if let Some((s, f)) = &t.del {
                    let _ = write!(o, " --del-set {} {}", s.name(), f.text());
                }
                if t.exist {
                    o.push_str(" --exist");
                }
                if let Some(x) = t.timeout {
                    let _ = write!(o, " --timeout {x}");
                }
                o
            }
        }
    }

    /// The target's options as `iptables -L -n` prints them (with its leading space).
    pub(crate) fn list_text(&self) -> String {
        match self {
            ExtTarget::Set(t) => {
                let mut o = String::new();
                if let Some((s, f)) = &t.add {
                    let _ = write!(o, " add-set {} {}", s.name(), f.text());
                }
                if let Some((s, f)) = &t.del {
                    let _ = write!(o, " del-set {} {}", s.name(), f.text());
                }
                o
            }
        }
    }
}

/// A mask in the u128 layout as iptables-save prints `--mask` (dotted for IPv4).
fn mask_text(m: u128, f: crate::packet::Family) -> String {
    match f {
        crate::packet::Family::V4 => std::net::Ipv4Addr::from((m >> 96) as u32).to_string(),
        crate::packet::Family::V6 => std::net::Ipv6Addr::from(m).to_string(),
    }
}

/// A table's name as the rule wrote it (the registry keys tables by `NAME/width`: the
/// kernel keeps IPv4 and IPv6 tables apart).
fn user_name(n: &str) -> &str {
    n.rsplit_once('/').map_or(n, |x| x.0)
}

/// [`super::parse_ruleset`] with the sets that `-m set` and `-j SET` may name (and the
/// registry that keeps `-m recent` and `-m hashlimit` tables): a rule naming a set that
/// is not in `sets` is refused, as the kernel refuses it.
pub fn parse_ruleset_with_sets(
    text: &str,
    file_name: &str,
    family_hint: Option<crate::packet::Family>,
    sets: &crate::sets::SetRegistry,
) -> Result<super::Ruleset, super::RulesetError> {
    super::compile::compile(super::text::read_with_sets(
        text,
        file_name,
        family_hint,
        sets,
    )?)
}

impl super::Ruleset {
    /// [`Ruleset::from_file`] with the sets its rules may name.
    pub fn from_file_with_sets(
        path: &std::path::Path,
        sets: &crate::sets::SetRegistry,
    ) -> Result<super::Ruleset, super::RulesetError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| super::RulesetError {
            file: name.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })?;
        let hint = if name.ends_with(".v6") || name.contains("ip6tables") {
            Some(crate::packet::Family::V6)
        } else if name.ends_with(".v4") {
            Some(crate::packet::Family::V4)
        } else {
            None
        };
        parse_ruleset_with_sets(&text, &name, hint, sets)
    }
}
