#!/usr/bin/env python3
"""Run linux_nat_oracle.py over every capture in captures/nat/manifest.json.

    run_nat_all.py [-j N] [--only SUBSTR ...] [--out DIR]   # write DIR/<name>.jsonl (default expected/nat)
    run_nat_all.py --check [-j N]     # re-run live (root) and compare with the committed expected/nat
                                      # with compare_nat.py (random choices checked by property)

The kernel version is written to DIR/KERNEL.json, each run's stderr (header,
`conntrack -L`, the loaded rules) to DIR/logs/<name>.log.  Needs root.
"""

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare_nat  # noqa: E402
import oracle_common  # noqa: E402

EXPECTED = os.path.join(HERE, "expected", "nat")


def run_one(c, outdir):
    cmd = [sys.executable, os.path.join(HERE, "linux_nat_oracle.py"), c["name"]]
    return oracle_common.run_oracle(cmd, c, outdir, timeout=300)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-j", "--jobs", type=int, default=1)
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--out", default=EXPECTED)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("run_nat_all.py must run as root", file=sys.stderr)
        return 2
    caps = compare_nat.load_manifest()
    if a.only:
        caps = [c for c in caps if any(s in c["name"] for s in a.only)]
    outdir = tempfile.mkdtemp(prefix="nat-oracle-check-") if a.check else a.out
    os.makedirs(outdir, exist_ok=True)
    failures = oracle_common.run_captures(caps, a.jobs, lambda c: run_one(c, outdir))
    if not a.check:
        with open(os.path.join(outdir, "KERNEL.json"), "w") as f:
            json.dump({"kernel": os.uname().release, "uname": " ".join(os.uname())}, f, indent=1)
            f.write("\n")
        return 1 if failures else 0
    # live kernel vs committed kernel: no divergence table applies
    rc = compare_nat.run_dirs(a.out, outdir, [c["name"] for c in caps], None)
    print(f"live output in {outdir}")
    return 1 if rc or failures else 0


if __name__ == "__main__":
    sys.exit(main())
