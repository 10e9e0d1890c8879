#!/usr/bin/env python3
"""Write small deterministic pcaps for the CONNTRACK.md section 7 cases.

    gen_captures.py OUTDIR            # writes OUTDIR/*.pcap and OUTDIR/manifest.json

Every capture is replayed in its own fresh namespace by linux_oracle.py, so
cases never interfere.  Timestamps are fixed (BASE + offsets), addresses and
MACs are the ones CONNTRACK.md uses.  The manifest lists, per capture, the
oracle options it needs and the per-packet expectation that CONNTRACK.md
states ("doc"), as tokens:

    NEW/O  EST/O  EST/R  REL/O  REL/R  INV  UNTR  DROP (never reaches conntrack)  ?  (not stated)

Requires scapy (python3-scapy).
"""

import os
import sys

from scapy.all import (ESP, ICMP, IP, TCP, UDP, Ether, ICMPv6DestUnreach, ICMPv6EchoReply,
                       ICMPv6EchoRequest, ICMPv6MLDone, ICMPv6MLQuery, ICMPv6MLReport,
                       ICMPv6MLReport2, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_RS,
                       ICMPv6NIQueryNOOP, ICMPv6NIReplyNOOP, ICMPv6PacketTooBig, ICMPv6Unknown,
                       IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, Raw, RouterAlert, ARP,
                       ICMPerror, raw)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle_common  # noqa: E402

BASE = 1700000000.0
MAC_C = "02:00:00:00:00:01"
MAC_S = "02:00:00:00:00:02"
C, S, R, X = "10.0.0.1", "10.0.0.2", "10.0.0.254", "10.0.0.99"
C6, S6, R6 = "fd00::1", "fd00::2", "fd00::fe"
CP, SP = 40000, 80
WIN = 64240

CAPTURES = []


def eth(src_ip):
    """Frames from the client side carry MAC_C as source, everything else MAC_S."""
    if src_ip in (C, C6):
        return Ether(src=MAC_C, dst=MAC_S)
    return Ether(src=MAC_S, dst=MAC_C)


def ip4(src, dst, **kw):
    kw.setdefault("ttl", 64)
    kw.setdefault("id", 1)
    return eth(src) / IP(src=src, dst=dst, **kw)


def ip6(src, dst, **kw):
    kw.setdefault("hlim", 64)
    return eth(src) / IPv6(src=src, dst=dst, **kw)


def tcp(src, dst, sport, dport, flags, seq=0, ack=0, win=WIN, load=b"", v6=False, **kw):
    l3 = ip6(src, dst) if v6 else ip4(src, dst)
    p = l3 / TCP(sport=sport, dport=dport, flags=flags, seq=seq % 2**32, ack=ack % 2**32,
                 window=win, options=[], **kw)
    if load:
        p = p / Raw(load)
    return p


def c2s(flags, seq=0, ack=0, **kw):
    return tcp(C, S, CP, SP, flags, seq, ack, **kw)


def s2c(flags, seq=0, ack=0, **kw):
    return tcp(S, C, SP, CP, flags, seq, ack, **kw)


def handshake(v6=False, sport=CP, dport=SP):
    c, s = (C6, S6) if v6 else (C, S)
    return [
        (tcp(c, s, sport, dport, "S", 1000, 0, v6=v6), "NEW/O"),
        (tcp(s, c, dport, sport, "SA", 5000, 1001, v6=v6), "EST/R"),
        (tcp(c, s, sport, dport, "A", 1001, 5001, v6=v6), "EST/O"),
    ]


def udp(src, dst, sport, dport, load=b"q", v6=False, **kw):
    l3 = ip6(src, dst) if v6 else ip4(src, dst)
    return l3 / UDP(sport=sport, dport=dport, **kw) / Raw(load)


def bad_l4_checksum(pkt, layer):
    """Return pkt with LAYER's checksum set to a value that is certainly wrong."""
    good = Ether(raw(pkt))[layer].chksum
    p = pkt.copy()
    p[layer].chksum = good ^ 0x5555
    return p


def frag_payload(pkt):
    """Bytes of an IP packet (no Ethernet) to embed in an ICMP error."""
    return raw(pkt[IP] if IP in pkt else pkt[IPv6])


def ni(type_, code, body):
    """ICMPv6 node information query (139) / reply (140); body starts with qtype+flags."""
    return ICMPv6Unknown(type=type_, code=code, msgbody=body)


def icmp_err(src, dst, type_, code, inner, **kw):
    """ICMPv4 error from SRC to DST quoting INNER (a scapy Ether/IP packet)."""
    return ip4(src, dst) / ICMP(type=type_, code=code, **kw) / Raw(frag_payload(inner)[:28 + 20])


def add(name, case, title, pkts, times=None, step=0.01, opts=None, long=False, note=None, timing=False):
    """pkts: list of (packet, doc_token).  times: explicit offsets (seconds)."""
    frames, doc = [], []
    for i, (p, tok) in enumerate(pkts):
        p = p.copy()
        t = times[i] if times is not None else i * step
        p.time = BASE + t
        frames.append(p)
        doc.append(tok)
    opts = opts or {}
    CAPTURES.append({
        "name": name, "case": case, "title": title, "file": f"{name}.pcap",
        "packets": len(frames),
        "helper_ftp_port": opts.get("helper_ftp_port", []),
        "notrack": opts.get("notrack", []),
        "sysctl": opts.get("sysctl", []),
        "long": long, "timing": timing or long, "doc": doc, "note": note,
        "_frames": frames,
    })


# ---------------------------------------------------------------------------
# TCP
# ---------------------------------------------------------------------------

def tcp_cases():
    H = handshake
    add("t01_handshake", "T1", "three-way handshake", H())
    add("t02_data", "T2", "handshake, 100 bytes data, ACK", H() + [
        (c2s("PA", 1001, 5001, load=b"x" * 100), "EST/O"),
        (s2c("A", 5001, 1101), "EST/R")])
    t3 = H() + [
        (c2s("FA", 1001, 5001), "EST/O"),
        (s2c("A", 5001, 1002), "EST/R"),
        (s2c("FA", 5001, 1002), "EST/R"),
        (c2s("A", 1002, 5002), "EST/O")]
    add("t03_close", "T3", "handshake then orderly close", t3)
    add("t04_reopen_tw", "T4", "T3 then a new SYN on the same ports (TIME_WAIT reopen)",
        t3 + [(c2s("S", 90000), "NEW/O")])
    add("t05_syn_retrans", "T5", "SYN, the same SYN again 10 s later",
        [(c2s("S", 1000), "NEW/O"), (c2s("S", 1000), "NEW/O")], times=[0, 10])
    add("t05b_syn_retrans_no_refresh", "T5",
        "syn_sent timeout 3 s: SYN t=0, SYN t=2, SYN/ACK t=3.5 (entry must have expired: the retransmit does not refresh)",
        [(c2s("S", 1000), "NEW/O"), (c2s("S", 1000), "NEW/O"), (s2c("SA", 5000, 1001), "INV")],
        times=[0, 2, 3.5], timing=True, opts={"sysctl": ["nf_conntrack_tcp_timeout_syn_sent=3"]})
    add("t06_rst_unreplied", "T6", "SYN, RST/ACK from server, SYN again", [
        (c2s("S", 1000), "NEW/O"), (s2c("RA", 0, 1001), "EST/R"), (c2s("S", 1000), "NEW/O")])
    add("t07_bad_synack", "T7", "SYN, SYN/ACK with the wrong ack", [
        (c2s("S", 1000), "NEW/O"), (s2c("SA", 5000, 1002), "INV")])
    add("t08_loose_pickup", "T8", "mid-stream pickup with tcp_loose=1", [
        (c2s("A", 7000, 9000), "NEW/O"), (s2c("A", 9000, 7000), "EST/R"), (c2s("A", 7000, 9000), "EST/O")])
    add("t09_loose0", "T9", "mid-stream ACK with tcp_loose=0", [(c2s("A", 7000, 9000), "INV")],
        opts={"sysctl": ["nf_conntrack_tcp_loose=0"]})
    add("t10_bad_first", "T10", "first packet SYN/ACK; FIN/ACK; RST (separate flows)", [
        (tcp(C, S, 40001, SP, "SA", 1000, 1), "INV"),
        (tcp(C, S, 40002, SP, "FA", 1000, 1), "INV"),
        (tcp(C, S, 40003, SP, "R", 1000, 0), "INV")])
    add("t11_bad_flags", "T11", "first packets with flags none, F, SF, SR, FPU, SAU (separate flows)", [
        (tcp(C, S, 40001 + i, SP, fl, 1000, 1 if "A" in fl else 0), "INV")
        for i, fl in enumerate(["", "F", "SF", "SR", "FPU", "SAU"])])
    add("t12_syn_ece_cwr", "T12", "SYN+ECE+CWR", [(c2s("SEC", 1000), "NEW/O")])
    add("t13_ack_urg_psh", "T13", "handshake, ACK+URG+PSH with 10 bytes", H() + [
        (c2s("PAU", 1001, 5001, load=b"u" * 10), "EST/O")])
    # T14: malformed TCP headers
    p_doff4 = tcp(C, S, 40001, SP, "S", 1000, dataofs=4)
    p_doff15 = tcp(C, S, 40002, SP, "S", 1000, dataofs=15)
    p12 = ip4(C, S) / Raw(raw(TCP(sport=40003, dport=SP, flags="S", seq=1000, window=WIN, options=[]))[:12])
    p12[IP].proto = 6
    add("t14_bad_doff", "T14", "doff=4; doff=15 with 20 bytes; 12-byte TCP segment",
        [(p_doff4, "INV"), (p_doff15, "INV"), (p12, "INV")])
    badsyn = bad_l4_checksum(c2s("S", 1000), TCP)
    add("t15_bad_csum", "T15", "SYN with a wrong TCP checksum", [(badsyn, "INV")])
    add("t15b_bad_csum_nocheck", "T15", "SYN with a wrong TCP checksum, nf_conntrack_checksum=0",
        [(badsyn, "NEW/O")], opts={"sysctl": ["nf_conntrack_checksum=0"]})
    t16 = H() + [(c2s("A", 1001 + 200000, 5001, load=b"z" * 10), "INV")]
    add("t16_out_of_window", "T16", "handshake, ACK far beyond the window", t16)
    t16b = H() + [(c2s("A", 1001 + 200000, 5001, load=b"z" * 10), "EST/O")]
    add("t16b_out_of_window_liberal", "T16", "as T16 with tcp_be_liberal=1", t16b,
        opts={"sysctl": ["nf_conntrack_tcp_be_liberal=1"]})
    add("t17_ack_unseen", "T17", "handshake, server ACKs data never sent", H() + [
        (s2c("A", 5001, 1501), "INV")])
    add("t18_old_retrans", "T18", "handshake, ACK with seq 70000 below", H() + [
        (c2s("A", 1001 - 70000, 5001), "EST/O")])
    add("t19_rst_reopen", "T19", "handshake, client RST, client SYN", H() + [
        (c2s("R", 1001), "EST/O"), (c2s("S", 3000), "NEW/O")])
    add("t20_rst_inwindow", "T20", "handshake, server RST in window (not exact), client ACK ack=5011", H() + [
        (s2c("R", 5011), "EST/R"), (c2s("A", 1001, 5011), "EST/O")])
    add("t21_rst_below_maxack", "T21", "handshake, client RST seq=900", H() + [(c2s("R", 900), "INV")])
    add("t21b_rst_below_maxack_ignore", "T21", "as T21 with tcp_ignore_invalid_rst=1",
        H() + [(c2s("R", 900), "EST/O")], opts={"sysctl": ["nf_conntrack_tcp_ignore_invalid_rst=1"]})
    add("t22_rst_after_data", "T22", "handshake, 100 bytes, RST at the end of the data", H() + [
        (c2s("PA", 1001, 5001, load=b"d" * 100), "EST/O"), (c2s("R", 1101), "EST/O")])
    add("t23_rst_closing", "T23", "handshake, client FIN, server RST with any seq", H() + [
        (c2s("FA", 1001, 5001), "EST/O"), (s2c("R", 123456), "EST/R")])
    add("t24_syn_resync", "T24", "handshake, new SYN in ES, SYN/ACK, ACK (resync)", H() + [
        (c2s("S", 77000), "EST/O"), (s2c("SA", 88000, 77001), "EST/R"), (c2s("A", 77001, 88001), "EST/O")])
    add("t25_rst_then_syn", "T25", "handshake, server RST exact, client SYN, SYN/ACK, ACK", H() + [
        (s2c("R", 5001), "EST/R"), (c2s("S", 77000), "EST/O"), (s2c("SA", 88000, 77001), "EST/R"),
        (c2s("A", 77001, 88001), "EST/O")])
    add("t26_dup_acks", "T26", "handshake, the final ACK 3 more times, then new data", H() + [
        (c2s("A", 1001, 5001), "EST/O"), (c2s("A", 1001, 5001), "EST/O"), (c2s("A", 1001, 5001), "EST/O"),
        (c2s("PA", 1001, 5001, load=b"n" * 10), "EST/O")])
    add("t27_zero_window", "T27", "handshake, server zero window, window update", H() + [
        (s2c("A", 5001, 1001, win=0), "EST/R"), (s2c("A", 5001, 1001), "EST/R")])
    add("t28_simultaneous_open", "T28", "simultaneous open", [
        (c2s("S", 1000), "NEW/O"), (s2c("S", 5000), "EST/R"), (c2s("SA", 1000, 5001), "EST/O"),
        (s2c("SA", 5000, 1001), "EST/R"), (c2s("A", 1001, 5001), "EST/O")])
    add("t29_syn_payload", "T29", "SYN with 40 bytes payload, SYN/ACK acking it", [
        (c2s("S", 1000, load=b"p" * 40), "NEW/O"), (s2c("SA", 5000, 1041), "EST/R")])
    add("t30_synack_retrans", "T30",
        "SYN, SYN/ACK (a filter would drop it; the oracle forwards it, conntrack state is the same), SYN again", [
            (c2s("S", 1000), "NEW/O"), (s2c("SA", 5000, 1001), "EST/R"), (c2s("S", 1000), "EST/O")])


# ---------------------------------------------------------------------------
# UDP
# ---------------------------------------------------------------------------

def udp_cases():
    q = lambda: udp(C, S, 5353, 53)
    r = lambda: udp(S, C, 53, 5353)
    add("u01_dns_stream", "U1", "C->S, S->C at 0.1 s, C->S at 3 s",
        [(q(), "NEW/O"), (r(), "EST/R"), (q(), "EST/O")], times=[0, 0.1, 3])
    add("u02_dns_quick", "U2", "C->S, S->C at 0.1 s, C->S at 1.5 s",
        [(q(), "NEW/O"), (r(), "EST/R"), (q(), "EST/O")], times=[0, 0.1, 1.5])
    add("u03_expiry", "U3", "C->S at 0; S->C at 31 s (default 30 s timeout)",
        [(q(), "NEW/O"), (r(), "NEW/O")], times=[0, 31], long=True)
    add("u03b_expiry_short", "U3", "C->S at 0; S->C at 4 s with nf_conntrack_udp_timeout=3",
        [(q(), "NEW/O"), (r(), "NEW/O")], times=[0, 4], timing=True, opts={"sysctl": ["nf_conntrack_udp_timeout=3"]})
    # U4: malformed UDP
    a = ip4(C, S) / UDP(sport=5001, dport=53, len=100) / Raw(b"x" * 12)
    b = ip4(C, S) / UDP(sport=5002, dport=53, len=7) / Raw(b"x" * 12)
    c6 = ip4(C, S) / Raw(raw(UDP(sport=5003, dport=53))[:6])
    c6[IP].proto = 17
    add("u04_bad_udp", "U4", "len field 100 with 20 bytes; len field 7; 6-byte UDP header",
        [(a, "INV"), (b, "INV"), (c6, "INV")])
    z4 = udp(C, S, 5001, 53, chksum=0)
    z6 = udp(C6, S6, 5002, 53, v6=True, chksum=0)
    bad = bad_l4_checksum(udp(C, S, 5003, 53), UDP)
    add("u05_udp_csum", "U5", "checksum 0 over IPv4; checksum 0 over IPv6; wrong non-zero checksum",
        [(z4, "NEW/O"), (z6, "NEW/O"), (bad, "INV")])
    add("u05b_udp_csum_nocheck", "U5", "wrong non-zero UDP checksum with nf_conntrack_checksum=0",
        [(bad, "NEW/O")], opts={"sysctl": ["nf_conntrack_checksum=0"]})
    add("u06_reply_first", "U6", "S:53->C:5353 with no prior traffic", [(r(), "NEW/O")])


# ---------------------------------------------------------------------------
# ICMP / ICMPv6
# ---------------------------------------------------------------------------

def icmp_cases():
    echo = lambda seq=1, id_=7: ip4(C, S) / ICMP(type=8, id=id_, seq=seq) / Raw(b"ping")
    reply = lambda seq=1, id_=7: ip4(S, C) / ICMP(type=0, id=id_, seq=seq) / Raw(b"ping")
    add("i01_echo", "I1", "echo, reply, echo, reply twice", [
        (echo(1), "NEW/O"), (reply(1), "EST/R"), (echo(2), "EST/O"), (reply(2), "EST/R"), (reply(2), "EST/R")])
    add("i02_reply_first", "I2", "echo-reply with no request", [(reply(), "INV")])
    add("i03_reply_wrong_id", "I3", "echo id 7, reply id 8", [(echo(), "NEW/O"), (reply(id_=8), "INV")])
    ts_req = ip4(C, S) / ICMP(type=13, id=9, seq=1, ts_ori=1000, ts_rx=0, ts_tx=0)
    ts_rep = ip4(S, C) / ICMP(type=14, id=9, seq=1, ts_ori=1000, ts_rx=2000, ts_tx=2000)
    am_req = ip4(C, S) / ICMP(type=17, id=10, seq=1) / Raw(b"\0" * 4)
    am_rep = ip4(S, C) / ICMP(type=18, id=10, seq=1) / Raw(b"\xff\xff\xff\0")
    add("i04_ts_mask", "I4", "timestamp 13/14; address mask 17/18",
        [(ts_req, "NEW/O"), (ts_rep, "EST/R"), (am_req, "NEW/O"), (am_rep, "EST/R")])
    add("i05_bad_types", "I5", "ICMP types 9, 10, 19, 42", [
        (ip4(C, S) / ICMP(type=t, code=0) / Raw(b"\0" * 8), "INV") for t in (9, 10, 19, 42)])
    uq = udp(C, S, 5353, 53)
    add("i06_port_unreach", "I6", "C->S UDP; S->C port unreachable quoting it", [
        (uq, "NEW/O"), (icmp_err(S, C, 3, 3, uq), "REL/R")])
    add("i07_ttl_exceeded", "I7", "C->S UDP; R->C time exceeded quoting it", [
        (uq, "NEW/O"), (icmp_err(R, C, 11, 0, uq), "REL/R")])
    add("i08_err_wrong_dst", "I8", "C->S UDP; R->X time exceeded quoting it (outer dst != C)", [
        (uq, "NEW/O"), (icmp_err(R, X, 11, 0, uq), "INV")])
    add("i09_err_unknown_flow", "I9", "R->C unreachable quoting a UDP flow never seen", [
        (icmp_err(R, C, 3, 3, udp(C, S, 6000, 7000)), "INV")])
    t_inner = c2s("A", 1001, 5001)
    add("i10_frag_needed_tcp", "I10", "handshake; R->C frag-needed quoting C->S TCP", handshake() + [
        (icmp_err(R, C, 3, 4, t_inner, nexthopmtu=1400), "REL/R"),
        (c2s("PA", 1001, 5001, load=b"after"), "EST/O")])
    add("i11_err_about_echo", "I11", "echo; R->C time exceeded quoting it", [
        (echo(), "NEW/O"), (icmp_err(R, C, 11, 0, echo()), "REL/R")])
    inner_frag = ip4(C, S, frag=100) / UDP(sport=5353, dport=53) / Raw(b"q")
    add("i12_err_inner_fragment", "I12", "C->S UDP; R->C unreachable quoting a non-first fragment", [
        (uq, "NEW/O"), (icmp_err(R, C, 3, 3, inner_frag), "INV")])
    rq = udp(S, C, 53, 5353)
    add("i13_err_original_dir", "I13", "C->S UDP; S->C UDP; C->S unreachable quoting the S->C UDP", [
        (uq, "NEW/O"), (rq, "EST/R"), (icmp_err(C, S, 3, 3, rq), "REL/O")])
    add("i14_bad_icmp_csum", "I14", "echo request with a wrong ICMP checksum", [
        (bad_l4_checksum(echo(), ICMP), "INV")])
    inner_err = icmp_err(C, S, 3, 3, rq)
    add("i15_err_in_err", "I15", "C->S UDP; S->C UDP; S->C unreachable quoting C->S unreachable", [
        (uq, "NEW/O"), (rq, "EST/R"), (ip4(S, C) / ICMP(type=3, code=3) / Raw(frag_payload(inner_err)[:56]), "INV")])
    p16 = ip6(C6, S6, nh=1) / Raw(raw(ICMP(type=8, id=7, seq=1) / Raw(b"ping")))
    add("i16_icmp_in_ipv6", "I16", "IPv6 packet with next header 1 (ICMPv4)", [(p16, "INV")])

    # ICMPv6
    ra = IPv6ExtHdrHopByHop(options=[RouterAlert()])
    v1 = [
        ip6(C6, "ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=S6),
        ip6(S6, C6, hlim=255) / ICMPv6ND_NA(tgt=S6, R=0, S=1, O=1),
        ip6(C6, "ff02::2", hlim=255) / ICMPv6ND_RS(),
        ip6(S6, "ff02::1", hlim=255) / ICMPv6ND_RA(),
        eth(S6) / IPv6(src="fe80::2", dst="ff02::1", hlim=1) / ra / ICMPv6MLQuery(),
        eth(C6) / IPv6(src="fe80::1", dst="ff02::1:ff00:1", hlim=1) / ra / ICMPv6MLReport(mladdr="ff02::1:ff00:1"),
        eth(C6) / IPv6(src="fe80::1", dst="ff02::2", hlim=1) / ra / ICMPv6MLDone(mladdr="ff02::1:ff00:1"),
        eth(C6) / IPv6(src="fe80::1", dst="ff02::16", hlim=1) / ra / ICMPv6MLReport2(),
    ]
    add("v01_nd_mld", "V1", "NS, NA, RS, RA, MLD query/report/done, MLDv2 report", [(p, "UNTR") for p in v1])
    add("v02_echo_ni", "V2", "ICMPv6 echo 128/129; node information 139/140", [
        (ip6(C6, S6) / ICMPv6EchoRequest(id=7, seq=1, data=b"ping"), "NEW/O"),
        (ip6(S6, C6) / ICMPv6EchoReply(id=7, seq=1, data=b"ping"), "EST/R"),
        (ip6(C6, S6) / ni(139, 0, b"\0\x02\0\0" + b"12345678" + bytes(16)), "NEW/O"),
        (ip6(S6, C6) / ni(140, 0, b"\0\x02\0\0" + b"12345678" + b"\0\0\0\0\x01s\0"), "EST/R")])
    add("v02b_ni_code_mismatch", "V2",
        "node information query with code 1 (subject is a name), reply code 0 (success): code is part of the tuple",
        [(ip6(C6, S6) / ni(139, 1, b"\0\x02\0\0" + b"12345678" + b"\x01s\0"), "NEW/O"),
         (ip6(S6, C6) / ni(140, 0, b"\0\x02\0\0" + b"12345678" + b"\0\0\0\0\x01s\0"), "INV")])
    add("v03_bad_types", "V3", "ICMPv6 129 with no request; 137 redirect; 138", [
        (ip6(S6, C6) / ICMPv6EchoReply(id=7, seq=1), "INV"),
        (ip6(S6, C6, hlim=255) / ICMPv6Unknown(type=137, code=0, msgbody=b"\0" * 36), "INV"),
        (ip6(S6, C6) / ICMPv6Unknown(type=138, code=0, msgbody=b"\0" * 12), "INV")])
    inner6 = tcp(C6, S6, CP, SP, "A", 1001, 5001, v6=True)
    add("v04_ptb_tcp6", "V4", "IPv6 TCP handshake; R->C packet too big quoting C->S TCP", handshake(v6=True) + [
        (ip6(R6, C6) / ICMPv6PacketTooBig(mtu=1280) / Raw(raw(inner6[IPv6])), "REL/R")])
    nf = ip6(C6, S6) / IPv6ExtHdrFragment(nh=17, offset=100, m=0, id=0x1234) / Raw(b"f" * 16)
    add("v05_ipv6_nonfirst_frag", "V5", "IPv6 non-first fragment delivered alone", [(nf, "INV")])


# ---------------------------------------------------------------------------
# generic, notrack, IP sanity
# ---------------------------------------------------------------------------

def other_cases():
    esp = lambda a, b, spi: ip4(a, b) / ESP(spi=spi, seq=1, data=b"\0" * 16)
    add("g01_esp", "G1", "ESP SPI 1, 2 (reverse), 3", [
        (esp(C, S, 1), "NEW/O"), (esp(S, C, 2), "EST/R"), (esp(C, S, 3), "EST/O")])
    q, r = udp(C, S, 5353, 53), udp(S, C, 53, 5353)
    both = ["udp dport 53 notrack", "udp sport 53 notrack"]
    add("n01_notrack_both", "N1", "notrack udp dport 53 and sport 53; query; answer",
        [(q, "UNTR"), (r, "UNTR")], opts={"notrack": both})
    add("n02_notrack_orig", "N2", "notrack udp dport 53 only; query; answer",
        [(q, "UNTR"), (r, "NEW/O")], opts={"notrack": ["udp dport 53 notrack"]})
    add("n03_notrack_icmp", "N3", "N1, then R->C unreachable quoting the query",
        [(q, "UNTR"), (r, "UNTR"), (icmp_err(R, C, 3, 3, q), "INV")], opts={"notrack": both})
    # IP-level sanity (CONNTRACK.md 1.3 step 0 and INV-1): never reaches conntrack
    badsum = ip4(C, S, chksum=0x1234) / UDP(sport=5001, dport=53) / Raw(b"x")
    badihl = eth(C) / Raw(bytes.fromhex("4f000020000100004011") + b"\0\0" + bytes([10, 0, 0, 1, 10, 0, 0, 2]) + b"\0" * 12)
    frag4 = ip4(C, S, frag=100) / Raw(b"x" * 16)
    frag4[IP].proto = 17
    arp = Ether(src=MAC_C, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=C, pdst=S, hwsrc=MAC_C)
    add("x02_ttl_expired", "1.3 step 9",
        "C->S UDP with TTL 1 (dies in forwarding: never confirmed); S->C reply; then the same with TTL 64",
        [(ip4(C, S, ttl=1) / UDP(sport=5353, dport=53) / Raw(b"q"), "NEW/O"),
         (udp(S, C, 53, 5353), "NEW/O"),
         (udp(C, S, 5354, 53), "NEW/O"), (udp(S, C, 53, 5354), "EST/R")],
        note="a packet that is not forwarded (TTL expiry, or any drop) does not confirm its entry")
    add("x01_ip_sanity", "INV-1/step 0",
        "bad IPv4 header checksum; ihl=15 beyond the packet; lone non-first IPv4 fragment; ARP",
        [(badsum, "DROP"), (badihl, "DROP"), (frag4, "INV"), (arp, "DROP")])


# ---------------------------------------------------------------------------
# FTP
# ---------------------------------------------------------------------------

class Ftp:
    """An FTP control connection C:40021 <-> S:21 with correct seq/ack."""

    def __init__(self, cport=40021, v6=False):
        self.cport, self.v6 = cport, v6
        self.c, self.s = (C6, S6) if v6 else (C, S)
        self.cseq, self.sseq = 1000, 5000
        self.pkts = []

    def _c(self, flags, load=b""):
        return tcp(self.c, self.s, self.cport, 21, flags, self.cseq, self.sseq, load=load, v6=self.v6)

    def _s(self, flags, load=b""):
        return tcp(self.s, self.c, 21, self.cport, flags, self.sseq, self.cseq, load=load, v6=self.v6)

    def handshake(self):
        self.pkts.append((self._c("S"), "NEW/O")); self.cseq += 1
        self.pkts.append((self._s("SA"), "EST/R")); self.sseq += 1
        self.pkts.append((self._c("A"), "EST/O"))
        return self

    def client(self, text, tok="EST/O"):
        load = text.encode()
        self.pkts.append((self._c("PA", load), tok)); self.cseq += len(load)
        self.pkts.append((self._s("A"), "EST/R"))
        return self

    def server(self, text, tok="EST/R"):
        load = text.encode()
        self.pkts.append((self._s("PA", load), tok)); self.sseq += len(load)
        self.pkts.append((self._c("A"), "EST/O"))
        return self

    def login(self):
        return self.handshake().server("220 hi\r\n").client("USER a\r\n").server("331 ok\r\n")


def data_conn(src, dst, sport, dport, first_tok, syn_twice=False):
    """SYN [, SYN again], SYN/ACK, ACK of a data connection."""
    out = [(tcp(src, dst, sport, dport, "S", 20000), first_tok)]
    if syn_twice:
        out.append((tcp(src, dst, sport, dport, "S", 20000), first_tok))
    rep = "EST/R"
    out.append((tcp(dst, src, dport, sport, "SA", 30000, 20001), rep))
    out.append((tcp(src, dst, sport, dport, "A", 20001, 30001), "EST/O"))
    return out


def ftp_cases():
    h = {"helper_ftp_port": [21]}
    pasv = "227 Entering Passive Mode (10,0,0,2,195,80).\r\n"
    f1 = Ftp().login().server(pasv).pkts + data_conn(C, S, 41000, 50000, "REL/O", syn_twice=True)
    add("f01_pasv", "F1", "227 passive; data SYN, SYN again, SYN/ACK, ACK", f1, opts=h)
    add("f02_port", "F2", "PORT; S:20->C:40000 SYN, SYN/ACK, ACK",
        Ftp().login().client("PORT 10,0,0,1,156,64\r\n").pkts + data_conn(S, C, 20, 40000, "REL/O"), opts=h)
    add("f03_epsv", "F3", "229 extended passive; C:41000->S:6446 SYN",
        Ftp().login().server("229 Entering Extended Passive Mode (|||6446|)\r\n").pkts
        + data_conn(C, S, 41000, 6446, "REL/O"), opts=h)
    add("f04_eprt", "F4", "EPRT |1|10.0.0.1|6275|; S:20->C:6275 SYN",
        Ftp().login().client("EPRT |1|10.0.0.1|6275|\r\n").pkts + data_conn(S, C, 20, 6275, "REL/O"), opts=h)
    add("f05_port_other_host", "F5", "PORT naming 10.0.0.99; S:20->X:40000 SYN; S:20->C:40000 SYN",
        Ftp().login().client("PORT 10,0,0,99,156,64\r\n").pkts + [
            (tcp(S, X, 20, 40000, "S", 20000), "NEW/O"), (tcp(S, C, 20, 40000, "S", 20000), "NEW/O")], opts=h)
    add("f06_eprt_v6_on_v4", "F6", "EPRT |2|::1|6275| on IPv4 control (the helper drops it: see 'forwarded')",
        Ftp().login().client("EPRT |2|::1|6275|\r\n").pkts, opts=h,
        note="doc: the EPRT packet is dropped by the helper -> oracle field forwarded=false")
    add("f07_partial", "F7", "'POR' at a line start; later 'PORT abc' (helper drops: see 'forwarded')",
        Ftp().login().client("POR").pkts, opts=h,
        note="doc: dropped by the helper -> forwarded=false")
    add("f07b_port_garbage", "F7", "'PORT abc' (helper drops: see 'forwarded')",
        Ftp().login().client("PORT abc\r\n").pkts, opts=h, note="doc: dropped by the helper -> forwarded=false")
    f8 = Ftp().handshake().client("PORT 10,0,0,1,156,64\r\n").pkts + [(tcp(S, C, 20, 40000, "S", 20000), "NEW/O")]
    add("f08_first_payload_port", "F8", "first client payload is PORT (never parsed); data SYN", f8, opts=h)
    f9 = Ftp().login().server("227 Entering Passive Mode (10,0,0,2,195,80).\r\n") \
        .server("227 Entering Passive Mode (10,0,0,2,195,81).\r\n").pkts + [
        (tcp(C, S, 41000, 50000, "S", 20000), "NEW/O"), (tcp(C, S, 41001, 50001, "S", 20000), "REL/O")]
    add("f09_two_pasv", "F9", "two 227 (50000, 50001); SYN to 50000; SYN to 50001", f9, opts=h)
    add("f10_one_shot", "F10", "F1, then C:41001->S:50000 SYN",
        f1 + [(tcp(C, S, 41001, 50000, "S", 21000), "NEW/O")], opts=h)
    f11 = Ftp().login().server(pasv).pkts
    times = [i * 0.01 for i in range(len(f11))]
    # keep the control connection alive: a client keepalive-ish data exchange every 100 s
    last = times[-1]
    ftp = Ftp().login().server(pasv)
    for k in (1, 2, 3):
        ftp.client("NOOP\r\n").server("200 ok\r\n")
    extra = ftp.pkts[len(f11):]
    for j in range(len(extra)):
        times.append(last + 100 * (1 + j // 4) + (j % 4) * 0.01)
    pk = ftp.pkts + [(tcp(C, S, 41000, 50000, "S", 20000), "NEW/O")]
    times.append(last + 301)
    add("f11_expect_timeout", "F11", "227 as F1; data SYN 301 s later (control connection kept alive)",
        pk, times=times, opts=h, long=True,
        note="expectations expire by a kernel timer (timer wheel slack: up to +16.4 s at HZ=250 for 300 s)")
    add("f11b_expect_timeout_slack", "F11", "as f11, but the data SYN 320 s after the 227 (beyond the timer slack)",
        pk, times=times[:-1] + [times[9] + 320], opts=h, long=True)
    f12 = Ftp().login().server(pasv).pkts + [
        (tcp(C, S, 41000, 50000, "S", 20000), "NEW/O"), (tcp(C, S, 41000, 50000, "S", 20000), "NEW/O"),
        (tcp(S, C, 50000, 41000, "SA", 30000, 20001), "EST/R"), (tcp(C, S, 41000, 50000, "A", 20001, 30001), "EST/O")]
    add("f12_no_helper", "F12", "the F1 sequence without the helper", f12,
        note="doc: data SYN NEW; its retransmission is NEW too (1.3 step 5b)")
    add("f13_lowercase_port", "F13", "'port 10,0,0,1,156,64' in lower case; S:20->C:40000 SYN",
        Ftp().login().client("port 10,0,0,1,156,64\r\n").pkts + data_conn(S, C, 20, 40000, "REL/O"), opts=h)
    add("f13b_227_no_parens", "F13", "'227 =10,0,0,2,195,80' (no parentheses); C:41000->S:50000 SYN",
        Ftp().login().server("227 =10,0,0,2,195,80\r\n").pkts + data_conn(C, S, 41000, 50000, "REL/O"), opts=h)


# ---------------------------------------------------------------------------
# a mixed, realistic capture
# ---------------------------------------------------------------------------

def mixed():
    pk, times = [], []
    t = 0.0

    def put(p, dt=0.005):
        nonlocal t
        t += dt
        pk.append((p, "?"))
        times.append(round(t, 6))

    def http(cport, sport=80, srv=S, isn_c=100000, isn_s=900000, resp=1200):
        cs, ss = isn_c, isn_s
        put(tcp(C, srv, cport, sport, "S", cs))
        put(tcp(srv, C, sport, cport, "SA", ss, cs + 1)); cs += 1; ss += 1
        put(tcp(C, srv, cport, sport, "A", cs, ss))
        req = b"GET / HTTP/1.1\r\nHost: s\r\n\r\n"
        put(tcp(C, srv, cport, sport, "PA", cs, ss, load=req)); cs += len(req)
        put(tcp(srv, C, sport, cport, "A", ss, cs))
        body = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"b" * 1000
        for off in range(0, len(body), 700):
            seg = body[off:off + 700]
            put(tcp(srv, C, sport, cport, "PA", ss, cs, load=seg)); ss += len(seg)
        put(tcp(C, srv, cport, sport, "A", cs, ss))
        put(tcp(C, srv, cport, sport, "FA", cs, ss)); cs += 1
        put(tcp(srv, C, sport, cport, "FA", ss, cs)); ss += 1
        put(tcp(C, srv, cport, sport, "A", cs, ss))

    def dns(cport, qid):
        put(udp(C, S, cport, 53, load=qid.to_bytes(2, "big") + b"\x01\x00query"))
        put(udp(S, C, 53, cport, load=qid.to_bytes(2, "big") + b"\x81\x80answer"), 0.02)

    http(41000)
    dns(50001, 1)
    put(ip4(C, S) / ICMP(type=8, id=77, seq=1) / Raw(b"p" * 32))
    put(ip4(S, C) / ICMP(type=0, id=77, seq=1) / Raw(b"p" * 32))
    http(41001, isn_c=3000000000, isn_s=4294967000)  # sequence numbers wrap
    dns(50002, 2)
    # traceroute-like: UDP probe C->X:33434, router R answers time exceeded, X answers port unreachable
    probe = udp(C, X, 45000, 33434, load=b"@" * 24)
    put(probe)
    put(icmp_err(R, C, 11, 0, probe))
    put(udp(C, X, 45000, 33435, load=b"@" * 24))
    put(icmp_err(X, C, 3, 3, udp(C, X, 45000, 33435, load=b"@" * 24)))
    # scan probes from X against S
    put(tcp(X, S, 61000, 22, "F", 111))
    put(tcp(X, S, 61001, 22, "", 111))
    put(tcp(X, S, 61002, 22, "FPU", 111))
    put(tcp(X, S, 61003, 22, "A", 111, 222))
    put(tcp(S, X, 22, 61003, "R", 222))
    put(tcp(X, S, 61004, 23, "S", 111))
    put(tcp(S, X, 23, 61004, "RA", 0, 112))
    # IPv6 ping and a v6 HTTP-ish connection
    put(ip6(C6, S6) / ICMPv6EchoRequest(id=5, seq=1, data=b"v6"))
    put(ip6(S6, C6) / ICMPv6EchoReply(id=5, seq=1, data=b"v6"))
    cs, ss = 7000, 8000
    put(tcp(C6, S6, 42000, 443, "S", cs, v6=True))
    put(tcp(S6, C6, 443, 42000, "SA", ss, cs + 1, v6=True))
    put(tcp(C6, S6, 42000, 443, "A", cs + 1, ss + 1, v6=True))
    put(tcp(C6, S6, 42000, 443, "PA", cs + 1, ss + 1, load=b"hello", v6=True))
    put(tcp(S6, C6, 443, 42000, "RA", ss + 1, cs + 6, v6=True))
    put(ip4(C, S) / ICMP(type=8, id=77, seq=2) / Raw(b"p" * 32), 0.5)
    put(ip4(S, C) / ICMP(type=0, id=77, seq=2) / Raw(b"p" * 32))
    add("m01_mixed", "mixed", "HTTP sessions, DNS, pings, traceroute, scan probes, IPv6", pk, times=times,
        note="no CONNTRACK.md expectations: the kernel output is the reference")


# ---------------------------------------------------------------------------
# UDP-Lite (RFC 3828; nf_conntrack_proto_udp.c's udplite part)
# ---------------------------------------------------------------------------

def _csum16(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s


def udplite(src, dst, sport, dport, load=b"lite", cov=8, v6=False, csum="good", pseudo_proto=17):
    """UDP-Lite datagram: COV is the checksum coverage field (0 = whole datagram);
    CSUM 'good' computes it over the coverage (pseudo header with PSEUDO_PROTO and the
    datagram length), 'bad' flips it, an int is written as is.  The default PSEUDO_PROTO
    is 17: the kernel (6.18) verifies UDP-Lite with IPPROTO_UDP in the pseudo header
    (udplite_error -> nf_checksum_partial(..., IPPROTO_UDP, ...)), so an RFC 3828
    checksum (protocol 136) is INVALID there while checksum checking is on (l03, l04)."""
    hdr = sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + cov.to_bytes(2, "big")
    body = hdr + b"\0\0" + load
    n = len(body)
    if isinstance(csum, int):
        c = csum
    else:
        covered = body[:n if cov == 0 else min(cov, n)]
        if v6:
            import ipaddress
            ph = (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
                  + n.to_bytes(4, "big") + b"\0\0\0" + bytes([pseudo_proto]))
        else:
            import ipaddress
            ph = (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
                  + bytes([0, pseudo_proto]) + n.to_bytes(2, "big"))
        c = (~_csum16(ph + covered)) & 0xffff or 0xffff
        if csum == "bad":
            c ^= 0x5555
    body = hdr + c.to_bytes(2, "big") + load
    if v6:
        return ip6(src, dst, nh=136) / Raw(body)
    return ip4(src, dst, proto=136) / Raw(body)


def udplite_cases():
    q = lambda **kw: udplite(C, S, 5004, 5005, **kw)
    r = lambda **kw: udplite(S, C, 5005, 5004, **kw)
    add("l01_udplite_flow", "UL1",
        "UDP-Lite C->S coverage 8 (header only), S->C coverage 0 (whole), C->S coverage 12",
        [(q(cov=8), "NEW/O"), (r(cov=0), "EST/R"), (q(cov=12), "EST/O")])
    add("l02_udplite_bad_coverage", "UL2",
        "coverage 40 > 12-byte datagram; coverage 4 < 8; checksum 0; then a port unreachable "
        "quoting the coverage-40 datagram",
        [(udplite(C, S, 5006, 5005, cov=40), "INV"), (udplite(C, S, 5007, 5005, cov=4), "INV"),
         (udplite(C, S, 5008, 5005, cov=0, csum=0), "INV"),
         (icmp_err(S, C, 3, 3, udplite(C, S, 5006, 5005, cov=40)), "INV")])
    add("l03_udplite_csum", "UL3",
        "wrong checksum; RFC 3828 checksum (pseudo header protocol 136: INVALID in the kernel); "
        "the same datagram with nf_conntrack_checksum=0 is in l03b",
        [(q(cov=0, csum="bad"), "INV"), (udplite(C, S, 5009, 5005, cov=0, pseudo_proto=136), "INV")])
    add("l03b_udplite_csum_nocheck", "UL3",
        "wrong checksum with nf_conntrack_checksum=0; coverage 40 > datagram (still INVALID); "
        "RFC 3828 checksum; checksum 0 (still INVALID)",
        [(q(cov=0, csum="bad"), "NEW/O"), (udplite(C, S, 5006, 5005, cov=40), "INV"),
         (udplite(C, S, 5009, 5005, cov=0, pseudo_proto=136), "NEW/O"),
         (udplite(C, S, 5008, 5005, cov=0, csum=0), "INV")],
        opts={"sysctl": ["nf_conntrack_checksum=0"]})
    add("l04_udplite_v6", "UL1", "UDP-Lite over IPv6: query coverage 8, answer coverage 0, "
        "coverage 100 > datagram; an RFC 3828 checksum; a wrong one",
        [(udplite(C6, S6, 5004, 5005, v6=True), "NEW/O"),
         (udplite(S6, C6, 5005, 5004, cov=0, v6=True), "EST/R"),
         (udplite(C6, S6, 5010, 5005, cov=100, v6=True), "INV"),
         (udplite(C6, S6, 5011, 5005, v6=True, pseudo_proto=136), "INV"),
         (udplite(C6, S6, 5012, 5005, v6=True, csum="bad"), "INV")])
    add("l05_udplite_related", "UL4", "UDP-Lite flow, then S->C port unreachable quoting the query",
        [(q(cov=8), "NEW/O"), (icmp_err(S, C, 3, 3, q(cov=8)), "REL/R")])


# ---------------------------------------------------------------------------
# SCTP (nf_conntrack_proto_sctp.c)
# ---------------------------------------------------------------------------

TAG_C, TAG_S = 0x11111111, 0x22222222
SCP, SSP = 40100, 36412


def sctp(src, dst, sport, dport, vtag, *chunks, v6=False, chksum=None):
    from scapy.layers.sctp import SCTP
    l3 = ip6(src, dst) if v6 else ip4(src, dst)
    p = l3 / SCTP(sport=sport, dport=dport, tag=vtag, chksum=chksum)
    for c in chunks:
        p = p / c
    return p


def sctp_assoc_cases():
    from scapy.layers.sctp import (SCTPChunkCookieAck, SCTPChunkCookieEcho, SCTPChunkData,
                                   SCTPChunkHeartbeatAck, SCTPChunkHeartbeatReq, SCTPChunkInit,
                                   SCTPChunkInitAck, SCTPChunkSACK, SCTPChunkShutdown,
                                   SCTPChunkShutdownAck, SCTPChunkShutdownComplete,
                                   SCTPChunkParamStateCookie, SCTPChunkParamHeartbeatInfo)
    init = lambda tag: SCTPChunkInit(init_tag=tag, a_rwnd=65535, n_out_streams=1, n_in_streams=1, init_tsn=1)
    init_ack = lambda tag: SCTPChunkInitAck(init_tag=tag, a_rwnd=65535, n_out_streams=1, n_in_streams=1,
                                            init_tsn=1, params=[SCTPChunkParamStateCookie(cookie=b"c" * 8)])
    c2s_ = lambda vtag, *ch, **kw: sctp(C, S, SCP, SSP, vtag, *ch, **kw)
    s2c_ = lambda vtag, *ch, **kw: sctp(S, C, SSP, SCP, vtag, *ch, **kw)
    hb = SCTPChunkHeartbeatReq(params=[SCTPChunkParamHeartbeatInfo(data=b"h" * 8)])
    hback = SCTPChunkHeartbeatAck(params=[SCTPChunkParamHeartbeatInfo(data=b"h" * 8)])
    hs = [(c2s_(0, init(TAG_C)), "NEW/O"), (s2c_(TAG_C, init_ack(TAG_S)), "EST/R"),
          (c2s_(TAG_S, SCTPChunkCookieEcho(cookie=b"c" * 8)), "EST/O"),
          (s2c_(TAG_C, SCTPChunkCookieAck()), "EST/R")]
    add("s01_sctp_assoc", "SC1",
        "INIT, INIT-ACK, COOKIE-ECHO, COOKIE-ACK, DATA, SACK, HEARTBEAT, HEARTBEAT-ACK, "
        "SHUTDOWN, SHUTDOWN-ACK, SHUTDOWN-COMPLETE, then DATA on the closed entry",
        hs + [(c2s_(TAG_S, SCTPChunkData(tsn=1, data=b"hello")), "EST/O"),
              (s2c_(TAG_C, SCTPChunkSACK(cumul_tsn_ack=1, a_rwnd=65535)), "EST/R"),
              (c2s_(TAG_S, hb), "EST/O"), (s2c_(TAG_C, hback), "EST/R"),
              (c2s_(TAG_S, SCTPChunkShutdown(cumul_tsn_ack=1)), "EST/O"),
              (s2c_(TAG_C, SCTPChunkShutdownAck()), "EST/R"),
              (c2s_(TAG_S, SCTPChunkShutdownComplete()), "EST/O"),
              (c2s_(TAG_S, SCTPChunkData(tsn=2, data=b"late")), "EST/O")])
    unknown = Raw(bytes([0xC0, 0, 0, 4]))
    unk_pkt = sctp(C, S, 40101, SSP, 0, unknown)
    trunc = ip4(C, S, proto=132) / Raw(raw(sctp(C, S, 40102, SSP, 0, init(TAG_C))[IP].payload)[:8])
    add("s02_sctp_invalid", "SC2",
        "new flows: unknown chunk 0xC0; DATA first; 8-byte header; INIT with vtag != 0; no chunk; "
        "port unreachable quoting the unknown-chunk packet; INIT bundled with DATA; COOKIE-ACK out of the blue; "
        "INIT with a wrong CRC",
        [(unk_pkt, "INV"), (sctp(C, S, 40103, SSP, TAG_S, SCTPChunkData(tsn=1, data=b"x")), "INV"),
         (trunc, "INV"), (sctp(C, S, 40104, SSP, 7, init(TAG_C)), "INV"),
         (sctp(C, S, 40105, SSP, 0), "INV"), (icmp_err(S, C, 3, 3, unk_pkt), "INV"),
         (sctp(C, S, 40106, SSP, 0, init(TAG_C), SCTPChunkData(tsn=1, data=b"x")), "INV"),
         (sctp(C, S, 40107, SSP, TAG_S, SCTPChunkCookieAck()), "INV"),
         (sctp(C, S, 40108, SSP, 0, init(TAG_C), chksum=0x12345678), "INV")])
    add("s03_sctp_bad_vtag", "SC3",
        "handshake; DATA with a wrong vtag; DATA with the right one; an unknown chunk inside the association",
        hs + [(c2s_(0x33333333, SCTPChunkData(tsn=1, data=b"x")), "INV"),
              (c2s_(TAG_S, SCTPChunkData(tsn=1, data=b"x")), "EST/O"),
              (c2s_(TAG_S, unknown), "EST/O")])
    add("s04_sctp_heartbeat_new", "SC4",
        "a HEARTBEAT starts a (secondary path) entry; its HEARTBEAT-ACK; over IPv6 an INIT and INIT-ACK",
        [(c2s_(TAG_S, hb), "NEW/O"), (s2c_(TAG_C, hback), "EST/R"),
         (sctp(C6, S6, SCP, SSP, 0, init(TAG_C), v6=True), "NEW/O"),
         (sctp(S6, C6, SSP, SCP, TAG_C, init_ack(TAG_S), v6=True), "EST/R")])
    add("s05_sctp_related", "SC5", "INIT; port unreachable from S quoting it",
        [(c2s_(0, init(TAG_C)), "NEW/O"), (icmp_err(S, C, 3, 3, c2s_(0, init(TAG_C))), "REL/R")])
    from scapy.layers.sctp import SCTPChunkAbort
    p2 = lambda sp: (lambda vtag, *ch: sctp(C, S, sp, SSP, vtag, *ch),
                     lambda vtag, *ch: sctp(S, C, SSP, sp, vtag, *ch))
    a_c, a_s = p2(40110)
    b_c, b_s = p2(40111)
    d_c, d_s = p2(40112)
    e_c, e_s = p2(40113)
    up = lambda c_, s_: [(c_(0, init(TAG_C)), "NEW/O"), (s_(TAG_C, init_ack(TAG_S)), "EST/R"),
                         (c_(TAG_S, SCTPChunkCookieEcho(cookie=b"c" * 8)), "EST/O"),
                         (s_(TAG_C, SCTPChunkCookieAck()), "EST/R")]
    add("s07_sctp_edges", "SC7",
        "A: up, SHUTDOWN from the server (SHUTDOWN_RECD), SHUTDOWN-ACK from the client, SHUTDOWN-COMPLETE with the T bit; "
        "B: up, ABORT with a wrong vtag (INV), ABORT with T and the peer's tag, INIT again on the closed entry; "
        "D: INIT, COOKIE-ECHO with a wrong vtag (INV), INIT-ACK with the wrong vtag (INV), DATA+SACK bundled after up; "
        "E: up, HEARTBEAT with a new vtag (let through), its HEARTBEAT-ACK with a new vtag (adopted: the other "
        "direction's tag is now 0), so DATA with either tag is INVALID",
        up(a_c, a_s) + [(a_s(TAG_C, SCTPChunkShutdown(cumul_tsn_ack=1)), "EST/R"),
                        (a_c(TAG_S, SCTPChunkShutdownAck()), "EST/O"),
                        (a_s(TAG_S, SCTPChunkShutdownComplete(TCB=1)), "EST/R")]
        + up(b_c, b_s) + [(b_c(0x44444444, SCTPChunkAbort()), "INV"),
                          (b_c(TAG_C, SCTPChunkAbort(TCB=1)), "EST/O"),
                          (b_c(0, init(0x55555555)), "EST/O")]
        + [(d_c(0, init(TAG_C)), "NEW/O"), (d_c(0x66666666, SCTPChunkCookieEcho(cookie=b"c" * 8)), "INV"),
           (d_s(0x77777777, init_ack(TAG_S)), "INV")]
        + up(e_c, e_s) + [(e_c(0x88888888, hb), "EST/O"), (e_s(0x99999999, hback), "EST/R"),
                          (e_c(0x88888888, SCTPChunkData(tsn=5, data=b"x")), "INV"),
                          (e_c(TAG_S, SCTPChunkData(tsn=6, data=b"x")), "INV")])
    add("s06_sctp_nocheck", "SC6",
        "with nf_conntrack_checksum=0: INIT with a wrong CRC (NEW); unknown chunk (still INVALID)",
        [(sctp(C, S, 40108, SSP, 0, init(TAG_C), chksum=0x12345678), "NEW/O"), (unk_pkt, "INV")],
        opts={"sysctl": ["nf_conntrack_checksum=0"]})


def main():
    return oracle_common.gen_main(
        __doc__,
        [tcp_cases, udp_cases, icmp_cases, other_cases, udplite_cases, sctp_assoc_cases,
         ftp_cases, mixed],
        CAPTURES,
        "one entry per capture; oracle options: --helper-ftp-port, --notrack, --sysctl. "
        "'timing' captures depend on real inter-packet gaps (never run them with --no-sleep); 'long' captures need real-time gaps > 30 s (skip with --skip-long). "
        "'doc' = CONNTRACK.md expectation per packet.")


if __name__ == "__main__":
    sys.exit(main())
