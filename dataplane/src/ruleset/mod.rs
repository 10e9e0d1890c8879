//! The compiled, immutable iptables-style ruleset and its evaluation.
//!
//! * [`parse_ruleset`] reads `iptables-restore` / `ip6tables-restore` text (what
//!   `iptables-save` prints) for the `*filter`, `*raw` and `*nat` tables and compiles it into a
//!   [`Ruleset`]: chains, rules as compact match lists, and a per-chain index by
//!   protocol and destination port. Anything it does not support is refused whole with a
//!   [`RulesetError`] (`file:line:column: message`); nothing is ignored silently.
//!   Inside, the text front end (`text/`: lines, tokens, rule options, values) reads the
//!   text into a plain `Draft`; `compile` resolves chain targets and checks loops and
//!   depth; `index` builds each chain's index.
//! * [`Ruleset::eval_raw`] and [`Ruleset::eval_filter`] run a packet through a built-in
//!   chain with iptables' semantics (first match wins, `-j` calls, `-g` gotos, RETURN,
//!   policies). They never allocate, lock or make a system call: the call stack is a
//!   fixed array, counters and `-m limit` buckets live in the caller's per-worker
//!   [`RuleCounters`], and time comes in as [`PacketCtx::now`].
//! * [`build_reject`] writes the REJECT reply (TCP RST or ICMP/ICMPv6 error) into a
//!   caller's buffer.
//! * [`Ruleset::list`], [`Ruleset::summary`] and [`Ruleset::dump`] are the control
//!   plane's views (`iptables -L -v -n --line-numbers`, `rules check`, `iptables-save`).
//!
//! Hooks: a port pair in forwarding mode runs raw PREROUTING then filter FORWARD; in host
//! mode, packets toward the host run raw PREROUTING then filter INPUT, and packets from
//! the host run raw OUTPUT then filter OUTPUT (see [`Hook`]). The nat chains
//! ([`Ruleset::eval_nat`], `nat.rs`) run for a new connection's first packet only, around
//! the filter table (`docs/NAT.md`).
//!
//! A ruleset is for one address family (one `rules.v4` or `rules.v6` file); the caller
//! picks the ruleset by the packet's family. Address matches never match a packet of the
//! other family.

mod compile;
mod counters;
mod cttuple;
mod eval;
mod ext;
mod index;
mod list;
mod mangle;
mod matches;
mod nat;
mod reject;
mod summary;
mod text;
mod vcache;

#[cfg(test)]
mod tests;

pub use counters::{carry_counters, RuleCounters};
pub use ext::parse_ruleset_with_sets;
pub use mangle::{MangleChain, MangleOps, PktMeta};
pub use nat::{NatChain, NatKind, NatTarget};
pub use reject::{build_reject, RejectKind};
pub use summary::{ChainSummary, Summary};
pub use vcache::CachedAccept;

pub(crate) use counters::LimitState;

use crate::conntrack::{CtState, CtStatus, Direction, Nanos};
use crate::packet::{Family, Parsed};
use std::path::Path;

/// Most nested `-j` calls a ruleset may make (deeper rulesets are refused at compile time).
pub const MAX_CALL_DEPTH: usize = 64;

/// A ruleset that could not be read or compiled: `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct RulesetError {
    /// The file name given to the reader.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters) of the offending token.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Where in the packet path a chain runs.
///
/// | hook | raw chain | filter chain |
/// |---|---|---|
/// | `Prerouting` (from the network; runs before `Input`/`Forward`) | PREROUTING | — |
/// | `Input` (toward the host, host mode) | — | INPUT |
/// | `Forward` (through a port pair) | — | FORWARD |
/// | `Output` (from the host, host mode) | OUTPUT | OUTPUT |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// Packets from the network, before conntrack (raw PREROUTING).
    Prerouting,
    /// Packets toward the host (filter INPUT).
    Input,
    /// Packets forwarded between ports (filter FORWARD).
    Forward,
    /// Packets from the host (raw OUTPUT, then filter OUTPUT).
    Output,
}

impl Hook {
    /// The raw chain that runs at this hook, if any.
    pub fn raw_chain(self) -> Option<RawChain> {
        match self {
            Hook::Prerouting => Some(RawChain::Prerouting),
            Hook::Output => Some(RawChain::Output),
            _ => None,
        }
    }

    /// The filter chain that runs at this hook, if any.
    pub fn filter_chain(self) -> Option<FilterChain> {
        match self {
            Hook::Input => Some(FilterChain::Input),
            Hook::Forward => Some(FilterChain::Forward),
            Hook::Output => Some(FilterChain::Output),
            Hook::Prerouting => None,
        }
    }
}

/// The built-in chains of the raw table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RawChain {
    /// PREROUTING: packets from the network.
    Prerouting,
    /// OUTPUT: packets from the host.
    Output,
}

/// The built-in chains of the filter table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterChain {
    /// INPUT: packets toward the host.
    Input,
    /// FORWARD: packets through a port pair.
    Forward,
    /// OUTPUT: packets from the host.
    Output,
}

/// What one packet looks like to the rules.
#[derive(Debug, Clone, Copy)]
pub struct PacketCtx<'a> {
    /// The whole frame (Ethernet header first).
    pub frame: &'a [u8],
    /// The parsed summary of `frame`.
    pub parsed: &'a Parsed,
    /// The conntrack state (ignored by [`Ruleset::eval_raw`]: raw runs before conntrack).
    pub ct_state: CtState,
    /// The packet's direction in its connection (meaningful when a connection exists).
    pub ct_dir: Direction,
    /// The connection's status bits (meaningful when a connection exists).
    pub ct_status: CtStatus,
    /// Ingress port name (`-i`); empty when none (host OUTPUT).
    pub in_port: &'a str,
    /// Egress port name (`-o`); empty when none (host INPUT, raw PREROUTING).
    pub out_port: &'a str,
    /// The connection's (ORIGINAL, REPLY) tuples when they are not each other's
    /// inversion (a NATed connection); None: derived from the packet and `ct_dir`.
    pub ct_tuples: Option<&'a (crate::conntrack::NatTuple, crate::conntrack::NatTuple)>,
    /// Now, for `-m limit`.
    pub now: Nanos,
    /// The packet's marks (packet mark, connection mark) and the header edits the
    /// rules collect (MARK, CONNMARK, TCPMSS, ...): per packet, on the caller's stack.
    pub meta: &'a PktMeta,
}

/// A conntrack helper assigned by `-j CT --helper`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Helper {
    /// The FTP helper (`ftp`).
    Ftp,
}

impl Helper {
    /// The helper's name as iptables writes it.
    pub fn name(self) -> &'static str {
        match self {
            Helper::Ftp => "ftp",
        }
    }
}

/// The outcome of the raw table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawVerdict {
    /// `-j NOTRACK` / `-j CT --notrack` matched: skip conntrack, state UNTRACKED.
    pub notrack: bool,
    /// `-j CT --helper NAME` matched: the connection created for this packet gets it.
    pub helper: Option<Helper>,
    /// A `-j DROP` in the raw table (or a DROP policy): drop the packet, no conntrack.
    pub drop: bool,
}

/// The outcome of the filter table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the packet through.
    Accept,
    /// Drop it silently.
    Drop,
    /// Drop it and send the reply that [`build_reject`] writes.
    Reject(RejectKind),
}

/// A `-j LOG` rule matched. Evaluation goes on after it, as in iptables; the caller copies
/// what it needs and hands it off (rate-limited, off the hot path).
#[derive(Debug, Clone, Copy)]
pub struct LogEvent<'a> {
    /// The rule's id (an index into [`RuleCounters`] slots).
    pub rule_id: usize,
    /// The chain the rule is in.
    pub chain: &'a str,
    /// `--log-prefix` (empty when not given).
    pub prefix: &'a str,
    /// `--log-level` as a syslog level 0..=7 (default 4, warning).
    pub level: u8,
    /// `--log-tcp-sequence` (1), `--log-tcp-options` (2), `--log-ip-options` (4),
    /// `--log-uid` (8), `--log-macdecode` (0x20): the kernel's `XT_LOG_*` bits.
    pub flags: u8,
    /// The packet.
    pub frame: &'a [u8],
    /// Its parsed summary.
    pub parsed: &'a Parsed,
    /// Ingress port name.
    pub in_port: &'a str,
    /// Egress port name.
    pub out_port: &'a str,
    /// `-j NFLOG --nflog-group N` (or ULOG's group): Some(N); None for LOG.
    pub nflog_group: Option<u16>,
}

/// Which table a chain belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `*raw`: runs before conntrack (NOTRACK, CT).
    Raw,
    /// `*filter`: the verdicts.
    Filter,
    /// `*nat`: the NAT of new connections.
    Nat,
    /// `*mangle`: marks and header edits (MARK, CONNMARK, TCPMSS, DSCP, TOS, TTL, HL).
    Mangle,
}

impl Table {
    /// The table's name as in `*name`.
    pub fn name(self) -> &'static str {
        match self {
            Table::Raw => "raw",
            Table::Filter => "filter",
            Table::Nat => "nat",
            Table::Mangle => "mangle",
        }
    }
}

/// A built-in chain's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    Accept,
    Drop,
}

/// A network for `-s`/`-d`: `(addr & mask) == net`, both big-endian in a u128
/// (IPv4 in the top 32 bits, as in [`crate::packet::Addr`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Net {
    pub net: u128,
    pub mask: u128,
}

/// An interface name for `-i`/`-o`; `prefix` means it ended in `+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Iface {
    pub name: String,
    pub prefix: bool,
}

impl Iface {
    pub(crate) fn matches(&self, port: &str) -> bool {
        if self.prefix {
            port.as_bytes().starts_with(self.name.as_bytes())
        } else {
            port == self.name
        }
    }
}

/// A port range with its `!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortRange {
    pub lo: u16,
    pub hi: u16,
    pub neg: bool,
}

impl PortRange {
    pub(crate) const ANY: PortRange = PortRange {
        lo: 0,
        hi: 65535,
        neg: false,
    };

    #[inline]
    pub(crate) fn matches(&self, p: u16) -> bool {
        (p >= self.lo && p <= self.hi) != self.neg
    }
}

/// Which ports `-m multiport` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortsWhich {
    Src,
    Dst,
    Either,
}

/// `--state`/`--ctstate` bits, as the kernel's `XT_STATE_*`/`XT_CONNTRACK_STATE_*`.
pub(crate) mod state_bits {
    pub const INVALID: u16 = 1 << 0;
    pub const ESTABLISHED: u16 = 1 << 1;
    pub const RELATED: u16 = 1 << 2;
    pub const NEW: u16 = 1 << 3;
    pub const UNTRACKED: u16 = 1 << 4;
    pub const SNAT: u16 = 1 << 5;
    pub const DNAT: u16 = 1 << 6;

    /// The state names (`--state`, `--ctstate`), in the order listings print them.
    pub const NAMES: &[(u16, &str)] = &[
        (INVALID, "INVALID"),
        (NEW, "NEW"),
        (RELATED, "RELATED"),
        (ESTABLISHED, "ESTABLISHED"),
        (UNTRACKED, "UNTRACKED"),
        (SNAT, "SNAT"),
        (DNAT, "DNAT"),
    ];
}

/// One compiled match. IP-level matches come first in a rule, then the `-m` modules in
/// the order they were written (order matters for `-m limit` and hot drops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Match {
    Proto {
        proto: u8,
        neg: bool,
    },
    Src {
        net: Net,
        neg: bool,
    },
    Dst {
        net: Net,
        neg: bool,
    },
    In {
        iface: Iface,
        neg: bool,
    },
    Out {
        iface: Iface,
        neg: bool,
    },
    Fragment {
        neg: bool,
    },
    Tcp {
        sport: PortRange,
        dport: PortRange,
        flags: Option<(u8, u8, bool)>,
    },
    Udp {
        sport: PortRange,
        dport: PortRange,
    },
    Icmp {
        ty: u8,
        code_lo: u8,
        code_hi: u8,
        neg: bool,
        any: bool,
    },
    Icmp6 {
        ty: u8,
        code_lo: u8,
        code_hi: u8,
        neg: bool,
    },
    Multiport {
        which: PortsWhich,
        ports: Vec<(u16, u16)>,
        neg: bool,
    },
    State {
        mask: u16,
        neg: bool,
    },
    Conntrack {
        state: Option<(u16, bool)>,
        status: Option<(u8, bool)>,
        dir: Option<(Direction, bool)>,
        /// `--ctorigsrc` and the other tuple options, in the order given (boxed: keeps
        /// `Match` at 32 bytes; empty for nearly every rule).
        tuples: Box<[cttuple::CtTupleMatch]>,
    },
    Limit {
        slot: u32,
    },
    Comment,
    /// `-m addrtype`: (`addr_types` bits, `!`) for the source and the destination.
    AddrType {
        src: Option<(u16, bool)>,
        dst: Option<(u16, bool)>,
    },
    /// The other stateless matches (`matches.rs`: mark, connmark, ttl, hl, tos, ...).
    Ext(Box<matches::ExtMatch>),
    /// State that spans packets: `-m set` (`ext.rs`; boxed: keeps `Match` small).
    Stateful(Box<ext::ExtMatch>),
}

/// `-m addrtype` types, as the kernel's `XT_ADDRTYPE_*` bits (statewall classifies
/// UNSPEC, UNICAST, LOCAL, BROADCAST and MULTICAST; see [`Ruleset::set_local_addrs`]).
pub(crate) mod addr_types {
    pub const UNSPEC: u16 = 1 << 0;
    pub const UNICAST: u16 = 1 << 1;
    pub const LOCAL: u16 = 1 << 2;
    pub const BROADCAST: u16 = 1 << 3;
    /// Accepted, never classified: the fast path knows no anycast routes (Linux gives
    /// RTN_ANYCAST only to addresses with an anycast route, e.g. a router's IPv6
    /// subnet-router anycast address); a Shorewall `Broadcast` action names it.
    pub const ANYCAST: u16 = 1 << 4;
    pub const MULTICAST: u16 = 1 << 5;

    /// The names, in the order listings print them.
    pub const NAMES: &[(u16, &str)] = &[
        (UNSPEC, "UNSPEC"),
        (UNICAST, "UNICAST"),
        (LOCAL, "LOCAL"),
        (BROADCAST, "BROADCAST"),
        (ANYCAST, "ANYCAST"),
        (MULTICAST, "MULTICAST"),
    ];
}

/// A `-m limit` token bucket's parameters (the state lives in [`RuleCounters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LimitSpec {
    /// Nanoseconds per token.
    pub interval: u64,
    /// Bucket size in tokens.
    pub burst: u32,
    /// How it was written: (count, unit) for listing.
    pub count: u32,
    pub unit: &'static str,
}

/// What a rule does when it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// No `-j`: only counts.
    None,
    Accept,
    Drop,
    Reject(RejectKind),
    Log {
        prefix: String,
        level: u8,
        flags: u8,
    },
    Return,
    Jump(usize),
    Goto(usize),
    Notrack,
    /// `-j CT` (with `--helper` or with no option: a template without effect).
    Ct {
        helper: Option<Helper>,
        notrack: bool,
    },
    /// A nat-table target (SNAT, DNAT, MASQUERADE, REDIRECT, NETMAP): terminal.
    Nat(Box<NatTarget>),
    /// MARK, CONNMARK, TCPMSS, DSCP, TOS, TTL, HL, CHECKSUM, NFLOG (`mangle.rs`):
    /// non-terminal.
    Ext(Box<mangle::ExtTarget>),
    /// A non-terminal target on state that spans packets: `-j SET` (`ext.rs`).
    Stateful(Box<ext::ExtTarget>),
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub chain: usize,
    pub line: usize,
    pub matches: Vec<Match>,
    pub target: Target,
    /// `-m comment` text, if any (the last one).
    pub comment: Option<String>,
    /// The rule in canonical iptables-save form, without `-A CHAIN` (its identity).
    pub text: String,
}

/// Candidate rule lists of one chain for one protocol class.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProtoIndex {
    /// Every rule of the chain that may match this protocol, in order.
    pub all: Vec<u32>,
    /// Rules of `all` in neither the port segments nor the source index.
    pub wild: Vec<u32>,
    /// Segment starts of the destination-port space, ascending, starting at 0 (TCP/UDP
    /// classes only; empty when no rule has an indexable destination port).
    pub bounds: Vec<u16>,
    /// `seg_start[i]..seg_start[i + 1]` indexes `seg_rules` for segment `i`.
    pub seg_start: Vec<u32>,
    /// The port-specific rules of each segment, in order.
    pub seg_rules: Vec<u32>,
    /// Mask of the source prefix length indexed (0: no source index).
    pub src_mask: u128,
    /// Source networks (address & `src_mask`), ascending.
    pub src_keys: Vec<u128>,
    /// `src_start[i]..src_start[i + 1]` indexes `src_rules` for `src_keys[i]`.
    pub src_start: Vec<u32>,
    /// The rules whose `-s` is exactly that network (and not port-indexed), in order.
    pub src_rules: Vec<u32>,
}

/// Number of protocol classes in a chain index: TCP, UDP, ICMP, ICMPv6, other.
pub(crate) const PROTO_CLASSES: usize = 5;

/// The index class of an IP protocol number.
#[inline]
pub(crate) fn proto_class(p: u8) -> usize {
    match p {
        crate::packet::proto::TCP => 0,
        crate::packet::proto::UDP => 1,
        crate::packet::proto::ICMP => 2,
        crate::packet::proto::ICMPV6 => 3,
        _ => 4,
    }
}

/// One chain.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    pub table: Table,
    pub name: String,
    /// Some for built-in chains.
    pub policy: Option<Policy>,
    /// Global rule ids, in order.
    pub rules: Vec<u32>,
    pub index: [ProtoIndex; PROTO_CLASSES],
    /// How many rules jump or go to it.
    pub references: usize,
}

/// A compiled, immutable ruleset. Share it behind an `Arc`; swap whole rulesets to update.
#[derive(Debug, Clone)]
pub struct Ruleset {
    pub(crate) family: Family,
    pub(crate) file: String,
    /// Which tables the text defined (in the order given).
    pub(crate) tables: Vec<Table>,
    pub(crate) chains: Vec<Chain>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) limits: Vec<LimitSpec>,
    /// Chain ids of raw PREROUTING, raw OUTPUT, filter INPUT, FORWARD, OUTPUT, nat
    /// PREROUTING, INPUT, OUTPUT, POSTROUTING.
    pub(crate) builtin: [usize; 9],
    /// Whether the nat table has any rule (else new connections skip it).
    pub(crate) nat_rules: bool,
    /// Chain ids of mangle PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING.
    pub(crate) mangle_builtin: [usize; 5],
    /// Whether the mangle table has any rule or a DROP policy (else it is skipped).
    pub(crate) mangle_on: bool,
    /// The host's own addresses, for `-m addrtype` LOCAL (besides loopback).
    pub(crate) local_addrs: Vec<crate::packet::Addr>,
    /// Per rule: its matches are all pure functions of what a connection's direction
    /// fixes (the verdict cache's whitelist, computed at compile time: `vcache.rs`).
    pub(crate) vc_pure: Vec<bool>,
    /// Whether any LOG rule is in the raw table (then use [`Ruleset::eval_raw_log`]).
    pub(crate) raw_logs: bool,
    /// Publication generation (1 for the first ruleset, +1 per reload); set by the
    /// control plane before publishing.
    pub(crate) generation: u64,
    /// The other family's ruleset (ip6tables beside iptables), consulted for packets of
    /// that family. Without one, packets of the other family meet empty built-in chains
    /// with ACCEPT policies, as an empty ip6tables/iptables would give them.
    pub(crate) other: Option<std::sync::Arc<Ruleset>>,
}

/// Reads and compiles `iptables-restore` text. `family_hint` forces the family; without
/// it the family is taken from the first address or ICMPv6 token (IPv4 when none).
pub fn parse_ruleset(
    text: &str,
    file_name: &str,
    family_hint: Option<Family>,
) -> Result<Ruleset, RulesetError> {
    parse_ruleset_with_sets(
        text,
        file_name,
        family_hint,
        &crate::sets::SetRegistry::new(),
    )
}

impl Ruleset {
    /// Reads and compiles a rules file; a name ending in `.v6` (or containing `ip6tables`)
    /// is read as IPv6, one ending in `.v4` as IPv4, anything else by its content.
    pub fn from_file(path: &Path) -> Result<Ruleset, RulesetError> {
        Ruleset::from_file_with_sets(path, &crate::sets::SetRegistry::new())
    }

    /// A ruleset whose built-in filter chains accept everything (no rules).
    pub fn accept_all() -> Ruleset {
        parse_ruleset(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
            "accept-all",
            None,
        )
        .expect("the accept-all ruleset compiles")
    }

    /// Pairs this ruleset with one for the other address family (an iptables-restore
    /// file with an ip6tables-restore file). Refused when both are of one family.
    pub fn with_other_family(mut self, other: Ruleset) -> Result<Ruleset, RulesetError> {
        if other.family == self.family {
            return Err(RulesetError {
                file: other.file.clone(),
                line: 0,
                column: 0,
                message: format!(
                    "both rules files are {}; give one IPv4 (iptables) and one IPv6 (ip6tables) file",
                    if self.family == Family::V4 { "IPv4" } else { "IPv6" }
                ),
            });
        }
        self.other = Some(std::sync::Arc::new(other));
        Ok(self)
    }

    /// The ruleset for packets of `family`: this one, the paired one, or None (accept).
    #[inline]
    pub(crate) fn for_family(&self, family: Family) -> Option<&Ruleset> {
        if family == self.family {
            Some(self)
        } else {
            self.other.as_deref()
        }
    }

    /// The paired ruleset of the other family, if any.
    pub fn other_family(&self) -> Option<&Ruleset> {
        self.other.as_deref()
    }

    /// The publication generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Sets the publication generation (before publishing).
    pub fn set_generation(&mut self, g: u64) {
        self.generation = g;
    }

    /// Rules whose `-m comment` starts with `metric:`: the opt-in set exported as
    /// Prometheus series, as (rule id, table, chain, name after the prefix).
    pub fn metric_rules(&self) -> Vec<(usize, String, String, String)> {
        let mut out = self.metric_rules_own();
        if let Some(o) = &self.other {
            let base = self.counter_slots();
            out.extend(
                o.metric_rules_own()
                    .into_iter()
                    .map(|(id, t, c, n)| (base + id, format!("ip6{t}"), c, n)),
            );
        }
        out
    }

    fn metric_rules_own(&self) -> Vec<(usize, String, String, String)> {
        (0..self.rules.len())
            .filter_map(|id| {
                let name = self
                    .rule_comment(id)?
                    .strip_prefix("metric:")?
                    .trim()
                    .to_string();
                let (t, chain, _) = self.rule_location(id)?;
                let table = t.name();
                Some((id, table.to_string(), chain.to_string(), name))
            })
            .collect()
    }

    /// Every table of the ruleset listed like `iptables -L -v -n --line-numbers`
    /// (`iptables -t raw -L ...` for raw), with the summed counter snapshot.
    pub fn listing(&self, counters: &[(u64, u64)]) -> String {
        let own = self.counter_slots().min(counters.len());
        let mut out = self.listing_own(&counters[..own]);
        if let Some(o) = &self.other {
            let name = if o.family == Family::V6 {
                "ip6tables"
            } else {
                "iptables"
            };
            out.push_str(&format!("\n# {name} ({})\n", o.file));
            out.push_str(&o.listing_own(&counters[own..]));
        }
        out
    }

    fn listing_own(&self, counters: &[(u64, u64)]) -> String {
        let mut out = String::new();
        for &t in &self.tables {
            if !out.is_empty() {
                out.push('\n');
            }
            if t == Table::Raw {
                out.push_str("# table raw\n");
            } else if t == Table::Nat {
                out.push_str("# table nat\n");
            } else if t == Table::Mangle {
                out.push_str("# table mangle\n");
            } else if self.tables.len() > 1 {
                out.push_str("# table filter\n");
            }
            out.push_str(&self.list(t, counters));
        }
        out
    }

    /// The address family of the ruleset.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Number of rules (rule ids are `0..rule_count()`).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Number of counter slots: one per rule, then one per chain (its policy counter;
    /// unused for user chains). Slot of chain `c`'s policy = `rule_count() + c`.
    pub fn counter_slots(&self) -> usize {
        self.rules.len() + self.chains.len()
    }

    /// Number of `-m limit` buckets.
    pub fn limit_count(&self) -> usize {
        self.limits.len()
    }

    /// True when the raw table has LOG rules: use [`Ruleset::eval_raw_log`] to get them.
    pub fn raw_logs(&self) -> bool {
        self.raw_logs || self.other.as_ref().is_some_and(|o| o.raw_logs)
    }

    /// The table, chain and 1-based position in the chain of a rule id.
    pub fn rule_location(&self, id: usize) -> Option<(Table, &str, usize)> {
        let r = self.rules.get(id)?;
        let c = &self.chains[r.chain];
        let pos = c.rules.iter().position(|&x| x as usize == id)? + 1;
        Some((c.table, &c.name, pos))
    }

    /// The `-m comment` text of a rule id, if any (the name used for opt-in metrics).
    pub fn rule_comment(&self, id: usize) -> Option<&str> {
        self.rules.get(id)?.comment.as_deref()
    }
}
