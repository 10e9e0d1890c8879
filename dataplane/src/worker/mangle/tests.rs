//! The mangle table in the pipeline: the hook order with nat and filter (marks show
//! which chain saw which destination), the connection mark kept on the entry between
//! packets, TCPMSS clamping applied to the frame that goes out (compared byte by byte
//! with a frame built with the clamped MSS), and a mangle DROP releasing the candidate.

use super::super::pipeline::{Action, Pipeline, Side};
use super::apply_mangle;
use crate::conntrack::{Config, ConnTable};
use crate::packet::build::{tcp_options, PacketSpec};
use crate::packet::checksum::{ipv4_header_ok, l4_ok};
use crate::packet::tcp_flags::{ACK, SYN};
use crate::ruleset::{parse_ruleset, Ruleset};
use crate::worker::tests::forward;
use crate::worker::{apply_nat, DropReason, NonIpPolicy, Outcome};

/// The pair's (network, host) port names.
const NAMES: (&str, &str) = ("outside", "inside");
use std::net::SocketAddr;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Rig {
    pl: Pipeline,
    rs: Ruleset,
    now: u64,
}

impl Rig {
    fn new(rules: &str) -> Rig {
        let rs = parse_ruleset(rules, "rules.v4", None).unwrap_or_else(|e| panic!("{e}"));
        let pl = Pipeline::new(
            ConnTable::new(1024, Config::default()),
            &rs,
            NonIpPolicy::PassArp,
        );
        Rig {
            pl,
            rs,
            now: 1_000_000_000,
        }
    }

    /// One frame through the pipeline (forward mode): the outcome and the frame as it
    /// goes out (NAT, then the mangle edits), or the drop reason.
    fn send(&mut self, side: Side, frame: &[u8]) -> (Outcome, Result<Vec<u8>, DropReason>) {
        self.now += 1_000_000;
        let o = forward(&mut self.pl, &self.rs, NAMES, side, self.now, frame);
        let res = match o.action {
            Action::Forward => {
                let mut f = frame.to_vec();
                if let Some(n) = o.nat.and_then(|r| r.resolve(self.pl.table())) {
                    let len = f.len();
                    assert_eq!(apply_nat(&mut f, len, &n), Some(len));
                }
                assert!(apply_mangle(&mut f, &o.mangle));
                Ok(f)
            }
            Action::Drop(r) => Err(r),
            a => panic!("unexpected {a:?}"),
        };
        (o, res)
    }
}

fn syn_with_mss(src: &str, dst: &str, mss: u16) -> Vec<u8> {
    let (o, n) = tcp_options(Some(mss), Some(7), true, None);
    PacketSpec::tcp(sa(src), sa(dst), SYN, 100, 0)
        .tcp_options(&o[..n])
        .to_vec()
}

#[test]
fn mangle_tcpmss_clamp_to_pmtu_rewrites_the_syn() {
    let mut r = Rig::new(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
         :OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         -A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\nCOMMIT\n",
    );
    r.pl.set_mtu(1492);
    let (_, out) = r.send(
        Side::Host,
        &syn_with_mss("10.0.0.2:1234", "198.51.100.9:80", 1460),
    );
    let out = out.unwrap();
    assert_eq!(out, syn_with_mss("10.0.0.2:1234", "198.51.100.9:80", 1452));
    let Ok(crate::packet::Frame::Ip(p)) = crate::packet::parse(&out) else {
        panic!()
    };
    assert!(ipv4_header_ok(&out, &p) && l4_ok(&out, &p));
    // A smaller MSS is left alone, and a segment without SYN is not touched.
    let (_, out) = r.send(
        Side::Network,
        &syn_with_mss("198.51.100.9:80", "10.0.0.2:1234", 1400),
    );
    assert_eq!(
        out.unwrap(),
        syn_with_mss("198.51.100.9:80", "10.0.0.2:1234", 1400)
    );
    let ack = PacketSpec::tcp(sa("10.0.0.2:1234"), sa("198.51.100.9:80"), ACK, 101, 1).to_vec();
    let (o, out) = r.send(Side::Host, &ack);
    assert_eq!(out.unwrap(), ack);
    assert_eq!(o.mangle.mss, None, "the rule needs SYN");
    // A port with its own MTU (config `[[port]] mtu`): the egress port's counts.
    r.pl.set_port_mtus(vec![("outside".into(), 1400)]);
    let (_, out) = r.send(
        Side::Host,
        &syn_with_mss("10.0.0.3:1234", "198.51.100.9:80", 1460),
    );
    assert_eq!(
        out.unwrap(),
        syn_with_mss("10.0.0.3:1234", "198.51.100.9:80", 1360)
    );
    let (_, out) = r.send(
        Side::Network,
        &syn_with_mss("198.51.100.9:81", "10.0.0.3:22", 1460),
    );
    assert_eq!(
        out.unwrap(),
        syn_with_mss("198.51.100.9:81", "10.0.0.3:22", 1452)
    );
}

#[test]
fn mangle_hooks_run_in_linux_order_around_nat() {
    // PREROUTING sees the destination before DNAT, FORWARD after it; POSTROUTING runs
    // after the filter accepted. Each step's mark proves the previous one ran.
    let mut r = Rig::new(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         -A PREROUTING -d 192.0.2.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\nCOMMIT\n\
         *mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         -A PREROUTING -d 192.0.2.1/32 -j MARK --set-xmark 0x1/0xffffffff\n\
         -A FORWARD -d 172.17.0.2/32 -m mark --mark 0x1 -j MARK --or-mark 0x2\n\
         -A POSTROUTING -m mark --mark 0x3 -j MARK --or-mark 0x4\nCOMMIT\n\
         *filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A FORWARD -m mark --mark 0x3 -j ACCEPT\nCOMMIT\n",
    );
    let c = sa("203.0.113.5:40000");
    let syn = PacketSpec::tcp(c, sa("192.0.2.1:8080"), SYN, 7, 0).to_vec();
    let (o, out) = r.send(Side::Network, &syn);
    assert_eq!(
        out.unwrap(),
        PacketSpec::tcp(c, sa("172.17.0.2:80"), SYN, 7, 0).to_vec()
    );
    assert_eq!(o.mark, 0x7);
}

#[test]
fn mangle_connmark_lives_on_the_connection() {
    let mut r = Rig::new(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         -A PREROUTING -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff\n\
         -A PREROUTING -m conntrack --ctstate NEW -i inside -j MARK --set-xmark 0x5/0xffffffff\n\
         -A PREROUTING -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff\nCOMMIT\n\
         *filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A FORWARD -m connmark --mark 0x5 -j ACCEPT\nCOMMIT\n",
    );
    let (o, out) = r.send(
        Side::Host,
        &PacketSpec::tcp(sa("10.0.0.2:1234"), sa("198.51.100.9:80"), SYN, 100, 0).to_vec(),
    );
    assert!(out.is_ok(), "{o:?}");
    assert_eq!(o.mark, 5);
    // The reply restores the mark from the connection and passes on the connmark.
    let synack = PacketSpec::tcp(
        sa("198.51.100.9:80"),
        sa("10.0.0.2:1234"),
        SYN | ACK,
        500,
        101,
    )
    .to_vec();
    let (o, out) = r.send(Side::Network, &synack);
    assert!(out.is_ok(), "{o:?}");
    assert_eq!(o.mark, 5);
    // A new connection from outside gets no mark: dropped by the filter.
    let (_, out) = r.send(
        Side::Network,
        &PacketSpec::tcp(sa("198.51.100.9:81"), sa("10.0.0.2:22"), SYN, 1, 0).to_vec(),
    );
    assert_eq!(out, Err(DropReason::Policy));
    assert_eq!(r.pl.table().len(), 1, "the dropped candidate was released");
}

#[test]
fn mangle_drop_policy_drops_and_releases_the_candidate() {
    let mut r =
        Rig::new("*mangle\n:PREROUTING DROP [0:0]\n-A PREROUTING -p udp -j ACCEPT\nCOMMIT\n");
    let (o, out) = r.send(
        Side::Host,
        &PacketSpec::tcp(sa("10.0.0.2:1234"), sa("198.51.100.9:80"), SYN, 100, 0).to_vec(),
    );
    assert_eq!(out, Err(DropReason::Policy));
    assert_eq!(o.verdict, Some(crate::ruleset::Verdict::Drop));
    assert_eq!(r.pl.table().len(), 0);
    let (_, out) = r.send(
        Side::Host,
        &PacketSpec::udp(sa("10.0.0.2:53"), sa("198.51.100.9:53")).to_vec(),
    );
    assert!(out.is_ok());
    assert_eq!(r.pl.table().len(), 1);
}
