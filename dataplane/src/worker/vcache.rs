//! Per-connection verdict caching, the pipeline's half (issue #22): an ESTABLISHED
//! packet whose connection direction has a filter ACCEPT cached under the current
//! ruleset epoch, with the same `ct_status` bits and the same ports and chain, skips
//! the filter walk and bumps the one counter slot the cached walk bumped.
//!
//! What may be cached is `ruleset/vcache.rs`'s business; where it is stored is
//! `conntrack/verdict.rs`'s. Here: the epoch (one per ruleset generation the worker
//! adopts, so a swap makes every cached verdict stale at once, with no sweep) and the
//! port/chain key (the names of the in and out ports and the chain, interned once per
//! pair and side, compared by index on a hit). Only the filter walk is cached: raw,
//! mangle and nat run as before, and NEW, RELATED, INVALID and UNTRACKED packets walk.

use super::Pipeline;
use crate::conntrack::{Track, VerdictSlot};
use crate::ruleset::{CachedAccept, FilterChain, LogEvent, PacketCtx, Ruleset, Verdict};

/// Most (in port, out port, chain) keys interned (then new ones are not cached).
const MAX_PORT_KEYS: usize = 64;

/// The verdict cache's state in a pipeline.
#[derive(Debug)]
pub(super) struct VerdictCache {
    /// Caching on: wanted, and the ruleset can gain from it
    /// ([`Ruleset::verdict_cache_worth`]).
    pub(super) on: bool,
    /// Caching wanted ([`Pipeline::set_verdict_cache`]; on by default).
    pub(super) wanted: bool,
    /// The epoch of the adopted ruleset (never 0 while on).
    pub(super) epoch: u32,
    /// Interned (in port, out port, chain) keys; a cached verdict names one by index.
    ports: Vec<(Box<str>, Box<str>, FilterChain)>,
    /// The ruleset the epoch belongs to (its address and generation): a burst judged
    /// by another one starts a new epoch even where the generation did not change (a
    /// ruleset handed to the pipeline without [`Pipeline::adopt`], as tests do).
    seen: (usize, u64),
    /// Filter walks skipped (statistics).
    pub(super) hits: u64,
}

impl VerdictCache {
    pub(super) fn new() -> Self {
        VerdictCache {
            on: true,
            wanted: true,
            epoch: 1,
            seen: (0, 0),
            ports: Vec::with_capacity(MAX_PORT_KEYS),
            hits: 0,
        }
    }

    /// The index of key (in, out, chain), interning it if there is room (a new pair or
    /// side: once per key, not per packet).
    fn port_key(&mut self, ctx: &PacketCtx, chain: FilterChain) -> Option<u8> {
        if let Some(i) = self
            .ports
            .iter()
            .position(|(i, o, c)| *c == chain && **i == *ctx.in_port && **o == *ctx.out_port)
        {
            return Some(i as u8);
        }
        if self.ports.len() >= MAX_PORT_KEYS {
            return None;
        }
        self.ports
            .push((ctx.in_port.into(), ctx.out_port.into(), chain));
        Some((self.ports.len() - 1) as u8)
    }

    /// True when interned key `k` is (in, out, chain).
    #[inline]
    fn port_key_is(&self, k: u8, ctx: &PacketCtx, chain: FilterChain) -> bool {
        match self.ports.get(k as usize) {
            Some((i, o, c)) => *c == chain && **i == *ctx.in_port && **o == *ctx.out_port,
            None => false,
        }
    }
}

impl Pipeline {
    /// Turns per-connection verdict caching on or off (on by default, where the
    /// ruleset can gain from it: [`Ruleset::verdict_cache_worth`]; turned on here, it
    /// is on whatever the ruleset). Off, every packet walks the filter chain; on, see
    /// `worker/vcache.rs`. Turning it on again starts from an empty cache.
    pub fn set_verdict_cache(&mut self, on: bool) {
        if on && !self.vcache.on {
            self.table.reserve_verdicts();
            self.next_verdict_epoch();
        }
        self.vcache.on = on;
        self.vcache.wanted = on;
    }

    /// Caching for ruleset `rs` (a control-plane step: at start and on adoption): on
    /// when wanted and `rs` can gain from it; the side array is allocated only then.
    pub(super) fn verdict_cache_for(&mut self, rs: &Ruleset) {
        let on = self.vcache.wanted && rs.verdict_cache_worth();
        if on {
            self.table.reserve_verdicts();
        }
        self.vcache.on = on;
    }

    /// Filter walks the verdict cache skipped so far.
    pub fn verdict_cache_hits(&self) -> u64 {
        self.vcache.hits
    }

    /// A new epoch (a ruleset swap, or the cache turned on again): every cached verdict
    /// is stale. On a wrap the cache is cleared (a control-plane step).
    pub(super) fn next_verdict_epoch(&mut self) {
        self.vcache.epoch = self.vcache.epoch.wrapping_add(1);
        if self.vcache.epoch == 0 {
            self.table.clear_verdicts();
            self.vcache.epoch = 1;
        }
    }

    /// The filter verdict of a packet: from the cache when its connection direction has
    /// a valid entry, else by walking (and caching the walk when it proves an ACCEPT).
    #[inline]
    pub(super) fn filter_verdict(
        &mut self,
        rs: &Ruleset,
        chain: FilterChain,
        t: &Track,
        ctx: &PacketCtx,
        log: &mut impl FnMut(LogEvent),
    ) -> Verdict {
        let h = match t.handle {
            Some(h)
                if self.vcache.on
                    && !t.candidate
                    && self.counters_generation == rs.generation() =>
            {
                h
            }
            _ => return rs.eval_filter(chain, ctx, &mut self.counters, log),
        };
        let id = (rs as *const Ruleset as usize, rs.generation());
        if id != self.vcache.seen {
            self.vcache.seen = id;
            self.next_verdict_epoch();
        }
        let c = self.table.verdict(h, t.dir);
        if c.epoch == self.vcache.epoch
            && c.status == ctx.ct_status.0
            && self.vcache.port_key_is(c.ports, ctx, chain)
            && rs.replay_cached(CachedAccept { slot: c.counter }, ctx, &mut self.counters)
        {
            self.vcache.hits += 1;
            return Verdict::Accept;
        }
        let (v, cache) = rs.eval_filter_probe(chain, ctx, &mut self.counters, log);
        if let Some(a) = cache {
            if let Some(ports) = self.vcache.port_key(ctx, chain) {
                let slot = VerdictSlot {
                    epoch: self.vcache.epoch,
                    counter: a.slot,
                    status: ctx.ct_status.0,
                    ports,
                };
                self.table.set_verdict(h, t.dir, slot);
            }
        }
        v
    }
}

#[cfg(test)]
#[path = "vcache_tests.rs"]
mod tests;
