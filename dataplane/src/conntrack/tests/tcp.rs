//! TCP: the state table and the T cases of `docs/CONNTRACK.md` §7.

use super::*;

#[test]
fn state_table_matches_spec_cells() {
    use crate::conntrack::tcp::{Cell, Class, Dir, TCP_CONNTRACKS};
    use Dir::{Original as O, Reply as R};
    let to = Cell::To;
    // A few cells of `docs/CONNTRACK.md` §2.2, by (dir, class, old).
    let t = |d, c, s| TCP_CONNTRACKS[d][c][s];
    assert_eq!(t(O, Class::Syn, TS::TimeWait), to(TS::SynSent));
    assert_eq!(t(O, Class::SynAck, TS::SynSent2), to(TS::SynRecv));
    assert_eq!(t(O, Class::Ack, TS::LastAck), to(TS::TimeWait));
    assert_eq!(t(R, Class::Syn, TS::SynSent), to(TS::SynSent2));
    assert_eq!(t(R, Class::Syn, TS::TimeWait), to(TS::SynSent));
    assert_eq!(t(R, Class::SynAck, TS::Established), Cell::Ignore);
    assert_eq!(t(R, Class::Ack, TS::SynSent), Cell::Ignore);
    assert_eq!(t(R, Class::Ack, TS::SynSent2), Cell::Ignore);
    assert_eq!(t(R, Class::Rst, TS::None), Cell::Invalid);
    for d in [O, R] {
        assert!(TCP_CONNTRACKS[d][Class::None]
            .iter()
            .all(|&c| c == Cell::Invalid));
    }
}

// ----- TCP ----------------------------------------------------------------------------

/// After the handshake, `f` is INVALID for `r` under the default config and ESTABLISHED
/// under `cfg`; returns the harness on `cfg`, after `f`.
#[track_caller]
fn invalid_unless(cfg: Config, f: &[u8], r: InvalidReason) -> H {
    let mut h = H::new();
    hs(&mut h);
    h.invalid(f, r);
    let mut h = H::cfg(cfg);
    hs(&mut h);
    h.check(f, Est, Some(TS::Established));
    h
}

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
    h.check(&d, Est, Some(TS::Established));
    assert_eq!(h.secs(&d), 300);
    h.check(&tcp(S, C, ACK, 5001, 1101), Est, Some(TS::Established));
    assert_eq!(h.secs(&d), 432_000);
}

fn t03_close(h: &mut H) {
    hs(h);
    h.check(&tcp(C, S, FIN | ACK, 1001, 5001), Est, Some(TS::FinWait));
    assert_eq!(h.secs(&syn()), 120);
    h.check(&tcp(S, C, ACK, 5001, 1002), Est, Some(TS::CloseWait));
    assert_eq!(h.secs(&syn()), 60);
    h.check(&tcp(S, C, FIN | ACK, 5001, 1002), Est, Some(TS::LastAck));
    assert_eq!(h.secs(&syn()), 30);
    h.check(&tcp(C, S, ACK, 1002, 5002), Est, Some(TS::TimeWait));
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
    h.check(&syn(), New, Some(TS::SynSent));
    h.adv(10.0);
    h.check(&syn(), New, Some(TS::SynSent));
    assert_eq!(h.secs(&syn()), 110);
}

#[test]
fn t06_rst_before_reply_deletes() {
    let mut h = H::new();
    h.check(&syn(), New, None);
    let t = h.go(&tcp(S, C, RST | ACK, 0, 1001));
    expect(&t, Est, None);
    assert!(h.view(&syn()).is_none());
    assert_eq!(h.t.len(), 0);
    h.check(&syn(), New, Some(TS::SynSent));
}

#[test]
fn t07_synack_bad_ack() {
    let mut h = H::new();
    h.go(&syn());
    h.invalid(
        &tcp(S, C, SYN | ACK, 5000, 1002),
        InvalidReason::TcpWindowAck,
    );
    assert_eq!(h.view(&syn()).unwrap().tcp_state, Some(TS::SynSent));
}

#[test]
fn t08_loose_pickup() {
    let mut h = H::new();
    let a = tcp(C, S, ACK, 7000, 9000);
    h.check(&a, New, Some(TS::Established));
    assert_eq!(h.secs(&a), 300);
    h.check(&tcp(S, C, ACK, 9000, 7000), Est, Some(TS::Established));
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
    h.invalid(&tcp(C, S, ACK, 7000, 9000), InvalidReason::TcpInvalidFirst);
    assert_eq!(h.t.len(), 0);
}

#[test]
fn t10_invalid_first_packets() {
    let mut h = H::new();
    h.invalid(
        &tcp(C, S, SYN | ACK, 1000, 1),
        InvalidReason::TcpInvalidFirst,
    );
    h.invalid(
        &tcp(C, S, FIN | ACK, 1000, 1),
        InvalidReason::TcpInvalidFirst,
    );
    h.invalid(&tcp(C, S, RST, 1000, 0), InvalidReason::TcpInvalidFirst);
    assert_eq!(h.t.len(), 0);
    assert_eq!(h.t.stats()[CtCounter::Invalid], 3);
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
        h.invalid(&tcp(C, S, f, 1000, 0), InvalidReason::TcpBadFlags);
    }
    assert_eq!(h.t.len(), 0);
}

#[test]
fn t12_syn_with_ece_cwr() {
    let mut h = H::new();
    h.check(&tcp(C, S, SYN | ECE | CWR, 1000, 0), New, Some(TS::SynSent));
}

#[test]
fn t13_ack_urg_psh() {
    let mut h = H::new();
    hs(&mut h);
    h.check(
        &tcp_p(C, S, ACK | URG | PSH, 1001, 5001, &[1; 10]),
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
    h.invalid(&f, InvalidReason::TcpBadDataOffset);
    // doff = 15 with only 20 bytes present
    let mut f = syn();
    f[14 + 20 + 12] = 15 << 4;
    h.invalid(&f, InvalidReason::TcpBadDataOffset);
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
    h.invalid(&f, InvalidReason::TcpBadChecksum);
    let mut h = H::cfg(Config {
        checksum: false,
        ..Config::default()
    });
    h.check(&f, New, Some(TS::SynSent));
}

#[test]
fn t16_seq_beyond_window() {
    let d = tcp_p(C, S, ACK, 1001 + 200_000, 5001, &[0; 10]);
    let liberal = Config {
        tcp_be_liberal: true,
        ..Config::default()
    };
    let mut h = invalid_unless(liberal, &d, InvalidReason::TcpWindowSeq);
    // Window data unchanged: the in-window data after it is still fine and acked.
    h.check(&tcp(S, C, ACK, 5001, 1001), Est, Some(TS::Established));
    assert_eq!(h.secs(&d), 432_000);
}

#[test]
fn t17_ack_of_unseen_data() {
    let mut h = H::new();
    hs(&mut h);
    h.invalid(&tcp(S, C, ACK, 5001, 1501), InvalidReason::TcpWindowAck);
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
    h.check(&tcp(C, S, RST, 1001, 0), Est, Some(TS::Close));
    assert_eq!(h.secs(&syn()), 10);
    let s = tcp(C, S, SYN, 3000, 0);
    h.check(&s, New, Some(TS::SynSent));
    assert_eq!(h.secs(&s), 120);
}

#[test]
fn t20_rst_in_window_not_exact() {
    let mut h = H::new();
    hs(&mut h);
    h.check(&tcp(S, C, RST, 5011, 0), Est, Some(TS::Established));
    assert_eq!(h.secs(&syn()), 10);
    h.check(&tcp(C, S, ACK, 1001, 5011), Est, Some(TS::Established));
    assert_eq!(h.secs(&syn()), 432_000);

    let mut h = H::new();
    hs(&mut h);
    h.go(&tcp(S, C, RST, 5011, 0));
    h.check(&tcp(C, S, ACK, 1001, 5001), Est, Some(TS::Established));
    assert_eq!(h.secs(&syn()), 300);
}

#[test]
fn t21_rst_below_maxack() {
    let r = tcp(C, S, RST, 900, 0);
    let ignore = Config {
        tcp_ignore_invalid_rst: true,
        ..Config::default()
    };
    let h = invalid_unless(ignore, &r, InvalidReason::TcpInvalidRst);
    assert_eq!(h.secs(&syn()), 10);
}

#[test]
fn t22_rst_at_end_of_data_train() {
    let mut h = H::new();
    hs(&mut h);
    h.check(&tcp_p(C, S, PSH | ACK, 1001, 5001, &[0; 100]), Est, None);
    h.check(&tcp(C, S, RST, 1101, 0), Est, Some(TS::Close));
    assert_eq!(h.secs(&syn()), 10);
}

#[test]
fn t23_rst_in_closing_state_unchecked() {
    let mut h = H::new();
    hs(&mut h);
    h.check(&tcp(C, S, FIN | ACK, 1001, 5001), Est, Some(TS::FinWait));
    h.check(&tcp(S, C, RST, 123_456, 0), Est, Some(TS::Close));
    assert_eq!(h.secs(&syn()), 10);
}

#[test]
fn t24_resync_on_new_syn() {
    let mut h = H::new();
    hs(&mut h);
    h.adv(1.0);
    h.check(&tcp(C, S, SYN, 77000, 0), Est, Some(TS::Established));
    assert_eq!(h.secs(&syn()), 431_999); // ignored: no refresh
    h.check(&tcp(S, C, SYN | ACK, 88000, 77001), Est, Some(TS::SynRecv));
    h.check(&tcp(C, S, ACK, 77001, 88001), Est, Some(TS::Established));
    assert_eq!(h.secs(&syn()), 432_000);
}

#[test]
fn t25_syn_after_peer_rst() {
    let mut h = H::new();
    hs(&mut h);
    h.check(&tcp(S, C, RST, 5001, 0), Est, Some(TS::Close));
    h.adv(5.0);
    h.check(&tcp(C, S, SYN, 77000, 0), Est, Some(TS::Close));
    assert_eq!(h.secs(&syn()), 5);
    h.check(&tcp(S, C, SYN | ACK, 88000, 77001), Est, Some(TS::SynRecv));
    h.check(&tcp(C, S, ACK, 77001, 88001), Est, Some(TS::Established));
}

#[test]
fn t26_duplicate_acks_retrans_timer() {
    let mut h = H::new();
    hs(&mut h);
    let a = tcp(C, S, ACK, 1001, 5001);
    h.check(&a, Est, None);
    assert_eq!(h.secs(&a), 432_000);
    h.check(&a, Est, None);
    assert_eq!(h.secs(&a), 432_000);
    h.check(&a, Est, None);
    assert_eq!(h.secs(&a), 300);
    h.check(
        &tcp_w(C, S, ACK, 1001, 5001, 64000),
        Est,
        Some(TS::Established),
    );
    assert_eq!(h.secs(&a), 432_000);
}

#[test]
fn t27_zero_window() {
    let mut h = H::new();
    hs(&mut h);
    h.check(&tcp_w(S, C, ACK, 5001, 1001, 0), Est, Some(TS::Established));
    assert_eq!(h.secs(&syn()), 300);
    h.check(
        &tcp_w(S, C, ACK, 5001, 1001, 64240),
        Est,
        Some(TS::Established),
    );
    assert_eq!(h.secs(&syn()), 432_000);
}

#[test]
fn t28_simultaneous_open() {
    let mut h = H::new();
    h.check(&syn(), New, Some(TS::SynSent));
    h.adv(1.0);
    h.check(&tcp(S, C, SYN, 5000, 0), Est, Some(TS::SynSent2));
    assert_eq!(h.secs(&syn()), 119);
    h.check(&tcp(C, S, SYN | ACK, 1000, 5001), Est, Some(TS::SynRecv));
    assert_eq!(h.secs(&syn()), 60);
    h.adv(1.0);
    h.check(&tcp(S, C, SYN | ACK, 5000, 1001), Est, Some(TS::SynRecv));
    assert_eq!(h.secs(&syn()), 59);
    let t = h.go(&tcp(C, S, ACK, 1001, 5001));
    expect(&t, Est, Some(TS::Established));
    assert!(t.status.has(CtStatus::ASSURED));
}

#[test]
fn t29_syn_payload_counts() {
    let mut h = H::new();
    h.check(&tcp_p(C, S, SYN, 1000, 0, &[7; 40]), New, Some(TS::SynSent));
    h.check(&tcp(S, C, SYN | ACK, 5000, 1041), Est, Some(TS::SynRecv));
}

#[test]
fn t30_dropped_synack_still_updates() {
    let mut h = H::new();
    h.check(&syn(), New, None);
    let t = h.dropped(&tcp(S, C, SYN | ACK, 5000, 1001));
    expect(&t, Est, Some(TS::SynRecv));
    let t = h.go(&syn());
    expect(&t, Est, Some(TS::SynRecv));
    assert!(t.status.has(CtStatus::SEEN_REPLY));
}

#[test]
fn tcp_ipv6_handshake() {
    let mut h = H::new();
    h.check(&tcp(C6, S6, SYN, 1000, 0), New, Some(TS::SynSent));
    h.check(&tcp(S6, C6, SYN | ACK, 5000, 1001), Est, Some(TS::SynRecv));
    h.check(&tcp(C6, S6, ACK, 1001, 5001), Est, Some(TS::Established));
    let v = h.view(&tcp(C6, S6, SYN, 1000, 0)).unwrap();
    assert!(v
        .conntrack_line()
        .contains("src=2001:db8::1 dst=2001:db8::2 sport=40000 dport=80"));
}

// ----- overrides ----------------------------------------------------------------------

#[test]
fn invalid_fin_shrinks_assured_lifetime() {
    // `docs/CONNTRACK.md` §2.6: out-of-window FINs from both sides of an ASSURED connection cut it to 300 s.
    let mut h = H::new();
    hs(&mut h);
    h.invalid(
        &tcp(S, C, FIN | ACK, 5001 + 200_000, 1001),
        InvalidReason::TcpWindowSeq,
    );
    assert_eq!(h.secs(&syn()), 432_000);
    h.invalid(
        &tcp(C, S, FIN | ACK, 1001 + 200_000, 5001),
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
    h.check(&tcp(S, C, FIN | ACK, 5001, 1002), Est, Some(TS::LastAck));
    h.check(&tcp(C, S, SYN, 9000, 0), Est, Some(TS::LastAck));
    h.check(&tcp(S, C, ACK, 5002, 1002), Est, Some(TS::LastAck));
    h.check(&tcp(C, S, ACK, 1002, 5002), Est, Some(TS::TimeWait));
}
