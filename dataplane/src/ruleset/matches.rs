//! The stateless `-m` matches beyond the core ones (one boxed [`Match::Ext`] each, so
//! `Match` stays small): `mark`, `connmark`, `ttl`, `hl`, `tos`, `dscp`, `ecn`, `length`,
//! `pkttype`, `iprange`, `tcpmss`, `statistic`, `esp`, `ah`, `rt`, `frag`. Their
//! evaluation (no allocation, no lock: `statistic`'s state is a per-worker slot), their
//! `iptables-save` text and their `iptables -L` text.
//!
//! [`Match::Ext`]: super::Match::Ext

use super::{LimitState, PacketCtx};
use crate::packet::{proto, Family, L4};
use std::fmt::Write;

/// A comparison of `-m ttl` / `-m hl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Gt,
}

/// `-m statistic`'s mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatMode {
    /// `--mode random --probability P`: P as the kernel's 31-bit fraction.
    Random { p31: u32 },
    /// `--mode nth --every N --packet P`.
    Nth { every: u32, packet: u32 },
}

/// `-m pkttype` classes (the kernel's `PACKET_HOST`, `PACKET_BROADCAST`,
/// `PACKET_MULTICAST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PktType {
    Unicast,
    Broadcast,
    Multicast,
}

impl PktType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            PktType::Unicast => "unicast",
            PktType::Broadcast => "broadcast",
            PktType::Multicast => "multicast",
        }
    }
}

/// One extended match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExtMatch {
    /// `-m mark --mark V/M`: `(mark & M) == V`.
    Mark { value: u32, mask: u32, neg: bool },
    /// `-m connmark --mark V/M`: the connection's mark (no connection: no match).
    ConnMark { value: u32, mask: u32, neg: bool },
    /// `-m ttl` (IPv4).
    Ttl { cmp: Cmp, v: u8 },
    /// `-m hl` (IPv6).
    Hl { cmp: Cmp, v: u8 },
    /// `-m tos --tos V/M` (the TOS / traffic-class byte).
    Tos { value: u8, mask: u8, neg: bool },
    /// `-m dscp --dscp V` (the upper six bits of the TOS byte).
    Dscp { value: u8, neg: bool },
    /// `-m ecn`: IP ECT codepoint, TCP ECE, TCP CWR, each with its `!`.
    Ecn {
        ect: Option<(u8, bool)>,
        ece: Option<bool>,
        cwr: Option<bool>,
    },
    /// `-m length --length LO:HI` (the IP total length; IPv6: payload + 40).
    Length { lo: u16, hi: u16, neg: bool },
    /// `-m pkttype --pkt-type T`, from the destination MAC address.
    PktType { ty: PktType, neg: bool },
    /// `-m iprange`: inclusive ranges (u128, IPv4 in the top 32 bits) with `!`.
    IpRange {
        src: Option<(u128, u128, bool)>,
        dst: Option<(u128, u128, bool)>,
    },
    /// `-m tcpmss --mss LO:HI` (SYN or SYN/ACK with an MSS option; hotdrop-free).
    TcpMss { lo: u16, hi: u16, neg: bool },
    /// `-m statistic`; `slot`: its per-worker state in the limit slots.
    Statistic {
        mode: StatMode,
        neg: bool,
        slot: u32,
    },
    /// `-m esp --espspi LO:HI`.
    Esp { lo: u32, hi: u32, neg: bool },
    /// `-m ah --ahspi LO:HI` (IPv4: the AH header; IPv6: the AH extension header).
    Ah { lo: u32, hi: u32, neg: bool },
    /// `-m rt` (IPv6 routing header): type, segments left, length, each with `!`.
    Rt {
        ty: Option<(u8, bool)>,
        segsleft: Option<(u32, u32, bool)>,
        len: Option<(u32, bool)>,
    },
    /// `-m frag` (IPv6 fragment header): id range, first / more / last.
    Frag {
        id: Option<(u32, u32, bool)>,
        first: bool,
        more: bool,
        last: bool,
    },
}

#[inline]
fn in_range<T: PartialOrd>(x: T, lo: T, hi: T, neg: bool) -> bool {
    (x >= lo && x <= hi) != neg
}

#[inline]
fn cmp(c: Cmp, x: u8, v: u8) -> bool {
    match c {
        Cmp::Eq => x == v,
        Cmp::Ne => x != v,
        Cmp::Lt => x < v,
        Cmp::Gt => x > v,
    }
}

/// The TOS / traffic-class byte of the packet.
#[inline]
pub(crate) fn tos_of(ctx: &PacketCtx) -> u8 {
    let l3 = ctx.parsed.l3_off as usize;
    match ctx.parsed.family {
        Family::V4 => ctx.frame.get(l3 + 1).copied().unwrap_or(0),
        Family::V6 => {
            let a = ctx.frame.get(l3).copied().unwrap_or(0);
            let b = ctx.frame.get(l3 + 1).copied().unwrap_or(0);
            (a << 4) | (b >> 4)
        }
    }
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The offset of the first IPv6 extension header of type `want` (walking hop-by-hop,
/// routing, fragment, destination options and AH), if the packet has one.
fn v6_ext(frame: &[u8], l3: usize, want: u8) -> Option<usize> {
    let mut nh = *frame.get(l3 + 6)?;
    let mut off = l3 + 40;
    for _ in 0..16 {
        if nh == want {
            return Some(off);
        }
        let len = match nh {
            0 | 43 | 60 => (*frame.get(off + 1)? as usize + 1) * 8,
            44 => 8,
            51 => (*frame.get(off + 1)? as usize + 2) * 4,
            _ => return None,
        };
        nh = *frame.get(off)?;
        off += len;
    }
    None
}

impl ExtMatch {
    /// True for `-m mark` and `-m connmark` (the pipeline then carries the marks).
    pub(crate) fn uses_marks(&self) -> bool {
        matches!(self, ExtMatch::Mark { .. } | ExtMatch::ConnMark { .. })
    }

    /// Evaluates the match. `state`: the rule's per-worker slot (statistic only).
    /// Returns None for a header it could not read that the kernel hotdrops.
    pub(crate) fn eval(&self, ctx: &PacketCtx, limits: &mut [LimitState]) -> Option<bool> {
        let p = ctx.parsed;
        let f = ctx.frame;
        let l3 = p.l3_off as usize;
        Some(match self {
            ExtMatch::Mark { value, mask, neg } => (ctx.meta.mark() & mask == *value) != *neg,
            ExtMatch::ConnMark { value, mask, neg } => {
                // xt_connmark: no connection, no match (the `!` does not apply).
                match ctx.meta.ctmark() {
                    Some(m) => (m & mask == *value) != *neg,
                    None => false,
                }
            }
            ExtMatch::Ttl { cmp: c, v } => p.family == Family::V4 && cmp(*c, p.ttl, *v),
            ExtMatch::Hl { cmp: c, v } => p.family == Family::V6 && cmp(*c, p.ttl, *v),
            ExtMatch::Tos { value, mask, neg } => (tos_of(ctx) & mask == *value) != *neg,
            ExtMatch::Dscp { value, neg } => ((tos_of(ctx) >> 2) == *value) != *neg,
            ExtMatch::Ecn { ect, ece, cwr } => {
                if let Some((v, neg)) = ect {
                    if ((tos_of(ctx) & 3) == *v) == *neg {
                        return Some(false);
                    }
                }
                if ece.is_some() || cwr.is_some() {
                    let L4::Tcp(t) = p.l4 else {
                        return Some(false);
                    };
                    for (want, bit) in [(ece, 0x40u8), (cwr, 0x80u8)] {
                        if let Some(neg) = want {
                            if (t.flags & bit != 0) == *neg {
                                return Some(false);
                            }
                        }
                    }
                }
                true
            }
            ExtMatch::Length { lo, hi, neg } => in_range(p.ip_len(), *lo, *hi, *neg),
            ExtMatch::PktType { ty, neg } => {
                let d = f.get(..6)?;
                let t = if d == [0xff; 6] {
                    PktType::Broadcast
                } else if d[0] & 1 != 0 {
                    PktType::Multicast
                } else {
                    PktType::Unicast
                };
                (t == *ty) != *neg
            }
            ExtMatch::IpRange { src, dst } => {
                for (spec, a) in [(src, &p.src), (dst, &p.dst)] {
                    if let Some((lo, hi, neg)) = spec {
                        let x = u128::from_be_bytes(*a);
                        if !in_range(x, *lo, *hi, *neg) {
                            return Some(false);
                        }
                    }
                }
                true
            }
            ExtMatch::TcpMss { lo, hi, neg } => match p.l4 {
                // xt_tcpmss: only SYN segments carry the option; none: no match.
                L4::Tcp(t) if t.flags & 0x02 != 0 => match t.options.mss {
                    Some(m) => in_range(m, *lo, *hi, *neg),
                    None => *neg,
                },
                L4::Tcp(_) => *neg,
                L4::Malformed(_) => return None,
                _ => false,
            },
            ExtMatch::Statistic { mode, neg, slot } => {
                let st = &mut limits[*slot as usize];
                let hit = match *mode {
                    StatMode::Random { p31 } => {
                        // A per-worker xorshift64 (seeded on first use): lock-free.
                        let mut x = st.credit;
                        if x == 0 {
                            x = 0x9e37_79b9_7f4a_7c15 ^ ((*slot as u64 + 1) << 32) ^ ctx.now;
                            x |= 1;
                        }
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        st.credit = x;
                        ((x >> 33) as u32 & 0x7fff_ffff) < p31
                    }
                    StatMode::Nth { every, packet } => {
                        // xt_statistic's counter, per worker: 0..every-1, then again.
                        let n = if st.credit + 1 >= every as u64 {
                            0
                        } else {
                            st.credit + 1
                        };
                        st.credit = n;
                        n == packet as u64
                    }
                };
                hit != *neg
            }
            ExtMatch::Esp { lo, hi, neg } => {
                if p.proto != proto::ESP || !matches!(p.l4, L4::Other) {
                    return Some(false);
                }
                match be32(f, p.l4_off as usize) {
                    Some(spi) => in_range(spi, *lo, *hi, *neg),
                    None => return None,
                }
            }
            ExtMatch::Ah { lo, hi, neg } => {
                let off = match p.family {
                    Family::V4 if p.proto == proto::AH => p.l4_off as usize,
                    Family::V6 => match v6_ext(f, l3, proto::AH) {
                        Some(o) => o,
                        None => return Some(false),
                    },
                    _ => return Some(false),
                };
                match be32(f, off + 4) {
                    Some(spi) => in_range(spi, *lo, *hi, *neg),
                    None => return None,
                }
            }
            ExtMatch::Rt { ty, segsleft, len } => {
                if p.family != Family::V6 {
                    return Some(false);
                }
                let Some(off) = v6_ext(f, l3, 43) else {
                    return Some(false);
                };
                let hlen = (*f.get(off + 1)? as u32 + 1) * 8;
                let rty = *f.get(off + 2)?;
                let left = *f.get(off + 3)? as u32;
                ty.is_none_or(|(t, n)| (rty == t) != n)
                    && segsleft.is_none_or(|(lo, hi, n)| in_range(left, lo, hi, n))
                    && len.is_none_or(|(l, n)| (hlen == l) != n)
            }
            ExtMatch::Frag {
                id,
                first,
                more,
                last,
            } => {
                if p.family != Family::V6 || p.frag.hdr_off == 0 {
                    return Some(false);
                }
                id.is_none_or(|(lo, hi, n)| in_range(p.frag.id, lo, hi, n))
                    && (!first || p.frag.offset == 0)
                    && (!more || p.frag.more)
                    && (!last || !p.frag.more)
            }
        })
    }

    /// The match in `iptables-save` form (with a leading space).
    pub(crate) fn save_text(&self, fam: Family) -> String {
        let mut o = String::new();
        let bang = |n: bool| if n { " !" } else { "" };
        let range = |lo: u32, hi: u32| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}:{hi}")
            }
        };
        let mark = |v: u32, m: u32| {
            if m == u32::MAX {
                format!("{v:#x}")
            } else {
                format!("{v:#x}/{m:#x}")
            }
        };
        let cmpname = |c: Cmp, what: &str| match c {
            Cmp::Eq => format!(" --{what}-eq"),
            Cmp::Ne => format!(" ! --{what}-eq"),
            Cmp::Lt => format!(" --{what}-lt"),
            Cmp::Gt => format!(" --{what}-gt"),
        };
        let _ = match self {
            ExtMatch::Mark { value, mask, neg } => {
                write!(o, " -m mark{} --mark {}", bang(*neg), mark(*value, *mask))
            }
            ExtMatch::ConnMark { value, mask, neg } => {
                write!(
                    o,
                    " -m connmark{} --mark {}",
                    bang(*neg),
                    mark(*value, *mask)
                )
            }
            ExtMatch::Ttl { cmp, v } => write!(o, " -m ttl{} {v}", cmpname(*cmp, "ttl")),
            ExtMatch::Hl { cmp, v } => write!(o, " -m hl{} {v}", cmpname(*cmp, "hl")),
            ExtMatch::Tos { value, mask, neg } => {
                write!(o, " -m tos{} --tos {value:#04x}/{mask:#04x}", bang(*neg))
            }
            ExtMatch::Dscp { value, neg } => {
                write!(o, " -m dscp{} --dscp {value:#04x}", bang(*neg))
            }
            ExtMatch::Ecn { ect, ece, cwr } => {
                o.push_str(" -m ecn");
                if let Some(n) = ece {
                    let _ = write!(o, "{} --ecn-tcp-ece", bang(*n));
                }
                if let Some(n) = cwr {
                    let _ = write!(o, "{} --ecn-tcp-cwr", bang(*n));
                }
                if let Some((v, n)) = ect {
                    let _ = write!(o, "{} --ecn-ip-ect {v}", bang(*n));
                }
                Ok(())
            }
            ExtMatch::Length { lo, hi, neg } => write!(
                o,
                " -m length{} --length {}",
                bang(*neg),
                range(*lo as u32, *hi as u32)
            ),
            ExtMatch::PktType { ty, neg } => {
                write!(o, " -m pkttype{} --pkt-type {}", bang(*neg), ty.name())
            }
            ExtMatch::IpRange { src, dst } => {
                o.push_str(" -m iprange");
                for (opt, spec) in [("--src-range", src), ("--dst-range", dst)] {
                    if let Some((lo, hi, n)) = spec {
                        let _ = write!(
                            o,
                            "{} {opt} {}-{}",
                            bang(*n),
                            addr_text(fam, *lo),
                            addr_text(fam, *hi)
                        );
                    }
                }
                Ok(())
            }
            ExtMatch::TcpMss { lo, hi, neg } => write!(
                o,
                " -m tcpmss{} --mss {}",
                bang(*neg),
                range(*lo as u32, *hi as u32)
            ),
            ExtMatch::Statistic { mode, neg, .. } => match mode {
                StatMode::Random { p31 } => write!(
                    o,
                    " -m statistic --mode random{} --probability {:.11}",
                    bang(*neg),
                    *p31 as f64 / 2147483648.0
                ),
                StatMode::Nth { every, packet } => write!(
                    o,
                    " -m statistic --mode nth{} --every {every} --packet {packet}",
                    bang(*neg)
                ),
            },
            ExtMatch::Esp { lo, hi, neg } => {
                write!(o, " -m esp{} --espspi {}", bang(*neg), range(*lo, *hi))
            }
            ExtMatch::Ah { lo, hi, neg } => {
                write!(o, " -m ah{} --ahspi {}", bang(*neg), range(*lo, *hi))
            }
            ExtMatch::Rt { ty, segsleft, len } => {
                o.push_str(" -m rt");
                if let Some((t, n)) = ty {
                    let _ = write!(o, "{} --rt-type {t}", bang(*n));
                }
                if let Some((lo, hi, n)) = segsleft {
                    let _ = write!(o, "{} --rt-segsleft {}", bang(*n), range(*lo, *hi));
                }
                if let Some((l, n)) = len {
                    let _ = write!(o, "{} --rt-len {l}", bang(*n));
                }
                Ok(())
            }
            ExtMatch::Frag {
                id,
                first,
                more,
                last,
            } => {
                o.push_str(" -m frag");
                if let Some((lo, hi, n)) = id {
                    let _ = write!(o, "{} --fragid {}", bang(*n), range(*lo, *hi));
                }
                for (b, name) in [
                    (first, "--fragfirst"),
                    (more, "--fragmore"),
                    (last, "--fraglast"),
                ] {
                    if *b {
                        let _ = write!(o, " {name}");
                    }
                }
                Ok(())
            }
        };
        o
    }

    /// The match as `iptables -L` shows it (with a leading space).
    pub(crate) fn list_text(&self, fam: Family) -> String {
        let s = self.save_text(fam);
        // `-m NAME --opt v` -> `NAME opt v`: close to iptables' own wording.
        s.replacen(" -m ", " ", 1).replace(" --", " ")
    }
}

fn addr_text(fam: Family, v: u128) -> String {
    match fam {
        Family::V4 => std::net::Ipv4Addr::from((v >> 96) as u32).to_string(),
        Family::V6 => std::net::Ipv6Addr::from(v).to_string(),
    }
}
