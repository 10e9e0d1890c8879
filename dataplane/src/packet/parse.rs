//! The parser behind [`super::parse`]. Every read is bounds-checked through
//! [`be16`]/[`be32`]-style helpers on slices obtained with `get`, so a short or
//! inconsistent packet ends in a [`ParseError`], never an index panic.

use super::{
    proto, Family, Frag, Frame, Icmp, ParseError, Parsed, Sctp, Tcp, TcpOptions, Udp, ETH_P_8021AD,
    ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, L4,
};

#[inline(always)]
fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline(always)]
fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Most IPv6 extension headers walked before giving up (a loop guard).
const MAX_EXT_HEADERS: usize = 16;

/// Parses an Ethernet II frame with up to two VLAN tags (802.1Q / 802.1ad).
pub fn parse(frame: &[u8]) -> Result<Frame, ParseError> {
    let mut et = be16(frame, 12).ok_or(ParseError::TruncatedL2)?;
    let mut off = 14;
    let mut vlans = [0u16; 2];
    let mut n = 0u8;
    while et == ETH_P_8021Q || et == ETH_P_8021AD {
        if n == 2 {
            return Err(ParseError::TooManyVlans);
        }
        let tci = be16(frame, off).ok_or(ParseError::TruncatedL2)?;
        et = be16(frame, off + 2).ok_or(ParseError::TruncatedL2)?;
        vlans[n as usize] = tci & 0x0fff;
        n += 1;
        off += 4;
    }
    match et {
        ETH_P_IPV4 | ETH_P_IPV6 => {
            let version = frame.get(off).ok_or(ParseError::TruncatedIp)? >> 4;
            if version != if et == ETH_P_IPV4 { 4 } else { 6 } {
                return Err(ParseError::BadIpVersion);
            }
            let mut p = parse_ip(frame, off)?;
            p.vlans = vlans;
            p.vlan_count = n;
            Ok(Frame::Ip(p))
        }
        other => Ok(Frame::NonIp(other)),
    }
}

/// Parses an IP packet (version from its first nibble) starting at `l3_off` in `buf`.
/// The IP length fields must fit inside `buf`.
#[inline]
pub fn parse_ip(buf: &[u8], l3_off: usize) -> Result<Parsed, ParseError> {
    parse_l3(buf, l3_off, false)
}

/// Parses the packet quoted inside an ICMP error, starting at `l3_off`. Unlike
/// [`parse_ip`], the quote may be cut short: the IP length fields are clamped to the
/// bytes present, and the L4 header only needs what a tuple needs (4 bytes of ports
/// for TCP/UDP, the 8-byte ICMP header). TCP fields past the ports may be zero.
pub fn parse_embedded(buf: &[u8], l3_off: usize) -> Result<Parsed, ParseError> {
    parse_l3(buf, l3_off, true)
}

#[inline(always)]
fn parse_l3(buf: &[u8], l3: usize, inner: bool) -> Result<Parsed, ParseError> {
    let first = *buf.get(l3).ok_or(ParseError::TruncatedIp)?;
    let avail = buf.len();
    let mut p = Parsed {
        vlans: [0; 2],
        vlan_count: 0,
        l3_off: 0,
        l4_off: 0,
        l4_len: 0,
        ip_end: 0,
        family: Family::V4,
        src: [0; 16],
        dst: [0; 16],
        proto: 0,
        ttl: 0,
        frag: Frag::default(),
        l4: L4::Other,
    };
    let (l4_off, ip_end) = match first >> 4 {
        4 => {
            let h = buf.get(l3..l3 + 20).ok_or(ParseError::TruncatedIp)?;
            let ihl = ((h[0] & 0x0f) as usize) * 4;
            if ihl < 20 || l3 + ihl > avail {
                return Err(ParseError::BadIhl);
            }
            let tl = u16::from_be_bytes([h[2], h[3]]) as usize;
            if tl < ihl {
                return Err(ParseError::BadTotalLength);
            }
            let mut end = l3 + tl;
            if end > avail {
                if !inner {
                    return Err(ParseError::BadTotalLength);
                }
                end = avail;
            }
            let fo = u16::from_be_bytes([h[6], h[7]]);
            p.frag = Frag {
                offset: fo & 0x1fff,
                more: fo & 0x2000 != 0,
                id: u16::from_be_bytes([h[4], h[5]]) as u32,
                hdr_off: 0,
            };
            p.ttl = h[8];
            p.proto = h[9];
            p.src[..4].copy_from_slice(&h[12..16]);
            p.dst[..4].copy_from_slice(&h[16..20]);
            p.family = Family::V4;
            (l3 + ihl, end)
        }
        6 => {
            let h = buf.get(l3..l3 + 40).ok_or(ParseError::TruncatedIp)?;
            let pl = u16::from_be_bytes([h[4], h[5]]) as usize;
            let mut end = l3 + 40 + pl;
            if end > avail {
                if !inner {
                    return Err(ParseError::BadTotalLength);
                }
                end = avail;
            }
            p.family = Family::V6;
            p.ttl = h[7];
            p.src.copy_from_slice(&h[8..24]);
            p.dst.copy_from_slice(&h[24..40]);
            let mut nh = h[6];
            let mut off = l3 + 40;
            let b = &buf[..end];
            let mut walked = 0;
            loop {
                match nh {
                    0 | 43 | 60 => {
                        let len =
                            (*b.get(off + 1).ok_or(ParseError::BadExtHeader)? as usize + 1) * 8;
                        nh = b[off];
                        off += len;
                    }
                    44 => {
                        let fo = be16(b, off + 2).ok_or(ParseError::BadExtHeader)?;
                        let id = be32(b, off + 4).ok_or(ParseError::BadExtHeader)?;
                        p.frag = Frag {
                            offset: fo >> 3,
                            more: fo & 1 != 0,
                            id,
                            hdr_off: u16::try_from(off).map_err(|_| ParseError::BadTotalLength)?,
                        };
                        nh = b[off];
                        off += 8;
                    }
                    proto::AH => {
                        let len =
                            (*b.get(off + 1).ok_or(ParseError::BadExtHeader)? as usize + 2) * 4;
                        nh = b[off];
                        off += len;
                    }
                    _ => break,
                }
                walked += 1;
                if off > end || walked > MAX_EXT_HEADERS {
                    return Err(ParseError::BadExtHeader);
                }
                if p.frag.offset != 0 {
                    break; // the rest of the chain is not in this fragment
                }
            }
            p.proto = nh;
            (off, end)
        }
        _ => return Err(ParseError::BadIpVersion),
    };
    if ip_end > u16::MAX as usize {
        return Err(ParseError::BadTotalLength);
    }
    p.l3_off = l3 as u16;
    p.l4_off = l4_off as u16;
    p.ip_end = ip_end as u16;
    p.l4_len = (ip_end - l4_off) as u16;
    p.l4 = if p.frag.offset != 0 {
        L4::Fragment
    } else {
        match parse_l4(&buf[l4_off..ip_end], p.proto, inner) {
            Ok(l4) => l4,
            Err(e) => L4::Malformed(e),
        }
    };
    Ok(p)
}

/// The ports at the start of a quoted TCP/UDP header (all a quote must hold).
#[inline(always)]
fn quoted_ports(s: &[u8]) -> Result<(u16, u16), ParseError> {
    let sport = be16(s, 0).ok_or(ParseError::TruncatedL4)?;
    let dport = be16(s, 2).ok_or(ParseError::TruncatedL4)?;
    Ok((sport, dport))
}

#[inline(always)]
fn parse_l4(s: &[u8], proto_num: u8, inner: bool) -> Result<L4, ParseError> {
    match proto_num {
        proto::TCP => {
            // A quote only needs the ports: also when it is cut inside the options.
            if inner && (s.len() < 20 || ((s[12] >> 4) as usize) * 4 > s.len()) {
                let (sport, dport) = quoted_ports(s)?;
                return Ok(L4::Tcp(Tcp {
                    sport,
                    dport,
                    seq: be32(s, 4).unwrap_or(0),
                    ack: 0,
                    hdr_len: 0,
                    flags: 0,
                    window: 0,
                    options: TcpOptions::default(),
                    payload_len: 0,
                }));
            }
            if s.len() < 20 {
                return Err(ParseError::TruncatedL4);
            }
            let doff = ((s[12] >> 4) as usize) * 4;
            if doff < 20 || doff > s.len() {
                return Err(ParseError::BadTcpDataOffset);
            }
            Ok(L4::Tcp(Tcp {
                sport: u16::from_be_bytes([s[0], s[1]]),
                dport: u16::from_be_bytes([s[2], s[3]]),
                seq: u32::from_be_bytes([s[4], s[5], s[6], s[7]]),
                ack: u32::from_be_bytes([s[8], s[9], s[10], s[11]]),
                hdr_len: doff as u8,
                flags: s[13],
                window: u16::from_be_bytes([s[14], s[15]]),
                // Most segments carry no options (and no call: the callee's result
                // would come back through memory and stall the load that follows).
                options: if doff == 20 {
                    TcpOptions::default()
                } else {
                    tcp_options(&s[20..doff], u32::from_be_bytes([s[8], s[9], s[10], s[11]]))
                },
                payload_len: (s.len() - doff) as u16,
            }))
        }
        proto::UDP => {
            if inner {
                let (sport, dport) = quoted_ports(s)?;
                return Ok(L4::Udp(Udp {
                    sport,
                    dport,
                    len: be16(s, 4).unwrap_or(0),
                    checksum: be16(s, 6).unwrap_or(0),
                }));
            }
            if s.len() < 8 {
                return Err(ParseError::TruncatedL4);
            }
            let len = u16::from_be_bytes([s[4], s[5]]);
            if (len as usize) < 8 || len as usize > s.len() {
                return Err(ParseError::BadUdpLength);
            }
            Ok(L4::Udp(Udp {
                sport: u16::from_be_bytes([s[0], s[1]]),
                dport: u16::from_be_bytes([s[2], s[3]]),
                len,
                checksum: u16::from_be_bytes([s[6], s[7]]),
            }))
        }
        proto::UDPLITE => {
            // The UDP header layout, with the checksum coverage where UDP has its
            // length; the coverage is conntrack's to judge (`udplite_error`).
            if inner {
                let (sport, dport) = quoted_ports(s)?;
                return Ok(L4::Udp(Udp {
                    sport,
                    dport,
                    len: be16(s, 4).unwrap_or(0),
                    checksum: be16(s, 6).unwrap_or(0),
                }));
            }
            if s.len() < 8 {
                return Err(ParseError::TruncatedL4);
            }
            Ok(L4::Udp(Udp {
                sport: u16::from_be_bytes([s[0], s[1]]),
                dport: u16::from_be_bytes([s[2], s[3]]),
                len: u16::from_be_bytes([s[4], s[5]]),
                checksum: u16::from_be_bytes([s[6], s[7]]),
            }))
        }
        proto::SCTP => {
            // The common header; a quote needs only the ports. The chunks are the
            // tracker's to walk.
            if !inner && s.len() < 12 {
                return Err(ParseError::TruncatedL4);
            }
            let (sport, dport) = quoted_ports(s)?;
            Ok(L4::Sctp(Sctp {
                sport,
                dport,
                vtag: be32(s, 4).unwrap_or(0),
            }))
        }
        proto::ICMP | proto::ICMPV6 => {
            if s.len() < 8 {
                return Err(ParseError::TruncatedL4);
            }
            Ok(L4::Icmp(Icmp {
                ty: s[0],
                code: s[1],
                id: u16::from_be_bytes([s[4], s[5]]),
                seq: u16::from_be_bytes([s[6], s[7]]),
                v6: proto_num == proto::ICMPV6,
            }))
        }
        _ => Ok(L4::Other),
    }
}

/// Parses TCP options; a malformed option ends the walk (as Linux's parser does).
fn tcp_options(mut o: &[u8], ack: u32) -> TcpOptions {
    let mut r = TcpOptions::default();
    while let Some(&kind) = o.first() {
        match kind {
            0 => break,
            1 => {
                o = &o[1..];
                continue;
            }
            _ => {}
        }
        let Some(&len) = o.get(1) else { break };
        let len = len as usize;
        if len < 2 || len > o.len() {
            break;
        }
        let body = &o[2..len];
        match (kind, len) {
            (2, 4) => r.mss = Some(u16::from_be_bytes([body[0], body[1]])),
            (3, 3) => r.wscale = Some(body[0]),
            (4, 2) => r.sack_perm = true,
            (5, _) if (len - 2) & 7 == 0 => {
                for blk in body.chunks_exact(8).take(4) {
                    let right = u32::from_be_bytes([blk[4], blk[5], blk[6], blk[7]]);
                    let cur = r.sack_right.unwrap_or(ack);
                    // after(right, cur) in serial-number arithmetic.
                    r.sack_right = Some(if (right.wrapping_sub(cur) as i32) > 0 {
                        right
                    } else {
                        cur
                    });
                }
            }
            (8, 10) => {
                r.timestamps = Some((
                    u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                    u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                ))
            }
            _ => {}
        }
        o = &o[len..];
    }
    r
}
