//! Connection tracking: Linux `nf_conntrack` semantics, sans-IO.
//!
//! One [`ConnTable`] is one shard, owned and written by one worker. Packets come in as
//! a frame plus its [`crate::packet::Parsed`] summary and a caller-supplied time
//! ([`Nanos`]); out comes a [`Track`]: the state `-m state` would see (NEW, ESTABLISHED,
//! RELATED, INVALID, UNTRACKED), the direction, and a handle on the entry.
//!
//! The flow of one packet follows the kernel (see `docs/CONNTRACK.md` §1.3):
//! [`ConnTable::track`] does steps 1–7 (classify, look up, create a candidate, run the
//! protocol tracker, set SEEN_REPLY); the ruleset decides; then [`ConnTable::confirm`]
//! does step 9 and inserts the candidate of a NEW packet only if the packet was accepted.
//!
//! Modules:
//! * `key`: [`FlowKey`], the canonical (direction-free) key and its symmetric hash;
//! * `tcp`: the TCP state table (`tcp_conntracks`) and window tracking (`tcp_in_window`);
//! * `table`: the fixed-capacity table's storage (fingerprint buckets + slab, side arrays);
//! * `track`: the per-packet procedure on it (`docs/CONNTRACK.md` §1.3): `track`, `confirm`;
//! * `view`: [`EntryView`] and its `conntrack -L` rendering;
//! * `nat`: NAT bindings (the translated tuple, its second index way, port allocation;
//!   `docs/NAT.md`);
//! * `expect`: the global [`ExpectTable`] shared by every shard (`docs/CONNTRACK.md` §4.3);
//! * `helper`: the connection helpers' runner; `helper::ftp`: the FTP helper's parser and per-connection line-start memory (`docs/CONNTRACK.md` §4.2).
//!
//! Multi-worker notes: every shard is owned by one worker, and packets are steered to
//! workers by the symmetric hash of their tuple. Two things cross shards:
//! * ICMP errors: they are steered by their outer tuple, but belong to the flow they
//!   quote; [`crate::steer::owner_hash`] gives the hash of that inner flow, and the
//!   worker hands the packet to the owning worker (see `worker/`).
//! * FTP data connections: the expectation table is global, so a data connection's
//!   first packet, steered by its own tuple to whatever worker owns that tuple, finds
//!   the expectation there and creates its entry in that worker's shard; every later
//!   packet of the data connection is steered to the same worker. No handoff is needed.

pub mod expect;
mod helper;
mod key;
mod mark;
pub mod nat;
mod sctp;
pub mod seqadj;
mod stats;
pub mod sysctl;
mod table;
mod tcp;
mod tcp_states;
mod track;
mod verdict;
mod view;

#[cfg(test)]
mod tests;

pub use expect::{ExpectNat, ExpectStats, ExpectTable, ExpectView, Expectation};
pub use key::FlowKey;
pub use nat::{NatError, NatRange, NatRequest, NatRewrite, NatTuple};
pub use sctp::SctpState;
pub use seqadj::{Mangle, SeqAdj, SeqWay};
pub use stats::{CtCounter, Stats};
pub use sysctl::{Sysctl, SYSCTLS};
pub use table::{ConnTable, ENTRY_SIZE};
pub use tcp_states::TcpState;
pub use verdict::VerdictSlot;
pub use view::{EntryView, Tuple};

use crate::packet::ParseError;

/// The conntrack state of a packet, as `-m state` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtState {
    /// First packet of a connection, or no reply seen yet.
    New,
    /// Packets seen in both directions.
    Established,
    /// A new connection tied to an existing one (expectation or ICMP error).
    Related,
    /// Not associated with any known connection.
    Invalid,
    /// Exempted from tracking in the raw table.
    Untracked,
}

/// Direction of a packet relative to its connection's first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Same direction as the first packet.
    Original,
    /// The other direction.
    Reply,
}

/// Connection status bits (`--ctstatus`), as in Linux's `IPS_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtStatus(pub u8);

impl CtStatus {
    /// Created from an expectation (never cleared).
    pub const EXPECTED: u8 = 1 << 0;
    /// A reply has been seen (never cleared).
    pub const SEEN_REPLY: u8 = 1 << 1;
    /// Protected from early drop.
    pub const ASSURED: u8 = 1 << 2;
    /// The entry is in the table.
    pub const CONFIRMED: u8 = 1 << 3;
    /// The ORIGINAL tuple's source was translated (`IPS_SRC_NAT`; `--ctstate SNAT`).
    pub const SRC_NAT: u8 = 1 << 4;
    /// The ORIGINAL tuple's destination was translated (`IPS_DST_NAT`; `--ctstate DNAT`).
    pub const DST_NAT: u8 = 1 << 5;

    /// The status bits' names (`-m conntrack --ctstatus`), in bit order.
    pub const NAMES: &'static [(u8, &'static str)] = &[
        (Self::EXPECTED, "EXPECTED"),
        (Self::SEEN_REPLY, "SEEN_REPLY"),
        (Self::ASSURED, "ASSURED"),
        (Self::CONFIRMED, "CONFIRMED"),
    ];

    /// True when every bit of `mask` is set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

pub use crate::Nanos;

/// Nanoseconds per second.
pub(crate) const NS: u64 = 1_000_000_000;

/// Conntrack settings, named after the Linux sysctls (`net.netfilter.nf_conntrack_*`),
/// with the kernel's defaults. Timeouts are in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `nf_conntrack_max`: the global entry limit. The table itself enforces the
    /// per-shard capacity given to [`ConnTable::new`]; the control plane derives the
    /// shard capacities from this value.
    pub nf_conntrack_max: u32,
    /// `nf_conntrack_checksum`: verify L4 checksums (TCP, UDP, ICMP, ICMPv6).
    pub checksum: bool,
    /// `nf_conntrack_tcp_loose`: a non-SYN packet may create (pick up) a connection.
    pub tcp_loose: bool,
    /// `nf_conntrack_tcp_be_liberal`: window-check failures are accepted.
    pub tcp_be_liberal: bool,
    /// `nf_conntrack_tcp_ignore_invalid_rst`: turn off the RST "seq < peer maxack" rule.
    pub tcp_ignore_invalid_rst: bool,
    /// `nf_conntrack_tcp_max_retrans`: retransmissions that switch to the 300 s timer.
    pub tcp_max_retrans: u32,
    /// `nf_conntrack_tcp_timeout_syn_sent`.
    pub tcp_timeout_syn_sent: u32,
    /// `nf_conntrack_tcp_timeout_syn_recv`.
    pub tcp_timeout_syn_recv: u32,
    /// `nf_conntrack_tcp_timeout_established`.
    pub tcp_timeout_established: u32,
    /// `nf_conntrack_tcp_timeout_fin_wait`.
    pub tcp_timeout_fin_wait: u32,
    /// `nf_conntrack_tcp_timeout_close_wait`.
    pub tcp_timeout_close_wait: u32,
    /// `nf_conntrack_tcp_timeout_last_ack`.
    pub tcp_timeout_last_ack: u32,
    /// `nf_conntrack_tcp_timeout_time_wait`.
    pub tcp_timeout_time_wait: u32,
    /// `nf_conntrack_tcp_timeout_close`.
    pub tcp_timeout_close: u32,
    /// `nf_conntrack_tcp_timeout_syn_sent2` (simultaneous open).
    pub tcp_timeout_syn_sent2: u32,
    /// `nf_conntrack_tcp_timeout_max_retrans`.
    pub tcp_timeout_max_retrans: u32,
    /// `nf_conntrack_tcp_timeout_unacknowledged`.
    pub tcp_timeout_unacknowledged: u32,
    /// `nf_conntrack_udp_timeout` (no reply yet, or within 2 s of creation).
    pub udp_timeout: u32,
    /// `nf_conntrack_udp_timeout_stream`.
    pub udp_timeout_stream: u32,
    /// `nf_conntrack_sctp_timeout_closed` (also a new entry's first packet).
    pub sctp_timeout_closed: u32,
    /// `nf_conntrack_sctp_timeout_cookie_wait`.
    pub sctp_timeout_cookie_wait: u32,
    /// `nf_conntrack_sctp_timeout_cookie_echoed`.
    pub sctp_timeout_cookie_echoed: u32,
    /// `nf_conntrack_sctp_timeout_established`.
    pub sctp_timeout_established: u32,
    /// `nf_conntrack_sctp_timeout_shutdown_sent`.
    pub sctp_timeout_shutdown_sent: u32,
    /// `nf_conntrack_sctp_timeout_shutdown_recd`.
    pub sctp_timeout_shutdown_recd: u32,
    /// `nf_conntrack_sctp_timeout_shutdown_ack_sent`.
    pub sctp_timeout_shutdown_ack_sent: u32,
    /// `nf_conntrack_sctp_timeout_heartbeat_sent`.
    pub sctp_timeout_heartbeat_sent: u32,
    /// `nf_conntrack_icmp_timeout`.
    pub icmp_timeout: u32,
    /// `nf_conntrack_icmpv6_timeout`.
    pub icmpv6_timeout: u32,
    /// `nf_conntrack_generic_timeout`.
    pub generic_timeout: u32,
    /// `nf_conntrack_expect_max`: the global expectation limit (registration beyond it
    /// fails and the packet is dropped).
    pub expect_max: u32,
}

impl Config {
    /// Sets a knob by its Linux sysctl name, with or without the
    /// `net.netfilter.nf_conntrack_` prefix (`tcp_loose`, `tcp_timeout_established`,
    /// `udp_timeout`, `checksum`, ...): a [`SYSCTLS`] row. Booleans take 0/1 (or
    /// false/true); timeouts are seconds.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let s = Sysctl::find(name).ok_or_else(|| format!("unknown conntrack setting {name:?}"))?;
        s.set(self, s.parse(value)?)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nf_conntrack_max: 262_144,
            checksum: true,
            tcp_loose: true,
            tcp_be_liberal: false,
            tcp_ignore_invalid_rst: false,
            tcp_max_retrans: 3,
            tcp_timeout_syn_sent: 120,
            tcp_timeout_syn_recv: 60,
            tcp_timeout_established: 432_000,
            tcp_timeout_fin_wait: 120,
            tcp_timeout_close_wait: 60,
            tcp_timeout_last_ack: 30,
            tcp_timeout_time_wait: 120,
            tcp_timeout_close: 10,
            tcp_timeout_syn_sent2: 120,
            tcp_timeout_max_retrans: 300,
            tcp_timeout_unacknowledged: 300,
            udp_timeout: 30,
            udp_timeout_stream: 120,
            sctp_timeout_closed: 10,
            sctp_timeout_cookie_wait: 3,
            sctp_timeout_cookie_echoed: 3,
            sctp_timeout_established: 210,
            sctp_timeout_shutdown_sent: 3,
            sctp_timeout_shutdown_recd: 3,
            sctp_timeout_shutdown_ack_sent: 3,
            sctp_timeout_heartbeat_sent: 30,
            icmp_timeout: 30,
            icmpv6_timeout: 30,
            generic_timeout: 600,
            expect_max: 4096,
        }
    }
}

/// Why a packet is INVALID: one variant per condition of `docs/CONNTRACK.md` §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// INV-1 / INV-3: a non-first fragment reached conntrack.
    Fragment,
    /// INV-2: the IPv4 header is inconsistent (ihl beyond the packet, bad lengths).
    BadL3,
    /// INV-3: the IPv6 extension-header walk failed.
    BadExtHeader,
    /// INV-4: the L4 header is too short to read the tuple.
    Truncated,
    /// INV-5: TCP data offset < 5 or beyond the segment.
    TcpBadDataOffset,
    /// INV-6: TCP checksum wrong.
    TcpBadChecksum,
    /// INV-7: TCP flag combination not allowed.
    TcpBadFlags,
    /// INV-8: a TCP packet that cannot create an entry (SYN/ACK, FIN, RST; non-SYN with loose=0).
    TcpInvalidFirst,
    /// INV-9: the TCP state table says invalid.
    TcpStateTable,
    /// INV-10: TCP window check I (sequence beyond the receiver's window).
    TcpWindowSeq,
    /// INV-11: TCP window check II (acknowledges data never seen).
    TcpWindowAck,
    /// INV-12: TCP RST with seq below the peer's max ack.
    TcpInvalidRst,
    /// INV-13: UDP header short, or its length field < 8 or beyond the bytes present.
    UdpBadLength,
    /// INV-14: UDP non-zero checksum wrong.
    UdpBadChecksum,
    /// INV-15: ICMP/ICMPv6 header shorter than 8 bytes.
    IcmpBadHeader,
    /// INV-15: ICMP/ICMPv6 checksum wrong.
    IcmpBadChecksum,
    /// INV-16: ICMPv4 type > 18.
    IcmpBadType,
    /// INV-17: ICMP reply or informational type with no entry (cannot create one).
    IcmpNoEntry,
    /// INV-18: ICMP error whose quoted packet is unparsable, short, a fragment or an error.
    IcmpErrorInner,
    /// INV-18 / INV-21: ICMP error about a flow with no entry (or an untracked flow).
    IcmpErrorNoEntry,
    /// INV-19: ICMP error whose outer destination is not the flow's endpoint.
    IcmpErrorSpoofed,
    /// INV-20: ICMP over IPv6, or ICMPv6 over IPv4.
    IcmpWrongFamily,
    /// INV-22: UDP-Lite checksum coverage < 8 (and not 0) or beyond the datagram.
    UdpLiteBadCoverage,
    /// INV-23: UDP-Lite checksum 0 (UDP-Lite mandates one).
    UdpLiteNoChecksum,
    /// INV-24: UDP-Lite checksum over its coverage wrong.
    UdpLiteBadChecksum,
    /// INV-25: SCTP chunks malformed (none; length 0; COOKIE-ECHO/ACK not first;
    /// INIT, INIT-ACK or SHUTDOWN-COMPLETE not alone).
    SctpBadChunks,
    /// INV-26: SCTP CRC32c wrong.
    SctpBadChecksum,
    /// INV-27: SCTP verification tag not the association's.
    SctpBadVtag,
    /// INV-28: the SCTP state table says invalid (a chunk that cannot start an
    /// entry: DATA, SACK, unknown, ABORT, SHUTDOWN-COMPLETE, COOKIE-ACK; a reply
    /// chunk in a state that has none).
    SctpStateTable,
}

impl InvalidReason {
    /// Every reason, in declaration order (for metrics).
    pub const ALL: &'static [InvalidReason] = &[
        InvalidReason::Fragment,
        InvalidReason::BadL3,
        InvalidReason::BadExtHeader,
        InvalidReason::Truncated,
        InvalidReason::TcpBadDataOffset,
        InvalidReason::TcpBadChecksum,
        InvalidReason::TcpBadFlags,
        InvalidReason::TcpInvalidFirst,
        InvalidReason::TcpStateTable,
        InvalidReason::TcpWindowSeq,
        InvalidReason::TcpWindowAck,
        InvalidReason::TcpInvalidRst,
        InvalidReason::UdpBadLength,
        InvalidReason::UdpBadChecksum,
        InvalidReason::IcmpBadHeader,
        InvalidReason::IcmpBadChecksum,
        InvalidReason::IcmpBadType,
        InvalidReason::IcmpNoEntry,
        InvalidReason::IcmpErrorInner,
        InvalidReason::IcmpErrorNoEntry,
        InvalidReason::IcmpErrorSpoofed,
        InvalidReason::IcmpWrongFamily,
        InvalidReason::UdpLiteBadCoverage,
        InvalidReason::UdpLiteNoChecksum,
        InvalidReason::UdpLiteBadChecksum,
        InvalidReason::SctpBadChunks,
        InvalidReason::SctpBadChecksum,
        InvalidReason::SctpBadVtag,
        InvalidReason::SctpStateTable,
    ];

    /// The snake_case name (a metrics label).
    pub fn as_str(&self) -> &'static str {
        match self {
            InvalidReason::Fragment => "fragment",
            InvalidReason::BadL3 => "bad_l3",
            InvalidReason::BadExtHeader => "bad_ext_header",
            InvalidReason::Truncated => "truncated",
            InvalidReason::TcpBadDataOffset => "tcp_bad_data_offset",
            InvalidReason::TcpBadChecksum => "tcp_bad_checksum",
            InvalidReason::TcpBadFlags => "tcp_bad_flags",
            InvalidReason::TcpInvalidFirst => "tcp_invalid_first",
            InvalidReason::TcpStateTable => "tcp_state_table",
            InvalidReason::TcpWindowSeq => "tcp_window_seq",
            InvalidReason::TcpWindowAck => "tcp_window_ack",
            InvalidReason::TcpInvalidRst => "tcp_invalid_rst",
            InvalidReason::UdpBadLength => "udp_bad_length",
            InvalidReason::UdpBadChecksum => "udp_bad_checksum",
            InvalidReason::IcmpBadHeader => "icmp_bad_header",
            InvalidReason::IcmpBadChecksum => "icmp_bad_checksum",
            InvalidReason::IcmpBadType => "icmp_bad_type",
            InvalidReason::IcmpNoEntry => "icmp_no_entry",
            InvalidReason::IcmpErrorInner => "icmp_error_inner",
            InvalidReason::IcmpErrorNoEntry => "icmp_error_no_entry",
            InvalidReason::IcmpErrorSpoofed => "icmp_error_spoofed",
            InvalidReason::IcmpWrongFamily => "icmp_wrong_family",
            InvalidReason::UdpLiteBadCoverage => "udplite_bad_coverage",
            InvalidReason::UdpLiteNoChecksum => "udplite_no_checksum",
            InvalidReason::UdpLiteBadChecksum => "udplite_bad_checksum",
            InvalidReason::SctpBadChunks => "sctp_bad_chunks",
            InvalidReason::SctpBadChecksum => "sctp_bad_checksum",
            InvalidReason::SctpBadVtag => "sctp_bad_vtag",
            InvalidReason::SctpStateTable => "sctp_state_table",
        }
    }

    /// The line of `docs/CONNTRACK.md` §6 this reason stands for (`"INV-10"`).
    pub fn spec_id(&self) -> &'static str {
        match self {
            InvalidReason::Fragment => "INV-1",
            InvalidReason::BadL3 => "INV-2",
            InvalidReason::BadExtHeader => "INV-3",
            InvalidReason::Truncated => "INV-4",
            InvalidReason::TcpBadDataOffset => "INV-5",
            InvalidReason::TcpBadChecksum => "INV-6",
            InvalidReason::TcpBadFlags => "INV-7",
            InvalidReason::TcpInvalidFirst => "INV-8",
            InvalidReason::TcpStateTable => "INV-9",
            InvalidReason::TcpWindowSeq => "INV-10",
            InvalidReason::TcpWindowAck => "INV-11",
            InvalidReason::TcpInvalidRst => "INV-12",
            InvalidReason::UdpBadLength => "INV-13",
            InvalidReason::UdpBadChecksum => "INV-14",
            InvalidReason::IcmpBadHeader | InvalidReason::IcmpBadChecksum => "INV-15",
            InvalidReason::IcmpBadType => "INV-16",
            InvalidReason::IcmpNoEntry => "INV-17",
            InvalidReason::IcmpErrorInner => "INV-18",
            InvalidReason::IcmpErrorNoEntry => "INV-18",
            InvalidReason::IcmpErrorSpoofed => "INV-19",
            InvalidReason::IcmpWrongFamily => "INV-20",
            InvalidReason::UdpLiteBadCoverage => "INV-22",
            InvalidReason::UdpLiteNoChecksum => "INV-23",
            InvalidReason::UdpLiteBadChecksum => "INV-24",
            InvalidReason::SctpBadChunks => "INV-25",
            InvalidReason::SctpBadChecksum => "INV-26",
            InvalidReason::SctpBadVtag => "INV-27",
            InvalidReason::SctpStateTable => "INV-28",
        }
    }

    /// The reason for a frame whose IP header could not be parsed (the worker may
    /// count such frames with the conntrack INVALID reasons).
    pub fn from_parse_error(e: ParseError) -> InvalidReason {
        match e {
            ParseError::BadExtHeader => InvalidReason::BadExtHeader,
            ParseError::TruncatedL4 => InvalidReason::Truncated,
            ParseError::BadTcpDataOffset => InvalidReason::TcpBadDataOffset,
            ParseError::BadUdpLength => InvalidReason::UdpBadLength,
            _ => InvalidReason::BadL3,
        }
    }
}

impl std::fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connection helper attached by a raw-table `CT --helper` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HelperKind {
    /// The FTP helper (`nf_conntrack_ftp`).
    Ftp,
}

/// What the raw table decided for a packet before conntrack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrackOpts {
    /// `CT --notrack` / `NOTRACK`: the packet is UNTRACKED; nothing is looked up or changed.
    pub notrack: bool,
    /// `CT --helper`: the helper to attach to an entry this packet creates.
    pub helper: Option<HelperKind>,
    /// [`ConnTable::prefetch`]'s result for this very packet, so the key is not hashed
    /// twice; 0: hash it here. (A hash of another packet would look up the wrong
    /// bucket: debug builds check it.)
    pub hash: u64,
    /// The device verified the packet's L4 checksum ([`crate::port::Mbuf::l4_csum_ok`]):
    /// skip the check, as Linux does for `CHECKSUM_UNNECESSARY`.
    pub l4_csum_ok: bool,
}

/// A reference to an entry slot, valid until the entry is removed (generation-checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryHandle {
    /// Slot index in the shard's slab.
    pub slot: u32,
    /// Generation of the slot when the handle was made.
    pub gen: u32,
}

/// The outcome of [`ConnTable::track`] for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Track {
    /// The state the ruleset matches on.
    pub state: CtState,
    /// The packet's direction on its entry (Original when there is no entry).
    pub dir: Direction,
    /// The entry's status bits after this packet (empty when there is no entry).
    pub status: CtStatus,
    /// The TCP state after this packet, for TCP entries.
    pub tcp_state: Option<TcpState>,
    /// Why the packet is INVALID (set only when `state` is Invalid).
    pub reason: Option<InvalidReason>,
    /// The entry (or, when `candidate`, the unconfirmed candidate) the packet belongs to.
    pub handle: Option<EntryHandle>,
    /// True when `handle` is an unconfirmed candidate that [`ConnTable::confirm`] must
    /// commit (accepted) or release (dropped).
    pub candidate: bool,
    /// The table was full and early drop freed nothing: Linux DROPS this packet inside
    /// conntrack (it never reaches the filter). The worker must drop it; `state` is New
    /// (what the packet would have been) and there is no handle.
    pub table_full_drop: bool,
}

impl Track {
    pub(crate) fn untracked() -> Track {
        Track {
            state: CtState::Untracked,
            dir: Direction::Original,
            status: CtStatus(0),
            tcp_state: None,
            reason: None,
            handle: None,
            candidate: false,
            table_full_drop: false,
        }
    }

    pub(crate) fn invalid(r: InvalidReason) -> Track {
        Track {
            state: CtState::Invalid,
            reason: Some(r),
            ..Track::untracked()
        }
    }
}

/// What [`ConnTable::confirm`] decided for a packet (`docs/CONNTRACK.md` §1.3 step 9).
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmResult {
    /// The packet may go out.
    Pass,
    /// The ruleset did not accept the packet (a candidate was released).
    NotAccepted,
    /// The insert failed (a TCP clash, or no room in the probe window): Linux drops it.
    InsertFailed,
    /// The table was full at step 5c (the packet is dropped by conntrack).
    TableFull,
    /// The connection's helper refused the packet (a partial FTP command, or its
    /// expectation could not be registered).
    HelperDrop,
}

impl ConfirmResult {
    /// True when the packet may go out.
    pub fn is_pass(self) -> bool {
        self == ConfirmResult::Pass
    }
}
