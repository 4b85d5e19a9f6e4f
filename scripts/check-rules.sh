#!/usr/bin/env bash
# Check the Prometheus rules, their unit tests, the sample Prometheus config,
# the runbook links and the Grafana dashboards. Exits non-zero on any failure.
#
#   scripts/check-rules.sh [EXPOSITION]
#
# EXPOSITION defaults to tests/rules/sample-exposition.prom (hand-written, every
# SPEC section 3 metric); pass a file scraped from a real exporter to lint the
# dashboards against it instead. Needs promtool (Debian: apt-get install
# prometheus), jsonnet and python3.
set -euo pipefail

cd "$(dirname "$0")/.."
exposition="${1:-tests/rules/sample-exposition.prom}"

if ! command -v promtool >/dev/null 2>&1; then
  echo "check-rules: promtool not found (Debian/Ubuntu: apt-get install -y prometheus)" >&2
  exit 1
fi

failed=0
step() {
  echo
  echo "== $*"
  if ! "$@"; then
    echo "!! FAILED: $*" >&2
    failed=1
  fi
}

step bash scripts/gen-mixin.sh --check
step bash tests/mixin/config-changes-output.sh
step promtool check rules deploy/prometheus/*.rules.yml
step promtool check config deploy/prometheus/prometheus.yml
echo
echo "== promtool check metrics < $exposition"
if ! lint_out="$(promtool check metrics < "$exposition" 2>&1)"; then
  echo "$lint_out" >&2
  echo "!! FAILED: promtool check metrics" >&2
  failed=1
fi
step promtool test rules tests/rules/*.test.yml
step python3 scripts/gen-dashboards.py --check
step python3 scripts/lint-dashboards.py --exposition "$exposition"

# Every alert has a runbook_url into docs/runbooks.md, whose anchor is a heading
# there; every alert name has a section.
check_runbooks() {
  python3 - <<'PY'
import re, sys
rules = open("deploy/prometheus/nhi-alerts.rules.yml", encoding="utf-8").read()
doc = open("docs/runbooks.md", encoding="utf-8").read()

def anchor(heading):
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")

anchors = {anchor(h) for h in re.findall(r"^#+\s+(.+)$", doc, re.M)}
problems = []
alerts = re.findall(r"^\s*-\s*alert:\s*\"?([^\"\s]+)", rules, re.M)
blocks = re.split(r"^\s*-\s*alert:\s*", rules, flags=re.M)[1:]
for name, block in zip(alerts, blocks):
    for key in ("severity:", "summary:", "description:", "runbook_url:"):
        if key not in block:
            problems.append(f"{name}: no {key[:-1]}")
    m = re.search(r"runbook_url:\s*\"?([^\"\s]+)", block)
    if m:
        url = m.group(1)
        if "docs/runbooks.md#" not in url:
            problems.append(f"{name}: runbook_url {url} does not point into docs/runbooks.md")
        elif url.split("#", 1)[1] not in anchors:
            problems.append(f"{name}: runbook anchor #{url.split('#', 1)[1]} not in docs/runbooks.md")
    if anchor(name) not in anchors:
        problems.append(f"{name}: no '## {name}' section in docs/runbooks.md")
    sev = re.search(r"severity:\s*\"?([^\"\s]+)", block)
    if sev and sev.group(1) not in ("warning", "critical"):
        problems.append(f"{name}: severity {sev.group(1)} is not warning or critical")
for p in problems:
    print(p)
print(f"{len(set(alerts))} alerts, {len(alerts)} rules checked against docs/runbooks.md")
sys.exit(1 if problems else 0)
PY
}
step check_runbooks

# Every alert has a firing case and a silent case in the unit tests.
check_test_coverage() {
  python3 - <<'PY'
import glob, re, sys
alerts = set(re.findall(r"^\s*-\s*alert:\s*\"?([^\"\s]+)", open("deploy/prometheus/nhi-alerts.rules.yml").read(), re.M))
fires, silent = set(), set()
for path in glob.glob("tests/rules/*.test.yml"):
    text = open(path).read()
    for m in re.finditer(r"alertname:\s*(\S+)\s*\n\s*exp_alerts:\s*(\[\])?", text):
        (silent if m.group(2) else fires).add(m.group(1))
problems = [f"{a}: no test where it fires" for a in sorted(alerts - fires)]
problems += [f"{a}: no test where it stays silent" for a in sorted(alerts - silent)]
for p in problems:
    print(p)
print(f"{len(alerts)} alerts: each has firing and silent unit-test cases" if not problems else "")
sys.exit(1 if problems else 0)
PY
}
step check_test_coverage

echo
if [ "$failed" -ne 0 ]; then
  echo "check-rules: FAILED" >&2
  exit 1
fi
echo "check-rules: OK"
