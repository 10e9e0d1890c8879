#![no_main]
//! Fuzzes the FTP helper through NAT (its parser, the payload rewrite and the sequence
//! adjustment): a MASQUERADEd control connection is opened with a fixed handshake and
//! banner, then the input drives segments in either direction — each chunk is a
//! direction/flags byte, a sequence jitter (retransmissions, out of window), a length
//! and the payload (FTP text). Every forwarded frame is rewritten as `run` would; no
//! input may panic, and a rewritten frame must parse with right checksums.
use dataplane::conntrack::{Config, ConnTable};
use dataplane::packet::build::PacketSpec;
use dataplane::packet::checksum::{ipv4_header_ok, l4_ok};
use dataplane::packet::{self, Frame};
use dataplane::ruleset::parse_ruleset;
use dataplane::worker::{
    apply_nat, Action, Burst, NatAddrs, NonIpPolicy, PairMode, PairView, Pipeline, Side,
};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;

const RULES: &str = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp\nCOMMIT\n\
*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
-A POSTROUTING -o outside -j MASQUERADE\nCOMMIT\n\
*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

fuzz_target!(|data: &[u8]| {
    let rs = parse_ruleset(RULES, "rules.v4", None).expect("the fuzz ruleset parses");
    let mut pl = Pipeline::new(
        ConnTable::new(64, Config::default()),
        &rs,
        NonIpPolicy::PassArp,
    );
    pl.set_nat_addrs(NatAddrs {
        masquerade_v4: Some(packet::from_ip("192.0.2.1".parse().unwrap()).1),
        ..Default::default()
    });
    let c: SocketAddr = "10.0.0.2:40000".parse().unwrap();
    let cp: SocketAddr = "192.0.2.1:40000".parse().unwrap();
    let s: SocketAddr = "198.51.100.9:21".parse().unwrap();
    let mut now = 1_000_000_000u64;
    let mut reply = vec![0u8; 2048];
    let mut send = |pl: &mut Pipeline, side: Side, f: &[u8], now: u64| {
        let view = PairView {
            mode: PairMode::Forward,
            network: "outside",
            host: "inside",
        };
        let mut log = |_: dataplane::ruleset::LogEvent<'_>| {};
        let o = pl.process(&mut Burst::new(&rs, view, side, now, &mut log), f, &mut reply);
        if o.action == Action::Forward {
            if let Some(n) = o.nat.and_then(|r| r.resolve(pl.table())) {
                let mut buf = f.to_vec();
                buf.resize(f.len() + 64, 0);
                if let Some(l) = apply_nat(&mut buf, f.len(), &n) {
                    let g = &buf[..l];
                    if let Ok(Frame::Ip(q)) = packet::parse(g) {
                        assert!(ipv4_header_ok(g, &q), "IPv4 header checksum");
                        if n.mangle.is_some() {
                            assert!(l4_ok(g, &q), "TCP checksum of a rewritten payload");
                        }
                    } else if n.mangle.is_some() {
                        panic!("a rewritten frame does not parse");
                    }
                }
            }
        }
    };
    let seg = |src, dst, flags, seq, ack, pay: &[u8]| {
        PacketSpec::tcp(src, dst, flags, seq, ack)
            .payload(pay)
            .to_vec()
    };
    // The handshake and a banner: the client's and server's next seq.
    let (mut cs, mut ss) = (101u32, 512u32);
    send(&mut pl, Side::Host, &seg(c, s, 0x02, 100, 0, b""), now);
    send(&mut pl, Side::Network, &seg(s, cp, 0x12, 500, 101, b""), now);
    send(&mut pl, Side::Host, &seg(c, s, 0x10, 101, 501, b""), now);
    send(&mut pl, Side::Network, &seg(s, cp, 0x18, 501, 101, b"220 ready\r\n"), now);
    let mut rest = data;
    while rest.len() >= 3 {
        let (ctl, jitter, n) = (rest[0], rest[1] as i8, rest[2] as usize);
        let n = n.min(rest.len() - 3);
        let pay = &rest[3..3 + n];
        rest = &rest[3 + n..];
        now += 1_000_000;
        let flags = 0x10 | (ctl & 0x0f & !0x02 & !0x04);
        let to_server = ctl & 0x80 == 0;
        let (seq, ack) = if to_server {
            (cs.wrapping_add(jitter as i32 as u32), ss)
        } else {
            (ss.wrapping_add(jitter as i32 as u32), cs)
        };
        if to_server {
            send(&mut pl, Side::Host, &seg(c, s, flags, seq, ack, pay), now);
            if jitter == 0 {
                cs = cs.wrapping_add(n as u32);
            }
        } else {
            send(&mut pl, Side::Network, &seg(s, cp, flags, seq, ack, pay), now);
            if jitter == 0 {
                ss = ss.wrapping_add(n as u32);
            }
        }
    }
});
