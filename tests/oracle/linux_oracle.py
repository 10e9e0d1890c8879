#!/usr/bin/env python3
"""Linux conntrack reference oracle.

Replays every frame of a pcap into a fresh network namespace and reports the
conntrack state the *kernel* gave each packet, one JSON object per line:

    {"index": 0, "ct_state": "NEW", "ct_dir": "ORIGINAL"}

How it works (see README.md in this directory for the empirical findings):

* two fresh namespaces are created: ``swo-ns-<pid>`` (the kernel under test)
  and ``swo-inj-<pid>`` (the injector side, so no traffic ever touches the
  host's own stack).  A veth pair joins them.
* inside the test namespace: IPv4/IPv6 forwarding on, rp_filter off, DAD/RA
  off, a dummy interface with default routes (v4 and v6).  Every injected IP
  packet is therefore FORWARDED and passes POST_ROUTING, where conntrack
  confirms a new entry exactly as for a packet a firewall accepted.
* an nftables ruleset counts packets at three points:
    - netdev ingress of the veth           -> the frame arrived at all
    - inet prerouting, priority -450       -> it passed IP header sanity (before defrag)
    - inet prerouting, priority -150       -> one named counter per ct state x direction
  plus a raw (-300) chain for user ``--notrack`` rules and a priority 0 chain
  for ``ct helper set`` (the helper object needs the unconfirmed ct, so it
  must run after conntrack at -200).
* each frame is sent from the injector end with an AF_PACKET socket; only the
  destination MAC is rewritten (to the namespace end's MAC, so the kernel sees
  PACKET_HOST).  Counters are read after every frame and diffed.

Only the Python standard library plus the ``ip``, ``nft`` and ``conntrack``
binaries are needed.  Must run as root.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_common import (OracleError, Timeout, mac_bytes, nsx, packet_socket_in,  # noqa: E402
                           read_pcap, remove_stale_namespaces, run_guarded, sh, to_ethernet)

NS_MAC = "02:00:00:00:00:fe"
INJ_MAC = "02:00:00:00:00:fd"
GW_MAC = "02:00:00:00:00:fb"
SINK_V4 = "192.0.2.1"
SINK_V6 = "2001:db8:ffff::1"
TABLE = "swo"
STATES = ["new", "established", "related"]
DIRS = ["original", "reply"]
STATE_COUNTERS = [f"{s}_{d}" for s in STATES for d in DIRS] + ["invalid", "untracked"]
ALL_COUNTERS = ["ingress", "pre"] + STATE_COUNTERS

DEFAULT_TIMEOUT = 900  # whole-run wall clock limit (seconds)


def log(msg):
    print(f"[oracle] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# the oracle
# --------------------------------------------------------------------------

class Oracle:
    def __init__(self, args):
        self.args = args
        pid = os.getpid()
        self.ns = f"swo-ns-{pid}"
        self.inj = f"swo-inj-{pid}"
        self.created = []

    # -- setup / teardown ---------------------------------------------------
    def setup(self):
        for ns in (self.ns, self.inj):
            sh(["ip", "netns", "add", ns])
            self.created.append(ns)
        ns, inj = self.ns, self.inj
        # no IPv6 at all on the injector side: it must stay silent
        nsx(inj, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1")
        # test namespace base sysctls (before interfaces exist so defaults apply)
        nsx(ns, "sysctl", "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
            "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0",
            "net.ipv4.conf.all.accept_local=1",
            "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.default.forwarding=1",
            "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0",
            "net.ipv6.conf.all.autoconf=0", "net.ipv6.conf.default.autoconf=0",
            "net.ipv6.conf.default.router_solicitations=0")
        # veth: create inside the injector ns, move the peer into the test ns
        nsx(inj, "ip", "link", "add", "inj0", "address", INJ_MAC, "mtu", "9000",
            "type", "veth", "peer", "name", "veth0", "address", NS_MAC, "mtu", "9000",
            "netns", ns)
        # the "sink": a second veth pair that the test namespace forwards everything
        # to, via gateways with permanent neighbour entries (no ARP/ND needed).  The
        # gateway MAC is not the sink end's MAC, so the injector namespace drops the
        # frames as PACKET_OTHERHOST.  (No dummy driver needed: CONFIG_DUMMY may be off.)
        nsx(inj, "ip", "link", "add", "sink0", "mtu", "9000", "type", "veth",
            "peer", "name", "veth1", "mtu", "9000", "netns", ns)
        nsx(ns, "ip", "link", "set", "lo", "up")
        for dev in ("veth0", "veth1"):
            nsx(ns, "ip", "link", "set", dev, "up")
        for dev in ("inj0", "sink0"):
            nsx(inj, "ip", "link", "set", dev, "up")
        nsx(ns, "ip", "addr", "add", f"{SINK_V4}/30", "dev", "veth1")
        nsx(ns, "ip", "-6", "addr", "add", f"{SINK_V6}/64", "dev", "veth1", "nodad")
        nsx(ns, "ip", "neigh", "replace", "192.0.2.2", "lladdr", GW_MAC, "dev", "veth1", "nud", "permanent")
        nsx(ns, "ip", "-6", "neigh", "replace", "2001:db8:ffff::2", "lladdr", GW_MAC, "dev", "veth1",
            "nud", "permanent")
        nsx(ns, "ip", "route", "add", "default", "via", "192.0.2.2", "dev", "veth1")
        nsx(ns, "ip", "-6", "route", "add", "default", "via", "2001:db8:ffff::2", "dev", "veth1")
        for iface in ("veth0", "veth1"):
            nsx(ns, "sysctl", "-qw", f"net.ipv4.conf.{iface}.rp_filter=0")
        # user sysctls (normally net.netfilter.nf_conntrack_*)
        for kv in self.args.sysctl:
            name, _, value = kv.partition("=")
            name = name.strip()
            if not name.startswith("net."):
                name = "net.netfilter." + name
            nsx(ns, "sysctl", "-qw", f"{name}={value.strip()}")
        self.load_ruleset()
        # count what leaves the test namespace through the sink (= forwarded, i.e. passed
        # POST_ROUTING and the conntrack confirm step; FTP-helper drops show up here).
        # The namespace's own packets (ICMP errors such as time-exceeded for TTL<=1
        # frames) leave with the sink address as source and are not counted.
        sink_rules = (f"table netdev {TABLE}_sink {{\n  counter sinkpkts {{ }}\n"
                      '  chain ing { type filter hook ingress device "sink0" priority 0; '
                      f'ether daddr {GW_MAC} ip saddr != {SINK_V4} counter name "sinkpkts"; '
                      f'ether daddr {GW_MAC} ip6 saddr != {{ {SINK_V6}, fe80::/10 }} counter name "sinkpkts"; }}\n}}\n')
        r = nsx(inj, "nft", "-f", "-", input_=sink_rules, check=False)
        if r.returncode != 0:
            raise OracleError(f"nft rejected the sink ruleset: {r.stderr}")
        self.sock = packet_socket_in(inj, "inj0")
        self.ns_mac = mac_bytes(NS_MAC)

    def ruleset(self):
        a = self.args
        lines = [f"table inet {TABLE} {{"]
        for c in ["pre"] + STATE_COUNTERS:
            lines.append(f"  counter {c} {{ }}")
        if a.helper_ftp_port:
            lines.append('  ct helper ftp-h { type "ftp" protocol tcp; l3proto inet; }')
        # frames whose Ethernet source is the namespace end itself are the namespace's own
        # multicast looped back (e.g. MLD reports answering an injected MLD query):
        # never count them.
        own = f'iifname "veth0" ether saddr != {NS_MAC}'
        lines.append("  chain sanity { type filter hook prerouting priority -450; "
                     f'{own} counter name "pre"; }}')
        lines.append("  chain raw { type filter hook prerouting priority raw;")
        for rule in a.notrack:
            lines.append(f"    {rule}")
        lines.append("  }")
        lines.append("  chain states { type filter hook prerouting priority -150;")
        for s in STATES:
            for d in DIRS:
                lines.append(f'    {own} ct state {s} ct direction {d} counter name "{s}_{d}"')
        lines.append(f'    {own} ct state invalid counter name "invalid"')
        lines.append(f'    {own} ct state untracked counter name "untracked"')
        lines.append("  }")
        lines.append("  chain helpers { type filter hook prerouting priority 0;")
        for port in a.helper_ftp_port:
            lines.append(f'    tcp dport {port} ct helper set "ftp-h"')
        lines.append("  }")
        lines.append("}")
        lines.append(f"table netdev {TABLE}_dev {{")
        lines.append("  counter ingress { }")
        lines.append('  chain ing { type filter hook ingress device "veth0" priority 0; '
                     f'ether saddr != {NS_MAC} counter name "ingress"; }}')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def load_ruleset(self):
        text = self.ruleset()
        r = nsx(self.ns, "nft", "-f", "-", input_=text, check=False)
        if r.returncode != 0:
            raise OracleError(f"nft rejected the ruleset:\n{text}\n{r.stderr}")

    def cleanup(self):
        try:
            if getattr(self, "sock", None):
                self.sock.close()
        except OSError:
            pass
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.created = []

    # -- counters ---------------------------------------------------------------
    def read_counters(self):
        r = nsx(self.ns, "nft", "-j", "list", "counters")
        out = {}
        for obj in json.loads(r.stdout)["nftables"]:
            c = obj.get("counter")
            if c:
                out[c["name"]] = c["packets"]
        missing = [c for c in ALL_COUNTERS if c not in out]
        if missing:
            raise OracleError(f"counters missing: {missing}")
        return out

    def read_fwd(self):
        r = nsx(self.inj, "nft", "-j", "list", "counter", "netdev", f"{TABLE}_sink", "sinkpkts")
        for obj in json.loads(r.stdout)["nftables"]:
            if "counter" in obj:
                return obj["counter"]["packets"]
        raise OracleError("sink counter missing")

    def classify(self, before, after):
        diff = {k: after[k] - before[k] for k in ALL_COUNTERS}
        hit = [k for k in STATE_COUNTERS if diff[k] > 0]
        if diff["ingress"] == 0:
            return None, None, "frame never arrived on the namespace veth"
        if len(hit) > 1 or any(diff[k] > 1 for k in hit):
            return None, None, f"ambiguous counters {diff}"
        if hit:
            k = hit[0]
            if k in ("invalid", "untracked"):
                return k.upper(), None, None
            s, d = k.split("_")
            return s.upper(), d.upper(), None
        if diff["pre"] == 0:
            return None, None, "dropped before netfilter (not IPv4/IPv6, or rejected by the IP stack's header checks)"
        return None, None, "reached prerouting but not conntrack (held/dropped by defrag or dropped by conntrack)"

    # -- replay -------------------------------------------------------------------
    def run(self, pkts):
        a = self.args
        start_wall = None
        t0 = pkts[0][0] if pkts else 0.0
        cur = self.read_counters()
        fwd = self.read_fwd()
        results = []
        for i, (ts, frame) in enumerate(pkts):
            if not a.no_sleep:
                if start_wall is None:
                    start_wall = time.monotonic()
                target = start_wall + (ts - t0)
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if len(frame) < 14:
                results.append({"index": i, "ct_state": None, "ct_dir": None,
                                "note": "frame shorter than an Ethernet header; not sent"})
                print(json.dumps(results[-1]), flush=True)
                continue
            out = self.ns_mac + frame[6:]
            self.sock.send(out)
            # poll until the frame has been processed (state counter moved) or give up
            deadline = time.monotonic() + a.settle
            after = self.read_counters()
            while True:
                state, d, note = self.classify(cur, after)
                if state is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.005)
                after = self.read_counters()
            cur = after
            fwd_after = self.read_fwd()
            if fwd_after == fwd:  # give the sink veth's backlog a moment
                time.sleep(0.02)
                fwd_after = self.read_fwd()
            forwarded = fwd_after > fwd
            fwd = fwd_after
            rec = {"index": i, "ct_state": state, "ct_dir": d, "forwarded": forwarded}
            if note:
                rec["note"] = note
            results.append(rec)
            print(json.dumps(rec), flush=True)
        return results

    def dump_conntrack(self):
        for what in (["-L"], ["-L", "expect"]):
            r = nsx(self.ns, "conntrack", *what, "-o", "extended", check=False)
            print(f"# conntrack {' '.join(what)} (namespace {self.ns}):", file=sys.stderr)
            body = (r.stdout + r.stderr).rstrip()
            for line in body.splitlines():
                print(f"#   {line}", file=sys.stderr)
        sys.stderr.flush()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pcap")
    p.add_argument("--helper-ftp-port", type=int, action="append", default=[],
                   help="attach the FTP helper to TCP traffic to this port (repeatable)")
    p.add_argument("--notrack", action="append", default=[],
                   help="nft rule text for the raw (-300) prerouting chain, e.g. 'udp dport 53 notrack'")
    p.add_argument("--sysctl", action="append", default=[],
                   help="NAME=VALUE set in the namespace; a bare nf_conntrack_* name gets net.netfilter.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--realtime", dest="no_sleep", action="store_false",
                   help="respect capture timestamps (default)")
    g.add_argument("--no-sleep", dest="no_sleep", action="store_true",
                   help="send back to back, ignoring capture timestamps")
    p.set_defaults(no_sleep=False)
    p.add_argument("--settle", type=float, default=0.2,
                   help="seconds to wait for a frame to show up in a state counter (default 0.2)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"wall-clock limit for the whole run (default {DEFAULT_TIMEOUT}s)")
    p.add_argument("--keep-going", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("linux_oracle.py must run as root (network namespaces, nftables)", file=sys.stderr)
        return 2
    linktype, raw = read_pcap(args.pcap)
    pkts = [(ts, to_ethernet(linktype, fr)) for ts, fr in raw]

    def on_signal(signum, _frame):
        if signum == signal.SIGALRM:
            raise Timeout(f"run exceeded --timeout {args.timeout}s")
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, on_signal)   # even if started with SIGINT ignored (background job)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.setitimer(signal.ITIMER_REAL, args.timeout)

    uname = os.uname()
    print(f"# kernel {uname.release} ({uname.version}) pcap={args.pcap} packets={len(pkts)} "
          f"helper_ftp_port={args.helper_ftp_port} notrack={args.notrack} sysctl={args.sysctl} "
          f"sleep={'no' if args.no_sleep else 'yes'}", file=sys.stderr, flush=True)
    remove_stale_namespaces("swo", ("ns", "inj"), log)
    o = Oracle(args)

    def body():
        o.setup()
        o.run(pkts)
        o.dump_conntrack()
    return run_guarded("linux_oracle.py", body, o.cleanup)


if __name__ == "__main__":
    sys.exit(main())
