//! A copy of one entry for the control plane, and its `conntrack -L` line.

use super::key::{icmp4_reply_of, icmp6_reply_of};
use super::table::{Aux, ConnTable, M_HELPER_FTP, M_ORIG_IS_A};
use super::{CtStatus, EntryHandle, HelperKind, Nanos, SctpState, TcpState, NS};
use crate::packet::{proto, to_ip, Addr, Family};
use std::fmt::Write as _;

/// One direction's tuple of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Source port (TCP/UDP; 0 otherwise).
    pub sport: u16,
    /// Destination port (TCP/UDP; 0 otherwise).
    pub dport: u16,
    /// ICMP/ICMPv6 (type, code, id).
    pub icmp: Option<(u8, u8, u16)>,
}

/// A snapshot of one entry (`ctl list` / `ctl get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryView {
    /// Address family.
    pub family: Family,
    /// L4 protocol number.
    pub proto: u8,
    /// The ORIGINAL tuple (from the first packet).
    pub orig: Tuple,
    /// The REPLY tuple (the inversion).
    pub reply: Tuple,
    /// TCP state, for TCP entries.
    pub tcp_state: Option<TcpState>,
    /// SCTP state, for SCTP entries.
    pub sctp_state: Option<SctpState>,
    /// Status bits.
    pub status: CtStatus,
    /// Whole seconds left before the entry expires.
    pub timeout_secs: u32,
    /// The helper attached when the entry was created.
    pub helper: Option<HelperKind>,
    /// The entry's handle.
    pub handle: EntryHandle,
    /// For an entry created from an expectation (EXPECTED): its master, as (worker id,
    /// handle in that worker's shard).
    pub master: Option<(u16, EntryHandle)>,
}

impl EntryView {
    fn write_tuple(&self, s: &mut String, t: &Tuple) {
        let _ = write!(
            s,
            "src={} dst={} ",
            to_ip(self.family, &t.src),
            to_ip(self.family, &t.dst)
        );
        match self.proto {
            proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP => {
                let _ = write!(s, "sport={} dport={} ", t.sport, t.dport);
            }
            _ => {
                if let Some((ty, code, id)) = t.icmp {
                    let _ = write!(s, "type={ty} code={code} id={id} ");
                }
            }
        }
    }

    /// The line `conntrack -L` prints for this entry, e.g.
    /// `tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED] mark=0 use=1`.
    pub fn conntrack_line(&self) -> String {
        let mut s = String::with_capacity(160);
        let _ = write!(
            s,
            "{:<8} {} {} ",
            proto::conntrack_name(self.proto),
            self.proto,
            self.timeout_secs
        );
        if let Some(st) = self.tcp_state {
            let _ = write!(s, "{st} ");
        }
        if let Some(st) = self.sctp_state {
            let _ = write!(s, "{} ", st.name());
        }
        self.write_tuple(&mut s, &self.orig);
        if !self.status.has(CtStatus::SEEN_REPLY) {
            s.push_str("[UNREPLIED] ");
        }
        self.write_tuple(&mut s, &self.reply);
        if self.status.has(CtStatus::ASSURED) {
            s.push_str("[ASSURED] ");
        }
        s.push_str("mark=0 use=1");
        s
    }
}

impl ConnTable {
    /// The snapshot of the entry at `slot`.
    pub(super) fn view(&self, slot: usize, now: Nanos) -> EntryView {
        let e = &self.entries[slot];
        let k = self.key_of_slot(slot);
        let family = k.family;
        let (orig, reply) = if k.is_icmp() {
            let req = (k.port_b >> 8) as u8;
            let code = k.port_b as u8;
            let rep = if family == Family::V6 {
                icmp6_reply_of(req)
            } else {
                icmp4_reply_of(req)
            }
            .unwrap_or(req);
            let t = |src, dst, ty| Tuple {
                src,
                dst,
                sport: 0,
                dport: 0,
                icmp: Some((ty, code, k.port_a)),
            };
            (t(k.a, k.b, req), t(k.b, k.a, rep))
        } else {
            let ta = Tuple {
                src: k.a,
                dst: k.b,
                sport: k.port_a,
                dport: k.port_b,
                icmp: None,
            };
            let tb = Tuple {
                src: k.b,
                dst: k.a,
                sport: k.port_b,
                dport: k.port_a,
                icmp: None,
            };
            if e.meta & M_ORIG_IS_A != 0 {
                (ta, tb)
            } else {
                (tb, ta)
            }
        };
        let reply = match self.nat_of(slot) {
            Some(n) => Tuple {
                src: n.dst,
                dst: n.src,
                sport: if k.is_icmp() { 0 } else { n.dport },
                dport: if k.is_icmp() { 0 } else { n.sport },
                icmp: reply.icmp.map(|(ty, code, _)| (ty, code, n.sport)),
            },
            None => reply,
        };
        EntryView {
            family,
            proto: k.proto,
            orig,
            reply,
            tcp_state: (k.proto == proto::TCP).then(|| TcpState::from_u8(e.tcp_state)),
            sctp_state: (k.proto == proto::SCTP).then(|| SctpState::from_u8(e.tcp_state)),
            status: CtStatus(e.status),
            timeout_secs: (e.deadline.saturating_sub(now) / NS) as u32,
            helper: (e.meta & M_HELPER_FTP != 0).then_some(HelperKind::Ftp),
            handle: self.handle(slot),
            master: match self.aux[slot] {
                Aux::Master(m) if e.status & CtStatus::EXPECTED != 0 => Some((m.worker, m.handle)),
                _ => None,
            },
        }
    }
}
