#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 60 s each).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain the
# sanitizer flags are allowed with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
export RUSTC_BOOTSTRAP=1
for t in parse track ftp_nat; do
  # corpus/$t is the fuzzer's own (ignored by git); seeds/$t (make_seeds.py) holds frames
  # of the oracle captures, SCTP and UDP-Lite included.
  mkdir -p "corpus/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  cargo fuzz run "$t" "corpus/$t" "${seeds[@]}" -- -max_total_time="$secs" -max_len=512
done
