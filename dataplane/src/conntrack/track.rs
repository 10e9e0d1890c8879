//! The per-packet procedure (`docs/CONNTRACK.md` §1.3): classify, look up, create a
//! candidate, run the protocol tracker, and confirm or release the candidate after the
//! ruleset. The storage it works on is in [`super::table`].

use super::expect::Expectation;
use super::helper::ftp::FtpSeq;
use super::key::FlowKey;
use super::nat::{range_flags, NatRange, NatRequest};
use super::sctp::{self, SctpConn};
use super::table::{
    fold, Aux, Cold, ConnTable, Entry, M_HELPER_FTP, M_NAT, M_ORIG_IS_A, M_PENDING, M_USED, M_V6,
};
use super::tcp::{self, EntryCtx, Seg, TcpAction, TcpState};
use super::{
    ConfirmResult, CtCounter, CtState, CtStatus, Direction, EntryHandle, HelperKind, InvalidReason,
    Nanos, Track, TrackOpts, NS,
};
use crate::packet::{checksum, proto, Addr, Family, ParseError, Parsed, Udp, L4};

impl ConnTable {
    // ----- the per-packet procedure -----------------------------------------------------

    /// `docs/CONNTRACK.md` §1.3 steps 1–7 for one packet: classify, look up, create a
    /// candidate for a NEW packet, run the protocol tracker, set SEEN_REPLY.
    /// A candidate (`Track::candidate`) must then be passed to [`ConnTable::confirm`].
    #[inline]
    pub fn track(&mut self, frame: &[u8], p: &Parsed, now: Nanos, opts: TrackOpts) -> Track {
        if opts.notrack {
            self.stats[CtCounter::Ignore] += 1;
            return Track::untracked();
        }
        let t = self.track_inner(frame, p, now, opts);
        if t.state == CtState::Invalid {
            self.stats[CtCounter::Invalid] += 1;
        }
        t
    }

    #[inline(always)]
    fn track_inner(&mut self, frame: &[u8], p: &Parsed, now: Nanos, opts: TrackOpts) -> Track {
        if p.frag.offset != 0 {
            return Track::invalid(InvalidReason::Fragment);
        }
        match p.l4 {
            L4::Fragment => return Track::invalid(InvalidReason::Fragment),
            L4::Malformed(e) => return Track::invalid(malformed_reason(p, e)),
            L4::Icmp(i) => {
                if i.v6 != (p.family == Family::V6) {
                    return Track::invalid(InvalidReason::IcmpWrongFamily);
                }
                if self.cfg.checksum && !opts.l4_csum_ok && !checksum::l4_ok(frame, p) {
                    return Track::invalid(InvalidReason::IcmpBadChecksum);
                }
                if !i.v6 && i.ty > 18 {
                    return Track::invalid(InvalidReason::IcmpBadType);
                }
                if i.v6 && ((130..=136).contains(&i.ty) || i.ty == 143) {
                    // Neighbour discovery and MLD are never tracked.
                    return Track::untracked();
                }
                if i.is_error() {
                    return self.icmp_error(frame, p, now);
                }
            }
            L4::Tcp(t) => {
                if self.cfg.checksum && !opts.l4_csum_ok && !checksum::l4_ok(frame, p) {
                    return Track::invalid(InvalidReason::TcpBadChecksum);
                }
                if !tcp::valid_flags(t.flags) {
                    return Track::invalid(InvalidReason::TcpBadFlags);
                }
            }
            L4::Udp(u) if p.proto == proto::UDPLITE => {
                if let Err(r) = udplite_check(frame, p, u, self.cfg.checksum && !opts.l4_csum_ok) {
                    return Track::invalid(r);
                }
            }
            L4::Udp(_) => {
                if self.cfg.checksum && !opts.l4_csum_ok && !checksum::l4_ok(frame, p) {
                    return Track::invalid(InvalidReason::UdpBadChecksum);
                }
            }
            L4::Sctp(_) => {
                // sctp_error: the CRC, when checking is on and the device did not.
                if self.cfg.checksum
                    && !opts.l4_csum_ok
                    && !sctp::crc_ok(&frame[p.l4_off as usize..p.ip_end as usize])
                {
                    return Track::invalid(InvalidReason::SctpBadChecksum);
                }
            }
            L4::Other => {}
        }
        let Some((key, src_is_a)) = FlowKey::of_parsed(p) else {
            // Only ICMP types without a request/reply pair get here.
            return Track::invalid(InvalidReason::IcmpNoEntry);
        };
        let h = if opts.hash != 0 {
            debug_assert_eq!(opts.hash, key.hash64(), "TrackOpts::hash of another packet");
            opts.hash
        } else {
            key.hash64()
        };
        // At most one restart: a TCP reopen removes the entry it found.
        for _ in 0..2 {
            if let Some((slot, via_nat)) = self.lookup_live_way(&key, h, now) {
                if self.entries[slot].meta & M_NAT != 0 && !self.nat_dir_ok(slot, p, via_nat) {
                    // The inversion of a NATed tuple: not this connection's (Linux
                    // would look it up as a new one, which then clashes on confirm).
                    break;
                }
                self.stats[CtCounter::Found] += 1;
                let src_is_a = if via_nat {
                    // The reply way: the packet's direction is REPLY.
                    self.entries[slot].meta & M_ORIG_IS_A == 0
                } else {
                    src_is_a
                };
                match self.update(slot, &key, frame, p, src_is_a, now) {
                    Some(t) => return t,
                    None => {
                        self.stats[CtCounter::SearchRestart] += 1;
                        continue;
                    }
                }
            }
            break;
        }
        self.create(key, h, src_is_a, frame, p, now, opts)
    }

    /// Runs the protocol tracker on an existing entry; None = reopen (entry removed).
    fn update(
        &mut self,
        slot: usize,
        key: &FlowKey,
        frame: &[u8],
        p: &Parsed,
        src_is_a: bool,
        now: Nanos,
    ) -> Option<Track> {
        let e = self.entries[slot];
        // A flow from an endpoint to itself has equal ORIGINAL and REPLY tuples; Linux
        // inserts the REPLY one last, at the head of the chain, so lookups find REPLY.
        let self_flow = !key.is_icmp() && key.a == key.b && key.port_a == key.port_b;
        let dir = if self_flow && e.status & CtStatus::CONFIRMED != 0 {
            Direction::Reply
        } else if src_is_a == (e.meta & M_ORIG_IS_A != 0) {
            Direction::Original
        } else {
            Direction::Reply
        };
        let mut status = e.status;
        let mut deadline = e.deadline;
        let mut handle = Some(self.handle(slot));
        let mut tcp_state = None;
        let mut kill = false;
        match p.l4 {
            L4::Tcp(t) => {
                let mut seg = Seg::from_tcp(&t);
                if let Some(sa) = self.seqadj_of_slot(slot) {
                    // Take NAT's sequence mangling into account (tcp_in_window's
                    // receiver_offset): the peer acknowledges adjusted numbers.
                    let off = sa.offset(1 - dir as usize, seg.ack.wrapping_sub(1)) as u32;
                    seg.ack = seg.ack.wrapping_sub(off);
                    seg.opts.sack_right = seg.opts.sack_right.map(|x| x.wrapping_sub(off));
                }
                let mut c = self.load_tcp(slot);
                let ctx = EntryCtx {
                    status,
                    remaining_ns: deadline.saturating_sub(now),
                };
                let act = tcp::tcp_packet(&mut c, dir as usize, &seg, ctx, &self.cfg);
                match act {
                    TcpAction::Reopen => {
                        self.remove_slot(slot);
                        return None;
                    }
                    TcpAction::Invalid { reason, shrink } => {
                        self.store_tcp(slot, &c);
                        let unack = self.cfg.tcp_timeout_unacknowledged as u64 * NS;
                        if shrink && ctx.remaining_ns > unack {
                            self.entries[slot].deadline = now.saturating_add(unack);
                        }
                        return Some(Track::invalid(reason));
                    }
                    TcpAction::Ignore => {}
                    TcpAction::Kill => kill = true,
                    TcpAction::Accept {
                        timeout,
                        refresh,
                        assured,
                    } => {
                        if refresh {
                            deadline = now.saturating_add(timeout as u64 * NS);
                        }
                        if assured {
                            status |= CtStatus::ASSURED;
                        }
                    }
                }
                self.store_tcp(slot, &c);
                tcp_state = Some(TcpState::from_u8(c.state));
            }
            L4::Udp(_) if p.proto == proto::UDPLITE => {
                // nf_conntrack_udplite_packet: UDP's timeouts, but no two-second wait
                // before the stream timeout and ASSURED.
                let mut timeout = self.cfg.udp_timeout;
                if status & CtStatus::SEEN_REPLY != 0 {
                    timeout = self.cfg.udp_timeout_stream;
                    status |= CtStatus::ASSURED;
                }
                deadline = now.saturating_add(timeout as u64 * NS);
            }
            L4::Udp(_) => {
                let mut timeout = self.cfg.udp_timeout;
                if status & CtStatus::SEEN_REPLY != 0 && now > self.stream_ts(slot) {
                    timeout = self.cfg.udp_timeout_stream;
                    status |= CtStatus::ASSURED;
                }
                deadline = now.saturating_add(timeout as u64 * NS);
            }
            L4::Sctp(_) => {
                let mut c = self.load_sctp(slot);
                let seg = &frame[p.l4_off as usize..p.ip_end as usize];
                let confirmed = status & CtStatus::CONFIRMED != 0;
                let r = sctp::sctp_packet(&mut c, seg, dir as usize, confirmed);
                self.store_sctp(slot, &c);
                match r {
                    Err(reason) => return Some(Track::invalid(reason)),
                    Ok(v) => {
                        if v.refresh {
                            deadline = now.saturating_add(v.state.timeout(&self.cfg) as u64 * NS);
                        }
                        if v.assured {
                            status |= CtStatus::ASSURED;
                        }
                    }
                }
            }
            L4::Icmp(_) => deadline = now.saturating_add(self.icmp_timeout(p) as u64 * NS),
            _ => deadline = now.saturating_add(self.cfg.generic_timeout as u64 * NS),
        }
        let state = match dir {
            Direction::Reply => CtState::Established,
            Direction::Original if status & CtStatus::SEEN_REPLY != 0 => CtState::Established,
            Direction::Original if status & CtStatus::EXPECTED != 0 => CtState::Related,
            Direction::Original => CtState::New,
        };
        if dir == Direction::Reply {
            status |= CtStatus::SEEN_REPLY;
        }
        if kill && self.entries[slot].meta & M_NAT != 0 {
            // A NATed entry dies as an expired one: this packet (an RST) still needs
            // its binding to be rewritten; the next lookup or the sweep reaps it.
            let e = &mut self.entries[slot];
            e.status = status;
            e.deadline = now;
        } else if kill {
            self.remove_slot(slot);
            handle = None;
        } else {
            let e = &mut self.entries[slot];
            e.status = status;
            e.deadline = deadline;
        }
        Some(Track {
            state,
            dir,
            status: CtStatus(status),
            tcp_state,
            reason: None,
            handle,
            candidate: false,
            table_full_drop: false,
        })
    }

    /// `docs/CONNTRACK.md` §1.3 step 5c: a candidate for a packet that matched nothing.
    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        key: FlowKey,
        h: u64,
        src_is_a: bool,
        frame: &[u8],
        p: &Parsed,
        now: Nanos,
        opts: TrackOpts,
    ) -> Track {
        let mut tcp_init = None;
        let mut sctp_init = None;
        match p.l4 {
            L4::Sctp(_) => {
                let mut c = SctpConn::default();
                let seg = &frame[p.l4_off as usize..p.ip_end as usize];
                match sctp::sctp_packet(&mut c, seg, 0, false) {
                    Ok(v) => sctp_init = Some((c, v)),
                    Err(r) => {
                        let _ = self.take_expectation(p, now);
                        return Track::invalid(r);
                    }
                }
            }
            L4::Tcp(t) => {
                let seg = Seg::from_tcp(&t);
                match tcp::tcp_new(&seg, &self.cfg) {
                    Ok(c) => tcp_init = Some((c, seg)),
                    Err(r) => {
                        // Linux finds (and unlinks) the expectation when it allocates
                        // the candidate, before the TCP handler refuses the packet.
                        let _ = self.take_expectation(p, now);
                        return Track::invalid(r);
                    }
                }
            }
            L4::Icmp(_) if !src_is_a => {
                // A reply type with no entry: only requests create entries.
                return Track::invalid(InvalidReason::IcmpNoEntry);
            }
            _ => {}
        }
        let Some(slot) = self.alloc(h, now) else {
            self.stats[CtCounter::Drop] += 1;
            return Track {
                state: CtState::New,
                table_full_drop: true,
                ..Track::untracked()
            };
        };
        // `docs/CONNTRACK.md` §1.3 step 5c / `docs/CONNTRACK.md` §4.4: a matching expectation makes the candidate RELATED.
        let exp = self.take_expectation(p, now);
        let master = exp.map(|e| e.master);
        let v6 = key.family == Family::V6;
        let mut e = Entry {
            addr: [fold(key.family, &key.a), fold(key.family, &key.b)],
            port: [key.port_a, key.port_b],
            proto: key.proto,
            meta: M_USED | M_PENDING,
            ..Entry::default()
        };
        if v6 {
            e.meta |= M_V6;
            self.v6[slot] = [key.a, key.b];
        }
        if src_is_a {
            e.meta |= M_ORIG_IS_A;
        }
        self.aux[slot] = Aux::None;
        if let Some(m) = master {
            // EXPECTED, linked to the master; no helper (FTP expectations carry none).
            e.status = CtStatus::EXPECTED;
            self.aux[slot] = Aux::Master(m);
        } else if opts.helper == Some(HelperKind::Ftp) && key.proto == proto::TCP {
            e.meta |= M_HELPER_FTP;
            self.aux[slot] = Aux::Ftp(FtpSeq::default());
        }
        self.entries[slot] = e;
        self.cold[slot] = Cold::default();
        self.clear_ctmark(slot);
        self.clear_verdict(slot);
        if let Some(n) = exp.and_then(|e| e.nat) {
            let one = |a: Addr, port: Option<u16>| NatRange {
                flags: range_flags::MAP_IPS
                    | if port.is_some() {
                        range_flags::PROTO_SPECIFIED
                    } else {
                        0
                    },
                min_addr: a,
                max_addr: a,
                min_port: port.unwrap_or(0),
                max_port: port.unwrap_or(0),
            };
            let req = NatRequest {
                src: Some(one(n.src, None)),
                dst: Some(one(n.dst, Some(n.dport))),
            };
            self.follow = Some((self.handle(slot), req));
        }
        let mut tcp_state = None;
        let timeout = match p.l4 {
            L4::Tcp(_) => {
                let (mut c, seg) = tcp_init.expect("set above for TCP");
                let ctx = EntryCtx {
                    status: 0,
                    remaining_ns: 0,
                };
                match tcp::tcp_packet(&mut c, 0, &seg, ctx, &self.cfg) {
                    TcpAction::Accept { timeout, .. } => {
                        self.store_tcp(slot, &c);
                        tcp_state = Some(TcpState::from_u8(c.state));
                        timeout
                    }
                    TcpAction::Invalid { reason, .. } => {
                        self.free_slot(slot);
                        return Track::invalid(reason);
                    }
                    _ => {
                        // Cannot happen from NONE; refuse rather than keep an odd entry.
                        self.free_slot(slot);
                        return Track::invalid(InvalidReason::TcpStateTable);
                    }
                }
            }
            L4::Udp(_) => {
                self.set_stream_ts(slot, now.saturating_add(2 * NS));
                self.cfg.udp_timeout
            }
            L4::Sctp(_) => {
                let (c, v) = sctp_init.expect("set above for SCTP");
                self.store_sctp(slot, &c);
                if v.assured {
                    self.entries[slot].status |= CtStatus::ASSURED;
                }
                v.state.timeout(&self.cfg)
            }
            L4::Icmp(_) => self.icmp_timeout(p),
            _ => self.cfg.generic_timeout,
        };
        self.entries[slot].deadline = timeout as u64 * NS;
        Track {
            state: if master.is_some() {
                CtState::Related
            } else {
                CtState::New
            },
            dir: Direction::Original,
            status: CtStatus(self.entries[slot].status),
            tcp_state,
            reason: None,
            handle: Some(self.handle(slot)),
            candidate: true,
            table_full_drop: false,
        }
    }

    /// Finds and consumes the expectation a new connection's first packet matches.
    fn take_expectation(&mut self, p: &Parsed, now: Nanos) -> Option<Expectation> {
        if self.expect.is_empty() {
            return None;
        }
        let (_, dport) = p.ports()?;
        self.expect
            .take(p.family, p.proto, p.src, p.dst, dport, now)
    }

    /// The NAT a candidate just created from a NATed master's expectation must get
    /// (`nf_nat_follow_master`: source to where the master's command sender talks,
    /// destination to the sender and the port it named), as a request for
    /// [`ConnTable::bind_nat`]; the nat chains are not walked for it. Taken once.
    pub fn take_follow(&mut self, h: EntryHandle) -> Option<NatRequest> {
        match self.follow {
            Some((fh, req)) if fh == h => {
                self.follow = None;
                Some(req)
            }
            _ => None,
        }
    }

    /// The RELATED procedure for an ICMP/ICMPv6 error (`docs/CONNTRACK.md` §3.2). Changes nothing.
    fn icmp_error(&mut self, frame: &[u8], p: &Parsed, now: Nanos) -> Track {
        let Some(ip) = crate::packet::quoted(frame, p) else {
            return Track::invalid(InvalidReason::IcmpErrorInner);
        };
        if ip.family != p.family || ip.frag.offset != 0 {
            return Track::invalid(InvalidReason::IcmpErrorInner);
        }
        let kd = match ip.l4 {
            L4::Tcp(t) => Some(FlowKey::ordered(
                ip.family, ip.proto, ip.src, t.sport, ip.dst, t.dport,
            )),
            L4::Udp(u) => Some(FlowKey::ordered(
                ip.family, ip.proto, ip.src, u.sport, ip.dst, u.dport,
            )),
            L4::Sctp(s) => Some(FlowKey::ordered(
                ip.family, ip.proto, ip.src, s.sport, ip.dst, s.dport,
            )),
            L4::Icmp(i) if i.v6 == (ip.family == Family::V6) && !i.is_error() => {
                FlowKey::icmp_dir(ip.family, ip.src, ip.dst, i.id, i.ty, i.code)
            }
            L4::Other => Some(FlowKey::ordered(ip.family, ip.proto, ip.src, 0, ip.dst, 0)),
            _ => None,
        };
        let Some((key, inner_src_is_a)) = kd else {
            return Track::invalid(InvalidReason::IcmpErrorInner);
        };
        let Some((slot, via_nat)) = self.lookup_live_way(&key, key.hash64(), now) else {
            return Track::invalid(InvalidReason::IcmpErrorNoEntry);
        };
        // The inverted inner tuple matched the entry in the direction opposite to the
        // quoted packet's; that tuple's destination is the quoted packet's source.
        if p.dst != ip.src {
            return Track::invalid(InvalidReason::IcmpErrorSpoofed);
        }
        self.stats[CtCounter::Found] += 1;
        let e = &self.entries[slot];
        let inner_orig = if via_nat {
            // The key was the NATed way: the quoted packet is an original-direction one
            // as it left translated (the binding's tuple), or a reply before its
            // translation back. The endpoints' order says nothing here.
            let n = &self.nat[slot];
            let sport = match ip.l4 {
                L4::Tcp(t) => t.sport,
                L4::Udp(u) => u.sport,
                L4::Sctp(s) => s.sport,
                _ => n.sport,
            };
            ip.src == n.src && sport == n.sport
        } else {
            inner_src_is_a == (e.meta & M_ORIG_IS_A != 0)
        };
        let dir = if inner_orig {
            Direction::Reply
        } else {
            Direction::Original
        };
        Track {
            state: CtState::Related,
            dir,
            status: CtStatus(e.status),
            tcp_state: (e.proto == proto::TCP).then(|| TcpState::from_u8(e.tcp_state)),
            reason: None,
            handle: Some(self.handle(slot)),
            candidate: false,
            table_full_drop: false,
        }
    }

    /// `docs/CONNTRACK.md` §1.3 step 9, for every packet after the ruleset: first the connection's helper
    /// (FTP, `docs/CONNTRACK.md` §4) runs on an accepted ESTABLISHED packet with payload and may DROP it (and
    /// register an expectation); then the candidate of a NEW/RELATED packet is committed
    /// if the packet was `accepted`, or released (a dropped first packet leaves no
    /// entry). The result says whether the packet may go out.
    pub fn confirm(
        &mut self,
        t: &Track,
        accepted: bool,
        frame: &[u8],
        p: &Parsed,
        now: Nanos,
    ) -> ConfirmResult {
        // A payload rewrite belongs to the packet the helper saw last: this one's own
        // (if any) is decided below.
        if self.mangle.is_some() {
            self.mangle = None;
        }
        if !t.candidate {
            if t.table_full_drop {
                return ConfirmResult::TableFull;
            }
            if !accepted {
                return ConfirmResult::NotAccepted;
            }
            if t.state == CtState::Established {
                if let Some(h) = t.handle {
                    if self.run_helper(h, t.dir, frame, p, now) {
                        return ConfirmResult::HelperDrop;
                    }
                }
            }
            return ConfirmResult::Pass;
        }
        let Some(hd) = t.handle else {
            return ConfirmResult::NotAccepted;
        };
        let slot = hd.slot as usize;
        if slot >= self.entries.len()
            || self.gens[slot] != hd.gen
            || self.entries[slot].meta & (M_USED | M_PENDING) != (M_USED | M_PENDING)
        {
            return ConfirmResult::NotAccepted;
        }
        if !accepted {
            self.free_slot(slot);
            return ConfirmResult::NotAccepted;
        }
        let k = self.key_of_slot(slot);
        let h = k.hash64();
        if self.lookup_live(&k, h, now).is_some() {
            // Another packet of the same flow was confirmed first (same burst).
            self.free_slot(slot);
            if k.proto == proto::TCP {
                self.stats[CtCounter::InsertFailed] += 1;
                self.stats[CtCounter::Drop] += 1;
                return ConfirmResult::InsertFailed;
            }
            return ConfirmResult::Pass; // UDP/ICMP/generic: merged into the existing entry
        }
        let nat_key = self.nat_of(slot).map(|n| self.nat_key(slot, &n));
        if let Some(rk) = nat_key {
            // The reply tuple was free when it was chosen, in this same packet's
            // processing; still, never index one tuple twice.
            if self.lookup_live(&rk, rk.hash64(), now).is_some() {
                self.free_slot(slot);
                self.stats[CtCounter::InsertFailed] += 1;
                self.stats[CtCounter::Drop] += 1;
                return ConfirmResult::InsertFailed;
            }
        }
        if !self.index_insert(h, slot) {
            self.free_slot(slot);
            self.stats[CtCounter::InsertFailed] += 1;
            self.stats[CtCounter::Drop] += 1;
            return ConfirmResult::InsertFailed;
        }
        if let Some(rk) = nat_key {
            if !self.index_insert(rk.hash64(), slot) {
                self.unlink_orig_way(&k, slot);
                self.free_slot(slot);
                self.stats[CtCounter::InsertFailed] += 1;
                self.stats[CtCounter::Drop] += 1;
                return ConfirmResult::InsertFailed;
            }
            self.nat_len += 1;
        }
        let e = &mut self.entries[slot];
        e.meta &= !M_PENDING;
        e.status |= CtStatus::CONFIRMED;
        e.deadline = now.saturating_add(e.deadline);
        self.len += 1;
        self.stats[CtCounter::Insert] += 1;
        ConfirmResult::Pass
    }
}

impl ConnTable {
    /// For a packet that found the NATed entry at `slot` (through its reply way when
    /// `via_nat`): true when the packet travels as one of the entry's two tuples (its
    /// ORIGINAL tuple on the own key, its REPLY tuple on the reply way).
    #[cold]
    fn nat_dir_ok(&self, slot: usize, p: &Parsed, via_nat: bool) -> bool {
        let (sport, _) = match p.l4 {
            L4::Tcp(t) => (t.sport, t.dport),
            L4::Udp(u) => (u.sport, u.dport),
            L4::Sctp(s) => (s.sport, s.dport),
            L4::Icmp(i) => return (icmp_is_request(p, i.ty)) != via_nat,
            _ => (0, 0),
        };
        let t = if via_nat {
            self.nat[slot].invert()
        } else {
            self.orig_tuple(slot)
        };
        p.src == t.src && sport == t.sport
    }
}

fn icmp_is_request(p: &Parsed, ty: u8) -> bool {
    super::key::icmp_role(p.family == Family::V6, ty).unwrap_or(false)
}

/// `udplite_error`: the checksum coverage (0 = the whole datagram) must be at least the
/// header and within the datagram, the checksum must be present, and (when `verify`)
/// right over the coverage. Linux applies the first two with checksum checking off too.
fn udplite_check(frame: &[u8], p: &Parsed, u: Udp, verify: bool) -> Result<(), InvalidReason> {
    let len = p.l4_len as usize;
    let cov = match u.len as usize {
        0 => len,
        c if c < 8 || c > len => return Err(InvalidReason::UdpLiteBadCoverage),
        c => c,
    };
    if u.checksum == 0 {
        return Err(InvalidReason::UdpLiteNoChecksum);
    }
    if verify && !checksum::udplite_ok(frame, p, cov) {
        return Err(InvalidReason::UdpLiteBadChecksum);
    }
    Ok(())
}

fn malformed_reason(p: &Parsed, e: ParseError) -> InvalidReason {
    match e {
        ParseError::BadTcpDataOffset => InvalidReason::TcpBadDataOffset,
        ParseError::BadUdpLength => InvalidReason::UdpBadLength,
        ParseError::BadExtHeader => InvalidReason::BadExtHeader,
        ParseError::TruncatedL4 => match p.proto {
            proto::TCP if p.l4_len >= 4 => InvalidReason::TcpBadDataOffset,
            proto::UDP if p.l4_len >= 4 => InvalidReason::UdpBadLength,
            proto::ICMP | proto::ICMPV6 => InvalidReason::IcmpBadHeader,
            _ => InvalidReason::Truncated,
        },
        _ => InvalidReason::BadL3,
    }
}
