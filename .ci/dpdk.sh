#!/usr/bin/env bash
# CI for the DPDK backend (cargo feature `dpdk`): installs Debian's DPDK, then builds,
# lints and tests with the feature. No NIC and no hugepages needed: the tests use
# virtual devices (net_null, net_pcap, net_memif) with --no-huge, each EAL in its own
# process with its own --file-prefix. The memif test runs dpdk-testpmd (package
# dpdk-dev) as the memif peer of the statewall binary.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
export CARGO_TERM_COLOR=never

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing DPDK"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    libdpdk-dev dpdk dpdk-dev pkg-config libpcap-dev \
    librte-net-memif23 librte-net-null23 librte-net-pcap23 librte-net-ring23 \
    librte-mempool-ring23 >/dev/null
fi
pkg-config --modversion libdpdk >/dev/null || { echo "libdpdk not found by pkg-config" >&2; exit 1; }

echo "== cargo build -p statewall --features dpdk"
cargo build -p statewall --features dpdk
echo "== cargo clippy (dpdk)"
cargo clippy -p dataplane --features dpdk --all-targets -- -D warnings
cargo clippy -p statewall --features dpdk --all-targets -- -D warnings
echo "== DPDK port tests (net_null, net_pcap)"
cargo test -p dataplane --features dpdk port::dpdk
echo "== memif: dpdk-testpmd <-> statewall through conntrack"
cargo test -p statewall --features dpdk --test dpdk_memif
echo "== DPDK: SIGKILL, then a restart with the same --file-prefix"
cargo test -p statewall --features dpdk --test fault_dpdk_restart
