//! `-m recent` and `-m hashlimit` options, checked as the kernel's `checkentry` does
//! (one command for recent; `--reap` needs `--seconds`; `--hitcount` at most the hits
//! remembered; hashlimit needs a rate and a name).

use super::super::super::lex::Tok;
use super::super::{Res, RuleParser};
use crate::packet::Family;
use crate::ruleset::ext::{ExtMatch, HashlimitMatch};
use crate::sets::hashlimit::{mode, HashlimitSpec};
use crate::sets::recent::{RecentCmd, RecentSpec, STAMPS};

/// The options `-m recent` takes.
pub(super) const RECENT_OPTS: &[&str] = &[
    "--set",
    "--rcheck",
    "--update",
    "--remove",
    "--seconds",
    "--reap",
    "--hitcount",
    "--rttl",
    "--name",
    "--rsource",
    "--rdest",
    "--mask",
];

/// `-m recent` being filled in.
#[derive(Default)]
pub(in crate::ruleset::text) struct RecentDraft {
    cmd: Option<(RecentCmd, bool)>,
    seconds: Option<u32>,
    hitcount: Option<u32>,
    rttl: bool,
    reap: bool,
    name: Option<String>,
    dest: bool,
    mask: Option<u128>,
}

/// `-m hashlimit` being filled in.
#[derive(Default)]
pub(in crate::ruleset::text) struct HashlimitDraft {
    rate: Option<(u64, &'static str, u64, bool)>,
    burst: Option<u32>,
    mode: u8,
    name: Option<String>,
    srcmask: Option<u8>,
    dstmask: Option<u8>,
    expire_ms: Option<u64>,
}

fn prefix(bits: u8, f: Family) -> u128 {
    crate::sets::elem::prefix(bits, f)
}

fn width(f: Family) -> u8 {
    if f == Family::V4 {
        32
    } else {
        128
    }
}

/// `N/unit` with unit any prefix of second, minute, hour, day: (count, unit name for
/// printing, nanoseconds per packet).
fn parse_rate(s: &str) -> Result<(u64, &'static str, u64), String> {
    let (n, unit) = s.split_once('/').unwrap_or((s, "second"));
    if n.ends_with(['b', 'B']) || unit.contains('b') {
        return Err(format!(
            "byte rates (\"{s}\") are not supported by statewall; give packets per unit"
        ));
    }
    let count: u64 = n
        .parse()
        .ok()
        .filter(|&c| c > 0)
        .ok_or_else(|| format!("bad rate \"{s}\""))?;
    let u = unit.to_ascii_lowercase();
    let (name, ns): (&'static str, u64) = [
        ("sec", "second", 1_000_000_000u64),
        ("min", "minute", 60_000_000_000),
        ("hour", "hour", 3_600_000_000_000),
        ("day", "day", 86_400_000_000_000),
    ]
    .iter()
    .find(|(_, full, _)| !u.is_empty() && full.starts_with(&u))
    .map(|(short, _, ns)| (*short, *ns))
    .ok_or_else(|| format!("bad rate unit \"{unit}\" (second, minute, hour or day)"))?;
    if count > 1_000_000 || ns / count == 0 {
        return Err(format!("rate \"{s}\" is too fast"));
    }
    Ok((count, name, ns / count))
}

impl RuleParser<'_> {
    fn family(&self) -> Family {
        self.r.d.family.unwrap_or(Family::V4)
    }

    fn num_u32(&self, v: &Tok, what: &str) -> Res<u32> {
        v.s.parse()
            .map_err(|_| self.err(v.col, format!("bad {what} \"{}\"", v.s)))
    }

    pub(super) fn recent_apply(
        &mut self,
        d: &mut RecentDraft,
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
        let cmd = match o {
            "--set" => Some(RecentCmd::Set),
            "--rcheck" => Some(RecentCmd::Check),
            "--update" => Some(RecentCmd::Update),
            "--remove" => Some(RecentCmd::Remove),
            _ => None,
        };
        if let Some(c) = cmd {
            if d.cmd.is_some() {
                return Err(self.err(
                    col,
                    "recent: only one of --set, --rcheck, --update or --remove",
                ));
            }
            d.cmd = Some((c, inv));
            return Ok(());
        }
        self.no_neg(negated, &opt)?;
        match o {
            "--seconds" => d.seconds = Some(self.num_u32(&v, "--seconds")?),
            "--hitcount" => d.hitcount = Some(self.num_u32(&v, "--hitcount")?),
            "--rttl" => d.rttl = true,
            "--reap" => d.reap = true,
            "--rsource" => d.dest = false,
            "--rdest" => d.dest = true,
            "--name" => {
                if v.s.is_empty() || v.s.len() >= 200 {
                    return Err(self.err(v.col, "recent: --name must be 1 to 199 characters"));
                }
                d.name = Some(v.s.clone());
            }
            _ => {
                let f = self.family();
                let m = match (f, v.s.parse::<std::net::IpAddr>()) {
                    (Family::V4, Ok(std::net::IpAddr::V4(a))) => (u32::from(a) as u128) << 96,
                    (Family::V6, Ok(std::net::IpAddr::V6(a))) => u128::from(a),
                    _ => return Err(self.err(v.col, format!("bad --mask \"{}\"", v.s))),
                };
                d.mask = Some(m);
            }
        }
        Ok(())
    }

    pub(super) fn recent_finish(&self, d: &RecentDraft, col: usize) -> Res<ExtMatch> {
        let (cmd, neg) = d.cmd.ok_or_else(|| {
            self.err(
                col,
                "match \"recent\" needs one of --set, --rcheck, --update or --remove",
            )
        })?;
        let seconds = d.seconds.unwrap_or(0);
        let hitcount = d.hitcount.unwrap_or(0);
        if matches!(cmd, RecentCmd::Set | RecentCmd::Remove)
            && (seconds > 0 || hitcount > 0 || d.rttl || d.reap)
        {
            return Err(self.err(
                col,
                "recent: --seconds, --hitcount, --rttl and --reap go with --rcheck or --update",
            ));
        }
        if d.reap && seconds == 0 {
            return Err(self.err(col, "recent: --reap needs --seconds"));
        }
        if hitcount as usize > STAMPS {
            return Err(self.err(
                col,
                format!("recent: --hitcount {hitcount} is more than the {STAMPS} hits remembered"),
            ));
        }
        let f = self.family();
        let name = d.name.clone().unwrap_or_else(|| "DEFAULT".into());
        let table = self.r.sets.recent(&format!("{name}/{}", width(f)));
        Ok(ExtMatch::Recent(
            table,
            RecentSpec {
                cmd,
                seconds,
                hitcount,
                rttl: d.rttl,
                reap: d.reap,
                dest: d.dest,
                mask: d.mask.unwrap_or(prefix(width(f), f)),
                neg,
                family: f,
            },
        ))
    }

    pub(super) fn hashlimit_apply(
        &mut self,
        d: &mut HashlimitDraft,
        o: &str,
        v: Tok,
        negated: Option<usize>,
        col: usize,
    ) -> Res<()> {
        let opt = Tok {
            s: o.to_string(),
            col,
        };
        self.no_neg(negated, &opt)?;
        let f = self.family();
        match o {
            "--hashlimit-upto" | "--hashlimit-above" | "--hashlimit" => {
                if d.rate.is_some() {
                    return Err(self.err(col, "hashlimit: one rate only"));
                }
                let (n, u, ns) = parse_rate(&v.s).map_err(|m| self.err(v.col, m))?;
                d.rate = Some((n, u, ns, o == "--hashlimit-above"));
            }
            "--hashlimit-burst" => {
                let b = self.num_u32(&v, "--hashlimit-burst")?;
                if b == 0 {
                    return Err(self.err(v.col, "hashlimit: --hashlimit-burst must be at least 1"));
                }
                d.burst = Some(b);
            }
            "--hashlimit-mode" => {
                for part in v.s.split(',') {
                    let b = mode::NAMES
                        .iter()
                        .find(|(_, n)| *n == part)
                        .map(|(b, _)| *b)
                        .ok_or_else(|| {
                            self.err(
                                v.col,
                                format!("bad --hashlimit-mode \"{part}\" (srcip, srcport, dstip, dstport)"),
                            )
                        })?;
                    d.mode |= b;
                }
            }
            "--hashlimit-name" => {
                if v.s.is_empty() || v.s.len() > 255 {
                    return Err(self.err(v.col, "hashlimit: bad --hashlimit-name"));
                }
                d.name = Some(v.s.clone());
            }
            "--hashlimit-srcmask" | "--hashlimit-dstmask" => {
                let m: u8 =
                    v.s.parse()
                        .ok()
                        .filter(|&m| m <= width(f))
                        .ok_or_else(|| self.err(v.col, format!("bad {o} \"{}\"", v.s)))?;
                if o == "--hashlimit-srcmask" {
                    d.srcmask = Some(m);
                } else {
                    d.dstmask = Some(m);
                }
            }
            "--hashlimit-htable-expire" => {
                d.expire_ms = Some(
                    v.s.parse()
                        .map_err(|_| self.err(v.col, format!("bad {o} \"{}\"", v.s)))?,
                );
            }
            "--hashlimit-htable-size"
            | "--hashlimit-htable-max"
            | "--hashlimit-htable-gcinterval" => {
                // Sizing of the kernel's table; statewall's table is fixed (docs/SETS.md).
                self.num_u32(&v, o)?;
            }
            _ => {
                return Err(self.err(
                    col,
                    format!("hashlimit option \"{o}\" is not supported by statewall"),
                ))
            }
        }
        Ok(())
    }

    pub(super) fn hashlimit_finish(&self, d: &HashlimitDraft, col: usize) -> Res<ExtMatch> {
        let (n, unit, interval, above) = d.rate.ok_or_else(|| {
            self.err(
                col,
                "match \"hashlimit\" needs --hashlimit-upto or --hashlimit-above",
            )
        })?;
        let name = d
            .name
            .clone()
            .ok_or_else(|| self.err(col, "match \"hashlimit\" needs --hashlimit-name"))?;
        let f = self.family();
        let w = width(f);
        let table = self.r.sets.hashlimit(&format!("{name}/{w}"));
        Ok(ExtMatch::Hashlimit(HashlimitMatch {
            table,
            spec: HashlimitSpec {
                interval,
                burst: d.burst.unwrap_or(5),
                above,
                mode: d.mode,
                srcmask: prefix(d.srcmask.unwrap_or(w), f),
                dstmask: prefix(d.dstmask.unwrap_or(w), f),
                expire: d.expire_ms.unwrap_or(10_000) * 1_000_000,
            },
            rate: (n, unit),
            masks: (d.srcmask, d.dstmask),
            expire_ms: d.expire_ms,
        }))
    }
}
