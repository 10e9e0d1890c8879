#!/usr/bin/env python3
"""Binary-free check of deploy/examples/*.toml against the schema of
control/src/config.rs (mirrored here: keep the two in step; the binary-side
`statewall config check` in check-examples.sh is the authority).

Checks: TOML parses; no unknown keys (config.rs uses deny_unknown_fields); backends
and pair modes valid; required fields per backend; descriptors a power of two >= 64;
cores count matches workers; pairs name existing, distinct ports; timeout names
known; the rules files named exist next to the config.

Usage: check_example_configs.py [FILE.toml ...]   (default: every deploy/examples/*.toml)
"""
import glob
import os
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11
    print("SKIP: python3 has no tomllib (needs Python >= 3.11)")
    sys.exit(77)

SCHEMA = {
    "dataplane": {"workers", "cores", "burst", "pool_size", "non_ip"},
    "port": {"name", "backend", "interface", "pcap_in", "pcap_out", "descriptors", "side",
             "device", "rx_queues", "socket_id"},
    "pair": {"mode", "network", "host"},
    "conntrack": {"nf_conntrack_max", "nf_conntrack_tcp_loose", "nf_conntrack_tcp_be_liberal",
                  "nf_conntrack_tcp_ignore_invalid_rst", "nf_conntrack_tcp_max_retrans",
                  "nf_conntrack_checksum", "timeouts", "ftp_ports"},
    "rules": {"file", "file6"},
    "control": {"listen", "socket", "socket_group", "token_file", "tls_cert", "tls_key",
                "max_body_bytes", "body_timeout_ms", "header_timeout_ms", "max_connections",
                "stats_interval"},
    "dpdk": {"eal_args"},
    "pktgen": {"mode", "flows", "rate_pps", "frame_size", "proto", "reuse_ports"},
}
TIMEOUTS = {"tcp_timeout_syn_sent", "tcp_timeout_syn_recv", "tcp_timeout_established",
            "tcp_timeout_fin_wait", "tcp_timeout_close_wait", "tcp_timeout_last_ack",
            "tcp_timeout_time_wait", "tcp_timeout_close", "tcp_timeout_max_retrans",
            "tcp_timeout_unacknowledged", "udp_timeout", "udp_timeout_stream", "icmp_timeout",
            "icmpv6_timeout", "generic_timeout"}
BACKENDS = {"pktgen", "pcap", "af_packet", "af_xdp", "dpdk"}


def check(path):
    errs = []
    cfg = tomllib.load(open(path, "rb"))
    for k, v in cfg.items():
        if k not in SCHEMA:
            errs.append(f"unknown top-level key {k!r}")
            continue
        for item in (v if isinstance(v, list) else [v]):
            for kk in item:
                if kk not in SCHEMA[k]:
                    errs.append(f"{k}.{kk}: unknown key")
    d = cfg.get("dataplane", {})
    burst, pool = d.get("burst", 32), d.get("pool_size", 4096)
    if not 1 <= burst <= 256:
        errs.append("dataplane.burst: must be 1..=256")
    if pool < 2 * burst:
        errs.append("dataplane.pool_size: must be at least 2 x burst")
    if d.get("non_ip", "pass-arp") not in ("pass-arp", "pass", "drop"):
        errs.append("dataplane.non_ip: invalid")
    if d.get("cores") and d.get("workers", 0) and len(d["cores"]) != d["workers"]:
        errs.append("dataplane.cores: count differs from workers")
    ports = cfg.get("port", [])
    if not ports:
        errs.append("port: at least one [[port]] is required")
    names = [p.get("name", "") for p in ports]
    for i, p in enumerate(ports):
        if not p.get("name"):
            errs.append(f"port[{i}].name: missing")
        if names.count(p.get("name")) > 1:
            errs.append(f"port[{i}].name: duplicate")
        b = p.get("backend")
        if b not in BACKENDS:
            errs.append(f"port[{i}].backend: {b!r}")
        if b in ("af_packet", "af_xdp") and not p.get("interface"):
            errs.append(f"port[{i}].interface: required for {b}")
        if b == "pcap" and not (p.get("pcap_in") or p.get("pcap_out")):
            errs.append(f"port[{i}].pcap_in: required for pcap")
        if b == "dpdk" and not p.get("device"):
            errs.append(f"port[{i}].device: required for dpdk")
        if b == "pktgen" and p.get("side") not in ("inside", "outside"):
            errs.append(f"port[{i}].side: required for pktgen")
        n = p.get("descriptors", 2048)
        if n < 64 or n & (n - 1):
            errs.append(f"port[{i}].descriptors: must be a power of two >= 64")
    pairs = cfg.get("pair", [])
    if not pairs:
        errs.append("pair: at least one [[pair]] is required")
    for i, pr in enumerate(pairs):
        if pr.get("mode", "forward") not in ("forward", "host"):
            errs.append(f"pair[{i}].mode: invalid")
        for f in ("network", "host"):
            if pr.get(f) not in names:
                errs.append(f"pair[{i}].{f}: no port named {pr.get(f)!r}")
        if pr.get("network") == pr.get("host"):
            errs.append(f"pair[{i}].host: same port as network")
    for k in cfg.get("conntrack", {}).get("timeouts", {}):
        if k not in TIMEOUTS:
            errs.append(f"conntrack.timeouts.{k}: unknown")
    for f in ("file", "file6"):
        r = cfg.get("rules", {}).get(f)
        if r and not os.path.exists(os.path.join(os.path.dirname(path), r)):
            errs.append(f"rules.{f}: {r} does not exist next to the config")
    return errs


def main(files):
    if not files:
        here = os.path.dirname(os.path.abspath(__file__))
        files = sorted(glob.glob(os.path.join(here, "..", "examples", "*.toml")))
    bad = 0
    for f in files:
        try:
            errs = check(f)
        except Exception as e:  # noqa: BLE001
            errs = [f"cannot parse: {e}"]
        name = os.path.basename(f)
        if errs:
            bad = 1
            for e in errs:
                print(f"FAIL: {name}: {e}")
        else:
            print(f"ok: {name} matches the config.rs schema")
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
