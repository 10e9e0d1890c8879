#!/usr/bin/env bash
# Checks deploy/grafana/statewall-dashboard.json and the metric names of the alert rules:
#   * the dashboard is valid JSON with schemaVersion >= 36, a `datasource` variable, every
#     panel/target using ${datasource}, unique panel ids, panels inside the 24-column grid,
#     and the rows the deploy guide promises;
#   * every PromQL expression (targets, annotations, variables) parses: they are written
#     out as recording rules (Grafana variables substituted) and `promtool check rules`
#     reads them [needs promtool; SKIP otherwise];
#   * every metric name in the dashboard and in statewall.rules.yml is in deploy/METRICS.md
#     (dashboard_metrics.py), labels in matchers included;
#   * scrape mode self-test: the dashboard against tests/fixtures/metrics-sample.prom, a
#     synthetic exposition written from METRICS.md (`promtool check metrics` lints it).
#     The binary-side test runs: dashboard_metrics.py DASHBOARD.json LIVE_SCRAPE.txt
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tests/lib.sh"
dash="$here/grafana/statewall-dashboard.json"
fail=0
pick_python
[ -n "$PY" ] || { apt_install python3 || true; pick_python; }
[ -n "$PY" ] || { echo "SKIP: no python3"; exit 77; }

"$PY" - "$dash" <<'PYEOF' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
bad = []
if d.get("schemaVersion", 0) < 36:
    bad.append(f"schemaVersion {d.get('schemaVersion')} < 36")
vars_ = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
if vars_.get("datasource", {}).get("type") != "datasource" or vars_["datasource"].get("query") != "prometheus":
    bad.append("no `datasource` variable of type datasource/prometheus")
ids = []
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
rows = []
for p in panels(d.get("panels", [])):
    ids.append(p.get("id"))
    g = p.get("gridPos", {})
    if g.get("x", 0) + g.get("w", 0) > 24 or g.get("w", 0) <= 0 or g.get("h", 0) <= 0:
        bad.append(f"panel {p.get('title')!r}: gridPos {g} outside the 24-column grid")
    if p["type"] == "row":
        rows.append(p["title"])
        continue
    if p.get("datasource", {}).get("uid") != "${datasource}":
        bad.append(f"panel {p.get('title')!r}: datasource is not ${{datasource}}")
    for t in p.get("targets", []):
        if t.get("datasource", {}).get("uid") != "${datasource}":
            bad.append(f"panel {p.get('title')!r} target {t.get('refId')}: datasource is not ${{datasource}}")
        if not t.get("expr"):
            bad.append(f"panel {p.get('title')!r} target {t.get('refId')}: empty expr")
    if p["type"] != "row" and not p.get("targets"):
        bad.append(f"panel {p.get('title')!r}: no targets")
dups = {i for i in ids if ids.count(i) > 1}
if dups:
    bad.append(f"duplicate panel ids {sorted(dups)}")
for want in ["Traffic", "Loss", "Workers", "Conntrack", "Policy", "reload"]:
    if not any(want.lower() in r.lower() for r in rows):
        bad.append(f"no row about {want!r} (rows: {rows})")
for b in bad:
    print("FAIL: dashboard: " + b)
if not bad:
    print(f"ok: dashboard structure ({len(ids)} panels, rows: {', '.join(rows)})")
sys.exit(1 if bad else 0)
PYEOF

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$PY" "$here/tests/dashboard_metrics.py" "$dash" --emit-rules "$tmp/dash-exprs.yml" || fail=1

if ! command -v promtool >/dev/null 2>&1; then apt_install prometheus || true; fi
if command -v promtool >/dev/null 2>&1; then
    if out=$(promtool check rules "$tmp/dash-exprs.yml" 2>&1); then
        echo "ok: every dashboard expression parses (promtool check rules)"
    else
        echo "FAIL: dashboard expressions do not parse:"; echo "$out" | sed 's/^/    /'; fail=1
    fi
    if out=$(promtool check metrics < "$here/tests/fixtures/metrics-sample.prom" 2>&1); then
        echo "ok: promtool check metrics on the METRICS.md sample exposition"
    else
        echo "FAIL: promtool check metrics on tests/fixtures/metrics-sample.prom:"; echo "$out" | sed 's/^/    /'; fail=1
    fi
else
    echo "SKIP: promtool not available (dashboard PromQL syntax and sample exposition not checked)"
fi

"$PY" "$here/tests/dashboard_metrics.py" "$dash" "$here/tests/fixtures/metrics-sample.prom" || fail=1
if ensure_pyyaml; then
    "$PY" "$here/tests/dashboard_metrics.py" "$here/prometheus/statewall.rules.yml" "$here/tests/fixtures/metrics-sample.prom" || fail=1
else
    echo "SKIP: python3-yaml not available (alert rule metric names not checked)"
fi
exit $fail
