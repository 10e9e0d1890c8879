//! The target options of a rule: REJECT's `--reject-with`, LOG's `--log-*`, CT's
//! `--notrack`/`--helper`, and the NAT targets' (through [`super::nat`]).

use super::super::lex::Tok;
use super::super::values::*;
use super::{nat, Res, RuleParser};
use crate::packet::proto;
use crate::ruleset::{Helper, RejectKind};

impl RuleParser<'_> {
    /// Target options; returns false when `tok` is not one of the target's.
    pub(super) fn target_option(&mut self, tok: &Tok, neg: &mut Option<usize>) -> Res<bool> {
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
            t if super::ext_target::target_opts(t).is_some() => {
                let Some(&(_, takes)) = super::ext_target::target_opts(t)
                    .expect("checked")
                    .iter()
                    .find(|(x, _)| *x == o)
                else {
                    return Ok(false);
                };
                let negc = neg.take();
                let val = if takes {
                    Some(self.value(tok, &mut None, false)?)
                } else {
                    None
                };
                self.ext_target.push(super::ext::ExtOpt {
                    opt: o.to_string(),
                    val,
                    neg: negc,
                    col: tok.col,
                });
                return Ok(true);
            }
            t => nat::kind_of(t).is_some_and(|k| nat::accepts(k, o)),
        };
        if !known {
            return Ok(false);
        }
        self.no_neg(*neg, tok)?;
        if let Some(k) = nat::kind_of(&target) {
            self.nat_option(k, tok)?;
            return Ok(true);
        }
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
}
