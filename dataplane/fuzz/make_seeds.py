#!/usr/bin/env python3
"""Writes fuzz seeds from the oracle captures, so the fuzzers start from real frames of
every tracked protocol (SCTP and UDP-Lite included):

    make_seeds.py            # -> seeds/parse/<capture>-<i>  and  seeds/track/<capture>

parse seeds are single frames; a track seed is the capture's frames in the track
target's format (2-byte little-endian length, 1-byte time step, frame), cut at 512
bytes (run.sh's -max_len). Stdlib only; the output is deterministic.
"""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CAPS = os.path.join(HERE, "..", "..", "tests", "oracle", "captures")
PREFIXES = ("s0", "l0", "t01", "u01", "i06")


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + "IIII", data[off:off + 16])
        yield data[off + 16:off + 16 + incl]
        off += 16 + incl


def main():
    out = os.path.join(HERE, "seeds")
    for sub in ("parse", "track"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    n = 0
    for name in sorted(os.listdir(CAPS)):
        if not name.endswith(".pcap") or not name.startswith(PREFIXES):
            continue
        base = name[:-5]
        track = b""
        for i, fr in enumerate(frames(os.path.join(CAPS, name))):
            with open(os.path.join(out, "parse", f"{base}-{i}"), "wb") as f:
                f.write(fr)
            rec = struct.pack("<HB", len(fr), 1) + fr
            if len(track) + len(rec) <= 512:
                track += rec
            n += 1
        with open(os.path.join(out, "track", base), "wb") as f:
            f.write(track)
    print(f"wrote {n} parse seeds and the track seeds to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
