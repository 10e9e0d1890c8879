//! The reader of the extended matches (`matches.rs`) and targets (`mangle.rs`): each
//! `-m NAME` / `-j NAME` collects its options as written, and [`finish_match`] /
//! [`finish_target`] check them and build the compiled form once the rule is read
//! (errors point at the option). Also the matches refused on purpose, with why.

use super::lex::Tok;
use super::Reader;
use super::Res;
use crate::packet::{proto, Family};
use crate::ruleset::matches::{Cmp, ExtMatch, PktType, StatMode};
use crate::ruleset::LimitSpec;

/// One option as written: name, value (None for a flag), `!` column, option column.
#[derive(Debug, Clone)]
pub(super) struct ExtOpt {
    pub(super) opt: String,
    pub(super) val: Option<Tok>,
    pub(super) neg: Option<usize>,
    pub(super) col: usize,
}

/// An extended `-m` module being read.
pub(super) struct ExtModule {
    pub(super) name: &'static str,
    pub(super) col: usize,
    pub(super) opts: Vec<ExtOpt>,
}

/// The options of each extended match: (name, takes a value).
fn match_opts(name: &str) -> &'static [(&'static str, bool)] {
    match name {
        "mark" | "connmark" => &[("--mark", true)],
        "ttl" => &[("--ttl-eq", true), ("--ttl-lt", true), ("--ttl-gt", true)],
        "hl" => &[("--hl-eq", true), ("--hl-lt", true), ("--hl-gt", true)],
        "tos" => &[("--tos", true)],
        "dscp" => &[("--dscp", true), ("--dscp-class", true)],
        "ecn" => &[
            ("--ecn-tcp-cwr", false),
            ("--ecn-tcp-ece", false),
            ("--ecn-ip-ect", true),
        ],
        "length" => &[("--length", true)],
        "pkttype" => &[("--pkt-type", true)],
        "iprange" => &[("--src-range", true), ("--dst-range", true)],
        "tcpmss" => &[("--mss", true)],
        "statistic" => &[
            ("--mode", true),
            ("--probability", true),
            ("--every", true),
            ("--packet", true),
        ],
        "esp" => &[("--espspi", true)],
        "ah" => &[("--ahspi", true), ("--ahlen", true), ("--ahres", false)],
        "rt" => &[
            ("--rt-type", true),
            ("--rt-segsleft", true),
            ("--rt-len", true),
            ("--rt-0-res", false),
            ("--rt-0-addrs", true),
            ("--rt-0-not-strict", false),
        ],
        "frag" => &[
            ("--fragid", true),
            ("--fraglen", true),
            ("--fragres", false),
            ("--fragfirst", false),
            ("--fragmore", false),
            ("--fraglast", false),
        ],
        _ => &[],
    }
}

/// The module `name` if it is an extended one.
pub(super) fn load(name: &str, col: usize) -> Option<ExtModule> {
    const NAMES: &[&str] = &[
        "mark",
        "connmark",
        "ttl",
        "hl",
        "tos",
        "dscp",
        "ecn",
        "length",
        "pkttype",
        "iprange",
        "tcpmss",
        "statistic",
        "esp",
        "ah",
        "rt",
        "frag",
    ];
    let name = *NAMES.iter().find(|n| **n == name)?;
    Some(ExtModule {
        name,
        col,
        opts: Vec::new(),
    })
}

/// Why statewall refuses a match it knows on purpose (None: not one of those).
pub(super) fn refused(name: &str) -> Option<String> {
    let why = match name {
        "owner" | "socket" | "cgroup" => format!(
            "match \"-m {name}\" needs the local socket of the packet, and statewall is a \
             bypass fast path with no local sockets; match the host's traffic by address, \
             port or interface instead (-s/-d, --sport/--dport, -i/-o), or keep this rule \
             in the host's own iptables"
        ),
        "rpfilter" => "match \"-m rpfilter\" needs a route lookup in the host's routing table, \
             which a bypass fast path does not consult; drop spoofed sources with -s/-i rules \
             per port (or keep this rule in the host's own iptables)"
            .to_string(),
        _ => return None,
    };
    Some(why)
}

impl ExtModule {
    /// The module's name as written after `-m`.
    pub(super) fn name(&self) -> &'static str {
        self.name
    }

    /// Some(takes a value) when `opt` is one of this module's options.
    pub(super) fn takes(&self, opt: &str) -> Option<bool> {
        match_opts(self.name)
            .iter()
            .find(|(o, _)| *o == opt)
            .map(|x| x.1)
    }
}

/// An unsigned number as iptables reads it (`strtoul` base 0: `0x` hex, leading-0 octal).
pub(super) fn num(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// `V[/M]` (M defaulting to all ones).
pub(super) fn val_mask(s: &str, max: u64) -> Option<(u64, u64)> {
    let (v, m) = match s.split_once('/') {
        Some((v, m)) => (num(v)?, num(m)?),
        None => (num(s)?, max),
    };
    (v <= max && m <= max).then_some((v, m))
}

/// `LO[:HI]` of numbers up to `max`.
fn range(s: &str, max: u64) -> Option<(u64, u64)> {
    let (lo, hi) = match s.split_once(':') {
        Some((a, b)) => (
            if a.is_empty() { 0 } else { num(a)? },
            if b.is_empty() { max } else { num(b)? },
        ),
        None => (num(s)?, num(s)?),
    };
    (lo <= hi && hi <= max).then_some((lo, hi))
}

/// The DSCP class names (`--dscp-class`, `--set-dscp-class`).
pub(super) fn dscp_class(s: &str) -> Option<u8> {
    let s = s.to_ascii_uppercase();
    Some(match s.as_str() {
        "CS0" | "BE" => 0,
        "CS1" => 8,
        "CS2" => 16,
        "CS3" => 24,
        "CS4" => 32,
        "CS5" => 40,
        "CS6" => 48,
        "CS7" => 56,
        "AF11" => 10,
        "AF12" => 12,
        "AF13" => 14,
        "AF21" => 18,
        "AF22" => 20,
        "AF23" => 22,
        "AF31" => 26,
        "AF32" => 28,
        "AF33" => 30,
        "AF41" => 34,
        "AF42" => 36,
        "AF43" => 38,
        "EF" => 46,
        _ => return None,
    })
}

/// `--tos` / `--set-tos` values: a number `V[/M]` (mask 0xff) or a symbolic name
/// (mask 0x3f, as libxt_tos).
pub(super) fn tos_value(s: &str) -> Option<(u8, u8)> {
    let named = match s.to_ascii_lowercase().as_str() {
        "minimize-delay" => Some(0x10),
        "maximize-throughput" => Some(0x08),
        "maximize-reliability" => Some(0x04),
        "minimize-cost" => Some(0x02),
        "normal-service" => Some(0x00),
        _ => None,
    };
    if let Some(v) = named {
        return Some((v, 0x3f));
    }
    let (v, m) = val_mask(s, 0xff)?;
    Some((v as u8, m as u8))
}

fn parse_addr(s: &str) -> Option<(Family, u128)> {
    match s.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) => Some((Family::V4, (u32::from(a) as u128) << 96)),
        std::net::IpAddr::V6(a) => Some((Family::V6, u128::from(a))),
    }
}

impl Reader {
    pub(super) fn bad(&self, t: &Tok, what: &str) -> super::super::RulesetError {
        self.err(t.col, format!("bad {what} \"{}\"", t.s))
    }
}

/// Builds the match of an extended module once the rule is read. `proto`: the rule's
/// `-p`; `stat_slot`: gives the next per-worker state slot (statistic).
pub(super) fn finish_match(
    r: &mut Reader,
    m: &ExtModule,
    proto_: Option<(u8, bool)>,
) -> Res<ExtMatch> {
    let name = m.name;
    let need = |r: &Reader, what: &str| r.err(m.col, format!("match \"{name}\" needs {what}"));
    for (i, o) in m.opts.iter().enumerate() {
        if m.opts[..i].iter().any(|p| p.opt == o.opt) {
            return Err(r.err(o.col, format!("option \"{}\" given twice", o.opt)));
        }
    }
    let get = |opt: &str| m.opts.iter().find(|o| o.opt == opt);
    let val = |o: &ExtOpt| o.val.clone().expect("option takes a value");
    let tcp_only = |r: &Reader| -> Res<()> {
        if proto_ != Some((proto::TCP, false)) {
            return Err(r.err(m.col, format!("match \"{name}\" needs -p tcp before it")));
        }
        Ok(())
    };
    let no_neg = |r: &Reader, o: &ExtOpt| match o.neg {
        Some(c) => Err(r.err(c, format!("\"!\" cannot be used with \"{}\"", o.opt))),
        None => Ok(()),
    };
    let refuse = |r: &Reader, o: &ExtOpt| {
        Err(r.err(
            o.col,
            format!("option \"{}\" of -m {name} is not supported", o.opt),
        ))
    };
    let first = m.opts.first();
    Ok(match name {
        "mark" | "connmark" => {
            let o = get("--mark").ok_or_else(|| need(r, "--mark"))?;
            let v = val(o);
            let (value, mask) = val_mask(&v.s, u32::MAX as u64).ok_or_else(|| r.bad(&v, "mark"))?;
            let (value, mask, neg) = (value as u32, mask as u32, o.neg.is_some());
            if name == "mark" {
                ExtMatch::Mark { value, mask, neg }
            } else {
                ExtMatch::ConnMark { value, mask, neg }
            }
        }
        "ttl" | "hl" => {
            if m.opts.len() > 1 {
                return Err(r.err(m.opts[1].col, format!("-m {name} takes one option")));
            }
            let o = first
                .ok_or_else(|| need(r, &format!("--{name}-eq, --{name}-lt or --{name}-gt")))?;
            let v = val(o);
            let n = num(&v.s)
                .filter(|&n| n <= 255)
                .ok_or_else(|| r.bad(&v, name))? as u8;
            let cmp = match (&o.opt[o.opt.len() - 2..], o.neg.is_some()) {
                ("eq", false) => Cmp::Eq,
                ("eq", true) => Cmp::Ne,
                (_, true) => {
                    return Err(r.err(
                        o.neg.unwrap_or(o.col),
                        format!("\"!\" cannot be used with \"{}\"", o.opt),
                    ))
                }
                ("lt", false) => Cmp::Lt,
                _ => Cmp::Gt,
            };
            if name == "ttl" {
                r.set_family(Family::V4, m.col, "-m ttl")?;
                ExtMatch::Ttl { cmp, v: n }
            } else {
                r.set_family(Family::V6, m.col, "-m hl")?;
                ExtMatch::Hl { cmp, v: n }
            }
        }
        "tos" => {
            let o = get("--tos").ok_or_else(|| need(r, "--tos"))?;
            let v = val(o);
            let (value, mask) = tos_value(&v.s).ok_or_else(|| r.bad(&v, "tos"))?;
            ExtMatch::Tos {
                value: value & mask,
                mask,
                neg: o.neg.is_some(),
            }
        }
        "dscp" => {
            if m.opts.len() > 1 {
                return Err(r.err(m.opts[1].col, "-m dscp takes one of --dscp, --dscp-class"));
            }
            let o = first.ok_or_else(|| need(r, "--dscp or --dscp-class"))?;
            let v = val(o);
            let value = if o.opt == "--dscp" {
                num(&v.s).filter(|&n| n <= 63).map(|n| n as u8)
            } else {
                dscp_class(&v.s)
            }
            .ok_or_else(|| r.bad(&v, "dscp"))?;
            ExtMatch::Dscp {
                value,
                neg: o.neg.is_some(),
            }
        }
        "ecn" => {
            let mut ect = None;
            let (mut ece, mut cwr) = (None, None);
            for o in &m.opts {
                match o.opt.as_str() {
                    "--ecn-ip-ect" => {
                        let v = val(o);
                        let n = num(&v.s)
                            .filter(|&n| n <= 3)
                            .ok_or_else(|| r.bad(&v, "--ecn-ip-ect (0..3)"))?;
                        ect = Some((n as u8, o.neg.is_some()));
                    }
                    "--ecn-tcp-ece" => ece = Some(o.neg.is_some()),
                    _ => cwr = Some(o.neg.is_some()),
                }
            }
            if ece.is_some() || cwr.is_some() {
                tcp_only(r)?;
            }
            if ect.is_none() && ece.is_none() && cwr.is_none() {
                return Err(need(r, "--ecn-ip-ect, --ecn-tcp-ece or --ecn-tcp-cwr"));
            }
            ExtMatch::Ecn { ect, ece, cwr }
        }
        "length" => {
            let o = get("--length").ok_or_else(|| need(r, "--length"))?;
            let v = val(o);
            let (lo, hi) = range(&v.s, 65535).ok_or_else(|| r.bad(&v, "length"))?;
            ExtMatch::Length {
                lo: lo as u16,
                hi: hi as u16,
                neg: o.neg.is_some(),
            }
        }
        "pkttype" => {
            let o = get("--pkt-type").ok_or_else(|| need(r, "--pkt-type"))?;
            let v = val(o);
            let ty = match v.s.to_ascii_lowercase().as_str() {
                "unicast" | "host" => PktType::Unicast,
                "broadcast" => PktType::Broadcast,
                "multicast" => PktType::Multicast,
                _ => return Err(r.bad(&v, "--pkt-type (unicast, broadcast or multicast)")),
            };
            ExtMatch::PktType {
                ty,
                neg: o.neg.is_some(),
            }
        }
        "iprange" => {
            let mut spec = [None, None];
            for o in &m.opts {
                let v = val(o);
                let (a, b) = v.s.split_once('-').unwrap_or((&v.s, &v.s));
                let ((fa, lo), (fb, hi)) = parse_addr(a)
                    .zip(parse_addr(b))
                    .filter(|((fa, lo), (fb, hi))| fa == fb && lo <= hi)
                    .ok_or_else(|| r.bad(&v, "address range"))?;
                let _ = fb;
                r.set_family(fa, v.col, &format!("range \"{}\"", v.s))?;
                spec[usize::from(o.opt == "--dst-range")] = Some((lo, hi, o.neg.is_some()));
            }
            if spec == [None, None] {
                return Err(need(r, "--src-range or --dst-range"));
            }
            ExtMatch::IpRange {
                src: spec[0],
                dst: spec[1],
            }
        }
        "tcpmss" => {
            tcp_only(r)?;
            let o = get("--mss").ok_or_else(|| need(r, "--mss"))?;
            let v = val(o);
            let (lo, hi) = range(&v.s, 65535).ok_or_else(|| r.bad(&v, "mss"))?;
            ExtMatch::TcpMss {
                lo: lo as u16,
                hi: hi as u16,
                neg: o.neg.is_some(),
            }
        }
        "statistic" => {
            let mode = get("--mode").ok_or_else(|| need(r, "--mode"))?;
            no_neg(r, mode)?;
            let mv = val(mode);
            let neg;
            let sm = match mv.s.as_str() {
                "random" => {
                    let o = get("--probability").ok_or_else(|| need(r, "--probability"))?;
                    if let Some(x) = get("--every").or(get("--packet")) {
                        return Err(r.err(x.col, format!("\"{}\" belongs to --mode nth", x.opt)));
                    }
                    neg = o.neg.is_some();
                    let v = val(o);
                    let p: f64 =
                        v.s.parse()
                            .ok()
                            .filter(|p: &f64| (0.0..=1.0).contains(p))
                            .ok_or_else(|| r.bad(&v, "--probability (0..1)"))?;
                    StatMode::Random {
                        p31: (p * 2147483648.0).round() as u32,
                    }
                }
                "nth" => {
                    let o = get("--every").ok_or_else(|| need(r, "--every"))?;
                    if let Some(x) = get("--probability") {
                        return Err(r.err(x.col, "\"--probability\" belongs to --mode random"));
                    }
                    neg = o.neg.is_some();
                    let v = val(o);
                    let every = num(&v.s)
                        .filter(|&n| (1..=u32::MAX as u64).contains(&n))
                        .ok_or_else(|| r.bad(&v, "--every"))?
                        as u32;
                    let packet = match get("--packet") {
                        Some(p) => {
                            no_neg(r, p)?;
                            let pv = val(p);
                            num(&pv.s)
                                .filter(|&n| n < every as u64)
                                .ok_or_else(|| r.bad(&pv, "--packet (below --every)"))?
                                as u32
                        }
                        None => 0,
                    };
                    StatMode::Nth { every, packet }
                }
                _ => return Err(r.bad(&mv, "--mode (random or nth)")),
            };
            // Per-worker state lives in a limit slot (LimitState): lock-free.
            let slot = r.d.limits.len() as u32;
            r.d.limits.push(LimitSpec {
                interval: 0,
                burst: 0,
                count: 0,
                unit: "statistic",
            });
            ExtMatch::Statistic {
                mode: sm,
                neg,
                slot,
            }
        }
        "esp" | "ah" => {
            let opt = if name == "esp" { "--espspi" } else { "--ahspi" };
            for o in &m.opts {
                if o.opt != opt {
                    return refuse(r, o);
                }
            }
            let want = if name == "esp" { proto::ESP } else { proto::AH };
            let v6_ah = name == "ah" && r.d.family == Some(Family::V6);
            if !v6_ah && proto_ != Some((want, false)) {
                return Err(r.err(m.col, format!("match \"{name}\" needs -p {name} before it")));
            }
            let (lo, hi, neg) = match get(opt) {
                Some(o) => {
                    let v = val(o);
                    let (lo, hi) = range(&v.s, u32::MAX as u64).ok_or_else(|| r.bad(&v, "spi"))?;
                    (lo as u32, hi as u32, o.neg.is_some())
                }
                None => (0, u32::MAX, false),
            };
            if name == "esp" {
                ExtMatch::Esp { lo, hi, neg }
            } else {
                ExtMatch::Ah { lo, hi, neg }
            }
        }
        "rt" => {
            r.set_family(Family::V6, m.col, "-m rt")?;
            let (mut ty, mut segsleft, mut len) = (None, None, None);
            for o in &m.opts {
                match o.opt.as_str() {
                    "--rt-type" => {
                        let v = val(o);
                        let n = num(&v.s)
                            .filter(|&n| n <= 255)
                            .ok_or_else(|| r.bad(&v, "--rt-type"))?;
                        ty = Some((n as u8, o.neg.is_some()));
                    }
                    "--rt-segsleft" => {
                        let v = val(o);
                        let (lo, hi) = range(&v.s, u32::MAX as u64)
                            .ok_or_else(|| r.bad(&v, "--rt-segsleft"))?;
                        segsleft = Some((lo as u32, hi as u32, o.neg.is_some()));
                    }
                    "--rt-len" => {
                        let v = val(o);
                        let n = num(&v.s)
                            .filter(|&n| n <= u32::MAX as u64)
                            .ok_or_else(|| r.bad(&v, "--rt-len"))?;
                        len = Some((n as u32, o.neg.is_some()));
                    }
                    _ => return refuse(r, o),
                }
            }
            ExtMatch::Rt { ty, segsleft, len }
        }
        _ => {
            // frag
            r.set_family(Family::V6, m.col, "-m frag")?;
            let mut id = None;
            let (mut first, mut more, mut last) = (false, false, false);
            for o in &m.opts {
                match o.opt.as_str() {
                    "--fragid" => {
                        let v = val(o);
                        let (lo, hi) =
                            range(&v.s, u32::MAX as u64).ok_or_else(|| r.bad(&v, "--fragid"))?;
                        id = Some((lo as u32, hi as u32, o.neg.is_some()));
                    }
                    "--fragfirst" => first = true,
                    "--fragmore" => more = true,
                    "--fraglast" => last = true,
                    _ => return refuse(r, o),
                }
                if o.opt != "--fragid" {
                    no_neg(r, o)?;
                }
            }
            ExtMatch::Frag {
                id,
                first,
                more,
                last,
            }
        }
    })
}
