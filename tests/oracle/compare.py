#!/usr/bin/env python3
"""Packet-by-packet comparison of the kernel oracle's output with statewall's.

    compare.py KERNEL.jsonl STATEWALL.jsonl [--divergences DIVERGENCES.md] [--capture NAME]
    compare.py KERNEL_DIR  STATEWALL_DIR    [--divergences DIVERGENCES.md]

Both inputs are JSON lines with at least "index", "ct_state" and "ct_dir"
(statewall: `statewall replay --pcap IN --rules FILE --format jsonl`; extra
fields such as tcp_state, verdict and reason are shown for mismatches).
Records are matched by "index"; lines without an index are ignored.

* ct_state and ct_dir must both match ("ct_dir" null == missing).
* Kernel records with ct_state null never reached conntrack (dropped by the IP
  stack, or held by defrag); they are counted as "not comparable" and
  skipped unless --strict.
* A mismatch listed in the divergence table (a markdown table with columns
  capture | index | reason; index may be "*" or a range "3-5") is reported
  as known and does not fail the run.

Exit status: 0 all agree (or only known divergences), 1 unexplained mismatch,
2 usage / input error.  Directory mode compares every NAME.jsonl present in
KERNEL_DIR with STATEWALL_DIR/NAME.jsonl (missing statewall files fail).
"""

import argparse
import json
import os
import sys


def read_jsonl(path):
    out = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{n}: not JSON: {e}")
            if isinstance(rec, dict) and isinstance(rec.get("index"), int):
                out[rec["index"]] = rec
    return out


def parse_divergences(path):
    """Return {(capture, index_or_None_for_star): reason} plus ranges as a list."""
    rules = []
    if not path:
        return rules
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("|"):
                continue
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) < 3:
                continue
            cap, idx, reason = cells[0].strip("`"), cells[1].strip("`"), "|".join(cells[2:]).strip()
            if cap.lower() == "capture" or set(cap) <= set("-: "):
                continue
            if idx == "*":
                lo, hi = 0, float("inf")
            elif "-" in idx:
                a, b = idx.split("-", 1)
                lo, hi = int(a), int(b)
            else:
                try:
                    lo = hi = int(idx)
                except ValueError:
                    continue
            rules.append((cap, lo, hi, reason))
    return rules


def known(rules, capture, index):
    for cap, lo, hi, reason in rules:
        if (cap == capture or cap == "*") and lo <= index <= hi:
            return reason
    return None


def norm_dir(v):
    return v if v in ("ORIGINAL", "REPLY") else None


def compare(kpath, spath, capture, rules, strict, out):
    k, s = read_jsonl(kpath), read_jsonl(spath)
    st = {"compared": 0, "agree": 0, "known": 0, "mismatch": 0, "skipped": 0}
    for idx in sorted(k):
        kr = k[idx]
        if kr.get("ct_state") is None and not strict:
            st["skipped"] += 1
            continue
        sr = s.get(idx)
        st["compared"] += 1
        kv = (kr.get("ct_state"), norm_dir(kr.get("ct_dir")))
        sv = (sr.get("ct_state"), norm_dir(sr.get("ct_dir"))) if sr else ("<missing>", None)
        if kv == sv:
            st["agree"] += 1
            continue
        extra = ""
        if sr:
            extra = " ".join(f"{f}={sr[f]}" for f in ("tcp_state", "verdict", "reason") if f in sr)
        reason = known(rules, capture, idx)
        line = (f"{capture}[{idx}]: kernel {kv[0]}/{kv[1]}  statewall {sv[0]}/{sv[1]}"
                + (f"  ({extra})" if extra else "") + (f"  [known: {reason}]" if reason else ""))
        print(("  known    " if reason else "  MISMATCH ") + line, file=out)
        st["known" if reason else "mismatch"] += 1
    extra_idx = sorted(set(s) - set(k))
    if extra_idx:
        print(f"  note {capture}: statewall has records for indexes the kernel file lacks: {extra_idx[:10]}", file=out)
    return st


def main():
    ap = argparse.ArgumentParser(description="compare kernel oracle output with statewall replay output")
    ap.add_argument("kernel")
    ap.add_argument("statewall")
    ap.add_argument("--divergences", help="markdown table: capture | index | reason")
    ap.add_argument("--capture", help="capture name for the divergence table (default: kernel file stem)")
    ap.add_argument("--strict", action="store_true", help="also compare packets the kernel never tracked")
    a = ap.parse_args()
    rules = parse_divergences(a.divergences)
    pairs = []
    if os.path.isdir(a.kernel):
        if not os.path.isdir(a.statewall):
            print("both arguments must be directories, or both files", file=sys.stderr)
            return 2
        for fn in sorted(os.listdir(a.kernel)):
            if fn.endswith(".jsonl"):
                pairs.append((fn[:-6], os.path.join(a.kernel, fn), os.path.join(a.statewall, fn)))
    else:
        name = a.capture or os.path.splitext(os.path.basename(a.kernel))[0]
        pairs.append((name, a.kernel, a.statewall))
    tot = {"compared": 0, "agree": 0, "known": 0, "mismatch": 0, "skipped": 0}
    missing = 0
    for name, kp, sp in pairs:
        if not os.path.exists(sp):
            print(f"  MISSING  {name}: no statewall output {sp}")
            missing += 1
            continue
        st = compare(kp, sp, name, rules, a.strict, sys.stdout)
        for key in tot:
            tot[key] += st[key]
        if len(pairs) > 1:
            pct = 100.0 * st["agree"] / st["compared"] if st["compared"] else 100.0
            print(f"{name}: {st['agree']}/{st['compared']} agree ({pct:.1f}%)"
                  + (f", {st['known']} known" if st["known"] else "")
                  + (f", {st['mismatch']} MISMATCH" if st["mismatch"] else ""))
    pct = 100.0 * tot["agree"] / tot["compared"] if tot["compared"] else 100.0
    print(f"summary: captures={len(pairs)} packets compared={tot['compared']} agree={tot['agree']} "
          f"({pct:.2f}%) known divergences={tot['known']} unexplained mismatches={tot['mismatch']} "
          f"not comparable (kernel: no conntrack)={tot['skipped']}"
          + (f" missing statewall files={missing}" if missing else ""))
    return 1 if tot["mismatch"] or missing else 0


if __name__ == "__main__":
    sys.exit(main())
