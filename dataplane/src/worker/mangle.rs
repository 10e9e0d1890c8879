//! The mangle table in the pipeline: which mangle chains a packet meets (Linux's hook
//! order, with raw, nat and filter), the marks carried between them and the
//! connection, and the header edits applied when the packet is queued for transmit.
//!
//! | path | raw | conntrack | mangle | nat (dst) | mangle | filter | mangle | nat (src) |
//! |---|---|---|---|---|---|---|---|---|
//! | forward | PREROUTING | yes | PREROUTING | PREROUTING | FORWARD | FORWARD | POSTROUTING | POSTROUTING |
//! | host, toward it | PREROUTING | yes | PREROUTING | PREROUTING | INPUT | INPUT | — | INPUT |
//! | host, from it | OUTPUT | yes | OUTPUT | OUTPUT | — | OUTPUT | POSTROUTING | POSTROUTING |

use super::pipeline::{Action, Outcome, PairMode, Pipeline, Side};
use super::stats::DropReason;
use crate::conntrack::{CtState, Track};
use crate::packet;
use crate::ruleset::{MangleChain, MangleOps, PktMeta};

/// The mangle chains of a path: before nat's destination step, before the filter, and
/// after the filter (before nat's source step).
pub(super) fn mangle_chains(
    mode: PairMode,
    ingress: Side,
) -> (
    Option<MangleChain>,
    Option<MangleChain>,
    Option<MangleChain>,
) {
    match (mode, ingress) {
        (PairMode::Forward, _) => (
            Some(MangleChain::Prerouting),
            Some(MangleChain::Forward),
            Some(MangleChain::Postrouting),
        ),
        (PairMode::Host, Side::Network) => (
            Some(MangleChain::Prerouting),
            Some(MangleChain::Input),
            None,
        ),
        (PairMode::Host, Side::Host) => (
            Some(MangleChain::Output),
            None,
            Some(MangleChain::Postrouting),
        ),
    }
}

/// Applies a forwarded packet's header edits (after NAT); see [`MangleOps::apply`].
pub fn apply_mangle(frame: &mut [u8], ops: &MangleOps) -> bool {
    ops.is_empty() || ops.apply(frame)
}

impl Pipeline {
    /// Attaches the connection's mark to the packet's metadata (after conntrack).
    #[inline]
    pub(super) fn mangle_attach(&self, meta: &PktMeta, t: &Track) {
        if let Some(h) = t.handle {
            if matches!(
                t.state,
                CtState::New | CtState::Established | CtState::Related
            ) {
                meta.attach_ct(self.table.ctmark(h));
            }
        }
    }

    /// After the verdict: stores a changed connection mark in the entry and hands the
    /// packet mark and the header edits to the outcome.
    #[inline]
    pub(super) fn mangle_finish(
        &mut self,
        meta: &PktMeta,
        t: &Track,
        p: &packet::Parsed,
        out_port: &str,
        out: &mut Outcome,
    ) {
        if let (Some(m), Some(h)) = (meta.ctmark_changed(), t.handle) {
            self.table.set_ctmark(h, m);
        }
        out.mark = meta.mark();
        let mut ops = meta.ops();
        if ops.clamp_pmtu {
            // The egress port's MTU (host OUTPUT toward the network included).
            let mtu = self
                .port_mtus
                .iter()
                .find(|(n, _)| n == out_port)
                .map_or(self.mtu, |x| x.1);
            ops.resolve_pmtu(mtu, p.family);
        }
        out.mangle = ops;
    }

    #[cold]
    /// Drops a packet a mangle chain dropped (after conntrack: a candidate is released).
    pub(super) fn mangle_drop(
        &mut self,
        t: &Track,
        frame: &[u8],
        p: &packet::Parsed,
        now: crate::Nanos,
        mut out: Outcome,
    ) -> Outcome {
        let _ = self.table.confirm(t, false, frame, p, now);
        self.stats.verdict_drop += 1;
        self.stats.drop(DropReason::Policy);
        out.action = Action::Drop(DropReason::Policy);
        out.verdict = Some(crate::ruleset::Verdict::Drop);
        out.nat = None;
        out
    }
}

#[cfg(test)]
mod tests;
