#!/usr/bin/env bash
# statewall over memif against the testpmd-only ceiling, in one run.
#
#   gen:    dpdk-testpmd, flowgen mode (multi-flow UDP, $SIZE-byte frames) on two memif
#           servers (one socket, interface ids 0 and 1; two memif sockets in one testpmd
#           client failed to connect in DPDK 22.11); it also receives on both and counts
#           what comes back (Rx-pps).
#   middle: either dpdk-testpmd in io forward mode (the ceiling: memif0 <-> memif1 with
#           no work per packet) or statewall (conntrack + a stateful ruleset) as the two
#           memif clients.
#
# Throughput = packets per second the generator receives back, summed over both ports,
# averaged over the measurement window (after a warm-up). Both middles run on the same
# core with the same generator, so the ratio is the cost of statewall's work.
#
# usage: bench/dpdk/run.sh [SECONDS] [FLOWS]
#   env: STATEWALL (binary, default target/release/statewall, built with --features dpdk)
#        SIZE (frame bytes, 64)  WARMUP (s, 2)  GEN_LCORES ("0,1": main, forwarding)
#        MID_CORE (core of the middle's forwarding thread / statewall worker, 0)
#        MAIN_CORE (core of the middle's main/control thread, 1)
#        EAL_MEM (default "--no-huge -m 1024"; "--socket-mem 512" with hugepages)
#        ONLY ("ceiling" or "statewall" to run one half)
set -euo pipefail

DUR=${1:-10}
FLOWS=${2:-1024}
SIZE=${SIZE:-64}
WARMUP=${WARMUP:-2}
GEN_LCORES=${GEN_LCORES:-0,1}
MID_CORE=${MID_CORE:-0}
MAIN_CORE=${MAIN_CORE:-1}
EAL_MEM=${EAL_MEM:---no-huge -m 1024}
SW=${STATEWALL:-target/release/statewall}
ONLY=${ONLY:-}
TESTPMD=${TESTPMD:-dpdk-testpmd}

command -v "$TESTPMD" >/dev/null || { echo "dpdk-testpmd not found (apt-get install dpdk-dev)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/sw-bench-dpdk.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf /var/run/dpdk/swb-* 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck disable=SC2086
start_gen() { # $1: tag
    "$TESTPMD" -l "$GEN_LCORES" --main-lcore "${GEN_LCORES%%,*}" $EAL_MEM --no-pci --no-telemetry \
        --file-prefix "swb-gen-$1" \
        --vdev "net_memif0,role=server,id=0,socket=$WORK/$1.sock" \
        --vdev "net_memif1,role=server,id=1,socket=$WORK/$1.sock" \
        -- --forward-mode=flowgen --flowgen-flows="$FLOWS" --txpkts="$SIZE" --nb-cores=1 \
        --total-num-mbufs=32768 --stats-period=1 --auto-start \
        >"$WORK/gen-$1.log" 2>&1 </dev/null &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q "Port statistics" "$WORK/gen-$1.log" && return 0; sleep 0.1; done
    echo "generator did not start:" >&2; cat "$WORK/gen-$1.log" >&2; exit 1
}

# Mean of the generator's summed Rx-pps over the periods after the warm-up.
rx_mpps() { # $1: tag
    # testpmd prints one block per period: "Rx-pps: N" for port 0, then port 1.
    grep -a "Rx-pps:" "$WORK/gen-$1.log" | awk -v skip=$((2 * (WARMUP + 1))) '
        { n++; if (n > skip) { s += $2; k++ } }
        END { if (k < 2) { print "0.000"; exit } printf "%.3f\n", s / (k / 2) / 1e6 }'
}

stop_all() {
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
    rm -rf /var/run/dpdk/swb-* 2>/dev/null || true
}

run_ceiling() {
    start_gen ceiling
    # shellcheck disable=SC2086
    "$TESTPMD" -l "$MAIN_CORE,$MID_CORE" --main-lcore "$MAIN_CORE" $EAL_MEM --no-pci --no-telemetry \
        --file-prefix swb-fwd \
        --vdev "net_memif0,role=client,id=0,socket=$WORK/ceiling.sock" \
        --vdev "net_memif1,role=client,id=1,socket=$WORK/ceiling.sock" \
        -- --forward-mode=io --nb-cores=1 --total-num-mbufs=32768 --stats-period=1 --auto-start \
        >"$WORK/fwd.log" 2>&1 </dev/null &
    PIDS+=($!)
    sleep "$((DUR + WARMUP + 1))"
    stop_all
    CEIL=$(rx_mpps ceiling)
}

run_statewall() {
    [ -x "$SW" ] || { echo "$SW not found: cargo build --release -p statewall --features dpdk" >&2; exit 1; }
    start_gen sw
    cat >"$WORK/rules.v4" <<'RULES'
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m state --state ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -p udp -m state --state NEW -j ACCEPT
-A FORWARD -m state --state INVALID -j DROP
COMMIT
RULES
    local mem="" a
    for a in $EAL_MEM; do mem="$mem\"$a\", "; done
    cat >"$WORK/statewall.toml" <<CFG
[dpdk]
eal_args = ["-l", "$MAIN_CORE", ${mem} "--no-pci", "--no-telemetry", "--file-prefix=swb-sw",
            "--vdev=net_memif0,role=client,id=0,socket=$WORK/sw.sock",
            "--vdev=net_memif1,role=client,id=1,socket=$WORK/sw.sock"]
[dataplane]
workers = 1
cores = [$MID_CORE]
burst = 32
pool_size = 8192
[[port]]
name = "outside"
backend = "dpdk"
device = "net_memif0"
descriptors = 1024
[[port]]
name = "inside"
backend = "dpdk"
device = "net_memif1"
descriptors = 1024
[[pair]]
network = "outside"
host = "inside"
[conntrack]
nf_conntrack_max = 1048576
[rules]
file = "rules.v4"
[control]
listen = ""
stats_interval = 0
CFG
    "$SW" run --config "$WORK/statewall.toml" --duration "$((DUR + WARMUP))" >"$WORK/statewall.log" 2>&1 &
    local swpid=$!
    PIDS+=("$swpid")
    wait "$swpid" || { echo "statewall failed:" >&2; cat "$WORK/statewall.log" >&2; exit 1; }
    stop_all
    SWR=$(rx_mpps sw)
}

echo "statewall DPDK bench: $FLOWS flows, $SIZE-byte frames, ${DUR}s after ${WARMUP}s warm-up"
echo "generator: testpmd flowgen on lcores $GEN_LCORES; middle on core $MID_CORE"
CEIL=""; SWR=""
[ "$ONLY" = statewall ] || run_ceiling
[ "$ONLY" = ceiling ] || run_statewall
[ -z "$CEIL" ] || echo "ceiling   (testpmd io fwd memif0<->memif1): $CEIL Mpps"
if [ -n "$SWR" ]; then
    echo "statewall (conntrack + stateful rules):   $SWR Mpps"
    grep -E "conntrack:|summary:|port [01]|TX-packets" "$WORK/statewall.log" | tail -6
fi
if [ -n "$CEIL" ] && [ -n "$SWR" ]; then
    awk -v a="$SWR" -v b="$CEIL" 'BEGIN { if (b > 0) printf "statewall / ceiling: %.1f %%\n", 100 * a / b }'
fi
