#!/usr/bin/env bash
# Loads every example in deploy/examples/ with a real statewall binary.
#
# Usage: deploy/tests/check-examples.sh /path/to/statewall
#   * `statewall rules check FILE` for every rules file (*.rules, *.v4, *.v6): exit 0
#     means the file parses and compiles (like iptables-restore --test);
#   * `statewall config check FILE` for every *.toml: the whole configuration validated
#     (schema, ports, pairs, the rules files it names) without opening any port.
#     If the binary has no `config check` subcommand yet, each config is reported as
#     SKIP and the script fails only when STRICT=1.
# Exit status: 0 all passed (or skipped), 1 a check failed, 2 usage.
set -uo pipefail
bin=${1:-}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "usage: $0 /path/to/statewall" >&2
    exit 2
fi
ex=$(cd "$(dirname "$0")/../examples" && pwd)
fail=0 skip=0

for f in "$ex"/*.rules "$ex"/*.v4 "$ex"/*.v6; do
    [ -e "$f" ] || continue
    if out=$("$bin" rules check "$f" 2>&1); then
        echo "ok: statewall rules check $(basename "$f")"
    else
        echo "FAIL: statewall rules check $(basename "$f")"; echo "$out" | sed 's/^/    /'; fail=1
    fi
done

has_config_check=1
"$bin" config check --help >/dev/null 2>&1 || has_config_check=0
for f in "$ex"/*.toml; do
    [ -e "$f" ] || continue
    if [ $has_config_check = 0 ]; then
        echo "SKIP: statewall config check $(basename "$f") (the binary has no \`config check\` subcommand)"
        skip=1; continue
    fi
    if out=$("$bin" config check "$f" 2>&1); then
        echo "ok: statewall config check $(basename "$f")"
    else
        echo "FAIL: statewall config check $(basename "$f")"; echo "$out" | sed 's/^/    /'; fail=1
    fi
done

if [ $skip = 1 ] && [ "${STRICT:-0}" = 1 ]; then fail=1; fi
exit $fail
