//! TCP tracking, a transcription of Linux `net/netfilter/nf_conntrack_proto_tcp.c`
//! (`tcp_conntracks`, `tcp_new`, `nf_conntrack_tcp_packet`, `tcp_in_window`,
//! `nf_tcp_handle_invalid`), see `docs/CONNTRACK.md` §2. Names follow the kernel's.

use super::{Config, CtStatus, InvalidReason};
use crate::packet::{tcp_flags as F, Tcp, TcpOptions};

pub(crate) use super::tcp_states::*;

// Per-direction flags (IP_CT_TCP_FLAG_*).
pub(crate) const F_WINDOW_SCALE: u8 = 0x01;
pub(crate) const F_SACK_PERM: u8 = 0x02;
pub(crate) const F_CLOSE_INIT: u8 = 0x04;
pub(crate) const F_BE_LIBERAL: u8 = 0x08;
pub(crate) const F_DATA_UNACK: u8 = 0x10;
pub(crate) const F_MAXACK_SET: u8 = 0x20;
// `last_flags` only.
pub(crate) const F_EXP_CHALLENGE_ACK: u8 = 0x40;
pub(crate) const F_SIMULTANEOUS_OPEN: u8 = 0x80;

/// Most window scale conntrack accepts.
const TCP_MAX_WSCALE: u8 = 14;
/// `MAXACKWINCONST`.
const MAXACKWINCONST: u32 = 66000;

/// Per-direction window state (`struct ip_ct_tcp_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Seen {
    pub end: u32,
    pub maxend: u32,
    pub maxwin: u32,
    pub maxack: u32,
    pub scale: u8,
    pub flags: u8,
}

/// The whole TCP state of a connection (`struct ip_ct_tcp`), unpacked from the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TcpConn {
    pub state: u8,
    pub seen: [Seen; 2],
    pub last_index: u8,
    pub last_dir: u8,
    pub last_flags: u8,
    pub last_wscale: u8,
    pub retrans: u8,
    pub last_seq: u32,
    pub last_ack: u32,
    pub last_end: u32,
    pub last_win: u16,
}

/// The TCP fields of one packet that tracking needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seg {
    pub seq: u32,
    pub ack: u32,
    /// seq + payload + SYN + FIN.
    pub end: u32,
    pub win: u16,
    pub flags: u8,
    pub index: u8,
    /// TCP header length (options present when > 20).
    pub hdr_len: u8,
    pub opts: TcpOptions,
}

impl Seg {
    pub(crate) fn from_tcp(t: &Tcp) -> Seg {
        let f = t.flags;
        let end = t
            .seq
            .wrapping_add(t.payload_len as u32)
            .wrapping_add((f & F::SYN != 0) as u32)
            .wrapping_add((f & F::FIN != 0) as u32);
        Seg {
            seq: t.seq,
            ack: t.ack,
            end,
            win: t.window,
            flags: f,
            index: conntrack_index(f),
            hdr_len: t.hdr_len,
            opts: t.options,
        }
    }
    fn syn(&self) -> bool {
        self.flags & F::SYN != 0
    }
    fn ack_flag(&self) -> bool {
        self.flags & F::ACK != 0
    }
    fn rst(&self) -> bool {
        self.flags & F::RST != 0
    }
}

/// `get_conntrack_index`: the packet class.
pub(crate) fn conntrack_index(f: u8) -> u8 {
    if f & F::RST != 0 {
        TCP_RST_SET
    } else if f & F::SYN != 0 {
        if f & F::ACK != 0 {
            TCP_SYNACK_SET
        } else {
            TCP_SYN_SET
        }
    } else if f & F::FIN != 0 {
        TCP_FIN_SET
    } else if f & F::ACK != 0 {
        TCP_ACK_SET
    } else {
        TCP_NONE_SET
    }
}

/// `tcp_valid_flags`: the allowed combinations once PSH, ECE and CWR are removed.
pub(crate) fn valid_flags(f: u8) -> bool {
    let f = f & !(F::ECE | F::CWR | F::PSH);
    matches!(
        f,
        x if x == F::SYN
            || x == F::SYN | F::URG
            || x == F::SYN | F::ACK
            || x == F::RST
            || x == F::RST | F::ACK
            || x == F::FIN | F::ACK
            || x == F::FIN | F::ACK | F::URG
            || x == F::ACK
            || x == F::ACK | F::URG
    )
}

#[inline]
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[inline]
fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// What the TCP tracker decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TcpAction {
    /// Accepted. `timeout` in seconds; `refresh` false = keep the current deadline.
    Accept {
        timeout: u32,
        refresh: bool,
        assured: bool,
    },
    /// Accepted, but the entry must be deleted now (RST before any reply).
    Kill,
    /// Accepted without any state or timeout change.
    Ignore,
    /// INVALID; `shrink` = cut the lifetime to the UNACK timeout (`docs/CONNTRACK.md` §2.6).
    Invalid { reason: InvalidReason, shrink: bool },
    /// Reopen: kill the entry and look the packet up again (it becomes NEW).
    Reopen,
}

enum Win {
    Accept,
    Ignore,
    Invalid(InvalidReason),
}

/// `tcp_options`: parse window scale and SACK-permitted into `s` (nothing when the
/// header has no options, as in the kernel).
fn tcp_options(s: &mut Seen, seg: &Seg) {
    if seg.hdr_len <= 20 {
        return;
    }
    s.scale = 0;
    s.flags &= F_BE_LIBERAL;
    if seg.opts.sack_perm {
        s.flags |= F_SACK_PERM;
    }
    if let Some(ws) = seg.opts.wscale {
        s.scale = ws.min(TCP_MAX_WSCALE);
        s.flags |= F_WINDOW_SCALE;
    }
}

/// `tcp_sack`: the highest right edge among the SACK blocks (folded from the ACK
/// number by the parser), or `sack` itself.
fn tcp_sack(seg: &Seg, sack: u32) -> u32 {
    seg.opts.sack_right.unwrap_or(sack)
}

fn state_reset(s: &mut Seen) {
    s.end = 0;
    s.maxend = 0;
    s.maxwin = 0;
    s.maxack = 0;
    s.scale = 0;
    s.flags &= F_BE_LIBERAL;
}

/// `tcp_init_sender`.
fn init_sender(s: &mut Seen, r: &mut Seen, seg: &Seg, end: u32, win: u32) {
    s.end = end;
    s.maxend = end;
    s.maxwin = if win == 0 { 1 } else { win };
    tcp_options(s, seg);
    if !(s.flags & F_WINDOW_SCALE != 0 && r.flags & F_WINDOW_SCALE != 0) {
        s.scale = 0;
        r.scale = 0;
    }
}

/// `tcp_new`: the TCP state of a candidate entry, or why it cannot be created (`docs/CONNTRACK.md` §2.1 step 4).
pub(crate) fn tcp_new(seg: &Seg, cfg: &Config) -> Result<TcpConn, InvalidReason> {
    let new_state = next_state(DIR_ORIGINAL, seg.index, SNO);
    if new_state >= SIV {
        return Err(InvalidReason::TcpInvalidFirst);
    }
    let mut c = TcpConn::default();
    let s0 = &mut c.seen[0];
    if new_state == SSS {
        s0.end = seg.end;
        s0.maxwin = (seg.win as u32).max(1);
        s0.maxend = s0.end;
        tcp_options(s0, seg);
    } else if !cfg.tcp_loose {
        return Err(InvalidReason::TcpInvalidFirst);
    } else {
        s0.end = seg.end;
        s0.maxwin = (seg.win as u32).max(1);
        s0.maxend = s0.end.wrapping_add(s0.maxwin);
        c.seen[0].flags = F_SACK_PERM | F_BE_LIBERAL;
        c.seen[1].flags = F_SACK_PERM | F_BE_LIBERAL;
    }
    c.last_index = TCP_NONE_SET;
    Ok(c)
}

/// Inputs about the entry that are not part of the TCP state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryCtx {
    /// Status bits before this packet.
    pub status: u8,
    /// Nanoseconds left before the entry expires (0 for a candidate).
    pub remaining_ns: u64,
}

/// `nf_conntrack_tcp_packet` after `tcp_error`/`tcp_new`: state table, overrides,
/// window check and commit (`docs/CONNTRACK.md` §2.3). `dir` is 0 for ORIGINAL, 1 for REPLY.
///
/// The branches deliberately keep the shape of the kernel's `switch (new_state)` and its
/// `break`/`goto in_window` cases, so they can be compared side by side.
#[allow(clippy::collapsible_match, clippy::if_same_then_else)]
pub(crate) fn tcp_packet(
    c: &mut TcpConn,
    dir: usize,
    seg: &Seg,
    ctx: EntryCtx,
    cfg: &Config,
) -> TcpAction {
    let status = ctx.status;
    let mut old_state = c.state;
    let index = seg.index;
    let mut new_state = next_state(dir, index, old_state);
    let mut skip_window = false;

    let mut ignore_path = new_state == SIG;
    if new_state == SSS && old_state >= STW {
        if ((c.seen[dir].flags | c.seen[1 - dir].flags) & F_CLOSE_INIT != 0)
            || (c.last_dir as usize == dir && c.last_index == TCP_RST_SET)
        {
            return TcpAction::Reopen;
        }
        ignore_path = true;
    }
    if ignore_path {
        if index == TCP_SYNACK_SET
            && c.last_index == TCP_SYN_SET
            && c.last_dir as usize != dir
            && seg.ack == c.last_end
        {
            // Resync: this SYN/ACK answers a SYN we ignored.
            old_state = SSS;
            new_state = SSR;
            let ld = c.last_dir as usize;
            c.seen[ld].end = c.last_end;
            c.seen[ld].maxend = c.last_end;
            c.seen[ld].maxwin = if c.last_win == 0 {
                1
            } else {
                c.last_win as u32
            };
            c.seen[ld].scale = c.last_wscale;
            c.last_flags &= !F_EXP_CHALLENGE_ACK;
            // Only the window-scale and SACK bits are meaningful per direction.
            c.seen[ld].flags = c.last_flags & (F_WINDOW_SCALE | F_SACK_PERM);
            state_reset(&mut c.seen[dir]);
        } else {
            c.last_index = index;
            c.last_dir = dir as u8;
            c.last_seq = seg.seq;
            c.last_end = seg.end;
            c.last_win = seg.win;
            if index == TCP_SYN_SET && dir == DIR_ORIGINAL {
                let mut seen = Seen::default();
                tcp_options(&mut seen, seg);
                // SIMULTANEOUS_OPEN lives in last_flags too; the kernel overwrites it here.
                c.last_flags = 0;
                c.last_wscale = 0;
                if seen.flags & F_WINDOW_SCALE != 0 {
                    c.last_flags |= F_WINDOW_SCALE;
                    c.last_wscale = seen.scale;
                }
                if seen.flags & F_SACK_PERM != 0 {
                    c.last_flags |= F_SACK_PERM;
                }
                if old_state == SLA {
                    c.last_flags |= F_EXP_CHALLENGE_ACK;
                }
            }
            if old_state == SSS && index == TCP_ACK_SET && dir == DIR_REPLY {
                c.last_ack = seg.ack;
            }
            return TcpAction::Ignore;
        }
    } else {
        match new_state {
            SIV => {
                return TcpAction::Invalid {
                    reason: InvalidReason::TcpStateTable,
                    shrink: false,
                }
            }
            STW => {
                if old_state == SLA
                    && index == TCP_ACK_SET
                    && c.last_dir as usize != dir
                    && c.last_index == TCP_SYN_SET
                    && c.last_flags & F_EXP_CHALLENGE_ACK != 0
                {
                    // RFC 5961 challenge ACK: accept, keep LAST_ACK.
                    c.last_flags &= !F_EXP_CHALLENGE_ACK;
                    return TcpAction::Ignore;
                }
            }
            SS2 => c.last_flags |= F_SIMULTANEOUS_OPEN,
            SSR => {
                if dir == DIR_REPLY
                    && index == TCP_ACK_SET
                    && c.last_flags & F_SIMULTANEOUS_OPEN != 0
                {
                    new_state = SES;
                }
            }
            SCL if index == TCP_RST_SET => {
                if matches!(old_state, SFW | SCW | SLA | STW | SCL) {
                    // tcp_can_early_drop(): no checks in closing states.
                    skip_window = true;
                } else {
                    let mut brk = false;
                    let peer = c.seen[1 - dir];
                    if peer.flags & F_MAXACK_SET != 0 && c.last_index != TCP_SYN_SET {
                        let seq = seg.seq;
                        let established = old_state == SES && status & CtStatus::ASSURED != 0;
                        if seq == 0 && !established {
                            brk = true;
                        } else if before(seq, peer.maxack) && !cfg.tcp_ignore_invalid_rst {
                            return TcpAction::Invalid {
                                reason: InvalidReason::TcpInvalidRst,
                                shrink: false,
                            };
                        } else if !established || seq == peer.maxack {
                            brk = true;
                        } else if c.last_index == TCP_ACK_SET
                            && c.last_dir as usize == dir
                            && seq == c.last_end
                        {
                            brk = true;
                        } else {
                            // In window but not exact: keep the state for a challenge ACK.
                            new_state = old_state;
                        }
                    }
                    if !brk {
                        if ((status & CtStatus::SEEN_REPLY != 0 && c.last_index == TCP_SYN_SET)
                            || (status & CtStatus::ASSURED == 0 && c.last_index == TCP_ACK_SET))
                            && seg.ack == c.last_end
                        {
                            skip_window = true;
                        } else if old_state == SSS
                            && c.last_index == TCP_ACK_SET
                            && c.last_dir as usize == DIR_REPLY
                            && seg.seq == c.last_ack
                        {
                            skip_window = true;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    if !skip_window {
        match in_window(c, dir, index, seg, cfg) {
            Win::Accept => {}
            Win::Ignore => return TcpAction::Ignore,
            Win::Invalid(reason) => {
                let shrink = handle_invalid(c, dir, index, ctx);
                return TcpAction::Invalid { reason, shrink };
            }
        }
    }

    // in_window: commit.
    c.last_index = index;
    c.last_dir = dir as u8;
    c.state = new_state;
    if old_state != new_state && new_state == SFW {
        c.seen[dir].flags |= F_CLOSE_INIT;
    }

    let t_new = timeout_of(cfg, new_state);
    let mut timeout =
        if c.retrans as u32 >= cfg.tcp_max_retrans && t_new > cfg.tcp_timeout_max_retrans {
            cfg.tcp_timeout_max_retrans
        } else if index == TCP_RST_SET {
            cfg.tcp_timeout_close
        } else if (c.seen[0].flags | c.seen[1].flags) & F_DATA_UNACK != 0
            && t_new > cfg.tcp_timeout_unacknowledged
        {
            cfg.tcp_timeout_unacknowledged
        } else if c.last_win == 0 && t_new > cfg.tcp_timeout_max_retrans {
            cfg.tcp_timeout_max_retrans
        } else {
            t_new
        };

    let mut assured = false;
    if status & CtStatus::SEEN_REPLY == 0 {
        if seg.rst() {
            return TcpAction::Kill;
        }
        if index == TCP_SYN_SET && old_state == SSS {
            return TcpAction::Accept {
                timeout,
                refresh: false,
                assured: false,
            };
        }
        if new_state == SES && timeout > cfg.tcp_timeout_unacknowledged {
            timeout = cfg.tcp_timeout_unacknowledged;
        }
    } else if status & CtStatus::ASSURED == 0
        && (old_state == SSR || old_state == SES)
        && new_state == SES
    {
        assured = true;
    }
    TcpAction::Accept {
        timeout,
        refresh: true,
        assured,
    }
}

/// `nf_tcp_handle_invalid`: returns true when the lifetime must be cut to UNACK.
fn handle_invalid(c: &mut TcpConn, dir: usize, index: u8, ctx: EntryCtx) -> bool {
    if ctx.status & CtStatus::ASSURED == 0 {
        return false;
    }
    if index != TCP_RST_SET && index != TCP_FIN_SET {
        return false;
    }
    if c.last_dir as usize != dir && (c.last_index == TCP_FIN_SET || c.last_index == TCP_RST_SET) {
        // The caller compares with the UNACK timeout (300 s by default).
        ctx.remaining_ns >= 120 * super::NS
    } else {
        c.last_index = index;
        c.last_dir = dir as u8;
        false
    }
}

/// `tcp_in_window` (`docs/CONNTRACK.md` §2.4).
fn in_window(c: &mut TcpConn, dir: usize, index: u8, seg: &Seg, cfg: &Config) -> Win {
    let state = c.state;
    let [s0, s1] = &mut c.seen;
    let (sender, receiver) = if dir == DIR_ORIGINAL {
        (s0, s1)
    } else {
        (s1, s0)
    };
    let mut seq = seg.seq;
    let mut ack = seg.ack;
    let mut sack = ack;
    let win_raw = seg.win;
    let mut win = win_raw as u32;
    let mut end = seg.end;

    if receiver.flags & F_SACK_PERM != 0 {
        sack = tcp_sack(seg, sack);
    }

    if sender.maxwin == 0 {
        if seg.syn() {
            init_sender(sender, receiver, seg, end, win);
            if !seg.ack_flag() {
                return Win::Accept; // simultaneous open
            }
        } else {
            sender.end = end;
            let swin = win << sender.scale;
            sender.maxwin = if swin == 0 { 1 } else { swin };
            sender.maxend = end.wrapping_add(sender.maxwin);
            if receiver.maxwin == 0 {
                receiver.end = sack;
                receiver.maxend = sack;
            } else if sack == receiver.end.wrapping_add(1) {
                receiver.end = receiver.end.wrapping_add(1);
            }
        }
    } else if seg.syn() && after(end, sender.end) && (state == SSS || state == SSR) {
        init_sender(sender, receiver, seg, end, win);
        if dir == DIR_REPLY && !seg.ack_flag() {
            return Win::Accept;
        }
    }

    if !seg.ack_flag() || (seg.rst() && ack == 0) {
        ack = receiver.end;
        sack = receiver.end;
    }

    if seg.rst() && seq == 0 && state == SSS {
        seq = sender.end;
        end = sender.end;
    }

    let liberal = sender.flags & F_BE_LIBERAL != 0 || cfg.tcp_be_liberal;
    let fail = |w: Win| if liberal { Win::Accept } else { w };
    let maxackwin = sender.maxwin.max(MAXACKWINCONST);

    if !before(seq, sender.maxend.wrapping_add(1)) {
        let overshot = end.wrapping_sub(sender.maxend).wrapping_add(1);
        let ack_ok = after(sack, receiver.end.wrapping_sub(maxackwin).wrapping_sub(1));
        let in_recv_win = receiver.maxwin != 0
            && after(
                end,
                sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1),
            );
        if in_recv_win
            && ack_ok
            && overshot <= receiver.maxwin
            && before(sack, receiver.end.wrapping_add(1))
        {
            sender.end = end;
            sender.flags |= F_DATA_UNACK;
            return fail(Win::Ignore);
        }
        return fail(Win::Invalid(InvalidReason::TcpWindowSeq));
    }
    if !before(sack, receiver.end.wrapping_add(1)) {
        return fail(Win::Invalid(InvalidReason::TcpWindowAck));
    }
    let in_recv_win = receiver.maxwin == 0
        || after(
            end,
            sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1),
        );
    if !in_recv_win {
        return fail(Win::Ignore);
    }
    if !after(sack, receiver.end.wrapping_sub(maxackwin).wrapping_sub(1)) {
        return fail(Win::Ignore);
    }

    if !seg.syn() {
        win <<= sender.scale;
    }
    let swin = win.wrapping_add(sack.wrapping_sub(ack));
    if sender.maxwin < swin {
        sender.maxwin = swin;
    }
    if after(end, sender.end) {
        sender.end = end;
        sender.flags |= F_DATA_UNACK;
    }
    if seg.ack_flag() {
        if sender.flags & F_MAXACK_SET == 0 {
            sender.maxack = ack;
            sender.flags |= F_MAXACK_SET;
        } else if after(ack, sender.maxack) {
            sender.maxack = ack;
        }
    }
    if receiver.maxwin != 0 && after(end, sender.maxend) {
        receiver.maxwin = receiver
            .maxwin
            .wrapping_add(end.wrapping_sub(sender.maxend));
    }
    if after(sack.wrapping_add(win), receiver.maxend.wrapping_sub(1)) {
        receiver.maxend = sack.wrapping_add(win);
        if win == 0 {
            receiver.maxend = receiver.maxend.wrapping_add(1);
        }
    }
    if ack == receiver.end {
        receiver.flags &= !F_DATA_UNACK;
    }

    if index == TCP_ACK_SET {
        if c.last_dir as usize == dir
            && c.last_seq == seq
            && c.last_ack == ack
            && c.last_end == end
            && c.last_win == win_raw
        {
            c.retrans = c.retrans.wrapping_add(1);
        } else {
            c.last_dir = dir as u8;
            c.last_seq = seq;
            c.last_ack = ack;
            c.last_end = end;
            c.last_win = win_raw;
            c.retrans = 0;
        }
    }
    Win::Accept
}
