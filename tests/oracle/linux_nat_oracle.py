#!/usr/bin/env python3
"""Linux NAT reference oracle: what a Linux router running a capture's `*nat` rules emits.

    linux_nat_oracle.py CAPTURE_NAME [--manifest M] [--settle S] [--timeout S]

For one capture of captures/nat/manifest.json: builds a router namespace
``or-r-<pid>`` with two veths, ``inside`` and ``outside``, each joined to a peer
namespace (``or-i-<pid>`` / ``or-o-<pid>``); loads the capture's rules with
iptables-restore / ip6tables-restore (iptables-nft); then feeds the capture one
frame at a time from the peer of the side the packet belongs to (source in the
manifest's "inside" prefixes -> inside, else outside) through an AF_PACKET socket
(the exact frame, only the destination MAC set to the router's interface) and
records every frame that leaves the router on either side (AF_PACKET receive in
the peers).  One JSON object per input frame on stdout:

    {"index": 3, "in": "inside", "out": [{"side": "outside", "frame": "02000..."}]}

``out`` is empty when the router dropped the packet.  The router's own ARP, ND,
MLD and router-solicitation frames are left out of the recording (it has static
neighbours and never needs them).  Needs root, the stdlib and the ip, iptables-nft
and conntrack binaries.  See README.md ("NAT oracle").
"""

import argparse
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from oracle_common import (ETH_P_ALL, OracleError, Timeout, mac_bytes, nsx,  # noqa: E402
                           packet_socket_in, read_pcap, remove_stale_namespaces, run_guarded, sh,
                           to_ethernet)

MANIFEST = os.path.join(HERE, "captures", "nat", "manifest.json")
RMAC = {"inside": "02:00:00:00:01:fe", "outside": "02:00:00:00:02:fe"}
PMAC = {"inside": "02:00:00:00:01:fd", "outside": "02:00:00:00:02:fd"}
GWMAC = {"inside": "02:00:00:00:01:fb", "outside": "02:00:00:00:02:fb"}   # not the peer's MAC
GW4 = {"inside": "169.254.1.2", "outside": "169.254.2.2"}
GW6 = {"inside": "fe80::2", "outside": "fe80::3"}
PACKET_OUTGOING = 4


def ip_in(addr, cidr):
    import ipaddress
    try:
        return ipaddress.ip_address(addr) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def src_addr(frame):
    """Source IP of an Ethernet frame (skipping one VLAN tag), or None."""
    et = struct.unpack("!H", frame[12:14])[0]
    off = 14
    if et == 0x8100:
        et = struct.unpack("!H", frame[16:18])[0]
        off = 18
    import ipaddress
    if et == 0x0800 and len(frame) >= off + 20:
        return str(ipaddress.IPv4Address(frame[off + 12:off + 16]))
    if et == 0x86DD and len(frame) >= off + 40:
        return str(ipaddress.IPv6Address(frame[off + 8:off + 24]))
    return None


def is_noise(frame):
    """The router's own housekeeping: ARP, ND/MLD/RS (ICMPv6 130-143), hop-by-hop MLD."""
    et = struct.unpack("!H", frame[12:14])[0]
    if et == 0x0806:
        return True
    if et == 0x86DD and len(frame) >= 55:
        nh = frame[20]
        if nh == 0:
            return True
        if nh == 58 and 130 <= frame[54] <= 143:
            return True
    return False


def split_rules(text):
    """iptables-save text -> (IPv4 text, IPv6 text): a rule naming an IPv6 address
    goes to ip6tables only, one naming an IPv4 address to iptables only, others to both."""
    import re
    v4, v6 = [], []
    for line in text.splitlines():
        if line.startswith("-A ") or line.startswith("-I "):
            # An IPv6 address has two colons at least (a port or length range has one).
            has6 = bool(re.search(r"(?:\[|\s)[0-9a-fA-F]*:[0-9a-fA-F]*:[0-9a-fA-F:]*(?:/\d+|\])?", line))
            has4 = bool(re.search(r"\b\d+\.\d+\.\d+\.\d+\b", line))
            if not has6:
                v4.append(line)
            if not has4:
                v6.append(line)
        else:
            v4.append(line)
            v6.append(line)
    return "\n".join(v4) + "\n", "\n".join(v6) + "\n"


class Router:
    def __init__(self, cap, settle):
        pid = os.getpid()
        self.cap = cap
        self.settle = settle
        self.ns = f"or-r-{pid}"
        self.peer = {"inside": f"or-i-{pid}", "outside": f"or-o-{pid}"}
        self.created = []
        self.socks = {}

    def setup(self):
        ns = self.ns
        for n in (ns, self.peer["inside"], self.peer["outside"]):
            sh(["ip", "netns", "add", n])
            self.created.append(n)
        nsx(ns, "sysctl", "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
            "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0",
            "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.default.forwarding=1",
            "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0",
            "net.ipv6.conf.all.autoconf=0", "net.ipv6.conf.default.autoconf=0",
            "net.ipv6.conf.default.router_solicitations=0",
            "net.ipv6.conf.default.addr_gen_mode=1")
        nsx(ns, "ip", "link", "set", "lo", "up")
        for side in ("inside", "outside"):
            p = self.peer[side]
            nsx(p, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1")
            nsx(p, "ip", "link", "add", "p0", "address", PMAC[side], "type", "veth",
                "peer", "name", side, "address", RMAC[side], "netns", ns)
            nsx(p, "ip", "link", "set", "p0", "up")
            nsx(ns, "sysctl", "-qw", f"net.ipv4.conf.{side}.rp_filter=0")
            nsx(ns, "ip", "link", "set", side, "up")
        r = self.cap["router"]
        for side in ("inside", "outside"):
            for a in r[side]:
                if ":" in a:
                    nsx(ns, "ip", "-6", "addr", "add", f"{a}/128", "dev", side, "nodad")
                else:
                    nsx(ns, "ip", "addr", "add", f"{a}/32", "dev", side)
            nsx(ns, "ip", "neigh", "replace", GW4[side], "lladdr", GWMAC[side], "dev", side,
                "nud", "permanent")
            nsx(ns, "ip", "-6", "neigh", "replace", GW6[side], "lladdr", GWMAC[side], "dev", side,
                "nud", "permanent")
        for cidr in self.cap["inside"]:
            if ":" in cidr:
                nsx(ns, "ip", "-6", "route", "add", cidr, "via", GW6["inside"], "dev", "inside")
            else:
                nsx(ns, "ip", "route", "add", cidr, "via", GW4["inside"], "dev", "inside", "onlink")
        nsx(ns, "ip", "route", "add", "default", "via", GW4["outside"], "dev", "outside", "onlink")
        nsx(ns, "ip", "-6", "route", "add", "default", "via", GW6["outside"], "dev", "outside")
        v4, v6 = split_rules(self.cap["rules"])
        for tool, text in (("iptables-restore", v4), ("ip6tables-restore", v6)):
            rr = nsx(ns, tool, input_=text, check=False)
            if rr.returncode != 0:
                raise OracleError(f"{tool} rejected the rules:\n{text}\n{rr.stderr}")
        for side in ("inside", "outside"):
            self.socks[side] = packet_socket_in(self.peer[side], "p0", ETH_P_ALL, blocking=False)
        time.sleep(0.05)
        self.drain()

    def cleanup(self):
        for s in self.socks.values():
            try:
                s.close()
            except OSError:
                pass
        for n in reversed(self.created):
            subprocess.run(["ip", "netns", "del", n], capture_output=True, timeout=30)
        self.created = []

    def recv_ready(self, timeout):
        got = []
        r, _, _ = select.select(list(self.socks.values()), [], [], max(timeout, 0))
        for side, s in self.socks.items():
            if s not in r:
                continue
            while True:
                try:
                    data, addr = s.recvfrom(65536)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING or is_noise(data):
                    continue
                got.append({"side": side, "frame": data.hex()})
        return got

    def drain(self):
        return self.recv_ready(0)

    def side_of(self, frame):
        src = src_addr(frame)
        if src is not None and any(ip_in(src, c) for c in self.cap["inside"]):
            return "inside"
        return "outside"

    def run(self, pkts):
        results = []
        for i, frame in enumerate(pkts):
            late = self.drain()
            if late and results:
                results[-1]["out"] += late
                results[-1]["late"] = True
            side = self.side_of(frame)
            self.socks[side].send(mac_bytes(RMAC[side]) + frame[6:])
            out = []
            deadline = time.monotonic() + self.settle
            while time.monotonic() < deadline:
                got = self.recv_ready(deadline - time.monotonic())
                if got:
                    out += got
                    deadline = min(deadline, time.monotonic() + 0.02)
            results.append({"index": i, "in": side, "out": out})
        late = self.recv_ready(0.05)
        if late and results:
            results[-1]["out"] += late
            results[-1]["late"] = True
        return results

    def dump(self):
        for what in (["conntrack", "-L", "-o", "extended"], ["conntrack", "-L", "expect"],
                     ["iptables-save"], ["ip6tables-save"]):
            r = nsx(self.ns, *what, check=False)
            print(f"# {' '.join(what)}:", file=sys.stderr)
            for line in (r.stdout + r.stderr).rstrip().splitlines():
                if not line.startswith("# Generated") and not line.startswith("# Completed"):
                    print(f"#   {line}", file=sys.stderr)


def load_capture(name, manifest):
    with open(manifest) as f:
        for c in json.load(f)["captures"]:
            if c["name"] == name:
                return c
    raise OracleError(f"{name}: not in {manifest}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("capture", help="capture name in the manifest")
    p.add_argument("--manifest", default=MANIFEST)
    p.add_argument("--settle", type=float, default=0.1,
                   help="seconds to wait for output after each frame (default 0.1)")
    p.add_argument("--timeout", type=float, default=120, help="whole-run limit (default 120 s)")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("linux_nat_oracle.py must run as root", file=sys.stderr)
        return 2
    cap = load_capture(a.capture, a.manifest)
    linktype, raw = read_pcap(os.path.join(os.path.dirname(a.manifest), cap["file"]))
    pkts = [to_ethernet(linktype, fr) for _, fr in raw]

    def on_signal(signum, _frame):
        if signum == signal.SIGALRM:
            raise Timeout(f"run exceeded --timeout {a.timeout}s")
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, on_signal)
    signal.setitimer(signal.ITIMER_REAL, a.timeout)
    u = os.uname()
    print(f"# kernel {u.release} ({u.version}) capture={cap['name']} packets={len(pkts)}",
          file=sys.stderr, flush=True)
    remove_stale_namespaces("or", ("r", "i", "o"))
    r = Router(cap, a.settle)

    def body():
        r.setup()
        for rec in r.run(pkts):
            print(json.dumps(rec), flush=True)
        r.dump()
    return run_guarded("linux_nat_oracle.py", body, r.cleanup)


if __name__ == "__main__":
    sys.exit(main())
