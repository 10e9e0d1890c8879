//! The TCP state machine as data (Linux `nf_conntrack_proto_tcp.c`): the states, the
//! packet classes and directions, `tcp_conntracks` indexed by them, and the timeout of
//! each state (`docs/CONNTRACK.md` §2.2, §2.6). [`super::tcp`] runs it.

use super::Config;

/// TCP conntrack state, as `conntrack -L` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// No state yet (`TCP_CONNTRACK_NONE`).
    None = 0,
    /// SYN seen.
    SynSent = 1,
    /// SYN/ACK seen.
    SynRecv = 2,
    /// Handshake complete (or picked up).
    Established = 3,
    /// FIN seen.
    FinWait = 4,
    /// FIN acknowledged.
    CloseWait = 5,
    /// FIN seen in both directions.
    LastAck = 6,
    /// Closed, lingering.
    TimeWait = 7,
    /// Reset.
    Close = 8,
    /// Simultaneous open (SYN seen in both directions).
    SynSent2 = 9,
}

impl TcpState {
    /// Every state, in kernel number order (the enum's discriminants).
    const ALL: [TcpState; 10] = {
        use TcpState::*;
        [
            None,
            SynSent,
            SynRecv,
            Established,
            FinWait,
            CloseWait,
            LastAck,
            TimeWait,
            Close,
            SynSent2,
        ]
    };

    /// The state for a kernel state number (0..=9); any other number reads as NONE.
    pub(crate) fn from_u8(s: u8) -> TcpState {
        Self::ALL
            .get(usize::from(s))
            .copied()
            .unwrap_or(TcpState::None)
    }

    /// The name `conntrack -L` prints.
    pub fn as_str(&self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::SynSent2 => "SYN_SENT2",
        }
    }
}

impl std::fmt::Display for TcpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<TcpState> for usize {
    fn from(s: TcpState) -> usize {
        s as usize
    }
}

/// The packet class (`get_conntrack_index`), a row of [`TCP_CONNTRACKS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Class {
    /// SYN without ACK (`TCP_SYN_SET`).
    Syn = 0,
    /// SYN with ACK (`TCP_SYNACK_SET`).
    SynAck = 1,
    /// FIN, no SYN or RST (`TCP_FIN_SET`).
    Fin = 2,
    /// ACK only (`TCP_ACK_SET`).
    Ack = 3,
    /// RST, whatever else is set (`TCP_RST_SET`).
    Rst = 4,
    /// None of these (`TCP_NONE_SET`).
    None = 5,
}

impl Class {
    /// Every class, in number order.
    const ALL: [Class; 6] = [
        Class::Syn,
        Class::SynAck,
        Class::Fin,
        Class::Ack,
        Class::Rst,
        Class::None,
    ];

    /// The class of a packet class number, as the entry stores it (`last_index`); any
    /// other number reads as the none class.
    pub(crate) fn from_u8(i: u8) -> Class {
        Self::ALL
            .get(usize::from(i))
            .copied()
            .unwrap_or(Class::None)
    }
}

impl From<Class> for usize {
    fn from(c: Class) -> usize {
        c as usize
    }
}

// Packet class numbers, as the entry stores them (`last_index`).
pub(crate) const TCP_SYN_SET: u8 = Class::Syn as u8;
pub(crate) const TCP_SYNACK_SET: u8 = Class::SynAck as u8;
pub(crate) const TCP_FIN_SET: u8 = Class::Fin as u8;
pub(crate) const TCP_ACK_SET: u8 = Class::Ack as u8;
pub(crate) const TCP_RST_SET: u8 = Class::Rst as u8;
pub(crate) const TCP_NONE_SET: u8 = Class::None as u8;

/// The direction of a packet, the outer index of [`TCP_CONNTRACKS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Dir {
    /// From the side that opened the connection (`IP_CT_DIR_ORIGINAL`).
    Original = 0,
    /// From the other side (`IP_CT_DIR_REPLY`).
    Reply = 1,
}

impl Dir {
    /// The direction of a direction number (0 original, 1 reply).
    pub(crate) fn from_index(d: usize) -> Dir {
        if d == 0 {
            Dir::Original
        } else {
            Dir::Reply
        }
    }
}

impl From<Dir> for usize {
    fn from(d: Dir) -> usize {
        d as usize
    }
}

pub(crate) const DIR_ORIGINAL: usize = Dir::Original as usize;
pub(crate) const DIR_REPLY: usize = Dir::Reply as usize;

/// A cell of [`TCP_CONNTRACKS`]: the next state, or one of the two verdicts that are
/// no state (`TCP_CONNTRACK_MAX` = invalid, `TCP_CONNTRACK_IGNORE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cell {
    /// Move to this state (it may be the same one).
    To(TcpState),
    /// The packet is INVALID for this state (`sIV`).
    Invalid,
    /// Let the packet through without a state, window or timeout change (`sIG`).
    Ignore,
}

impl Cell {
    /// The kernel number of the cell: the state's (0..=9), 10 invalid, 11 ignore.
    pub(crate) const fn as_u8(self) -> u8 {
        match self {
            Cell::To(s) => s as u8,
            Cell::Invalid => SIV,
            Cell::Ignore => SIG,
        }
    }
}

/// An array indexed by an enum (`Dir`, `Class`, `TcpState`) rather than a number.
pub(crate) struct By<K, T, const N: usize>([T; N], std::marker::PhantomData<K>);

impl<K, T, const N: usize> By<K, T, N> {
    const fn new(a: [T; N]) -> Self {
        By(a, std::marker::PhantomData)
    }

    /// The cells in index order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
}

impl<K: Into<usize>, T, const N: usize> std::ops::Index<K> for By<K, T, N> {
    type Output = T;
    fn index(&self, k: K) -> &T {
        &self.0[k.into()]
    }
}

// Kernel state numbers (enum tcp_conntrack) as the entry stores them, with the short
// names of the kernel source, so the logic reads like it. The logic compares these
// numbers (upper case); the table holds cells (lower case, the kernel's own spelling).
pub(crate) const SNO: u8 = TcpState::None as u8;
pub(crate) const SSS: u8 = TcpState::SynSent as u8;
pub(crate) const SSR: u8 = TcpState::SynRecv as u8;
pub(crate) const SES: u8 = TcpState::Established as u8;
pub(crate) const SFW: u8 = TcpState::FinWait as u8;
pub(crate) const SCW: u8 = TcpState::CloseWait as u8;
pub(crate) const SLA: u8 = TcpState::LastAck as u8;
pub(crate) const STW: u8 = TcpState::TimeWait as u8;
pub(crate) const SCL: u8 = TcpState::Close as u8;
pub(crate) const SS2: u8 = TcpState::SynSent2 as u8;
/// `TCP_CONNTRACK_MAX`: invalid.
pub(crate) const SIV: u8 = 10;
/// `TCP_CONNTRACK_IGNORE`.
pub(crate) const SIG: u8 = 11;

#[allow(non_upper_case_globals)]
mod cells {
    use super::{Cell, TcpState};
    pub(super) const sSS: Cell = Cell::To(TcpState::SynSent);
    pub(super) const sSR: Cell = Cell::To(TcpState::SynRecv);
    pub(super) const sES: Cell = Cell::To(TcpState::Established);
    pub(super) const sFW: Cell = Cell::To(TcpState::FinWait);
    pub(super) const sCW: Cell = Cell::To(TcpState::CloseWait);
    pub(super) const sLA: Cell = Cell::To(TcpState::LastAck);
    pub(super) const sTW: Cell = Cell::To(TcpState::TimeWait);
    pub(super) const sCL: Cell = Cell::To(TcpState::Close);
    pub(super) const sS2: Cell = Cell::To(TcpState::SynSent2);
    pub(super) const sIV: Cell = Cell::Invalid;
    pub(super) const sIG: Cell = Cell::Ignore;
}
use cells::*;

type Row = By<TcpState, Cell, 10>;
const fn row(cells: [Cell; 10]) -> Row {
    By::new(cells)
}

/// `tcp_conntracks[dir][class][old state]` (`docs/CONNTRACK.md` §2.2), cell for cell,
/// indexed by the enums: `TCP_CONNTRACKS[Dir::Original][Class::Syn][TcpState::TimeWait]`.
/// Under each row, why its cells are what they are.
#[rustfmt::skip]
pub(crate) const TCP_CONNTRACKS: By<Dir, By<Class, Row, 6>, 2> = By::new([
    // ORIGINAL
    By::new([
    /*                sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2 */
    /* syn    */ row([sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2]),
    // A SYN opens (from nothing), or is a retransmission (SYN_SENT, SYN_SENT2 stay).
    // After a close (TIME_WAIT, CLOSE) it opens the connection again. In SYN_RECV and the
    // open and closing states it may be a new connection on a tuple whose old one only
    // this side saw close: ignore it and remember it, so a SYN/ACK answering it can
    // resynchronise.
    /* synack */ row([sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR]),
    // The opener never sends a SYN/ACK, except in a simultaneous open: SYN_SENT2 (and a
    // late retransmission in SYN_RECV) go to SYN_RECV. Anything else is invalid.
    /* fin    */ row([sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV]),
    // A FIN starts the close (SYN_RECV, ESTABLISHED to FIN_WAIT); after the other side's
    // FIN it is the second FIN (FIN_WAIT, CLOSE_WAIT to LAST_ACK); later ones are
    // retransmissions. Before any handshake reply it is invalid.
    /* ack    */ row([sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV]),
    // An ACK from nothing is a connection picked up mid-stream (ESTABLISHED, with loose
    // on); from SYN_SENT it cannot be, we have sent only a SYN. It completes the
    // handshake (SYN_RECV), acknowledges the first FIN (FIN_WAIT to CLOSE_WAIT) or the
    // last one (LAST_ACK to TIME_WAIT), and changes nothing later.
    /* rst    */ row([sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL]),
    // A reset closes whatever there was; with nothing there is nothing to reset.
    /* none   */ row([sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV]),
    // A segment without SYN, FIN, ACK or RST is never valid.
    ]),
    // REPLY
    By::new([
    /*                sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2 */
    /* syn    */ row([sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2]),
    // A SYN from the answering side is a simultaneous open (SYN_SENT to SYN_SENT2, and
    // its retransmission); after TIME_WAIT it reopens the connection the other way
    // round (RFC 1122). Anywhere else it is invalid.
    /* synack */ row([sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR]),
    // The SYN/ACK answers the SYN (SYN_SENT, SYN_SENT2 to SYN_RECV). Later it may be a
    // retransmission, or the answer to a SYN we ignored: ignore it (the resync path
    // looks at it). Without a SYN first it is invalid.
    /* fin    */ row([sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV]),
    // As in the original direction: the first FIN, the second, retransmissions.
    /* ack    */ row([sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG]),
    // An ACK to our bare SYN may belong to an older connection on the tuple: ignore it
    // (SYN_SENT, SYN_SENT2). In SYN_RECV it may be the final ACK of a simultaneous open
    // and changes nothing yet; later it acknowledges FINs as in the original direction.
    /* rst    */ row([sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL]),
    // A reset closes whatever there was.
    /* none   */ row([sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV]),
    // Never valid.
    ]),
]);

/// The next state for a direction number, class number and stored state number (what
/// the entry holds), as the kernel number of the [`TCP_CONNTRACKS`] cell.
#[inline]
pub(crate) fn next_state(dir: usize, class: u8, old: u8) -> u8 {
    TCP_CONNTRACKS[Dir::from_index(dir)][Class::from_u8(class)][TcpState::from_u8(old)].as_u8()
}

/// The timeout of each state (`tcp_timeouts[]`), in seconds. NONE has none of its own;
/// it reads CLOSE's, as does any number that is not a state.
const TIMEOUTS: By<TcpState, fn(&Config) -> u32, 10> = By::new([
    |c| c.tcp_timeout_close, // NONE
    |c| c.tcp_timeout_syn_sent,
    |c| c.tcp_timeout_syn_recv,
    |c| c.tcp_timeout_established,
    |c| c.tcp_timeout_fin_wait,
    |c| c.tcp_timeout_close_wait,
    |c| c.tcp_timeout_last_ack,
    |c| c.tcp_timeout_time_wait,
    |c| c.tcp_timeout_close,
    |c| c.tcp_timeout_syn_sent2,
]);

pub(crate) fn timeout_of(cfg: &Config, state: u8) -> u32 {
    TIMEOUTS[TcpState::from_u8(state)](cfg)
}
