#!/usr/bin/env bash
# Runs every deploy check that needs no statewall binary. CI (root, fresh Debian) calls
# it; it installs what it needs with apt-get (systemd, prometheus for promtool,
# python3-yaml, shellcheck). A check whose tool cannot be installed prints
# "SKIP: <why>" and does not fail the run; any failure makes the exit status 1.
#
# With a binary, also run: deploy/tests/check-examples.sh target/release/statewall
# and, against a live scrape:
#   deploy/tests/dashboard_metrics.py deploy/grafana/statewall-dashboard.json SCRAPE.txt
set -uo pipefail
tests=$(cd "$(dirname "$0")" && pwd)
deploy=$(dirname "$tests")
. "$tests/lib.sh"

failed=() skipped=() passed=()
check() { # name, command...
    local name=$1; shift
    echo "=== $name"
    "$@"
    local rc=$?
    case $rc in
        0) passed+=("$name") ;;
        77) skipped+=("$name") ;;
        *) failed+=("$name") ;;
    esac
}

ensure_pyyaml || echo "note: python3-yaml unavailable; YAML checks will SKIP"
pick_python
[ -z "${PY:-}" ] && { apt_install python3 || true; pick_python; }
if ! "$PY" -c 'import yaml' 2>/dev/null && command -v python3 >/dev/null && python3 -c 'import yaml' 2>/dev/null; then
    PY=$(command -v python3)
fi

check "systemd unit (systemd-analyze verify)" "$tests/check-systemd.sh"
check "prometheus config, alert rules, alert unit tests" "$tests/check-prometheus.sh"
check "grafana dashboard (structure, PromQL, metric names)" "$tests/check-dashboard.sh"
check "container + kubernetes lint" "$PY" "$tests/lint-container.py"
check "example configs vs config.rs schema" "$PY" "$tests/check_example_configs.py"

host_dry() {
    local out
    out=$("$deploy/host/prepare-host.sh" --worker-cores 2,3 --hugepages 64 --iface lo 2>&1) \
        || { echo "FAIL: prepare-host.sh dry run exited non-zero"; echo "$out"; return 1; }
    echo "$out" | grep -q 'dry run: nothing changed' || { echo "FAIL: dry run did not say it changed nothing"; return 1; }
    echo "$out" | grep -q 'isolcpus=managed_irq,domain,2,3 nohz_full=2,3 rcu_nocbs=2,3' \
        || { echo "FAIL: isolation advice missing"; return 1; }
    "$deploy/host/prepare-host.sh" --check --hugepages 0 >/dev/null 2>&1
    local rc=$?
    if [ $rc -gt 1 ]; then echo "FAIL: prepare-host.sh --check exited $rc (expected 0 or 1)"; return 1; fi
    "$deploy/host/prepare-host.sh" --bogus >/dev/null 2>&1
    [ $? = 2 ] || { echo "FAIL: unknown argument not refused with exit 2"; return 1; }
    echo "ok: prepare-host.sh dry run, --check (exit $rc on this host), argument errors"
}
check "prepare-host.sh (dry run and --check, nothing applied)" host_dry

shell_lint() {
    if ! command -v shellcheck >/dev/null 2>&1; then apt_install shellcheck || true; fi
    if ! command -v shellcheck >/dev/null 2>&1; then echo "SKIP: shellcheck not available"; return 77; fi
    shellcheck -S warning "$deploy"/host/*.sh "$tests"/*.sh && echo "ok: shellcheck (warnings and errors)"
}
check "shellcheck deploy scripts" shell_lint

echo
echo "passed:  ${#passed[@]}"; for n in "${passed[@]}"; do echo "  $n"; done
echo "skipped: ${#skipped[@]}"; for n in "${skipped[@]}"; do echo "  SKIP: $n"; done
echo "failed:  ${#failed[@]}"; for n in "${failed[@]}"; do echo "  FAIL: $n"; done
[ ${#failed[@]} = 0 ]
