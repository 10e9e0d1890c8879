#!/usr/bin/env python3
"""Compare the frames a NAT implementation emits with the Linux router's (issue 17).

    compare_nat.py KERNEL_DIR OTHER_DIR [--only NAME ...] [--divergences DIVERGENCES.md]
    compare_nat.py --self-test [KERNEL_DIR]

KERNEL_DIR holds linux_nat_oracle.py's NAME.jsonl (tests/oracle/expected/nat).
OTHER_DIR holds, per capture, either NAME.pcap (`statewall replay --out`: every
output frame carries the timestamp of the input frame it answers) or NAME.jsonl
(a second oracle run: `run_nat_all.py --check`).  Captures come from
captures/nat/manifest.json.

Per input packet the output frames must be equal byte for byte after normalising
only what a bridge legitimately does differently from a router: the Ethernet
addresses (zeroed) and the outer IPv4 TTL / IPv6 hop limit (zeroed, IPv4 header
checksum recomputed).  Frames are compared as a sorted list per input packet,
together with the side they leave on (for a pcap: inferred from the destination
address and the manifest's inside prefixes).

The manifest's "choices" are values the kernel picks by random search or hash
(SNAT port or ICMP echo id on a clash or out of range, SNAT address out of a range;
fields "sport", "icmp_id", "saddr").  For those
packets the value is checked for its property instead: in the range, not one of
the "not" values, the same on every packet of the flow, and the frame's IPv4 and
L4 checksums valid; then it is replaced by the kernel's value (checksums
recomputed) and the rest is compared byte for byte.

A mismatch listed in DIVERGENCES.md (capture | index | reason) is reported as
known.  Exit 0: all agree; 1: an unexplained mismatch; 2: usage/input error.
"""

import argparse
import ipaddress
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from oracle_common import load_manifest as _load_manifest, read_pcap  # noqa: E402

MANIFEST = os.path.join(HERE, "captures", "nat", "manifest.json")
EXPECTED = os.path.join(HERE, "expected", "nat")
DIVERGENCES = os.path.join(HERE, "DIVERGENCES.md")


# ---------------------------------------------------------------------------
# packet arithmetic
# ---------------------------------------------------------------------------

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def l3(frame):
    """(ethertype, l3 offset) skipping one VLAN tag."""
    et = struct.unpack("!H", frame[12:14])[0]
    if et == 0x8100 and len(frame) >= 18:
        return struct.unpack("!H", frame[16:18])[0], 18
    return et, 14


def l4(frame):
    """(version, proto, l3 off, l4 off, l4 end) or None (not IP, or a fragment)."""
    et, o = l3(frame)
    if et == 0x0800 and len(frame) >= o + 20:
        ihl = (frame[o] & 15) * 4
        tot = struct.unpack("!H", frame[o + 2:o + 4])[0]
        if struct.unpack("!H", frame[o + 6:o + 8])[0] & 0x3FFF:
            return None
        return 4, frame[o + 9], o, o + ihl, o + tot
    if et == 0x86DD and len(frame) >= o + 40:
        plen = struct.unpack("!H", frame[o + 4:o + 6])[0]
        return 6, frame[o + 6], o, o + 40, o + 40 + plen
    return None


def pseudo(v, frame, o, proto, length):
    if v == 4:
        return frame[o + 12:o + 20] + struct.pack("!BBH", 0, proto, length)
    return frame[o + 8:o + 40] + struct.pack("!IxxxB", length, proto)


CSUM_AT = {6: 16, 17: 6, 1: 2, 58: 2}


def l4_csum_ok(frame):
    x = l4(frame)
    if not x:
        return True
    v, proto, o, lo, end = x
    if proto not in CSUM_AT:
        return True
    seg = frame[lo:end]
    if proto == 17 and v == 4 and seg[6:8] == b"\0\0":
        return True
    ph = b"" if proto == 1 else pseudo(v, frame, o, proto, len(seg))
    return csum(ph + seg) == 0


def fix_csums(frame):
    """Recompute the IPv4 header checksum and the L4 checksum of FRAME (bytes)."""
    b = bytearray(frame)
    x = l4(b)
    if not x:
        return bytes(b)
    v, proto, o, lo, end = x
    if v == 4:
        ihl = (b[o] & 15) * 4
        b[o + 10:o + 12] = b"\0\0"
        b[o + 10:o + 12] = struct.pack("!H", csum(bytes(b[o:o + ihl])))
    if proto in CSUM_AT:
        at = lo + CSUM_AT[proto]
        b[at:at + 2] = b"\0\0"
        seg = bytes(b[lo:end])
        ph = b"" if proto == 1 else pseudo(v, b, o, proto, len(seg))
        c = csum(ph + seg)
        if proto == 17 and c == 0:
            c = 0xFFFF
        b[at:at + 2] = struct.pack("!H", c)
    return bytes(b)


def complete_partial(frame):
    """FRAME with a CHECKSUM_PARTIAL TCP/UDP checksum completed.

    When the kernel rewrites a payload (nf_nat_mangle_tcp_packet: FTP through NAT) it
    leaves the TCP checksum to the device (CHECKSUM_PARTIAL: the field holds only the
    pseudo-header sum), and the veth the oracle captures on hands the frame over as is.
    On a wire the device fills in the sum; this does what the device would.  Any other
    frame (a right checksum, or a wrong one that is not exactly the pseudo-header sum)
    is returned unchanged."""
    x = l4(frame)
    if not x:
        return frame
    v, proto, o, lo, end = x
    if proto not in (6, 17) or end > len(frame) or l4_csum_ok(frame):
        return frame
    seg = frame[lo:end]
    at = CSUM_AT[proto]
    stored = struct.unpack("!H", seg[at:at + 2])[0]
    partial = (~csum(pseudo(v, frame, o, proto, len(seg)))) & 0xFFFF
    if stored != partial:
        return frame
    return fix_csums(frame)


def ip4_hdr_ok(frame):
    et, o = l3(frame)
    if et != 0x0800:
        return True
    ihl = (frame[o] & 15) * 4
    return csum(frame[o:o + ihl]) == 0


def normalise(frame):
    """Zero the MACs and the outer TTL / hop limit; recompute the IPv4 header checksum."""
    b = bytearray(frame)
    b[0:12] = bytes(12)
    et, o = l3(b)
    if et == 0x0800 and len(b) >= o + 20:
        ihl = (b[o] & 15) * 4
        b[o + 8] = 0
        b[o + 10:o + 12] = b"\0\0"
        b[o + 10:o + 12] = struct.pack("!H", csum(bytes(b[o:o + ihl])))
    elif et == 0x86DD and len(b) >= o + 40:
        b[o + 7] = 0
    return bytes(b)


def dst_addr(frame):
    et, o = l3(frame)
    if et == 0x0800 and len(frame) >= o + 20:
        return ipaddress.ip_address(frame[o + 16:o + 20])
    if et == 0x86DD and len(frame) >= o + 40:
        return ipaddress.ip_address(frame[o + 24:o + 40])
    return None


def get_field(frame, field):
    x = l4(frame)
    if not x:
        return None
    v, proto, o, lo, end = x
    if field == "sport":
        return struct.unpack("!H", frame[lo:lo + 2])[0]
    if field == "icmp_id":
        return struct.unpack("!H", frame[lo + 4:lo + 6])[0]
    if field == "saddr":
        return str(ipaddress.ip_address(frame[o + 12:o + 16] if v == 4 else frame[o + 8:o + 24]))
    raise ValueError(field)


def set_field(frame, field, value):
    b = bytearray(frame)
    v, proto, o, lo, end = l4(b)
    if field == "sport":
        b[lo:lo + 2] = struct.pack("!H", value)
    elif field == "icmp_id":
        b[lo + 4:lo + 6] = struct.pack("!H", value)
    else:
        a = ipaddress.ip_address(value).packed
        if v == 4:
            b[o + 12:o + 16] = a
        else:
            b[o + 8:o + 24] = a
    return fix_csums(bytes(b))


def in_range(value, rng):
    lo, hi = rng
    if isinstance(lo, str):
        return ipaddress.ip_address(lo) <= ipaddress.ip_address(value) <= ipaddress.ip_address(hi)
    return lo <= value <= hi


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------

def read_jsonl(path):
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                r = json.loads(line)
                out[r["index"]] = [(o["side"], bytes.fromhex(o["frame"])) for o in r["out"]]
    return out


def read_out_pcap(path, input_pcap, inside):
    """statewall replay --out: map output frames to inputs by timestamp."""
    _, inp = read_pcap(input_pcap)
    by_ts = {}
    for i, (ts, _) in enumerate(inp):
        by_ts.setdefault(round(ts * 1e6), i)
    nets = [ipaddress.ip_network(c, strict=False) for c in inside]
    out = {i: [] for i in range(len(inp))}
    unmatched = []
    _, frames = read_pcap(path)
    for ts, fr in frames:
        i = by_ts.get(round(ts * 1e6))
        d = dst_addr(fr)
        side = "inside" if d is not None and any(d.version == n.version and d in n for n in nets) \
            else "outside"
        if i is None:
            unmatched.append(fr)
        else:
            out[i].append((side, fr))
    return out, unmatched


def parse_divergences(path):
    rules = []
    if not path or not os.path.exists(path):
        return rules
    with open(path) as f:
        for line in f:
            cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
            if not line.strip().startswith("|") or len(cells) < 3 or cells[0] in ("capture", "---"):
                continue
            rules.append((cells[0], cells[1], "|".join(cells[2:]).strip()))
    return rules


def known(rules, cap, idx):
    for c, i, reason in rules:
        if c not in ("*", cap):
            continue
        if i == "*":
            return reason
        if "-" in i:
            a, _, b = i.partition("-")
            if a.isdigit() and b.isdigit() and int(a) <= idx <= int(b):
                return reason
        elif i.isdigit() and int(i) == idx:
            return reason
    return None


# ---------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------

def first_diff(a, b):
    for n, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return n
    return min(len(a), len(b))


def check_choices(cap, kern, other):
    """Check the property of every chosen value in OTHER, then rewrite OTHER's values
    to KERNEL's.  Returns (problems {index: [text]}, rewritten OTHER)."""
    problems = {}
    other = {i: list(v) for i, v in other.items()}
    for n, ch in enumerate(cap.get("choices", [])):
        field, rng, forbid = ch["field"], ch["range"], ch.get("not", [])
        kvals, ovals = set(), set()
        for i in ch["indices"]:
            for side, fr in kern.get(i, []):
                if side == "outside":
                    kvals.add(get_field(fr, field))
        if len(kvals) != 1:
            problems.setdefault(ch["indices"][0], []).append(
                f"choice {n}: the kernel's value is not unique: {sorted(map(str, kvals))}")
            continue
        kv = kvals.pop()
        for i in ch["indices"]:
            new = []
            for side, fr in other.get(i, []):
                if side != "outside" or l4(fr) is None:
                    new.append((side, fr))
                    continue
                val = get_field(fr, field)
                ovals.add(val)
                why = []
                if not in_range(val, rng):
                    why.append(f"{field} {val} not in {rng}")
                if val in forbid:
                    why.append(f"{field} {val} is the clashing value")
                if not ip4_hdr_ok(fr):
                    why.append("bad IPv4 header checksum")
                if not l4_csum_ok(fr):
                    why.append("bad L4 checksum")
                if why:
                    problems.setdefault(i, []).append(f"choice {n}: " + "; ".join(why))
                new.append((side, set_field(fr, field, kv) if val != kv else fr))
            other[i] = new
        if len(ovals) > 1:
            problems.setdefault(ch["indices"][0], []).append(
                f"choice {n}: {field} differs between packets of one flow: {sorted(map(str, ovals))}")
    return problems, other


def compare_capture(cap, kern, other, rules, unmatched=(), other_kernel=True):
    """Returns (mismatches [(index, text)], known [(index, reason)], frames compared).

    The kernel's CHECKSUM_PARTIAL frames are completed (complete_partial) before the
    comparison; OTHER's only when it is a kernel run too (OTHER_KERNEL), so a bridge
    (statewall) must write the full checksum itself."""
    problems, other = check_choices(cap, kern, other)
    bad, ok_known, n = [], [], 0
    done = (lambda f: complete_partial(f)) if other_kernel else (lambda f: f)
    for i in range(cap["packets"]):
        k = sorted((s, normalise(complete_partial(f))) for s, f in kern.get(i, []))
        o = sorted((s, normalise(done(f))) for s, f in other.get(i, []))
        n += len(k)
        msgs = list(problems.get(i, []))
        if k != o:
            if len(k) != len(o):
                msgs.append(f"kernel emits {len(k)} frame(s) {[s for s, _ in k]}, other {len(o)} "
                            f"{[s for s, _ in o]}")
            for (ks, kf), (os_, of) in zip(k, o):
                if ks != os_:
                    msgs.append(f"side: kernel {ks}, other {os_}")
                if kf != of:
                    d = first_diff(kf, of)
                    msgs.append(f"frame differs at byte {d} (len {len(kf)} vs {len(of)}): kernel "
                                f"…{kf[d:d + 16].hex()} other …{of[d:d + 16].hex()}")
        if msgs:
            reason = known(rules, cap["name"], i)
            if reason:
                ok_known.append((i, reason))
            else:
                bad.append((i, "; ".join(msgs)))
    for fr in unmatched:
        bad.append((-1, f"output frame with no matching input timestamp: {fr[:34].hex()}…"))
    return bad, ok_known, n


def load_manifest(path=MANIFEST):
    return _load_manifest(path)


def run_dirs(kdir, odir, only, divergences, manifest=MANIFEST):
    rules = parse_divergences(divergences)
    caps = [c for c in load_manifest(manifest) if not only or c["name"] in only]
    total_bad = 0
    frames = 0
    for c in caps:
        kpath = os.path.join(kdir, c["name"] + ".jsonl")
        if not os.path.exists(kpath):
            print(f"FAIL {c['name']}: no kernel output {kpath}")
            total_bad += 1
            continue
        kern = read_jsonl(kpath)
        pj = os.path.join(odir, c["name"] + ".jsonl")
        pp = os.path.join(odir, c["name"] + ".pcap")
        unmatched = []
        other_kernel = os.path.exists(pj)
        if other_kernel:
            other = read_jsonl(pj)
        elif os.path.exists(pp):
            inp = os.path.join(os.path.dirname(manifest), c["file"])
            other, unmatched = read_out_pcap(pp, inp, c["inside"])
        else:
            print(f"FAIL {c['name']}: neither {pj} nor {pp}")
            total_bad += 1
            continue
        bad, kn, n = compare_capture(c, kern, other, rules, unmatched, other_kernel)
        frames += n
        status = "FAIL" if bad else "ok  "
        extra = f", {len(kn)} known divergence(s)" if kn else ""
        rnd = " (random choice checked by property)" if c.get("choices") else ""
        print(f"{status} {c['name']}: {c['packets']} packets, {n} kernel frames{extra}{rnd}")
        for i, msg in bad:
            print(f"     [{i}] {msg}")
        for i, reason in kn:
            print(f"     [{i}] known: {reason}")
        total_bad += len(bad)
    print(f"{len(caps)} captures, {frames} kernel output frames, {total_bad} unexplained mismatch(es)")
    return 1 if total_bad else 0


# ---------------------------------------------------------------------------
# self-test: the comparison logic against the kernel's own output
# ---------------------------------------------------------------------------

def write_pcap(path, records):
    """Classic µs pcap, Ethernet: records = [(ts_float, frame)]."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, fr in records:
            us = round(ts * 1e6)
            f.write(struct.pack("<IIII", us // 1000000, us % 1000000, len(fr), len(fr)) + fr)


def self_test(kdir, manifest=MANIFEST):
    import tempfile
    caps = load_manifest(manifest)
    fails = []
    tmp = tempfile.mkdtemp(prefix="compare-nat-selftest-")

    def expect(name, cap, kern, other, want_ok):
        bad, _, _ = compare_capture(cap, kern, other, [])
        if (not bad) != want_ok:
            fails.append(f"{cap['name']}: {name}: expected {'agreement' if want_ok else 'a mismatch'}"
                         f", got {bad[:2]}")

    checked = 0
    partials = 0
    for c in caps:
        path = os.path.join(kdir, c["name"] + ".jsonl")
        if not os.path.exists(path):
            fails.append(f"{c['name']}: missing {path}")
            continue
        kern = read_jsonl(path)
        if not any(kern.values()):
            fails.append(f"{c['name']}: the kernel emitted nothing at all")
            continue
        checked += 1
        expect("itself", c, kern, kern, True)
        # the statewall path: a `replay --out` style pcap (outputs carry their input's
        # timestamp, the side is inferred from the destination address)
        _, inp = read_pcap(os.path.join(os.path.dirname(manifest), c["file"]))
        pp = os.path.join(tmp, c["name"] + ".pcap")
        # (a bridge writes full checksums: the kernel's CHECKSUM_PARTIAL ones completed)
        write_pcap(pp, [(inp[i][0], complete_partial(f)) for i in sorted(kern)
                        for _, f in kern[i]])
        other, unmatched = read_out_pcap(pp, os.path.join(os.path.dirname(manifest), c["file"]),
                                         c["inside"])
        bad, _, _ = compare_capture(c, kern, other, [], unmatched, other_kernel=False)
        if bad:
            fails.append(f"{c['name']}: kernel frames as a replay --out pcap: {bad[:2]}")
        # A frame the kernel left CHECKSUM_PARTIAL: a bridge must not do the same, and
        # the completion must not hide a changed payload byte.
        for j in sorted(kern):
            for n_, (sj, fj) in enumerate(kern[j]):
                if complete_partial(fj) == fj:
                    continue
                partials += 1

                def put(fr):
                    return {**kern, j: kern[j][:n_] + [(sj, fr)] + kern[j][n_ + 1:]}
                full = complete_partial(fj)
                if compare_capture(c, kern, put(full), [], other_kernel=False)[0]:
                    fails.append(f"{c['name']}[{j}]: the completed checksum was not accepted")
                if not compare_capture(c, kern, put(fj), [], other_kernel=False)[0]:
                    fails.append(f"{c['name']}[{j}]: a bridge's partial checksum was accepted")
                b = bytearray(full)
                b[-3] ^= 0x01
                if not compare_capture(c, kern, put(fix_csums(bytes(b))), [],
                                       other_kernel=False)[0]:
                    fails.append(f"{c['name']}[{j}]: a payload change was accepted")
        write_pcap(pp, [(inp[i][0] + 0.0001, f) for i in sorted(kern) for _, f in kern[i]])
        other, unmatched = read_out_pcap(pp, os.path.join(os.path.dirname(manifest), c["file"]),
                                         c["inside"])
        if not compare_capture(c, kern, other, [], unmatched)[0]:
            fails.append(f"{c['name']}: outputs with unmatched timestamps were accepted")
        i = next(i for i in sorted(kern) if kern[i])
        side, fr = kern[i][0]
        # router-vs-bridge differences are normalised: MACs, TTL/hop limit (+ IPv4 csum)
        b = bytearray(fr)
        b[0:12] = b"\x02\x11\x22\x33\x44\x55\x02\x66\x77\x88\x99\xaa"
        et, o = l3(b)
        if et in (0x0800, 0x86DD):
            b[o + (8 if et == 0x0800 else 7)] += 1
            b = bytearray(fix_csums(bytes(b)) if et == 0x0800 else b)
        expect("MACs and TTL differ", c, kern, {**kern, i: [(side, bytes(b))] + kern[i][1:]}, True)
        # anything else is a mismatch: a payload byte, a port, a dropped or an extra frame
        b = bytearray(fr)
        b[-1] ^= 0x01
        expect("last byte flipped", c, kern, {**kern, i: [(side, bytes(b))] + kern[i][1:]}, False)
        bad, kn, _ = compare_capture(c, kern, {**kern, i: [(side, bytes(b))] + kern[i][1:]},
                                     [(c["name"], str(i), "self-test")])
        if bad or len(kn) != 1:
            fails.append(f"{c['name']}: a listed divergence was not accepted as known: {bad[:1]}")
        expect("frame missing", c, kern, {**kern, i: kern[i][1:]}, False)
        expect("extra frame", c, kern, {**kern, i: kern[i] + [kern[i][0]]}, False)
        other_side = "inside" if side == "outside" else "outside"
        expect("wrong side", c, kern, {**kern, i: [(other_side, fr)] + kern[i][1:]}, False)
        if l4(fr) and l4(fr)[1] in (6, 17):
            b = bytearray(fr)
            lo = l4(fr)[3]
            b[lo + 2:lo + 4] = struct.pack("!H", (struct.unpack("!H", b[lo + 2:lo + 4])[0] + 1) & 0xFFFF)
            expect("dport changed (checksums right)", c, kern,
                   {**kern, i: [(side, fix_csums(bytes(b)))] + kern[i][1:]}, False)
        for ch in c.get("choices", []):
            idx = ch["indices"]
            kv = get_field(next(f for s, f in kern[idx[0]] if s == "outside"), ch["field"])
            if ch["field"] in ("sport", "icmp_id"):
                lo_, hi_ = ch["range"]
                alt = next(p for p in range(lo_, hi_ + 1) if p != kv and p not in ch["not"])
                bads = [("the clashing value", v) for v in ch["not"]]
                if hi_ < 65535 or lo_ > 0:
                    bads.append(("out of range", hi_ + 1 if hi_ < 65535 else lo_ - 1))
            else:
                lo_, hi_ = (ipaddress.ip_address(x) for x in ch["range"])
                alt = next((str(lo_ + k) for k in range(int(hi_) - int(lo_) + 1)
                            if str(lo_ + k) != kv), None)
                bads = [("out of range", str(hi_ + 1))]

            def remap(val, only_first=False):
                o = dict(kern)
                for n, j in enumerate(idx):
                    if only_first and n > 0:
                        continue
                    o[j] = [(s, set_field(f, ch["field"], val) if s == "outside" else f)
                            for s, f in kern[j]]
                return o
            if alt is not None:
                expect(f"another valid {ch['field']} {alt}", c, kern, remap(alt), True)
                if len(idx) > 1:
                    expect("inconsistent choice", c, kern, remap(alt, only_first=True), False)
                o = remap(alt)
                s0, f0 = o[idx[0]][0]
                fb = bytearray(f0)
                lo4 = l4(f0)[3]
                at = lo4 + CSUM_AT[l4(f0)[1]]
                fb[at] ^= 0xFF
                o[idx[0]] = [(s0, bytes(fb))] + o[idx[0]][1:]
                expect("valid choice but bad L4 checksum", c, kern, o, False)
            for what, v in bads:
                expect(f"{ch['field']} {what} ({v})", c, kern, remap(v), False)
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    for f in fails:
        print(f"SELF-TEST FAIL {f}")
    print(f"compare_nat self-test: {checked} captures ({partials} CHECKSUM_PARTIAL frame(s)), "
          f"{len(fails)} failure(s)")
    return 1 if fails or checked == 0 else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kernel_dir", nargs="?", default=EXPECTED)
    ap.add_argument("other_dir", nargs="?")
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--divergences", default=DIVERGENCES)
    ap.add_argument("--manifest", default=MANIFEST)
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return self_test(a.kernel_dir, a.manifest)
    if not a.other_dir:
        ap.error("OTHER_DIR is required (or --self-test)")
    return run_dirs(a.kernel_dir, a.other_dir, a.only, a.divergences, a.manifest)


if __name__ == "__main__":
    sys.exit(main())
