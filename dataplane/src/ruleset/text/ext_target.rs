//! The reader of the extended targets (`mangle.rs`): MARK, CONNMARK, TCPMSS, DSCP, TOS,
//! TTL, HL, CHECKSUM, NFLOG, ULOG. Options are collected as written and checked here
//! once the rule is read.

use super::ext::{dscp_class, num, tos_value, val_mask, ExtOpt};
use super::lex::Tok;
use super::{Reader, Res};
use crate::packet::mangle::TtlOp;
use crate::packet::{proto, Family};
use crate::ruleset::mangle::{ConnMarkOp, ExtTarget};
use crate::ruleset::Table;

/// The options of each extended target: (name, takes a value).
pub(super) fn target_opts(name: &str) -> Option<&'static [(&'static str, bool)]> {
    Some(match name {
        "MARK" => &[
            ("--set-xmark", true),
            ("--set-mark", true),
            ("--and-mark", true),
            ("--or-mark", true),
            ("--xor-mark", true),
        ],
        "CONNMARK" => &[
            ("--set-xmark", true),
            ("--set-mark", true),
            ("--and-mark", true),
            ("--or-mark", true),
            ("--xor-mark", true),
            ("--save-mark", false),
            ("--restore-mark", false),
            ("--nfmask", true),
            ("--ctmask", true),
            ("--mask", true),
        ],
        "TCPMSS" => &[("--set-mss", true), ("--clamp-mss-to-pmtu", false)],
        "DSCP" => &[("--set-dscp", true), ("--set-dscp-class", true)],
        "TOS" => &[
            ("--set-tos", true),
            ("--and-tos", true),
            ("--or-tos", true),
            ("--xor-tos", true),
        ],
        "TTL" => &[
            ("--ttl-set", true),
            ("--ttl-inc", true),
            ("--ttl-dec", true),
        ],
        "HL" => &[("--hl-set", true), ("--hl-inc", true), ("--hl-dec", true)],
        "CHECKSUM" => &[("--checksum-fill", false)],
        "NFLOG" => &[
            ("--nflog-group", true),
            ("--nflog-prefix", true),
            ("--nflog-range", true),
            ("--nflog-size", true),
            ("--nflog-threshold", true),
        ],
        "ULOG" => &[
            ("--ulog-nlgroup", true),
            ("--ulog-prefix", true),
            ("--ulog-cprange", true),
            ("--ulog-qthreshold", true),
        ],
        _ => return None,
    })
}

/// Builds an extended target from its options (`table`: where the rule is).
pub(super) fn finish_target(
    r: &mut Reader,
    name: &str,
    opts: &[ExtOpt],
    (table, builtin): (Table, Option<&str>),
    proto_: Option<(u8, bool)>,
    col: usize,
) -> Res<ExtTarget> {
    for (i, o) in opts.iter().enumerate() {
        if let Some(c) = o.neg {
            return Err(r.err(c, format!("\"!\" cannot be used with \"{}\"", o.opt)));
        }
        if opts[..i].iter().any(|p| p.opt == o.opt) {
            return Err(r.err(o.col, format!("option \"{}\" given twice", o.opt)));
        }
    }
    let mangle_only = matches!(name, "DSCP" | "TOS" | "TTL" | "HL" | "CHECKSUM");
    if mangle_only && table != Table::Mangle {
        return Err(r.err(col, format!("{name} is only valid in the mangle table")));
    }
    let get = |opt: &str| opts.iter().find(|o| o.opt == opt);
    let val = |o: &ExtOpt| o.val.clone().expect("option takes a value");
    let one = |r: &Reader, what: &str| -> Res<&ExtOpt> {
        let acts: Vec<&ExtOpt> = opts
            .iter()
            .filter(|o| !matches!(o.opt.as_str(), "--nfmask" | "--ctmask" | "--mask"))
            .collect();
        match acts.as_slice() {
            [o] => Ok(o),
            [] => Err(r.err(col, format!("{name} needs {what}"))),
            [_, o, ..] => Err(r.err(o.col, format!("{name} takes one of {what}"))),
        }
    };
    let u32v = |r: &Reader, t: &Tok| -> Res<u32> {
        num(&t.s)
            .filter(|&n| n <= u32::MAX as u64)
            .map(|n| n as u32)
            .ok_or_else(|| r.bad(t, "value"))
    };
    // --set-xmark/--set-mark/--and-mark/--or-mark/--xor-mark to (value, mask) of
    // `(x & !mask) ^ value` (libxt_MARK's reductions).
    let markop = |r: &Reader, o: &ExtOpt| -> Res<(u32, u32)> {
        let v = val(o);
        Ok(match o.opt.as_str() {
            "--set-xmark" | "--set-mark" => {
                let (a, m) = val_mask(&v.s, u32::MAX as u64).ok_or_else(|| r.bad(&v, "mark"))?;
                let (a, m) = (a as u32, m as u32);
                if o.opt == "--set-mark" {
                    (a, a | m)
                } else {
                    (a, m)
                }
            }
            "--and-mark" => (0, !u32v(r, &v)?),
            "--or-mark" => {
                let b = u32v(r, &v)?;
                (b, b)
            }
            _ => (u32v(r, &v)?, 0),
        })
    };
    Ok(match name {
        "MARK" => {
            let o = one(
                r,
                "--set-xmark, --set-mark, --and-mark, --or-mark or --xor-mark",
            )?;
            let (value, mask) = markop(r, o)?;
            ExtTarget::Mark { value, mask }
        }
        "CONNMARK" => {
            let o = one(r, "--set-xmark, --set-mark, --save-mark or --restore-mark")?;
            let mask_opt = |r: &Reader, n: &str| -> Res<Option<u32>> {
                get(n).map(|m| u32v(r, &val(m))).transpose()
            };
            match o.opt.as_str() {
                "--save-mark" | "--restore-mark" => {
                    let all = mask_opt(r, "--mask")?;
                    let nfmask = mask_opt(r, "--nfmask")?.or(all).unwrap_or(u32::MAX);
                    let ctmask = mask_opt(r, "--ctmask")?.or(all).unwrap_or(u32::MAX);
                    ExtTarget::ConnMark(if o.opt == "--save-mark" {
                        ConnMarkOp::Save { nfmask, ctmask }
                    } else {
                        ConnMarkOp::Restore { nfmask, ctmask }
                    })
                }
                _ => {
                    if let Some(x) = opts
                        .iter()
                        .find(|x| x.opt.ends_with("mask") && x.opt != o.opt)
                    {
                        return Err(r.err(
                            x.col,
                            format!("\"{}\" belongs to --save-mark or --restore-mark", x.opt),
                        ));
                    }
                    let (value, mask) = markop(r, o)?;
                    ExtTarget::ConnMark(ConnMarkOp::Set { value, mask })
                }
            }
        }
        "TCPMSS" => {
            if proto_ != Some((proto::TCP, false)) {
                return Err(r.err(col, "TCPMSS needs -p tcp"));
            }
            let o = one(r, "--set-mss or --clamp-mss-to-pmtu")?;
            if o.opt == "--clamp-mss-to-pmtu" {
                // xt_TCPMSS's hook check, as the kernel makes it for a built-in chain.
                if let Some(c @ ("PREROUTING" | "INPUT")) = builtin {
                    return Err(r.err(
                        o.col,
                        format!(
                            "--clamp-mss-to-pmtu is only valid in FORWARD, OUTPUT and \
                             POSTROUTING (not {c})"
                        ),
                    ));
                }
                ExtTarget::TcpMss(0)
            } else {
                let v = val(o);
                let n = num(&v.s)
                    .filter(|&n| (1..=65535).contains(&n))
                    .ok_or_else(|| r.bad(&v, "--set-mss"))?;
                ExtTarget::TcpMss(n as u16)
            }
        }
        "DSCP" => {
            let o = one(r, "--set-dscp or --set-dscp-class")?;
            let v = val(o);
            let d = if o.opt == "--set-dscp" {
                num(&v.s).filter(|&n| n <= 63).map(|n| n as u8)
            } else {
                dscp_class(&v.s)
            }
            .ok_or_else(|| r.bad(&v, "dscp"))?;
            ExtTarget::Dscp(d)
        }
        "TOS" => {
            let o = one(r, "--set-tos, --and-tos, --or-tos or --xor-tos")?;
            let v = val(o);
            let byte = |r: &Reader| -> Res<u8> {
                num(&v.s)
                    .filter(|&n| n <= 255)
                    .map(|n| n as u8)
                    .ok_or_else(|| r.bad(&v, "tos"))
            };
            let (value, mask) = match o.opt.as_str() {
                "--set-tos" => tos_value(&v.s).ok_or_else(|| r.bad(&v, "tos"))?,
                "--and-tos" => (0, !byte(r)?),
                "--or-tos" => {
                    let b = byte(r)?;
                    (b, b)
                }
                _ => (byte(r)?, 0),
            };
            ExtTarget::Tos { value, mask }
        }
        "TTL" | "HL" => {
            let w = if name == "TTL" { "ttl" } else { "hl" };
            let o = one(r, &format!("--{w}-set, --{w}-inc or --{w}-dec"))?;
            let v = val(o);
            let n = num(&v.s)
                .filter(|&n| n <= 255)
                .ok_or_else(|| r.bad(&v, w))? as u8;
            let op = match &o.opt[o.opt.len() - 3..] {
                "set" => TtlOp::Set(n),
                "inc" if n == 0 => return Err(r.err(v.col, format!("--{w}-inc 0 is a no-op"))),
                "inc" => TtlOp::Inc(n),
                _ if n == 0 => return Err(r.err(v.col, format!("--{w}-dec 0 is a no-op"))),
                _ => TtlOp::Dec(n),
            };
            if name == "TTL" {
                r.set_family(Family::V4, col, "TTL")?;
                ExtTarget::Ttl(op)
            } else {
                r.set_family(Family::V6, col, "HL")?;
                ExtTarget::Hl(op)
            }
        }
        "CHECKSUM" => {
            one(r, "--checksum-fill")?;
            ExtTarget::ChecksumFill
        }
        _ => {
            // NFLOG / ULOG
            let ulog = name == "ULOG";
            let pre = if ulog {
                "--ulog-prefix"
            } else {
                "--nflog-prefix"
            };
            let grp = if ulog {
                "--ulog-nlgroup"
            } else {
                "--nflog-group"
            };
            let prefix = get(pre).map(|o| val(o).s).unwrap_or_default();
            let max = if ulog { 31 } else { 63 };
            if prefix.chars().count() > max {
                return Err(r.err(col, format!("{pre} is longer than {max} characters")));
            }
            let group = match get(grp) {
                Some(o) => {
                    let v = val(o);
                    let (lo, hi) = if ulog { (1, 32) } else { (0, 65535) };
                    num(&v.s)
                        .filter(|n| (lo..=hi).contains(n))
                        .ok_or_else(|| r.bad(&v, grp))? as u16
                }
                None => u16::from(ulog),
            };
            let size = match get("--nflog-size").or(get("--nflog-range")) {
                Some(o) => Some(u32v(r, &val(o))?),
                None => None,
            };
            let threshold = match get("--nflog-threshold") {
                Some(o) => {
                    let v = val(o);
                    Some(
                        num(&v.s)
                            .filter(|&n| (1..=65535).contains(&n))
                            .ok_or_else(|| r.bad(&v, "--nflog-threshold"))?
                            as u16,
                    )
                }
                None => None,
            };
            ExtTarget::Nflog {
                prefix,
                group,
                size: if ulog { None } else { size },
                threshold: if ulog { None } else { threshold },
                ulog,
            }
        }
    })
}
