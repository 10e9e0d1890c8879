//! FTP helper and expectation tests: every case F1–F14 of `docs/CONNTRACK.md` §7, the
//! malformed forms, expectation lifetime and limits, master teardown, and two shards
//! sharing one expectation table.
//!
//! Control connection: C=10.0.0.1:40021 <-> S=10.0.0.2:21, helper attached on its first
//! SYN (raw `-p tcp --dport 21 -j CT --helper ftp`), after the handshake (ISNs 1000 and
//! 5000) S sent "220 hi\r\n", C sent "USER a\r\n", S sent "331 ok\r\n".

use super::*;
use crate::packet::build::PacketSpec;
use crate::packet::tcp_flags::{ACK, PSH, SYN};
use std::sync::Arc;
use CtState::{Established as Est, New, Related as Rel};

const CC: &str = "10.0.0.1:40021";
const SC: &str = "10.0.0.2:21";

fn seg(src: &str, dst: &str, flags: u8, seq: u32, ack: u32, data: &[u8]) -> Vec<u8> {
    PacketSpec::tcp(sock(src), sock(dst), flags, seq, ack)
        .payload(data)
        .to_vec()
}
fn ftp_opts() -> TrackOpts {
    TrackOpts {
        helper: Some(HelperKind::Ftp),
        ..Default::default()
    }
}

/// The shard harness [`H`] plus an FTP control connection's endpoints and sequence
/// numbers.
struct Ftp {
    h: H,
    c: &'static str,
    s: &'static str,
    cseq: u32,
    sseq: u32,
}

impl Ftp {
    fn new() -> Ftp {
        Self::with(ConnTable::new(1024, Config::default()))
    }
    fn with(t: ConnTable) -> Ftp {
        Ftp {
            h: H::with(t),
            c: CC,
            s: SC,
            cseq: 1000,
            sseq: 5000,
        }
    }
    /// Runs one packet through track + (accepting) confirm.
    fn run(&mut self, f: &[u8], opts: TrackOpts, accept: bool) -> (Track, ConfirmResult) {
        self.h.track_confirm(f, opts, accept)
    }
    fn go(&mut self, f: &[u8]) -> Track {
        let (t, r) = self.run(f, TrackOpts::default(), true);
        assert_eq!(r, ConfirmResult::Pass, "{t:?}");
        t
    }
    /// The handshake, the helper attached by the first SYN.
    fn handshake(&mut self, helper: bool) {
        let opts = if helper {
            ftp_opts()
        } else {
            TrackOpts::default()
        };
        let (t, r) = self.run(&seg(self.c, self.s, SYN, 1000, 0, b""), opts, true);
        assert_eq!((t.state, r), (New, ConfirmResult::Pass));
        self.go(&seg(self.s, self.c, SYN | ACK, 5000, 1001, b""));
        self.go(&seg(self.c, self.s, ACK, 1001, 5001, b""));
        self.cseq = 1001;
        self.sseq = 5001;
    }
    /// Client data (PSH|ACK, exact seq/ack); returns the state and the confirm result.
    fn cdata(&mut self, data: &[u8]) -> (Track, ConfirmResult) {
        self.data(true, data)
    }
    /// Server data, as [`Ftp::cdata`].
    fn sdata(&mut self, data: &[u8]) -> (Track, ConfirmResult) {
        self.data(false, data)
    }
    /// Data from the client (or the server) on the control connection; the sender's
    /// sequence number advances when the packet passes.
    fn data(&mut self, from_client: bool, data: &[u8]) -> (Track, ConfirmResult) {
        let (src, dst, seq, ack) = if from_client {
            (self.c, self.s, self.cseq, self.sseq)
        } else {
            (self.s, self.c, self.sseq, self.cseq)
        };
        let r = self.run(
            &seg(src, dst, PSH | ACK, seq, ack, data),
            TrackOpts::default(),
            true,
        );
        if r.1.is_pass() {
            let next = if from_client {
                &mut self.cseq
            } else {
                &mut self.sseq
            };
            *next = next.wrapping_add(data.len() as u32);
        }
        r
    }
    /// Handshake plus the 220 / USER / 331 exchange.
    fn login(&mut self, helper: bool) {
        self.handshake(helper);
        for (server, line) in [
            (true, &b"220 hi\r\n"[..]),
            (false, b"USER a\r\n"),
            (true, b"331 ok\r\n"),
        ] {
            let (t, r) = self.data(!server, line);
            assert_eq!((t.state, r), (Est, ConfirmResult::Pass));
        }
    }
    fn control_key(&self) -> FlowKey {
        FlowKey::from_parsed(&parsed(&seg(self.c, self.s, ACK, 0, 0, b""))).unwrap()
    }
    fn control_view(&self) -> EntryView {
        self.h
            .t
            .get(&self.control_key(), self.h.now)
            .expect("control entry")
    }
    fn exps(&self) -> usize {
        self.h.t.expectations().len()
    }
    fn adv(&mut self, secs: u64) {
        self.h.now += secs * NS;
    }
    /// A data connection's SYN from `src` to `dst` (ISN 7000).
    fn syn(&mut self, src: &str, dst: &str) -> Track {
        self.go(&seg(src, dst, SYN, 7000, 0, b""))
    }
}

#[track_caller]
fn est_pass(r: (Track, ConfirmResult)) {
    assert_eq!((r.0.state, r.1), (Est, ConfirmResult::Pass), "{:?}", r.0);
}

#[track_caller]
fn helper_drop(r: (Track, ConfirmResult)) {
    assert_eq!(
        (r.0.state, r.1),
        (Est, ConfirmResult::HelperDrop),
        "{:?}",
        r.0
    );
}

#[test]
fn f01_pasv_227() {
    let mut f = Ftp::new();
    f.login(true);
    est_pass(f.sdata(b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n"));
    assert_eq!(f.exps(), 1);
    let l = f.h.t.expectations().list(f.h.now);
    assert_eq!(
        l[0].conntrack_line(),
        "300 proto=6 src=10.0.0.1 dst=10.0.0.2 sport=0 dport=50000 \
         mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 \
         master-src=10.0.0.1 master-dst=10.0.0.2 sport=40021 dport=21 class=0 helper=ftp"
    );
    let d = "10.0.0.1:41000";
    let s = "10.0.0.2:50000";
    let t = f.syn(d, s);
    assert_eq!(t.state, Rel);
    assert!(t.status.has(CtStatus::EXPECTED));
    assert_eq!(f.exps(), 0, "one-shot");
    // The same SYN again: still RELATED (no reply yet).
    assert_eq!(f.syn(d, s).state, Rel);
    let t = f.go(&seg(s, d, SYN | ACK, 9000, 7001, b""));
    assert_eq!((t.state, t.dir), (Est, Direction::Reply));
    let t = f.go(&seg(d, s, ACK, 7001, 9001, b""));
    assert_eq!(t.state, Est);
    assert!(t.status.has(CtStatus::EXPECTED | CtStatus::ASSURED));
    // The data entry has no helper and is linked to its master.
    let dv =
        f.h.t
            .get(
                &FlowKey::from_parsed(&parsed(&seg(d, s, ACK, 0, 0, b""))).unwrap(),
                f.h.now,
            )
            .unwrap();
    assert_eq!(dv.helper, None);
    assert_eq!(dv.master, Some((0, f.control_view().handle)));
    assert_eq!(f.control_view().helper, Some(HelperKind::Ftp));
    // F10: expectations are one-shot.
    assert_eq!(f.syn("10.0.0.1:41001", s).state, New);
    let st = f.h.t.expectations().stats();
    assert_eq!((st.created, st.used), (1, 1));
}

#[test]
fn f02_active_port() {
    let mut f = Ftp::new();
    f.login(true);
    est_pass(f.cdata(b"PORT 10,0,0,1,156,64\r\n"));
    assert_eq!(f.exps(), 1);
    let t = f.syn("10.0.0.2:20", "10.0.0.1:40000");
    assert_eq!(t.state, Rel);
    let t = f.go(&seg(
        "10.0.0.1:40000",
        "10.0.0.2:20",
        SYN | ACK,
        9000,
        7001,
        b"",
    ));
    assert_eq!(t.state, Est);
}

#[test]
fn f03_epsv_229() {
    let mut f = Ftp::new();
    f.login(true);
    est_pass(f.sdata(b"229 Entering Extended Passive Mode (|||6446|)\r\n"));
    assert_eq!(f.syn("10.0.0.1:41000", "10.0.0.2:6446").state, Rel);
}

#[test]
fn f04_eprt() {
    let mut f = Ftp::new();
    f.login(true);
    est_pass(f.cdata(b"EPRT |1|10.0.0.1|6275|\r\n"));
    assert_eq!(f.syn("10.0.0.2:20", "10.0.0.1:6275").state, Rel);
}

#[test]
fn f05_port_other_address_no_expectation() {
    let mut f = Ftp::new();
    f.login(true);
    est_pass(f.cdata(b"PORT 10,0,0,99,156,64\r\n"));
    assert_eq!(f.exps(), 0);
    assert_eq!(f.syn("10.0.0.2:20", "10.0.0.99:40000").state, New);
    assert_eq!(f.syn("10.0.0.2:20", "10.0.0.1:40000").state, New);
}

#[test]
fn f06_eprt_wrong_family_dropped_control_unharmed() {
    let mut f = Ftp::new();
    f.login(true);
    helper_drop(f.cdata(b"EPRT |2|::1|6275|\r\n"));
    assert_eq!(f.exps(), 0);
    let v = f.control_view();
    assert_eq!(v.tcp_state, Some(TcpState::Established));
    assert!(v.status.has(CtStatus::ASSURED));
    // The dropped segment did not move the line start: the next command at the same
    // seq is parsed.
    est_pass(f.cdata(b"PORT 10,0,0,1,156,64\r\n"));
    assert_eq!(f.exps(), 1);
    est_pass(f.sdata(b"200 ok\r\n"));
}

#[test]
fn f07_partial_matches_dropped() {
    let mut f = Ftp::new();
    f.login(true);
    helper_drop(f.cdata(b"POR"));
    helper_drop(f.cdata(b"PORT abc\r\n"));
    helper_drop(f.cdata(b"port"));
    helper_drop(f.cdata(b"PORT 10,0,0,1,156\r\n"));
    helper_drop(f.cdata(b"EPRT |1|10.0.0.1|0|\r\n"));
    helper_drop(f.sdata(b"227 none\r\n"));
    helper_drop(f.sdata(b"229 (|x|6446|)\r\n"));
    helper_drop(f.sdata(b"22"));
    assert_eq!(f.exps(), 0);
    // The control connection is unharmed: still ESTABLISHED both ways.
    est_pass(f.cdata(b"NOOP\r\n"));
    est_pass(f.sdata(b"200 ok\r\n"));
    assert_eq!(f.control_view().tcp_state, Some(TcpState::Established));
}

#[test]
fn f08_first_payload_never_parsed() {
    let mut f = Ftp::new();
    f.handshake(true);
    est_pass(f.cdata(b"PORT 10,0,0,1,156,64\r\n"));
    assert_eq!(f.exps(), 0);
    assert_eq!(f.syn("10.0.0.2:20", "10.0.0.1:40000").state, New);
    // The second line of the client is at a remembered line start: parsed.
    est_pass(f.cdata(b"PORT 10,0,0,1,156,65\r\n"));
    assert_eq!(f.exps(), 1);
}

#[test]
fn f08b_not_at_line_start_ignored() {
    let mut f = Ftp::new();
    f.login(true);
    // A segment not ending in '\n': the next one does not start a line.
    est_pass(f.cdata(b"NOOP"));
    est_pass(f.cdata(b"PORT 10,0,0,1,156,64\r\n"));
    assert_eq!(f.exps(), 0);
    // "POR" in the middle of a line is not a partial match either.
    est_pass(f.cdata(b"X"));
    est_pass(f.cdata(b"POR"));
}

#[test]
fn f09_newer_expectation_evicts_older() {
    let mut f = Ftp::new();
    f.login(true);
    est_pass(f.sdata(b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n"));
    est_pass(f.sdata(b"227 Entering Passive Mode (10,0,0,2,195,81).\r\n"));
    assert_eq!(f.exps(), 1);
    assert_eq!(f.h.t.expectations().stats().evicted, 1);
    assert_eq!(f.syn("10.0.0.1:41000", "10.0.0.2:50000").state, New);
    assert_eq!(f.syn("10.0.0.1:41001", "10.0.0.2:50001").state, Rel);
}

#[test]
fn f09b_same_tuple_same_master_replaced() {
    let mut f = Ftp::new();
    f.login(true);
    est_pass(f.sdata(b"227 (10,0,0,2,195,80)\r\n"));
    f.adv(100);
    est_pass(f.sdata(b"227 (10,0,0,2,195,80)\r\n"));
    assert_eq!(f.exps(), 1);
    assert_eq!(f.h.t.expectations().list(f.h.now)[0].timeout_secs, 300);
    assert_eq!(f.h.t.expectations().stats().created, 2);
}

#[test]
fn f11_expectation_expires_after_300s() {
    let mut f = Ftp::new();
    f.login(true);
    est_pass(f.sdata(b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n"));
    f.adv(100);
    est_pass(f.cdata(b"NOOP\r\n")); // the control connection is alive; no refresh
    assert_eq!(f.h.t.expectations().list(f.h.now)[0].timeout_secs, 200);
    f.adv(199);
    assert_eq!(f.h.t.expectations().list(f.h.now).len(), 1);
    f.adv(1); // exactly 300 s: gone
    assert!(f.h.t.expectations().list(f.h.now).is_empty());
    f.adv(1);
    assert_eq!(f.syn("10.0.0.1:41000", "10.0.0.2:50000").state, New);
    assert_eq!(f.exps(), 0);
    assert_eq!(f.h.t.expectations().stats().expired, 1);
}

#[test]
fn f11b_sweep_reaps_expired() {
    let mut f = Ftp::new();
    f.login(true);
    est_pass(f.sdata(b"227 (10,0,0,2,195,80)\r\n"));
    f.h.t.expectations().maybe_expire(f.h.now);
    assert_eq!(f.exps(), 1);
    f.adv(301);
    f.h.t.expectations().maybe_expire(f.h.now);
    assert_eq!(f.exps(), 0);
}

#[test]
fn f12_no_helper_no_expectation() {
    let mut f = Ftp::new();
    f.login(false);
    est_pass(f.sdata(b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n"));
    assert_eq!(f.exps(), 0);
    assert_eq!(f.syn("10.0.0.1:41000", "10.0.0.2:50000").state, New);
}

#[test]
fn f13_lower_case_and_no_parentheses() {
    let mut f = Ftp::new();
    f.login(true);
    est_pass(f.cdata(b"port 10,0,0,1,156,64\r\n"));
    est_pass(f.sdata(b"200 ok\r\n"));
    assert_eq!(f.syn("10.0.0.2:20", "10.0.0.1:40000").state, Rel);
    est_pass(f.sdata(b"227 =10,0,0,2,195,80\r\n"));
    assert_eq!(f.syn("10.0.0.1:41000", "10.0.0.2:50000").state, Rel);
}

#[test]
fn f14_master_deleted_expectations_go() {
    let mut f = Ftp::new();
    f.login(true);
    est_pass(f.sdata(b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n"));
    assert_eq!(f.exps(), 1);
    let k = f.control_key();
    assert!(f.h.t.delete(&k));
    assert_eq!(f.exps(), 0);
    assert_eq!(f.h.t.expectations().stats().master_gone, 1);
    assert_eq!(f.syn("10.0.0.1:41000", "10.0.0.2:50000").state, New);
}

#[test]
fn master_flushed_or_expired_expectations_go() {
    // Flush.
    let mut f = Ftp::new();
    f.login(true);
    est_pass(f.sdata(b"227 (10,0,0,2,195,80)\r\n"));
    f.h.t.flush();
    assert_eq!(f.exps(), 0);
    // Expiry by the sweeper.
    let cfg = Config {
        tcp_timeout_established: 10,
        ..Config::default()
    };
    let mut f = Ftp::with(ConnTable::new(64, cfg));
    f.login(true);
    est_pass(f.sdata(b"227 (10,0,0,2,195,80)\r\n"));
    f.adv(11);
    f.h.t.expire(f.h.now, 1 << 20);
    assert_eq!(f.exps(), 0);
    // Expiry reaped lazily by a lookup of the master's tuple.
    let mut f = Ftp::with(ConnTable::new(64, cfg));
    f.login(true);
    est_pass(f.sdata(b"227 (10,0,0,2,195,80)\r\n"));
    f.adv(11);
    let t = f.go(&seg(CC, SC, SYN, 1, 0, b""));
    assert_eq!(t.state, New);
    assert_eq!(f.exps(), 0);
    // An ordinary entry's removal never touches the table.
    assert_eq!(f.h.t.expectations().stats().master_gone, 1);
}

#[test]
fn helper_skips_dropped_packets_and_empty_segments() {
    let mut f = Ftp::new();
    f.login(true);
    // A 227 the ruleset dropped creates nothing.
    let fr = seg(
        SC,
        CC,
        PSH | ACK,
        f.sseq,
        f.cseq,
        b"227 (10,0,0,2,195,80)\r\n",
    );
    let (_, r) = f.run(&fr, TrackOpts::default(), false);
    assert_eq!(r, ConfirmResult::NotAccepted);
    assert_eq!(f.exps(), 0);
    // A pure ACK is not parsed (and a partial-looking nothing cannot drop it).
    let a = seg(CC, SC, ACK, f.cseq, f.sseq, b"");
    assert_eq!(f.go(&a).state, Est);
}

#[test]
fn global_limit_and_busy_drop() {
    // expect_max = 1: the second master's registration fails (-EMFILE) -> dropped.
    let cfg = Config {
        expect_max: 1,
        ..Config::default()
    };
    let mut f = Ftp::with(ConnTable::new(64, cfg));
    f.login(true);
    est_pass(f.sdata(b"227 (10,0,0,2,195,80)\r\n"));
    let shared = f.h.t;
    let mut g = Ftp::with(shared);
    g.c = "10.0.0.1:40022";
    g.login(true);
    helper_drop(g.sdata(b"227 (10,0,0,2,195,81)\r\n"));
    assert_eq!(g.exps(), 1);
    assert_eq!(g.h.t.expectations().stats().register_failed, 1);
    // -EBUSY: another master expecting the same tuple (C:* -> S:50000) -> dropped.
    let mut h = Ftp::with(ConnTable::new(64, Config::default()));
    h.login(true);
    est_pass(h.sdata(b"227 (10,0,0,2,195,80)\r\n"));
    let t = h.h.t;
    let mut k = Ftp::with(t);
    k.c = "10.0.0.1:40023";
    k.login(true);
    helper_drop(k.sdata(b"227 (10,0,0,2,195,80)\r\n"));
    assert_eq!(k.exps(), 1);
    let st = k.h.t.expectations().stats();
    assert_eq!(st.register_failed, 1);
    // The refused control connection is unharmed.
    est_pass(k.sdata(b"200 ok\r\n"));
}

#[test]
fn two_shards_share_expectations() {
    let exp = Arc::new(ExpectTable::new());
    let a = ConnTable::with_expectations(64, Config::default(), exp.clone(), 0);
    let mut b = ConnTable::with_expectations(64, Config::default(), exp.clone(), 1);
    let mut f = Ftp::with(a);
    f.login(true);
    est_pass(f.sdata(b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n"));
    assert_eq!(exp.len(), 1);
    let master = f.control_view().handle;
    // The data connection's first packet lands on shard b.
    let syn = seg("10.0.0.1:41000", "10.0.0.2:50000", SYN, 7000, 0, b"");
    let p = parsed(&syn);
    let t = b.track(&syn, &p, f.h.now, TrackOpts::default());
    assert_eq!(t.state, Rel);
    assert!(b.confirm(&t, true, &syn, &p, f.h.now).is_pass());
    let v = b.get(&FlowKey::from_parsed(&p).unwrap(), f.h.now).unwrap();
    assert_eq!(v.master, Some((0, master)));
    assert!(v.status.has(CtStatus::EXPECTED | CtStatus::CONFIRMED));
    assert_eq!(exp.len(), 0);
    // A second expectation, then the master dies on shard a: gone for shard b too.
    est_pass(f.sdata(b"227 (10,0,0,2,195,81)\r\n"));
    assert_eq!(exp.len(), 1);
    let k = f.control_key();
    f.h.t.delete(&k);
    assert_eq!(exp.len(), 0);
    let syn = seg("10.0.0.1:41001", "10.0.0.2:50001", SYN, 7000, 0, b"");
    let p = parsed(&syn);
    assert_eq!(b.track(&syn, &p, f.h.now, TrackOpts::default()).state, New);
}

#[test]
fn ipv6_eprt_and_epsv() {
    let mut f = Ftp::new();
    f.c = "[2001:db8::1]:40021";
    f.s = "[2001:db8::2]:21";
    f.login(true);
    est_pass(f.cdata(b"EPRT |2|2001:db8::1|6275|\r\n"));
    let t = f.syn("[2001:db8::2]:20", "[2001:db8::1]:6275");
    assert_eq!(t.state, Rel);
    est_pass(f.sdata(b"229 Entering Extended Passive Mode (|||6446|)\r\n"));
    assert_eq!(
        f.syn("[2001:db8::1]:41000", "[2001:db8::2]:6446").state,
        Rel
    );
    // EPRT with the IPv4 family digit on an IPv6 control connection: dropped.
    helper_drop(f.cdata(b"EPRT |1|10.0.0.1|6275|\r\n"));
    // PORT on IPv6 (227-style numbers) names an IPv4 address: no expectation.
    est_pass(f.cdata(b"PORT 10,0,0,1,156,64\r\n"));
    assert_eq!(f.exps(), 0);
}

#[test]
fn expected_invalid_first_packet_consumes_expectation() {
    // Linux unlinks the expectation when it allocates the candidate, before the TCP
    // handler refuses an invalid first packet.
    let mut f = Ftp::new();
    f.login(true);
    est_pass(f.sdata(b"227 (10,0,0,2,195,80)\r\n"));
    let t = f.go(&seg(
        "10.0.0.1:41000",
        "10.0.0.2:50000",
        SYN | ACK,
        1,
        1,
        b"",
    ));
    assert_eq!(t.state, CtState::Invalid);
    assert_eq!(f.exps(), 0);
}
