//! The `ipset save` / `ipset restore` language: `create`, `add`, `del`, `flush`,
//! `destroy`, `swap` lines, read into [`RestoreLine`]s and applied to a
//! [`SetRegistry`] as one batch; and `save` output. Errors carry `file:line` and name
//! the option at fault. Control-plane code: allocates freely.

use super::data::{FamilyExt, KeyOp, SetData};
use super::elem::{format_key, parse_elem};
use super::{check_name, Family, SetOptions, SetRegistry, SetSlot, SetType};
use crate::Nanos;
use std::collections::HashMap;
use std::sync::Arc;

/// A refused restore text: `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct SetError {
    /// The file (or request) name.
    pub file: String,
    /// 1-based line (0: the whole text).
    pub line: usize,
    /// What is wrong, naming the command and option.
    pub message: String,
}

/// One command of the restore language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreLine {
    /// `create NAME TYPE OPTIONS…`.
    Create {
        /// Set name.
        name: String,
        /// Its options.
        opts: SetOptions,
    },
    /// `add NAME ELEM [timeout N] [nomatch] [packets N bytes N] [comment "…"]`.
    Add {
        /// Set name.
        set: String,
        /// The element as written.
        elem: String,
        /// `timeout`.
        timeout: Option<u32>,
        /// `nomatch`.
        nomatch: bool,
        /// `packets`/`bytes`.
        counters: Option<(u64, u64)>,
        /// `comment`.
        comment: Option<String>,
    },
    /// `del NAME ELEM`.
    Del {
        /// Set name.
        set: String,
        /// The element.
        elem: String,
    },
    /// `flush [NAME]`.
    Flush(Option<String>),
    /// `destroy [NAME]`.
    Destroy(Option<String>),
    /// `swap A B`.
    Swap(String, String),
}

fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if any {
        out.push(cur);
    }
    Ok(out)
}

fn num<T: std::str::FromStr>(cmd: &str, opt: &str, v: Option<&String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{cmd}: option \"{opt}\" needs a value"))?;
    v.parse()
        .map_err(|_| format!("{cmd}: option \"{opt}\": bad number \"{v}\""))
}

fn parse_create(w: &[String]) -> Result<RestoreLine, String> {
    let name = w.get(1).ok_or("create: needs a set name")?;
    check_name(name).map_err(|e| format!("create: {e}"))?;
    let tyname = w
        .get(2)
        .ok_or("create: needs a type (hash:ip, hash:net, …)")?;
    let ty = SetType::parse(tyname).ok_or_else(|| {
        let names: Vec<_> = SetType::ALL.iter().map(|t| t.1).collect();
        format!(
            "create {name}: type \"{tyname}\" is not supported (statewall has {})",
            names.join(", ")
        )
    })?;
    let mut family = Family::V4;
    if let Some(i) = w.iter().position(|x| x == "family") {
        family = match w.get(i + 1).map(String::as_str) {
            Some("inet") => Family::V4,
            Some("inet6") => Family::V6,
            other => {
                return Err(format!(
                    "create {name}: option \"family\": want inet or inet6, got {other:?}"
                ))
            }
        };
    }
    let mut o = SetOptions::new(ty, family);
    let mut range = None;
    let mut i = 3;
    let cmd = format!("create {name}");
    while i < w.len() {
        let opt = w[i].as_str();
        let v = w.get(i + 1);
        i += 2;
        match opt {
            "family" => {}
            "hashsize" => o.hashsize = num(&cmd, opt, v)?,
            "maxelem" => o.maxelem = num(&cmd, opt, v)?,
            "bucketsize" => {
                let _: u32 = num(&cmd, opt, v)?;
            }
            "initval" => {
                if v.is_none() {
                    return Err(format!("{cmd}: option \"initval\" needs a value"));
                }
            }
            "timeout" => o.timeout = Some(num(&cmd, opt, v)?),
            "netmask" if ty == SetType::HashIp => {
                let n: u8 = num(&cmd, opt, v)?;
                if n == 0 || n > family.width() {
                    return Err(format!("{cmd}: option \"netmask\": out of range: {n}"));
                }
                o.netmask = n;
            }
            "range" if ty == SetType::BitmapPort => {
                let v = v.ok_or_else(|| format!("{cmd}: option \"range\" needs a value"))?;
                range = Some(
                    super::elem::parse_port_range(v)
                        .map_err(|e| format!("{cmd}: option \"range\": {e}"))?,
                );
            }
            "size" if ty == SetType::ListSet => o.size = num(&cmd, opt, v)?,
            "counters" => {
                o.counters = true;
                i -= 1;
            }
            "comment" => {
                o.comment = true;
                i -= 1;
            }
            "skbinfo" | "forceadd" | "markmask" => {
                return Err(format!(
                    "{cmd}: option \"{opt}\" is not supported by statewall (docs/SETS.md)"
                ))
            }
            _ => return Err(format!("{cmd}: unknown option \"{opt}\"")),
        }
    }
    if ty == SetType::BitmapPort {
        o.range = range.ok_or_else(|| format!("{cmd}: bitmap:port needs \"range FROM-TO\""))?;
    }
    Ok(RestoreLine::Create {
        name: name.clone(),
        opts: o,
    })
}

fn parse_add(w: &[String]) -> Result<RestoreLine, String> {
    let set = w.get(1).ok_or("add: needs a set name")?.clone();
    let elem = w
        .get(2)
        .ok_or_else(|| format!("add {set}: needs an element"))?
        .clone();
    let (mut timeout, mut nomatch, mut packets, mut bytes, mut comment) =
        (None, false, None, None, None);
    let mut i = 3;
    while i < w.len() {
        // Built only for options (most add lines have none).
        let cmd = format!("add {set} {elem}");
        let opt = w[i].as_str();
        let v = w.get(i + 1);
        i += 2;
        match opt {
            "timeout" => timeout = Some(num(&cmd, opt, v)?),
            "nomatch" => {
                nomatch = true;
                i -= 1;
            }
            "packets" => packets = Some(num(&cmd, opt, v)?),
            "bytes" => bytes = Some(num(&cmd, opt, v)?),
            "comment" => {
                comment = Some(
                    v.ok_or_else(|| format!("{cmd}: option \"comment\" needs a value"))?
                        .clone(),
                )
            }
            "skbmark" | "skbprio" | "skbqueue" => {
                return Err(format!(
                    "{cmd}: option \"{opt}\" is not supported by statewall"
                ))
            }
            _ => return Err(format!("{cmd}: unknown option \"{opt}\"")),
        }
    }
    let counters = match (packets, bytes) {
        (None, None) => None,
        (p, b) => Some((p.unwrap_or(0), b.unwrap_or(0))),
    };
    Ok(RestoreLine::Add {
        set,
        elem,
        timeout,
        nomatch,
        counters,
        comment,
    })
}

/// Reads one command line (`None` for a blank or `#` comment line).
pub fn parse_line(line: &str) -> Result<Option<RestoreLine>, String> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') || t == "COMMIT" {
        return Ok(None);
    }
    let w = words(t)?;
    let arg = |i: usize| w.get(i).cloned();
    let no_more = |n: usize, cmd: &str| match w.get(n) {
        Some(x) => Err(format!("{cmd}: unexpected \"{x}\"")),
        None => Ok(()),
    };
    Ok(Some(match w[0].as_str() {
        "create" | "-N" | "n" => parse_create(&w)?,
        "add" | "-A" | "a" => parse_add(&w)?,
        "del" | "-D" | "d" => {
            no_more(3, "del")?;
            RestoreLine::Del {
                set: arg(1).ok_or("del: needs a set name")?,
                elem: arg(2).ok_or("del: needs an element")?,
            }
        }
        "flush" | "-F" => {
            no_more(2, "flush")?;
            RestoreLine::Flush(arg(1))
        }
        "destroy" | "-X" | "x" => {
            no_more(2, "destroy")?;
            RestoreLine::Destroy(arg(1))
        }
        "swap" | "-W" | "w" => {
            no_more(3, "swap")?;
            RestoreLine::Swap(
                arg(1).ok_or("swap: needs two set names")?,
                arg(2).ok_or("swap: needs two set names")?,
            )
        }
        other => return Err(format!("unknown command \"{other}\"")),
    }))
}

/// Reads a whole restore text (each line checked; nothing applied).
pub fn parse_restore(text: &str, file: &str) -> Result<Vec<(usize, RestoreLine)>, SetError> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        match parse_line(l) {
            Ok(Some(x)) => out.push((i + 1, x)),
            Ok(None) => {}
            Err(message) => {
                return Err(SetError {
                    file: file.to_string(),
                    line: i + 1,
                    message,
                })
            }
        }
    }
    Ok(out)
}

impl SetRegistry {
    /// Applies a restore text as one batch: every line is checked against working
    /// copies of the sets it names, and only when all pass are the copies published
    /// (sets created by the text are removed again on an error). `exist` is ipset's
    /// `-exist`. Returns the number of commands applied.
    pub fn restore(
        &self,
        text: &str,
        file: &str,
        now: Nanos,
        exist: bool,
    ) -> Result<usize, SetError> {
        let lines = parse_restore(text, file)?;
        let mut created: Vec<String> = Vec::new();
        let res = self.restore_lines(&lines, file, now, exist, &mut created);
        if res.is_err() {
            for n in created {
                let _ = self.destroy(&n);
            }
        }
        res
    }

    fn restore_lines(
        &self,
        lines: &[(usize, RestoreLine)],
        file: &str,
        now: Nanos,
        exist: bool,
        created: &mut Vec<String>,
    ) -> Result<usize, SetError> {
        // Working copies, published at the end in one store per set.
        let mut work: HashMap<String, (Arc<SetSlot>, SetData)> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut late: Vec<(usize, RestoreLine)> = Vec::new();
        for (line, l) in lines {
            let err = |message: String| SetError {
                file: file.to_string(),
                line: *line,
                message,
            };
            let mut copy = |name: &str,
                            work: &mut HashMap<String, (Arc<SetSlot>, SetData)>|
             -> Result<(), SetError> {
                if !work.contains_key(name) {
                    let s = self
                        .get(name)
                        .ok_or_else(|| err(format!("set \"{name}\" does not exist")))?;
                    let d = SetData::clone(&s.data());
                    work.insert(name.to_string(), (s, d));
                    order.push(name.to_string());
                }
                Ok(())
            };
            match l {
                RestoreLine::Create { name, opts } => {
                    let existed = self.get(name).is_some();
                    self.create(name, opts.clone(), exist).map_err(err)?;
                    if !existed {
                        created.push(name.clone());
                    }
                }
                RestoreLine::Add {
                    set,
                    elem,
                    timeout,
                    nomatch,
                    counters,
                    comment,
                } => {
                    copy(set, &mut work)?;
                    let (_, d) = work.get_mut(set).expect("copied");
                    let ops = if d.opts.ty == SetType::ListSet {
                        let m = self.get(elem).ok_or_else(|| {
                            err(format!("add {set}: set \"{elem}\" does not exist"))
                        })?;
                        if m.ty() == SetType::ListSet {
                            return Err(err(format!(
                                "add {set}: \"{elem}\" is a list:set; a list:set cannot hold another"
                            )));
                        }
                        vec![KeyOp::AddMember(m, *timeout)]
                    } else {
                        let keys = parse_elem(elem, &d.spec())
                            .map_err(|e| err(format!("add {set}: {e}")))?;
                        if comment.is_some() && !d.opts.comment {
                            return Err(err(format!(
                                "add {set} {elem}: option \"comment\": the set was created without \"comment\""
                            )));
                        }
                        if counters.is_some() && !d.opts.counters {
                            return Err(err(format!(
                                "add {set} {elem}: option \"packets\"/\"bytes\": the set was created without \"counters\""
                            )));
                        }
                        keys.into_iter()
                            .map(|key| KeyOp::Add {
                                key,
                                timeout: *timeout,
                                nomatch: *nomatch,
                                counters: *counters,
                                comment: comment.as_deref().map(Into::into),
                            })
                            .collect()
                    };
                    d.apply(&ops, now, exist, true)
                        .map_err(|e| err(format!("add {set} {elem}: {e}")))?;
                }
                RestoreLine::Del { set, elem } => {
                    copy(set, &mut work)?;
                    let (_, d) = work.get_mut(set).expect("copied");
                    let ops = if d.opts.ty == SetType::ListSet {
                        vec![KeyOp::DelMember(elem.clone())]
                    } else {
                        parse_elem(elem, &d.spec())
                            .map_err(|e| err(format!("del {set}: {e}")))?
                            .into_iter()
                            .map(KeyOp::Del)
                            .collect()
                    };
                    d.apply(&ops, now, exist, true)
                        .map_err(|e| err(format!("del {set} {elem}: {e}")))?;
                }
                RestoreLine::Flush(Some(set)) => {
                    copy(set, &mut work)?;
                    work.get_mut(set).expect("copied").1.flush();
                }
                RestoreLine::Flush(None) => {
                    for s in self.all() {
                        copy(s.name(), &mut work)?;
                        work.get_mut(s.name()).expect("copied").1.flush();
                    }
                }
                // Destroy and swap act on published sets: run after the batch.
                RestoreLine::Destroy(n) => {
                    if let Some(n) = n {
                        if self.get(n).is_none() {
                            return Err(err(format!("set \"{n}\" does not exist")));
                        }
                    }
                    late.push((*line, l.clone()));
                }
                RestoreLine::Swap(a, b) => {
                    for n in [a, b] {
                        if self.get(n).is_none() && !work.contains_key(n) {
                            return Err(err(format!("set \"{n}\" does not exist")));
                        }
                    }
                    late.push((*line, l.clone()));
                }
            }
        }
        for name in &order {
            let (slot, d) = work.remove(name).expect("in order");
            slot.publish(d);
        }
        for (line, l) in &late {
            let err = |message: String| SetError {
                file: file.to_string(),
                line: *line,
                message,
            };
            match l {
                RestoreLine::Destroy(Some(n)) => self.destroy(n).map_err(err)?,
                RestoreLine::Destroy(None) => {
                    // All or none, as the kernel: refused when any set is in use.
                    let names: Vec<String> =
                        self.all().iter().map(|s| s.name().to_string()).collect();
                    if let Some(busy) = names
                        .iter()
                        .find(|n| self.get(n).is_some_and(|s| Arc::strong_count(&s) > 2))
                    {
                        return Err(err(format!(
                            "set \"{busy}\" is in use (by a rule of the running ruleset or a list:set); nothing destroyed"
                        )));
                    }
                    for n in names {
                        self.destroy(&n).map_err(err)?;
                    }
                }
                RestoreLine::Swap(a, b) => self.swap(a, b).map_err(err)?,
                _ => {}
            }
        }
        Ok(lines.len())
    }
}

impl SetSlot {
    /// Publishes new contents (taking the write lock).
    pub(crate) fn publish(&self, d: SetData) {
        let _g = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.data.store(Arc::new(d));
    }
}

/// One set in `ipset save` form: its `create` line, then one `add` line per element.
pub fn save_set(s: &SetSlot, now: Nanos) -> String {
    let d = s.data();
    let mut out = format!(
        "create {} {} {}\n",
        s.name(),
        d.opts.ty.name(),
        d.opts.save_text()
    );
    let left = |exp: Nanos| -> String {
        if d.opts.timeout.is_some() {
            let secs = if exp == 0 {
                0
            } else {
                exp.saturating_sub(now).div_ceil(1_000_000_000)
            };
            format!(" timeout {secs}")
        } else {
            String::new()
        }
    };
    if d.opts.ty == SetType::ListSet {
        for (m, exp) in &d.members {
            if *exp == 0 || *exp >= now {
                out.push_str(&format!("add {} {}{}\n", s.name(), m.name(), left(*exp)));
            }
        }
        return out;
    }
    let spec = d.spec();
    for (k, e) in d.entries(now) {
        out.push_str(&format!(
            "add {} {}{}",
            s.name(),
            format_key(&k, &spec),
            left(e.expires)
        ));
        if d.opts.counters {
            out.push_str(&format!(
                " packets {} bytes {}",
                e.packets.load(std::sync::atomic::Ordering::Relaxed),
                e.bytes.load(std::sync::atomic::Ordering::Relaxed)
            ));
        }
        if let Some(c) = &e.comment {
            out.push_str(&format!(" comment \"{c}\""));
        }
        if e.nomatch {
            out.push_str(" nomatch");
        }
        out.push('\n');
    }
    out
}
