//! The `-m` modules a rule may load (and the implicit tcp/udp match that `-p tcp` /
//! `-p udp` loads), each with the options it accepts, filled in while a rule is read.

use crate::conntrack::Direction;
use crate::ruleset::{PortRange, PortsWhich};

/// `-m multiport`: which ports, the list, `!`.
pub(super) type MultiportSpec = (PortsWhich, Vec<(u16, u16)>, bool);

/// A `-m` module being filled in by its options.
pub(super) enum Module {
    Tcp {
        sport: Option<PortRange>,
        dport: Option<PortRange>,
        flags: Option<(u8, u8, bool)>,
    },
    Udp {
        sport: Option<PortRange>,
        dport: Option<PortRange>,
    },
    Icmp(Option<(u8, u8, u8, bool, bool)>),
    Icmp6(Option<(u8, u8, u8, bool)>),
    Multiport(Option<MultiportSpec>),
    State(Option<(u16, bool)>),
    Conntrack {
        state: Option<(u16, bool)>,
        status: Option<(u8, bool)>,
        dir: Option<(Direction, bool)>,
        tuples: Vec<crate::ruleset::cttuple::CtTupleMatch>,
    },
    Comment(Option<String>),
    Limit {
        rate: Option<(u32, &'static str, u64)>,
        burst: Option<u32>,
    },
    AddrType {
        src: Option<(u16, bool)>,
        dst: Option<(u16, bool)>,
    },
    /// The extended matches (`ext.rs`): options collected, checked at the rule's end.
    Ext(super::ext::ExtModule),
    /// State that spans packets (`-m set`): `rule/ext.rs`.
    Stateful(super::rule::stateful::ExtModule),
}

impl Module {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Module::Tcp { .. } => "tcp",
            Module::Udp { .. } => "udp",
            Module::Icmp(_) => "icmp",
            Module::Icmp6(_) => "icmp6",
            Module::Multiport(_) => "multiport",
            Module::State(_) => "state",
            Module::Conntrack { .. } => "conntrack",
            Module::Comment(_) => "comment",
            Module::Limit { .. } => "limit",
            Module::AddrType { .. } => "addrtype",
            Module::Ext(m) => m.name(),
            Module::Stateful(x) => x.name(),
        }
    }

    pub(super) fn accepts(&self, opt: &str) -> bool {
        match self {
            Module::Tcp { .. } => matches!(
                opt,
                "--sport"
                    | "--source-port"
                    | "--dport"
                    | "--destination-port"
                    | "--tcp-flags"
                    | "--syn"
            ),
            Module::Udp { .. } => matches!(
                opt,
                "--sport" | "--source-port" | "--dport" | "--destination-port"
            ),
            Module::Icmp(_) => opt == "--icmp-type",
            Module::Icmp6(_) => opt == "--icmpv6-type",
            Module::Multiport(_) => matches!(
                opt,
                "--sports" | "--source-ports" | "--dports" | "--destination-ports" | "--ports"
            ),
            Module::State(_) => opt == "--state",
            Module::Conntrack { .. } => {
                matches!(opt, "--ctstate" | "--ctstatus" | "--ctdir")
                    || crate::ruleset::cttuple::CtField::of(opt).is_some()
            }
            Module::Comment(_) => opt == "--comment",
            Module::Limit { .. } => matches!(opt, "--limit" | "--limit-burst"),
            Module::AddrType { .. } => matches!(
                opt,
                "--src-type" | "--dst-type" | "--limit-iface-in" | "--limit-iface-out"
            ),
            Module::Ext(m) => m.takes(opt).is_some(),
            Module::Stateful(x) => x.accepts(opt),
        }
    }
}
