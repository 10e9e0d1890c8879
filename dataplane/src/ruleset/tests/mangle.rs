//! The language breadth of issue 18: iptables-restore's lexing (comment lines, chain
//! and table lines with trailing text), the `*mangle` table with MARK / CONNMARK /
//! TCPMSS / DSCP / TOS / TTL / HL / CHECKSUM / NFLOG, the extended stateless matches,
//! their save text, and the matches refused on purpose.

use super::*;
use crate::packet::build::tcp_options;
use crate::packet::mangle::{clamp_mss, fill_checksum, set_tos, set_ttl, TtlOp};

fn mangle(body: &str) -> Ruleset {
    rs(&format!(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
         :OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n{body}\nCOMMIT\n"
    ))
}

fn dump_rules(r: &Ruleset) -> Vec<String> {
    r.dump()
        .lines()
        .filter(|l| l.starts_with("-A"))
        .map(str::to_string)
        .collect()
}

#[test]
fn ruleset_lexing_as_iptables_restore() {
    // Comment lines with lone quotes anywhere, blank lines, text after a chain line's
    // counters (or with no counters), text after a table name: all as iptables-restore.
    let text = "# ufw's generated file: don't edit\n\n*filter\n# it's here too\n\n\
                :INPUT DROP [0:0] -m comment --comment \"it's\"\n:FORWARD ACCEPT junk\n\
                :OUTPUT ACCEPT\n:ufw-user - [0:0]\n\n-A INPUT -j ufw-user\n# a comment's end\nCOMMIT\n# bye\n";
    let r = rs(text);
    assert_eq!(r.rule_count(), 1);
    let r = rs("*filter # trailing text is ignored\n:INPUT ACCEPT [1:2]\nCOMMIT\n");
    assert_eq!(r.rule_count(), 0);
    // iptables-restore (without --counters) does not read a chain line's counters.
    assert_eq!(rs("*filter\n:INPUT DROP [x:y]\nCOMMIT\n").rule_count(), 0);
    // ... but text after COMMIT is an error there, and here.
    assert_eq!(
        err("*filter\n:INPUT DROP\nCOMMIT # x\n"),
        "rules.v4:3:8: unexpected text after COMMIT"
    );
    // -m comment in every table.
    let r = rs("*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m comment --comment \"it's raw\" -j NOTRACK\nCOMMIT\n\
                *mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m comment --comment m -j MARK --set-mark 1\nCOMMIT\n");
    assert_eq!(r.rule_count(), 2);
}

#[test]
fn ruleset_mangle_mark_targets_and_match() {
    let r = mangle(
        "-A PREROUTING -p tcp -j MARK --set-xmark 0x10/0xff\n\
         -A PREROUTING -m mark --mark 0x10/0xff -j MARK --or-mark 0x100\n\
         -A PREROUTING -m mark ! --mark 0x110 -j DROP",
    );
    let p = tcp("10.0.0.1:1000", "10.0.0.2:80", tcp_flags::SYN);
    let meta = PktMeta::new(0xabcd_0000);
    let mut cx = ctx(&p, ENV);
    cx.meta = &meta;
    let mut c = RuleCounters::for_ruleset(&r);
    let drop = r.eval_mangle(MangleChain::Prerouting, &cx, &mut c, &mut |_| {});
    // (0xabcd0000 & !0xff) ^ 0x10 = 0xabcd0010; | 0x100 = 0xabcd0110 != 0x110: DROP.
    assert_eq!(meta.mark(), 0xabcd_0110);
    assert!(drop);
    let meta = PktMeta::new(0);
    cx.meta = &meta;
    assert!(!r.eval_mangle(MangleChain::Prerouting, &cx, &mut c, &mut |_| {}));
    assert_eq!(meta.mark(), 0x110);
    // The other chains are empty: nothing happens.
    let meta = PktMeta::new(7);
    cx.meta = &meta;
    assert!(!r.eval_mangle(MangleChain::Forward, &cx, &mut c, &mut |_| {}));
    assert_eq!(meta.mark(), 7);
    // libxt_MARK's reductions, in iptables-save's form.
    let r = mangle(
        "-A FORWARD -j MARK --set-mark 0x1/0xf\n-A FORWARD -j MARK --and-mark 0xf0\n\
         -A FORWARD -j MARK --xor-mark 3\n-A FORWARD -j MARK --set-mark 5",
    );
    assert_eq!(
        dump_rules(&r),
        [
            "-A FORWARD -j MARK --set-xmark 0x1/0xf",
            "-A FORWARD -j MARK --set-xmark 0x0/0xffffff0f",
            "-A FORWARD -j MARK --set-xmark 0x3/0x0",
            "-A FORWARD -j MARK --set-xmark 0x5/0xffffffff",
        ]
    );
    // -m mark in the filter table too.
    let r = filter("-A FORWARD -m mark --mark 0x5 -j ACCEPT");
    let meta = PktMeta::new(5);
    cx.meta = &meta;
    let mut c = RuleCounters::for_ruleset(&r);
    assert_eq!(
        r.eval_filter(FilterChain::Forward, &cx, &mut c, &mut |_| {}),
        Verdict::Accept
    );
    let meta = PktMeta::new(6);
    cx.meta = &meta;
    assert_eq!(
        r.eval_filter(FilterChain::Forward, &cx, &mut c, &mut |_| {}),
        Verdict::Drop
    );
    assert!(
        r.has_mangle(),
        "a -m mark rule makes the pipeline carry marks"
    );
}

#[test]
fn ruleset_connmark_save_restore() {
    let r = mangle(
        "-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff\n\
         -A PREROUTING -m mark --mark 0x0/0xff -j MARK --set-xmark 0x7/0xff\n\
         -A PREROUTING -j CONNMARK --save-mark --mask 0xff\n\
         -A PREROUTING -m connmark --mark 0x7/0xff -j MARK --or-mark 0x100",
    );
    let p = tcp("10.0.0.1:1000", "10.0.0.2:80", tcp_flags::SYN);
    let mut c = RuleCounters::for_ruleset(&r);
    // A new connection (ctmark 0): the mark is set and saved; -m connmark then matches.
    let meta = PktMeta::new(0);
    meta.attach_ct(0xff00);
    let mut cx = ctx(&p, ENV);
    cx.meta = &meta;
    assert!(!r.eval_mangle(MangleChain::Prerouting, &cx, &mut c, &mut |_| {}));
    assert_eq!(meta.ctmark_changed(), Some(0xff07));
    assert_eq!(meta.mark(), 0x107);
    // A later packet: the mark comes back from the connection.
    let meta = PktMeta::new(0);
    meta.attach_ct(0x0003);
    cx.meta = &meta;
    r.eval_mangle(MangleChain::Prerouting, &cx, &mut c, &mut |_| {});
    assert_eq!(meta.mark(), 3);
    assert_eq!(meta.ctmark_changed(), Some(3));
    // Without a connection: CONNMARK does nothing, -m connmark never matches.
    let meta = PktMeta::new(0);
    cx.meta = &meta;
    r.eval_mangle(MangleChain::Prerouting, &cx, &mut c, &mut |_| {});
    assert_eq!((meta.mark(), meta.ctmark_changed()), (7, None));
    assert_eq!(
        dump_rules(&r)[0],
        "-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff"
    );
    assert_eq!(
        dump_rules(&r)[2],
        "-A PREROUTING -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff"
    );
    assert_eq!(
        dump_rules(&r)[3],
        "-A PREROUTING -m connmark --mark 0x7/0xff -j MARK --set-xmark 0x100/0x100"
    );
}

#[test]
fn ruleset_mangle_header_targets_collect_ops() {
    let r = mangle(
        "-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\n\
         -A FORWARD -p tcp -j TCPMSS --set-mss 1400\n\
         -A FORWARD -j DSCP --set-dscp-class EF\n\
         -A FORWARD -j TTL --ttl-dec 1\n\
         -A POSTROUTING -p udp -j CHECKSUM --checksum-fill",
    );
    let p = tcp("10.0.0.1:1000", "10.0.0.2:80", tcp_flags::SYN);
    let meta = PktMeta::new(0);
    let mut cx = ctx(&p, ENV);
    cx.meta = &meta;
    let mut c = RuleCounters::for_ruleset(&r);
    r.eval_mangle(MangleChain::Forward, &cx, &mut c, &mut |_| {});
    let mut ops = meta.ops();
    // Both TCPMSS rules apply, each only ever lowering: the smaller wins.
    assert_eq!((ops.mss, ops.clamp_pmtu), (Some(1400), true));
    ops.resolve_pmtu(1492, Family::V4);
    assert_eq!((ops.mss, ops.clamp_pmtu), (Some(1400), false));
    let mut ops = meta.ops();
    ops.resolve_pmtu(1400, Family::V4);
    assert_eq!(ops.mss, Some(1360));
    assert_eq!(ops.tos, Some((0xfc, 46 << 2)));
    assert_eq!(ops.ttl, Some(TtlOp::Dec(1)));
    assert!(!ops.checksum_fill);
    assert_eq!(
        dump_rules(&r),
        [
            "-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu",
            "-A FORWARD -p tcp -j TCPMSS --set-mss 1400",
            "-A FORWARD -j DSCP --set-dscp 0x2e",
            "-A FORWARD -j TTL --ttl-dec 1",
            "-A POSTROUTING -p udp -j CHECKSUM --checksum-fill",
        ]
    );
    // TCPMSS is valid in the filter table (old router guides put it in FORWARD).
    let r = filter("-A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1360");
    let meta = PktMeta::new(0);
    cx.meta = &meta;
    let mut c = RuleCounters::for_ruleset(&r);
    r.eval_filter(FilterChain::Forward, &cx, &mut c, &mut |_| {});
    assert_eq!(meta.ops().mss, Some(1360));
    // The TOS byte's compositions.
    let r = mangle("-A OUTPUT -j TOS --set-tos 0x10/0x3f\n-A OUTPUT -j TOS --or-tos 0x01\n-A OUTPUT -j TOS --and-tos 0xfe\n-A OUTPUT -j TOS --xor-tos 0x80");
    let meta = PktMeta::new(0);
    cx.meta = &meta;
    let mut c = RuleCounters::for_ruleset(&r);
    r.eval_mangle(MangleChain::Output, &cx, &mut c, &mut |_| {});
    let (and_not, xor) = meta.ops().tos.unwrap();
    for tos in [0u8, 0xff, 0x2c, 0xc3] {
        let step = |x: u8, m: u8, v: u8| (x & !m) ^ v;
        let want = step(
            step(step(step(tos, 0x3f, 0x10), 0x01, 0x01), 0x01, 0),
            0,
            0x80,
        );
        assert_eq!((tos & !and_not) ^ xor, want, "tos {tos:#x}");
    }
}

#[test]
fn ruleset_mangle_target_errors() {
    let cases = [
        ("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j DSCP --set-dscp 1\nCOMMIT\n",
         "rules.v4:3:15: DSCP is only valid in the mangle table"),
        ("*mangle\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j TCPMSS --set-mss 1400\nCOMMIT\n",
         "rules.v4:3:15: TCPMSS needs -p tcp"),
        ("*mangle\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j MARK\nCOMMIT\n",
         "rules.v4:3:15: MARK needs --set-xmark, --set-mark, --and-mark, --or-mark or --xor-mark"),
        ("*mangle\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j MARK --set-mark 1 --or-mark 2\nCOMMIT\n",
         "rules.v4:3:33: MARK takes one of --set-xmark, --set-mark, --and-mark, --or-mark or --xor-mark"),
        ("*mangle\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j MARK --set-mark x\nCOMMIT\n",
         "rules.v4:3:31: bad mark \"x\""),
        ("*mangle\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j TTL --ttl-inc 0\nCOMMIT\n",
         "rules.v4:3:29: --ttl-inc 0 is a no-op"),
        ("*mangle\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j CONNMARK --set-mark 1 --nfmask 2\nCOMMIT\n",
         "rules.v4:3:37: \"--nfmask\" belongs to --save-mark or --restore-mark"),
        ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m ttl --ttl-eq 300 -j DROP\nCOMMIT\n",
         "rules.v4:3:26: bad ttl \"300\""),
        ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m tcpmss --mss 1:500 -j DROP\nCOMMIT\n",
         "rules.v4:3:10: match \"tcpmss\" needs -p tcp before it"),
        ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m statistic --mode nth --every 3 --packet 3 -j DROP\nCOMMIT\n",
         "rules.v4:3:53: bad --packet (below --every) \"3\""),
        ("*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j TCPMSS --clamp-mss-to-pmtu\nCOMMIT\n",
         "rules.v4:3:32: --clamp-mss-to-pmtu is only valid in FORWARD, OUTPUT and POSTROUTING (not PREROUTING)"),
        ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m mark --mark 1 --mark 2 -j DROP\nCOMMIT\n",
         "rules.v4:3:27: option \"--mark\" given twice"),
    ];
    let mut bad = Vec::new();
    for (text, want) in cases {
        let got = parse_ruleset(text, "rules.v4", Some(Family::V4))
            .map(|_| "loaded".to_string())
            .unwrap_or_else(|e| e.to_string());
        if got != want {
            bad.push(format!("{text}\n  got:  {got}\n  want: {want}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn ruleset_refuses_socket_matches_with_reason() {
    for m in ["owner --uid-owner 0", "socket", "cgroup --path x"] {
        let name = m.split(' ').next().unwrap();
        let e = err(&format!(
            "*filter\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -m {m} -j ACCEPT\nCOMMIT\n"
        ));
        assert!(
            e.starts_with(&format!(
                "rules.v4:3:11: match \"-m {name}\" needs the local socket of the packet"
            )),
            "{e}"
        );
        assert!(
            e.contains("no local sockets") && e.contains("instead"),
            "{e}"
        );
    }
}

fn ext_hits(rule: &str, p: &Pkt) -> bool {
    hits(rule, p, ENV)
}

#[test]
fn ruleset_ext_matches_ipv4() {
    let syn = {
        let (o, n) = tcp_options(Some(1460), Some(7), true, None);
        let o = o[..n].to_vec();
        mk(
            PacketSpec::tcp(sa("10.0.0.5:1000"), sa("10.0.0.9:80"), tcp_flags::SYN, 1, 0)
                .tcp_options(Box::leak(o.into_boxed_slice())),
        )
    };
    let t = &syn;
    assert!(ext_hits("-m ttl --ttl-eq 64", t));
    assert!(!ext_hits("-m ttl ! --ttl-eq 64", t));
    assert!(ext_hits("-m ttl --ttl-gt 63", t));
    assert!(!ext_hits("-m ttl --ttl-lt 64", t));
    assert!(ext_hits("-m tos --tos 0x00/0xff", t));
    assert!(ext_hits("-m tos --tos Normal-Service", t));
    assert!(ext_hits("-m dscp --dscp 0", t));
    assert!(!ext_hits("-m dscp --dscp-class EF", t));
    assert!(ext_hits("-m ecn --ecn-ip-ect 0", t));
    assert!(ext_hits("-p tcp -m ecn ! --ecn-tcp-cwr", t));
    let len = t.p.ip_len();
    assert!(ext_hits(&format!("-m length --length {len}"), t));
    assert!(ext_hits(
        &format!("-m length --length 0:{}", len - 1 + 1),
        t
    ));
    assert!(!ext_hits(
        &format!("-m length --length {}:65535", len + 1),
        t
    ));
    assert!(ext_hits("-m pkttype --pkt-type unicast", t));
    assert!(!ext_hits("-m pkttype --pkt-type broadcast", t));
    assert!(ext_hits("-m iprange --src-range 10.0.0.1-10.0.0.5", t));
    assert!(!ext_hits("-m iprange --src-range 10.0.0.6-10.0.0.255", t));
    assert!(ext_hits("-m iprange ! --dst-range 10.0.1.0-10.0.1.255", t));
    assert!(ext_hits("-p tcp -m tcpmss --mss 1400:1500", t));
    assert!(!ext_hits("-p tcp -m tcpmss --mss 1:1400", t));
    // Broadcast / multicast from the destination MAC.
    let mut b = udp("10.0.0.1:68", "255.255.255.255:67");
    b.f[..6].copy_from_slice(&[0xff; 6]);
    assert!(ext_hits("-m pkttype --pkt-type broadcast", &b));
    b.f[..6].copy_from_slice(&[0x01, 0, 0x5e, 0, 0, 1]);
    assert!(ext_hits("-m pkttype --pkt-type multicast", &b));
    // ESP SPI (protocol 50).
    let mut e = udp("10.0.0.1:1", "10.0.0.2:2");
    let l3 = e.p.l3_off as usize;
    e.f[l3 + 9] = 50;
    let Ok(Frame::Ip(pp)) = packet::parse(&e.f) else {
        panic!()
    };
    e.p = pp;
    let l4 = e.p.l4_off as usize;
    e.f[l4..l4 + 4].copy_from_slice(&0x1234u32.to_be_bytes());
    assert!(ext_hits("-p esp -m esp --espspi 0x1000:0x2000", &e));
    assert!(!ext_hits("-p esp -m esp --espspi 1", &e));
    // Save text round-trips.
    let r = filter(
        "-A FORWARD -m ttl --ttl-lt 5 -j DROP\n-A FORWARD -m tos --tos Minimize-Delay -j DROP\n\
         -A FORWARD -m iprange --src-range 10.0.0.1-10.0.0.9 -j DROP\n\
         -A FORWARD -m statistic --mode random --probability 0.25 -j DROP\n\
         -A FORWARD -m statistic --mode nth --every 3 --packet 1 -j DROP\n\
         -A FORWARD -m length ! --length 100:200 -j DROP\n\
         -A FORWARD -p tcp -m ecn --ecn-tcp-ece -j DROP",
    );
    let d = dump_rules(&r);
    assert_eq!(
        d,
        [
            "-A FORWARD -m ttl --ttl-lt 5 -j DROP",
            "-A FORWARD -m tos --tos 0x10/0x3f -j DROP",
            "-A FORWARD -m iprange --src-range 10.0.0.1-10.0.0.9 -j DROP",
            "-A FORWARD -m statistic --mode random --probability 0.25000000000 -j DROP",
            "-A FORWARD -m statistic --mode nth --every 3 --packet 1 -j DROP",
            "-A FORWARD -m length ! --length 100:200 -j DROP",
            "-A FORWARD -p tcp -m ecn --ecn-tcp-ece -j DROP",
        ]
    );
    let again = rs(&format!(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n{}\nCOMMIT\n",
        d.join("\n")
    ));
    assert_eq!(dump_rules(&again), d);
}

#[test]
fn ruleset_ext_matches_ipv6() {
    let r6 = |body: &str| {
        parse_ruleset(
            &format!("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD {body} -j ACCEPT\nCOMMIT\n"),
            "rules.v6",
            Some(Family::V6),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let p = icmp("fe80::1", "ff02::1", 135, 0);
    let hit = |body: &str| fwd(&r6(body), &p, ENV) == Verdict::Accept;
    assert!(hit("-p ipv6-icmp -m hl --hl-eq 64"));
    assert!(!hit("-p ipv6-icmp -m hl --hl-lt 64"));
    assert!(hit("-m hl --hl-gt 1"));
    assert!(!hit("-m rt --rt-type 0"), "no routing header");
    assert!(!hit("-m frag --fragfirst"), "not a fragment");
    assert!(hit("-m iprange --src-range fe80::-fe80::ffff"));
    // A routing header (type 0, 1 segment left) before UDP.
    let mut f = udp("[2001:db8::1]:1", "[2001:db8::2]:2").f;
    let l3 = 14;
    let rh = [17u8, 2, 0, 1, 0, 0, 0, 0];
    let mut body = rh.to_vec();
    body.extend_from_slice(&[0u8; 16]);
    let plen = u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]) + 24;
    f[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
    f[l3 + 6] = 43;
    let tail = f.split_off(l3 + 40);
    f.extend_from_slice(&body);
    f.extend_from_slice(&tail);
    let Ok(Frame::Ip(pp)) = packet::parse(&f) else {
        panic!("rh frame")
    };
    let q = Pkt { f, p: pp };
    let hit = |body: &str| fwd(&r6(body), &q, ENV) == Verdict::Accept;
    assert!(hit("-m rt --rt-type 0"));
    assert!(hit("-m rt --rt-type 0 --rt-segsleft 1"));
    assert!(!hit("-m rt --rt-type 0 --rt-segsleft 0"));
    assert!(hit("-m rt ! --rt-type 2"));
    assert!(hit("-m rt --rt-len 24"));
    // HL in mangle, on IPv6.
    let r = parse_ruleset(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j HL --hl-set 64\nCOMMIT\n",
        "rules.v6",
        Some(Family::V6),
    )
    .unwrap();
    let meta = PktMeta::new(0);
    let mut cx = ctx(&q, ENV);
    cx.meta = &meta;
    let mut c = RuleCounters::for_ruleset(&r);
    r.eval_mangle(MangleChain::Prerouting, &cx, &mut c, &mut |_| {});
    assert_eq!(meta.ops().ttl, Some(TtlOp::Set(64)));
}

#[test]
fn ruleset_statistic_is_per_worker_and_deterministic_for_nth() {
    let r = filter("-A FORWARD -m statistic --mode nth --every 3 --packet 0 -j ACCEPT");
    let p = udp("10.0.0.1:1", "10.0.0.2:2");
    let mut c = RuleCounters::for_ruleset(&r);
    let got: Vec<bool> = (0..9)
        .map(|_| {
            r.eval_filter(FilterChain::Forward, &ctx(&p, ENV), &mut c, &mut |_| {})
                == Verdict::Accept
        })
        .collect();
    // xt_statistic: the counter steps 1, 2, 0, 1, 2, 0, ...: every third packet matches.
    assert_eq!(
        got,
        [false, false, true, false, false, true, false, false, true]
    );
    // A second worker has its own counter.
    let mut c2 = RuleCounters::for_ruleset(&r);
    assert_eq!(
        r.eval_filter(FilterChain::Forward, &ctx(&p, ENV), &mut c2, &mut |_| {}),
        Verdict::Drop
    );
    // Random: about the probability over many packets (a property, not a timing).
    let r = filter("-A FORWARD -m statistic --mode random --probability 0.25 -j ACCEPT");
    let mut c = RuleCounters::for_ruleset(&r);
    let n = (0..20_000)
        .filter(|i| {
            let e = Env {
                now: *i as u64,
                ..ENV
            };
            r.eval_filter(FilterChain::Forward, &ctx(&p, e), &mut c, &mut |_| {}) == Verdict::Accept
        })
        .count();
    assert!((4_000..6_000).contains(&n), "{n} of 20000 at p=0.25");
}

#[test]
fn ruleset_nflog_goes_to_the_log_stream() {
    let r = filter(
        "-A FORWARD -j NFLOG --nflog-prefix \"drop it\" --nflog-group 5\n-A FORWARD -j ACCEPT",
    );
    let p = udp("10.0.0.1:1", "10.0.0.2:2");
    let mut c = RuleCounters::for_ruleset(&r);
    let mut seen = Vec::new();
    let v = r.eval_filter(FilterChain::Forward, &ctx(&p, ENV), &mut c, &mut |e| {
        seen.push((e.prefix.to_string(), e.nflog_group))
    });
    assert_eq!(v, Verdict::Accept, "NFLOG is not terminal");
    assert_eq!(seen, [("drop it".to_string(), Some(5))]);
    assert_eq!(
        dump_rules(&r)[0],
        "-A FORWARD -j NFLOG --nflog-prefix \"drop it\" --nflog-group 5"
    );
}

#[test]
fn packet_mangle_edits_keep_checksums_right() {
    let (o, n) = tcp_options(Some(1460), Some(7), true, Some((1, 2)));
    let o = o[..n].to_vec();
    let mut t = mk(
        PacketSpec::tcp(sa("10.0.0.5:1000"), sa("10.0.0.9:80"), tcp_flags::SYN, 1, 0)
            .tcp_options(Box::leak(o.into_boxed_slice())),
    );
    assert_eq!(clamp_mss(&mut t.f, &t.p, 1400), Some(1400));
    assert_eq!(set_ttl(&mut t.f, &t.p, TtlOp::Dec(1)), Some(63));
    assert_eq!(set_tos(&mut t.f, &t.p, 0xfc, 46 << 2), Some(0xb8));
    let Ok(Frame::Ip(q)) = packet::parse(&t.f) else {
        panic!()
    };
    assert_eq!(q.l4, {
        let L4::Tcp(mut x) = t.p.l4 else { panic!() };
        x.options.mss = Some(1400);
        L4::Tcp(x)
    });
    assert!(checksum::ipv4_header_ok(&t.f, &q));
    assert!(checksum::l4_ok(&t.f, &q));
    assert_eq!(q.ttl, 63);
    // Never raised.
    assert_eq!(clamp_mss(&mut t.f, &q, 1460), None);
    // An MSS option at an odd offset (after one NOP): still a right checksum.
    let odd = [1u8, 2, 4, 0x05, 0xb4, 1, 1, 1];
    let mut u = mk(
        PacketSpec::tcp(sa("10.0.0.5:1000"), sa("10.0.0.9:80"), tcp_flags::SYN, 1, 0)
            .tcp_options(&odd),
    );
    assert_eq!(clamp_mss(&mut u.f, &u.p, 1300), Some(1300));
    let Ok(Frame::Ip(q)) = packet::parse(&u.f) else {
        panic!()
    };
    assert!(checksum::l4_ok(&u.f, &q));
    let L4::Tcp(x) = q.l4 else { panic!() };
    assert_eq!(x.options.mss, Some(1300));
    // checksum-fill over a zeroed checksum; IPv6 hop limit.
    let mut w = udp("[2001:db8::1]:1", "[2001:db8::2]:2");
    let l4 = w.p.l4_off as usize;
    w.f[l4 + 6] = 0;
    w.f[l4 + 7] = 0;
    assert!(fill_checksum(&mut w.f, &w.p));
    assert!(checksum::l4_ok(&w.f, &w.p));
    assert_eq!(set_ttl(&mut w.f, &w.p, TtlOp::Inc(200)), Some(255));
    assert_eq!(set_tos(&mut w.f, &w.p, 0xff, 0xa5), Some(0xa5));
    let Ok(Frame::Ip(q)) = packet::parse(&w.f) else {
        panic!()
    };
    assert_eq!(q.ttl, 255);
    assert_eq!((w.f[14] >> 4, (w.f[14] << 4) | (w.f[15] >> 4)), (6, 0xa5));
}
