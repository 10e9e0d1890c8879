//! The classic-BPF steering program for `PACKET_FANOUT_CBPF`: which socket (worker) of
//! an AF_PACKET fanout group receives a frame.
//!
//! The kernel's `PACKET_FANOUT_HASH` is symmetric, so both directions of a connection
//! reach one worker, but it hashes an ICMP error by its outer header: an error about a
//! flow, sent by a router, lands on some other worker, whose shard does not hold the
//! flow, and would be INVALID instead of RELATED (breaking path-MTU discovery, for one).
//! This program hashes like the kernel's in spirit (a symmetric mix of addresses and
//! ports, so both directions meet) but, for an ICMP or ICMPv6 *error*, it hashes the
//! packet quoted inside it: the error reaches the worker that owns the flow, in the
//! kernel, with no hand-off between workers.
//!
//! The hash: `x = src ^ dst ^ (sport ^ dport)` over 32-bit words (IPv6 addresses fold
//! their four words), then a 32-bit avalanche; the kernel takes it modulo the number of
//! sockets. Fragments and protocols without ports use the addresses only; so do
//! ICMP queries (request and reply have the same addresses). A load past the end of a
//! short frame ends the program with 0 (socket 0): never a fault.
//!
//! At fanout time the frame's data starts at the network header (the Ethernet header
//! has been pulled), so offsets below are relative to the IP header; the ethertype comes
//! from the ancillary `skb->protocol` load.
//!
//! [`steer_hash`] is the same function in Rust, for tests (and any user-space steering
//! that must agree with the kernel's choice).

use crate::packet::{self, Frame};

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant.
    pub k: u32,
}

// Opcode parts (linux/filter.h, linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const MSH: u16 = 0xa0;
const ADD: u16 = 0x00;
const MUL: u16 = 0x20;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const XOR: u16 = 0xa0;
const K: u16 = 0x00;
const X: u16 = 0x08;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;
const RET_A: u16 = 0x10;
const TAX: u16 = 0x00;
/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: the ancillary load of `skb->protocol` (host order).
const AD_PROTOCOL: u32 = 0xffff_f000;
/// Multiplier of the avalanche (a well-mixing odd 32-bit constant).
const MIX: u32 = 0x045d_9f3b;

/// Assembly with labels, resolved into relative jumps.
#[derive(Clone, Copy)]
enum Ins {
    S(u16, u32),
    J(u16, u32, &'static str, &'static str),
    Ja(&'static str),
    L(&'static str),
}

use Ins::{Ja, J, L, S};

/// `A = lo16 ^ hi16` of the two 16-bit ports at `off` (loaded with `mode`), kept in M[3].
fn xor_ports(p: &mut Vec<Ins>, mode: u16, off: u32) {
    p.extend([
        S(LD | H | mode, off),
        S(ST, 0),
        S(LD | H | mode, off + 2),
        S(LDX | MEM, 0),
        S(ALU | XOR | X, 0),
        S(ST, 3),
    ]);
}

/// `A = word[base] ^ ... ^ word[base + 4 * (words - 1)]` (loaded with `mode`), via M[0].
fn xor_words(p: &mut Vec<Ins>, mode: u16, base: u32, words: u32) {
    p.push(S(LD | W | mode, base));
    for i in 1..words {
        p.push(S(ST, 0));
        p.push(S(LD | W | mode, base + 4 * i));
        p.push(S(LDX | MEM, 0));
        p.push(S(ALU | XOR | X, 0));
    }
}

/// The protocol in A: TCP and UDP go to `ports`, the rest to `other`.
fn tcp_or_udp(p: &mut Vec<Ins>, udp: &'static str, ports: &'static str, other: &'static str) {
    p.extend([
        J(JMP | JEQ | K, 6, ports, udp),
        L(udp),
        J(JMP | JEQ | K, 17, ports, other),
    ]);
}

/// One family's dispatch on its (outer) protocol byte.
struct Transport {
    /// Label of the dispatch.
    at: &'static str,
    /// Offset of the protocol (IPv4) or next-header (IPv6) byte.
    proto_at: u32,
    /// The family's ICMP protocol number.
    icmp_proto: u32,
    /// Labels: ICMP, the TCP test, the UDP test, the ported case, the address-only case.
    labels: [&'static str; 5],
}

/// The dispatch: ICMP, then TCP or UDP (ports), else addresses only.
fn transport(p: &mut Vec<Ins>, t: &Transport) {
    let [icmp, tcp, udp, ports, other] = t.labels;
    p.extend([
        L(t.at),
        S(LD | B | ABS, t.proto_at),
        J(JMP | JEQ | K, t.icmp_proto, icmp, tcp),
        L(tcp),
    ]);
    tcp_or_udp(p, udp, ports, other);
}

/// Where one flow's words lie, for one family (outer or ICMP-quoted header).
struct Flow {
    /// Label of the TCP/UDP case; `prelude` then the ports at `ports` follow it.
    ports: &'static str,
    /// Label of the case without ports (M[3] = 0).
    no_ports: &'static str,
    /// Label where both cases meet to fold in the addresses.
    addrs: &'static str,
    prelude: &'static [Ins],
    ports_at: (u16, u32),
    /// Run before the address loads (e.g. to reload X for indexed loads).
    addrs_prelude: &'static [Ins],
    /// Load mode, first byte and 32-bit word count of the source and destination.
    addrs_at: (u16, u32, u32),
}

/// The per-flow emitter: `A = ports ^ src ^ dst` (ports 0 without them), then the mix.
fn flow(p: &mut Vec<Ins>, f: &Flow) {
    p.push(L(f.ports));
    p.extend_from_slice(f.prelude);
    xor_ports(p, f.ports_at.0, f.ports_at.1);
    p.extend([
        Ja(f.addrs),
        L(f.no_ports),
        S(LD | IMM, 0),
        S(ST, 3),
        L(f.addrs),
    ]);
    p.extend_from_slice(f.addrs_prelude);
    let (mode, base, words) = f.addrs_at;
    xor_words(p, mode, base, words);
    p.extend([S(LDX | MEM, 3), S(ALU | XOR | X, 0), Ja("mix")]);
}

/// X = outer ihl + quoted ihl * 4 (the quoted transport header is at X + 8).
const QUOTED_IHL4: [Ins; 5] = [
    S(LD | B | IND, 8), // quoted version/ihl
    S(ALU | AND | K, 0x0f),
    S(ALU | LSH | K, 2),
    S(ALU | ADD | X, 0),
    S(MISC | TAX, 0),
];

fn program() -> Vec<Ins> {
    let mut p = vec![
        S(LD | W | ABS, AD_PROTOCOL),
        J(JMP | JEQ | K, 0x0800, "v4", "not4"),
        // ---------------- IPv4
        L("v4"),
        S(LD | H | ABS, 6),
        J(JMP | JSET | K, 0x3fff, "addr4", "v4whole"), // a fragment: addresses only
    ];
    let v4 = Transport {
        at: "v4whole",
        proto_at: 9,
        icmp_proto: 1,
        labels: ["icmp4", "v4tcp", "v4udp", "ports4", "addr4"],
    };
    transport(&mut p, &v4);
    // ICMP: errors hash the quoted packet.
    p.extend([
        L("icmp4"),
        S(LDX | B | MSH, 0),
        S(LD | B | IND, 0), // type
    ]);
    for (ty, next) in [(3, "t4"), (11, "t5"), (12, "t6"), (4, "t7")] {
        p.extend([J(JMP | JEQ | K, ty, "err4", next), L(next)]);
    }
    p.extend([
        J(JMP | JEQ | K, 5, "err4", "addr4"),
        L("err4"),
        // M[4] = outer ihl; the quoted header starts at ihl + 8.
        S(MISC | 0x80, 0), // TXA
        S(ST, 4),
        S(LD | B | IND, 17), // quoted protocol (ihl + 8 + 9)
    ]);
    tcp_or_udp(&mut p, "iudp4", "iports4", "inoports4");
    let quoted4 = Flow {
        ports: "iports4",
        no_ports: "inoports4",
        addrs: "iaddr4",
        prelude: &QUOTED_IHL4,
        ports_at: (IND, 8),
        addrs_prelude: &[S(LDX | MEM, 4)],
        addrs_at: (IND, 20, 2), // quoted source at ihl + 8 + 12
    };
    flow(&mut p, &quoted4);
    let outer4 = Flow {
        ports: "ports4",
        no_ports: "addr4",
        addrs: "words4",
        prelude: &[S(LDX | B | MSH, 0)], // X = ihl * 4
        ports_at: (IND, 0),
        addrs_prelude: &[],
        addrs_at: (ABS, 12, 2),
    };
    flow(&mut p, &outer4);
    // ---------------- IPv6 (fixed header; extension headers: addresses only)
    p.extend([L("not4"), J(JMP | JEQ | K, 0x86dd, "v6", "other")]);
    let v6 = Transport {
        at: "v6",
        proto_at: 6,
        icmp_proto: 58,
        labels: ["icmp6", "v6tcp", "v6udp", "ports6", "addr6"],
    };
    transport(&mut p, &v6);
    p.extend([
        L("icmp6"),
        S(LD | B | ABS, 40),
        J(JMP | JGE | K, 128, "addr6", "err6"),
        L("err6"),
        S(LD | B | ABS, 54), // quoted next header (48 + 6)
    ]);
    tcp_or_udp(&mut p, "iudp6", "iports6", "inoports6");
    let quoted6 = Flow {
        ports: "iports6",
        no_ports: "inoports6",
        addrs: "iwords6",
        prelude: &[],
        ports_at: (ABS, 88),
        addrs_prelude: &[],
        addrs_at: (ABS, 56, 8),
    };
    flow(&mut p, &quoted6);
    let outer6 = Flow {
        ports: "ports6",
        no_ports: "addr6",
        addrs: "words6",
        prelude: &[],
        ports_at: (ABS, 40),
        addrs_prelude: &[],
        addrs_at: (ABS, 8, 8),
    };
    flow(&mut p, &outer6);
    p.extend([
        L("other"),
        S(RET | K, 0),
        // ---------------- avalanche: A ^= A >> 16; A *= MIX; (twice); A ^= A >> 16
        L("mix"),
    ]);
    for round in 0..3 {
        p.extend([
            S(ST, 0),
            S(ALU | RSH | K, 16),
            S(LDX | MEM, 0),
            S(ALU | XOR | X, 0),
        ]);
        if round < 2 {
            p.push(S(ALU | MUL | K, MIX));
        }
    }
    p.push(S(RET | RET_A, 0));
    p
}

/// The assembled steering program.
pub fn steering_program() -> Vec<SockFilter> {
    let src = program();
    let mut pos = std::collections::HashMap::new();
    let mut n = 0usize;
    for i in &src {
        match i {
            L(name) => {
                pos.insert(*name, n);
            }
            _ => n += 1,
        }
    }
    let mut out = Vec::with_capacity(n);
    for i in &src {
        let here = out.len();
        let rel = |label: &str| -> usize {
            let to = pos[label];
            assert!(to > here, "steering program: backward jump to {label}");
            to - here - 1
        };
        match i {
            L(_) => {}
            S(code, k) => out.push(SockFilter {
                code: *code,
                jt: 0,
                jf: 0,
                k: *k,
            }),
            J(code, k, t, f) => {
                let (jt, jf) = (rel(t), rel(f));
                assert!(jt < 256 && jf < 256, "steering program: jump too far");
                out.push(SockFilter {
                    code: *code,
                    jt: jt as u8,
                    jf: jf as u8,
                    k: *k,
                });
            }
            Ja(t) => out.push(SockFilter {
                code: JMP | JA,
                jt: 0,
                jf: 0,
                k: rel(t) as u32,
            }),
        }
    }
    out
}

fn word(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn half(b: &[u8], off: usize) -> Option<u32> {
    Some(u16::from_be_bytes(b.get(off..off + 2)?.try_into().ok()?) as u32)
}

fn avalanche(mut a: u32) -> u32 {
    for _ in 0..2 {
        a ^= a >> 16;
        a = a.wrapping_mul(MIX);
    }
    a ^ (a >> 16)
}

/// The program's result for an Ethernet frame (without VLAN tags), computed in Rust:
/// the kernel delivers the frame to socket `steer_hash(frame) % sockets`.
pub fn steer_hash(frame: &[u8]) -> u32 {
    match packet::parse(frame) {
        Ok(Frame::Ip(p)) => steer_hash_parsed(frame, &p),
        _ => 0,
    }
}

/// [`steer_hash`] of the (unfragmented, non-error) packet that would carry this tuple:
/// what the program computes from the addresses and, for TCP/UDP, the ports (NAT asks
/// it of a reply tuple that no packet has carried yet).
pub fn steer_hash_tuple(
    family: packet::Family,
    proto: u8,
    src: &[u8; 16],
    dst: &[u8; 16],
    sport: u16,
    dport: u16,
) -> u32 {
    let w = |a: &[u8; 16], i: usize| u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    let ports = if proto == 6 || proto == 17 {
        u32::from(sport) ^ u32::from(dport)
    } else {
        0
    };
    let h = match family {
        packet::Family::V4 => w(src, 0) ^ w(dst, 0) ^ ports,
        packet::Family::V6 => (0..4).fold(0u32, |a, i| a ^ w(src, 4 * i) ^ w(dst, 4 * i)) ^ ports,
    };
    avalanche(h)
}

/// [`steer_hash`] of a frame already parsed into `p` (the worker's ownership check
/// reuses its parse).
pub fn steer_hash_parsed(frame: &[u8], p: &packet::Parsed) -> u32 {
    let Some(ip) = frame.get(p.l3_off as usize..) else {
        return 0;
    };
    let x = |v: Option<u32>| v.unwrap_or(0);
    let h = match p.family {
        packet::Family::V4 => {
            let frag = x(half(ip, 6)) & 0x3fff != 0;
            let ihl = ((ip[0] & 0x0f) as usize) * 4;
            let ports = |b: &[u8], at: usize| x(half(b, at)) ^ x(half(b, at + 2));
            match (frag, ip[9]) {
                (false, 6 | 17) => x(word(ip, 12)) ^ x(word(ip, 16)) ^ ports(ip, ihl),
                (false, 1) if matches!(ip.get(ihl), Some(3 | 4 | 5 | 11 | 12)) => {
                    let q = ihl + 8;
                    let pp = match ip.get(q + 9) {
                        Some(6 | 17) => {
                            let qihl = (ip.get(q).copied().unwrap_or(0) & 0x0f) as usize * 4;
                            ports(ip, q + qihl)
                        }
                        _ => 0,
                    };
                    x(word(ip, q + 12)) ^ x(word(ip, q + 16)) ^ pp
                }
                _ => x(word(ip, 12)) ^ x(word(ip, 16)),
            }
        }
        packet::Family::V6 => {
            let words = |at: usize| (0..8).fold(0u32, |a, i| a ^ x(word(ip, at + 4 * i)));
            match ip[6] {
                6 | 17 => words(8) ^ x(half(ip, 40)) ^ x(half(ip, 42)),
                58 if ip.get(40).is_some_and(|&t| t < 128) => {
                    let pp = match ip.get(54) {
                        Some(6 | 17) => x(half(ip, 88)) ^ x(half(ip, 90)),
                        _ => 0,
                    };
                    words(56) ^ pp
                }
                _ => words(8),
            }
        }
    };
    avalanche(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::build::PacketSpec;

    /// FNV-1a over every field of every instruction: pins the emitted program, both
    /// families, so that a rewrite of the assembler source keeps the exact output.
    fn program_digest(p: &[SockFilter]) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for i in p {
            let bytes = [
                &i.code.to_le_bytes()[..],
                &[i.jt, i.jf][..],
                &i.k.to_le_bytes()[..],
            ]
            .concat();
            for b in bytes {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }

    #[test]
    fn program_is_pinned() {
        let p = steering_program();
        assert_eq!(
            (p.len(), program_digest(&p)),
            (169, 2_433_470_886_424_748_502)
        );
    }

    #[test]
    fn program_assembles_and_is_small() {
        let p = steering_program();
        assert!(p.len() < 200, "{}", p.len());
        assert_eq!(p.last().unwrap().code, RET | RET_A);
    }

    #[test]
    fn hash_is_symmetric_and_follows_the_quoted_flow() {
        let c = "10.0.0.1:40000".parse().unwrap();
        let s = "10.0.0.2:53".parse().unwrap();
        let q = PacketSpec::udp(c, s).payload(b"q").to_vec();
        let r = PacketSpec::udp(s, c).payload(b"r").to_vec();
        assert_eq!(steer_hash(&q), steer_hash(&r));
        // A port-unreachable from a router about the query.
        let err = PacketSpec::icmp(
            "10.0.0.254".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            3,
            3,
            [0; 4],
        )
        .payload(&q[14..14 + 28])
        .to_vec();
        assert_eq!(steer_hash(&err), steer_hash(&q));
        let c6 = "[fd00::1]:40000".parse().unwrap();
        let s6 = "[fd00::2]:80".parse().unwrap();
        let syn = PacketSpec::tcp(c6, s6, 2, 1, 0).to_vec();
        let synack = PacketSpec::tcp(s6, c6, 0x12, 9, 2).to_vec();
        assert_eq!(steer_hash(&syn), steer_hash(&synack));
        let ptb = PacketSpec::icmp(
            "fd00::fe".parse().unwrap(),
            "fd00::1".parse().unwrap(),
            2,
            0,
            [0, 0, 5, 0],
        )
        .payload(&syn[14..14 + 60])
        .to_vec();
        assert_eq!(steer_hash(&ptb), steer_hash(&syn));
        // Different flows spread.
        let spread: std::collections::HashSet<u32> = (0..64u16)
            .map(|i| {
                let c = std::net::SocketAddr::new("10.0.0.1".parse().unwrap(), 1000 + i);
                steer_hash(&PacketSpec::udp(c, s).to_vec()) % 4
            })
            .collect();
        assert_eq!(spread.len(), 4);
    }
}
