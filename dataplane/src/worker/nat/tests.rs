//! The pipeline with NAT, as `statewall replay --out` runs it: built captures through
//! MASQUERADE and DNAT, the translated frames compared byte by byte with frames built
//! from scratch (so every checksum is a full recompute), the hook order (FORWARD sees
//! the DNATed destination), ICMP errors, and the `nat_no_port` drops.

use super::*;
use crate::conntrack::{Config, ConnTable};
use crate::packet::build::PacketSpec;
use crate::packet::checksum::{ipv4_header_ok, l4_ok};
use crate::packet::tcp_flags::{ACK, SYN};
use crate::ruleset::parse_ruleset;
use crate::worker::tests::{forward, fragments};
use crate::worker::{Action, DropReason, NonIpPolicy, Outcome};
use std::net::SocketAddr;

pub(super) fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(super) struct Rig {
    pub(super) pl: Pipeline,
    rs: Ruleset,
    pub(super) now: u64,
    /// (network port, host port) names.
    pub(super) names: (&'static str, &'static str),
}

impl Rig {
    pub(super) fn new(rules: &str, addrs: NatAddrs) -> Rig {
        let rs = parse_ruleset(rules, "rules.v4", None).unwrap_or_else(|e| panic!("{e}"));
        Rig::with_rs(rs, addrs)
    }

    pub(super) fn with_rs(rs: Ruleset, addrs: NatAddrs) -> Rig {
        let mut pl = Pipeline::new(
            ConnTable::new(1024, Config::default()),
            &rs,
            NonIpPolicy::PassArp,
        );
        pl.set_nat_addrs(addrs);
        Rig {
            pl,
            rs,
            now: 1_000_000_000,
            names: ("outside", "inside"),
        }
    }

    /// One frame through the pipeline at the rig's clock (not advanced): the outcome.
    pub(super) fn process(&mut self, side: Side, frame: &[u8]) -> Outcome {
        forward(&mut self.pl, &self.rs, self.names, side, self.now, frame)
    }

    /// One frame through the pipeline, 1 ms after the previous one; the frame that goes
    /// out (translated) or the drop reason.
    pub(super) fn send(&mut self, side: Side, frame: &[u8]) -> Result<Vec<u8>, DropReason> {
        self.now += 1_000_000;
        let o = self.process(side, frame);
        match o.action {
            Action::Forward => {
                let mut f = frame.to_vec();
                if let Some(n) = o.nat.and_then(|r| r.resolve(self.pl.table())) {
                    let len = f.len();
                    f.resize(len + 64, 0);
                    let l = apply_nat(&mut f, len, &n).expect("rewritten");
                    f.truncate(l);
                }
                Ok(f)
            }
            Action::Drop(r) => Err(r),
            a => panic!("unexpected {a:?}"),
        }
    }
}

/// A client outside opens the published port 192.0.2.1:8080 (DNAT to the container's
/// 172.17.0.2:80): the SYN goes in translated, the SYN-ACK comes back translated.
fn published_port_handshake(r: &mut Rig) {
    let c = sa("203.0.113.5:40000");
    let syn = PacketSpec::tcp(c, sa("192.0.2.1:8080"), SYN, 7, 0).to_vec();
    same(
        &r.send(Side::Network, &syn).unwrap(),
        &PacketSpec::tcp(c, sa("172.17.0.2:80"), SYN, 7, 0).to_vec(),
    );
    let synack = PacketSpec::tcp(sa("172.17.0.2:80"), c, SYN | ACK, 9, 8).to_vec();
    same(
        &r.send(Side::Host, &synack).unwrap(),
        &PacketSpec::tcp(sa("192.0.2.1:8080"), c, SYN | ACK, 9, 8).to_vec(),
    );
}

#[track_caller]
pub(super) fn same(got: &[u8], want: &[u8]) {
    assert_eq!(got, want);
    let Ok(crate::packet::Frame::Ip(p)) = crate::packet::parse(got) else {
        panic!()
    };
    assert!(ipv4_header_ok(got, &p) && l4_ok(got, &p), "checksums");
}

fn masq_rules() -> String {
    "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
-A POSTROUTING -o outside -j MASQUERADE\nCOMMIT\n\
*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
-A FORWARD -i inside -o outside -j ACCEPT\nCOMMIT\n"
        .to_string()
}

fn masq_addrs() -> NatAddrs {
    NatAddrs {
        masquerade_v4: Some(packet::from_ip("192.0.2.1".parse().unwrap()).1),
        ..Default::default()
    }
}

#[test]
fn masquerade_tcp_both_directions_byte_by_byte() {
    let mut r = Rig::new(&masq_rules(), masq_addrs());
    let syn = PacketSpec::tcp(sa("10.0.0.2:1234"), sa("198.51.100.9:80"), SYN, 100, 0).to_vec();
    let out = r.send(Side::Host, &syn).unwrap();
    same(
        &out,
        &PacketSpec::tcp(sa("192.0.2.1:1234"), sa("198.51.100.9:80"), SYN, 100, 0).to_vec(),
    );
    let synack = PacketSpec::tcp(
        sa("198.51.100.9:80"),
        sa("192.0.2.1:1234"),
        SYN | ACK,
        500,
        101,
    )
    .to_vec();
    let back = r.send(Side::Network, &synack).unwrap();
    same(
        &back,
        &PacketSpec::tcp(
            sa("198.51.100.9:80"),
            sa("10.0.0.2:1234"),
            SYN | ACK,
            500,
            101,
        )
        .to_vec(),
    );
    let ack = PacketSpec::tcp(sa("10.0.0.2:1234"), sa("198.51.100.9:80"), ACK, 101, 501)
        .payload(b"GET / HTTP/1.0\r\n\r\n")
        .to_vec();
    same(
        &r.send(Side::Host, &ack).unwrap(),
        &PacketSpec::tcp(sa("192.0.2.1:1234"), sa("198.51.100.9:80"), ACK, 101, 501)
            .payload(b"GET / HTTP/1.0\r\n\r\n")
            .to_vec(),
    );
    // Unsolicited traffic to the public address finds no entry: NEW, dropped by FORWARD.
    let probe = PacketSpec::tcp(sa("198.51.100.77:5555"), sa("192.0.2.1:1234"), SYN, 1, 0).to_vec();
    assert_eq!(r.send(Side::Network, &probe), Err(DropReason::Policy));
    assert_eq!(r.pl.table().nat_bindings(), 1);
}

#[test]
fn masquerade_udp_icmp_and_errors() {
    let mut r = Rig::new(&masq_rules(), masq_addrs());
    let q = PacketSpec::udp(sa("10.0.0.2:5353"), sa("198.51.100.9:53"))
        .payload(b"query")
        .to_vec();
    let sent = r.send(Side::Host, &q).unwrap();
    let want_sent = PacketSpec::udp(sa("192.0.2.1:5353"), sa("198.51.100.9:53"))
        .payload(b"query")
        .to_vec();
    same(&sent, &want_sent);
    // A router's port unreachable about the translated datagram.
    let err = PacketSpec::icmp(
        "203.0.113.254".parse().unwrap(),
        "192.0.2.1".parse().unwrap(),
        3,
        3,
        [0; 4],
    )
    .payload(&want_sent[14..])
    .to_vec();
    let back = r.send(Side::Network, &err).unwrap();
    let want = PacketSpec::icmp(
        "203.0.113.254".parse().unwrap(),
        "10.0.0.2".parse().unwrap(),
        3,
        3,
        [0; 4],
    )
    .payload(&q[14..])
    .to_vec();
    same(&back, &want);
    // Echo: the id is kept, the reply comes back to the pinger.
    let ping = PacketSpec::icmp_echo(
        "10.0.0.2".parse().unwrap(),
        "198.51.100.9".parse().unwrap(),
        8,
        0x4242,
        1,
    )
    .to_vec();
    let pub_ip = "192.0.2.1".parse().unwrap();
    same(
        &r.send(Side::Host, &ping).unwrap(),
        &PacketSpec::icmp_echo(pub_ip, "198.51.100.9".parse().unwrap(), 8, 0x4242, 1).to_vec(),
    );
    let pong =
        PacketSpec::icmp_echo("198.51.100.9".parse().unwrap(), pub_ip, 0, 0x4242, 1).to_vec();
    same(
        &r.send(Side::Network, &pong).unwrap(),
        &PacketSpec::icmp_echo(
            "198.51.100.9".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            0,
            0x4242,
            1,
        )
        .to_vec(),
    );
}

#[test]
fn dnat_before_forward_filter_like_docker() {
    // Docker's shape: FORWARD matches the container's address and port after DNAT.
    let rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
:DOCKER - [0:0]\n-A PREROUTING -d 192.0.2.1/32 -j DOCKER\n\
-A DOCKER -i inside -j RETURN\n\
-A DOCKER ! -i inside -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\nCOMMIT\n\
*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A FORWARD -o inside -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
-A FORWARD -d 172.17.0.2/32 ! -i inside -o inside -p tcp -m tcp --dport 80 -j ACCEPT\n\
-A FORWARD -i inside -j ACCEPT\nCOMMIT\n";
    let mut r = Rig::new(rules, NatAddrs::default());
    published_port_handshake(&mut r);
    // The ESTABLISHED packet from outside: FORWARD's -o inside RELATED,ESTABLISHED rule.
    let ack = PacketSpec::tcp(sa("203.0.113.5:40000"), sa("192.0.2.1:8080"), ACK, 8, 10).to_vec();
    same(
        &r.send(Side::Network, &ack).unwrap(),
        &PacketSpec::tcp(sa("203.0.113.5:40000"), sa("172.17.0.2:80"), ACK, 8, 10).to_vec(),
    );
    // A port that is not published: no DNAT, and FORWARD drops it.
    let other = PacketSpec::tcp(sa("203.0.113.5:40001"), sa("192.0.2.1:9090"), SYN, 7, 0).to_vec();
    assert_eq!(r.send(Side::Network, &other), Err(DropReason::Policy));
    // A DNATed packet the filter drops is not rewritten and leaves no entry.
    let rules_drop = rules.replace(
        "-A FORWARD -d 172.17.0.2/32",
        "-A FORWARD -d 172.17.0.99/32",
    );
    let mut r = Rig::new(&rules_drop, NatAddrs::default());
    let syn = PacketSpec::tcp(sa("203.0.113.5:40000"), sa("192.0.2.1:8080"), SYN, 7, 0).to_vec();
    assert_eq!(r.send(Side::Network, &syn), Err(DropReason::Policy));
    assert_eq!(r.pl.table().len(), 0);
}

#[test]
fn nat_no_port_drops() {
    let rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
-A POSTROUTING -p udp -j SNAT --to-source 192.0.2.1:7000\n\
-A POSTROUTING -p tcp -j MASQUERADE\nCOMMIT\n";
    let mut r = Rig::new(rules, NatAddrs::default());
    let a = PacketSpec::udp(sa("10.0.0.2:1000"), sa("198.51.100.9:53")).to_vec();
    let b = PacketSpec::udp(sa("10.0.0.3:1000"), sa("198.51.100.9:53")).to_vec();
    same(
        &r.send(Side::Host, &a).unwrap(),
        &PacketSpec::udp(sa("192.0.2.1:7000"), sa("198.51.100.9:53")).to_vec(),
    );
    // The one port of the range is taken: the second flow cannot be translated.
    assert_eq!(r.send(Side::Host, &b), Err(DropReason::NatNoPort));
    // MASQUERADE without the port's address (none configured).
    let t = PacketSpec::tcp(sa("10.0.0.2:1000"), sa("198.51.100.9:80"), SYN, 1, 0).to_vec();
    assert_eq!(r.send(Side::Host, &t), Err(DropReason::NatNoPort));
    assert_eq!(r.pl.stats().drops[DropReason::NatNoPort as usize], 2);
    assert_eq!(r.pl.table().len(), 1);
}

#[test]
fn docker_testdata_through_the_pipeline() {
    // The Docker host's real iptables-save text, unchanged: eth0 faces the network,
    // docker0 the containers; the host's address makes -m addrtype LOCAL match.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/ruleset/testdata/nat-docker.rules.v4");
    let text = std::fs::read_to_string(path).unwrap();
    let mut r = Rig::new(&text, masq_addrs());
    r.rs.set_local_addrs(&["192.0.2.1".parse().unwrap()]);
    r.names = ("eth0", "docker0");
    // Published port: DNAT in PREROUTING, then FORWARD's DOCKER chain accepts the
    // container's address and port.
    published_port_handshake(&mut r);
    // A container's own connection out: MASQUERADE (-s 172.17.0.0/16 ! -o docker0).
    let out = PacketSpec::udp(sa("172.17.0.3:5000"), sa("198.51.100.9:53")).to_vec();
    same(
        &r.send(Side::Host, &out).unwrap(),
        &PacketSpec::udp(sa("192.0.2.1:5000"), sa("198.51.100.9:53")).to_vec(),
    );
    // Port 8080 on an address that is not the host's: addrtype LOCAL fails, no DNAT,
    // and FORWARD (policy DROP) refuses it.
    let not_local =
        PacketSpec::tcp(sa("203.0.113.5:40001"), sa("198.51.100.1:8080"), SYN, 7, 0).to_vec();
    assert_eq!(r.send(Side::Network, &not_local), Err(DropReason::Policy));
}

#[test]
fn nat66_masquerade_and_dnat() {
    let rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
-A PREROUTING -i outside -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::5]:80\n\
-A POSTROUTING -s fd00::/64 -o outside -j MASQUERADE\nCOMMIT\n";
    let rs6 = parse_ruleset(rules, "rules.v6", Some(crate::packet::Family::V6)).unwrap();
    let rs4 = parse_ruleset("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n", "rules.v4", None).unwrap();
    let mut r = Rig::with_rs(
        rs4.with_other_family(rs6).unwrap(),
        NatAddrs {
            masquerade_v6: Some(packet::from_ip("2001:db8::1".parse().unwrap()).1),
            ..Default::default()
        },
    );
    let q = PacketSpec::udp(sa("[fd00::2]:5000"), sa("[2001:db8:9::9]:53")).to_vec();
    same6(
        &r.send(Side::Host, &q).unwrap(),
        &PacketSpec::udp(sa("[2001:db8::1]:5000"), sa("[2001:db8:9::9]:53")).to_vec(),
    );
    let a = PacketSpec::udp(sa("[2001:db8:9::9]:53"), sa("[2001:db8::1]:5000")).to_vec();
    same6(
        &r.send(Side::Network, &a).unwrap(),
        &PacketSpec::udp(sa("[2001:db8:9::9]:53"), sa("[fd00::2]:5000")).to_vec(),
    );
    let syn = PacketSpec::tcp(
        sa("[2001:db8:7::7]:4000"),
        sa("[2001:db8::1]:8080"),
        SYN,
        1,
        0,
    )
    .to_vec();
    same6(
        &r.send(Side::Network, &syn).unwrap(),
        &PacketSpec::tcp(sa("[2001:db8:7::7]:4000"), sa("[fd00::5]:80"), SYN, 1, 0).to_vec(),
    );
    // ICMPv6 echo through MASQUERADE: the checksum covers the pseudo-header.
    let ping = PacketSpec::icmp_echo(
        "fd00::2".parse().unwrap(),
        "2001:db8:9::9".parse().unwrap(),
        128,
        9,
        1,
    )
    .to_vec();
    same6(
        &r.send(Side::Host, &ping).unwrap(),
        &PacketSpec::icmp_echo(
            "2001:db8::1".parse().unwrap(),
            "2001:db8:9::9".parse().unwrap(),
            128,
            9,
            1,
        )
        .to_vec(),
    );
}

#[track_caller]
fn same6(got: &[u8], want: &[u8]) {
    assert_eq!(got, want);
    let Ok(crate::packet::Frame::Ip(p)) = crate::packet::parse(got) else {
        panic!()
    };
    assert!(l4_ok(got, &p), "checksum");
}

#[test]
fn forward_sees_nat_tuples_through_conntrack_options() {
    let rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
-A PREROUTING -i outside -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\nCOMMIT\n\
*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A FORWARD -m conntrack --ctstate DNAT --ctorigdstport 8080 --ctreplsrc 172.17.0.2 -j ACCEPT\nCOMMIT\n";
    let mut r = Rig::new(rules, NatAddrs::default());
    let syn = PacketSpec::tcp(sa("203.0.113.5:40000"), sa("192.0.2.1:8080"), SYN, 7, 0).to_vec();
    assert!(r.send(Side::Network, &syn).is_ok());
    let synack = PacketSpec::tcp(
        sa("172.17.0.2:80"),
        sa("203.0.113.5:40000"),
        SYN | ACK,
        9,
        8,
    )
    .to_vec();
    same(
        &r.send(Side::Host, &synack).unwrap(),
        &PacketSpec::tcp(
            sa("192.0.2.1:8080"),
            sa("203.0.113.5:40000"),
            SYN | ACK,
            9,
            8,
        )
        .to_vec(),
    );
}

#[test]
fn fragments_of_a_masqueraded_datagram_are_each_translated() {
    let mut r = Rig::new(&masq_rules(), masq_addrs());
    let body = vec![0x5au8; 3000];
    let big = PacketSpec::udp(sa("10.0.0.2:5353"), sa("198.51.100.9:53"))
        .payload(&body)
        .to_vec();
    let want = fragments(
        &PacketSpec::udp(sa("192.0.2.1:5353"), sa("198.51.100.9:53"))
            .payload(&body)
            .to_vec(),
        1480,
    );
    let frags = fragments(&big, 1480);
    assert_eq!(frags.len(), 3);
    let mut held = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        let o = r.process(Side::Host, f);
        if i < 2 {
            assert!(matches!(o.action, Action::Held(_)), "{:?}", o.action);
            held.push(f.clone());
            continue;
        }
        assert_eq!(o.action, Action::Forward);
        assert!(o.completes.is_some());
        let n = o
            .nat
            .and_then(|x| x.resolve(r.pl.table()))
            .expect("the datagram's connection is NATed");
        held.push(f.clone());
        let n = n.for_fragment();
        for g in held.iter_mut() {
            let len = g.len();
            assert_eq!(apply_nat(g, len, &n), Some(len));
        }
    }
    assert_eq!(held.len(), want.len());
    for (i, (g, w)) in held.iter().zip(&want).enumerate() {
        assert!(
            g == w,
            "fragment {i}: got {:02x?}, want {:02x?}",
            &g[..44],
            &w[..44]
        );
    }
}

#[test]
fn masquerade_with_several_workers_replies_land_on_the_allocating_worker() {
    use crate::steer::Steering;
    use crate::worker::Ownership;
    for workers in 2..=4u16 {
        for model in [Steering::Symmetric, Steering::Fanout] {
            let mut rigs: Vec<Rig> = (0..workers)
                .map(|me| {
                    let mut r = Rig::new(&masq_rules(), masq_addrs());
                    r.pl.set_ownership(Some(Ownership { me, workers, model }));
                    r
                })
                .collect();
            let owner = |f: &[u8]| {
                let Ok(crate::packet::Frame::Ip(p)) = crate::packet::parse(f) else {
                    panic!()
                };
                model.owner(f, &p, workers) as usize
            };
            for i in 0..40u16 {
                let src = format!("10.0.{}.{}:{}", i % 3, i + 1, 2000 + i);
                let q = PacketSpec::udp(sa(&src), sa("198.51.100.9:53")).to_vec();
                let w = owner(&q);
                let out = rigs[w].send(Side::Host, &q).unwrap();
                let Ok(crate::packet::Frame::Ip(p)) = crate::packet::parse(&out) else {
                    panic!()
                };
                let sport = p.ports().unwrap().0;
                // The reply to the translated tuple is steered to the same worker...
                let reply =
                    PacketSpec::udp(sa("198.51.100.9:53"), sa(&format!("192.0.2.1:{sport}")))
                        .to_vec();
                assert_eq!(owner(&reply), w, "{model:?} N={workers}");
                // ...which translates it back to the inside host.
                same(
                    &rigs[w].send(Side::Network, &reply).unwrap(),
                    &PacketSpec::udp(sa("198.51.100.9:53"), sa(&src)).to_vec(),
                );
            }
        }
    }
}

/// MASQUERADE takes the address of the port the packet leaves by (a port's own
/// `address`), falling back to the default set (the first pair's) for ports without.
#[test]
fn masquerade_uses_the_leaving_ports_own_address() {
    let rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n";
    let mut r = Rig::new(rules, masq_addrs());
    r.pl.set_port_nat_addrs(
        "wan2",
        NatAddrs {
            masquerade_v4: Some(packet::from_ip("203.0.113.77".parse().unwrap()).1),
            ..Default::default()
        },
    );
    let q = |src: &str| PacketSpec::udp(sa(src), sa("198.51.100.9:53")).to_vec();
    // The first pair's ports: the default address.
    same(
        &r.send(Side::Host, &q("10.0.0.2:1000")).unwrap(),
        &PacketSpec::udp(sa("192.0.2.1:1000"), sa("198.51.100.9:53")).to_vec(),
    );
    // A second pair whose network port has its own address.
    r.names = ("wan2", "lan2");
    same(
        &r.send(Side::Host, &q("10.0.0.3:1000")).unwrap(),
        &PacketSpec::udp(sa("203.0.113.77:1000"), sa("198.51.100.9:53")).to_vec(),
    );
    // A third pair without one: the default again.
    r.names = ("wan3", "lan3");
    same(
        &r.send(Side::Host, &q("10.0.0.4:1001")).unwrap(),
        &PacketSpec::udp(sa("192.0.2.1:1001"), sa("198.51.100.9:53")).to_vec(),
    );
}

/// A new connection's first packet handed to its owner is judged there with the
/// hand-off check off (`ownership` taken while the rings drain); NAT must still choose a
/// reply tuple the steering brings back to this worker (`nat_owner`).
#[test]
fn a_handed_off_first_packet_still_gets_a_reply_tuple_owned_here() {
    use crate::steer::Steering;
    use crate::worker::Ownership;
    let (workers, model) = (2u16, Steering::Symmetric);
    let mut r = Rig::new(&masq_rules(), masq_addrs());
    r.pl.set_ownership(Some(Ownership {
        me: 1,
        workers,
        model,
    }));
    for i in 0..40u16 {
        // As drain_handoffs runs a burst: no second hand-off.
        let saved = r.pl.ownership.take();
        let src = format!("10.0.{}.{}:{}", i % 3, i + 1, 3000 + i);
        let q = PacketSpec::udp(sa(&src), sa("198.51.100.9:53")).to_vec();
        let out = r.send(Side::Host, &q).unwrap();
        r.pl.ownership = saved;
        let Ok(crate::packet::Frame::Ip(p)) = crate::packet::parse(&out) else {
            panic!()
        };
        let sport = p.ports().unwrap().0;
        let reply =
            PacketSpec::udp(sa("198.51.100.9:53"), sa(&format!("192.0.2.1:{sport}"))).to_vec();
        let Ok(crate::packet::Frame::Ip(rp)) = crate::packet::parse(&reply) else {
            panic!()
        };
        assert_eq!(
            model.owner(&reply, &rp, workers),
            1,
            "reply of {src} steered away"
        );
    }
}

#[test]
fn dnat_with_several_workers_moves_the_source_port_only_when_needed() {
    use crate::steer::Steering;
    use crate::worker::Ownership;
    let rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
-A PREROUTING -i outside -p udp -m udp --dport 5353 -j DNAT --to-destination 172.17.0.2:53\nCOMMIT\n";
    let (workers, model) = (3u16, Steering::Symmetric);
    let mut rigs: Vec<Rig> = (0..workers)
        .map(|me| {
            let mut r = Rig::new(rules, NatAddrs::default());
            r.pl.set_ownership(Some(Ownership { me, workers, model }));
            r
        })
        .collect();
    let owner = |f: &[u8]| {
        let Ok(crate::packet::Frame::Ip(p)) = crate::packet::parse(f) else {
            panic!()
        };
        model.owner(f, &p, workers) as usize
    };
    let (mut kept, mut moved) = (0, 0);
    for i in 0..60u16 {
        let client = format!("203.0.113.{}:{}", i + 1, 30000 + i);
        let q = PacketSpec::udp(sa(&client), sa("192.0.2.1:5353")).to_vec();
        let w = owner(&q);
        let out = rigs[w].send(Side::Network, &q).unwrap();
        let Ok(crate::packet::Frame::Ip(p)) = crate::packet::parse(&out) else {
            panic!()
        };
        assert_eq!(
            crate::packet::to_ip(p.family, &p.dst).to_string(),
            "172.17.0.2"
        );
        let sport = p.ports().unwrap().0;
        if sport == 30000 + i {
            kept += 1;
        } else {
            moved += 1;
        }
        let reply = PacketSpec::udp(
            sa("172.17.0.2:53"),
            sa(&format!("203.0.113.{}:{sport}", i + 1)),
        )
        .to_vec();
        assert_eq!(owner(&reply), w);
        same(
            &rigs[w].send(Side::Host, &reply).unwrap(),
            &PacketSpec::udp(sa("192.0.2.1:5353"), sa(&client)).to_vec(),
        );
    }
    // About 1/N keep their port (the reply already lands here); the rest move.
    assert!(kept > 0 && moved > 0, "kept {kept}, moved {moved}");
}

#[test]
fn rst_that_kills_an_unreplied_nated_entry_is_still_translated() {
    use crate::packet::tcp_flags::RST;
    let mut r = Rig::new(&masq_rules(), masq_addrs());
    let syn = PacketSpec::tcp(sa("10.0.0.2:1234"), sa("198.51.100.9:80"), SYN, 100, 0).to_vec();
    r.send(Side::Host, &syn).unwrap();
    // The client gives up before any reply: conntrack kills the entry on this RST.
    let rst = PacketSpec::tcp(sa("10.0.0.2:1234"), sa("198.51.100.9:80"), RST, 101, 0).to_vec();
    same(
        &r.send(Side::Host, &rst).unwrap(),
        &PacketSpec::tcp(sa("192.0.2.1:1234"), sa("198.51.100.9:80"), RST, 101, 0).to_vec(),
    );
    // The entry is gone for later packets (both of its ways).
    r.now += 1;
    let late = PacketSpec::tcp(
        sa("198.51.100.9:80"),
        sa("192.0.2.1:1234"),
        SYN | ACK,
        5,
        101,
    )
    .to_vec();
    assert_eq!(r.send(Side::Network, &late), Err(DropReason::Policy));
}

// ---- Across the layers: conntrack's NAT binding checked against steering and the
// worker's rewrite (these need modules above conntrack, so they live here).

mod across {
    use crate::conntrack::nat::range_flags as rf;
    use crate::conntrack::{
        ConnTable, CtState, Direction, ExpectTable, NatError, NatRange, NatRequest, NatRewrite,
        NatTuple, Track, TrackOpts,
    };
    use crate::packet::build::PacketSpec;
    use crate::packet::checksum::{ipv4_header_ok, l4_ok};
    use crate::packet::{self, Family};
    use crate::steer::Steering;
    use crate::worker::{apply_nat, NatApply};
    use std::net::{IpAddr, SocketAddr};

    const IN: &str = "10.0.0.2:1234";
    const OUT: &str = "198.51.100.9:53";
    const PUB: &str = "192.0.2.1";
    const ROUTER: &str = "10.0.0.254";
    const NOW: u64 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn udp(src: &str, dst: &str) -> Vec<u8> {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        PacketSpec::udp(sa(src), sa(dst)).payload(b"query").to_vec()
    }
    /// An ICMP port unreachable from `src` to `dst` quoting `inner`'s IP header + 8 bytes.
    fn unreachable(src: &str, dst: &str, inner: &[u8]) -> Vec<u8> {
        PacketSpec::icmp(ip(src), ip(dst), 3, 3, [0; 4])
            .payload(&inner[14..14 + 28])
            .to_vec()
    }
    use crate::packet::parsed_ip as parsed;
    fn masquerade_to(addr: &str) -> NatRequest {
        let a = packet::from_ip(ip(addr)).1;
        NatRequest {
            dst: None,
            src: Some(NatRange {
                flags: rf::MAP_IPS,
                min_addr: a,
                max_addr: a,
                ..Default::default()
            }),
        }
    }
    fn track(t: &mut ConnTable, f: &[u8]) -> Track {
        let p = parsed(f);
        let tr = t.track(f, &p, NOW, TrackOpts::default());
        let _ = t.confirm(&tr, true, f, &p, NOW);
        tr
    }
    /// The first packet of a connection: tracked, bound to `req` under the owner
    /// predicate `owns`, confirmed; the rewrite of its direction.
    fn nat_first(
        t: &mut ConnTable,
        f: &[u8],
        req: &NatRequest,
        owns: impl Fn(&NatTuple) -> bool,
    ) -> Result<NatRewrite, NatError> {
        let p = parsed(f);
        let tr = t.track(f, &p, NOW, TrackOpts::default());
        assert!(tr.candidate, "{tr:?}");
        let h = tr.handle.unwrap();
        let r = t.bind_nat(h, req, NOW, owns);
        let c = t.confirm(&tr, r.is_ok(), f, &p, NOW);
        r?;
        assert!(c.is_pass(), "{c:?}");
        Ok(t.nat_rewrite(h, tr.dir).expect("a NATed direction"))
    }

    #[test]
    fn icmp_error_about_a_nated_flow_is_related_and_translated() {
        let mut t = ConnTable::new(1024, Default::default());
        nat_first(&mut t, &udp(IN, OUT), &masquerade_to(PUB), |_| true).unwrap();
        // A router answers the translated packet (PUB:1234 -> OUT) with port unreachable.
        let sent = udp(&format!("{PUB}:1234"), OUT);
        let err = unreachable(ROUTER, PUB, &sent);
        let tr = track(&mut t, &err);
        assert_eq!((tr.state, tr.dir), (CtState::Related, Direction::Reply));
        let rewrite = t.nat_rewrite(tr.handle.unwrap(), tr.dir).unwrap();
        let mut g = err.clone();
        let len = g.len();
        assert_eq!(
            apply_nat(
                &mut g,
                len,
                &NatApply {
                    rewrite,
                    icmp_error: true,
                    seq: None,
                    mangle: None,
                }
            ),
            Some(len)
        );
        // Outer destination and the quoted source are the inside host's again.
        assert_eq!(g, unreachable(ROUTER, "10.0.0.2", &udp(IN, OUT)));
        let gp = parsed(&g);
        assert!(l4_ok(&g, &gp));
        assert!(ipv4_header_ok(&g, &gp));
    }

    #[test]
    fn allocation_accepts_only_reply_tuples_this_worker_owns() {
        for workers in 2..=4u16 {
            for model in [Steering::Symmetric, Steering::Fanout] {
                for me in 0..workers {
                    let mut t = ConnTable::with_expectations(
                        4096,
                        Default::default(),
                        std::sync::Arc::new(ExpectTable::new()),
                        me,
                    );
                    let owner = |x: &NatTuple| {
                        let ports = (x.sport, x.dport);
                        model.owner_of_tuple(Family::V4, 17, &x.src, &x.dst, ports, workers)
                    };
                    for i in 0..64u16 {
                        let src = format!("10.0.{}.{}:{}", i / 200, i % 200 + 1, 1000 + i);
                        let rw = nat_first(&mut t, &udp(&src, OUT), &masquerade_to(PUB), |x| {
                            owner(x) == me
                        })
                        .unwrap();
                        // The reply to the translated tuple lands on this worker.
                        let reply = udp(OUT, &format!("{PUB}:{}", rw.new.sport));
                        let rp = parsed(&reply);
                        assert_eq!(
                            model.owner(&reply, &rp, workers),
                            me,
                            "{model:?} N={workers}"
                        );
                        assert_eq!(track(&mut t, &reply).dir, Direction::Reply);
                    }
                }
            }
        }
    }
}
