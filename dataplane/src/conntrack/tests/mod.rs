//! Conntrack tests: every case of `docs/CONNTRACK.md` §7 (TCP, UDP, ICMP/ICMPv6, generic,
//! NOTRACK, table limits, FTP) plus layout, formatting and property tests. This file is
//! the harness ([`H`]: one shard on a simulated clock); the cases are in `tcp`,
//! `udp_icmp`, `ftp` and `table`.
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

mod ftp;
mod nat;
mod sctp;
mod table;
mod tcp;
mod udp_icmp;
mod udplite;

const C: &str = "10.0.0.1:40000";
const S: &str = "10.0.0.2:80";
const C6: &str = "[2001:db8::1]:40000";
const S6: &str = "[2001:db8::2]:80";
// UDP client and server; ICMP hosts (client, server, router, another host), IPv4 and IPv6.
const UC: &str = "10.0.0.1:5353";
const US: &str = "10.0.0.2:53";
const CI: &str = "10.0.0.1";
const SI: &str = "10.0.0.2";
const RI: &str = "10.0.0.254";
const XI: &str = "10.0.0.99";
const C6I: &str = "2001:db8::1";
const S6I: &str = "2001:db8::2";
const R6I: &str = "2001:db8::fe";

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
        H::with(ConnTable::new(1024, c))
    }
    fn with(t: ConnTable) -> H {
        H { t, now: 1000 * NS }
    }
    fn adv(&mut self, secs: f64) {
        self.now += (secs * 1e9).round() as u64;
    }
    /// Runs one packet through track + confirm; returns both results.
    fn track_confirm(&mut self, f: &[u8], opts: TrackOpts, accept: bool) -> (Track, ConfirmResult) {
        let p = parsed(f);
        let t = self.t.track(f, &p, self.now, opts);
        let r = self.t.confirm(&t, accept, f, &p, self.now);
        (t, r)
    }
    fn run(&mut self, f: &[u8], opts: TrackOpts, accept: bool) -> Track {
        self.track_confirm(f, opts, accept).0
    }
    fn go(&mut self, f: &[u8]) -> Track {
        self.run(f, TrackOpts::default(), true)
    }
    /// Runs `f` as [`H::go`] does and checks the verdict with [`expect`].
    #[track_caller]
    fn check(&mut self, f: &[u8], st: CtState, tcp: Option<TcpState>) -> Track {
        let t = self.go(f);
        expect(&t, st, tcp);
        t
    }
    /// Runs `f` as [`H::go`] does and checks it is INVALID for `r` ([`inv`]).
    #[track_caller]
    fn invalid(&mut self, f: &[u8], r: InvalidReason) -> Track {
        let t = self.go(f);
        inv(&t, r);
        t
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

impl H {
    /// A harness on a table of `n` entries (default config), at the clock's first second.
    fn sized(n: usize) -> H {
        H {
            t: ConnTable::new(n, Config::default()),
            now: NS,
        }
    }
}

/// An ICMP(v6) query of type `req` from `c` to `s` is NEW; its reply of type `rep` (same
/// id and sequence, back from `s`) is ESTABLISHED.
#[track_caller]
fn query_reply(h: &mut H, (c, s): (&str, &str), (req, rep): (u8, u8), id: u16, seq: u16) {
    h.check(&echo(c, s, req, id, seq), New, None);
    h.check(&echo(s, c, rep, id, seq), Est, None);
}
