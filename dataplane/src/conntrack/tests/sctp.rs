//! SCTP (`nf_conntrack_proto_sctp.c`): the association's states, timeouts and
//! `conntrack -L` line, and the INVALID conditions. The kernel's answers for the same
//! sequences are the oracle's s01–s06 captures.

use super::*;
use crate::conntrack::sctp::crc32c;
use crate::conntrack::SctpState;
use crate::packet::proto;

const TC: u32 = 0x1111_1111;
const TS_: u32 = 0x2222_2222;

/// An IPv4 SCTP packet `src` -> `dst` with `vtag` and `chunks` (type, flags, body),
/// its CRC32c right unless `bad_crc`.
fn sctp_raw(src: &str, dst: &str, vtag: u32, chunks: &[(u8, u8, &[u8])], bad_crc: bool) -> Vec<u8> {
    let (s, d) = (sock(src), sock(dst));
    let mut l4 = Vec::new();
    l4.extend_from_slice(&s.port().to_be_bytes());
    l4.extend_from_slice(&d.port().to_be_bytes());
    l4.extend_from_slice(&vtag.to_be_bytes());
    l4.extend_from_slice(&[0; 4]);
    for (ty, fl, body) in chunks {
        l4.extend_from_slice(&[*ty, *fl]);
        l4.extend_from_slice(&(4 + body.len() as u16).to_be_bytes());
        l4.extend_from_slice(body);
        while l4.len() % 4 != 0 {
            l4.push(0);
        }
    }
    let mut crc = crc32c(&[&l4]);
    if bad_crc {
        crc ^= 0x5555;
    }
    l4[8..12].copy_from_slice(&crc.to_le_bytes());
    // Reuse the UDP builder for the Ethernet/IPv4 framing, then swap in SCTP.
    let mut f = PacketSpec::udp(s, d).payload(&[0; 0]).to_vec();
    f.truncate(14 + 20);
    f.extend_from_slice(&l4);
    f[14 + 9] = proto::SCTP;
    let tl = (20 + l4.len()) as u16;
    f[16..18].copy_from_slice(&tl.to_be_bytes());
    fix_ip_csum(&mut f);
    f
}

fn init_body(tag: u32) -> Vec<u8> {
    let mut b = tag.to_be_bytes().to_vec();
    b.extend_from_slice(&[0, 0, 0xff, 0xff, 0, 1, 0, 1, 0, 0, 0, 1]);
    b
}

const SC: &str = "10.0.0.1:40100";
const SS: &str = "10.0.0.2:36412";

fn state(h: &H, f: &[u8]) -> Option<SctpState> {
    h.view(f).and_then(|v| v.sctp_state)
}

#[test]
fn sc1_association_states_timeouts_and_the_listing() {
    let mut h = H::new();
    let init = sctp_raw(SC, SS, 0, &[(1, 0, &init_body(TC))], false);
    h.check(&init, New, None);
    assert_eq!(state(&h, &init), Some(SctpState::Closed));
    assert_eq!(h.secs(&init), 10, "sctp_timeout_closed");
    let ia = sctp_raw(SS, SC, TC, &[(2, 0, &init_body(TS_))], false);
    h.check(&ia, Est, None);
    assert_eq!(state(&h, &init), Some(SctpState::CookieWait));
    assert_eq!(h.secs(&init), 3);
    h.check(
        &sctp_raw(SC, SS, TS_, &[(10, 0, b"cookie!!")], false),
        Est,
        None,
    );
    assert_eq!(state(&h, &init), Some(SctpState::CookieEchoed));
    let t = h.go(&sctp_raw(SS, SC, TC, &[(11, 0, b"")], false));
    expect(&t, Est, None);
    assert!(t.status.has(CtStatus::ASSURED));
    assert_eq!(state(&h, &init), Some(SctpState::Established));
    assert_eq!(h.secs(&init), 210);
    // DATA and SACK keep the state; a wrong vtag is INVALID and changes nothing.
    h.check(
        &sctp_raw(
            SC,
            SS,
            TS_,
            &[(0, 3, b"\0\0\0\x01\0\0\0\0\0\0\0\0hi")],
            false,
        ),
        Est,
        None,
    );
    h.invalid(
        &sctp_raw(
            SC,
            SS,
            0x3333_3333,
            &[(0, 3, b"\0\0\0\x02\0\0\0\0\0\0\0\0hi")],
            false,
        ),
        InvalidReason::SctpBadVtag,
    );
    // An unknown chunk inside the association keeps the state.
    h.check(&sctp_raw(SC, SS, TS_, &[(0xc0, 0, b"")], false), Est, None);
    let line = h.view(&init).unwrap().conntrack_line();
    assert!(
        line.starts_with(
            "sctp     132 210 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40100 dport=36412 "
        ),
        "{line}"
    );
    h.check(
        &sctp_raw(SC, SS, TS_, &[(7, 0, &[0, 0, 0, 1])], false),
        Est,
        None,
    );
    assert_eq!(state(&h, &init), Some(SctpState::ShutdownSent));
    h.check(&sctp_raw(SS, SC, TC, &[(8, 0, b"")], false), Est, None);
    assert_eq!(state(&h, &init), Some(SctpState::ShutdownAckSent));
    h.check(&sctp_raw(SC, SS, TS_, &[(14, 0, b"")], false), Est, None);
    assert_eq!(state(&h, &init), Some(SctpState::Closed));
    assert_eq!(h.secs(&init), 10);
}

#[test]
fn sc2_invalid_first_packets() {
    for checksum in [true, false] {
        let mut h = H::cfg(Config {
            checksum,
            ..Config::default()
        });
        let unknown = sctp_raw(SC, SS, 0, &[(0xc0, 0, b"")], false);
        h.invalid(&unknown, InvalidReason::SctpStateTable);
        h.invalid(
            &sctp_raw(
                SC,
                SS,
                TS_,
                &[(0, 3, b"\0\0\0\x01\0\0\0\0\0\0\0\0x")],
                false,
            ),
            InvalidReason::SctpStateTable,
        );
        h.invalid(
            &sctp_raw(SC, SS, 7, &[(1, 0, &init_body(TC))], false),
            InvalidReason::SctpBadVtag,
        );
        h.invalid(
            &sctp_raw(SC, SS, 0, &[], false),
            InvalidReason::SctpBadChunks,
        );
        h.invalid(
            &sctp_raw(
                SC,
                SS,
                0,
                &[
                    (1, 0, &init_body(TC)),
                    (0, 3, b"\0\0\0\x01\0\0\0\0\0\0\0\0x"),
                ],
                false,
            ),
            InvalidReason::SctpBadChunks,
        );
        h.invalid(
            &sctp_raw(SC, SS, TS_, &[(11, 0, b"")], false),
            InvalidReason::SctpStateTable,
        );
        // A cut header (8 bytes of SCTP).
        let mut cut = sctp_raw(SC, SS, 0, &[(1, 0, &init_body(TC))], false);
        cut.truncate(14 + 20 + 8);
        cut[16..18].copy_from_slice(&28u16.to_be_bytes());
        fix_ip_csum(&mut cut);
        h.invalid(&cut, InvalidReason::Truncated);
        // The ICMP error quoting a packet that created nothing.
        h.invalid(
            &icmp_err(SI, CI, 3, 3, &unknown, 28),
            InvalidReason::IcmpErrorNoEntry,
        );
        let bad = sctp_raw(SC, SS, 0, &[(1, 0, &init_body(TC))], true);
        if checksum {
            h.invalid(&bad, InvalidReason::SctpBadChecksum);
        } else {
            h.check(&bad, New, None);
        }
        assert_eq!(h.t.len(), usize::from(!checksum));
    }
}

#[test]
fn sc4_heartbeat_starts_an_entry_and_errors_are_related() {
    let mut h = H::new();
    let hb = sctp_raw(SC, SS, TS_, &[(4, 0, b"\0\x01\0\x0chbinfo!!")], false);
    h.check(&hb, New, None);
    assert_eq!(state(&h, &hb), Some(SctpState::HeartbeatSent));
    assert_eq!(h.secs(&hb), 30);
    let t = h.go(&sctp_raw(
        SS,
        SC,
        TC,
        &[(5, 0, b"\0\x01\0\x0chbinfo!!")],
        false,
    ));
    expect(&t, Est, None);
    assert!(t.status.has(CtStatus::ASSURED));
    assert_eq!(state(&h, &hb), Some(SctpState::Established));
    let mut h = H::new();
    let init = sctp_raw(SC, SS, 0, &[(1, 0, &init_body(TC))], false);
    h.check(&init, New, None);
    let t = h.go(&icmp_err(SI, CI, 3, 3, &init, 48));
    expect(&t, Rel, None);
    assert_eq!(t.dir, Direction::Reply);
}

#[test]
fn sctp_through_snat_keeps_its_ports_and_the_reply_finds_the_entry() {
    use crate::conntrack::nat::range_flags as rf;
    use crate::conntrack::{NatRange, NatRequest};
    let mut h = H::new();
    let pub_ip = packet::from_ip(ip("192.0.2.1")).1;
    let req = NatRequest {
        dst: None,
        src: Some(NatRange {
            flags: rf::MAP_IPS,
            min_addr: pub_ip,
            max_addr: pub_ip,
            ..Default::default()
        }),
    };
    let init = sctp_raw(SC, SS, 0, &[(1, 0, &init_body(TC))], false);
    let p = parsed(&init);
    let t = h.t.track(&init, &p, h.now, TrackOpts::default());
    let hd = t.handle.unwrap();
    assert_eq!(h.t.bind_nat(hd, &req, h.now, |_| true), Ok(()));
    assert!(h.t.confirm(&t, true, &init, &p, h.now).is_pass());
    let rw = h.t.nat_rewrite(hd, Direction::Original).unwrap();
    assert_eq!((rw.new.src, rw.new.sport), (pub_ip, 40100));
    // The INIT-ACK to the translated address is the entry's reply.
    let ia = sctp_raw(SS, "192.0.2.1:40100", TC, &[(2, 0, &init_body(TS_))], false);
    let r = h.go(&ia);
    expect(&r, Est, None);
    assert_eq!((r.dir, r.handle), (Direction::Reply, Some(hd)));
    assert_eq!(state(&h, &init), Some(SctpState::CookieWait));
}
