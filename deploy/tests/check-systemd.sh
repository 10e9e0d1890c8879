#!/usr/bin/env bash
# Verifies deploy/systemd/ with systemd's own parser.
#
# What it covers:
#   * `systemd-analyze verify` on a temporary copy of statewall.service whose ExecStart
#     points at a stub executable (the real /usr/local/bin/statewall need not exist; the
#     arguments are kept verbatim). verify parses every directive, resolves the
#     dependencies (network-pre.target, dev-hugepages.mount) against this host's units,
#     and checks that ExecReload's /bin/kill exists. Any output (unknown key, bad value,
#     missing unit) fails the check: verify itself exits 0 on unknown keys.
#   * The same again with each statewall.service.d/*.conf.example installed as a drop-in.
#   * The unit contains the directives the deployment contract relies on (Type=notify,
#     ExecReload=kill -HUP, EnvironmentFile=-, LimitMEMLOCK=infinity, ...).
#   * statewall.sysusers is applied by systemd-sysusers inside a temporary root.
#   * statewall.default parses as an EnvironmentFile (systemd-run is not used; the file
#     is checked to contain only comments and KEY=value lines).
#   * `systemd-analyze security --offline` exposure score is printed (information only).
# What it does not cover: starting the service (needs the binary, PID 1 systemd and NICs),
# sd_notify behaviour, capabilities being sufficient at run time.
#
# Usage: deploy/tests/check-systemd.sh      (installs systemd with apt-get if missing)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
unit_dir="$here/systemd"

if ! command -v systemd-analyze >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing systemd (for systemd-analyze)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd >/dev/null; } \
            || true
    fi
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP: systemd-analyze not available and systemd could not be installed"
    exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

printf '#!/bin/sh\nexit 0\n' > "$tmp/statewall"
chmod +x "$tmp/statewall"

verify() { # $1 = label, $2 = directory holding statewall.service (+ .d/)
    local out
    out=$(systemd-analyze verify "$2/statewall.service" 2>&1) || { echo "FAIL: $1: systemd-analyze verify exited non-zero"; echo "$out"; fail=1; return; }
    # Ignore messages about units that are not ours (the host's own units).
    out=$(printf '%s\n' "$out" | grep -E 'statewall' || true)
    if [ -n "$out" ]; then
        echo "FAIL: $1:"; echo "$out"; fail=1
    else
        echo "ok: $1"
    fi
}

mkdir -p "$tmp/base"
grep -q '^ExecStart=/usr/local/bin/statewall run --config /etc/statewall/statewall.toml' "$unit_dir/statewall.service" \
    || { echo "FAIL: ExecStart is not /usr/local/bin/statewall run --config /etc/statewall/statewall.toml"; fail=1; }
sed "s#/usr/local/bin/statewall#$tmp/statewall#" "$unit_dir/statewall.service" > "$tmp/base/statewall.service"
verify "systemd-analyze verify statewall.service" "$tmp/base"

for dropin in "$unit_dir"/statewall.service.d/*.conf.example; do
    [ -e "$dropin" ] || continue
    name=$(basename "$dropin" .example)
    d="$tmp/with-$name"
    mkdir -p "$d/statewall.service.d"
    cp "$tmp/base/statewall.service" "$d/"
    cp "$dropin" "$d/statewall.service.d/$name"
    verify "systemd-analyze verify statewall.service + drop-in $name" "$d"
done

# The contract other parts of the project rely on.
contract_fail=0
for want in '^Type=notify$' '^ExecReload=/bin/kill -HUP \$MAINPID$' '^EnvironmentFile=-/etc/default/statewall$' \
            '^LimitMEMLOCK=infinity$' '^Restart=on-failure$' '^StartLimitBurst=' '^AmbientCapabilities=.*CAP_NET_RAW' \
            '^CapabilityBoundingSet=' '^NoNewPrivileges=yes$'; do
    grep -Eq "$want" "$unit_dir/statewall.service" || { echo "FAIL: statewall.service lacks $want"; contract_fail=1; }
done
for forbidden in '^PrivateNetwork=yes' '^PrivateDevices=yes' '^ProtectClock=yes' '^ProcSubset=pid'; do
    if grep -Eq "$forbidden" "$unit_dir/statewall.service"; then
        echo "FAIL: statewall.service sets $forbidden, which breaks packet I/O (see the comment in the unit)"; contract_fail=1
    fi
done
if [ $contract_fail = 0 ]; then echo "ok: statewall.service has the contract directives"; else fail=1; fi

# sysusers file, applied in a throw-away root.
if command -v systemd-sysusers >/dev/null 2>&1; then
    mkdir -p "$tmp/root/etc"
    if systemd-sysusers --root="$tmp/root" "$unit_dir/statewall.sysusers" >/dev/null 2>&1 \
        && grep -q '^statewall:' "$tmp/root/etc/passwd"; then
        echo "ok: statewall.sysusers creates user statewall"
    else
        echo "FAIL: systemd-sysusers could not apply statewall.sysusers"; fail=1
    fi
else
    echo "SKIP: systemd-sysusers not available (statewall.sysusers not checked)"
fi

# EnvironmentFile: comments, blank lines and KEY=value only.
if grep -Evq '^[[:space:]]*(#.*)?$|^[A-Za-z_][A-Za-z0-9_]*=' "$unit_dir/statewall.default"; then
    echo "FAIL: statewall.default has lines that are not KEY=value:"
    grep -Evn '^[[:space:]]*(#.*)?$|^[A-Za-z_][A-Za-z0-9_]*=' "$unit_dir/statewall.default"; fail=1
else
    echo "ok: statewall.default is a valid EnvironmentFile"
fi

# Exposure score, for information.
score=$(systemd-analyze security --offline=true "$tmp/base/statewall.service" 2>/dev/null | grep -o 'Overall exposure level.*' || true)
[ -n "$score" ] && echo "info: $score"

exit $fail
