//! Parser tests with real byte layouts built by [`super::build`] and by hand.

use super::build::{tcp_options, L4Spec, PacketSpec};
use super::*;
use proptest::prelude::*;
use std::net::{IpAddr, SocketAddr};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn parsed(frame: &[u8]) -> Parsed {
    match parse(frame).expect("parses") {
        Frame::Ip(p) => p,
        Frame::NonIp(e) => panic!("non-ip {e:#x}"),
    }
}

#[test]
fn ipv4_tcp_with_options() {
    let (o, n) = tcp_options(Some(1460), Some(7), true, Some((1, 2)));
    let f = PacketSpec::tcp(
        sa("10.0.0.1:40000"),
        sa("10.0.0.2:80"),
        tcp_flags::SYN,
        1000,
        0,
    )
    .tcp_options(&o[..n])
    .payload(b"hello")
    .to_vec();
    let p = parsed(&f);
    assert_eq!(p.family, Family::V4);
    assert_eq!(&p.src[..4], &[10, 0, 0, 1]);
    assert_eq!(p.proto, proto::TCP);
    let L4::Tcp(t) = p.l4 else { panic!() };
    assert_eq!(
        (t.sport, t.dport, t.seq, t.flags),
        (40000, 80, 1000, tcp_flags::SYN)
    );
    assert_eq!(t.options.mss, Some(1460));
    assert_eq!(t.options.wscale, Some(7));
    assert!(t.options.sack_perm);
    assert_eq!(t.options.timestamps, Some((1, 2)));
    assert_eq!(t.payload_len, 5);
    assert_eq!(&f[p.payload_range()], b"hello");
    assert!(checksum::ipv4_header_ok(&f, &p));
    assert!(checksum::l4_ok(&f, &p));
}

/// SACK blocks fold into the highest right edge after the ACK number, in serial-number
/// order (a block "before" the ACK, or wrapped around, does not move it).
#[test]
fn parse_tcp_sack_blocks_fold_into_the_right_edge() {
    let sack = |ack: u32, blocks: &[(u32, u32)]| {
        let mut o = vec![1u8, 1, 5, 2 + 8 * blocks.len() as u8];
        for &(l, r) in blocks {
            o.extend_from_slice(&l.to_be_bytes());
            o.extend_from_slice(&r.to_be_bytes());
        }
        while o.len() % 4 != 0 {
            o.push(0);
        }
        let f = PacketSpec::tcp(
            sa("10.0.0.1:40000"),
            sa("10.0.0.2:80"),
            tcp_flags::ACK,
            1,
            ack,
        )
        .tcp_options(&o)
        .to_vec();
        let L4::Tcp(t) = parsed(&f).l4 else { panic!() };
        t.options.sack_right
    };
    assert_eq!(sack(1000, &[]), None);
    assert_eq!(
        sack(1000, &[(1500, 2000), (3000, 4000), (2000, 2500)]),
        Some(4000)
    );
    assert_eq!(
        sack(1000, &[(100, 500)]),
        Some(1000),
        "below the ACK: no move"
    );
    // Across the wrap: 0x10 is after 0xffff_fff0.
    assert_eq!(sack(0xffff_fff0, &[(0xffff_fff8, 0x10)]), Some(0x10));
    // Without options at all.
    let f = PacketSpec::tcp(sa("10.0.0.1:1"), sa("10.0.0.2:2"), tcp_flags::ACK, 1, 2).to_vec();
    let L4::Tcp(t) = parsed(&f).l4 else { panic!() };
    assert_eq!(t.options, Default::default());
}

#[test]
fn checksum_detects_corruption() {
    let mut f = PacketSpec::udp(sa("10.0.0.1:5353"), sa("10.0.0.2:53"))
        .payload(b"q")
        .to_vec();
    let p = parsed(&f);
    assert!(checksum::l4_ok(&f, &p));
    let last = f.len() - 1;
    f[last] ^= 0xff;
    assert!(!checksum::l4_ok(&f, &p));
    // IPv6 UDP and ICMPv6 with the pseudo-header.
    let f6 = PacketSpec::udp(sa("[fd00::1]:5353"), sa("[fd00::2]:53"))
        .payload(b"abc")
        .to_vec();
    let p6 = parsed(&f6);
    assert!(checksum::l4_ok(&f6, &p6));
    let e6 = PacketSpec::icmp_echo(ip("fd00::1"), ip("fd00::2"), 128, 7, 1).to_vec();
    let pe6 = parsed(&e6);
    assert!(checksum::l4_ok(&e6, &pe6));
    let e4 = PacketSpec::icmp_echo(ip("10.0.0.1"), ip("10.0.0.2"), 8, 7, 1).to_vec();
    assert!(checksum::l4_ok(&e4, &parsed(&e4)));
}

#[test]
fn vlan_tags_qinq() {
    let mut f = PacketSpec::udp(sa("10.0.0.1:1"), sa("10.0.0.2:2"))
        .vlan(100)
        .to_vec();
    // Add an outer 802.1ad tag by hand.
    let mut q = f[..12].to_vec();
    q.extend_from_slice(&[0x88, 0xa8, 0x00, 0x0a]);
    q.extend_from_slice(&f[12..]);
    f = q;
    let p = parsed(&f);
    assert_eq!(p.vlan_count, 2);
    assert_eq!(p.vlans, [10, 100]);
    assert_eq!(p.l3_off, 22);
}

#[test]
fn non_ip_frames() {
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    assert_eq!(parse(&arp), Ok(Frame::NonIp(ETH_P_ARP)));
    assert_eq!(parse(&arp[..10]), Err(ParseError::TruncatedL2));
}

#[test]
fn ipv4_header_errors() {
    let f = PacketSpec::udp(sa("10.0.0.1:1"), sa("10.0.0.2:2")).to_vec();
    let mut bad = f.clone();
    bad[14] = 0x44; // ihl 4
    assert_eq!(parse(&bad), Err(ParseError::BadIhl));
    let mut bad = f.clone();
    bad[14] = 0x4f; // ihl 15: 60 bytes, beyond the 28-byte packet
    assert_eq!(parse(&bad), Err(ParseError::BadIhl));
    let mut bad = f.clone();
    bad[16..18].copy_from_slice(&200u16.to_be_bytes());
    assert_eq!(parse(&bad), Err(ParseError::BadTotalLength));
    let mut bad = f.clone();
    bad[14] = 0x65;
    assert_eq!(parse(&bad), Err(ParseError::BadIpVersion));
    assert_eq!(parse(&f[..20]), Err(ParseError::TruncatedIp));
    // Ethernet padding after the IP packet is not payload.
    let mut padded = f.clone();
    padded.extend_from_slice(&[0u8; 18]);
    let p = parsed(&padded);
    assert_eq!(p.ip_end as usize, f.len());
}

#[test]
fn ipv4_fragments() {
    let mut f = PacketSpec::udp(sa("10.0.0.1:1"), sa("10.0.0.2:2"))
        .payload(&[0u8; 16])
        .to_vec();
    f[20..22].copy_from_slice(&0x2000u16.to_be_bytes()); // MF, offset 0
    let p = parsed(&f);
    assert!(p.frag.more && p.frag.offset == 0 && p.frag.is_fragment());
    assert!(matches!(p.l4, L4::Udp(_)));
    f[20..22].copy_from_slice(&0x0003u16.to_be_bytes()); // offset 3 (24 bytes)
    let p = parsed(&f);
    assert_eq!(p.frag.offset, 3);
    assert_eq!(p.l4, L4::Fragment);
}

#[test]
fn l4_malformations() {
    // TCP data offset 4.
    let mut f = PacketSpec::tcp(sa("10.0.0.1:1"), sa("10.0.0.2:2"), tcp_flags::SYN, 0, 0).to_vec();
    f[34 + 12] = 4 << 4;
    assert_eq!(parsed(&f).l4, L4::Malformed(ParseError::BadTcpDataOffset));
    f[34 + 12] = 15 << 4;
    assert_eq!(parsed(&f).l4, L4::Malformed(ParseError::BadTcpDataOffset));
    // 12-byte TCP segment.
    let mut s = PacketSpec::new(
        ip("10.0.0.1"),
        ip("10.0.0.2"),
        L4Spec::Raw { proto: proto::TCP },
    )
    .payload(&[0u8; 12])
    .to_vec();
    assert_eq!(parsed(&s).l4, L4::Malformed(ParseError::TruncatedL4));
    // UDP length field 100 with 20 bytes present, and 7.
    s = PacketSpec::udp(sa("10.0.0.1:1"), sa("10.0.0.2:2"))
        .payload(&[0u8; 12])
        .to_vec();
    s[34 + 4..34 + 6].copy_from_slice(&100u16.to_be_bytes());
    assert_eq!(parsed(&s).l4, L4::Malformed(ParseError::BadUdpLength));
    s[34 + 4..34 + 6].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(parsed(&s).l4, L4::Malformed(ParseError::BadUdpLength));
    // 6-byte ICMP.
    let i = PacketSpec::new(
        ip("10.0.0.1"),
        ip("10.0.0.2"),
        L4Spec::Raw { proto: proto::ICMP },
    )
    .payload(&[8, 0, 0, 0, 0, 0])
    .to_vec();
    assert_eq!(parsed(&i).l4, L4::Malformed(ParseError::TruncatedL4));
}

/// Inserts IPv6 extension headers (hop-by-hop, dest-opts, fragment) before the L4 header.
fn with_ext_headers(frame: &[u8], frag: Option<(u16, bool)>) -> Vec<u8> {
    let l3 = 14;
    let nh = frame[l3 + 6];
    let mut exts = Vec::new();
    // hop-by-hop -> destination options -> (fragment ->) original
    exts.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]); // HBH, next = dest opts, PadN
    let after_dst = if frag.is_some() { 44 } else { nh };
    exts.extend_from_slice(&[after_dst, 0, 1, 4, 0, 0, 0, 0]);
    if let Some((off, more)) = frag {
        let fo = (off << 3) | more as u16;
        exts.extend_from_slice(&[nh, 0]);
        exts.extend_from_slice(&fo.to_be_bytes());
        exts.extend_from_slice(&0xdeadbeefu32.to_be_bytes());
    }
    let mut out = frame[..l3 + 40].to_vec();
    out[l3 + 6] = 0; // hop-by-hop first
    let pl = u16::from_be_bytes([out[l3 + 4], out[l3 + 5]]) + exts.len() as u16;
    out[l3 + 4..l3 + 6].copy_from_slice(&pl.to_be_bytes());
    out.extend_from_slice(&exts);
    out.extend_from_slice(&frame[l3 + 40..]);
    out
}

#[test]
fn ipv6_extension_chain() {
    let f = PacketSpec::tcp(
        sa("[fd00::1]:40000"),
        sa("[fd00::2]:80"),
        tcp_flags::SYN,
        1,
        0,
    )
    .to_vec();
    let x = with_ext_headers(&f, None);
    let p = parsed(&x);
    assert_eq!(p.proto, proto::TCP);
    assert_eq!(p.l4_off, 14 + 40 + 16);
    assert!(matches!(p.l4, L4::Tcp(t) if t.dport == 80));
    assert!(
        checksum::l4_ok(&x, &p),
        "pseudo-header uses the fixed header addresses"
    );
    let fr = with_ext_headers(&f, Some((0, true)));
    let p = parsed(&fr);
    assert!(p.frag.more && p.frag.id == 0xdeadbeef);
    assert!(matches!(p.l4, L4::Tcp(_)));
    let fr = with_ext_headers(&f, Some((5, false)));
    let p = parsed(&fr);
    assert_eq!(p.l4, L4::Fragment);
    // A chain cut short.
    let mut cut = with_ext_headers(&f, None);
    cut.truncate(14 + 40 + 4);
    let pl = 4u16;
    cut[18..20].copy_from_slice(&pl.to_be_bytes());
    assert_eq!(parse(&cut), Err(ParseError::BadExtHeader));
    // No next header (59) is tracked generically.
    let n = PacketSpec::new(
        ip("fd00::1"),
        ip("fd00::2"),
        L4Spec::Raw {
            proto: proto::NONE6,
        },
    )
    .to_vec();
    assert_eq!(parsed(&n).l4, L4::Other);
}

#[test]
fn icmp_error_quote() {
    let inner = PacketSpec::udp(sa("10.0.0.1:5353"), sa("10.0.0.2:53"))
        .payload(b"query")
        .to_vec();
    let quote = &inner[14..14 + 28]; // IP header + 8 bytes
    let f = PacketSpec::icmp(ip("10.0.0.2"), ip("10.0.0.1"), 3, 3, [0; 4])
        .payload(quote)
        .to_vec();
    let p = parsed(&f);
    let L4::Icmp(i) = p.l4 else { panic!() };
    assert!(i.is_error());
    let q = parse_embedded(&f[..p.ip_end as usize], p.l4_off as usize + 8).unwrap();
    assert_eq!(q.ports(), Some((5353, 53)));
    assert_eq!(&q.src[..4], &[10, 0, 0, 1]);
    // A quote of only 4 L4 bytes still yields ports.
    let short = &inner[14..14 + 24];
    let f = PacketSpec::icmp(ip("10.0.0.2"), ip("10.0.0.1"), 3, 3, [0; 4])
        .payload(short)
        .to_vec();
    let p = parsed(&f);
    let q = parse_embedded(&f[..p.ip_end as usize], p.l4_off as usize + 8).unwrap();
    assert_eq!(q.ports(), Some((5353, 53)));
}

/// Found by the fuzzer: ICMPv6 (protocol 58) inside IPv4 made the checksum read an
/// IPv6 pseudo-header out of a 20-byte IPv4 header.
#[test]
fn icmpv6_in_ipv4_checksum_does_not_panic() {
    let f = PacketSpec::new(
        ip("10.0.0.1"),
        ip("10.0.0.2"),
        L4Spec::Raw {
            proto: proto::ICMPV6,
        },
    )
    .payload(&[128, 0, 0, 0, 0, 7, 0, 1])
    .to_vec();
    let p = parsed(&f);
    assert!(matches!(p.l4, L4::Icmp(i) if i.v6));
    assert!(checksum::l4_ok(&f, &p));
    let crash = [
        0x0a, 0x99, 0x00, 0x08, 0x00, 0x00, 0x00, 0x99, 0x08, 0x09, 0xfb, 0x00, 0x08, 0x00, 0x47,
        0xca, 0x00, 0x27, 0x6f, 0x00, 0x00, 0x00, 0x00, 0x3a, 0xf4, 0x00, 0x00, 0x6d, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0xfb, 0x7a, 0xb2, 0xff, 0xff, 0xff, 0xff, 0xb2, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0x85, 0xff, 0xff,
    ];
    if let Ok(Frame::Ip(p)) = parse(&crash) {
        let _ = checksum::l4_ok(&crash, &p);
    }
}

proptest! {
    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&bytes);
        let _ = parse_embedded(&bytes, 0);
        if let Ok(Frame::Ip(p)) = parse(&bytes) {
            let _ = checksum::l4_ok(&bytes, &p);
            let _ = checksum::ipv4_header_ok(&bytes, &p);
            prop_assert!(p.ip_end as usize <= bytes.len());
            prop_assert!(p.l4_off <= p.ip_end);
            let _ = &bytes[p.payload_range()];
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic(idx in 0usize..80, val in any::<u8>(), v6 in any::<bool>()) {
        let f = if v6 {
            PacketSpec::tcp(sa("[fd00::1]:1"), sa("[fd00::2]:2"), tcp_flags::ACK, 1, 2).payload(b"abcdef").to_vec()
        } else {
            PacketSpec::tcp(sa("10.0.0.1:1"), sa("10.0.0.2:2"), tcp_flags::ACK, 1, 2).payload(b"abcdef").to_vec()
        };
        let mut m = f.clone();
        let i = idx % m.len();
        m[i] = val;
        if let Ok(Frame::Ip(p)) = parse(&m) {
            let _ = checksum::l4_ok(&m, &p);
            let _ = &m[p.payload_range()];
        }
        for cut in [m.len() / 2, m.len() - 1] {
            let _ = parse(&m[..cut]);
        }
    }
}
