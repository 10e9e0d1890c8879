//! The SCTP tracker (`nf_conntrack_proto_sctp.c`, Linux 6.18): the chunk-driven state
//! machine, the verification-tag checks and the per-state timeouts. Pure functions on
//! [`SctpConn`], and its load/store on the table's entry (the state in the entry's
//! `tcp_state` byte, the vtags and flags in its TCP window words, unused for SCTP).
//! Multi-homing is not tracked (as in Linux: each path is its own entry).

use super::table::ConnTable;
use super::{Config, InvalidReason};

/// A connection's SCTP state, numbered as Linux's `enum sctp_conntrack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SctpState {
    /// Nothing yet (only while the first packet is processed).
    None = 0,
    /// INIT seen, or the association is closed.
    Closed,
    /// INIT-ACK seen in the reply direction.
    CookieWait,
    /// COOKIE-ECHO seen.
    CookieEchoed,
    /// COOKIE-ACK seen: the association is up.
    Established,
    /// SHUTDOWN seen in the original direction.
    ShutdownSent,
    /// SHUTDOWN seen in the reply direction.
    ShutdownRecd,
    /// SHUTDOWN-ACK seen.
    ShutdownAckSent,
    /// A HEARTBEAT started a new (secondary path) entry.
    HeartbeatSent,
}

impl SctpState {
    const ALL: [SctpState; 9] = [
        SctpState::None,
        SctpState::Closed,
        SctpState::CookieWait,
        SctpState::CookieEchoed,
        SctpState::Established,
        SctpState::ShutdownSent,
        SctpState::ShutdownRecd,
        SctpState::ShutdownAckSent,
        SctpState::HeartbeatSent,
    ];

    /// The state stored as a byte (an unknown byte reads as CLOSED).
    pub fn from_u8(v: u8) -> SctpState {
        Self::ALL
            .get(v as usize)
            .copied()
            .unwrap_or(SctpState::Closed)
    }

    /// The name `conntrack -L` prints (`sctp_conntrack_names`).
    pub fn name(self) -> &'static str {
        match self {
            SctpState::None => "NONE",
            SctpState::Closed => "CLOSED",
            SctpState::CookieWait => "COOKIE_WAIT",
            SctpState::CookieEchoed => "COOKIE_ECHOED",
            SctpState::Established => "ESTABLISHED",
            SctpState::ShutdownSent => "SHUTDOWN_SENT",
            SctpState::ShutdownRecd => "SHUTDOWN_RECD",
            SctpState::ShutdownAckSent => "SHUTDOWN_ACK_SENT",
            SctpState::HeartbeatSent => "HEARTBEAT_SENT",
        }
    }

    /// The state's timeout in seconds (`nf_conntrack_sctp_timeout_*`; NONE takes
    /// CLOSED's, as Linux's `timeouts[0]`).
    pub fn timeout(self, c: &Config) -> u32 {
        match self {
            SctpState::None | SctpState::Closed => c.sctp_timeout_closed,
            SctpState::CookieWait => c.sctp_timeout_cookie_wait,
            SctpState::CookieEchoed => c.sctp_timeout_cookie_echoed,
            SctpState::Established => c.sctp_timeout_established,
            SctpState::ShutdownSent => c.sctp_timeout_shutdown_sent,
            SctpState::ShutdownRecd => c.sctp_timeout_shutdown_recd,
            SctpState::ShutdownAckSent => c.sctp_timeout_shutdown_ack_sent,
            SctpState::HeartbeatSent => c.sctp_timeout_heartbeat_sent,
        }
    }
}

// Chunk types (RFC 9260 §3.2).
const DATA: u8 = 0;
const INIT: u8 = 1;
const INIT_ACK: u8 = 2;
const ABORT: u8 = 6;
const SHUTDOWN: u8 = 7;
const SHUTDOWN_ACK: u8 = 8;
const ERROR: u8 = 9;
const COOKIE_ECHO: u8 = 10;
const COOKIE_ACK: u8 = 11;
const SHUTDOWN_COMPLETE: u8 = 14;
const HEARTBEAT: u8 = 4;
const HEARTBEAT_ACK: u8 = 5;
/// The T bit of ABORT and SHUTDOWN-COMPLETE: the tag is the peer's.
const FLAG_T: u8 = 1;

/// Row of the transition table for a chunk type (None: DATA, SACK, ... keep the state).
fn chunk_row(ty: u8) -> Option<usize> {
    Some(match ty {
        INIT => 0,
        INIT_ACK => 1,
        ABORT => 2,
        SHUTDOWN => 3,
        SHUTDOWN_ACK => 4,
        ERROR => 5,
        COOKIE_ECHO => 6,
        COOKIE_ACK => 7,
        SHUTDOWN_COMPLETE => 8,
        HEARTBEAT => 9,
        HEARTBEAT_ACK => 10,
        _ => return None,
    })
}

const NO: u8 = 0;
const CL: u8 = 1;
const CW: u8 = 2;
const CE: u8 = 3;
const ES: u8 = 4;
const SS: u8 = 5;
const SR: u8 = 6;
const SA: u8 = 7;
const HS: u8 = 8;
/// "Invalid" in the table (Linux's sIV = SCTP_CONNTRACK_MAX).
const IV: u8 = 9;

/// `sctp_conntracks[dir][chunk][state]`: columns NONE, CLOSED, COOKIE_WAIT,
/// COOKIE_ECHOED, ESTABLISHED, SHUTDOWN_SENT, SHUTDOWN_RECD, SHUTDOWN_ACK_SENT,
/// HEARTBEAT_SENT; rows INIT, INIT_ACK, ABORT, SHUTDOWN, SHUTDOWN_ACK, ERROR,
/// COOKIE_ECHO, COOKIE_ACK, SHUTDOWN_COMPLETE, HEARTBEAT, HEARTBEAT_ACK.
#[rustfmt::skip]
const TABLE: [[[u8; 9]; 11]; 2] = [
    [
        [CL, CL, CW, CE, ES, CL, CL, SA, CW],
        [CL, CL, CW, CE, ES, SS, SR, SA, CL],
        [CL, CL, CL, CL, CL, CL, CL, CL, CL],
        [CL, CL, CW, CE, SS, SS, SR, SA, CL],
        [SA, CL, CW, CE, ES, SA, SA, SA, SA],
        [CL, CL, CW, CE, ES, SS, SR, SA, CL],
        [CL, CL, CE, CE, ES, SS, SR, SA, CL],
        [CL, CL, CW, ES, ES, SS, SR, SA, CL],
        [CL, CL, CW, CE, ES, SS, SR, CL, CL],
        [HS, CL, CW, CE, ES, SS, SR, SA, HS],
        [CL, CL, CW, CE, ES, SS, SR, SA, HS],
    ],
    [
        [IV, CL, CW, CE, ES, SS, SR, SA, IV],
        [IV, CW, CW, CE, ES, SS, SR, SA, IV],
        [IV, CL, CL, CL, CL, CL, CL, CL, IV],
        [IV, CL, CW, CE, SR, SS, SR, SA, IV],
        [IV, CL, CW, CE, ES, SA, SA, SA, IV],
        [IV, CL, CW, CL, ES, SS, SR, SA, IV],
        [IV, CL, CE, CE, ES, SS, SR, SA, IV],
        [IV, CL, CW, ES, ES, SS, SR, SA, IV],
        [IV, CL, CW, CE, ES, SS, SR, CL, IV],
        [IV, CL, CW, CE, ES, SS, SR, SA, HS],
        [IV, CL, CW, CE, ES, SS, SR, SA, ES],
    ],
];

/// `sctp_new_state`: the state after a chunk of type `ty` in direction `dir` (IV:
/// invalid).
fn new_state(dir: usize, cur: u8, ty: u8) -> u8 {
    match chunk_row(ty) {
        Some(r) => TABLE[dir][r][cur.min(HS) as usize],
        None => cur,
    }
}

/// The tracker's per-connection data (Linux's `struct ip_ct_sctp`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SctpConn {
    /// [`SctpState`] as a byte.
    pub state: u8,
    /// The verification tag each direction's packets carry.
    pub vtag: [u32; 2],
    /// An INIT was seen from that direction (collision handling).
    pub init: [bool; 2],
    /// A HEARTBEAT with an unknown vtag was let through (`SCTP_FLAG_HEARTBEAT_VTAG_FAILED`).
    pub hb_vtag_failed: bool,
    /// The direction of that HEARTBEAT.
    pub last_dir: u8,
}

/// One chunk header: type, flags, length; and the offset of its body in the packet.
#[derive(Clone, Copy)]
struct Chunk {
    ty: u8,
    flags: u8,
    len: u16,
    body: usize,
}

/// `for_each_sctp_chunk`: walks the chunks after the 12-byte common header while a
/// whole chunk header is readable (a cut-off last header ends the walk).
fn chunks(seg: &[u8]) -> impl Iterator<Item = Chunk> + '_ {
    let mut off = 12usize;
    std::iter::from_fn(move || {
        let h = seg.get(off..off + 4)?;
        let len = u16::from_be_bytes([h[2], h[3]]);
        let c = Chunk {
            ty: h[0],
            flags: h[1],
            len,
            body: off + 4,
        };
        off += (len as usize + 3) & !3;
        Some(c)
    })
}

/// The `init_tag` of an INIT / INIT-ACK chunk (the first word of its body).
fn init_tag(seg: &[u8], c: Chunk) -> Option<u32> {
    // The kernel reads the whole 16-byte init header.
    let b = seg.get(c.body..c.body + 16)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// `do_basic_checks`: a bitmap of the chunk types present (types 0–63; higher types
/// in bit 63 are only ever tested for absence of the named ones), or None when a
/// COOKIE-ECHO/COOKIE-ACK is not first, an INIT/INIT-ACK/SHUTDOWN-COMPLETE is not
/// alone, a chunk has length 0, or there is no chunk.
fn basic_checks(seg: &[u8]) -> Option<u64> {
    let mut map = 0u64;
    let mut alone = false;
    let mut count = 0;
    for c in chunks(seg) {
        if matches!(c.ty, INIT | INIT_ACK | SHUTDOWN_COMPLETE) {
            alone = true;
        }
        if (matches!(c.ty, COOKIE_ACK | COOKIE_ECHO) || alone) && count != 0 || c.len == 0 {
            return None;
        }
        map |= 1u64 << c.ty.min(63);
        count += 1;
    }
    (count != 0).then_some(map)
}

fn has(map: u64, ty: u8) -> bool {
    map & (1u64 << ty) != 0
}

/// What the tracker decided for an accepted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpVerdict {
    /// The state after the packet.
    pub state: SctpState,
    /// Refresh the timeout (false: an INIT retransmit on a closed entry, or a
    /// HEARTBEAT with another vtag, is let through without refreshing).
    pub refresh: bool,
    /// The packet moved the association to ESTABLISHED (set ASSURED).
    pub assured: bool,
}

/// `nf_conntrack_sctp_packet` after `sctp_error` (the header length and the CRC are
/// the caller's): runs the chunks of `seg` (the SCTP packet: common header and
/// chunks) from direction `dir` on `c`. `confirmed` is false for the first packet of
/// a new entry (`c` then starts as the default). As in Linux, `c` keeps what the
/// chunks before an invalid one changed.
pub fn sctp_packet(
    c: &mut SctpConn,
    seg: &[u8],
    dir: usize,
    confirmed: bool,
) -> Result<SctpVerdict, InvalidReason> {
    let Some(h) = seg.get(..12) else {
        return Err(InvalidReason::Truncated);
    };
    let vtag = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    let map = basic_checks(seg).ok_or(InvalidReason::SctpBadChunks)?;
    if !confirmed {
        // Out-of-the-blue packets with these chunks are discarded (RFC 9260 §8.4).
        if has(map, ABORT) || has(map, SHUTDOWN_COMPLETE) || has(map, COOKIE_ACK) {
            return Err(InvalidReason::SctpStateTable);
        }
        sctp_new(c, seg, vtag)?;
    }
    let tag_exempt = [
        INIT,
        SHUTDOWN_COMPLETE,
        COOKIE_ECHO,
        ABORT,
        SHUTDOWN_ACK,
        HEARTBEAT,
        HEARTBEAT_ACK,
    ];
    if !tag_exempt.iter().any(|&t| has(map, t)) && vtag != c.vtag[dir] {
        return Err(InvalidReason::SctpBadVtag);
    }
    let other = 1 - dir;
    let mut ignore = false;
    let mut old = NO;
    let mut new = NO;
    let mut assured = false;
    for ch in chunks(seg) {
        match ch.ty {
            INIT if vtag != 0 => return Err(InvalidReason::SctpBadVtag),
            ABORT | SHUTDOWN_COMPLETE => {
                let want = if ch.flags & FLAG_T != 0 {
                    c.vtag[other]
                } else {
                    c.vtag[dir]
                };
                if vtag != want {
                    return Err(InvalidReason::SctpBadVtag);
                }
            }
            COOKIE_ECHO if vtag != c.vtag[dir] => return Err(InvalidReason::SctpBadVtag),
            COOKIE_ACK => c.init = [false, false],
            HEARTBEAT | HEARTBEAT_ACK => {
                if c.vtag[dir] == 0 {
                    c.vtag[dir] = vtag;
                } else if vtag != c.vtag[dir] {
                    if has(map, DATA) || ignore {
                        return Err(InvalidReason::SctpBadVtag);
                    }
                    if ch.ty == HEARTBEAT {
                        c.hb_vtag_failed = true;
                        c.last_dir = dir as u8;
                        ignore = true;
                        continue;
                    }
                    // A HEARTBEAT-ACK answering the let-through HEARTBEAT: the
                    // association was restarted with new tags.
                    if !c.hb_vtag_failed || c.last_dir as usize == dir {
                        return Err(InvalidReason::SctpBadVtag);
                    }
                    c.hb_vtag_failed = false;
                    c.vtag[dir] = vtag;
                    c.vtag[other] = 0;
                } else if c.hb_vtag_failed {
                    c.hb_vtag_failed = false;
                }
            }
            _ => {}
        }
        old = c.state;
        new = new_state(dir, old, ch.ty);
        if new == IV {
            return Err(InvalidReason::SctpStateTable);
        }
        match ch.ty {
            INIT => {
                let tag = init_tag(seg, ch).ok_or(InvalidReason::Truncated)?;
                if c.init[dir] && c.init[other] {
                    c.init[other] = false;
                }
                c.init[dir] = true;
                c.vtag[other] = tag;
                // An INIT retransmit on a closed entry does not keep it alive.
                if new == CL && old == CL && confirmed {
                    ignore = true;
                }
            }
            INIT_ACK => {
                let tag = init_tag(seg, ch).ok_or(InvalidReason::Truncated)?;
                let v = c.vtag[other];
                if !c.init[other] && v != 0 && v != tag {
                    return Err(InvalidReason::SctpBadVtag);
                }
                if c.init[dir] && c.init[other] && v != tag {
                    return Err(InvalidReason::SctpBadVtag); // collision
                }
                c.vtag[other] = tag;
            }
            _ => {}
        }
        c.state = new;
        if old != new && new == ES {
            assured = true;
        }
    }
    let _ = old;
    Ok(SctpVerdict {
        state: SctpState::from_u8(new),
        refresh: !ignore,
        assured,
    })
}

/// `sctp_new`: the first packet's chunks must each be a valid first chunk; they set
/// the vtags the peers will use.
fn sctp_new(c: &mut SctpConn, seg: &[u8], vtag: u32) -> Result<(), InvalidReason> {
    *c = SctpConn::default();
    for ch in chunks(seg) {
        let st = new_state(0, NO, ch.ty);
        if st == NO || st == IV {
            // DATA, SACK or an unknown chunk cannot start an entry.
            return Err(InvalidReason::SctpStateTable);
        }
        match ch.ty {
            INIT => {
                if vtag != 0 {
                    return Err(InvalidReason::SctpBadVtag);
                }
                c.vtag[1] = init_tag(seg, ch).ok_or(InvalidReason::Truncated)?;
            }
            HEARTBEAT => c.vtag[0] = vtag,
            // Out of the blue (SHUTDOWN-ACK ...): the answer carries the same tag.
            _ => c.vtag[1] = vtag,
        }
        c.state = NO;
    }
    Ok(())
}

impl ConnTable {
    /// An SCTP entry's tracker data: the state in `tcp_state`, the vtags in the first
    /// window word of each direction, the flags in the second word of ORIGINAL's.
    pub(super) fn load_sctp(&self, slot: usize) -> SctpConn {
        let e = &self.entries[slot];
        let f = e.win[0][1];
        SctpConn {
            state: e.tcp_state,
            vtag: [e.win[0][0], e.win[1][0]],
            init: [f & 1 != 0, f & 2 != 0],
            hb_vtag_failed: f & 4 != 0,
            last_dir: ((f >> 3) & 1) as u8,
        }
    }

    pub(super) fn store_sctp(&mut self, slot: usize, c: &SctpConn) {
        let e = &mut self.entries[slot];
        e.tcp_state = c.state;
        e.win[0][0] = c.vtag[0];
        e.win[1][0] = c.vtag[1];
        e.win[0][1] = c.init[0] as u32
            | (c.init[1] as u32) << 1
            | (c.hb_vtag_failed as u32) << 2
            | ((c.last_dir & 1) as u32) << 3;
    }
}

/// CRC32c (Castagnoli, reflected 0x82F63B78), the SCTP checksum, of `parts` in order.
pub fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for p in parts {
        for &b in *p {
            crc = CRC_TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
        }
    }
    !crc
}

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// True when the SCTP packet `seg`'s CRC32c (stored little-endian at bytes 8..12,
/// computed with that field zero) is right.
pub fn crc_ok(seg: &[u8]) -> bool {
    let Some(stored) = seg.get(8..12) else {
        return false;
    };
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    crc32c(&[&seg[..8], &[0; 4], &seg[12..]]) == stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(crc32c(&[&[0u8; 32]]), 0x8A91_36AA);
        assert_eq!(crc32c(&[b"123456789"]), 0xE306_9283);
    }

    #[test]
    fn table_rows_are_as_linux() {
        // INIT from NONE closes (the entry waits for INIT-ACK in CLOSED), INIT-ACK in
        // reply opens COOKIE_WAIT, COOKIE-ECHO then COOKIE-ACK establish.
        assert_eq!(new_state(0, NO, INIT), CL);
        assert_eq!(new_state(1, CL, INIT_ACK), CW);
        assert_eq!(new_state(0, CW, COOKIE_ECHO), CE);
        assert_eq!(new_state(1, CE, COOKIE_ACK), ES);
        assert_eq!(new_state(0, ES, DATA), ES);
        assert_eq!(new_state(1, NO, INIT), IV);
        assert_eq!(new_state(1, HS, HEARTBEAT_ACK), ES);
    }
}
