//! The marks and the packet-changing targets: MARK and CONNMARK (on the packet's
//! metadata, [`PktMeta`], and the connection's mark), TCPMSS, DSCP, TOS, TTL, HL,
//! CHECKSUM, and NFLOG / ULOG (to the log stream). One boxed [`Target::Ext`] each.
//!
//! MARK and CONNMARK take effect during the walk (a later `-m mark` sees the new mark,
//! as in Linux). The header edits are collected into [`MangleOps`] and applied by the
//! worker when the packet is queued for transmit ([`MangleOps::apply`]), after NAT; a
//! later match of the same pass sees the header as it arrived (DIVERGENCES.md).
//!
//! [`Target::Ext`]: super::Target::Ext

use crate::packet::mangle::{clamp_mss, fill_checksum, set_tos, set_ttl, TtlOp};
use crate::packet::{self, Family, Frame};
use std::cell::Cell;
use std::fmt::Write;

/// A packet's marks while the tables run: the packet mark (`skb->mark`), the
/// connection's mark (None: no connection), and the header edits collected so far.
/// Lives on the stack of the pipeline, one per packet; `Cell`s, so the tables can
/// change it through the shared [`super::PacketCtx`].
#[derive(Debug, Default)]
pub struct PktMeta {
    mark: Cell<u32>,
    ctmark: Cell<Option<u32>>,
    ctmark_changed: Cell<bool>,
    ops: Cell<MangleOps>,
}

impl PktMeta {
    /// Metadata with packet mark `mark` and no connection.
    pub fn new(mark: u32) -> PktMeta {
        PktMeta {
            mark: Cell::new(mark),
            ..PktMeta::default()
        }
    }

    /// The packet mark.
    #[inline]
    pub fn mark(&self) -> u32 {
        self.mark.get()
    }

    /// Sets the packet mark.
    #[inline]
    pub fn set_mark(&self, m: u32) {
        self.mark.set(m)
    }

    /// The connection's mark (None before conntrack or without a connection).
    #[inline]
    pub fn ctmark(&self) -> Option<u32> {
        self.ctmark.get()
    }

    /// Attaches the connection's mark (after conntrack).
    #[inline]
    pub fn attach_ct(&self, ctmark: u32) {
        self.ctmark.set(Some(ctmark));
    }

    /// The connection's mark when a CONNMARK rule changed it (to store in the entry).
    #[inline]
    pub fn ctmark_changed(&self) -> Option<u32> {
        if self.ctmark_changed.get() {
            self.ctmark.get()
        } else {
            None
        }
    }

    /// The header edits the rules asked for.
    #[inline]
    pub fn ops(&self) -> MangleOps {
        self.ops.get()
    }

    fn set_ctmark(&self, m: u32) {
        if self.ctmark.get().is_some() {
            self.ctmark.set(Some(m));
            self.ctmark_changed.set(true);
        }
    }
}

/// The header edits of one packet, applied in order TOS, TTL, MSS, checksum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MangleOps {
    /// TOS byte: `(tos & !and_not) ^ xor` (DSCP and TOS, composed in rule order).
    pub tos: Option<(u8, u8)>,
    /// TTL / hop limit change (the last one wins, as each rewrites the header).
    pub ttl: Option<TtlOp>,
    /// TCPMSS: the MSS to lower the SYN's MSS option to (the smallest `--set-mss`).
    pub mss: Option<u16>,
    /// TCPMSS `--clamp-mss-to-pmtu`: lower it to the MTU's (see [`MangleOps::resolve_pmtu`]).
    pub clamp_pmtu: bool,
    /// CHECKSUM --checksum-fill.
    pub checksum_fill: bool,
}

impl MangleOps {
    /// True when there is nothing to do.
    #[inline]
    pub fn is_empty(&self) -> bool {
        *self == MangleOps::default()
    }

    /// Resolves `--clamp-mss-to-pmtu` with the egress MTU: MSS = MTU - 40 on IPv4,
    /// MTU - 60 on IPv6 (xt_TCPMSS's header sizes), or the `--set-mss` if smaller.
    pub fn resolve_pmtu(&mut self, mtu: u16, family: Family) {
        if self.clamp_pmtu {
            let hdr = if family == Family::V4 { 40 } else { 60 };
            let m = mtu.saturating_sub(hdr).max(1);
            self.mss = Some(self.mss.map_or(m, |x| x.min(m)));
            self.clamp_pmtu = false;
        }
    }

    /// Applies the edits to a frame about to be sent (after [`MangleOps::resolve_pmtu`];
    /// an unresolved clamp is skipped). False when the frame does not parse.
    pub fn apply(&self, frame: &mut [u8]) -> bool {
        let Ok(Frame::Ip(p)) = packet::parse(frame) else {
            return false;
        };
        if let Some((and_not, xor)) = self.tos {
            set_tos(frame, &p, and_not, xor);
        }
        if let Some(op) = self.ttl {
            set_ttl(frame, &p, op);
        }
        if let Some(m) = self.mss {
            clamp_mss(frame, &p, m);
        }
        if self.checksum_fill {
            fill_checksum(frame, &p);
        }
        true
    }
}

/// CONNMARK's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnMarkOp {
    /// `--set-xmark V/M`: `ctmark = (ctmark & !M) ^ V`.
    Set { value: u32, mask: u32 },
    /// `--save-mark`: `ctmark = (ctmark & !ctmask) ^ (mark & nfmask)`.
    Save { nfmask: u32, ctmask: u32 },
    /// `--restore-mark`: `mark = (mark & !nfmask) ^ (ctmark & ctmask)`.
    Restore { nfmask: u32, ctmask: u32 },
}

/// One extended target (non-terminal: evaluation goes on after it, as XT_CONTINUE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExtTarget {
    /// MARK `--set-xmark V/M`: `mark = (mark & !M) ^ V` (every MARK form reduces to it).
    Mark {
        value: u32,
        mask: u32,
    },
    ConnMark(ConnMarkOp),
    /// TCPMSS: `--set-mss N`, or 0 for `--clamp-mss-to-pmtu`.
    TcpMss(u16),
    /// DSCP `--set-dscp`.
    Dscp(u8),
    /// TOS `--set-tos V/M`: `tos = (tos & !M) ^ V`.
    Tos {
        value: u8,
        mask: u8,
    },
    /// TTL (IPv4).
    Ttl(TtlOp),
    /// HL (IPv6).
    Hl(TtlOp),
    /// CHECKSUM --checksum-fill.
    ChecksumFill,
    /// NFLOG / ULOG: the packet goes to the log stream with the prefix and group.
    Nflog {
        prefix: String,
        group: u16,
        /// `--nflog-size` (`--nflog-range`) when given.
        size: Option<u32>,
        threshold: Option<u16>,
        ulog: bool,
    },
}

impl ExtTarget {
    /// Applies the target to the packet's metadata (marks now, header edits collected).
    #[inline]
    pub(crate) fn apply(&self, meta: &PktMeta) {
        let mut ops = meta.ops.get();
        match *self {
            ExtTarget::Mark { value, mask } => meta.set_mark((meta.mark() & !mask) ^ value),
            ExtTarget::ConnMark(op) => match op {
                ConnMarkOp::Set { value, mask } => {
                    if let Some(c) = meta.ctmark() {
                        meta.set_ctmark((c & !mask) ^ value)
                    }
                }
                ConnMarkOp::Save { nfmask, ctmask } => {
                    if let Some(c) = meta.ctmark() {
                        meta.set_ctmark((c & !ctmask) ^ (meta.mark() & nfmask))
                    }
                }
                ConnMarkOp::Restore { nfmask, ctmask } => {
                    if let Some(c) = meta.ctmark() {
                        meta.set_mark((meta.mark() & !nfmask) ^ (c & ctmask))
                    }
                }
            },
            // xt_TCPMSS only ever lowers the MSS: of several rules, the smallest wins.
            ExtTarget::TcpMss(0) => ops.clamp_pmtu = true,
            ExtTarget::TcpMss(m) => ops.mss = Some(ops.mss.map_or(m, |o| o.min(m))),
            ExtTarget::Dscp(d) => ops.tos = Some(compose(ops.tos, 0xfc, d << 2)),
            ExtTarget::Tos { value, mask } => ops.tos = Some(compose(ops.tos, mask, value)),
            ExtTarget::Ttl(op) | ExtTarget::Hl(op) => ops.ttl = Some(compose_ttl(ops.ttl, op)),
            ExtTarget::ChecksumFill => ops.checksum_fill = true,
            ExtTarget::Nflog { .. } => {}
        }
        meta.ops.set(ops);
    }

    /// The target in `iptables-save` form (with a leading space).
    pub(crate) fn save_text(&self) -> String {
        let mut s = String::new();
        let _ = match self {
            ExtTarget::Mark { value, mask } => {
                write!(s, " -j MARK --set-xmark {value:#x}/{mask:#x}")
            }
            ExtTarget::ConnMark(ConnMarkOp::Set { value, mask }) => {
                write!(s, " -j CONNMARK --set-xmark {value:#x}/{mask:#x}")
            }
            ExtTarget::ConnMark(ConnMarkOp::Save { nfmask, ctmask }) => write!(
                s,
                " -j CONNMARK --save-mark --nfmask {nfmask:#x} --ctmask {ctmask:#x}"
            ),
            ExtTarget::ConnMark(ConnMarkOp::Restore { nfmask, ctmask }) => write!(
                s,
                " -j CONNMARK --restore-mark --nfmask {nfmask:#x} --ctmask {ctmask:#x}"
            ),
            ExtTarget::TcpMss(0) => write!(s, " -j TCPMSS --clamp-mss-to-pmtu"),
            ExtTarget::TcpMss(m) => write!(s, " -j TCPMSS --set-mss {m}"),
            ExtTarget::Dscp(d) => write!(s, " -j DSCP --set-dscp {d:#04x}"),
            ExtTarget::Tos { value, mask } => {
                write!(s, " -j TOS --set-tos {value:#04x}/{mask:#04x}")
            }
            ExtTarget::Ttl(op) => write!(s, " -j TTL {}", ttl_text(*op, "ttl")),
            ExtTarget::Hl(op) => write!(s, " -j HL {}", ttl_text(*op, "hl")),
            ExtTarget::ChecksumFill => write!(s, " -j CHECKSUM --checksum-fill"),
            ExtTarget::Nflog {
                prefix,
                group,
                size,
                threshold,
                ulog,
            } => {
                if *ulog {
                    s.push_str(" -j ULOG");
                    if !prefix.is_empty() {
                        let _ = write!(s, " --ulog-prefix {}", super::list::quote(prefix));
                    }
                    if *group != 1 {
                        let _ = write!(s, " --ulog-nlgroup {group}");
                    }
                    return s;
                }
                s.push_str(" -j NFLOG");
                if !prefix.is_empty() {
                    let _ = write!(s, " --nflog-prefix {}", super::list::quote(prefix));
                }
                if *group != 0 {
                    let _ = write!(s, " --nflog-group {group}");
                }
                if let Some(n) = size {
                    let _ = write!(s, " --nflog-size {n}");
                }
                if let Some(n) = threshold {
                    let _ = write!(s, " --nflog-threshold {n}");
                }
                Ok(())
            }
        };
        s
    }

    /// The target's name (`-j NAME`).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ExtTarget::Mark { .. } => "MARK",
            ExtTarget::ConnMark(_) => "CONNMARK",
            ExtTarget::TcpMss(_) => "TCPMSS",
            ExtTarget::Dscp(_) => "DSCP",
            ExtTarget::Tos { .. } => "TOS",
            ExtTarget::Ttl(_) => "TTL",
            ExtTarget::Hl(_) => "HL",
            ExtTarget::ChecksumFill => "CHECKSUM",
            ExtTarget::Nflog { ulog: true, .. } => "ULOG",
            ExtTarget::Nflog { .. } => "NFLOG",
        }
    }

    /// The NFLOG prefix and group, for the log stream.
    pub(crate) fn nflog(&self) -> Option<(&str, u16)> {
        match self {
            ExtTarget::Nflog { prefix, group, .. } => Some((prefix, *group)),
            _ => None,
        }
    }
}

fn ttl_text(op: TtlOp, w: &str) -> String {
    match op {
        TtlOp::Set(v) => format!("--{w}-set {v}"),
        TtlOp::Inc(v) => format!("--{w}-inc {v}"),
        TtlOp::Dec(v) => format!("--{w}-dec {v}"),
    }
}

/// `(x & !m1) ^ v1` then `(. & !m2) ^ v2` as one `(and_not, xor)`.
fn compose(prev: Option<(u8, u8)>, mask: u8, value: u8) -> (u8, u8) {
    match prev {
        None => (mask, value),
        Some((m1, v1)) => (m1 | mask, (v1 & !mask) ^ value),
    }
}

fn compose_ttl(prev: Option<TtlOp>, op: TtlOp) -> TtlOp {
    match (prev, op) {
        (Some(TtlOp::Set(a)), TtlOp::Inc(b)) => TtlOp::Set(a.saturating_add(b)),
        (Some(TtlOp::Set(a)), TtlOp::Dec(b)) => TtlOp::Set(a.saturating_sub(b)),
        (Some(TtlOp::Inc(a)), TtlOp::Inc(b)) => TtlOp::Inc(a.saturating_add(b)),
        (Some(TtlOp::Dec(a)), TtlOp::Dec(b)) => TtlOp::Dec(a.saturating_add(b)),
        _ => op,
    }
}

/// The built-in chains of the mangle table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MangleChain {
    /// PREROUTING: after conntrack, before nat PREROUTING (DNAT).
    Prerouting,
    /// INPUT: before filter INPUT.
    Input,
    /// FORWARD: before filter FORWARD.
    Forward,
    /// OUTPUT: packets from the host, before nat OUTPUT and filter OUTPUT.
    Output,
    /// POSTROUTING: after the filter, before nat POSTROUTING (SNAT).
    Postrouting,
}

impl super::Target {
    /// True for the targets that hand the packet to the log stream (LOG, NFLOG, ULOG).
    pub(crate) fn logs(&self) -> bool {
        match self {
            super::Target::Log { .. } => true,
            super::Target::Ext(x) => x.nflog().is_some(),
            _ => false,
        }
    }
}

impl super::Ruleset {
    /// True when a mangle table with rules (or a DROP policy) is loaded, for either
    /// family: only then does the pipeline walk the mangle chains.
    #[inline]
    pub fn has_mangle(&self) -> bool {
        self.mangle_on || self.other.as_ref().is_some_and(|o| o.mangle_on)
    }

    /// Runs a packet through a mangle-table built-in chain. The marks and header
    /// edits go into `ctx.meta`; returns true when the packet is to be dropped
    /// (`-j DROP` or a DROP policy).
    pub fn eval_mangle(
        &self,
        chain: MangleChain,
        ctx: &super::PacketCtx,
        counters: &mut super::RuleCounters,
        log: &mut impl FnMut(super::LogEvent),
    ) -> bool {
        if ctx.parsed.family != self.family {
            return match (self.for_family(ctx.parsed.family), counters.for_other()) {
                (Some(o), Some(c)) => o.eval_mangle(chain, ctx, c, log),
                _ => false,
            };
        }
        if !self.mangle_on {
            return false;
        }
        let base = self.mangle_builtin[chain as usize];
        let end = self.walk(base, ctx, counters, |rid, t| {
            if t.logs() {
                if let Some(ev) = self.log_event(rid, ctx) {
                    log(ev)
                }
            }
        });
        match end {
            super::eval::End::Drop | super::eval::End::Reject(_) => true,
            super::eval::End::Accept | super::eval::End::Nat(_) => false,
            super::eval::End::Policy => {
                self.policy_end(base, counters, ctx.parsed.ip_len() as u64) == super::Policy::Drop
            }
        }
    }
}
