//! Connection helpers: the application-layer trackers that run on an accepted
//! ESTABLISHED packet of a connection with a helper (`docs/CONNTRACK.md` §4). Only
//! FTP ([`ftp`]) is implemented.

pub(super) mod ftp;

use super::expect::{ftp_key, Expectation, MasterRef, EXPECT_TIMEOUT_SECS};
use super::table::{Aux, ConnTable, M_HAS_EXP, M_HELPER_FTP, M_USED};
use super::{Direction, EntryHandle, HelperKind, Nanos, NS};
use crate::packet::{Parsed, L4};
use ftp::{FtpMatch, FtpSeq};

impl ConnTable {
    /// The FTP helper (`nf_conntrack_ftp.c` `help()`), on an accepted ESTABLISHED
    /// packet. Returns true when the packet must be DROPPED (a partial match, or the
    /// expectation could not be registered).
    pub(super) fn run_helper(
        &mut self,
        h: EntryHandle,
        dir: Direction,
        frame: &[u8],
        p: &Parsed,
        now: Nanos,
    ) -> bool {
        let slot = h.slot as usize;
        let Some(e) = self.entries.get(slot) else {
            return false;
        };
        if e.meta & (M_HELPER_FTP | M_USED) != (M_HELPER_FTP | M_USED) || self.gens[slot] != h.gen {
            return false;
        }
        let L4::Tcp(tcp) = p.l4 else {
            return false;
        };
        let len = tcp.payload_len as usize;
        let start = p.l4_off as usize + tcp.hdr_len as usize;
        let end = (start + len).min(frame.len());
        if len == 0 || start >= end {
            return false;
        }
        let data = &frame[start..end];
        let d = dir as usize;
        let mut st = match self.aux[slot] {
            Aux::Ftp(s) => s,
            _ => FtpSeq::default(),
        };
        let ends_in_nl = data[data.len() - 1] == b'\n';
        let mut drop = false;
        let mut update_nl = true;
        if st.at_line_start(d, tcp.seq) {
            match ftp::parse(data, d, p.family, &p.src) {
                FtpMatch::None => {}
                FtpMatch::Partial => {
                    drop = true;
                    update_nl = false;
                }
                FtpMatch::Found { addr, port } if addr == p.src => {
                    let (sport, dport) = (tcp.sport, tcp.dport);
                    let master_orig = match dir {
                        Direction::Original => (p.src, p.dst, sport, dport),
                        Direction::Reply => (p.dst, p.src, dport, sport),
                    };
                    let exp = Expectation {
                        key: ftp_key(p.family, p.src, p.dst, port),
                        class: 0,
                        helper: HelperKind::Ftp,
                        master: MasterRef {
                            worker: self.worker,
                            handle: h,
                        },
                        master_key: self.key_of_slot(slot),
                        master_orig,
                        created: now,
                        deadline: now.saturating_add(EXPECT_TIMEOUT_SECS * NS),
                    };
                    match self.expect.register(exp, self.cfg.expect_max, now) {
                        Ok(()) => self.entries[slot].meta |= M_HAS_EXP,
                        Err(_) => drop = true,
                    }
                }
                // The address differs from the sender's: no expectation (loose=0).
                FtpMatch::Found { .. } => {}
            }
        }
        if update_nl && ends_in_nl {
            st.remember(d, tcp.seq.wrapping_add(len as u32));
        }
        self.aux[slot] = Aux::Ftp(st);
        drop
    }
}
