//! Writing frames: Ethernet (optional VLAN tag) + IPv4/IPv6 + TCP/UDP/ICMP/raw, with
//! correct checksums. Used by tests, the built-in generator and REJECT replies.
//!
//! [`PacketSpec::write`] writes into a caller's buffer and does not allocate;
//! [`PacketSpec::to_vec`] is the allocating convenience for tests and tools.

use super::checksum;
use super::{proto, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6};
use std::net::{IpAddr, SocketAddr};

/// The L4 part of a packet to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Spec<'a> {
    /// TCP with raw option bytes (padded to a multiple of 4 by the writer).
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number.
        ack: u32,
        /// Flags byte.
        flags: u8,
        /// Raw window.
        window: u16,
        /// Option bytes (at most 40).
        options: &'a [u8],
    },
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP (IPv4) or ICMPv6 (IPv6), chosen by the address family.
    Icmp {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
        /// Bytes 4..8 of the header (id+seq, or unused/MTU/pointer).
        rest: [u8; 4],
    },
    /// Any protocol number; the payload follows the IP header as is.
    Raw {
        /// The protocol number.
        proto: u8,
    },
}

/// A packet to build.
#[derive(Debug, Clone, Copy)]
pub struct PacketSpec<'a> {
    /// Source address (family decides IPv4 or IPv6; both addresses must agree).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 identification.
    pub ip_id: u16,
    /// Optional 802.1Q tag.
    pub vlan: Option<u16>,
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// The L4 header.
    pub l4: L4Spec<'a>,
    /// L4 payload (for ICMP errors: the quoted packet).
    pub payload: &'a [u8],
}

/// Encodes TCP options: MSS, window scale, SACK-permitted, timestamps (any may be absent).
pub fn tcp_options(
    mss: Option<u16>,
    wscale: Option<u8>,
    sack_perm: bool,
    ts: Option<(u32, u32)>,
) -> ([u8; 40], usize) {
    let mut o = [0u8; 40];
    let mut n = 0;
    if let Some(m) = mss {
        o[n..n + 4].copy_from_slice(&[2, 4, (m >> 8) as u8, m as u8]);
        n += 4;
    }
    if sack_perm {
        o[n..n + 2].copy_from_slice(&[4, 2]);
        n += 2;
    }
    if let Some((v, e)) = ts {
        o[n] = 8;
        o[n + 1] = 10;
        o[n + 2..n + 6].copy_from_slice(&v.to_be_bytes());
        o[n + 6..n + 10].copy_from_slice(&e.to_be_bytes());
        n += 10;
    }
    if let Some(w) = wscale {
        o[n..n + 3].copy_from_slice(&[3, 3, w]);
        n += 3;
    }
    while !n.is_multiple_of(4) {
        o[n] = 1; // NOP padding
        n += 1;
    }
    (o, n)
}

impl<'a> PacketSpec<'a> {
    /// A spec with default MACs, TTL 64, no VLAN, no payload.
    pub fn new(src: IpAddr, dst: IpAddr, l4: L4Spec<'a>) -> Self {
        PacketSpec {
            src,
            dst,
            ttl: 64,
            ip_id: 0,
            vlan: None,
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            l4,
            payload: &[],
        }
    }

    /// A TCP segment between two socket addresses.
    pub fn tcp(src: SocketAddr, dst: SocketAddr, flags: u8, seq: u32, ack: u32) -> Self {
        Self::new(
            src.ip(),
            dst.ip(),
            L4Spec::Tcp {
                sport: src.port(),
                dport: dst.port(),
                seq,
                ack,
                flags,
                window: 64240,
                options: &[],
            },
        )
    }

    /// A UDP datagram between two socket addresses.
    pub fn udp(src: SocketAddr, dst: SocketAddr) -> Self {
        Self::new(
            src.ip(),
            dst.ip(),
            L4Spec::Udp {
                sport: src.port(),
                dport: dst.port(),
            },
        )
    }

    /// An ICMP/ICMPv6 message; `rest` is header bytes 4..8.
    pub fn icmp(src: IpAddr, dst: IpAddr, ty: u8, code: u8, rest: [u8; 4]) -> Self {
        Self::new(src, dst, L4Spec::Icmp { ty, code, rest })
    }

    /// An echo-style ICMP message with an id and sequence.
    pub fn icmp_echo(src: IpAddr, dst: IpAddr, ty: u8, id: u16, seq: u16) -> Self {
        let mut rest = [0u8; 4];
        rest[..2].copy_from_slice(&id.to_be_bytes());
        rest[2..].copy_from_slice(&seq.to_be_bytes());
        Self::icmp(src, dst, ty, 0, rest)
    }

    /// Sets the payload.
    pub fn payload(mut self, p: &'a [u8]) -> Self {
        self.payload = p;
        self
    }

    /// Sets the TCP window (no effect on other protocols).
    pub fn window(mut self, w: u16) -> Self {
        if let L4Spec::Tcp { ref mut window, .. } = self.l4 {
            *window = w;
        }
        self
    }

    /// Sets raw TCP option bytes (no effect on other protocols).
    pub fn tcp_options(mut self, o: &'a [u8]) -> Self {
        if let L4Spec::Tcp {
            ref mut options, ..
        } = self.l4
        {
            *options = o;
        }
        self
    }

    /// Sets an 802.1Q VLAN tag.
    pub fn vlan(mut self, id: u16) -> Self {
        self.vlan = Some(id);
        self
    }

    /// Length of the L4 header this spec writes.
    fn l4_hdr_len(&self) -> usize {
        match self.l4 {
            L4Spec::Tcp { options, .. } => 20 + options.len().div_ceil(4) * 4,
            L4Spec::Udp { .. } | L4Spec::Icmp { .. } => 8,
            L4Spec::Raw { .. } => 0,
        }
    }

    /// Total frame length this spec writes.
    pub fn frame_len(&self) -> usize {
        let l2 = 14 + if self.vlan.is_some() { 4 } else { 0 };
        let l3 = if self.src.is_ipv4() { 20 } else { 40 };
        l2 + l3 + self.l4_hdr_len() + self.payload.len()
    }

    /// Writes the frame into `buf`; returns its length, or None if `buf` is too small,
    /// the addresses are of different families, or the packet exceeds 65535 bytes.
    pub fn write(&self, buf: &mut [u8]) -> Option<usize> {
        let total = self.frame_len();
        if buf.len() < total || self.src.is_ipv4() != self.dst.is_ipv4() {
            return None;
        }
        let v4 = self.src.is_ipv4();
        let buf = &mut buf[..total];
        buf[0..6].copy_from_slice(&self.dst_mac);
        buf[6..12].copy_from_slice(&self.src_mac);
        let mut off = 12;
        if let Some(v) = self.vlan {
            buf[off..off + 2].copy_from_slice(&ETH_P_8021Q.to_be_bytes());
            buf[off + 2..off + 4].copy_from_slice(&(v & 0x0fff).to_be_bytes());
            off += 4;
        }
        let et = if v4 { ETH_P_IPV4 } else { ETH_P_IPV6 };
        buf[off..off + 2].copy_from_slice(&et.to_be_bytes());
        off += 2;
        let l3 = off;
        let l4_len = self.l4_hdr_len() + self.payload.len();
        let proto_num = match self.l4 {
            L4Spec::Tcp { .. } => proto::TCP,
            L4Spec::Udp { .. } => proto::UDP,
            L4Spec::Icmp { .. } => {
                if v4 {
                    proto::ICMP
                } else {
                    proto::ICMPV6
                }
            }
            L4Spec::Raw { proto } => proto,
        };
        let l4 = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let tl = u16::try_from(20 + l4_len).ok()?;
                let h = &mut buf[l3..l3 + 20];
                h[0] = 0x45;
                h[1] = 0;
                h[2..4].copy_from_slice(&tl.to_be_bytes());
                h[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
                h[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
                h[8] = self.ttl;
                h[9] = proto_num;
                h[10..12].copy_from_slice(&[0, 0]);
                h[12..16].copy_from_slice(&s.octets());
                h[16..20].copy_from_slice(&d.octets());
                let c = checksum::fold(checksum::sum(h, 0));
                h[10..12].copy_from_slice(&c.to_be_bytes());
                l3 + 20
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let pl = u16::try_from(l4_len).ok()?;
                let h = &mut buf[l3..l3 + 40];
                h[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
                h[4..6].copy_from_slice(&pl.to_be_bytes());
                h[6] = proto_num;
                h[7] = self.ttl;
                h[8..24].copy_from_slice(&s.octets());
                h[24..40].copy_from_slice(&d.octets());
                l3 + 40
            }
            _ => return None,
        };
        let hl = self.l4_hdr_len();
        {
            let h = &mut buf[l4..l4 + hl];
            match self.l4 {
                L4Spec::Tcp {
                    sport,
                    dport,
                    seq,
                    ack,
                    flags,
                    window,
                    options,
                } => {
                    h[0..2].copy_from_slice(&sport.to_be_bytes());
                    h[2..4].copy_from_slice(&dport.to_be_bytes());
                    h[4..8].copy_from_slice(&seq.to_be_bytes());
                    h[8..12].copy_from_slice(&ack.to_be_bytes());
                    h[12] = ((hl / 4) as u8) << 4;
                    h[13] = flags;
                    h[14..16].copy_from_slice(&window.to_be_bytes());
                    h[16..20].copy_from_slice(&[0, 0, 0, 0]);
                    h[20..20 + options.len()].copy_from_slice(options);
                    for b in &mut h[20 + options.len()..] {
                        *b = 0; // end-of-options padding
                    }
                }
                L4Spec::Udp { sport, dport } => {
                    h[0..2].copy_from_slice(&sport.to_be_bytes());
                    h[2..4].copy_from_slice(&dport.to_be_bytes());
                    h[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                    h[6..8].copy_from_slice(&[0, 0]);
                }
                L4Spec::Icmp { ty, code, rest } => {
                    h[0] = ty;
                    h[1] = code;
                    h[2..4].copy_from_slice(&[0, 0]);
                    h[4..8].copy_from_slice(&rest);
                }
                L4Spec::Raw { .. } => {}
            }
        }
        buf[l4 + hl..l4 + hl + self.payload.len()].copy_from_slice(self.payload);
        // L4 checksum.
        let ck_off = match self.l4 {
            L4Spec::Tcp { .. } => Some(16),
            L4Spec::Udp { .. } => Some(6),
            L4Spec::Icmp { .. } => Some(2),
            L4Spec::Raw { .. } => None,
        };
        if let Some(co) = ck_off {
            let seg = &buf[l4..l4 + l4_len];
            let pseudo = if v4 && proto_num == proto::ICMP {
                0
            } else {
                checksum::pseudo_header_sum(&buf[l3..l4], v4, proto_num, l4_len as u32)
            };
            let mut c = checksum::fold(checksum::sum(seg, pseudo));
            if c == 0 && proto_num == proto::UDP {
                c = 0xffff;
            }
            buf[l4 + co..l4 + co + 2].copy_from_slice(&c.to_be_bytes());
        }
        Some(total)
    }

    /// Builds the frame into a new vector (tests and tools).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.frame_len()];
        let n = self.write(&mut v).expect("valid packet spec");
        v.truncate(n);
        v
    }
}
