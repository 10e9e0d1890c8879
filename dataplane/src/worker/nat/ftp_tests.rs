//! FTP through NAT in the pipeline (`nf_nat_ftp` + seqadj): the control connection's
//! PORT/227 text rewritten (the frame growing or shrinking), every later segment's
//! sequence and acknowledgement numbers (and SACK blocks) adjusted in both directions,
//! retransmissions from before and of the rewritten segment, conntrack's window check
//! still passing (an INVALID rule would drop a mis-tracked ack), and the data
//! connection NATed to follow the master. Frames are compared with frames built from
//! scratch, so every checksum is a full recompute.

use super::tests::{sa, same, Rig};
use super::*;
use crate::packet::build::PacketSpec;
use crate::packet::tcp_flags::{ACK, SYN};
use crate::worker::DropReason;

const PSH: u8 = 0x08;

fn tcp(src: &str, dst: &str, flags: u8, seq: u32, ack: u32, data: &[u8]) -> Vec<u8> {
    PacketSpec::tcp(sa(src), sa(dst), flags, seq, ack)
        .payload(data)
        .to_vec()
}

fn addrs(masq: &str) -> NatAddrs {
    NatAddrs {
        masquerade_v4: Some(packet::from_ip(masq.parse().unwrap()).1),
        ..Default::default()
    }
}

const FILTER: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A FORWARD -m conntrack --ctstate INVALID -j DROP\n\
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
-A FORWARD -i inside -o outside -j ACCEPT\n\
-A FORWARD -i outside -o inside -p tcp --dport 21 -j ACCEPT\nCOMMIT\n";

const RAW: &str = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp\nCOMMIT\n";

const C: &str = "10.0.0.2:40000";
const CP: &str = "192.0.2.1:40000";
const S: &str = "198.51.100.9:21";

/// Active FTP from an inside client through MASQUERADE: the PORT command grows by one
/// byte ("10,0,0,2" -> "192,0,2,1").
#[test]
fn port_through_masquerade_grows_and_seq_ack_sack_follow() {
    let rules = format!(
        "{RAW}*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o outside -j MASQUERADE\nCOMMIT\n{FILTER}"
    );
    let mut r = Rig::new(&rules, addrs("192.0.2.1"));
    let out =
        |r: &mut Rig, f: Vec<u8>, want: Vec<u8>| same(&r.send(Side::Host, &f).unwrap(), &want);
    let back =
        |r: &mut Rig, f: Vec<u8>, want: Vec<u8>| same(&r.send(Side::Network, &f).unwrap(), &want);
    out(
        &mut r,
        tcp(C, S, SYN, 100, 0, b""),
        tcp(CP, S, SYN, 100, 0, b""),
    );
    back(
        &mut r,
        tcp(S, CP, SYN | ACK, 500, 101, b""),
        tcp(S, C, SYN | ACK, 500, 101, b""),
    );
    out(
        &mut r,
        tcp(C, S, ACK, 101, 501, b""),
        tcp(CP, S, ACK, 101, 501, b""),
    );
    let banner = b"220 ready\r\n";
    back(
        &mut r,
        tcp(S, CP, ACK | PSH, 501, 101, banner),
        tcp(S, C, ACK | PSH, 501, 101, banner),
    );
    out(
        &mut r,
        tcp(C, S, ACK | PSH, 101, 512, b"USER a\r\n"),
        tcp(CP, S, ACK | PSH, 101, 512, b"USER a\r\n"),
    );
    back(
        &mut r,
        tcp(S, CP, ACK | PSH, 512, 109, b"331 pw\r\n"),
        tcp(S, C, ACK | PSH, 512, 109, b"331 pw\r\n"),
    );
    let port = b"PORT 10,0,0,2,156,64\r\n";
    let port_nat = b"PORT 192,0,2,1,156,64\r\n";
    assert_eq!(port_nat.len(), port.len() + 1);
    let cmd = tcp(C, S, ACK | PSH, 109, 520, port);
    let cmd_nat = tcp(CP, S, ACK | PSH, 109, 520, port_nat);
    out(&mut r, cmd.clone(), cmd_nat.clone());
    // The expectation waits for the server's data connection to the public address.
    let exp = r.pl.table().expectations().list(r.now);
    assert_eq!(exp.len(), 1);
    assert_eq!(exp[0].exp.key.dport, 40000);
    // A retransmission of the PORT segment: the same rewrite, the same seq.
    out(&mut r, cmd, cmd_nat);
    // The server acknowledges the longer text: its ack comes back one lower.
    back(
        &mut r,
        tcp(S, CP, ACK | PSH, 520, 132, b"200 ok\r\n"),
        tcp(S, C, ACK | PSH, 520, 131, b"200 ok\r\n"),
    );
    // The client's next segment moves up by one; a retransmission of a segment from
    // before the rewrite does not.
    out(
        &mut r,
        tcp(C, S, ACK | PSH, 131, 528, b"LIST\r\n"),
        tcp(CP, S, ACK | PSH, 132, 528, b"LIST\r\n"),
    );
    out(
        &mut r,
        tcp(C, S, ACK | PSH, 101, 528, b"USER a\r\n"),
        tcp(CP, S, ACK | PSH, 101, 528, b"USER a\r\n"),
    );
    // A SACK from the server: both block edges move down like the ack.
    let sack = |ack: u32, a: u32, b: u32, to: &str, from: &str| {
        let mut o = vec![1u8, 1, 5, 10];
        o.extend_from_slice(&a.to_be_bytes());
        o.extend_from_slice(&b.to_be_bytes());
        PacketSpec::tcp(sa(from), sa(to), ACK, 528, ack)
            .tcp_options(&o)
            .to_vec()
    };
    back(
        &mut r,
        sack(138, 150, 160, CP, S),
        sack(137, 149, 159, C, S),
    );
    // The data connection from the server's port 20 reaches the inside client.
    back(
        &mut r,
        tcp("198.51.100.9:20", "192.0.2.1:40000", SYN, 9000, 0, b""),
        tcp("198.51.100.9:20", "10.0.0.2:40000", SYN, 9000, 0, b""),
    );
    out(
        &mut r,
        tcp(
            "10.0.0.2:40000",
            "198.51.100.9:20",
            SYN | ACK,
            7000,
            9001,
            b"",
        ),
        tcp(
            "192.0.2.1:40000",
            "198.51.100.9:20",
            SYN | ACK,
            7000,
            9001,
            b"",
        ),
    );
    assert!(r.pl.table().expectations().is_empty(), "used once");
}

/// Passive FTP to an inside server published by DNAT: the 227 reply shrinks by five
/// bytes ("172,16,100,100" -> "192,0,2,1") in the REPLY direction.
#[test]
fn pasv_through_dnat_shrinks_in_the_reply_direction() {
    let rules = format!(
        "{RAW}*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:POSTROUTING ACCEPT [0:0]\n\
-A PREROUTING -d 192.0.2.1/32 -i outside -p tcp -m tcp --dport 21 -j DNAT --to-destination 172.16.100.100\n\
COMMIT\n{FILTER}"
    );
    let mut r = Rig::new(&rules, NatAddrs::default());
    let (x, pubs, v) = ("203.0.113.5:40000", "192.0.2.1:21", "172.16.100.100:21");
    let inn =
        |r: &mut Rig, f: Vec<u8>, want: Vec<u8>| same(&r.send(Side::Network, &f).unwrap(), &want);
    let out =
        |r: &mut Rig, f: Vec<u8>, want: Vec<u8>| same(&r.send(Side::Host, &f).unwrap(), &want);
    inn(
        &mut r,
        tcp(x, pubs, SYN, 100, 0, b""),
        tcp(x, v, SYN, 100, 0, b""),
    );
    out(
        &mut r,
        tcp(v, x, SYN | ACK, 500, 101, b""),
        tcp(pubs, x, SYN | ACK, 500, 101, b""),
    );
    inn(
        &mut r,
        tcp(x, pubs, ACK, 101, 501, b""),
        tcp(x, v, ACK, 101, 501, b""),
    );
    let banner = b"220 ready\r\n";
    out(
        &mut r,
        tcp(v, x, ACK | PSH, 501, 101, banner),
        tcp(pubs, x, ACK | PSH, 501, 101, banner),
    );
    inn(
        &mut r,
        tcp(x, pubs, ACK | PSH, 101, 512, b"PASV\r\n"),
        tcp(x, v, ACK | PSH, 101, 512, b"PASV\r\n"),
    );
    let pasv = b"227 Entering Passive Mode (172,16,100,100,195,80).\r\n";
    let pasv_nat = b"227 Entering Passive Mode (192,0,2,1,195,80).\r\n";
    let (lo, ln) = (pasv.len() as u32, pasv_nat.len() as u32);
    assert_eq!(lo - ln, 5);
    let reply = tcp(v, x, ACK | PSH, 512, 107, pasv);
    let reply_nat = tcp(pubs, x, ACK | PSH, 512, 107, pasv_nat);
    out(&mut r, reply.clone(), reply_nat.clone());
    // A retransmitted 227 (its seq still a remembered line start) keeps its seq and
    // gets the same text.
    out(&mut r, reply.clone(), reply_nat.clone());
    // The client acknowledges the shorter text; the server sees its own numbers.
    inn(
        &mut r,
        tcp(x, pubs, ACK | PSH, 107, 512 + ln, b"LIST\r\n"),
        tcp(x, v, ACK | PSH, 107, 512 + lo, b"LIST\r\n"),
    );
    out(
        &mut r,
        tcp(v, x, ACK | PSH, 512 + lo, 113, b"150 ok\r\n"),
        tcp(pubs, x, ACK | PSH, 512 + ln, 113, b"150 ok\r\n"),
    );
    // Two line starts later the helper no longer looks at seq 512 (it remembers two
    // per direction, as the kernel): a late retransmission goes out as sent, at its
    // own (unadjusted, before the correction point) seq, as Linux forwards it.
    out(&mut r, reply, tcp(pubs, x, ACK | PSH, 512, 107, pasv));
    // The client's data connection to the public address and the port in the text
    // reaches the inside server (nf_nat_follow_master), and its reply goes back.
    inn(
        &mut r,
        tcp("203.0.113.5:41000", "192.0.2.1:50000", SYN, 3000, 0, b""),
        tcp(
            "203.0.113.5:41000",
            "172.16.100.100:50000",
            SYN,
            3000,
            0,
            b"",
        ),
    );
    out(
        &mut r,
        tcp(
            "172.16.100.100:50000",
            "203.0.113.5:41000",
            SYN | ACK,
            4000,
            3001,
            b"",
        ),
        tcp(
            "192.0.2.1:50000",
            "203.0.113.5:41000",
            SYN | ACK,
            4000,
            3001,
            b"",
        ),
    );
    // Without the expectation the same SYN to another port is NEW and dropped.
    assert_eq!(
        r.send(
            Side::Network,
            &tcp("203.0.113.5:41001", "192.0.2.1:50001", SYN, 1, 0, b"")
        ),
        Err(DropReason::Policy)
    );
}

/// One control connection's handshake, banner and a first client line, from `c` (inside)
/// to `s` through a MASQUERADE to `cp`; returns (client seq, server seq) after them.
fn login(r: &mut Rig, c: &str, cp: &str, s: &str) -> (u32, u32) {
    let out =
        |r: &mut Rig, f: Vec<u8>, want: Vec<u8>| same_any(&r.send(Side::Host, &f).unwrap(), &want);
    let back = |r: &mut Rig, f: Vec<u8>, want: Vec<u8>| {
        same_any(&r.send(Side::Network, &f).unwrap(), &want)
    };
    out(r, tcp(c, s, SYN, 100, 0, b""), tcp(cp, s, SYN, 100, 0, b""));
    back(
        r,
        tcp(s, cp, SYN | ACK, 500, 101, b""),
        tcp(s, c, SYN | ACK, 500, 101, b""),
    );
    out(
        r,
        tcp(c, s, ACK, 101, 501, b""),
        tcp(cp, s, ACK, 101, 501, b""),
    );
    back(
        r,
        tcp(s, cp, ACK | PSH, 501, 101, b"220 ready\r\n"),
        tcp(s, c, ACK | PSH, 501, 101, b"220 ready\r\n"),
    );
    out(
        r,
        tcp(c, s, ACK | PSH, 101, 512, b"USER a\r\n"),
        tcp(cp, s, ACK | PSH, 101, 512, b"USER a\r\n"),
    );
    (109, 512)
}

/// `same` for either family (checksums checked by a reparse).
fn same_any(got: &[u8], want: &[u8]) {
    assert_eq!(got, want);
    let Ok(crate::packet::Frame::Ip(p)) = crate::packet::parse(got) else {
        panic!()
    };
    assert!(crate::packet::checksum::l4_ok(got, &p), "L4 checksum");
}

/// EPRT through MASQUERADE (IPv4: "|1|10.0.0.2|6275|" -> "|1|192.0.2.1|6275|", +2) and
/// through NAT66 (the kernel's `%pI6`: eight full groups, +32 bytes here).
#[test]
fn eprt_through_masquerade_v4_and_nat66() {
    let v4 = format!(
        "{RAW}*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o outside -j MASQUERADE\nCOMMIT\n"
    );
    let mut r = Rig::new(&v4, addrs("192.0.2.1"));
    let (cs, ss) = login(&mut r, C, CP, S);
    let (old, new) = (
        b"EPRT |1|10.0.0.2|6275|\r\n",
        b"EPRT |1|192.0.2.1|6275|\r\n",
    );
    same_any(
        &r.send(Side::Host, &tcp(C, S, ACK | PSH, cs, ss, old))
            .unwrap(),
        &tcp(CP, S, ACK | PSH, cs, ss, new),
    );
    let (lo, ln) = (old.len() as u32, new.len() as u32);
    same_any(
        &r.send(
            Side::Network,
            &tcp(S, CP, ACK | PSH, ss, cs + ln, b"200 ok\r\n"),
        )
        .unwrap(),
        &tcp(S, C, ACK | PSH, ss, cs + lo, b"200 ok\r\n"),
    );
    same_any(
        &r.send(
            Side::Host,
            &tcp(C, S, ACK | PSH, cs + lo, ss + 8, b"LIST\r\n"),
        )
        .unwrap(),
        &tcp(CP, S, ACK | PSH, cs + ln, ss + 8, b"LIST\r\n"),
    );
    // NAT66.
    let v6 = format!(
        "{RAW}*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o outside -j MASQUERADE\nCOMMIT\n"
    );
    let rs6 =
        crate::ruleset::parse_ruleset(&v6, "rules.v6", Some(crate::packet::Family::V6)).unwrap();
    let rs4 =
        crate::ruleset::parse_ruleset("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n", "rules.v4", None)
            .unwrap();
    let mut r = Rig::with_rs(
        rs4.with_other_family(rs6).unwrap(),
        NatAddrs {
            masquerade_v6: Some(packet::from_ip("2001:db8::1".parse().unwrap()).1),
            ..Default::default()
        },
    );
    let (c6, cp6, s6) = (
        "[fd00::2]:40000",
        "[2001:db8::1]:40000",
        "[2001:db8:9::9]:21",
    );
    let (cs, ss) = login(&mut r, c6, cp6, s6);
    let old = b"EPRT |2|fd00::2|6275|\r\n";
    let new = b"EPRT |2|2001:0db8:0000:0000:0000:0000:0000:0001|6275|\r\n";
    same_any(
        &r.send(Side::Host, &tcp(c6, s6, ACK | PSH, cs, ss, old))
            .unwrap(),
        &tcp(cp6, s6, ACK | PSH, cs, ss, new),
    );
    let (lo, ln) = (old.len() as u32, new.len() as u32);
    same_any(
        &r.send(
            Side::Network,
            &tcp(s6, cp6, ACK | PSH, ss, cs + ln, b"200 ok\r\n"),
        )
        .unwrap(),
        &tcp(s6, c6, ACK | PSH, ss, cs + lo, b"200 ok\r\n"),
    );
    // The server's data connection to the public address reaches the inside client.
    same_any(
        &r.send(
            Side::Network,
            &tcp("[2001:db8:9::9]:20", "[2001:db8::1]:6275", SYN, 9, 0, b""),
        )
        .unwrap(),
        &tcp("[2001:db8:9::9]:20", "[fd00::2]:6275", SYN, 9, 0, b""),
    );
}
