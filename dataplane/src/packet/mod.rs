//! Zero-copy packet views.
//!
//! [`parse`] reads an Ethernet frame (with up to two VLAN tags) and returns a small
//! [`Parsed`] summary: offsets into the frame, the addresses, the L4 protocol and its
//! header fields. Nothing is copied but a few integers, nothing allocates, and every
//! length and offset is checked: a malformed frame yields a [`ParseError`], never a panic.
//!
//! Two levels of failure are distinguished, as in Linux:
//! * a bad IP header (bad version, ihl, total length, truncated IP header) is an `Err`:
//!   the IP stack would have discarded the packet before any netfilter hook ran;
//! * a good IP header whose L4 header is short or inconsistent yields `Ok(Parsed)` with
//!   [`L4::Malformed`]: conntrack sees it and calls it INVALID with that reason.
//!
//! [`checksum`] verifies IPv4 header and L4 checksums (with the IPv6 pseudo-header);
//! [`build`] writes frames (used by tests, the generator and REJECT replies).

pub mod build;
pub mod checksum;
pub mod mangle;
mod parse;
pub mod payload;
mod quote;
pub mod rewrite;

pub use parse::{parse, parse_embedded, parse_ip};
pub use quote::quoted;

/// Ethertype of IPv4.
pub const ETH_P_IPV4: u16 = 0x0800;
/// Ethertype of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// Ethertype of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// Ethertype of an 802.1Q VLAN tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// Ethertype of an 802.1ad (QinQ) service tag.
pub const ETH_P_8021AD: u16 = 0x88a8;
/// Ethertype of LLDP.
pub const ETH_P_LLDP: u16 = 0x88cc;

pub mod proto;

/// TCP flag bits as they appear in byte 13 of the header.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;

    /// The flag names iptables uses (`--tcp-flags`), in bit order; ECE and CWR have none.
    pub const NAMES: &[(u8, &str)] = &[
        (FIN, "FIN"),
        (SYN, "SYN"),
        (RST, "RST"),
        (PSH, "PSH"),
        (ACK, "ACK"),
        (URG, "URG"),
    ];
}

/// Address family of the IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// An IP address in a fixed 16-byte form: IPv4 in bytes 0..4, the rest zero.
pub type Addr = [u8; 16];

/// Turns an [`Addr`] of a family into a std address (for display and tests).
pub fn to_ip(family: Family, a: &Addr) -> std::net::IpAddr {
    match family {
        Family::V4 => std::net::IpAddr::from([a[0], a[1], a[2], a[3]]),
        Family::V6 => std::net::IpAddr::from(*a),
    }
}

/// Turns a std address into an [`Addr`] and its family.
pub fn from_ip(ip: std::net::IpAddr) -> (Family, Addr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&v4.octets());
            (Family::V4, a)
        }
        std::net::IpAddr::V6(v6) => (Family::V6, v6.octets()),
    }
}

/// Why a frame or one of its headers could not be read. Each is counted by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ParseError {
    /// Shorter than an Ethernet header (or a VLAN tag is cut).
    #[error("truncated ethernet/vlan header")]
    TruncatedL2,
    /// More than two VLAN tags.
    #[error("too many vlan tags")]
    TooManyVlans,
    /// Not IPv4 or IPv6 (ARP, LLDP, ...): not an error for the worker, which applies
    /// its non-IP policy, but there is nothing to track.
    #[error("not an ip packet (ethertype {0:#06x})")]
    NotIp(u16),
    /// Shorter than the fixed IP header.
    #[error("truncated ip header")]
    TruncatedIp,
    /// The version nibble does not match the ethertype.
    #[error("bad ip version")]
    BadIpVersion,
    /// IPv4 ihl < 5, or ihl*4 beyond the packet (INV-2).
    #[error("bad ipv4 header length")]
    BadIhl,
    /// IPv4 total length < ihl*4 or beyond the frame; IPv6 payload length beyond the frame.
    #[error("bad ip total length")]
    BadTotalLength,
    /// The IPv4 header checksum is wrong (only reported by [`checksum`]).
    #[error("bad ipv4 header checksum")]
    BadIpChecksum,
    /// The IPv6 extension-header chain is cut or malformed (INV-3).
    #[error("bad ipv6 extension header chain")]
    BadExtHeader,
    /// The L4 header is shorter than its protocol needs (INV-4, INV-13, INV-15).
    #[error("truncated l4 header")]
    TruncatedL4,
    /// TCP data offset < 5 or beyond the segment (INV-5).
    #[error("bad tcp data offset")]
    BadTcpDataOffset,
    /// UDP length field < 8 or beyond the bytes present (INV-13).
    #[error("bad udp length")]
    BadUdpLength,
}

/// Fragment information of an IP packet (IPv4 header or IPv6 fragment header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Frag {
    /// Fragment offset in 8-byte units.
    pub offset: u16,
    /// More-fragments flag.
    pub more: bool,
    /// Identification (16 bits for IPv4, 32 for IPv6).
    pub id: u32,
    /// Offset in the frame of the IPv6 fragment header (0 for IPv4).
    pub hdr_off: u16,
}

impl Frag {
    /// True for the first fragment or any later one (offset != 0 or MF set).
    pub fn is_fragment(&self) -> bool {
        self.offset != 0 || self.more
    }
}

/// TCP options that conntrack and the rules care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    /// MSS.
    pub mss: Option<u16>,
    /// Window scale shift as sent (conntrack caps it at 14).
    pub wscale: Option<u8>,
    /// SACK-permitted seen.
    pub sack_perm: bool,
    /// Timestamps (value, echo reply).
    pub timestamps: Option<(u32, u32)>,
    /// With SACK blocks: the segment's ACK number advanced to the highest right edge
    /// among them (conntrack's `tcp_sack`, serial-number order, starting from the ACK
    /// number); None without SACK blocks. Kept instead of the blocks themselves, which
    /// nothing else reads: `Parsed` stays small enough to copy cheaply.
    pub sack_right: Option<u32>,
}

/// The TCP header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Header length in bytes (data offset * 4).
    pub hdr_len: u8,
    /// Flags byte (see [`tcp_flags`]).
    pub flags: u8,
    /// Raw (unscaled) window.
    pub window: u16,
    /// Parsed options.
    pub options: TcpOptions,
    /// Payload length, from the IP total length (not the frame length).
    pub payload_len: u16,
}

/// The UDP header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// The length field.
    pub len: u16,
    /// The checksum field (0 = none, IPv4).
    pub checksum: u16,
}

/// The SCTP common header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sctp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// The verification tag (0 in a quote cut after the ports).
    pub vtag: u32,
}

/// The ICMP / ICMPv6 header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmp {
    /// Type.
    pub ty: u8,
    /// Code.
    pub code: u8,
    /// Identifier (bytes 4..6), meaningful for echo/timestamp/info/node-info.
    pub id: u16,
    /// Sequence (bytes 6..8).
    pub seq: u16,
    /// True for ICMPv6 (protocol 58), false for ICMPv4.
    pub v6: bool,
}

impl Icmp {
    /// True when this is an error type that quotes an offending packet
    /// (ICMPv4 3, 4, 5, 11, 12; ICMPv6 types below 128).
    pub fn is_error(&self) -> bool {
        if self.v6 {
            self.ty < 128
        } else {
            matches!(self.ty, 3 | 4 | 5 | 11 | 12)
        }
    }
}

/// The L4 part of a parsed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP.
    Tcp(Tcp),
    /// UDP.
    Udp(Udp),
    /// ICMP or ICMPv6; for an error type the quoted packet starts at `Parsed::l4_off + 8`.
    Icmp(Icmp),
    /// SCTP: the common header (the chunks follow at `Parsed::l4_off + 12`).
    Sctp(Sctp),
    /// Any other protocol (ESP, GRE, 59, ...): tracked generically by addresses.
    Other,
    /// A non-first fragment: no L4 header in this packet.
    Fragment,
    /// The L4 header is present but malformed or truncated.
    Malformed(ParseError),
}

/// Summary of one IP packet inside a frame. All offsets index the frame given to [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// VLAN ids (outer first), `vlan_count` of them valid.
    pub vlans: [u16; 2],
    /// Number of VLAN tags.
    pub vlan_count: u8,
    /// Offset of the IP header.
    pub l3_off: u16,
    /// Offset of the L4 header (after IPv4 options / IPv6 extension headers).
    pub l4_off: u16,
    /// Bytes of L4 (header + payload) according to the IP length fields.
    pub l4_len: u16,
    /// End of the IP packet in the frame (l3_off + total length): trailing padding excluded.
    pub ip_end: u16,
    /// IPv4 or IPv6.
    pub family: Family,
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// The L4 protocol (after IPv6 extension headers; AH is walked over on IPv6).
    pub proto: u8,
    /// TTL / hop limit.
    pub ttl: u8,
    /// Fragment info (all zero when not fragmented).
    pub frag: Frag,
    /// The L4 header.
    pub l4: L4,
}

impl Parsed {
    /// Source and destination ports for TCP/UDP, else None.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.l4 {
            L4::Tcp(t) => Some((t.sport, t.dport)),
            L4::Udp(u) => Some((u.sport, u.dport)),
            L4::Sctp(s) => Some((s.sport, s.dport)),
            _ => None,
        }
    }

    /// The IP total length (header + payload) in bytes.
    pub fn ip_len(&self) -> u16 {
        self.ip_end - self.l3_off
    }

    /// The L4 payload range in the frame (TCP/UDP data; empty for other protocols).
    pub fn payload_range(&self) -> std::ops::Range<usize> {
        let end = self.ip_end as usize;
        match self.l4 {
            L4::Tcp(t) => (self.l4_off as usize + t.hdr_len as usize).min(end)..end,
            L4::Udp(_) => (self.l4_off as usize + 8).min(end)..end,
            _ => end..end,
        }
    }
}

/// What a frame is, from the worker's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// An IP packet.
    Ip(Parsed),
    /// A non-IP frame with its ethertype (after VLAN tags).
    NonIp(u16),
}

/// The IP parse of a frame a test built (panics on anything else), for tests across
/// the crate.
#[cfg(test)]
pub(crate) fn parsed_ip(f: &[u8]) -> Parsed {
    match parse(f) {
        Ok(Frame::Ip(p)) => p,
        other => panic!("a test frame that does not parse as IP: {other:?}"),
    }
}

#[cfg(test)]
mod tests;
