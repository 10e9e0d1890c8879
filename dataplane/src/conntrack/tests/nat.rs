//! NAT bindings: the translated tuple and its second index way, port allocation as
//! Linux does it (keep the port when free, else search the range), exhaustion, removal
//! of both ways, and ICMP echo ids. (ICMP errors through NAT and the owner-aware allocation
//! against steering are in `worker/nat/tests.rs`: they need layers above conntrack.)

use super::*;
use crate::conntrack::nat::range_flags as rf;
use crate::packet::Addr;

const IN: &str = "10.0.0.2:1234";
const OUT: &str = "198.51.100.9:53";
const PUB: &str = "192.0.2.1";

fn a(s: &str) -> Addr {
    packet::from_ip(ip(s)).1
}

fn snat(addr: &str, ports: Option<(u16, u16)>, flags: u8) -> NatRequest {
    let mut r = NatRange {
        flags: rf::MAP_IPS | flags,
        min_addr: a(addr),
        max_addr: a(addr),
        ..Default::default()
    };
    if let Some((lo, hi)) = ports {
        r.flags |= rf::PROTO_SPECIFIED;
        r.min_port = lo;
        r.max_port = hi;
    }
    NatRequest {
        dst: None,
        src: Some(r),
    }
}

impl H {
    /// Tracks a first packet, binds `req` (owner predicate `owns`) and confirms it;
    /// returns the track, the binding result and the rewrite of the packet.
    fn nat_first(
        &mut self,
        f: &[u8],
        req: &NatRequest,
        owns: impl Fn(&NatTuple) -> bool,
    ) -> (Track, Result<(), NatError>, Option<NatRewrite>) {
        let p = parsed(f);
        let t = self.t.track(f, &p, self.now, TrackOpts::default());
        assert!(t.candidate, "{t:?}");
        let h = t.handle.unwrap();
        let r = self.t.bind_nat(h, req, self.now, owns);
        let ok = r.is_ok();
        let c = self.t.confirm(&t, ok, f, &p, self.now);
        if ok {
            assert!(c.is_pass(), "{c:?}");
        }
        (t, r, ok.then(|| self.t.nat_rewrite(h, t.dir)).flatten())
    }
}

fn udp_q(src: &str, dst: &str) -> Vec<u8> {
    udp(src, dst)
}

#[test]
fn snat_keeps_the_port_when_free_and_reply_finds_the_entry() {
    let mut h = H::new();
    let (t, r, rw) = h.nat_first(&udp_q(IN, OUT), &snat(PUB, None, 0), |_| true);
    assert_eq!(r, Ok(()));
    let rw = rw.expect("a rewrite");
    assert!(rw.set_src && !rw.set_dst);
    assert_eq!(rw.new.src, a(PUB));
    assert_eq!(rw.new.sport, 1234, "Linux keeps the source port when free");
    assert_eq!(h.t.nat_bindings(), 1);
    // The reply, addressed to the translated tuple, finds the entry by its reply way.
    let reply = h.go(&udp_q(OUT, "192.0.2.1:1234"));
    assert_eq!(reply.state, Est);
    assert_eq!(reply.dir, Direction::Reply);
    assert_eq!(reply.handle, t.handle);
    let back =
        h.t.nat_rewrite(reply.handle.unwrap(), Direction::Reply)
            .unwrap();
    assert!(back.set_dst && !back.set_src);
    assert_eq!((back.new.dst, back.new.dport), (a("10.0.0.2"), 1234));
    // The view shows both tuples as conntrack -L does, with the SRC_NAT status.
    let v = h.view(&udp_q(IN, OUT)).unwrap();
    assert!(v.status.has(CtStatus::SRC_NAT));
    assert!(!v.status.has(CtStatus::DST_NAT));
    assert_eq!(
        v.conntrack_line(),
        "udp      17 30 src=10.0.0.2 dst=198.51.100.9 sport=1234 dport=53 src=198.51.100.9 dst=192.0.2.1 sport=53 dport=1234 mark=0 use=1"
    );
    // The same entry by the reply tuple's key.
    assert_eq!(
        h.view(&udp_q(OUT, "192.0.2.1:1234")).unwrap().handle,
        v.handle
    );
    // A later original-direction packet still belongs to it.
    let again = h.go(&udp_q(IN, OUT));
    assert_eq!(again.state, Est);
    assert_eq!(again.dir, Direction::Original);
}

#[test]
fn snat_clash_moves_to_another_port_in_range() {
    let mut h = H::new();
    // Two inside hosts with the same source port, to the same server.
    let (_, r1, w1) = h.nat_first(&udp_q(IN, OUT), &snat(PUB, Some((5000, 5009)), 0), |_| true);
    let (_, r2, w2) = h.nat_first(
        &udp_q("10.0.0.3:1234", OUT),
        &snat(PUB, Some((5000, 5009)), 0),
        |_| true,
    );
    assert_eq!((r1, r2), (Ok(()), Ok(())));
    let (p1, p2) = (w1.unwrap().new.sport, w2.unwrap().new.sport);
    assert!((5000..=5009).contains(&p1) && (5000..=5009).contains(&p2));
    assert_ne!(p1, p2, "two connections never share a reply tuple");
    // A port outside the range is never kept.
    assert_ne!(p1, 1234);
    // The kept-port case with a range that holds the port.
    let (_, r3, w3) = h.nat_first(
        &udp_q("10.0.0.4:5005", "198.51.100.10:53"),
        &snat(PUB, Some((5000, 5009)), 0),
        |_| true,
    );
    assert_eq!(r3, Ok(()));
    assert_eq!(w3.unwrap().new.sport, 5005);
}

#[test]
fn snat_range_exhausted_is_nat_no_port() {
    let mut h = H::new();
    for i in 0..4 {
        let (_, r, _) = h.nat_first(
            &udp_q(&format!("10.0.0.{}:1234", i + 2), OUT),
            &snat(PUB, Some((7000, 7003)), 0),
            |_| true,
        );
        assert_eq!(r, Ok(()), "{i}");
    }
    let (_, r, rw) = h.nat_first(
        &udp_q("10.0.0.99:1234", OUT),
        &snat(PUB, Some((7000, 7003)), 0),
        |_| true,
    );
    assert_eq!(r, Err(NatError::NoPort));
    assert!(rw.is_none());
    // The refused candidate left nothing behind.
    assert!(h.view(&udp_q("10.0.0.99:1234", OUT)).is_none());
    assert_eq!(h.t.len(), 4);
    assert_eq!(h.t.nat_bindings(), 4);
    // When one expires, its port is free again.
    h.adv(31.0);
    let (_, r, rw) = h.nat_first(
        &udp_q("10.0.0.99:1234", OUT),
        &snat(PUB, Some((7000, 7003)), 0),
        |_| true,
    );
    assert_eq!(r, Ok(()));
    assert!((7000..=7003).contains(&rw.unwrap().new.sport));
}

#[test]
fn both_index_ways_go_on_expiry_flush_and_delete() {
    let mut h = H::new();
    assert_eq!(
        h.nat_first(&udp_q(IN, OUT), &snat(PUB, None, 0), |_| true)
            .1,
        Ok(())
    );
    let reply = udp_q(OUT, "192.0.2.1:1234");
    assert!(h.view(&reply).is_some());
    // Expiry through the sweep.
    h.adv(31.0);
    assert_eq!(h.t.expire(h.now, usize::MAX), 1);
    assert!(h.view(&reply).is_none());
    assert!(h.view(&udp_q(IN, OUT)).is_none());
    assert_eq!(h.t.nat_bindings(), 0);
    // The reply tuple is free for a new connection (no stale way answers for it).
    let t = h.go(&reply);
    assert_eq!(t.state, New);
    assert_eq!(t.dir, Direction::Original);
    h.t.flush();
    // Flush.
    assert_eq!(
        h.nat_first(&udp_q(IN, OUT), &snat(PUB, None, 0), |_| true)
            .1,
        Ok(())
    );
    h.t.flush();
    assert!(h.view(&reply).is_none());
    assert_eq!((h.t.len(), h.t.nat_bindings()), (0, 0));
    // Delete by the reply tuple's key removes the entry and its original way.
    assert_eq!(
        h.nat_first(&udp_q(IN, OUT), &snat(PUB, None, 0), |_| true)
            .1,
        Ok(())
    );
    let k = FlowKey::from_parsed(&parsed(&reply)).unwrap();
    assert!(h.t.delete(&k));
    assert!(h.view(&udp_q(IN, OUT)).is_none());
    assert_eq!((h.t.len(), h.t.nat_bindings()), (0, 0));
    // Early drop of an unreplied NATed entry frees both ways.
    let mut h = H::with(ConnTable::new(1, Config::default()));
    assert_eq!(
        h.nat_first(&udp_q(IN, OUT), &snat(PUB, None, 0), |_| true)
            .1,
        Ok(())
    );
    let t = h.go(&udp_q("10.0.0.7:1", "198.51.100.1:2"));
    assert_eq!(t.state, New);
    assert!(h.view(&reply).is_none());
    assert_eq!(h.t.nat_bindings(), 0);
}

#[test]
fn inverted_original_of_a_nated_flow_is_not_its_reply() {
    let mut h = H::new();
    assert_eq!(
        h.nat_first(&udp_q(IN, OUT), &snat(PUB, None, 0), |_| true)
            .1,
        Ok(())
    );
    // 198.51.100.9:53 -> 10.0.0.2:1234 is not the reply tuple (that is to 192.0.2.1):
    // as in Linux it is not this connection's.
    let t = h.go(&udp_q(OUT, IN));
    assert_ne!(t.dir, Direction::Reply);
}

#[test]
fn dnat_rewrites_destination_and_reply_source() {
    let mut h = H::new();
    let req = NatRequest {
        dst: Some(NatRange {
            flags: rf::MAP_IPS | rf::PROTO_SPECIFIED,
            min_addr: a("172.17.0.2"),
            max_addr: a("172.17.0.2"),
            min_port: 80,
            max_port: 80,
        }),
        src: None,
    };
    let f = tcp("203.0.113.5:40000", "192.0.2.1:8080", SYN, 1000, 0);
    let (_, r, rw) = h.nat_first(&f, &req, |_| true);
    assert_eq!(r, Ok(()));
    let rw = rw.unwrap();
    assert!(rw.set_dst && !rw.set_src);
    assert_eq!((rw.new.dst, rw.new.dport), (a("172.17.0.2"), 80));
    let synack = tcp("172.17.0.2:80", "203.0.113.5:40000", SYN | ACK, 5000, 1001);
    let t = h.go(&synack);
    assert_eq!((t.state, t.dir), (Est, Direction::Reply));
    let back =
        h.t.nat_rewrite(t.handle.unwrap(), Direction::Reply)
            .unwrap();
    assert!(back.set_src && !back.set_dst);
    assert_eq!((back.new.src, back.new.sport), (a("192.0.2.1"), 8080));
    let v = h.view(&f).unwrap();
    assert!(v.status.has(CtStatus::DST_NAT));
    assert!(v.conntrack_line().contains(
        "src=203.0.113.5 dst=192.0.2.1 sport=40000 dport=8080 src=172.17.0.2 dst=203.0.113.5 sport=80 dport=40000"
    ));
}

#[test]
fn icmp_echo_id_is_a_port() {
    let mut h = H::new();
    let req = snat(PUB, None, 0);
    let (_, r, rw) = h.nat_first(&echo(CI, SI, 8, 77, 1), &req, |_| true);
    assert_eq!(r, Ok(()));
    assert_eq!(rw.unwrap().new.sport, 77, "the id is kept when free");
    // A second pinger with the same id to the same host gets another id.
    let (_, r, rw) = h.nat_first(&echo("10.0.0.3", SI, 8, 77, 1), &req, |_| true);
    assert_eq!(r, Ok(()));
    let id2 = rw.unwrap().new.sport;
    assert_ne!(id2, 77);
    // The echo reply to the translated id finds the second pinger's entry.
    let t = h.go(&echo(SI, PUB, 0, id2, 1));
    assert_eq!((t.state, t.dir), (Est, Direction::Reply));
    let back =
        h.t.nat_rewrite(t.handle.unwrap(), Direction::Reply)
            .unwrap();
    assert_eq!((back.new.dst, back.new.dport), (a("10.0.0.3"), 77));
}

#[test]
fn nat_free_entries_take_no_side_memory() {
    let h = H::new();
    let before = h.t.memory_bytes();
    let mut h = h;
    h.go(&udp_q(IN, OUT));
    assert_eq!(h.t.memory_bytes(), before, "no NAT: no side array");
    assert_eq!(
        h.nat_first(&udp_q("10.0.0.3:1", OUT), &snat(PUB, None, 0), |_| true)
            .1,
        Ok(())
    );
    assert!(h.t.memory_bytes() > before);
}

#[test]
fn icmp_error_found_by_the_nated_way_is_reply_whatever_the_address_order() {
    // fd00::1 sorts after the server, the masquerade address before it: the quoted
    // packet's endpoint order flips under NAT, so the direction must come from the
    // binding, not from the key's order (NAT66: the oracle's n24).
    let mut h = H::new();
    let (_, r, _) = h.nat_first(
        &udp_q("[fd00::1]:5300", "[2001:db8:2::10]:53"),
        &snat("2001:db8:1::1", None, 0),
        |_| true,
    );
    assert_eq!(r, Ok(()));
    let sent = udp_q("[2001:db8:1::1]:5300", "[2001:db8:2::10]:53");
    let err = icmp_err("2001:db8:2::10", "2001:db8:1::1", 1, 4, &sent, 48);
    let t = h.go(&err);
    assert_eq!((t.state, t.dir), (Rel, Direction::Reply));
}

/// `capacity` NATed connections fit in a shard of `capacity` entries, as `capacity`
/// plain ones do (`nf_conntrack_max` counts connections): `reserve_nat` doubles the
/// index for the second way of each. Entries confirmed before it stay found by both
/// their tuples after the re-index.
#[test]
fn a_full_shard_of_nated_connections_fits_and_survives_the_reindex() {
    let n = 4096;
    let mut h = H::sized(n);
    // Some plain entries before NAT is reserved: the re-index must keep them.
    for i in 0..100u32 {
        let f = udp(&format!("10.1.{}.{}:4000", i >> 8, i & 255), OUT);
        assert_eq!(h.go(&f).state, New);
    }
    h.t.reserve_nat();
    assert!(h.t.nat_ready());
    for i in 0..100u32 {
        let back = udp(OUT, &format!("10.1.{}.{}:4000", i >> 8, i & 255));
        let t = h.go(&back);
        assert_eq!((t.state, t.dir), (Est, Direction::Reply), "plain {i} lost");
    }
    let mut req = snat("192.0.2.1", None, 0);
    req.src.as_mut().unwrap().max_addr = a("192.0.2.16");
    let mut bound = 0;
    for i in 0..(n as u32 - 100) {
        let f = udp(&format!("10.2.{}.{}:5000", i >> 8, i & 255), OUT);
        let (_, r, rw) = h.nat_first(&f, &req, |_| true);
        assert_eq!(r, Ok(()), "binding {i}");
        assert!(rw.is_some());
        bound += 1;
    }
    assert_eq!(bound, n - 100);
    assert_eq!(h.t.len(), n);
    assert_eq!(h.t.nat_bindings(), n - 100);
}
