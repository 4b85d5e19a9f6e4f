#!/usr/bin/env bash
# Compare the --once exposition of two nhi-exporter builds on the same inputs:
# the demo reports, then a scanner + vault + aws estate on real OpenBao and moto
# (seeded by scripts/demo/seed.py), then the same stores after the revocation
# story. Time-dependent values (timestamps, ages, durations, revision) are
# masked; everything else must be identical. For refactors that must not
# change behaviour.
#   scripts/compare-once.sh OLD_BINARY NEW_BINARY
# Needs the .venv of scripts/test.sh --install-only.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OLD=$1; NEW=$2
W=$(mktemp -d /tmp/cmp.XXXX); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null||true; done' EXIT
norm() { # time-dependent values become X
  grep -v '^# ' "$1" | sed -E \
   -e 's/^(nhi_(source_last_success_timestamp_seconds|config_last_reload_success_timestamp_seconds|store_history_seconds|exposure_oldest_open_age_seconds|residual_exposure_oldest_age_seconds|exposure_revocation_idle_seconds|credential_oldest_age_seconds)(\{[^}]*\})?) .*/\1 X/' \
   -e 's/^(nhi_source_poll_duration_seconds_[a-z]+(\{[^}]*\})?) .*/\1 X/' \
   -e 's/^(nhi_time_to_(revoke|close)_seconds_sum(\{[^}]*\})?) .*/\1 X/' \
   -e 's/^(nhi_time_to_revoke_median_seconds(\{[^}]*\})?) .*/\1 X/' \
   -e 's/^(process_[a-z_]+) .*/\1 X/' \
   -e 's/revision="[^"]*"/revision="X"/' | sort
}
run() { # name config [state-name]
  for b in old new; do
    bin=$OLD; if [ $b = new ]; then bin=$NEW; fi
    d=$W/$1-$b; mkdir -p $d; sed "s#STATE#$W/${3:-$1}-$b.db#" $2 > $d/c.yaml
    AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AWS_EC2_METADATA_DISABLED=true \
      "$bin" --config.file=$d/c.yaml --once > $d/out.prom 2>$d/log || echo "$1 $b: exit $?"
    norm $d/out.prom > $d/norm
  done
  echo "== $1: $(grep -vc '^#' $W/$1-old/out.prom) old lines, $(grep -vc '^#' $W/$1-new/out.prom) new lines"
  if diff $W/$1-old/norm $W/$1-new/norm > $W/$1.diff; then echo "   identical after normalising time-dependent values"; else echo "   DIFF:"; head -40 $W/$1.diff; fi
  # HELP/TYPE lines identical too
  diff <(grep '^# ' $W/$1-old/out.prom | sort) <(grep '^# ' $W/$1-new/out.prom | sort) >/dev/null && echo "   HELP/TYPE lines identical" || echo "   HELP/TYPE differ"
}
# 1. the demo
sed -e "s#path: ../target/nhi-demo/state.db.*#path: STATE#" -e "s# demo/# $ROOT/config/demo/#g" $ROOT/config/demo.yaml > $W/demo.yaml
run demo $W/demo.yaml
# 2. scanners + vault + aws on real OpenBao and moto
PY=$ROOT/.venv/bin/python; TOKEN=cmp-root-token
BP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
MP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
$ROOT/.venv/bin/bao server -dev -dev-root-token-id=$TOKEN -dev-listen-address=127.0.0.1:$BP > $W/bao.log 2>&1 & PIDS+=($!)
MOTO_IAM_LOAD_MANAGED_POLICIES=true $ROOT/.venv/bin/moto_server -H 127.0.0.1 -p $MP > $W/moto.log 2>&1 & PIDS+=($!)
for i in $(seq 60); do curl -sf http://127.0.0.1:$BP/v1/sys/health >/dev/null && curl -sf http://127.0.0.1:$MP/moto-api/ >/dev/null && break; sleep 0.5; done
cd $ROOT
$PY scripts/demo/seed.py vault http://127.0.0.1:$BP $TOKEN > $W/vault.json
$PY scripts/demo/seed.py aws http://127.0.0.1:$MP > $W/aws.json
$PY -c 'import json,sys; a=json.load(open(sys.argv[1])); a.update(json.load(open(sys.argv[2]))); json.dump(a, open(sys.argv[3],"w"))' $W/vault.json $W/aws.json $W/facts.json
mkdir -p $W/scans; cp -r config/demo/gitleaks config/demo/sarif $W/scans/
$PY scripts/demo/seed.py report $W/scans/gitleaks $W/facts.json
$PY scripts/demo/seed.py trufflehog $W/scans/trufflehog
printf '%s' $TOKEN > $W/vault-token; chmod 600 $W/vault-token
cat > $W/estate.yaml <<YAML
state: {path: STATE}
labels:
  team: {enabled: true, max_values: 10}
sources:
  - {name: demo-gitleaks, type: gitleaks, paths: [$W/scans/gitleaks/*.json, $W/scans/sarif/*.sarif]}
  - {name: demo-trufflehog, type: trufflehog, paths: [$W/scans/trufflehog/*.jsonl]}
  - {name: demo-vault, type: vault, address: http://127.0.0.1:$BP, auth: {method: token, token_file: $W/vault-token}, kv_mounts: [secret], match_values: true}
  - {name: demo-aws, type: aws, regions: [us-east-1, eu-west-1], endpoint_url: http://127.0.0.1:$MP}
YAML
run estate $W/estate.yaml
# The revocation story on the same stores: a leaked key deactivated, the
# report re-scanned without it, then a second poll.
$PY scripts/demo/seed.py revoke http://127.0.0.1:$BP $TOKEN http://127.0.0.1:$MP "$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["revoked_key"])' $W/facts.json)" > /dev/null
$PY scripts/demo/seed.py report $W/scans/gitleaks $W/facts.json --after
sleep 2
run estate-after $W/estate.yaml estate
grep -E '^nhi_(exposures_revoked_total|findings_closed_total|residual_exposures|time_to_revoke_seconds_count)' $W/estate-after-new/out.prom | grep -v ' 0$'
echo "work dir $W"
[ ! -s $W/demo.diff ] && [ ! -s $W/estate.diff ] && [ ! -s $W/estate-after.diff ]
