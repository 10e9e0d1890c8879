//! NAT in the pipeline (`docs/NAT.md`): where the nat chains run around the filter
//! table, and the rewrite of forwarded packets.
//!
//! Linux runs the destination manip (DNAT, REDIRECT: nat PREROUTING or OUTPUT) before
//! the filter table and the source manip (SNAT, MASQUERADE: nat POSTROUTING or INPUT)
//! after it, for every packet of a NATed connection, both directions. So the filter
//! sees a packet whose destination is already translated and whose source is not yet:
//! Docker's FORWARD rules match the container's address after DNAT. The pipeline does
//! the same in one pass: for the filter it shows a copy of the packet's summary with the
//! destination translated; the bytes are rewritten once, after the verdict, for accepted
//! packets only (`apply_nat`, called where the packet is queued for transmit).
//!
//! Nothing here allocates, locks or makes a system call.

use super::pipeline::{PairMode, Pipeline, Side};
use crate::conntrack::nat::dst_pick;
use crate::conntrack::{
    Direction, EntryHandle, Mangle, NatRange, NatRequest, NatRewrite, NatTuple, SeqAdj, Track,
};
use crate::packet::{self, payload, rewrite, Addr, Family, Frame, Parsed, L4};
use crate::ruleset::{LogEvent, NatChain, PacketCtx, Ruleset};

/// The addresses NAT targets take from the configuration: MASQUERADE's (the outside
/// port's own address, per family) and REDIRECT's (the host's local address).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatAddrs {
    /// MASQUERADE's IPv4 address.
    pub masquerade_v4: Option<Addr>,
    /// MASQUERADE's IPv6 address.
    pub masquerade_v6: Option<Addr>,
    /// REDIRECT's IPv4 address.
    pub local_v4: Option<Addr>,
    /// REDIRECT's IPv6 address.
    pub local_v6: Option<Addr>,
}

impl NatAddrs {
    fn masq(&self, f: Family) -> Option<Addr> {
        match f {
            Family::V4 => self.masquerade_v4,
            Family::V6 => self.masquerade_v6,
        }
    }

    fn local(&self, f: Family) -> Option<Addr> {
        match f {
            Family::V4 => self.local_v4,
            Family::V6 => self.local_v6,
        }
    }
}

/// The rewrite of one forwarded packet (see [`apply_nat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatApply {
    /// The packet's new tuple and which ends change.
    pub rewrite: NatRewrite,
    /// The packet is an ICMP/ICMPv6 error about the NATed flow: its outer addresses
    /// and its quoted packet are translated.
    pub icmp_error: bool,
    /// The connection's sequence-number adjustment (a helper changed a payload length
    /// earlier) and the packet's direction: seq, ack and SACK blocks are moved.
    pub seq: Option<(SeqAdj, Direction)>,
    /// The payload rewrite the FTP helper decided for this very packet.
    pub mangle: Option<Mangle>,
}

impl NatApply {
    /// The rewrite of a held fragment of a reassembled datagram: addresses and ports
    /// only (a payload rewrite cannot be split over fragments; see `docs/NAT.md`).
    pub fn for_fragment(&self) -> NatApply {
        NatApply {
            mangle: None,
            seq: None,
            ..*self
        }
    }
}

/// Which NATed connection a forwarded packet belongs to, and how it is rewritten: what
/// [`super::Outcome::nat`] carries. The address/port rewrite is read from the binding
/// while the pipeline judges the packet (the entry is hot then), so sending it costs no
/// second look at the binding; [`NatRef::resolve`] checks the entry still lives and adds
/// the helper's payload and sequence edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatRef {
    /// The connection's entry.
    pub handle: EntryHandle,
    /// The packet's direction on it.
    pub dir: crate::conntrack::Direction,
    /// The packet is an ICMP/ICMPv6 error about the connection.
    pub icmp_error: bool,
    /// The address/port rewrite, from the binding when the packet was judged.
    pub rewrite: crate::conntrack::NatRewrite,
}

impl NatRef {
    /// The rewrite of the packet (None once the entry is gone from `table`, the shard
    /// that judged it), with the helper's payload and sequence edits.
    #[inline]
    pub fn resolve(&self, table: &crate::conntrack::ConnTable) -> Option<NatApply> {
        if !table.is_current(self.handle) {
            return None;
        }
        let rw = self.rewrite;
        let (seq, mangle) = if self.icmp_error {
            (None, None)
        } else {
            (
                table.seqadj(self.handle).map(|s| (s, self.dir)),
                table.pending_mangle(self.handle, self.dir),
            )
        };
        Some(NatApply {
            rewrite: rw,
            icmp_error: self.icmp_error,
            seq,
            mangle,
        })
    }
}

/// Rewrites a forwarded frame, `buf[..len]`, as `n` says (its own parse gives the
/// offsets): addresses and ports; with a sequence-number adjustment the TCP seq, ack and
/// SACK blocks; with a payload rewrite the payload (the frame may grow into `buf`'s
/// room or shrink). Returns the new length; None when the frame must be dropped (it does
/// not parse; the payload rewrite found no room; malformed TCP options under sequence
/// adjustment, which the kernel drops too). The held fragments of a reassembled
/// datagram get [`NatApply::for_fragment`] each (addresses in every one, ports and the
/// L4 checksum in the first).
pub fn apply_nat(buf: &mut [u8], len: usize, n: &NatApply) -> Option<usize> {
    let len = len.min(buf.len());
    let Ok(Frame::Ip(p)) = packet::parse(&buf[..len]) else {
        return None;
    };
    apply_nat_parsed(buf, len, &p, n)
}

/// [`apply_nat`] for a frame whose parse `p` the caller has (the poll loop parsed the
/// burst before judging it; the bytes have not changed since).
#[inline]
pub fn apply_nat_parsed(buf: &mut [u8], len: usize, p: &Parsed, n: &NatApply) -> Option<usize> {
    let len = len.min(buf.len());
    if !apply_headers(&mut buf[..len], p, n) {
        return None;
    }
    if let Some((sa, dir)) = n.seq {
        let d = dir as usize;
        let ok = payload::rewrite_tcp_seq(
            &mut buf[..len],
            p,
            |s| sa.map_seq(d, s),
            |a| sa.map_ack(d, a),
            |x| sa.map_ack(d, x),
        );
        if !ok {
            return None;
        }
    }
    match n.mangle {
        Some(m) => payload::replace_tcp_payload(
            buf,
            len,
            p,
            usize::from(m.at),
            usize::from(m.len),
            m.text(),
        ),
        None => Some(len),
    }
}

/// The address and port rewrite of [`apply_nat`].
fn apply_headers(frame: &mut [u8], p: &Parsed, n: &NatApply) -> bool {
    let p = *p;
    let r = &n.rewrite;
    let new = &r.new;
    if n.icmp_error {
        return rewrite::rewrite_icmp_error(
            frame,
            &p,
            r.set_src.then_some(&new.src),
            r.set_dst.then_some(&new.dst),
            r.set_dst.then_some((new.dst, new.dport)),
            r.set_src.then_some((new.src, new.sport)),
        );
    }
    rewrite::rewrite(
        frame,
        &p,
        r.set_src.then_some((new.src, new.sport)),
        r.set_dst.then_some((new.dst, new.dport)),
    );
    true
}

/// The tuple a packet carries, as NAT sees it.
pub(super) fn tuple_of(p: &Parsed) -> NatTuple {
    let (sport, dport) = match p.l4 {
        L4::Tcp(t) => (t.sport, t.dport),
        L4::Udp(u) => (u.sport, u.dport),
        // SCTP keeps its ports through NAT (only the addresses are mapped, which the
        // CRC32c does not cover), but they are in the connection's tuple.
        L4::Sctp(s) => (s.sport, s.dport),
        L4::Icmp(i) if !i.is_error() => (i.id, i.id),
        _ => (0, 0),
    };
    NatTuple {
        src: p.src,
        dst: p.dst,
        sport,
        dport,
    }
}

/// `p` as the filter table sees it when its destination is translated to `new`.
pub(super) fn with_dst(p: &Parsed, new: &NatTuple) -> Parsed {
    let mut q = *p;
    q.dst = new.dst;
    match &mut q.l4 {
        L4::Tcp(t) => t.dport = new.dport,
        L4::Udp(u) => u.dport = new.dport,
        L4::Sctp(s) => s.dport = new.dport,
        _ => {}
    }
    q
}

/// The nat chains of a hook: (destination manip chain, source manip chain).
pub(super) fn nat_chains(mode: PairMode, ingress: Side) -> (NatChain, NatChain) {
    match (mode, ingress) {
        (PairMode::Host, Side::Network) => (NatChain::Prerouting, NatChain::Input),
        (PairMode::Host, Side::Host) => (NatChain::Output, NatChain::Postrouting),
        (PairMode::Forward, _) => (NatChain::Prerouting, NatChain::Postrouting),
    }
}

/// What NAT shows the filter table for one packet ([`Pipeline::nat_prepare`]).
#[derive(Default)]
pub(super) struct Prep {
    /// The packet's summary with its destination translated.
    pub(super) shown: Option<Parsed>,
    /// The connection's (ORIGINAL, REPLY) tuples.
    pub(super) tuples: Option<(NatTuple, NatTuple)>,
    /// Status bits to show (DST_NAT of a destination manip just decided).
    pub(super) status: u8,
    /// A new connection's destination manip, for the binding after the filter.
    pub(super) pre_dst: Option<NatRange>,
    /// The rewrite of an existing connection's packet.
    pub(super) apply: Option<NatRef>,
    /// Drop the packet (`nat_no_port`: MASQUERADE/REDIRECT without an address).
    pub(super) drop: bool,
}

/// What the first nat walk of a new connection decided.
pub(super) enum Pre {
    /// No NAT from the destination chain.
    None,
    /// A destination manip; the filter sees this tuple.
    Dst(NatRange, NatTuple),
    /// A target whose address is missing (MASQUERADE/REDIRECT without one): drop.
    NoAddr,
}

impl Pipeline {
    /// Sets the addresses MASQUERADE and REDIRECT use.
    pub fn set_nat_addrs(&mut self, a: NatAddrs) {
        *self.nat_addrs = a;
    }

    /// Sets the addresses of port `port` (its config `address`): MASQUERADE of a packet
    /// leaving by that port takes its address, REDIRECT of one arriving on it too, as
    /// Linux takes the interface's. Ports without their own fall back to
    /// [`Pipeline::set_nat_addrs`]'s.
    pub fn set_port_nat_addrs(&mut self, port: &str, a: NatAddrs) {
        match self.port_nat_addrs.iter_mut().find(|(n, _)| &**n == port) {
            Some(x) => x.1 = a,
            None => self.port_nat_addrs.push((port.into(), a)),
        }
    }

    /// MASQUERADE's and REDIRECT's addresses for a packet (see
    /// [`Pipeline::set_port_nat_addrs`]); only a new connection's nat walk asks.
    fn masq_local(&self, ctx: &PacketCtx, f: Family) -> (Option<Addr>, Option<Addr>) {
        let of = |name: &str| {
            self.port_nat_addrs
                .iter()
                .find(|(n, _)| !name.is_empty() && &**n == name)
                .map(|x| x.1)
        };
        (
            of(ctx.out_port)
                .and_then(|a| a.masq(f))
                .or(self.nat_addrs.masq(f)),
            of(ctx.in_port)
                .and_then(|a| a.local(f))
                .or(self.nat_addrs.local(f)),
        )
    }

    /// NAT before the filter table (kept out of line: the un-NATed path never calls it):
    /// for an existing NATed connection its rewrite, tuples and translated destination;
    /// for a new connection the destination-manip walk.
    #[inline(never)]
    pub(super) fn nat_prepare(
        &mut self,
        rs: &Ruleset,
        chain: NatChain,
        t: &Track,
        p: &Parsed,
        ctx: &PacketCtx,
        log: &mut dyn FnMut(LogEvent<'_>),
    ) -> Prep {
        let mut prep = Prep::default();
        if !t.candidate {
            let Some(h) = t.handle else {
                return prep;
            };
            if let Some((rw, tuples)) = self.table.nat_view(h, t.dir) {
                prep.apply = Some(NatRef {
                    handle: h,
                    dir: t.dir,
                    icmp_error: matches!(p.l4, L4::Icmp(i) if i.is_error()),
                    rewrite: rw,
                });
                if rw.set_dst {
                    prep.shown = Some(with_dst(p, &rw.new));
                }
                prep.tuples = Some(tuples);
            }
            return prep;
        }
        match self.nat_pre(rs, chain, ctx, log) {
            Pre::None => {}
            Pre::Dst(r, new) => {
                prep.pre_dst = Some(r);
                let orig = tuple_of(p);
                prep.tuples = Some((orig, new.invert()));
                if new != orig {
                    // The destination manip is set up: FORWARD sees --ctstate DNAT.
                    prep.status = crate::conntrack::CtStatus::DST_NAT;
                    prep.shown = Some(with_dst(p, &new));
                }
            }
            Pre::NoAddr => prep.drop = true,
        }
        prep
    }

    /// The destination-manip walk of a new connection's first packet (nat PREROUTING or
    /// OUTPUT), before the filter table.
    pub(super) fn nat_pre(
        &mut self,
        rs: &Ruleset,
        chain: NatChain,
        ctx: &PacketCtx,
        log: &mut dyn FnMut(LogEvent<'_>),
    ) -> Pre {
        let Some(t) = rs.eval_nat(chain, ctx, &mut self.counters, &mut &mut *log) else {
            return Pre::None;
        };
        let p = ctx.parsed;
        let (masq, local) = self.masq_local(ctx, p.family);
        match t.range(p, chain, masq, local) {
            Some((true, r)) => Pre::Dst(r, dst_pick(p.family, p.proto, &tuple_of(p), &r)),
            Some((false, _)) => Pre::None,
            None => Pre::NoAddr,
        }
    }

    /// The source-manip walk (nat POSTROUTING or INPUT) of an accepted new connection,
    /// seeing the packet as translated so far, then the binding. Err: no tuple (drop).
    #[inline(never)]
    pub(super) fn nat_post(
        &mut self,
        rs: &Ruleset,
        chain: NatChain,
        ctx: &PacketCtx,
        (h, dst): (EntryHandle, Option<NatRange>),
        now: crate::Nanos,
        log: &mut dyn FnMut(LogEvent<'_>),
    ) -> Result<(), ()> {
        let p = ctx.parsed;
        let mut req = NatRequest { dst, src: None };
        if let Some(t) = rs.eval_nat(chain, ctx, &mut self.counters, &mut &mut *log) {
            let (masq, local) = self.masq_local(ctx, p.family);
            match t.range(p, chain, masq, local) {
                Some((false, r)) => req.src = Some(r),
                Some((true, _)) => {}
                None => return Err(()),
            }
        }
        if req.dst.is_none() && req.src.is_none() {
            return Ok(());
        }
        self.bind_owned(h, &req, (p.family, p.proto), now)
    }

    /// Binds `req` on the candidate `h`, choosing only reply tuples this worker owns.
    pub(super) fn bind_owned(
        &mut self,
        h: EntryHandle,
        req: &NatRequest,
        (family, proto): (Family, u8),
        now: crate::Nanos,
    ) -> Result<(), ()> {
        let own = self.nat_owner;
        self.table
            .bind_nat(h, req, now, |rt: &NatTuple| match own {
                None => true,
                Some(o) => {
                    o.model.owner_of_tuple(
                        family,
                        proto,
                        &rt.src,
                        &rt.dst,
                        (rt.sport, rt.dport),
                        o.workers,
                    ) == o.me
                }
            })
            .map_err(|_| ())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod ftp_tests;
