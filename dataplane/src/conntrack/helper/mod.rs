//! Connection helpers: the application-layer trackers that run on an accepted
//! ESTABLISHED packet of a connection with a helper (`docs/CONNTRACK.md` §4). Only
//! FTP ([`ftp`]) is implemented.

pub(super) mod ftp;

use super::expect::{
    ExpectError, ExpectKey, ExpectNat, Expectation, MasterRef, EXPECT_TIMEOUT_SECS,
};
use super::seqadj::Mangle;
use super::table::{Aux, ConnTable, M_HAS_EXP, M_HELPER_FTP, M_USED};
use super::{CtStatus, Direction, EntryHandle, HelperKind, Nanos, NS};
use crate::packet::{proto, Parsed, L4};
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
            let (m, span) = ftp::parse_span(data, d, p.family, &p.src);
            match m {
                FtpMatch::None => {}
                FtpMatch::Partial => {
                    drop = true;
                    update_nl = false;
                }
                FtpMatch::Found { addr, port } if addr == p.src => {
                    if self.ftp_expect(h, dir, p, port, span, now) {
                        drop = true;
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

    /// The expectation of a data endpoint the helper found (`help()` from
    /// `nf_ct_expect_init` on), and on a NATed connection what `nf_nat_ftp` adds: the
    /// expectation NATed to follow the master, a free port searched from the one in the
    /// text, the text rewritten (the rewrite left in `self.mangle` for the pipeline) and
    /// the length change recorded for the sequence-number adjustment. True: DROP.
    fn ftp_expect(
        &mut self,
        h: EntryHandle,
        dir: Direction,
        p: &Parsed,
        port: u16,
        span: Option<ftp::FtpSpan>,
        now: Nanos,
    ) -> bool {
        let slot = h.slot as usize;
        let L4::Tcp(tcp) = p.l4 else { return false };
        // The connection's tuples: `this` is the command's direction, `other` the
        // opposite one (its source is the data connection's source, its destination
        // the command sender as the peer sees it).
        let orig = self.orig_tuple(slot);
        let reply = self.nat_of(slot).unwrap_or(orig).invert();
        let (this, other) = match dir {
            Direction::Original => (orig, reply),
            Direction::Reply => (reply, orig),
        };
        let nat = self.entries[slot].status & (CtStatus::SRC_NAT | CtStatus::DST_NAT) != 0;
        let mut exp = Expectation {
            key: ExpectKey {
                family: p.family,
                proto: proto::TCP,
                src: other.src,
                dst: other.dst,
                dport: port,
            },
            class: 0,
            helper: HelperKind::Ftp,
            master: MasterRef {
                worker: self.worker,
                handle: h,
            },
            master_key: self.key_of_slot(slot),
            master_orig: (orig.src, orig.dst, orig.sport, orig.dport),
            created: now,
            deadline: now.saturating_add(EXPECT_TIMEOUT_SECS * NS),
            nat: None,
        };
        if !nat {
            return match self.expect.register(exp, self.cfg.expect_max, now) {
                Ok(()) => {
                    self.entries[slot].meta |= M_HAS_EXP;
                    false
                }
                Err(_) => true,
            };
        }
        let Some(span) = span else { return true };
        exp.nat = Some(ExpectNat {
            src: this.dst,
            dst: this.src,
            dport: port,
        });
        // nf_nat_exp_find_port: the port in the text if free, else the next ones.
        let mut found = None;
        let mut cand = port;
        for _ in 0..MAX_PORT_ATTEMPTS {
            exp.key.dport = cand;
            match self.expect.register(exp, self.cfg.expect_max, now) {
                Ok(()) => {
                    found = Some(cand);
                    break;
                }
                Err(ExpectError::Busy) if cand < u16::MAX => cand += 1,
                Err(_) => break,
            }
        }
        let Some(new_port) = found else { return true };
        self.entries[slot].meta |= M_HAS_EXP;
        let mut text = [0u8; 64];
        let n = ftp::format_cmd(span.cmd, p.family, &other.dst, new_port, &mut text);
        let at = p.l4_off as usize + tcp.hdr_len as usize + span.at;
        let grow = n as i64 - span.len as i64;
        let mangle = Mangle::new(at as u16, span.len as u16, &text[..n]);
        let fits = i64::from(p.ip_len()) + grow <= i64::from(u16::MAX);
        let Some(m) = mangle.filter(|_| fits) else {
            // nf_nat_mangle_tcp_packet failed: the expectation goes, the packet drops.
            self.expect.remove_master(exp.master);
            return true;
        };
        self.mangle = Some((h, dir, m));
        self.seqadj_set(slot, dir, tcp.seq, m.delta());
        false
    }
}

/// Ports tried for a NATed expectation (`nf_nat_exp_find_port`'s bound).
const MAX_PORT_ATTEMPTS: usize = 128;
