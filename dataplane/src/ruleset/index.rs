//! The per-chain candidate index (see [`ProtoIndex`]): rules by protocol class,
//! destination port segment and source prefix, in rule order.

use super::{Match, Net, PortRange, PortsWhich, ProtoIndex, Rule, PROTO_CLASSES};

/// A rule's protocol class requirement, its destination-port ranges (if indexable) and
/// its source network (if it has a plain, non-negated `-s`).
type RuleKeys = (Option<usize>, Option<Vec<(u16, u16)>>, Option<Net>);

fn rule_keys(rule: &Rule) -> RuleKeys {
    let mut class = None;
    let mut ports = None;
    let mut src = None;
    // A match that changes state (`-m recent --set`, hashlimit) runs for every packet
    // that reaches it, as in iptables: the ports of later matches cannot skip the rule.
    let mut effects = false;
    for m in &rule.matches {
        match m {
            Match::Stateful(x) if x.has_side_effects() => effects = true,
            Match::Proto { proto, neg: false } => class = Some(super::proto_class(*proto)),
            Match::Tcp { dport, .. } | Match::Udp { dport, .. }
                if !effects && ports.is_none() && !dport.neg && *dport != PortRange::ANY =>
            {
                ports = Some(vec![(dport.lo, dport.hi)]);
            }
            Match::Multiport {
                which: PortsWhich::Dst,
                ports: p,
                neg: false,
            } if !effects && ports.is_none() => ports = Some(p.clone()),
            Match::Src { net, neg: false } if src.is_none() && net.mask != 0 => src = Some(*net),
            _ => {}
        }
    }
    (class, ports, src)
}

/// Most port segments one rule may be listed in before it counts as a wildcard.
const MAX_SEGMENTS_PER_RULE: usize = 64;
/// Fewest rules sharing one `-s` prefix length before a source index pays off (1 in
/// tests, so the property test against the reference interpreter exercises it).
const MIN_SRC_INDEXED: usize = if cfg!(test) { 1 } else { 8 };

/// Builds the candidate lists of one chain (see [`ProtoIndex`]): for each protocol
/// class, TCP/UDP rules with destination ports go into port segments; of the rest, the
/// rules with a plain `-s` of the most common prefix length go into a source index;
/// what remains is `wild`. A packet's candidates are `wild`, its port segment and its
/// source network's list, merged in rule order, so first-match order is exact.
pub(super) fn build_index(rules: &[Rule], chain_rules: &[u32]) -> [ProtoIndex; PROTO_CLASSES] {
    let keys: Vec<_> = chain_rules
        .iter()
        .map(|&id| (id, rule_keys(&rules[id as usize])))
        .collect();
    let mut out: [ProtoIndex; PROTO_CLASSES] = Default::default();
    for (class, ix) in out.iter_mut().enumerate() {
        let members: Vec<_> = keys
            .iter()
            .filter(|(_, (c, _, _))| c.is_none_or(|c| c == class))
            .collect();
        ix.all = members.iter().map(|(id, _)| *id).collect();
        // Port segments (TCP and UDP classes only).
        let mut port_segs: Vec<Option<Vec<usize>>> = vec![None; members.len()];
        if class <= 1 {
            let mut bounds: Vec<u16> = vec![0];
            for (_, (c, p, _)) in &members {
                if let (Some(_), Some(p)) = (c, p) {
                    for &(lo, hi) in p {
                        bounds.push(lo);
                        if hi < 65535 {
                            bounds.push(hi + 1);
                        }
                    }
                }
            }
            bounds.sort_unstable();
            bounds.dedup();
            let seg_of = |port: u16| bounds.partition_point(|&b| b <= port) - 1;
            for (k, (_, (c, p, _))) in members.iter().enumerate() {
                if let (Some(_), Some(p)) = (c, p) {
                    let mut v = Vec::new();
                    for &(lo, hi) in p {
                        v.extend(seg_of(lo)..=seg_of(hi));
                    }
                    v.sort_unstable();
                    v.dedup();
                    if v.len() <= MAX_SEGMENTS_PER_RULE {
                        port_segs[k] = Some(v);
                    }
                }
            }
            if port_segs.iter().any(|s| s.is_some()) {
                let mut per_seg: Vec<Vec<u32>> = vec![Vec::new(); bounds.len()];
                for (k, segs) in port_segs.iter().enumerate() {
                    if let Some(v) = segs {
                        v.iter().for_each(|&s| per_seg[s].push(members[k].0));
                    }
                }
                ix.seg_start = Vec::with_capacity(bounds.len() + 1);
                for s in &per_seg {
                    ix.seg_start.push(ix.seg_rules.len() as u32);
                    ix.seg_rules.extend_from_slice(s);
                }
                ix.seg_start.push(ix.seg_rules.len() as u32);
                ix.bounds = bounds;
            }
        }
        // Source index over the rules not in a port segment.
        let mut by_mask: std::collections::HashMap<u128, usize> = Default::default();
        for (k, (_, (_, _, src))) in members.iter().enumerate() {
            if let (None, Some(n)) = (&port_segs[k], src) {
                *by_mask.entry(n.mask).or_default() += 1;
            }
        }
        let best = by_mask
            .into_iter()
            .filter(|&(_, n)| n >= MIN_SRC_INDEXED)
            .max_by_key(|&(m, n)| (n, m));
        let mut src_lists: std::collections::BTreeMap<u128, Vec<u32>> = Default::default();
        for (k, (id, (_, _, src))) in members.iter().enumerate() {
            if port_segs[k].is_some() {
                continue;
            }
            match (best, src) {
                (Some((mask, _)), Some(n)) if n.mask == mask => {
                    src_lists.entry(n.net).or_default().push(*id)
                }
                _ => ix.wild.push(*id),
            }
        }
        if let Some((mask, _)) = best {
            ix.src_mask = mask;
            for (net, list) in src_lists {
                ix.src_keys.push(net);
                ix.src_start.push(ix.src_rules.len() as u32);
                ix.src_rules.extend_from_slice(&list);
            }
            ix.src_start.push(ix.src_rules.len() as u32);
        }
    }
    out
}
