#!/usr/bin/env python3
"""Check a Prometheus that scrapes nhi-exporter with the bundled rules: every
rule group loads and evaluates healthy, and every query of every bundled
dashboard (variables substituted, from scripts/lint-dashboards.py) returns
data. Exits 1 listing what failed.

  check_prometheus.py http://127.0.0.1:9090
"""
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def api(base, path, **params):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def main(base):
    failures = []
    n_rules = 0
    for g in api(base, "/api/v1/rules")["data"]["groups"]:
        for r in g["rules"]:
            n_rules += 1
            if r.get("health") != "ok":
                failures.append(f"rule {r['name']} in {g['name']}: {r.get('lastError')}")
    queries = json.loads(subprocess.check_output(
        [sys.executable, os.path.join(ROOT, "scripts/lint-dashboards.py"),
         "--list-queries", "--job", "nhi-exporter"]))
    # A query can be empty only because its recording rule has not been
    # evaluated since the last poll applied: ask the empty ones again for up
    # to 20 s (10 evaluation intervals) before calling them empty.
    pending = queries
    for attempt in range(11):
        empty = []
        for q in pending:
            v = api(base, "/api/v1/query", query=q["expr"])
            if v.get("status") != "success":
                failures.append(f"{q['dashboard']} / {q['panel']}: query failed: {v}")
            elif not v["data"]["result"]:
                empty.append(q)
        pending = empty
        if not pending or attempt == 10:
            break
        time.sleep(2)
    empty = [f"{q['dashboard']} / {q['panel']}: {q['expr']}" for q in pending]
    failures += [f"no data: {e}" for e in empty]
    print(f"{n_rules} rules, {len(queries)} dashboard queries checked")
    if failures:
        print("\n".join(failures))
        return 1
    print("every rule is healthy and every dashboard query returned data")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
