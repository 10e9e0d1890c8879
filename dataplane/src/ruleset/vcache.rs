//! Per-connection verdict caching, the ruleset's half: which matches are pure (a
//! function of what stays fixed for one direction of an ESTABLISHED connection), a
//! filter walk that reports whether its ACCEPT may be cached, and the replay of a cached
//! ACCEPT on the counters. The cache itself lives in the conntrack shard
//! (`conntrack/verdict.rs`); the pipeline (`worker/vcache.rs`) ties them together.
//!
//! # What is proved, and how
//!
//! At compile time every rule gets a flag: all of its matches are on the whitelist of
//! [`match_pure`] (protocol, addresses, ports, interfaces, `--state`/`--ctstate`,
//! `--ctstatus`, `--ctdir`, the conntrack tuples, `addrtype` against the ruleset's own
//! address list, comments). Anything else (`-m limit`, `statistic`, marks, TTL, length,
//! TCP flags, ICMP types, fragments, every `-m` added later that is not listed here) is
//! not pure. For one direction of one connection in ESTABLISHED, with the same
//! `ct_status` bits and the same in/out ports and chain, a walk that looks only at pure
//! rules takes the same path every time: the index keys on protocol, destination port
//! and source address, which the direction fixes too.
//!
//! At run time a walk is cacheable when every rule it looked at is pure and exactly one
//! rule matched, an ACCEPT (or none matched and the chain's policy is ACCEPT): then its
//! outcome is "count that one slot, accept". LOG, NFLOG or a counting rule on the path
//! match too, so such a walk has more than one hit and is never cached; a `-j` into a
//! user chain counts the jump rule, so those walks are not cached either (the simple,
//! sound version: one slot per direction).

use super::eval::{End, Probe};
use super::{
    FilterChain, LogEvent, Match, PacketCtx, Policy, Rule, RuleCounters, Ruleset, Verdict,
};
use crate::conntrack::CtState;
use crate::packet::L4;

/// A cached ACCEPT: the counter slot to bump and the built-in chain it was walked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedAccept {
    /// The per-rule counter slot (a rule id, or a chain's policy slot).
    pub slot: u32,
}

/// True for a match whose outcome, for an ESTABLISHED packet, depends only on the
/// connection direction's fixed fields (the whitelist; anything not named is impure).
pub(super) fn match_pure(m: &Match) -> bool {
    match m {
        Match::Proto { .. }
        | Match::Src { .. }
        | Match::Dst { .. }
        | Match::In { .. }
        | Match::Out { .. }
        | Match::Udp { .. }
        | Match::Multiport { .. }
        | Match::State { .. }
        | Match::Conntrack { .. }
        | Match::AddrType { .. }
        | Match::Comment => true,
        // Ports only: TCP flags change packet by packet.
        Match::Tcp { flags, .. } => flags.is_none(),
        _ => false,
    }
}

/// The per-rule purity flags of a compiled rule list.
pub(super) fn pure_rules(rules: &[Rule]) -> Vec<bool> {
    rules
        .iter()
        .map(|r| r.matches.iter().all(match_pure))
        .collect()
}

/// True for a packet whose filter verdict may come from (or go into) the cache: an
/// ESTABLISHED packet of the ruleset's own family with a readable L4 header (a
/// malformed one may hotdrop in a port match).
#[inline]
fn packet_cacheable(rs: &Ruleset, ctx: &PacketCtx) -> bool {
    ctx.ct_state == CtState::Established
        && ctx.parsed.family == rs.family
        && matches!(
            ctx.parsed.l4,
            L4::Tcp(_) | L4::Udp(_) | L4::Icmp(_) | L4::Other
        )
}

impl Ruleset {
    /// [`Ruleset::eval_filter`], also saying whether its verdict is a cacheable ACCEPT
    /// for this packet's connection direction (see the module docs). The counters and
    /// the LOG events are exactly those of `eval_filter`.
    pub fn eval_filter_probe(
        &self,
        chain: FilterChain,
        ctx: &PacketCtx,
        counters: &mut RuleCounters,
        log: &mut impl FnMut(LogEvent),
    ) -> (Verdict, Option<CachedAccept>) {
        if !packet_cacheable(self, ctx) {
            return (self.eval_filter(chain, ctx, counters, log), None);
        }
        let base = self.filter_base(chain);
        let mut probe = Probe::new();
        let end = self.walk_probe(base, ctx, counters, &mut probe, |rid, _| {
            if let Some(ev) = self.log_event(rid, ctx) {
                log(ev)
            }
        });
        match end {
            End::Accept | End::Nat(_) => {
                let c =
                    (probe.pure && probe.hits == 1).then_some(CachedAccept { slot: probe.slot });
                (Verdict::Accept, c)
            }
            End::Drop => (Verdict::Drop, None),
            End::Reject(k) => (Verdict::Reject(k), None),
            End::Policy => match self.policy_end(base, counters, ctx.parsed.ip_len() as u64) {
                Policy::Accept => {
                    let c = (probe.pure && probe.hits == 0).then_some(CachedAccept {
                        slot: (self.rules.len() + base) as u32,
                    });
                    (Verdict::Accept, c)
                }
                Policy::Drop => (Verdict::Drop, None),
            },
        }
    }

    /// Replays a cached ACCEPT for `ctx` instead of walking: bumps the one counter slot
    /// the cached walk bumped. Returns false (nothing counted) when this packet may not
    /// use the cache; the caller walks then.
    #[inline]
    pub fn replay_cached(
        &self,
        c: CachedAccept,
        ctx: &PacketCtx,
        counters: &mut RuleCounters,
    ) -> bool {
        if !packet_cacheable(self, ctx) {
            return false;
        }
        match counters.slots.get_mut(c.slot as usize) {
            Some(s) => {
                s.0 += 1;
                s.1 += ctx.parsed.ip_len() as u64;
                true
            }
            None => false,
        }
    }

    /// The chain id of a filter built-in chain.
    #[inline]
    pub(super) fn filter_base(&self, chain: FilterChain) -> usize {
        match chain {
            FilterChain::Input => self.builtin[2],
            FilterChain::Forward => self.builtin[3],
            FilterChain::Output => self.builtin[4],
        }
    }
}

impl Ruleset {
    /// True when the verdict cache can spare ESTABLISHED packets a walk: some filter
    /// built-in chain (of this family or the paired one) has rules and does not start
    /// with one that accepts every ESTABLISHED packet outright (`-m state`/`-m conntrack
    /// --ctstate ...ESTABLISHED... -j ACCEPT` and nothing else but comments). Where
    /// every chain starts so, the walk already ends at its first rule and the cache
    /// would only cost memory (its side array, 24 bytes per connection), so the
    /// pipeline does not allocate it.
    pub fn verdict_cache_worth(&self) -> bool {
        let first_accepts_established = |chain: usize| -> bool {
            let Some(&rid) = self.chains[chain].rules.first() else {
                return true; // an empty chain: its policy, no walk
            };
            let r = &self.rules[rid as usize];
            let est = |mask: u16, neg: bool| !neg && mask & super::state_bits::ESTABLISHED != 0;
            matches!(r.target, super::Target::Accept)
                && r.matches.iter().all(|m| match m {
                    Match::Comment => true,
                    Match::State { mask, neg } => est(*mask, *neg),
                    Match::Conntrack {
                        state: Some((mask, neg)),
                        status: None,
                        dir: None,
                        tuples,
                    } => tuples.is_empty() && est(*mask, *neg),
                    _ => false,
                })
        };
        let here = self.builtin[2..5]
            .iter()
            .any(|&c| !first_accepts_established(c));
        here || self
            .other
            .as_deref()
            .is_some_and(|o| o.verdict_cache_worth())
    }
}
