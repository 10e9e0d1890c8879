#!/usr/bin/env python3
"""Run linux_oracle.py over every capture in captures/manifest.json.

    run_all.py [--skip-long] [--only SUBSTR ...] [-j N] [--out DIR]    # write DIR/<name>.jsonl (default expected/)
    run_all.py --check [--skip-long] [-j N]    # re-run live (root), compare with the committed expected/
    run_all.py --table                         # markdown table: CONNTRACK.md expectation vs kernel

The kernel version and the per-capture oracle options are written to
DIR/KERNEL.json.  Needs root for running; --table needs nothing.
"""

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import oracle_common  # noqa: E402

CAPS = os.path.join(HERE, "captures")
EXPECTED = os.path.join(HERE, "expected")

TOK = {("NEW", "ORIGINAL"): "NEW/O", ("ESTABLISHED", "ORIGINAL"): "EST/O",
       ("ESTABLISHED", "REPLY"): "EST/R", ("RELATED", "ORIGINAL"): "REL/O",
       ("RELATED", "REPLY"): "REL/R", ("INVALID", None): "INV", ("UNTRACKED", None): "UNTR",
       (None, None): "DROP", ("NEW", "REPLY"): "NEW/R"}


def load_manifest():
    return oracle_common.load_manifest(os.path.join(CAPS, "manifest.json"))


NO_SLEEP = False


def oracle_cmd(c):
    cmd = [sys.executable, os.path.join(HERE, "linux_oracle.py"), os.path.join(CAPS, c["file"])]
    for p in c.get("helper_ftp_port", []):
        cmd += ["--helper-ftp-port", str(p)]
    for r in c.get("notrack", []):
        cmd += ["--notrack", r]
    for s in c.get("sysctl", []):
        cmd += ["--sysctl", s]
    if NO_SLEEP:
        cmd.append("--no-sleep")
    return cmd


def run_one(c, outdir):
    return oracle_common.run_oracle(oracle_cmd(c), c, outdir, timeout=900)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def token(rec):
    return TOK.get((rec.get("ct_state"), rec.get("ct_dir")), f"{rec.get('ct_state')}/{rec.get('ct_dir')}")


def table(caps, outdir):
    rows = ["| capture | case | pkt | CONNTRACK.md | kernel | agree? |", "|---|---|---|---|---|---|"]
    disagreements = []
    for c in caps:
        path = os.path.join(outdir, c["name"] + ".jsonl")
        if not os.path.exists(path):
            rows.append(f"| {c['name']} | {c['case']} | – | {' '.join(c['doc'])} | (not run) | – |")
            continue
        recs = read_jsonl(path)
        kern = [token(r) for r in recs]
        if c["case"] == "mixed":
            rows.append(f"| {c['name']} | mixed | {len(kern)} | (none) | reference | – |")
            continue
        doc = c["doc"]
        bad = [i for i, (d, k) in enumerate(zip(doc, kern)) if d not in ("?", k)]
        fwd = [i for i, r in enumerate(recs) if r.get("forwarded") is False]
        ktext = " ".join(kern)
        if fwd:
            ktext += f" (not forwarded: {','.join(map(str, fwd))})"
        agree = "yes" if not bad and len(doc) == len(kern) else "**NO** (pkt " + ",".join(map(str, bad)) + ")"
        rows.append(f"| {c['name']} | {c['case']} | {len(kern)} | {' '.join(doc)} | {ktext} | {agree} |")
        if bad:
            disagreements.append((c, bad, kern))
    return "\n".join(rows), disagreements


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-long", action="store_true", help="skip captures with gaps > 30 s")
    ap.add_argument("--only", action="append", default=[], help="run captures whose name contains this")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="parallel oracle runs (each uses its own namespaces)")
    ap.add_argument("--out", default=EXPECTED)
    ap.add_argument("--check", action="store_true", help="run live into a temp dir and diff with --out")
    ap.add_argument("--table", action="store_true", help="print the doc-vs-kernel markdown table")
    ap.add_argument("--no-sleep", action="store_true", help="pass --no-sleep to the oracle (timing cases change)")
    a = ap.parse_args()
    global NO_SLEEP
    NO_SLEEP = a.no_sleep
    caps = load_manifest()
    if a.only:
        caps = [c for c in caps if any(s in c["name"] for s in a.only)]
    if a.table:
        t, dis = table(caps, a.out)
        print(t)
        print(f"\n{len(dis)} capture(s) disagree with CONNTRACK.md")
        return 0
    if a.skip_long:
        caps = [c for c in caps if not c.get("long")]
    outdir = tempfile.mkdtemp(prefix="oracle-check-") if a.check else a.out
    os.makedirs(outdir, exist_ok=True)
    failures = oracle_common.run_captures(caps, a.jobs, lambda c: run_one(c, outdir))
    if not a.check:
        meta = {"kernel": os.uname().release, "uname": " ".join(os.uname()),
                "captures": {c["name"]: oracle_cmd(c)[3:] for c in caps}}
        kpath = os.path.join(outdir, "KERNEL.json")
        if os.path.exists(kpath):
            with open(kpath) as f:
                old = json.load(f)
            old["captures"].update(meta["captures"])
            meta["captures"] = old["captures"]
        with open(kpath, "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.write("\n")
        return 1 if failures else 0
    # --check: compare state/dir/forwarded with the committed files
    diffs = 0
    for c in caps:
        live = read_jsonl(os.path.join(outdir, c["name"] + ".jsonl"))
        ref = read_jsonl(os.path.join(a.out, c["name"] + ".jsonl"))
        for x, y in zip(live, ref):
            kx = (x.get("ct_state"), x.get("ct_dir"), x.get("forwarded"))
            ky = (y.get("ct_state"), y.get("ct_dir"), y.get("forwarded"))
            if kx != ky:
                diffs += 1
                print(f"DIFF {c['name']}[{x['index']}]: live {kx} committed {ky}")
        if len(live) != len(ref):
            diffs += 1
            print(f"DIFF {c['name']}: {len(live)} live records, {len(ref)} committed")
    print(f"{diffs} difference(s); live output in {outdir}")
    return 1 if diffs or failures else 0


if __name__ == "__main__":
    sys.exit(main())
