//! A copy of one entry for the control plane, and its `conntrack -L` line.

use super::{CtStatus, EntryHandle, HelperKind, TcpState};
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
            proto::TCP | proto::UDP => {
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
