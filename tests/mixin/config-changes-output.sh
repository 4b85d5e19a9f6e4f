#!/usr/bin/env bash
# The mixin's _config drives the generated rules and dashboards: generate
# with a changed selector, thresholds, severities, runbook URL, dashboard URL
# and windows, and check each change reaches the output (and that the
# defaults do not leak through). Called by scripts/check-rules.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
w="$(mktemp -d)"; trap 'rm -rf "$w"' EXIT
override='(import "mixin/mixin.libsonnet") + { _config+:: {
  selector: "job=\"nhi-prod\", cluster=\"eu1\"",
  windows: ["14d", "60d"],
  severities: { page: "page", ticket: "ticket" },
  runbookURLPattern: "https://wiki.example.com/nhi/%s",
  dashboardURL: "https://grafana.example.com",
  keepFiringFor: "3h",
  thresholds+: { liveWarningSeconds: 7200, secretsBurst: 25, remediationStalledSeconds: 30 * 86400 },
} }'
jsonnet -e "($override).prometheusAlerts" > "$w/alerts.json"
jsonnet -e "($override).prometheusRules" > "$w/rules.json"
jsonnet -e "($override).grafanaDashboards" > "$w/dash.json"
jsonnet -e '(import "mixin/mixin.libsonnet").prometheusAlerts' > "$w/default.json"
python3 - "$w" <<'PY'
import json, sys
w = sys.argv[1]
alerts = [r for g in json.load(open(f"{w}/alerts.json"))["groups"] for r in g["rules"]]
default = [r for g in json.load(open(f"{w}/default.json"))["groups"] for r in g["rules"]]
rules = [r for g in json.load(open(f"{w}/rules.json"))["groups"] for r in g["rules"]]
dash = json.load(open(f"{w}/dash.json"))
problems = []
def check(ok, what):
    if not ok:
        problems.append(what)
assert len(alerts) == len(default) == 21, len(alerts)
for r in alerts:
    n = r["alert"]
    check('job="nhi-prod", cluster="eu1"' in r["expr"], f"{n}: selector not applied: {r['expr']}")
    check('job="nhi-exporter"' not in r["expr"], f"{n}: default selector left in {r['expr']}")
    check(r["labels"]["severity"] in ("page", "ticket"), f"{n}: severity {r['labels']['severity']}")
    check(r["annotations"]["runbook_url"] == "https://wiki.example.com/nhi/" + n.lower(), f"{n}: runbook {r['annotations']['runbook_url']}")
    check(r["annotations"]["dashboard_url"].startswith("https://grafana.example.com/d/nhi-"), f"{n}: dashboard_url")
    check(r["labels"]["area"] in ("exposure", "privilege", "governance", "posture", "exporter"), f"{n}: area")
    if 'window=~' in r["expr"]:
        check('window=~"14d|60d"' in r["expr"], f"{n}: windows not applied")
by = {}
for r in alerts:
    by.setdefault(r["alert"], []).append(r)
live = {r["labels"]["severity"]: r for r in by["NHILiveSecretExposed"]}
check(live["ticket"]["expr"].endswith("> 7200"), "live warning threshold: " + live["ticket"]["expr"])
check(live["page"]["expr"].endswith("> 86400"), "live critical threshold kept: " + live["page"]["expr"])
check(live["page"]["keep_firing_for"] == "3h", "keep_firing_for")
check(by["NHISecretsInCodeBurst"][0]["expr"].endswith(">= 25") and 'window="14d"' in by["NHISecretsInCodeBurst"][0]["expr"], "burst: " + by["NHISecretsInCodeBurst"][0]["expr"])
check("> 2592000" in by["NHIRemediationStalled"][0]["expr"], "stalled threshold")
check("(threshold {{ 2592000 | humanizeDuration }})" in by["NHIRemediationStalled"][0]["annotations"]["description"], "stalled description")
dlive = [r for r in default if r["alert"] == "NHILiveSecretExposed"]
check({r["labels"]["severity"] for r in dlive} == {"warning", "critical"}, "default severities")
check(all('job="nhi-exporter"' in r["expr"] for r in default if r["alert"] != "NHIExporterAbsent") , "default selector")
for r in rules:
    check('job="nhi-prod", cluster="eu1"' in r["expr"] or r["expr"].startswith("histogram_quantile"), f"recording {r['record']}: {r['expr']}")
for name, d in dash.items():
    job = [v for v in d["templating"]["list"] if v["name"] == "job"][0]
    want = 'label_values(nhi_exporter_build_info{job="nhi-prod", cluster="eu1"}, job)'
    check(job["definition"] == want and job["query"]["query"] == want, f"{name}: job variable {job['definition']}")
for p in problems:
    print("mixin _config:", p)
print(f"mixin _config: {len(alerts)} alerts, {len(rules)} recording rules, {len(dash)} dashboards follow the overridden _config" if not problems else "")
sys.exit(1 if problems else 0)
PY
