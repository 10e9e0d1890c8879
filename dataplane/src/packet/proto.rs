//! IP protocol numbers, and the one table of their names (as `/etc/protocols` and
//! `iptables-save` spell them, plus the names `conntrack -L` prints).

/// ICMP.
pub const ICMP: u8 = 1;
/// TCP.
pub const TCP: u8 = 6;
/// UDP.
pub const UDP: u8 = 17;
/// GRE.
pub const GRE: u8 = 47;
/// ESP.
pub const ESP: u8 = 50;
/// AH.
pub const AH: u8 = 51;
/// ICMPv6.
pub const ICMPV6: u8 = 58;
/// IPv6 "no next header".
pub const NONE6: u8 = 59;
/// SCTP.
pub const SCTP: u8 = 132;
/// UDP-Lite (RFC 3828).
pub const UDPLITE: u8 = 136;

/// One IP protocol's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name {
    /// The protocol number (0: iptables' "all").
    pub number: u8,
    /// The names accepted on input (lower case); the first is the canonical one.
    pub names: &'static [&'static str],
    /// `iptables-save` prints the canonical name (otherwise it prints the number).
    pub saved: bool,
    /// The name `conntrack -L` prints (otherwise it prints "unknown").
    pub conntrack: Option<&'static str>,
}

const fn n(
    number: u8,
    names: &'static [&'static str],
    saved: bool,
    conntrack: Option<&'static str>,
) -> Name {
    Name {
        number,
        names,
        saved,
        conntrack,
    }
}

/// Every protocol name statewall knows.
pub const NAMES: &[Name] = &[
    n(0, &["all"], true, None),
    n(TCP, &["tcp"], true, Some("tcp")),
    n(UDP, &["udp"], true, Some("udp")),
    n(ICMP, &["icmp"], true, Some("icmp")),
    n(
        ICMPV6,
        &["ipv6-icmp", "icmpv6", "icmp6"],
        true,
        Some("icmpv6"),
    ),
    n(ESP, &["esp"], true, None),
    n(AH, &["ah"], true, None),
    n(GRE, &["gre"], true, None),
    n(SCTP, &["sctp"], true, Some("sctp")),
    n(UDPLITE, &["udplite"], true, Some("udplite")),
    n(2, &["igmp"], false, None),
    n(4, &["ipip", "ipencap"], false, None),
    n(41, &["ipv6"], false, None),
    n(89, &["ospf"], false, None),
    n(103, &["pim"], false, None),
    n(112, &["vrrp"], false, None),
    n(135, &["mh", "ipv6-mh"], false, None),
];

fn entry(p: u8) -> Option<&'static Name> {
    NAMES.iter().find(|e| e.number == p)
}

/// A protocol given by name (any case) or number, as `iptables -p` takes it.
pub fn parse(s: &str) -> Option<u8> {
    let l = s.to_ascii_lowercase();
    match NAMES.iter().find(|e| e.names.contains(&l.as_str())) {
        Some(e) => Some(e.number),
        None => l.parse::<u8>().ok(),
    }
}

/// The protocol as `iptables-save` prints it: its name, or its number.
pub fn save_name(p: u8) -> String {
    match entry(p) {
        Some(e) if e.saved => e.names[0].into(),
        _ => p.to_string(),
    }
}

/// The protocol name `conntrack -L` prints ("unknown" for the generic ones).
pub fn conntrack_name(p: u8) -> &'static str {
    entry(p).and_then(|e| e.conntrack).unwrap_or("unknown")
}
