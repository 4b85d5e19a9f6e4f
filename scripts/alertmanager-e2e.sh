#!/usr/bin/env bash
# End-to-end: exporter -> Prometheus (bundled rules) -> Alertmanager (the
# example deploy/alertmanager/alertmanager.yml) -> a webhook receiver, all on
# free loopback ports. A residual exposure (a verified secret whose finding
# disappeared two hours ago) makes the bundled NHIResidualExposures alert
# fire; it must reach the webhook routed by area/severity with its labels and
# annotations. Then the exporter is stopped for 20 s and restarted: the alert
# must stay active in Alertmanager and no "resolved" notification may reach
# the webhook. Needs prometheus, prometheus-alertmanager (amtool), python3
# and a built target/debug/nhi-exporter (cargo build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="${NHI_EXPORTER_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/nhi-exporter}"
AM_BIN="$(command -v prometheus-alertmanager || command -v alertmanager)"
for b in "$BIN" "$AM_BIN" "$(command -v prometheus)" "$(command -v amtool)"; do
  [ -x "$b" ] || { echo "alertmanager-e2e: missing $b" >&2; exit 1; }
done
W="$(mktemp -d /tmp/nhi-am-e2e.XXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
fail() { echo "alertmanager-e2e: FAIL: $*" >&2; for f in "$W"/*.log; do echo "--- $f" >&2; tail -20 "$f" >&2; done; exit 1; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EXP_PORT=$(port); PROM_PORT=$(port); AM_PORT=$(port); HOOK_PORT=$(port)

echo "== amtool check-config deploy/alertmanager/alertmanager.yml"
amtool check-config deploy/alertmanager/alertmanager.yml
# Routing of the example configuration: area and severity pick the receiver.
route() { amtool config routes test --config.file=deploy/alertmanager/alertmanager.yml "$@" 2>/dev/null; }
[ "$(route area=exposure severity=critical)" = security-page ] || fail "exposure critical not routed to security-page"
[ "$(route area=exposure severity=warning)" = security-tickets ] || fail "exposure warning not routed to security-tickets"
[ "$(route area=privilege severity=warning)" = iam-tickets ] || fail "privilege not routed to iam-tickets"
[ "$(route area=exporter severity=critical)" = nhi-exporter-ops ] || fail "exporter not routed to nhi-exporter-ops"

# Webhook receiver: appends every notification (one JSON per line).
cat > "$W/hook.py" <<'PY'
import http.server, sys
out = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "a") as f:
            f.write(self.path + " " + body.decode() + "\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
touch "$W/hook.jsonl"
python3 "$W/hook.py" "$HOOK_PORT" "$W/hook.jsonl" >"$W/hook.log" 2>&1 & PIDS+=($!)

# Alertmanager with the example config, receivers pointed at the webhook and
# short group timers.
sed -e "s#http://127.0.0.1:5001/#http://127.0.0.1:$HOOK_PORT/#" \
    -e 's/group_wait: 30s/group_wait: 1s/; s/group_interval: 5m/group_interval: 2s/' \
    deploy/alertmanager/alertmanager.yml > "$W/am.yml"
"$AM_BIN" --config.file="$W/am.yml" --storage.path="$W/am" \
  --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= >"$W/am.log" 2>&1 & PIDS+=($!)

# The exporter's store: a trufflehog report verified a secret 3h ago; the
# target's newer scan 2h ago no longer has it (closed, still live: residual).
mkdir -p "$W/th"
cp tests/fixtures/trufflehog/basic.jsonl "$W/th/repo.jsonl"
touch -d '-3 hours' "$W/th/repo.jsonl"
cat > "$W/nhi.yaml" <<YAML
state: {path: $W/state.db}
sources:
  - {name: th, type: trufflehog, interval: 2s, paths: ["$W/th/*.jsonl"]}
YAML
"$BIN" --config.file="$W/nhi.yaml" --once >"$W/once1.prom" 2>"$W/once1.log" || fail "first --once poll"
: > "$W/th/repo.jsonl"; touch -d '-2 hours' "$W/th/repo.jsonl"
start_exporter() {
  "$BIN" --config.file="$W/nhi.yaml" --web.listen-address="127.0.0.1:$EXP_PORT" >>"$W/exporter.log" 2>&1 &
  EXP_PID=$!; PIDS+=($EXP_PID)
}
start_exporter

cat > "$W/prom.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [$ROOT/deploy/prometheus/nhi-alerts.rules.yml, $ROOT/deploy/prometheus/nhi-recording.rules.yml]
alerting:
  alertmanagers: [{static_configs: [{targets: ['127.0.0.1:$AM_PORT']}]}]
scrape_configs:
  - job_name: nhi-exporter
    static_configs: [{targets: ['127.0.0.1:$EXP_PORT']}]
YAML
prometheus --config.file="$W/prom.yml" --storage.tsdb.path="$W/prom" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$W/prom.log" 2>&1 & PIDS+=($!)

# Wait for the bundled alert at the webhook.
notified() { grep -q '"alertname":"NHIResidualExposures"' "$W/hook.jsonl"; }
for _ in $(seq 1 90); do notified && break; sleep 1; done
notified || fail "NHIResidualExposures did not reach the webhook in 90 s"
python3 - "$W/hook.jsonl" <<'PY' || fail "webhook payload"
import json, sys
lines = [l.split(" ", 1) for l in open(sys.argv[1]) if '"alertname":"NHIResidualExposures"' in l]
path, body = lines[0]
msg = json.loads(body)
assert path == "/security-tickets", path             # area=exposure, severity=warning
assert msg["status"] == "firing", msg["status"]
a = [x for x in msg["alerts"] if x["labels"]["alertname"] == "NHIResidualExposures"][0]
l, an = a["labels"], a["annotations"]
assert l == {"alertname": "NHIResidualExposures", "area": "exposure", "job": "nhi-exporter", "severity": "warning"}, l
assert an["runbook_url"].endswith("docs/runbooks.md#nhiresidualexposures"), an
assert an["dashboard_url"].endswith("/d/nhi-exposure"), an
assert an["summary"].startswith("A closed exposure has still had a working secret for 2h"), an["summary"]
assert "(threshold 1h 0m 0s)" in an["description"], an["description"]
print("webhook got", l["alertname"], "at", path, "with", sorted(an))
PY

# Restart: stop the exporter for 20 s (Prometheus marks its series stale),
# then start it again under the same address.
kill "$EXP_PID"; wait "$EXP_PID" 2>/dev/null || true
sleep 20
active() { curl -sf "http://127.0.0.1:$AM_PORT/api/v2/alerts?active=true&filter=alertname%3D%22NHIResidualExposures%22" | python3 -c 'import json,sys; a=json.load(sys.stdin); sys.exit(0 if a and a[0]["status"]["state"]=="active" else 1)'; }
active || fail "the alert is not active in Alertmanager while the exporter is down"
curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query?query=up" | grep -q '"0"\]' || fail "Prometheus did not see the exporter down"
start_exporter
for _ in $(seq 1 30); do curl -sf "http://127.0.0.1:$EXP_PORT/-/ready" >/dev/null && break; sleep 1; done
sleep 5
active || fail "the alert is not active after the exporter restart"
if grep -q '"status":"resolved"' "$W/hook.jsonl"; then fail "a resolved notification reached the webhook"; fi
echo "alertmanager-e2e: OK (alert delivered with labels and annotations; stop + restart of the exporter did not resolve it; $(wc -l < "$W/hook.jsonl") notifications, none resolved)"
