"""What the two kernel oracles and their drivers share.

linux_oracle.py (conntrack states) and linux_nat_oracle.py (NAT output),
run_all.py / run_nat_all.py (run them over a manifest), compare_nat.py and
gen_captures.py / gen_nat_captures.py (write the captures and the manifest)
import from here: the pcap reader, command and namespace helpers, the
AF_PACKET socket inside a namespace, and the run-every-capture loop.  Only the
Python standard library (the capture writer imports scapy when called).
"""

import concurrent.futures
import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import sys

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003


class OracleError(Exception):
    pass


class Timeout(Exception):
    pass


# --------------------------------------------------------------------------
# pcap reading (classic libpcap format; stdlib only)
# --------------------------------------------------------------------------

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101          # raw IPv4/IPv6
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229


def read_pcap(path):
    """Return (linktype, [(ts_float, bytes), ...])."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise OracleError(f"{path}: too short for a pcap header")
    magic = data[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        return read_pcapng(path, data)
    table = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    if magic not in table:
        raise OracleError(f"{path}: not a pcap file (magic {magic.hex()})")
    end, unit = table[magic]
    _, _, _, _, _, linktype = struct.unpack(end + "HHiIII", data[4:24])
    linktype &= 0xFFFF
    pkts = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        if off + incl > len(data):
            raise OracleError(f"{path}: truncated record at byte {off}")
        pkts.append((sec + frac * unit, data[off:off + incl]))
        off += incl
    return linktype, pkts


def read_pcapng(path, data):
    """Minimal pcapng reader: first interface's link type, EPB/SPB blocks."""
    off = 0
    end = "<"
    linktypes, tsres, pkts = [], [], []
    while off + 12 <= len(data):
        btype = struct.unpack(end + "I", data[off:off + 4])[0]
        if btype == 0x0A0D0D0A:
            bom = data[off + 8:off + 12]
            end = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
        blen = struct.unpack(end + "I", data[off + 4:off + 8])[0]
        body = data[off + 8:off + blen - 4]
        if btype == 1:  # IDB
            linktypes.append(struct.unpack(end + "H", body[:2])[0])
            res = 1e-6
            o = 8
            while o + 4 <= len(body):
                code, olen = struct.unpack(end + "HH", body[o:o + 4])
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    v = body[o + 4]
                    res = 2 ** -(v & 0x7F) if v & 0x80 else 10 ** -v
                o += 4 + ((olen + 3) & ~3)
            tsres.append(res)
        elif btype == 6:  # EPB
            ifid, tsh, tsl, cap, _ = struct.unpack(end + "IIIII", body[:20])
            ts = ((tsh << 32) | tsl) * tsres[ifid]
            pkts.append((ts, body[20:20 + cap]))
        elif btype == 3:  # SPB
            pkts.append((pkts[-1][0] if pkts else 0.0, body[4:]))
        off += blen
    if not linktypes:
        raise OracleError(f"{path}: pcapng without interface block")
    return linktypes[0], pkts


def to_ethernet(linktype, frame):
    if linktype == LINKTYPE_ETHERNET:
        return frame
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        ver = frame[0] >> 4 if frame else 0
        etype = b"\x86\xdd" if ver == 6 else b"\x08\x00"
        return b"\x00" * 12 + etype + frame
    raise OracleError(f"unsupported pcap link type {linktype}")


# --------------------------------------------------------------------------
# helpers: commands, namespaces
# --------------------------------------------------------------------------

def sh(args, check=True, input_=None, timeout=30):
    r = subprocess.run(args, input=input_, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise OracleError(f"command failed ({r.returncode}): {' '.join(args)}\n{r.stderr.strip()}")
    return r


def nsx(ns, *args, **kw):
    return sh(["ip", "netns", "exec", ns] + list(args), **kw)


_libc = ctypes.CDLL(None, use_errno=True)


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OracleError(f"setns({path}): {os.strerror(e)}")
    finally:
        os.close(fd)


def packet_socket_in(ns, ifname, proto=0, blocking=True):
    """Open an AF_PACKET socket bound to IFNAME inside namespace NS.

    PROTO 0 opens a send-only socket; ETH_P_ALL also receives every frame.
    """
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        setns(f"/var/run/netns/{ns}")
        try:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
            s.bind((ifname, proto))   # CPython applies htons to the bind protocol itself
            s.setblocking(blocking)
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OracleError("cannot return to the original network namespace")
    finally:
        os.close(own)
    return s


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(":"))


# --------------------------------------------------------------------------
# namespaces left behind, manifests, running an oracle over every capture
# --------------------------------------------------------------------------

def remove_stale_namespaces(prefix, kinds, log=None):
    """Delete PREFIX-KIND-PID namespaces whose oracle process (PID) is gone (it was SIGKILLed)."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if len(parts) == 3 and parts[0] == prefix and parts[1] in kinds and parts[2].isdigit():
            if not os.path.exists(f"/proc/{parts[2]}"):
                if log:
                    log(f"removing stale namespace {name}")
                subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def load_manifest(path):
    with open(path) as f:
        return json.load(f)["captures"]


def run_oracle(cmd, c, outdir, timeout):
    """Run one oracle command for capture C: stdout to OUTDIR/<name>.jsonl, stderr to OUTDIR/logs/<name>.log.

    Returns (name, ok, returncode, records); ok when it exited 0 with one record per packet.
    """
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    with open(os.path.join(outdir, c["name"] + ".jsonl"), "w") as f:
        f.write(r.stdout)
    os.makedirs(os.path.join(outdir, "logs"), exist_ok=True)
    with open(os.path.join(outdir, "logs", c["name"] + ".log"), "w") as f:
        f.write(r.stderr)
    n = len([ln for ln in r.stdout.splitlines() if ln.strip()])
    return c["name"], r.returncode == 0 and n == c["packets"], r.returncode, n


def run_captures(caps, jobs, run_one):
    """RUN_ONE(c) -> run_oracle's tuple over CAPS on JOBS threads; prints a line each, returns the failures."""
    failures = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        for name, ok, rc, n in ex.map(run_one, caps):
            print(f"{'ok  ' if ok else 'FAIL'} {name}: rc={rc} records={n}", flush=True)
            failures += not ok
    return failures


def run_guarded(prog, body, cleanup):
    """Run BODY(); an oracle error or a timeout is reported as PROG: error (exit status 1),
    ^C as 130; CLEANUP() always runs, with the timer off and the signals ignored."""
    rc = 0
    try:
        body()
    except (OracleError, Timeout, subprocess.TimeoutExpired) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        rc = 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        rc = 130
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)   # never interrupt the cleanup
        cleanup()
    return rc


def gen_main(doc, cases, captures, comment):
    """`gen_*.py OUT_DIR`: run each of CASES (they fill CAPTURES), then write the captures
    and the manifest with COMMENT into OUT_DIR; DOC is the usage text."""
    if len(sys.argv) != 2:
        print(doc, file=sys.stderr)
        return 2
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for case in cases:
        case()
    return write_captures(out, captures, comment)


def write_captures(out, captures, comment):
    """Write each capture's frames to OUT/<file> and OUT/manifest.json (needs scapy)."""
    from scapy.all import wrpcap
    manifest = []
    for c in captures:
        frames = c.pop("_frames")
        wrpcap(os.path.join(out, c["file"]), frames, linktype=1)
        manifest.append(c)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"version": 1, "comment": comment, "captures": manifest}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(manifest)} captures, {sum(c['packets'] for c in manifest)} packets to {out}")
    return 0
