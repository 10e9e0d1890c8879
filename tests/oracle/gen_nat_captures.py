#!/usr/bin/env python3
"""Write the deterministic NAT captures (issue 17) and their manifest.

    gen_nat_captures.py OUTDIR        # writes OUTDIR/*.pcap and OUTDIR/manifest.json

Each capture is what a NAT router sees arrive on its two sides: packets from the
inside hosts (10.0.0.0/24, fd00::/64: the manifest's "inside" prefixes, as
`statewall replay --inside CIDR` uses them) in their inside form, and packets from
the outside in their *outside* (translated) form, i.e. addressed to the router's
outside address and the port the kernel is expected to have chosen.  The ruleset of
each capture (iptables-save text: *nat, *raw for the FTP helper, *filter) is in the
manifest; linux_nat_oracle.py loads it with iptables-restore (iptables-nft /
ip6tables-nft) in a router namespace and records what leaves the router.

Where the kernel chooses a port or address by a hash or a random search (SNAT on a
clash, SNAT out of its port range, SNAT to an address range), the capture contains
only the outbound packets of that flow (a reply would have to know the choice), and
the manifest's "choices" entry tells compare_nat.py which input packets carry the
choice, which field it is and what property it must have.

Timestamps are fixed (BASE + 10 ms steps), so the output is byte-reproducible.
Requires scapy (python3-scapy).
"""

import os
import sys

from scapy.all import (ICMP, IP, TCP, UDP, Ether, ICMPv6EchoReply, ICMPv6EchoRequest,
                       ICMPv6DestUnreach, IPv6, Raw, raw)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle_common  # noqa: E402

BASE = 1700000000.0
MAC_IN = "02:00:00:00:01:01"     # source MAC of frames from the inside peer
MAC_OUT = "02:00:00:00:02:01"    # source MAC of frames from the outside peer
RMAC_IN = "02:00:00:00:01:fe"    # router's inside interface (the oracle rewrites dst anyway)
RMAC_OUT = "02:00:00:00:02:fe"

A, B, SRV = "10.0.0.1", "10.0.0.2", "10.0.0.10"        # inside hosts, inside server
R_IN, R = "10.0.0.254", "198.51.100.1"                 # router inside / outside (masquerade) address
S, OC, HOP = "203.0.113.10", "203.0.113.20", "198.51.100.77"   # outside server, outside client, a router
A6, SRV6, R6_IN = "fd00::1", "fd00::10", "fd00::fe"
R6, S6, OC6 = "2001:db8:1::1", "2001:db8:2::10", "2001:db8:2::20"
INSIDE = ["10.0.0.0/24", "fd00::/64"]
WIN = 64240

FILTER = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
RAW_FTP = ("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
           "-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp\nCOMMIT\n")

CAPTURES = []


def nat(*rules):
    body = "".join(r + "\n" for r in rules)
    return ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":POSTROUTING ACCEPT [0:0]\n" + body + "COMMIT\n")


def is_inside(ip):
    return ip.startswith("10.0.0.") or ip.startswith("fd00:")


def l3(src, dst, **kw):
    e = Ether(src=MAC_IN, dst=RMAC_IN) if is_inside(src) else Ether(src=MAC_OUT, dst=RMAC_OUT)
    if ":" in src:
        kw.setdefault("hlim", 64)
        return e / IPv6(src=src, dst=dst, **kw)
    kw.setdefault("ttl", 64)
    kw.setdefault("id", 1)
    return e / IP(src=src, dst=dst, **kw)


def tcp(src, dst, sport, dport, flags, seq, ack=0, load=b"", **kw):
    p = l3(src, dst, **kw) / TCP(sport=sport, dport=dport, flags=flags, seq=seq % 2**32,
                                 ack=ack % 2**32, window=WIN, options=[])
    return p / Raw(load) if load else p


def udp(src, dst, sport, dport, load=b"q"):
    return l3(src, dst) / UDP(sport=sport, dport=dport) / Raw(load)


class Conn:
    """A TCP connection seen from both sides: c = client as the router sees its packets
    arrive, s = server likewise.  Sequence numbers are tracked per side so data
    lengths stay consistent; `shift_c`/`shift_s` add the FTP helper's length change
    to the seq space the *other* side sees (the kernel adjusts seq/ack on the way)."""

    def __init__(self, c_src, c_sport, c_dst, c_dport, s_src, s_sport, s_dst, s_dport,
                 isn_c=1000, isn_s=5000):
        self.c = (c_src, c_dst, c_sport, c_dport)   # client's packets as they arrive
        self.s = (s_src, s_dst, s_sport, s_dport)   # server's packets as they arrive
        self.cseq, self.sseq = isn_c, isn_s
        self.shift_c = 0   # bytes the router added to the client's stream (server sees cseq+shift_c)
        self.shift_s = 0

    def fc(self, flags, load=b""):
        src, dst, sp, dp = self.c
        p = tcp(src, dst, sp, dp, flags, self.cseq, self.sseq + self.shift_s if "A" in flags else 0,
                load)
        self.cseq += len(load) + (1 if ("S" in flags or "F" in flags) else 0)
        return p

    def fs(self, flags, load=b""):
        src, dst, sp, dp = self.s
        p = tcp(src, dst, sp, dp, flags, self.sseq, self.cseq + self.shift_c if "A" in flags else 0,
                load)
        self.sseq += len(load) + (1 if ("S" in flags or "F" in flags) else 0)
        return p

    def handshake(self):
        return [self.fc("S"), self.fs("SA"), self.fc("A")]

    def close(self):
        return [self.fc("FA"), self.fs("FA"), self.fc("A")]


def add(name, title, rules, pkts, masq=(R,), choices=None, note=None, helper_ftp_port=()):
    frames = []
    for i, p in enumerate(pkts):
        p = p.copy()
        p.time = BASE + i * 0.01
        frames.append(p)
    CAPTURES.append({
        "name": name, "title": title, "file": f"{name}.pcap", "packets": len(frames),
        "rules": rules, "inside": INSIDE,
        "router": {"inside": [R_IN, R6_IN], "outside": [R, R6]},
        "masquerade_addr": list(masq),
        "local_addr": [R, R6],
        "helper_ftp_port": list(helper_ftp_port),
        "random": bool(choices), "choices": choices or [], "note": note,
        "_frames": frames,
    })


MASQ = nat("-A POSTROUTING -o outside -j MASQUERADE")


def masq_cases():
    # TCP: handshake, data both ways, FIN close.  Port kept (no clash).
    k = Conn(A, 40000, S, 80, S, 80, R, 40000)
    pk = k.handshake() + [k.fc("PA", b"GET / HTTP/1.0\r\n\r\n"), k.fs("A"),
                          k.fs("PA", b"HTTP/1.0 200 OK\r\n\r\nhello"), k.fc("A")] + k.close()
    add("n01_masq_tcp", "MASQUERADE TCP: handshake, data, FIN", MASQ + FILTER, pk)
    add("n02_masq_udp", "MASQUERADE UDP query/answer, second query", MASQ + FILTER, [
        udp(A, S, 5353, 53, b"query-1"), udp(S, R, 53, 5353, b"answer-1"),
        udp(A, S, 5353, 53, b"query-2"), udp(S, R, 53, 5353, b"answer-2")])
    add("n03_masq_icmp_echo", "MASQUERADE ICMP echo: the id is kept", MASQ + FILTER, [
        l3(A, S) / ICMP(type=8, id=0x1234, seq=1) / Raw(b"ping"),
        l3(S, R) / ICMP(type=0, id=0x1234, seq=1) / Raw(b"ping"),
        l3(A, S) / ICMP(type=8, id=0x1234, seq=2) / Raw(b"ping"),
        l3(S, R) / ICMP(type=0, id=0x1234, seq=2) / Raw(b"ping")])
    # forced clash: A:40000 and B:40000 to the same server: B must get another port
    # (random search in 1024..65535); only B's outbound packets (SYN, its retransmit).
    k = Conn(A, 40000, S, 80, S, 80, R, 40000)
    pk = k.handshake() + [tcp(B, S, 40000, 80, "S", 7000), tcp(B, S, 40000, 80, "S", 7000),
                          k.fc("PA", b"x"), k.fs("A")]
    add("n04_masq_tcp_clash", "MASQUERADE two inside hosts, same source port: the second is remapped",
        MASQ + FILTER, pk,
        choices=[{"indices": [3, 4], "proto": "tcp", "field": "sport", "range": [1024, 65535],
                  "not": [40000]}])
    add("n05_masq_udp_clash", "MASQUERADE UDP clash: same source port from two hosts",
        MASQ + FILTER, [
            udp(A, S, 5000, 53, b"a-1"), udp(S, R, 53, 5000, b"a-reply"),
            udp(B, S, 5000, 53, b"b-1"), udp(B, S, 5000, 53, b"b-2"), udp(A, S, 5000, 53, b"a-2")],
        choices=[{"indices": [2, 3], "proto": "udp", "field": "sport", "range": [1024, 65535],
                  "not": [5000]}])


def masq_icmp_clash():
    # two inside hosts ping the same server with the same echo id: the second id is
    # searched from a random offset over 0..65535; only its requests are in the capture
    add("n25_masq_icmp_clash", "MASQUERADE ICMP echo, same id from two hosts: the second id is remapped",
        MASQ + FILTER, [
            l3(A, S) / ICMP(type=8, id=0x5151, seq=1) / Raw(b"ping-a"),
            l3(S, R) / ICMP(type=0, id=0x5151, seq=1) / Raw(b"ping-a"),
            l3(B, S) / ICMP(type=8, id=0x5151, seq=1) / Raw(b"ping-b"),
            l3(B, S) / ICMP(type=8, id=0x5151, seq=2) / Raw(b"ping-b")],
        choices=[{"indices": [2, 3], "proto": "icmp", "field": "icmp_id", "range": [0, 65535],
                  "not": [0x5151]}])


def snat_cases():
    rules = nat("-A POSTROUTING -s 10.0.0.0/24 -o outside -p tcp -j SNAT --to-source 198.51.100.5:20000-20009",
                "-A POSTROUTING -s 10.0.0.0/24 -o outside -p udp -j SNAT --to-source 198.51.100.5:20000-20009")
    # sport 20005 is inside the range and free: kept (deterministic); sport 40000 is
    # outside it: a port of the range chosen at random; UDP likewise.
    k = Conn(A, 20005, S, 80, S, 80, "198.51.100.5", 20005)
    pk = k.handshake() + [k.fc("PA", b"data"), k.fs("A"),
                          tcp(B, S, 40000, 80, "S", 9000), tcp(B, S, 40000, 80, "S", 9000),
                          udp(B, S, 40001, 53, b"u1"), udp(B, S, 40001, 53, b"u2")]
    add("n06_snat_port_range", "SNAT --to-source A:P-Q: in-range port kept, out-of-range port remapped",
        rules + FILTER, pk, masq=(),
        choices=[{"indices": [5, 6], "proto": "tcp", "field": "sport", "range": [20000, 20009], "not": []},
                 {"indices": [7, 8], "proto": "udp", "field": "sport", "range": [20000, 20009], "not": []}])
    # a one-port range already taken: the second flow cannot be mapped -> dropped
    rules1 = nat("-A POSTROUTING -s 10.0.0.0/24 -o outside -p udp -j SNAT --to-source 198.51.100.5:20000")
    add("n07_snat_one_port_clash", "SNAT to a single port, forced clash: the second flow gets the same "
        "tuple only if the destination differs",
        rules1 + FILTER, [
            udp(A, S, 6000, 53, b"a"), udp(S, "198.51.100.5", 53, 20000, b"a-reply"),
            udp(B, OC, 6000, 53, b"b-other-dst"), udp(B, S, 6000, 53, b"b-clash")], masq=())
    # address range: the address is picked by a hash of the tuple; the port is kept
    rules2 = nat("-A POSTROUTING -s 10.0.0.0/24 -o outside -j SNAT --to-source 198.51.100.10-198.51.100.13")
    add("n08_snat_addr_range", "SNAT to an address range (hash choice, port kept)", rules2 + FILTER, [
        udp(A, S, 7000, 53, b"a1"), udp(A, S, 7000, 53, b"a2"),
        udp(B, S, 7001, 53, b"b1"), udp(B, S, 7001, 53, b"b2")], masq=(),
        choices=[{"indices": [0, 1], "proto": "udp", "field": "saddr",
                  "range": ["198.51.100.10", "198.51.100.13"], "not": []},
                 {"indices": [2, 3], "proto": "udp", "field": "saddr",
                  "range": ["198.51.100.10", "198.51.100.13"], "not": []}])
    # NETMAP both ways: inside 10.0.0.0/24 <-> 192.0.2.0/24
    rules3 = nat("-A PREROUTING -d 192.0.2.0/24 -i outside -j NETMAP --to 10.0.0.0/24",
                 "-A POSTROUTING -s 10.0.0.0/24 -o outside -j NETMAP --to 192.0.2.0/24")
    k = Conn(A, 41000, S, 443, S, 443, "192.0.2.1", 41000)
    k2 = Conn(OC, 42000, "192.0.2.10", 22, SRV, 22, OC, 42000)
    pk = k.handshake() + [k.fc("PA", b"hi"), k.fs("A")] + k2.handshake() + [k2.fc("PA", b"ssh")]
    add("n09_netmap", "NETMAP 10.0.0.0/24 <-> 192.0.2.0/24, outbound and inbound", rules3 + FILTER, pk,
        masq=())


def dnat_cases():
    rules = nat("-A PREROUTING -d 198.51.100.1/32 -i outside -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.10")
    k = Conn(OC, 50000, R, 80, SRV, 80, OC, 50000)
    pk = k.handshake() + [k.fc("PA", b"GET /"), k.fs("PA", b"200 OK"), k.fc("A")] + k.close()
    add("n10_dnat_port_forward", "DNAT port forward: outside -> inside server, same port", rules + FILTER, pk,
        masq=())
    rules = nat("-A PREROUTING -d 198.51.100.1/32 -i outside -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.10:80",
                "-A PREROUTING -d 198.51.100.1/32 -i outside -p udp -m udp --dport 5353 -j DNAT --to-destination 10.0.0.10:53")
    k = Conn(OC, 50001, R, 8080, SRV, 80, OC, 50001)
    pk = k.handshake() + [k.fc("PA", b"GET /"), k.fs("PA", b"200 OK")] + [
        udp(OC, R, 50002, 5353, b"query"), udp(SRV, OC, 53, 50002, b"answer")]
    add("n11_dnat_other_port", "DNAT to a different port (TCP 8080->80, UDP 5353->53)", rules + FILTER, pk,
        masq=())


def quote(pkt):
    """The IP packet of scapy frame PKT as bytes, for an ICMP error's payload."""
    return raw(pkt[IP] if IP in pkt else pkt[IPv6])


def icmp_error_cases():
    # port unreachable from the server about a MASQUERADEd UDP flow
    q = udp(A, S, 5300, 53, b"query")
    seen = l3(R, S, ttl=63) / UDP(sport=5300, dport=53) / Raw(b"query")   # as it left the router
    add("n12_icmp_unreach_masq_udp", "ICMP port unreachable about a MASQUERADEd UDP flow", MASQ + FILTER, [
        q, l3(S, R) / ICMP(type=3, code=3) / Raw(quote(seen))])
    # time exceeded from a router on the path about a MASQUERADEd TCP SYN
    syn = tcp(A, S, 40100, 80, "S", 1000)
    seen = tcp(R, S, 40100, 80, "S", 1000, ttl=1)
    add("n13_icmp_ttl_masq_tcp", "ICMP time exceeded from an outside router about a MASQUERADEd TCP SYN",
        MASQ + FILTER, [syn, l3(HOP, R) / ICMP(type=11, code=0) / Raw(quote(seen)[:28])])
    # an inside DNAT server answers a UDP query with port unreachable: the error leaves
    # with the router's address outside and the quoted header says R:5353
    rules = nat("-A PREROUTING -d 198.51.100.1/32 -i outside -p udp -m udp --dport 5353 -j DNAT --to-destination 10.0.0.10:53")
    inner = l3(OC, SRV, ttl=63) / UDP(sport=50010, dport=53) / Raw(b"query")
    add("n14_icmp_unreach_dnat", "ICMP port unreachable from a DNATed server", rules + FILTER, [
        udp(OC, R, 50010, 5353, b"query"), l3(SRV, OC) / ICMP(type=3, code=3) / Raw(quote(inner))], masq=())
    # ICMP error about a MASQUERADEd ICMP echo (the quoted id is translated back)
    echo = l3(A, S) / ICMP(type=8, id=0x4242, seq=1) / Raw(b"ping")
    seen = l3(R, S, ttl=63) / ICMP(type=8, id=0x4242, seq=1) / Raw(b"ping")
    add("n15_icmp_unreach_masq_echo", "ICMP host unreachable about a MASQUERADEd echo request",
        MASQ + FILTER, [echo, l3(HOP, R) / ICMP(type=3, code=1) / Raw(quote(seen))])


def ftp_session(k, cmd_text, reply_text, shift_cmd=0, shift_reply=0):
    """Control connection up to the PORT/PASV exchange. Returns packets."""
    pk = k.handshake()
    pk.append(k.fs("PA", b"220 ready\r\n"))
    pk.append(k.fc("A"))
    pk.append(k.fc("PA", b"USER a\r\n"))
    pk.append(k.fs("PA", b"331 pw\r\n"))
    pk.append(k.fc("PA", b"PASS b\r\n"))
    pk.append(k.fs("PA", b"230 ok\r\n"))
    pk.append(k.fc("PA", cmd_text))
    k.shift_c += shift_cmd
    pk.append(k.fs("PA", reply_text))
    k.shift_s += shift_reply
    pk.append(k.fc("A"))
    return pk


def ftp_transfer(k, cmd_text, reply_text, d, active, final_ack=False, **shift):
    """Control session K (CMD_TEXT answered by REPLY_TEXT), then the data connection D
    (opened by the FTP server when ACTIVE) carrying b"file-data" from the FTP server, then QUIT."""
    pk = ftp_session(k, cmd_text, reply_text, **shift)
    data, ack = (d.fc, d.fs) if active else (d.fs, d.fc)
    pk += d.handshake() + [data("PA", b"file-data"), ack("A")]
    pk += [k.fc("PA", b"QUIT\r\n"), k.fs("PA", b"221 bye\r\n")]
    return pk + [k.fc("A")] if final_ack else pk


def ftp_cases():
    rules = RAW_FTP + MASQ + FILTER
    # active (PORT) through MASQUERADE: the PORT address is rewritten (10,0,0,1 ->
    # 198,51,100,1: 4 bytes longer), seq/ack adjusted, and the server's data SYN from
    # S:20 to R:40001 is DNATed back to A:40001 by the expectation
    k = Conn(A, 40021, S, 21, S, 21, R, 40021)
    d = Conn(S, 20, R, 40001, A, 40001, S, 20, isn_c=70000, isn_s=80000)
    pk = ftp_transfer(k, b"PORT 10,0,0,1,156,65\r\n", b"200 PORT ok\r\n", d, True, final_ack=True, shift_cmd=4)
    add("n16_ftp_port_snat", "FTP active (PORT) through MASQUERADE", rules, pk, helper_ftp_port=[21])
    # passive (PASV) through MASQUERADE: the 227 is rewritten to the same text; the data
    # connection A:40002 -> S:30000 is SNATed like its master
    k = Conn(A, 40022, S, 21, S, 21, R, 40022)
    d = Conn(A, 40002, S, 30000, S, 30000, R, 40002, isn_c=70000, isn_s=80000)
    pk = ftp_transfer(k, b"PASV\r\n", b"227 Entering Passive Mode (203,0,113,10,117,48).\r\n", d, False)
    add("n17_ftp_pasv_snat", "FTP passive (PASV) through MASQUERADE", rules, pk, helper_ftp_port=[21])
    k = Conn(A, 40023, S, 21, S, 21, R, 40023)
    d = Conn(A, 40003, S, 30001, S, 30001, R, 40003, isn_c=70000, isn_s=80000)
    pk = ftp_transfer(k, b"EPSV\r\n", b"229 Entering Extended Passive Mode (|||30001|)\r\n", d, False)
    add("n18_ftp_epsv_snat", "FTP extended passive (EPSV) through MASQUERADE", rules, pk, helper_ftp_port=[21])
    # through DNAT: outside client -> R:21 -> inside server 10.0.0.10:21
    drules = RAW_FTP + nat(
        "-A PREROUTING -d 198.51.100.1/32 -i outside -p tcp -m tcp --dport 21 -j DNAT --to-destination 10.0.0.10") + FILTER
    # PASV: the server's 227 names 10,0,0,10 -> rewritten to 198,51,100,1 (+3 bytes);
    # the client's data SYN to R:30000 is DNATed to the server
    k = Conn(OC, 50021, R, 21, SRV, 21, OC, 50021)
    d = Conn(OC, 50031, R, 30000, SRV, 30000, OC, 50031, isn_c=70000, isn_s=80000)
    pk = ftp_transfer(k, b"PASV\r\n", b"227 Entering Passive Mode (10,0,0,10,117,48).\r\n", d, False, final_ack=True, shift_reply=3)
    add("n19_ftp_pasv_dnat", "FTP passive (PASV) through DNAT to an inside server", drules, pk, masq=(),
        helper_ftp_port=[21])
    # PORT: the client names its own (outside) address: no rewrite; the server's data
    # SYN from 10.0.0.10:20 leaves as R:20
    k = Conn(OC, 50022, R, 21, SRV, 21, OC, 50022)
    d = Conn(SRV, 20, OC, 50001, OC, 50001, R, 20, isn_c=70000, isn_s=80000)
    pk = ftp_transfer(k, b"PORT 203,0,113,20,195,81\r\n", b"200 PORT ok\r\n", d, True)
    add("n20_ftp_port_dnat", "FTP active (PORT) through DNAT to an inside server", drules, pk, masq=(),
        helper_ftp_port=[21])


def nat66_cases():
    k = Conn(A6, 40000, S6, 80, S6, 80, R6, 40000)
    pk = k.handshake() + [k.fc("PA", b"GET /"), k.fs("PA", b"200 OK"), k.fc("A")] + k.close()
    add("n21_nat66_masq_tcp", "NAT66 MASQUERADE TCP", MASQ + FILTER, pk, masq=(R6,))
    add("n22_nat66_masq_echo", "NAT66 MASQUERADE ICMPv6 echo", MASQ + FILTER, [
        l3(A6, S6) / ICMPv6EchoRequest(id=0x777, seq=1, data=b"ping6"),
        l3(S6, R6) / ICMPv6EchoReply(id=0x777, seq=1, data=b"ping6"),
        l3(A6, S6) / ICMPv6EchoRequest(id=0x777, seq=2, data=b"ping6"),
        l3(S6, R6) / ICMPv6EchoReply(id=0x777, seq=2, data=b"ping6")], masq=(R6,))
    rules = nat("-A PREROUTING -d 2001:db8:1::1/128 -i outside -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::10]:80")
    k = Conn(OC6, 50000, R6, 8080, SRV6, 80, OC6, 50000)
    pk = k.handshake() + [k.fc("PA", b"GET /"), k.fs("PA", b"200 OK"), k.fc("A")]
    add("n23_dnat66_port_forward", "DNAT66 port forward 8080 -> [fd00::10]:80", rules + FILTER, pk, masq=())
    # ICMPv6 error about a NAT66-MASQUERADEd UDP flow
    q = udp(A6, S6, 5300, 53, b"query")
    seen = l3(R6, S6, hlim=63) / UDP(sport=5300, dport=53) / Raw(b"query")
    add("n24_nat66_unreach_udp", "ICMPv6 port unreachable about a NAT66-MASQUERADEd UDP flow",
        MASQ + FILTER, [q, l3(S6, R6) / ICMPv6DestUnreach(code=4) / Raw(quote(seen))], masq=(R6,))


def mangle(*rules):
    body = "".join(r + "\n" for r in rules)
    return ("*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
            ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" + body + "COMMIT\n")


def syn_mss(src, dst, sport, dport, flags, seq, ack, mss):
    p = l3(src, dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=WIN,
                           options=[("MSS", mss), ("NOP", None), ("WScale", 7), ("SAckOK", b"")])
    return p


def mangle_cases():
    # Issue 18: the mangle targets that rewrite packets, output frames compared.
    clamp = "-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS "
    for name, title, opt, mss_c, mss_s in (
        ("m01_mangle_tcpmss_set", "TCPMSS --set-mss 1300 on both SYNs (only ever lowered)",
         "--set-mss 1300", 1460, 1200),
        ("m02_mangle_tcpmss_pmtu", "TCPMSS --clamp-mss-to-pmtu: a jumbo MSS clamped to MTU 1500 - 40",
         "--clamp-mss-to-pmtu", 8960, 1400),
    ):
        pk = [syn_mss(A, S, 41000, 80, "S", 1000, 0, mss_c),
              syn_mss(S, R, 80, 41000, "SA", 5000, 1001, mss_s),
              tcp(A, S, 41000, 80, "A", 1001, 5001),
              tcp(A, S, 41000, 80, "PA", 1001, 5001, b"GET /")]
        add(name, title, mangle(clamp + opt) + MASQ + FILTER, pk)
    rules = mangle("-A FORWARD -p udp -j TOS --set-tos 0x10/0x3f",
                   "-A POSTROUTING -o outside -p udp -m udp --dport 5060 -j DSCP --set-dscp-class EF",
                   "-A POSTROUTING -o inside -j DSCP --set-dscp 0x0a")
    pk = [udp(A, S, 5060, 5060, b"INVITE"), udp(S, R, 5060, 5060, b"100 Trying"),
          udp(A, S, 5061, 53, b"query")]
    add("m03_mangle_dscp_tos", "TOS then DSCP: the TOS byte rewritten, IPv4 header checksum updated",
        rules + MASQ + FILTER, pk)
    # Marks and stateless matches decide: a DNS query's mark saved on its connection,
    # the reply judged by -m connmark and -m length, -m mark and -m ttl in FORWARD.
    rules = mangle("-A PREROUTING -p udp -m udp --dport 53 -j MARK --set-xmark 0x1/0xffffffff",
                   "-A PREROUTING -m mark --mark 0x1 -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff")
    filt = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            "-A FORWARD -p udp -m udp --sport 53 -m connmark --mark 0x1 -m conntrack --ctstate ESTABLISHED -m length --length 0:40 -j DROP\n"
            "-A FORWARD -s 10.0.0.0/24 -m ttl --ttl-lt 5 -j DROP\n"
            "-A FORWARD -p udp -m udp --dport 53 -m mark --mark 0x1 -m length --length 100:65535 -j DROP\n"
            "COMMIT\n")
    pk = [udp(A, S, 5300, 53, b"q"), udp(S, R, 53, 5300, b"a"), udp(S, R, 53, 5300, b"x" * 40),
          udp(A, S, 5301, 53, b"y" * 100),
          l3(A, S, ttl=3) / UDP(sport=5302, dport=123) / Raw(b"ntp"),
          l3(A, S) / UDP(sport=5303, dport=123) / Raw(b"ntp")]
    add("m04_mangle_marks_decide", "MARK/CONNMARK with -m mark, -m connmark, -m length, -m ttl deciding drops",
        rules + MASQ + filt, pk)


def main():
    return oracle_common.gen_main(
        __doc__, [masq_cases, masq_icmp_clash, snat_cases, dnat_cases, icmp_error_cases, ftp_cases,
                  nat66_cases, mangle_cases], CAPTURES,
        "NAT captures (issue 17). rules: iptables-save text loaded with iptables-restore "
        "(IPv4) and ip6tables-restore (IPv6) in the router; router interfaces are named "
        "'inside' and 'outside'; a packet enters on the inside if its source is in 'inside'. "
        "'choices': input packets whose translation the kernel picks by hash/random "
        "search; compare_nat.py checks the property instead of the bytes.")


if __name__ == "__main__":
    sys.exit(main())
