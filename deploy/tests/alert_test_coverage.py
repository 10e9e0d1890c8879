#!/usr/bin/env python3
"""Checks that a promtool rules test file covers every alert of a rules file, both
firing (a case with non-empty exp_alerts) and not firing (a case with exp_alerts: []).

Usage: alert_test_coverage.py RULES.yml TESTS.yml
"""
import sys

import yaml


def main(rules_path, tests_path):
    rules = yaml.safe_load(open(rules_path))
    tests = yaml.safe_load(open(tests_path))
    alerts = [r["alert"] for g in rules.get("groups", []) for r in g.get("rules", []) if "alert" in r]
    firing, quiet = set(), set()
    for t in tests.get("tests", []):
        for case in t.get("alert_rule_test", []) or []:
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    bad = 0
    for a in alerts:
        missing = [what for what, s in (("firing", firing), ("not firing", quiet)) if a not in s]
        if missing:
            print(f"FAIL: alert {a} has no {' and no '.join(missing)} test case")
            bad = 1
    unknown = (firing | quiet) - set(alerts)
    for a in sorted(unknown):
        print(f"FAIL: test case for unknown alert {a}")
        bad = 1
    if not bad:
        print(f"ok: all {len(alerts)} alerts tested firing and not firing")
    return bad


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
