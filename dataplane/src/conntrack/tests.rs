//! Conntrack tests: every case of `docs/CONNTRACK.md` §7 (TCP, UDP, ICMP/ICMPv6, generic,
//! NOTRACK, table limits) plus layout, formatting and property tests.
//!
//! Notation as in `docs/CONNTRACK.md` §7: C=10.0.0.1:40000, S=10.0.0.2:80, R=10.0.0.254, X=10.0.0.99,
//! ISNs c=1000, s=5000, window 64240, no options.

use super::*;
use crate::packet::build::{L4Spec, PacketSpec};
use crate::packet::tcp_flags::{ACK, CWR, ECE, FIN, PSH, RST, SYN, URG};
use crate::packet::{self, Frame, Parsed};
use std::net::{IpAddr, SocketAddr};
use CtState::{Established as Est, Invalid as Inv, New, Related as Rel, Untracked as Untr};
use TcpState as TS;

const C: &str = "10.0.0.1:40000";
const S: &str = "10.0.0.2:80";
const C6: &str = "[2001:db8::1]:40000";
const S6: &str = "[2001:db8::2]:80";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
fn tcp(src: &str, dst: &str, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    PacketSpec::tcp(sock(src), sock(dst), flags, seq, ack).to_vec()
}
fn tcp_p(src: &str, dst: &str, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    PacketSpec::tcp(sock(src), sock(dst), flags, seq, ack)
        .payload(payload)
        .to_vec()
}
fn tcp_w(src: &str, dst: &str, flags: u8, seq: u32, ack: u32, win: u16) -> Vec<u8> {
    PacketSpec::tcp(sock(src), sock(dst), flags, seq, ack)
        .window(win)
        .to_vec()
}
fn udp(src: &str, dst: &str) -> Vec<u8> {
    PacketSpec::udp(sock(src), sock(dst))
        .payload(b"query")
        .to_vec()
}
fn echo(src: &str, dst: &str, ty: u8, id: u16, seq: u16) -> Vec<u8> {
    PacketSpec::icmp_echo(ip(src), ip(dst), ty, id, seq).to_vec()
}
/// An ICMP(v6) error quoting `inner` (a frame) from its IP header, cut to `quote` bytes.
fn icmp_err(src: &str, dst: &str, ty: u8, code: u8, inner: &[u8], quote: usize) -> Vec<u8> {
    let q = &inner[14..(14 + quote).min(inner.len())];
    PacketSpec::icmp(ip(src), ip(dst), ty, code, [0; 4])
        .payload(q)
        .to_vec()
}
fn parsed(f: &[u8]) -> Parsed {
    match packet::parse(f).expect("parses") {
        Frame::Ip(p) => p,
        Frame::NonIp(e) => panic!("not ip: {e:#x}"),
    }
}
/// Recomputes the IPv4 header checksum of a frame (after patching it).
fn fix_ip_csum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let c = packet::checksum::fold(packet::checksum::sum(&f[14..34], 0));
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

struct H {
    t: ConnTable,
    now: Nanos,
}

impl H {
    fn new() -> H {
        H::cfg(Config::default())
    }
    fn cfg(c: Config) -> H {
        H {
            t: ConnTable::new(1024, c),
            now: 1000 * NS,
        }
    }
    fn adv(&mut self, secs: f64) {
        self.now += (secs * 1e9).round() as u64;
    }
    fn run(&mut self, f: &[u8], opts: TrackOpts, accept: bool) -> Track {
        let p = parsed(f);
        let t = self.t.track(f, &p, self.now, opts);
        let _ = self.t.confirm(&t, accept, f, &p, self.now);
        t
    }
    fn go(&mut self, f: &[u8]) -> Track {
        self.run(f, TrackOpts::default(), true)
    }
    fn dropped(&mut self, f: &[u8]) -> Track {
        self.run(f, TrackOpts::default(), false)
    }
    fn notrack(&mut self, f: &[u8]) -> Track {
        self.run(
            f,
            TrackOpts {
                notrack: true,
                ..Default::default()
            },
            true,
        )
    }
    fn view(&self, f: &[u8]) -> Option<EntryView> {
        let p = parsed(f);
        self.t.get(&FlowKey::from_parsed(&p).unwrap(), self.now)
    }
    fn secs(&self, f: &[u8]) -> u32 {
        self.view(f).expect("entry").timeout_secs
    }
}

#[track_caller]
fn expect(t: &Track, st: CtState, tcp: Option<TcpState>) {
    assert_eq!(t.state, st, "{t:?}");
    if tcp.is_some() {
        assert_eq!(t.tcp_state, tcp, "{t:?}");
    }
}

#[track_caller]
fn inv(t: &Track, r: InvalidReason) {
    assert_eq!(t.state, Inv, "{t:?}");
    assert_eq!(t.reason, Some(r), "{t:?}");
}

fn syn() -> Vec<u8> {
    tcp(C, S, SYN, 1000, 0)
}

/// H: the handshake, checked as T1.
fn hs(h: &mut H) {
    let t = h.go(&syn());
    expect(&t, New, Some(TS::SynSent));
    assert_eq!(h.secs(&syn()), 120);
    let t = h.go(&tcp(S, C, SYN | ACK, 5000, 1001));
    expect(&t, Est, Some(TS::SynRecv));
    assert_eq!(t.dir, Direction::Reply);
    assert_eq!(h.secs(&syn()), 60);
    let t = h.go(&tcp(C, S, ACK, 1001, 5001));
    expect(&t, Est, Some(TS::Established));
    assert!(t.status.has(CtStatus::ASSURED | CtStatus::SEEN_REPLY));
    assert_eq!(h.secs(&syn()), 432_000);
}

// ----- layout, state table, formatting ------------------------------------------------

#[test]
fn entry_fits_one_cache_line() {
    assert!(std::mem::size_of::<super::table::Entry>() <= 64);
    assert_eq!(std::mem::align_of::<super::table::Entry>(), 64);
    assert_eq!(ENTRY_SIZE, 64);
}

#[test]
fn state_table_matches_spec_cells() {
    use super::tcp::*;
    // A few cells of `docs/CONNTRACK.md` §2.2, by (dir, class, old).
    assert_eq!(TCP_CONNTRACKS[0][TCP_SYN_SET as usize][S_TW as usize], S_SS);
    assert_eq!(
        TCP_CONNTRACKS[0][TCP_SYNACK_SET as usize][S_S2 as usize],
        S_SR
    );
    assert_eq!(TCP_CONNTRACKS[0][TCP_ACK_SET as usize][S_LA as usize], S_TW);
    assert_eq!(TCP_CONNTRACKS[1][TCP_SYN_SET as usize][S_SS as usize], S_S2);
    assert_eq!(TCP_CONNTRACKS[1][TCP_SYN_SET as usize][S_TW as usize], S_SS);
    assert_eq!(
        TCP_CONNTRACKS[1][TCP_SYNACK_SET as usize][S_ES as usize],
        S_IG
    );
    assert_eq!(TCP_CONNTRACKS[1][TCP_ACK_SET as usize][S_SS as usize], S_IG);
    assert_eq!(TCP_CONNTRACKS[1][TCP_ACK_SET as usize][S_S2 as usize], S_IG);
    assert_eq!(TCP_CONNTRACKS[1][TCP_RST_SET as usize][S_NO as usize], S_IV);
    for dir in &TCP_CONNTRACKS {
        assert!(dir[TCP_NONE_SET as usize].iter().all(|&s| s == S_IV));
    }
}

#[test]
fn invalid_reasons_have_names() {
    let mut names: Vec<_> = InvalidReason::ALL.iter().map(|r| r.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), InvalidReason::ALL.len());
    assert!(InvalidReason::ALL
        .iter()
        .all(|r| r.spec_id().starts_with("INV-")));
}

#[test]
fn conntrack_lines() {
    let mut h = H::new();
    hs(&mut h);
    assert_eq!(
        h.view(&syn()).unwrap().conntrack_line(),
        "tcp      6 432000 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 \
         src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED] mark=0 use=1"
    );
    let u = udp("10.0.0.1:5353", "10.0.0.2:53");
    h.go(&u);
    assert_eq!(
        h.view(&u).unwrap().conntrack_line(),
        "udp      17 30 src=10.0.0.1 dst=10.0.0.2 sport=5353 dport=53 [UNREPLIED] \
         src=10.0.0.2 dst=10.0.0.1 sport=53 dport=5353 mark=0 use=1"
    );
    let e = echo("10.0.0.1", "10.0.0.2", 8, 7, 1);
    h.go(&e);
    h.adv(1.0);
    h.go(&echo("10.0.0.2", "10.0.0.1", 0, 7, 1));
    assert_eq!(
        h.view(&e).unwrap().conntrack_line(),
        "icmp     1 30 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 \
         src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7 mark=0 use=1"
    );
    assert_eq!(h.t.iter(h.now).count(), 3);
}

// ----- TCP ----------------------------------------------------------------------------

#[test]
fn t01_handshake() {
    let mut h = H::new();
    hs(&mut h);
    assert_eq!(h.t.len(), 1);
}

#[test]
fn t02_data_unacked_then_acked() {
    let mut h = H::new();
    hs(&mut h);
    let d = tcp_p(C, S, PSH | ACK, 1001, 5001, &[0u8; 100]);
    expect(&h.go(&d), Est, Some(TS::Established));
    assert_eq!(h.secs(&d), 300);
    expect(
        &h.go(&tcp(S, C, ACK, 5001, 1101)),
        Est,
        Some(TS::Established),
    );
    assert_eq!(h.secs(&d), 432_000);
}

fn t03_close(h: &mut H) {
    hs(h);
    expect(
        &h.go(&tcp(C, S, FIN | ACK, 1001, 5001)),
        Est,
        Some(TS::FinWait),
    );
    assert_eq!(h.secs(&syn()), 120);
    expect(&h.go(&tcp(S, C, ACK, 5001, 1002)), Est, Some(TS::CloseWait));
    assert_eq!(h.secs(&syn()), 60);
    expect(
        &h.go(&tcp(S, C, FIN | ACK, 5001, 1002)),
        Est,
        Some(TS::LastAck),
    );
    assert_eq!(h.secs(&syn()), 30);
    expect(&h.go(&tcp(C, S, ACK, 1002, 5002)), Est, Some(TS::TimeWait));
    assert_eq!(h.secs(&syn()), 120);
}

#[test]
fn t03_close_sequence() {
    let mut h = H::new();
    t03_close(&mut h);
}

#[test]
fn t04_reopen_from_time_wait() {
    let mut h = H::new();
    t03_close(&mut h);
    let s = tcp(C, S, SYN, 90000, 0);
    let t = h.go(&s);
    expect(&t, New, Some(TS::SynSent));
    let v = h.view(&s).unwrap();
    assert_eq!(v.tcp_state, Some(TS::SynSent));
    assert!(!v.status.has(CtStatus::SEEN_REPLY));
    assert_eq!(v.timeout_secs, 120);
    assert_eq!(h.t.len(), 1);
}

#[test]
fn t05_syn_retransmit_does_not_refresh() {
    let mut h = H::new();
    expect(&h.go(&syn()), New, Some(TS::SynSent));
    h.adv(10.0);
    expect(&h.go(&syn()), New, Some(TS::SynSent));
    assert_eq!(h.secs(&syn()), 110);
}

#[test]
fn t06_rst_before_reply_deletes() {
    let mut h = H::new();
    expect(&h.go(&syn()), New, None);
    let t = h.go(&tcp(S, C, RST | ACK, 0, 1001));
    expect(&t, Est, None);
    assert!(h.view(&syn()).is_none());
    assert_eq!(h.t.len(), 0);
    expect(&h.go(&syn()), New, Some(TS::SynSent));
}

#[test]
fn t07_synack_bad_ack() {
    let mut h = H::new();
    h.go(&syn());
    inv(
        &h.go(&tcp(S, C, SYN | ACK, 5000, 1002)),
        InvalidReason::TcpWindowAck,
    );
    assert_eq!(h.view(&syn()).unwrap().tcp_state, Some(TS::SynSent));
}

#[test]
fn t08_loose_pickup() {
    let mut h = H::new();
    let a = tcp(C, S, ACK, 7000, 9000);
    expect(&h.go(&a), New, Some(TS::Established));
    assert_eq!(h.secs(&a), 300);
    expect(
        &h.go(&tcp(S, C, ACK, 9000, 7000)),
        Est,
        Some(TS::Established),
    );
    assert_eq!(h.secs(&a), 300);
    let t = h.go(&a);
    expect(&t, Est, Some(TS::Established));
    assert!(t.status.has(CtStatus::ASSURED));
    assert_eq!(h.secs(&a), 432_000);
}

#[test]
fn t09_no_pickup_without_loose() {
    let mut h = H::cfg(Config {
        tcp_loose: false,
        ..Config::default()
    });
    inv(
        &h.go(&tcp(C, S, ACK, 7000, 9000)),
        InvalidReason::TcpInvalidFirst,
    );
    assert_eq!(h.t.len(), 0);
}

#[test]
fn t10_invalid_first_packets() {
    let mut h = H::new();
    inv(
        &h.go(&tcp(C, S, SYN | ACK, 1000, 1)),
        InvalidReason::TcpInvalidFirst,
    );
    inv(
        &h.go(&tcp(C, S, FIN | ACK, 1000, 1)),
        InvalidReason::TcpInvalidFirst,
    );
    inv(
        &h.go(&tcp(C, S, RST, 1000, 0)),
        InvalidReason::TcpInvalidFirst,
    );
    assert_eq!(h.t.len(), 0);
    assert_eq!(h.t.stats().invalid, 3);
}

#[test]
fn t11_bad_flag_combinations() {
    let mut h = H::new();
    for f in [
        0,
        FIN,
        SYN | FIN,
        SYN | RST,
        FIN | PSH | URG,
        SYN | ACK | URG,
        RST | FIN,
        URG,
        RST | ACK | URG,
    ] {
        inv(&h.go(&tcp(C, S, f, 1000, 0)), InvalidReason::TcpBadFlags);
    }
    assert_eq!(h.t.len(), 0);
}

#[test]
fn t12_syn_with_ece_cwr() {
    let mut h = H::new();
    expect(
        &h.go(&tcp(C, S, SYN | ECE | CWR, 1000, 0)),
        New,
        Some(TS::SynSent),
    );
}

#[test]
fn t13_ack_urg_psh() {
    let mut h = H::new();
    hs(&mut h);
    expect(
        &h.go(&tcp_p(C, S, ACK | URG | PSH, 1001, 5001, &[1; 10])),
        Est,
        Some(TS::Established),
    );
}

#[test]
fn t14_bad_data_offset() {
    let mut h = H::new();
    // doff = 4
    let mut f = syn();
    f[14 + 20 + 12] = 4 << 4;
    inv(&h.go(&f), InvalidReason::TcpBadDataOffset);
    // doff = 15 with only 20 bytes present
    let mut f = syn();
    f[14 + 20 + 12] = 15 << 4;
    inv(&h.go(&f), InvalidReason::TcpBadDataOffset);
    // a 12-byte TCP segment
    let mut f = syn();
    f.truncate(14 + 20 + 12);
    f[16..18].copy_from_slice(&32u16.to_be_bytes());
    fix_ip_csum(&mut f);
    let t = h.go(&f);
    assert_eq!(t.state, Inv);
    assert_eq!(h.t.len(), 0);
}

#[test]
fn t15_bad_checksum() {
    let mut f = syn();
    f[14 + 20 + 16] ^= 0x55;
    let mut h = H::new();
    inv(&h.go(&f), InvalidReason::TcpBadChecksum);
    let mut h = H::cfg(Config {
        checksum: false,
        ..Config::default()
    });
    expect(&h.go(&f), New, Some(TS::SynSent));
}

#[test]
fn t16_seq_beyond_window() {
    let d = tcp_p(C, S, ACK, 1001 + 200_000, 5001, &[0; 10]);
    let mut h = H::new();
    hs(&mut h);
    inv(&h.go(&d), InvalidReason::TcpWindowSeq);
    let mut h = H::cfg(Config {
        tcp_be_liberal: true,
        ..Config::default()
    });
    hs(&mut h);
    expect(&h.go(&d), Est, Some(TS::Established));
    // Window data unchanged: the in-window data after it is still fine and acked.
    expect(
        &h.go(&tcp(S, C, ACK, 5001, 1001)),
        Est,
        Some(TS::Established),
    );
    assert_eq!(h.secs(&d), 432_000);
}

#[test]
fn t17_ack_of_unseen_data() {
    let mut h = H::new();
    hs(&mut h);
    inv(
        &h.go(&tcp(S, C, ACK, 5001, 1501)),
        InvalidReason::TcpWindowAck,
    );
}

#[test]
fn t18_old_retransmission_ignored() {
    let mut h = H::new();
    hs(&mut h);
    h.adv(5.0);
    let t = h.go(&tcp(C, S, ACK, 1001u32.wrapping_sub(70_000), 5001));
    expect(&t, Est, Some(TS::Established));
    assert_eq!(h.secs(&syn()), 431_995);
}

#[test]
fn t19_rst_then_reopen() {
    let mut h = H::new();
    hs(&mut h);
    expect(&h.go(&tcp(C, S, RST, 1001, 0)), Est, Some(TS::Close));
    assert_eq!(h.secs(&syn()), 10);
    let s = tcp(C, S, SYN, 3000, 0);
    expect(&h.go(&s), New, Some(TS::SynSent));
    assert_eq!(h.secs(&s), 120);
}

#[test]
fn t20_rst_in_window_not_exact() {
    let mut h = H::new();
    hs(&mut h);
    expect(&h.go(&tcp(S, C, RST, 5011, 0)), Est, Some(TS::Established));
    assert_eq!(h.secs(&syn()), 10);
    expect(
        &h.go(&tcp(C, S, ACK, 1001, 5011)),
        Est,
        Some(TS::Established),
    );
    assert_eq!(h.secs(&syn()), 432_000);

    let mut h = H::new();
    hs(&mut h);
    h.go(&tcp(S, C, RST, 5011, 0));
    expect(
        &h.go(&tcp(C, S, ACK, 1001, 5001)),
        Est,
        Some(TS::Established),
    );
    assert_eq!(h.secs(&syn()), 300);
}

#[test]
fn t21_rst_below_maxack() {
    let r = tcp(C, S, RST, 900, 0);
    let mut h = H::new();
    hs(&mut h);
    inv(&h.go(&r), InvalidReason::TcpInvalidRst);
    let mut h = H::cfg(Config {
        tcp_ignore_invalid_rst: true,
        ..Config::default()
    });
    hs(&mut h);
    expect(&h.go(&r), Est, Some(TS::Established));
    assert_eq!(h.secs(&syn()), 10);
}

#[test]
fn t22_rst_at_end_of_data_train() {
    let mut h = H::new();
    hs(&mut h);
    expect(
        &h.go(&tcp_p(C, S, PSH | ACK, 1001, 5001, &[0; 100])),
        Est,
        None,
    );
    expect(&h.go(&tcp(C, S, RST, 1101, 0)), Est, Some(TS::Close));
    assert_eq!(h.secs(&syn()), 10);
}

#[test]
fn t23_rst_in_closing_state_unchecked() {
    let mut h = H::new();
    hs(&mut h);
    expect(
        &h.go(&tcp(C, S, FIN | ACK, 1001, 5001)),
        Est,
        Some(TS::FinWait),
    );
    expect(&h.go(&tcp(S, C, RST, 123_456, 0)), Est, Some(TS::Close));
    assert_eq!(h.secs(&syn()), 10);
}

#[test]
fn t24_resync_on_new_syn() {
    let mut h = H::new();
    hs(&mut h);
    h.adv(1.0);
    expect(&h.go(&tcp(C, S, SYN, 77000, 0)), Est, Some(TS::Established));
    assert_eq!(h.secs(&syn()), 431_999); // ignored: no refresh
    expect(
        &h.go(&tcp(S, C, SYN | ACK, 88000, 77001)),
        Est,
        Some(TS::SynRecv),
    );
    expect(
        &h.go(&tcp(C, S, ACK, 77001, 88001)),
        Est,
        Some(TS::Established),
    );
    assert_eq!(h.secs(&syn()), 432_000);
}

#[test]
fn t25_syn_after_peer_rst() {
    let mut h = H::new();
    hs(&mut h);
    expect(&h.go(&tcp(S, C, RST, 5001, 0)), Est, Some(TS::Close));
    h.adv(5.0);
    expect(&h.go(&tcp(C, S, SYN, 77000, 0)), Est, Some(TS::Close));
    assert_eq!(h.secs(&syn()), 5);
    expect(
        &h.go(&tcp(S, C, SYN | ACK, 88000, 77001)),
        Est,
        Some(TS::SynRecv),
    );
    expect(
        &h.go(&tcp(C, S, ACK, 77001, 88001)),
        Est,
        Some(TS::Established),
    );
}

#[test]
fn t26_duplicate_acks_retrans_timer() {
    let mut h = H::new();
    hs(&mut h);
    let a = tcp(C, S, ACK, 1001, 5001);
    expect(&h.go(&a), Est, None);
    assert_eq!(h.secs(&a), 432_000);
    expect(&h.go(&a), Est, None);
    assert_eq!(h.secs(&a), 432_000);
    expect(&h.go(&a), Est, None);
    assert_eq!(h.secs(&a), 300);
    expect(
        &h.go(&tcp_w(C, S, ACK, 1001, 5001, 64000)),
        Est,
        Some(TS::Established),
    );
    assert_eq!(h.secs(&a), 432_000);
}

#[test]
fn t27_zero_window() {
    let mut h = H::new();
    hs(&mut h);
    expect(
        &h.go(&tcp_w(S, C, ACK, 5001, 1001, 0)),
        Est,
        Some(TS::Established),
    );
    assert_eq!(h.secs(&syn()), 300);
    expect(
        &h.go(&tcp_w(S, C, ACK, 5001, 1001, 64240)),
        Est,
        Some(TS::Established),
    );
    assert_eq!(h.secs(&syn()), 432_000);
}

#[test]
fn t28_simultaneous_open() {
    let mut h = H::new();
    expect(&h.go(&syn()), New, Some(TS::SynSent));
    h.adv(1.0);
    expect(&h.go(&tcp(S, C, SYN, 5000, 0)), Est, Some(TS::SynSent2));
    assert_eq!(h.secs(&syn()), 119);
    expect(
        &h.go(&tcp(C, S, SYN | ACK, 1000, 5001)),
        Est,
        Some(TS::SynRecv),
    );
    assert_eq!(h.secs(&syn()), 60);
    h.adv(1.0);
    expect(
        &h.go(&tcp(S, C, SYN | ACK, 5000, 1001)),
        Est,
        Some(TS::SynRecv),
    );
    assert_eq!(h.secs(&syn()), 59);
    let t = h.go(&tcp(C, S, ACK, 1001, 5001));
    expect(&t, Est, Some(TS::Established));
    assert!(t.status.has(CtStatus::ASSURED));
}

#[test]
fn t29_syn_payload_counts() {
    let mut h = H::new();
    expect(
        &h.go(&tcp_p(C, S, SYN, 1000, 0, &[7; 40])),
        New,
        Some(TS::SynSent),
    );
    expect(
        &h.go(&tcp(S, C, SYN | ACK, 5000, 1041)),
        Est,
        Some(TS::SynRecv),
    );
}

#[test]
fn t30_dropped_synack_still_updates() {
    let mut h = H::new();
    expect(&h.go(&syn()), New, None);
    let t = h.dropped(&tcp(S, C, SYN | ACK, 5000, 1001));
    expect(&t, Est, Some(TS::SynRecv));
    let t = h.go(&syn());
    expect(&t, Est, Some(TS::SynRecv));
    assert!(t.status.has(CtStatus::SEEN_REPLY));
}

#[test]
fn tcp_ipv6_handshake() {
    let mut h = H::new();
    expect(&h.go(&tcp(C6, S6, SYN, 1000, 0)), New, Some(TS::SynSent));
    expect(
        &h.go(&tcp(S6, C6, SYN | ACK, 5000, 1001)),
        Est,
        Some(TS::SynRecv),
    );
    expect(
        &h.go(&tcp(C6, S6, ACK, 1001, 5001)),
        Est,
        Some(TS::Established),
    );
    let v = h.view(&tcp(C6, S6, SYN, 1000, 0)).unwrap();
    assert!(v
        .conntrack_line()
        .contains("src=2001:db8::1 dst=2001:db8::2 sport=40000 dport=80"));
}

// ----- UDP ----------------------------------------------------------------------------

const UC: &str = "10.0.0.1:5353";
const US: &str = "10.0.0.2:53";

#[test]
fn u01_stream_after_two_seconds() {
    let mut h = H::new();
    let q = udp(UC, US);
    expect(&h.go(&q), New, None);
    assert_eq!(h.secs(&q), 30);
    h.adv(0.1);
    let t = h.go(&udp(US, UC));
    expect(&t, Est, None);
    assert!(t.status.has(CtStatus::SEEN_REPLY));
    assert!(!t.status.has(CtStatus::ASSURED));
    assert_eq!(h.secs(&q), 30);
    h.adv(2.9);
    let t = h.go(&q);
    expect(&t, Est, None);
    assert!(t.status.has(CtStatus::ASSURED));
    assert_eq!(h.secs(&q), 120);
}

#[test]
fn u02_quick_exchange_not_assured() {
    let mut h = H::new();
    let q = udp(UC, US);
    h.go(&q);
    h.adv(0.1);
    h.go(&udp(US, UC));
    h.adv(1.4);
    let t = h.go(&q);
    expect(&t, Est, None);
    assert!(!t.status.has(CtStatus::ASSURED));
    assert_eq!(h.secs(&q), 30);
}

#[test]
fn u03_expired_then_reverse_is_new() {
    let mut h = H::new();
    h.go(&udp(UC, US));
    h.adv(31.0);
    let r = udp(US, UC);
    let t = h.go(&r);
    expect(&t, New, None);
    let v = h.view(&r).unwrap();
    assert_eq!(packet::to_ip(v.family, &v.orig.src), ip("10.0.0.2"));
    assert_eq!(h.t.stats().expired_udp, 1);
}

#[test]
fn u04_bad_lengths() {
    let mut h = H::new();
    // length field 100 with 20 bytes present
    let mut f = PacketSpec::udp(sock(UC), sock(US))
        .payload(&[0; 12])
        .to_vec();
    f[38..40].copy_from_slice(&100u16.to_be_bytes());
    inv(&h.go(&f), InvalidReason::UdpBadLength);
    // length field 7
    f[38..40].copy_from_slice(&7u16.to_be_bytes());
    inv(&h.go(&f), InvalidReason::UdpBadLength);
    // a 6-byte UDP header
    let mut f = udp(UC, US);
    f.truncate(14 + 20 + 6);
    f[16..18].copy_from_slice(&26u16.to_be_bytes());
    fix_ip_csum(&mut f);
    inv(&h.go(&f), InvalidReason::UdpBadLength);
    assert_eq!(h.t.len(), 0);
}

#[test]
fn u05_checksums() {
    let mut zero4 = udp(UC, US);
    zero4[40..42].copy_from_slice(&[0, 0]);
    let mut zero6 = udp("[2001:db8::1]:5353", "[2001:db8::2]:53");
    zero6[14 + 40 + 6..14 + 40 + 8].copy_from_slice(&[0, 0]);
    let mut bad = udp("10.0.0.1:5354", US);
    bad[40] ^= 0x11;
    let mut h = H::new();
    expect(&h.go(&zero4), New, None);
    expect(&h.go(&zero6), New, None);
    inv(&h.go(&bad), InvalidReason::UdpBadChecksum);
    let mut h = H::cfg(Config {
        checksum: false,
        ..Config::default()
    });
    expect(&h.go(&bad), New, None);
}

#[test]
fn u06_server_first() {
    let mut h = H::new();
    expect(&h.go(&udp(US, UC)), New, None);
}

// ----- ICMP / ICMPv6 ------------------------------------------------------------------

const CI: &str = "10.0.0.1";
const SI: &str = "10.0.0.2";
const RI: &str = "10.0.0.254";
const XI: &str = "10.0.0.99";

#[test]
fn i01_echo_pair() {
    let mut h = H::new();
    let e = echo(CI, SI, 8, 7, 1);
    expect(&h.go(&e), New, None);
    assert_eq!(h.secs(&e), 30);
    expect(&h.go(&echo(SI, CI, 0, 7, 1)), Est, None);
    expect(&h.go(&echo(CI, SI, 8, 7, 2)), Est, None);
    expect(&h.go(&echo(SI, CI, 0, 7, 2)), Est, None);
    expect(&h.go(&echo(SI, CI, 0, 7, 2)), Est, None);
    assert_eq!(h.t.len(), 1);
}

#[test]
fn i02_reply_without_request() {
    let mut h = H::new();
    inv(&h.go(&echo(SI, CI, 0, 7, 1)), InvalidReason::IcmpNoEntry);
}

#[test]
fn i03_reply_other_id() {
    let mut h = H::new();
    expect(&h.go(&echo(CI, SI, 8, 7, 1)), New, None);
    inv(&h.go(&echo(SI, CI, 0, 8, 1)), InvalidReason::IcmpNoEntry);
}

#[test]
fn i04_timestamp_and_mask() {
    let mut h = H::new();
    expect(&h.go(&echo(CI, SI, 13, 1, 0)), New, None);
    expect(&h.go(&echo(SI, CI, 14, 1, 0)), Est, None);
    expect(&h.go(&echo(CI, SI, 17, 1, 0)), New, None);
    expect(&h.go(&echo(SI, CI, 18, 1, 0)), Est, None);
}

#[test]
fn i05_untrackable_types() {
    let mut h = H::new();
    inv(&h.go(&echo(CI, SI, 9, 0, 0)), InvalidReason::IcmpNoEntry);
    inv(&h.go(&echo(CI, SI, 10, 0, 0)), InvalidReason::IcmpNoEntry);
    inv(&h.go(&echo(CI, SI, 19, 0, 0)), InvalidReason::IcmpBadType);
    inv(&h.go(&echo(CI, SI, 42, 0, 0)), InvalidReason::IcmpBadType);
    assert_eq!(h.t.len(), 0);
}

#[test]
fn i06_port_unreachable_from_server() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.go(&u);
    let t = h.go(&icmp_err(SI, CI, 3, 3, &u, 1000));
    expect(&t, Rel, None);
    assert_eq!(t.dir, Direction::Reply);
    assert!(!t.candidate);
}

#[test]
fn i07_time_exceeded_from_router() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.go(&u);
    expect(&h.go(&icmp_err(RI, CI, 11, 0, &u, 28)), Rel, None);
}

#[test]
fn i08_outer_destination_mismatch() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.go(&u);
    inv(
        &h.go(&icmp_err(RI, XI, 11, 0, &u, 28)),
        InvalidReason::IcmpErrorSpoofed,
    );
}

#[test]
fn i09_error_about_unknown_flow() {
    let mut h = H::new();
    let u = udp(UC, US);
    inv(
        &h.go(&icmp_err(RI, CI, 3, 3, &u, 28)),
        InvalidReason::IcmpErrorNoEntry,
    );
}

#[test]
fn i10_frag_needed_for_tcp() {
    let mut h = H::new();
    hs(&mut h);
    h.adv(3.0);
    let t = h.go(&icmp_err(RI, CI, 3, 4, &syn(), 28));
    expect(&t, Rel, Some(TS::Established));
    assert_eq!(h.secs(&syn()), 431_997);
    assert_eq!(h.view(&syn()).unwrap().tcp_state, Some(TS::Established));
}

#[test]
fn i11_error_about_echo() {
    let mut h = H::new();
    let e = echo(CI, SI, 8, 7, 1);
    h.go(&e);
    expect(&h.go(&icmp_err(RI, CI, 11, 0, &e, 28)), Rel, None);
}

#[test]
fn i12_inner_fragment() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.go(&u);
    let mut inner = u.clone();
    inner[20..22].copy_from_slice(&1u16.to_be_bytes()); // fragment offset 1
    fix_ip_csum(&mut inner);
    inv(
        &h.go(&icmp_err(RI, CI, 11, 0, &inner, 28)),
        InvalidReason::IcmpErrorInner,
    );
}

#[test]
fn i13_error_from_originator_about_reply() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.go(&u);
    let r = udp(US, UC);
    expect(&h.go(&r), Est, None);
    let t = h.go(&icmp_err(CI, SI, 3, 3, &r, 28));
    expect(&t, Rel, None);
    assert_eq!(t.dir, Direction::Original);
}

#[test]
fn i14_bad_icmp_checksum() {
    let mut h = H::new();
    let mut e = echo(CI, SI, 8, 7, 1);
    e[14 + 20 + 2] ^= 0x40;
    inv(&h.go(&e), InvalidReason::IcmpBadChecksum);
}

#[test]
fn i15_error_quoting_error() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.go(&u);
    let e1 = icmp_err(SI, CI, 3, 3, &u, 28);
    inv(
        &h.go(&icmp_err(RI, SI, 3, 1, &e1, 56)),
        InvalidReason::IcmpErrorInner,
    );
}

#[test]
fn i16_icmpv4_in_ipv6() {
    let mut h = H::new();
    let body = [8u8, 0, 0xf7, 0xf8, 0, 7, 0, 0];
    let f = PacketSpec::new(
        ip("2001:db8::1"),
        ip("2001:db8::2"),
        L4Spec::Raw { proto: 1 },
    )
    .payload(&body)
    .to_vec();
    inv(&h.go(&f), InvalidReason::IcmpWrongFamily);
}

const C6I: &str = "2001:db8::1";
const S6I: &str = "2001:db8::2";
const R6I: &str = "2001:db8::fe";

#[test]
fn v01_nd_and_mld_untracked() {
    let mut h = H::new();
    for ty in [135u8, 136, 133, 134, 130, 131, 132, 143] {
        let f = PacketSpec::icmp(ip(C6I), ip(S6I), ty, 0, [0; 4])
            .payload(&[0; 16])
            .to_vec();
        expect(&h.go(&f), Untr, None);
    }
    assert_eq!(h.t.len(), 0);
}

#[test]
fn v02_echo_and_node_info() {
    let mut h = H::new();
    expect(&h.go(&echo(C6I, S6I, 128, 1, 1)), New, None);
    expect(&h.go(&echo(S6I, C6I, 129, 1, 1)), Est, None);
    expect(&h.go(&echo(C6I, S6I, 139, 2, 0)), New, None);
    expect(&h.go(&echo(S6I, C6I, 140, 2, 0)), Est, None);
}

#[test]
fn v03_icmpv6_invalid_firsts() {
    let mut h = H::new();
    inv(
        &h.go(&echo(S6I, C6I, 129, 1, 1)),
        InvalidReason::IcmpNoEntry,
    );
    inv(
        &h.go(&echo(S6I, C6I, 137, 0, 0)),
        InvalidReason::IcmpNoEntry,
    );
    inv(
        &h.go(&echo(S6I, C6I, 138, 0, 0)),
        InvalidReason::IcmpNoEntry,
    );
}

#[test]
fn v04_packet_too_big() {
    let mut h = H::new();
    let s = tcp(C6, S6, SYN, 1000, 0);
    h.go(&s);
    h.go(&tcp(S6, C6, SYN | ACK, 5000, 1001));
    h.go(&tcp(C6, S6, ACK, 1001, 5001));
    let t = h.go(&icmp_err(R6I, C6I, 2, 0, &s, 48));
    expect(&t, Rel, Some(TS::Established));
    assert_eq!(t.dir, Direction::Reply);
}

#[test]
fn v05_ipv6_non_first_fragment() {
    let mut h = H::new();
    let mut body = vec![17u8, 0];
    body.extend_from_slice(&(100u16 << 3).to_be_bytes());
    body.extend_from_slice(&1234u32.to_be_bytes());
    body.extend_from_slice(&[0xaa; 16]);
    let f = PacketSpec::new(ip(C6I), ip(S6I), L4Spec::Raw { proto: 44 })
        .payload(&body)
        .to_vec();
    inv(&h.go(&f), InvalidReason::Fragment);
    // IPv4 likewise.
    let mut f = udp(UC, US);
    f[20..22].copy_from_slice(&0x0010u16.to_be_bytes());
    fix_ip_csum(&mut f);
    inv(&h.go(&f), InvalidReason::Fragment);
}

// ----- generic, NOTRACK ---------------------------------------------------------------

fn esp(src: &str, dst: &str, spi: u32) -> Vec<u8> {
    let mut body = spi.to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 12]);
    PacketSpec::new(ip(src), ip(dst), L4Spec::Raw { proto: 50 })
        .payload(&body)
        .to_vec()
}

#[test]
fn g01_esp_shares_one_entry() {
    let mut h = H::new();
    let a = esp(CI, SI, 1);
    expect(&h.go(&a), New, None);
    assert_eq!(h.secs(&a), 600);
    expect(&h.go(&esp(SI, CI, 2)), Est, None);
    expect(&h.go(&esp(CI, SI, 3)), Est, None);
    assert_eq!(h.t.len(), 1);
    assert!(h
        .view(&a)
        .unwrap()
        .conntrack_line()
        .starts_with("unknown  50 600 src=10.0.0.1"));
}

#[test]
fn n01_notrack_both_ways() {
    let mut h = H::new();
    expect(&h.notrack(&udp(UC, US)), Untr, None);
    expect(&h.notrack(&udp(US, UC)), Untr, None);
    assert_eq!(h.t.len(), 0);
    assert_eq!(h.t.stats().ignore, 2);
}

#[test]
fn n02_notrack_one_way() {
    let mut h = H::new();
    expect(&h.notrack(&udp(UC, US)), Untr, None);
    let t = h.go(&udp(US, UC));
    expect(&t, New, None);
    assert_eq!(h.t.len(), 1);
}

#[test]
fn n03_error_about_untracked_flow() {
    let mut h = H::new();
    let u = udp(UC, US);
    h.notrack(&u);
    h.notrack(&udp(US, UC));
    inv(
        &h.go(&icmp_err(RI, CI, 3, 3, &u, 28)),
        InvalidReason::IcmpErrorNoEntry,
    );
}

// ----- table limits -------------------------------------------------------------------

fn flow(i: u16) -> Vec<u8> {
    udp(
        &format!("10.0.{}.{}:{}", i / 250, i % 250 + 1, 1024 + i),
        US,
    )
}

#[test]
fn l01_early_drop_unreplied() {
    let n = 64;
    let mut h = H {
        t: ConnTable::new(n, Config::default()),
        now: NS,
    };
    for i in 0..n as u16 {
        expect(&h.go(&flow(i)), New, None);
    }
    assert_eq!(h.t.len(), n);
    let t = h.go(&flow(1000));
    expect(&t, New, None);
    assert!(!t.table_full_drop);
    assert!(h.t.stats().early_drop >= 1);
    assert!(h.t.len() <= n);
    assert!(h.view(&flow(1000)).is_some());
}

#[test]
fn l02_full_of_assured_drops() {
    let n = 32;
    let mut h = H {
        t: ConnTable::new(n, Config::default()),
        now: NS,
    };
    for i in 0..n as u16 {
        let f = flow(i);
        h.go(&f);
    }
    h.adv(0.5);
    for i in 0..n as u16 {
        let p = parsed(&flow(i));
        let (a, b) = (p.src, p.dst);
        let r = PacketSpec::udp(
            SocketAddr::new(packet::to_ip(p.family, &b), 53),
            SocketAddr::new(packet::to_ip(p.family, &a), 1024 + i),
        )
        .to_vec();
        expect(&h.go(&r), Est, None);
    }
    h.adv(3.0);
    for i in 0..n as u16 {
        assert!(h.go(&flow(i)).status.has(CtStatus::ASSURED));
    }
    let t = h.go(&flow(1000));
    assert!(t.table_full_drop);
    assert!(t.handle.is_none());
    assert_eq!(h.t.stats().drop, 1);
    assert_eq!(h.t.stats().invalid, 0);
    assert_eq!(h.t.len(), n);
}

#[test]
fn l03_dead_at_exactly_the_deadline() {
    for (dt, want) in [(29.99, Est), (30.0, New)] {
        let mut h = H::new();
        h.go(&udp(UC, US));
        h.go(&udp(US, UC)); // refreshed at t
        h.adv(dt);
        expect(&h.go(&udp(UC, US)), want, None);
    }
}

#[test]
fn l04_dropped_first_packet_leaves_nothing() {
    let mut h = H::new();
    expect(&h.dropped(&syn()), New, None);
    assert_eq!(h.t.len(), 0);
    assert!(h.view(&syn()).is_none());
    expect(&h.go(&syn()), New, None);
    assert_eq!(h.t.len(), 1);
}

#[test]
fn expire_sweep_and_control() {
    let mut h = H::new();
    for i in 0..100u16 {
        h.go(&flow(i));
    }
    hs(&mut h);
    assert_eq!(h.t.len(), 101);
    h.adv(31.0);
    let mut reaped = 0;
    for _ in 0..1000 {
        reaped += h.t.expire(h.now, 16);
    }
    assert_eq!(reaped, 100);
    assert_eq!(h.t.len(), 1);
    assert_eq!(h.t.iter(h.now).count(), 1);
    let k = FlowKey::from_parsed(&parsed(&syn())).unwrap();
    let rk = FlowKey::from_parsed(&parsed(&tcp(S, C, ACK, 1, 1))).unwrap();
    assert_eq!(k, rk);
    assert_eq!(k.symmetric_hash(), rk.symmetric_hash());
    assert!(h.t.delete(&k));
    assert!(!h.t.delete(&k));
    h.go(&flow(1));
    h.t.flush();
    assert!(h.t.is_empty());
    assert_eq!(h.t.iter(h.now).count(), 0);
}

#[test]
fn burst_duplicate_candidates() {
    // Two SYNs of one flow in the same burst: both NEW; the second confirm clashes (TCP: drop).
    let mut h = H::new();
    let s = syn();
    let p = parsed(&s);
    let t1 = h.t.track(&s, &p, h.now, TrackOpts::default());
    let t2 = h.t.track(&s, &p, h.now, TrackOpts::default());
    assert!(h.t.confirm(&t1, true, &s, &p, h.now).is_pass());
    assert!(!h.t.confirm(&t2, true, &s, &p, h.now).is_pass());
    assert_eq!(h.t.stats().insert_failed, 1);
    // UDP: merged.
    let u = udp(UC, US);
    let p = parsed(&u);
    let t1 = h.t.track(&u, &p, h.now, TrackOpts::default());
    let t2 = h.t.track(&u, &p, h.now, TrackOpts::default());
    assert!(h.t.confirm(&t1, true, &u, &p, h.now).is_pass());
    assert!(h.t.confirm(&t2, true, &u, &p, h.now).is_pass());
    assert_eq!(h.t.len(), 2);
}

// ----- properties ---------------------------------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Op {
        kind: u8,
        src: u8,
        dst: u8,
        sport: u16,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
        dt_ms: u32,
        accept: bool,
    }

    fn op() -> impl Strategy<Value = Op> {
        (
            0u8..4,
            0u8..4,
            0u8..4,
            prop::sample::select(vec![53u16, 80, 1000]),
            prop::sample::select(vec![53u16, 80, 1000]),
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            prop_oneof![0u32..2000, 0u32..200_000],
            prop::bool::weighted(0.9),
        )
            .prop_map(
                |(kind, src, dst, sport, dport, flags, seq, ack, dt_ms, accept)| Op {
                    kind,
                    src,
                    dst,
                    sport,
                    dport,
                    flags,
                    seq,
                    ack,
                    dt_ms,
                    accept,
                },
            )
    }

    fn host(i: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, i + 1])
    }

    fn frame(o: &Op) -> Vec<u8> {
        let (s, d) = (host(o.src), host(o.dst));
        match o.kind {
            0 => PacketSpec::tcp(
                SocketAddr::new(s, o.sport),
                SocketAddr::new(d, o.dport),
                o.flags,
                o.seq,
                o.ack,
            )
            .to_vec(),
            1 => PacketSpec::udp(SocketAddr::new(s, o.sport), SocketAddr::new(d, o.dport)).to_vec(),
            2 => PacketSpec::icmp_echo(s, d, if o.flags & 1 == 0 { 8 } else { 0 }, o.sport, 0)
                .to_vec(),
            _ => PacketSpec::new(s, d, L4Spec::Raw { proto: 50 })
                .payload(&[0; 8])
                .to_vec(),
        }
    }

    fn reverse(o: &Op) -> Op {
        let mut r = o.clone();
        r.src = o.dst;
        r.dst = o.src;
        if o.kind != 2 {
            r.sport = o.dport;
            r.dport = o.sport;
        }
        r.flags = o.flags ^ 1; // echo request <-> reply for kind 2
        r
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Capacity is never exceeded; whatever iter/get return is live; an accepted
        /// UDP/ICMP/generic candidate is found from both directions right after.
        #[test]
        fn table_invariants(ops in prop::collection::vec(op(), 1..80), cap in 1usize..24) {
            let mut t = ConnTable::new(cap, Config::default());
            let mut now: Nanos = NS;
            for o in &ops {
                now += o.dt_ms as u64 * 1_000_000;
                let f = frame(o);
                let p = parsed(&f);
                let tr = t.track(&f, &p, now, TrackOpts::default());
                let ok = t.confirm(&tr, o.accept, &f, &p, now).is_pass();
                prop_assert!(t.len() <= t.capacity());
                if tr.candidate && o.accept && ok {
                    let k = FlowKey::from_parsed(&p).unwrap();
                    prop_assert!(t.get(&k, now).is_some());
                    if o.kind != 0 {
                        let r = frame(&reverse(o));
                        let rp = parsed(&r);
                        prop_assert_eq!(FlowKey::from_parsed(&rp), Some(k));
                        let rt = t.track(&r, &rp, now, TrackOpts::default());
                        prop_assert_eq!(rt.state, CtState::Established);
                        prop_assert_eq!(rt.dir, Direction::Reply);
                    }
                }
                for v in t.iter(now) {
                    prop_assert!(v.timeout_secs <= 432_000);
                    let k = if let Some((ty, code, id)) = v.orig.icmp {
                        FlowKey::icmp(v.family, v.orig.src, v.orig.dst, id, ty, code).unwrap()
                    } else {
                        FlowKey::new(v.family, v.proto, v.orig.src, v.orig.sport, v.orig.dst, v.orig.dport)
                    };
                    prop_assert!(t.get(&k, now).is_some());
                }
                prop_assert!(t.iter(now).count() <= t.len());
            }
        }

        /// A confirmed UDP flow is found from both directions until it expires, and
        /// never after.
        #[test]
        fn found_until_expiry(steps in prop::collection::vec((any::<bool>(), 0u64..40_000), 1..40)) {
            let mut t = ConnTable::new(16, Config::default());
            let q = udp(UC, US);
            let r = udp(US, UC);
            let mut now: Nanos = NS;
            let tr = t.track(&q, &parsed(&q), now, TrackOpts::default());
            prop_assert!(t.confirm(&tr, true, &q, &parsed(&q), now).is_pass());
            let mut deadline = now + 30 * NS;
            let key = FlowKey::from_parsed(&parsed(&q)).unwrap();
            let mut orig_fwd = true;
            for (fwd, dt_ms) in steps {
                now += dt_ms * 1_000_000;
                let alive = now < deadline;
                prop_assert_eq!(t.get(&key, now).is_some(), alive);
                prop_assert_eq!(t.iter(now).count(), alive as usize);
                let f = if fwd { &q } else { &r };
                let tr = t.track(f, &parsed(f), now, TrackOpts::default());
                if alive {
                    prop_assert!(tr.handle.is_some() && !tr.candidate);
                    prop_assert_eq!(tr.dir, if fwd == orig_fwd { Direction::Original } else { Direction::Reply });
                } else {
                    prop_assert_eq!(tr.state, CtState::New);
                    prop_assert!(tr.candidate);
                    orig_fwd = fwd;
                }
                prop_assert!(t.confirm(&tr, true, f, &parsed(f), now).is_pass());
                let v = t.get(&key, now).unwrap();
                deadline = now + v.timeout_secs as u64 * NS;
            }
        }

        /// track never panics on arbitrary bytes that parse.
        #[test]
        fn arbitrary_bytes_never_panic(
            proto_num in prop::sample::select(vec![1u8, 6, 17, 58, 50, 44, 0, 43, 60, 51]),
            v6 in any::<bool>(),
            body in prop::collection::vec(any::<u8>(), 0..120),
            raw in prop::collection::vec(any::<u8>(), 0..200),
            checksum in any::<bool>(),
        ) {
            let (s, d) = if v6 { (ip(C6I), ip(S6I)) } else { (ip(CI), ip(SI)) };
            let f = PacketSpec::new(s, d, L4Spec::Raw { proto: proto_num }).payload(&body).to_vec();
            let mut t = ConnTable::new(4, Config { checksum, ..Config::default() });
            for frame in [f.as_slice(), raw.as_slice()] {
                if let Ok(Frame::Ip(p)) = packet::parse(frame) {
                    for i in 0..3u64 {
                        let tr = t.track(frame, &p, NS * (1 + i), TrackOpts::default());
                        let _ = t.confirm(&tr, true, frame, &p, NS * (1 + i));
                        t.prefetch(&p);
                        let _ = ConnTable::hash_of(&p);
                    }
                }
            }
            prop_assert!(t.len() <= 4);
        }
    }
}

#[test]
fn invalid_fin_shrinks_assured_lifetime() {
    // `docs/CONNTRACK.md` §2.6: out-of-window FINs from both sides of an ASSURED connection cut it to 300 s.
    let mut h = H::new();
    hs(&mut h);
    inv(
        &h.go(&tcp(S, C, FIN | ACK, 5001 + 200_000, 1001)),
        InvalidReason::TcpWindowSeq,
    );
    assert_eq!(h.secs(&syn()), 432_000);
    inv(
        &h.go(&tcp(C, S, FIN | ACK, 1001 + 200_000, 5001)),
        InvalidReason::TcpWindowSeq,
    );
    assert_eq!(h.secs(&syn()), 300);
    assert_eq!(h.view(&syn()).unwrap().tcp_state, Some(TS::Established));
}

#[test]
fn challenge_ack_in_last_ack() {
    // `docs/CONNTRACK.md` §2.3 step 4: a SYN in LAST_ACK is ignored and marks a challenge ACK; the peer's
    // ACK answering it keeps LAST_ACK instead of moving to TIME_WAIT.
    let mut h = H::new();
    hs(&mut h);
    h.go(&tcp(C, S, FIN | ACK, 1001, 5001));
    h.go(&tcp(S, C, ACK, 5001, 1002));
    expect(
        &h.go(&tcp(S, C, FIN | ACK, 5001, 1002)),
        Est,
        Some(TS::LastAck),
    );
    expect(&h.go(&tcp(C, S, SYN, 9000, 0)), Est, Some(TS::LastAck));
    expect(&h.go(&tcp(S, C, ACK, 5002, 1002)), Est, Some(TS::LastAck));
    expect(&h.go(&tcp(C, S, ACK, 1002, 5002)), Est, Some(TS::TimeWait));
}

/// A walk in bounded steps (`scan`) sees every live entry once, whatever the step size,
/// and agrees with `iter`; entries deleted mid-walk do not disturb the rest.
#[test]
fn scan_in_steps_sees_every_entry_once() {
    let mut h = H::new();
    for i in 0..300u16 {
        h.go(&udp(
            &format!("10.0.{}.{}:{}", i / 200, i % 200 + 1, 1000 + i),
            "10.9.9.9:53",
        ));
    }
    let all: Vec<_> = h.t.iter(h.now).map(|e| e.handle).collect();
    assert_eq!(all.len(), 300);
    for step in [1usize, 7, 64, 1000, 100_000] {
        let mut seen = Vec::new();
        let mut cursor = Some(0);
        let mut steps = 0;
        while let Some(from) = cursor {
            cursor = h.t.scan(from, step, h.now, |e| seen.push(e.handle));
            steps += 1;
        }
        assert_eq!(seen, all, "step {step}");
        assert_eq!(steps, h.t.capacity().div_ceil(step).max(1), "step {step}");
    }
    // Deleting entries between steps (what `conntrack -D` does per step) disturbs
    // nothing: every entry is still seen once, and half of them are gone after.
    let mut seen = Vec::new();
    let mut cursor = Some(0);
    while let Some(from) = cursor {
        let mut step = Vec::new();
        cursor = h.t.scan(from, 50, h.now, |e| step.push(e));
        for (k, e) in step.iter().enumerate() {
            seen.push(e.handle);
            if k % 2 == 0 {
                let o = &e.orig;
                assert!(h.t.delete(&FlowKey::new(
                    e.family, e.proto, o.src, o.sport, o.dst, o.dport
                )));
            }
        }
    }
    assert_eq!(seen, all);
    assert!((140..=160).contains(&h.t.len()), "{}", h.t.len());
}

/// A flush in bounded steps removes every entry and counts them; the table is usable
/// afterwards.
#[test]
fn flush_in_steps_empties_the_table() {
    let mut h = H::new();
    for i in 0..300u16 {
        h.go(&udp(
            &format!("10.1.{}.{}:{}", i / 200, i % 200 + 1, 2000 + i),
            "10.9.9.9:53",
        ));
    }
    assert_eq!(h.t.len(), 300);
    let (mut removed, mut cursor) = (0, Some(0));
    while let Some(from) = cursor {
        let (n, next) = h.t.flush_step(from, 7);
        removed += n;
        cursor = next;
    }
    assert_eq!((removed, h.t.len()), (300, 0));
    assert_eq!(h.t.iter(h.now).count(), 0);
    let q = udp("10.1.0.1:2000", "10.9.9.9:53");
    assert_eq!(h.go(&q).state, CtState::New, "a flushed flow starts again");
    assert_eq!(h.t.len(), 1);
}
