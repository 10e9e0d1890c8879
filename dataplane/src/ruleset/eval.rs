//! Evaluation: the chain walk with a fixed call stack, the indexed candidate lists and
//! the matches. Nothing here allocates, locks or reads a clock.

use super::{
    proto_class, state_bits, FilterChain, LimitState, LogEvent, Match, PacketCtx, Policy,
    PortsWhich, RawChain, RawVerdict, RuleCounters, Ruleset, Target, Verdict, MAX_CALL_DEPTH,
};
use crate::conntrack::{CtState, Nanos};
use crate::packet::{Addr, L4};

/// Result of one rule's matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hit {
    No,
    Yes,
    /// A match saw a header it could not read (the kernel's `hotdrop`): drop now.
    HotDrop,
}

/// The packet fields the index looks at.
#[derive(Clone, Copy)]
struct Key {
    class: usize,
    dport: Option<u16>,
    /// The source address (masked per chain index).
    src: u128,
}

/// A position in a chain's candidate lists: three ascending lists (wildcards, the
/// packet's port segment, its source network's rules) merged in rule order.
#[derive(Clone, Copy)]
struct Cursor<'a> {
    a: &'a [u32],
    b: &'a [u32],
    c: &'a [u32],
    i: usize,
    j: usize,
    k: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn next(&mut self) -> Option<usize> {
        let x = self.a.get(self.i).copied().unwrap_or(u32::MAX);
        let y = self.b.get(self.j).copied().unwrap_or(u32::MAX);
        let z = self.c.get(self.k).copied().unwrap_or(u32::MAX);
        let m = x.min(y).min(z);
        if m == u32::MAX {
            return None;
        }
        if m == x {
            self.i += 1;
        } else if m == y {
            self.j += 1;
        } else {
            self.k += 1;
        }
        Some(m as usize)
    }
}

#[inline]
fn addr_u128(a: &Addr) -> u128 {
    u128::from_be_bytes(*a)
}

/// What a probing walk ([`Ruleset::walk_probe`]) saw.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    /// Every rule looked at has only pure matches (`super::vcache::match_pure`).
    pub(super) pure: bool,
    /// Rules that matched (and were counted).
    pub(super) hits: u32,
    /// The counter slot of the last rule that matched.
    pub(super) slot: u32,
}

impl Probe {
    pub(super) fn new() -> Self {
        Probe {
            pure: true,
            hits: 0,
            slot: 0,
        }
    }
}

/// How a walk ended.
pub(super) enum End {
    /// A nat-table target matched (the rule id).
    Nat(usize),
    Accept,
    Drop,
    Reject(super::RejectKind),
    /// Fell off or RETURNed from the base chain: apply its policy.
    Policy,
}

impl Ruleset {
    fn key(&self, ctx: &PacketCtx) -> Key {
        let p = ctx.parsed;
        let dport = match p.l4 {
            L4::Tcp(t) => Some(t.dport),
            L4::Udp(u) => Some(u.dport),
            _ => None,
        };
        Key {
            class: proto_class(p.proto),
            dport,
            src: if p.family == self.family {
                addr_u128(&p.src)
            } else {
                0
            },
        }
    }

    #[inline]
    fn cursor(&self, chain: usize, key: Key) -> Cursor<'_> {
        let ix = &self.chains[chain].index[key.class];
        let src: &[u32] = if ix.src_mask != 0 {
            let net = key.src & ix.src_mask;
            match ix.src_keys.binary_search(&net) {
                Ok(n) => &ix.src_rules[ix.src_start[n] as usize..ix.src_start[n + 1] as usize],
                Err(_) => &[],
            }
        } else {
            &[]
        };
        match key.dport {
            Some(port) if !ix.bounds.is_empty() => {
                let seg = ix.bounds.partition_point(|&b| b <= port) - 1;
                let s = ix.seg_start[seg] as usize;
                let e = ix.seg_start[seg + 1] as usize;
                Cursor {
                    a: &ix.wild,
                    b: &ix.seg_rules[s..e],
                    c: src,
                    i: 0,
                    j: 0,
                    k: 0,
                }
            }
            // A TCP/UDP-class packet without ports (malformed L4) may match port rules'
            // hotdrop: it walks everything.
            None if !ix.bounds.is_empty() => Cursor {
                a: &ix.all,
                b: &[],
                c: &[],
                i: 0,
                j: 0,
                k: 0,
            },
            _ => Cursor {
                a: &ix.wild,
                b: &[],
                c: src,
                i: 0,
                j: 0,
                k: 0,
            },
        }
    }

    #[inline]
    fn resume(&self, (chain, i, j, k): (u32, u32, u32, u32), key: Key) -> (usize, Cursor<'_>) {
        let mut c = self.cursor(chain as usize, key);
        c.i = i as usize;
        c.j = j as usize;
        c.k = k as usize;
        (chain as usize, c)
    }

    /// Walks `base` with iptables' semantics. `on_rule` runs the non-terminal targets
    /// (LOG, CT, NOTRACK) and returns true to stop the walk (raw ACCEPT/DROP do not use it).
    #[inline]
    pub(super) fn walk(
        &self,
        base: usize,
        ctx: &PacketCtx,
        counters: &mut RuleCounters,
        on_rule: impl FnMut(usize, &Target),
    ) -> End {
        // The return stack lives with the counters (allocated once); a walk borrows it.
        let mut stack = std::mem::take(&mut counters.stack);
        if stack.len() < MAX_CALL_DEPTH {
            stack = super::counters::call_stack(); // never: the counters bring one
        }
        let end =
            self.walk_on::<false>(base, ctx, counters, &mut stack, &mut Probe::new(), on_rule);
        counters.stack = stack;
        end
    }

    /// [`Ruleset::walk`] that also records in `probe` whether every rule it looked at
    /// has only verdict-cache-pure matches and which counter slots it bumped
    /// (`super::vcache`).
    #[inline]
    pub(super) fn walk_probe(
        &self,
        base: usize,
        ctx: &PacketCtx,
        counters: &mut RuleCounters,
        probe: &mut Probe,
        on_rule: impl FnMut(usize, &Target),
    ) -> End {
        let mut stack = std::mem::take(&mut counters.stack);
        if stack.len() < MAX_CALL_DEPTH {
            stack = super::counters::call_stack(); // never: the counters bring one
        }
        let end = self.walk_on::<true>(base, ctx, counters, &mut stack, probe, on_rule);
        counters.stack = stack;
        end
    }

    fn walk_on<const P: bool>(
        &self,
        base: usize,
        ctx: &PacketCtx,
        counters: &mut RuleCounters,
        stack: &mut [super::counters::CallFrame],
        probe: &mut Probe,
        mut on_rule: impl FnMut(usize, &Target),
    ) -> End {
        let key = self.key(ctx);
        let bytes = ctx.parsed.ip_len() as u64;
        let mut cur = self.cursor(base, key);
        // Return frames: (chain, positions in its three lists); the lists are found
        // again on return.
        let mut sp = 0usize;
        let mut chain = base;
        loop {
            let Some(rid) = cur.next() else {
                // Fell off the end: an implicit RETURN.
                if sp == 0 {
                    return End::Policy;
                }
                sp -= 1;
                (chain, cur) = self.resume(stack[sp], key);
                continue;
            };
            let rule = &self.rules[rid];
            if P {
                probe.pure &= self.vc_pure.get(rid).copied().unwrap_or(false);
            }
            match self.rule_matches(&rule.matches, ctx, &mut counters.limits) {
                Hit::No => continue,
                Hit::HotDrop => return End::Drop,
                Hit::Yes => {}
            }
            if P {
                probe.hits += 1;
                probe.slot = rid as u32;
            }
            let c = &mut counters.slots[rid];
            c.0 += 1;
            c.1 += bytes;
            match &rule.target {
                Target::Accept => return End::Accept,
                Target::Drop => return End::Drop,
                Target::Reject(k) => return End::Reject(*k),
                Target::Nat(_) => return End::Nat(rid),
                Target::Return => {
                    if sp == 0 {
                        return End::Policy;
                    }
                    sp -= 1;
                    (chain, cur) = self.resume(stack[sp], key);
                }
                Target::Jump(c) => {
                    // The compiler refused call chains deeper than the stack.
                    stack[sp] = (chain as u32, cur.i as u32, cur.j as u32, cur.k as u32);
                    sp += 1;
                    chain = *c;
                    cur = self.cursor(*c, key);
                }
                Target::Goto(c) => {
                    chain = *c;
                    cur = self.cursor(*c, key);
                }
                Target::Ext(x) => {
                    x.apply(ctx.meta);
                    on_rule(rid, &rule.target)
                }
                Target::Stateful(t) => t.run(ctx),
                t @ (Target::None | Target::Log { .. } | Target::Notrack | Target::Ct { .. }) => {
                    on_rule(rid, t)
                }
            }
        }
    }

    pub(super) fn policy_end(
        &self,
        base: usize,
        counters: &mut RuleCounters,
        bytes: u64,
    ) -> Policy {
        let c = &mut counters.slots[self.rules.len() + base];
        c.0 += 1;
        c.1 += bytes;
        self.chains[base].policy.unwrap_or(Policy::Accept)
    }

    pub(super) fn log_event<'a>(&'a self, rid: usize, ctx: &PacketCtx<'a>) -> Option<LogEvent<'a>> {
        let r = &self.rules[rid];
        if let Target::Ext(x) = &r.target {
            let (prefix, group) = x.nflog()?;
            return Some(LogEvent {
                rule_id: rid,
                chain: &self.chains[r.chain].name,
                prefix,
                level: 4,
                flags: 0,
                frame: ctx.frame,
                parsed: ctx.parsed,
                in_port: ctx.in_port,
                out_port: ctx.out_port,
                nflog_group: Some(group),
            });
        }
        if let Target::Log {
            prefix,
            level,
            flags,
        } = &r.target
        {
            Some(LogEvent {
                rule_id: rid,
                chain: &self.chains[r.chain].name,
                prefix,
                level: *level,
                flags: *flags,
                frame: ctx.frame,
                parsed: ctx.parsed,
                in_port: ctx.in_port,
                out_port: ctx.out_port,
                nflog_group: None,
            })
        } else {
            None
        }
    }

    /// Runs a packet through a filter-table built-in chain.
    pub fn eval_filter(
        &self,
        chain: FilterChain,
        ctx: &PacketCtx,
        counters: &mut RuleCounters,
        log: &mut impl FnMut(LogEvent),
    ) -> Verdict {
        if ctx.parsed.family != self.family {
            // The other family's ruleset (ip6tables beside iptables), or none: accept.
            return match (self.for_family(ctx.parsed.family), counters.for_other()) {
                (Some(o), Some(c)) => o.eval_filter(chain, ctx, c, log),
                _ => Verdict::Accept,
            };
        }
        let base = match chain {
            FilterChain::Input => self.builtin[2],
            FilterChain::Forward => self.builtin[3],
            FilterChain::Output => self.builtin[4],
        };
        let end = self.walk(base, ctx, counters, |rid, _| {
            if let Some(ev) = self.log_event(rid, ctx) {
                log(ev)
            }
        });
        match end {
            End::Accept | End::Nat(_) => Verdict::Accept,
            End::Drop => Verdict::Drop,
            End::Reject(k) => Verdict::Reject(k),
            End::Policy => match self.policy_end(base, counters, ctx.parsed.ip_len() as u64) {
                Policy::Accept => Verdict::Accept,
                Policy::Drop => Verdict::Drop,
            },
        }
    }

    /// Runs a packet through a raw-table built-in chain (before conntrack: the `ct_*`
    /// fields of `ctx` are not looked at). LOG events are discarded here; when
    /// [`Ruleset::raw_logs`] is true use [`Ruleset::eval_raw_log`].
    pub fn eval_raw(
        &self,
        chain: RawChain,
        ctx: &PacketCtx,
        counters: &mut RuleCounters,
    ) -> RawVerdict {
        self.eval_raw_log(chain, ctx, counters, &mut |_| {})
    }

    /// [`Ruleset::eval_raw`] with LOG events handed to `log`.
    pub fn eval_raw_log(
        &self,
        chain: RawChain,
        ctx: &PacketCtx,
        counters: &mut RuleCounters,
        log: &mut impl FnMut(LogEvent),
    ) -> RawVerdict {
        if ctx.parsed.family != self.family {
            return match (self.for_family(ctx.parsed.family), counters.for_other()) {
                (Some(o), Some(c)) => o.eval_raw_log(chain, ctx, c, log),
                _ => RawVerdict::default(),
            };
        }
        let base = match chain {
            RawChain::Prerouting => self.builtin[0],
            RawChain::Output => self.builtin[1],
        };
        let mut v = RawVerdict::default();
        // The first CT/NOTRACK that matches attaches the template; later ones see a
        // packet that already has one and do nothing (xt_CT).
        let mut templated = false;
        let end = self.walk(base, ctx, counters, |rid, t| match t {
            Target::Notrack if !templated => {
                templated = true;
                v.notrack = true;
            }
            Target::Ct { helper, notrack } if !templated => {
                templated = true;
                v.notrack = *notrack;
                v.helper = *helper;
            }
            t if t.logs() => {
                if let Some(ev) = self.log_event(rid, ctx) {
                    log(ev)
                }
            }
            _ => {}
        });
        match end {
            End::Accept | End::Nat(_) => {}
            End::Drop | End::Reject(_) => v.drop = true,
            End::Policy => {
                if self.policy_end(base, counters, ctx.parsed.ip_len() as u64) == Policy::Drop {
                    v.drop = true
                }
            }
        }
        v
    }

    #[inline]
    pub(super) fn rule_matches(
        &self,
        ms: &[Match],
        ctx: &PacketCtx,
        limits: &mut [LimitState],
    ) -> Hit {
        for m in ms {
            match self.match_one(m, ctx, limits) {
                Hit::Yes => {}
                other => return other,
            }
        }
        Hit::Yes
    }

    fn match_one(&self, m: &Match, ctx: &PacketCtx, limits: &mut [LimitState]) -> Hit {
        let p = ctx.parsed;
        let yes = |b: bool| if b { Hit::Yes } else { Hit::No };
        match m {
            Match::Proto { proto, neg } => yes((p.proto == *proto) != *neg),
            Match::Src { net, neg } => {
                yes((p.family == self.family && addr_u128(&p.src) & net.mask == net.net) != *neg)
            }
            Match::Dst { net, neg } => {
                yes((p.family == self.family && addr_u128(&p.dst) & net.mask == net.net) != *neg)
            }
            Match::In { iface, neg } => yes(iface.matches(ctx.in_port) != *neg),
            Match::Out { iface, neg } => yes(iface.matches(ctx.out_port) != *neg),
            Match::Fragment { neg } => yes((p.frag.offset != 0) != *neg),
            Match::Tcp {
                sport,
                dport,
                flags,
            } => match p.l4 {
                L4::Tcp(t) => yes(sport.matches(t.sport)
                    && dport.matches(t.dport)
                    && flags.is_none_or(|(mask, comp, neg)| (t.flags & mask == comp) != neg)),
                // "Don't allow a fragment of TCP 8 bytes in" (xt_tcp).
                L4::Fragment if p.frag.offset == 1 => Hit::HotDrop,
                L4::Malformed(_) => Hit::HotDrop,
                _ => Hit::No,
            },
            Match::Udp { sport, dport } => match p.l4 {
                L4::Udp(u) => yes(sport.matches(u.sport) && dport.matches(u.dport)),
                L4::Malformed(_) => Hit::HotDrop,
                _ => Hit::No,
            },
            Match::Icmp {
                ty,
                code_lo,
                code_hi,
                neg,
                any,
            } => match p.l4 {
                L4::Icmp(i) if !i.v6 => {
                    yes((*any || (i.ty == *ty && i.code >= *code_lo && i.code <= *code_hi)) != *neg)
                }
                L4::Malformed(_) => Hit::HotDrop,
                _ => Hit::No,
            },
            Match::Icmp6 {
                ty,
                code_lo,
                code_hi,
                neg,
            } => match p.l4 {
                L4::Icmp(i) if i.v6 => {
                    yes((i.ty == *ty && i.code >= *code_lo && i.code <= *code_hi) != *neg)
                }
                L4::Malformed(_) => Hit::HotDrop,
                _ => Hit::No,
            },
            Match::Multiport { which, ports, neg } => {
                let (s, d) = match p.l4 {
                    L4::Tcp(t) => (t.sport, t.dport),
                    L4::Udp(u) => (u.sport, u.dport),
                    L4::Malformed(_) => return Hit::HotDrop,
                    _ => return Hit::No,
                };
                let hit = ports.iter().any(|&(lo, hi)| {
                    let inr = |x: u16| x >= lo && x <= hi;
                    match which {
                        PortsWhich::Src => inr(s),
                        PortsWhich::Dst => inr(d),
                        PortsWhich::Either => inr(s) || inr(d),
                    }
                });
                yes(hit != *neg)
            }
            Match::State { mask, neg } => yes((mask & state_bit(ctx.ct_state) != 0) != *neg),
            Match::Conntrack {
                state,
                status,
                dir,
                tuples,
            } => {
                // xt_conntrack: without a connection only a --ctstate test can pass.
                if let Some((mask, neg)) = state {
                    if (mask & ct_state_bits(ctx) != 0) == *neg {
                        return Hit::No;
                    }
                }
                let has_ct = matches!(
                    ctx.ct_state,
                    CtState::New | CtState::Established | CtState::Related
                );
                if !has_ct {
                    return yes(state.is_some());
                }
                if let Some((d, neg)) = dir {
                    if (ctx.ct_dir == *d) == *neg {
                        return Hit::No;
                    }
                }
                if let Some((mask, neg)) = status {
                    if (ctx.ct_status.0 & mask != 0) == *neg {
                        return Hit::No;
                    }
                }
                yes(tuples.is_empty() || super::cttuple::all_match(tuples, ctx))
            }
            Match::Limit { slot } => {
                let spec = &self.limits[*slot as usize];
                yes(limit_take(
                    &mut limits[*slot as usize],
                    spec.interval,
                    spec.burst,
                    ctx.now,
                ))
            }
            Match::Comment => Hit::Yes,
            Match::Ext(x) => match x.eval(ctx, limits) {
                Some(b) => yes(b),
                None => Hit::HotDrop,
            },
            Match::Stateful(x) => yes(x.matches(ctx)),
            Match::AddrType { src, dst } => {
                if p.family != self.family {
                    return Hit::No;
                }
                for (spec, a) in [(src, &p.src), (dst, &p.dst)] {
                    if let Some((mask, neg)) = spec {
                        if (self.addr_type(a) & mask != 0) == *neg {
                            return Hit::No;
                        }
                    }
                }
                Hit::Yes
            }
        }
    }
}

/// The `--ctstate` bits of a packet: its state, plus the virtual SNAT/DNAT bits of a
/// NATed connection (xt_conntrack: `IPS_SRC_NAT`, `IPS_DST_NAT`).
#[inline]
fn ct_state_bits(ctx: &PacketCtx) -> u16 {
    let mut b = state_bit(ctx.ct_state);
    if matches!(
        ctx.ct_state,
        CtState::New | CtState::Established | CtState::Related
    ) {
        if ctx.ct_status.0 & crate::conntrack::CtStatus::SRC_NAT != 0 {
            b |= state_bits::SNAT;
        }
        if ctx.ct_status.0 & crate::conntrack::CtStatus::DST_NAT != 0 {
            b |= state_bits::DNAT;
        }
    }
    b
}

/// The `--state` bit of a packet.
#[inline]
fn state_bit(s: CtState) -> u16 {
    match s {
        CtState::New => state_bits::NEW,
        CtState::Established => state_bits::ESTABLISHED,
        CtState::Related => state_bits::RELATED,
        CtState::Invalid => state_bits::INVALID,
        CtState::Untracked => state_bits::UNTRACKED,
    }
}

/// xt_limit's token bucket in nanoseconds: the credit grows with time up to
/// `interval * burst` (full at the start); a packet passes when one `interval` is left.
#[inline]
pub(crate) fn limit_take(st: &mut LimitState, interval: u64, burst: u32, now: Nanos) -> bool {
    let cap = interval.saturating_mul(burst as u64);
    match st.last {
        None => st.credit = cap,
        Some(last) => {
            st.credit = st.credit.saturating_add(now.saturating_sub(last)).min(cap);
        }
    }
    st.last = Some(now.max(st.last.unwrap_or(0)));
    if st.credit >= interval {
        st.credit -= interval;
        true
    } else {
        false
    }
}
