#!/usr/bin/env bash
# Checks deploy/prometheus/ with promtool:
#   * promtool check config prometheus.yml   (syntax, scrape config, rule_files resolvable)
#   * promtool check rules statewall.rules.yml (PromQL parses, rule syntax)
#   * promtool test rules statewall.rules.test.yml (alert unit tests, annotations included)
#   * every alert has a firing and a not-firing test case (alert_test_coverage.py)
#   * every metric name in the alert expressions is in deploy/METRICS.md (dashboard_metrics.py)
# Installs Debian's `prometheus` package (it ships promtool) if promtool is missing.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tests/lib.sh"
prom="$here/prometheus"

if ! command -v promtool >/dev/null 2>&1; then
    apt_install prometheus || true
fi
if ! command -v promtool >/dev/null 2>&1; then
    echo "SKIP: promtool not available and the prometheus package could not be installed"
    exit 77
fi

fail=0
run() { # label, command...
    local label=$1; shift
    local out
    if out=$("$@" 2>&1); then echo "ok: $label"; else echo "FAIL: $label"; echo "$out" | sed 's/^/    /'; fail=1; fi
}
run "promtool check config prometheus.yml" promtool check config "$prom/prometheus.yml"
run "promtool check rules statewall.rules.yml" promtool check rules "$prom/statewall.rules.yml"
run "promtool test rules statewall.rules.test.yml" promtool test rules "$prom/statewall.rules.test.yml"

if ensure_pyyaml; then
    "$PY" "$here/tests/alert_test_coverage.py" "$prom/statewall.rules.yml" "$prom/statewall.rules.test.yml" || fail=1
    "$PY" "$here/tests/dashboard_metrics.py" "$prom/statewall.rules.yml" || fail=1
else
    echo "SKIP: python3 with yaml not available (alert coverage and metric names not checked)"
fi
exit $fail
