#!/usr/bin/env python3
"""Checks that every metric a Grafana dashboard or a Prometheus rules file queries is
in the metrics contract (deploy/METRICS.md) and, optionally, in a live scrape.

Usage:
  dashboard_metrics.py SOURCE [SCRAPE.txt] [--metrics-md PATH] [--list] [--emit-rules OUT.yml]

SOURCE is a Grafana dashboard (.json: every target `expr` and every query variable) or
a Prometheus rules file (.yml/.yaml: every rule `expr`). SCRAPE.txt is a /metrics
response in the Prometheus text format (the binary-side test passes a live scrape).

Metric names are pulled out of the PromQL: strings, label matchers `{...}`, ranges
`[5m]`, Grafana variables (`$port`, `${__rate_interval}`), numbers and durations are
dropped; identifiers followed by `(` are functions, aggregation operators and keywords
are skipped, and the label lists of by/without/on/ignoring/group_left/group_right too.
A name ending in `_bucket`, `_sum` or `_count` is accepted when METRICS.md lists its
base as a histogram. Label names used in matchers must be among the metric's labels in
METRICS.md (plus `job`, `instance`, `le` for buckets). Prometheus' own series (`up`,
`scrape_*`) are allowed and not looked for in the scrape. Metrics METRICS.md marks
"opt-in" may be absent from a scrape (a warning, not a failure).

--emit-rules writes every expression (Grafana variables substituted) as a recording
rule, so that `promtool check rules OUT.yml` proves each one parses as PromQL.

Exit status: 0 all found, 1 something missing, 2 usage or parse error.
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MD = os.path.join(HERE, "..", "METRICS.md")

AGGREGATORS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
               "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
PROMETHEUS_BUILTIN = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                      "scrape_samples_post_metric_relabeling", "scrape_series_added"}
HISTO_SUFFIXES = ("_bucket", "_sum", "_count")

TOKEN = re.compile(r"""
    "(?:\\.|[^"\\])*" | '(?:\\.|[^'\\])*' | `[^`]*`     # strings
  | \$\{[^}]*\} | \$\w+ | \[\[[^\]]*\]\]               # Grafana variables
  | \[[^\]]*\]                                        # ranges / subqueries
  | \{(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[^}"'])*\}   # label matchers
  | [A-Za-z_:][A-Za-z0-9_:]*                          # identifiers
  | \d+(?:\.\d+)?(?:[eE][+-]?\d+)?[A-Za-z]*           # numbers and durations
  | \#[^\n]*                                          # comments
  | \S""", re.VERBOSE)
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`)')


def metric_refs(expr):
    """Yields (metric name, set of label names in its matchers) for a PromQL expression."""
    toks = [t.group(0) for t in TOKEN.finditer(expr)]
    i = 0
    while i < len(toks):
        t = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if t.startswith("{"):
            # A bare selector {__name__="x"} names its metric in the matcher.
            for m in MATCHER.finditer(t):
                if m.group(1) == "__name__" and m.group(2) == "=":
                    yield m.group(3)[1:-1], set()
            i += 1
            continue
        if not re.match(r"[A-Za-z_:]", t):
            i += 1
            continue
        if t in LABEL_LIST_KEYWORDS:
            i += 1
            if i < len(toks) and toks[i] == "(":
                while i < len(toks) and toks[i] != ")":
                    i += 1
            i += 1
            continue
        if t in AGGREGATORS or t in KEYWORDS or nxt == "(":
            i += 1
            continue
        labels = set()
        if nxt.startswith("{"):
            labels = {m.group(1) for m in MATCHER.finditer(nxt) if m.group(1) != "__name__"}
        yield t, labels
        i += 1


def grafana_variable_exprs(query):
    """PromQL inside a Grafana Prometheus variable query."""
    if isinstance(query, dict):
        query = query.get("query", "")
    if not isinstance(query, str):
        return []
    m = re.match(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", query, re.S)
    if m:
        return [m.group(1)]
    if re.match(r"\s*label_values\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", query):
        return []
    m = re.match(r"\s*query_result\((.*)\)\s*$", query, re.S)
    if m:
        return [m.group(1)]
    if re.match(r"\s*(label_names|metrics)\(", query):
        return []
    return [query] if query.strip() else []


def dashboard_exprs(dash):
    """(where, expr) for every Prometheus expression in a dashboard: panel targets (rows'
    nested panels included), annotation queries, and query variables."""
    out = []

    def walk(node, where):
        if isinstance(node, dict):
            title = node.get("title") or node.get("name") or where
            if isinstance(node.get("expr"), str) and node["expr"].strip():
                ref = f" ref {node['refId']}" if "refId" in node else ""
                out.append((f"{title!r}{ref}", node["expr"]))
            for k, v in node.items():
                walk(v, title)
        elif isinstance(node, list):
            for v in node:
                walk(v, where)

    walk({k: v for k, v in dash.items() if k != "templating"}, "dashboard")
    for var in (dash.get("templating", {}) or {}).get("list", []) or []:
        if var.get("type") == "query":
            for e in grafana_variable_exprs(var.get("query", "")):
                out.append((f"variable ${var.get('name')}", e))
    return out


GRAFANA_VARS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__interval_ms": "15000",
                "__range_s": "3600", "__range_ms": "3600000"}


def substitute_grafana(expr):
    """Grafana variables replaced by something PromQL accepts (for a syntax check)."""
    def rep(m):
        name = m.group(1) or m.group(2) or m.group(3)
        name = name.split(":")[0]
        return GRAFANA_VARS.get(name, ".*")
    return re.sub(r"\$\{([^}]*)\}|\[\[([^\]]*)\]\]|\$(\w+)", rep, expr)


def rules_exprs(doc):
    out = []
    for g in doc.get("groups", []) or []:
        for r in g.get("rules", []) or []:
            name = r.get("alert") or r.get("record") or "?"
            out.append((f"rule {name}", str(r.get("expr", ""))))
    return out


def parse_metrics_md(path):
    """{name: {"type": str, "labels": set, "opt_in": bool}} from the METRICS.md table."""
    metrics = {}
    for line in open(path, encoding="utf-8"):
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4:
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        mtype = cells[1].split()[0] if cells[1] else ""
        labels = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", cells[2]))
        opt_in = "opt-in" in cells[3].lower()
        first = None
        for n in names:
            if n.startswith("_") and first:
                # `statewall_conntrack_found_total`, `_invalid_total`: the relative name
                # replaces the varying word and the suffix of the first full name.
                base = first.rsplit("_", 2)[0]
                n = base + n
            elif not n.startswith("_"):
                first = first or n
            metrics[n] = {"type": mtype, "labels": labels, "opt_in": opt_in}
    return metrics


def parse_scrape(path):
    """(sample names, names declared in HELP/TYPE) of a Prometheus text exposition."""
    samples, declared = set(), set()
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                declared.add(parts[2])
            continue
        m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
        if m:
            samples.add(m.group(0))
    return samples, declared


def resolve(name, contract):
    """The contract entry a queried name refers to, or None."""
    if name in contract:
        return name
    for suf in HISTO_SUFFIXES:
        if name.endswith(suf):
            base = name[: -len(suf)]
            if base in contract and contract[base]["type"] in ("histogram", "summary"):
                return base
    return None


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    md = DEFAULT_MD
    if "--metrics-md" in argv:
        md = argv[argv.index("--metrics-md") + 1]
        args.remove(md)
    if not args or len(args) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    emit = None
    if "--emit-rules" in argv:
        emit = argv[argv.index("--emit-rules") + 1]
        args.remove(emit)
    source = args[0]
    scrape = args[1] if len(args) == 2 else None

    contract = parse_metrics_md(md)
    if len(contract) < 10:
        print(f"error: only {len(contract)} metrics parsed from {md}; has its table format changed?", file=sys.stderr)
        return 2

    try:
        if source.endswith(".json"):
            exprs = dashboard_exprs(json.load(open(source, encoding="utf-8")))
        else:
            import yaml  # only needed for rules files
            exprs = rules_exprs(yaml.safe_load(open(source, encoding="utf-8")))
    except Exception as e:  # noqa: BLE001 - report any parse error as such
        print(f"error: cannot parse {source}: {e}", file=sys.stderr)
        return 2
    if not exprs:
        print(f"error: no PromQL expressions found in {source}", file=sys.stderr)
        return 2

    if emit:
        # One recording rule per expression, so `promtool check rules` parses them all.
        with open(emit, "w", encoding="utf-8") as f:
            f.write("groups:\n  - name: extracted\n    rules:\n")
            for i, (where, expr) in enumerate(exprs):
                f.write(f"      # {where}\n      - record: extracted:expr{i}\n        expr: {json.dumps(substitute_grafana(expr))}\n")

    used = {}  # name -> [where]
    bad = 0
    for where, expr in exprs:
        for name, labels in metric_refs(expr):
            used.setdefault(name, []).append(where)
            if name in PROMETHEUS_BUILTIN:
                continue
            base = resolve(name, contract)
            if base is None:
                continue  # reported below, once per name
            allowed = contract[base]["labels"] | {"job", "instance"} | ({"le"} if name.endswith("_bucket") else set())
            for lab in sorted(labels - allowed):
                print(f"FAIL: {where}: label {lab!r} is not a label of {base} in METRICS.md "
                      f"(has: {', '.join(sorted(contract[base]['labels'])) or 'none'})")
                bad = 1

    for name in sorted(used):
        if name in PROMETHEUS_BUILTIN:
            continue
        if resolve(name, contract) is None:
            print(f"FAIL: {name} (used by {used[name][0]}) is not in {os.path.relpath(md)}")
            bad = 1

    if scrape:
        samples, declared = parse_scrape(scrape)
        for name in sorted(used):
            if name in PROMETHEUS_BUILTIN:
                continue
            base = resolve(name, contract)
            if name in samples:
                continue
            if name in declared or (base and base in declared):
                print(f"warning: {name} is declared in the scrape but has no samples")
                continue
            if base and contract[base]["opt_in"]:
                print(f"warning: {name} is opt-in and absent from the scrape")
                continue
            print(f"FAIL: {name} (used by {used[name][0]}) is not in the scrape {scrape}")
            bad = 1

    names = sorted(n for n in used if n not in PROMETHEUS_BUILTIN)
    if not bad:
        where = " and the scrape" if scrape else ""
        print(f"ok: {source}: {len(exprs)} expressions, {len(names)} metrics, all in METRICS.md{where}")
    if "--list" in argv:
        for n in names:
            print("  " + n)
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
