#!/usr/bin/env bash
# Scrape throughput: nhi-exporter's /metrics vs Debian's prometheus-node-exporter,
# both on loopback, measured in the same run with wrk (8 connections).
#   scripts/bench-scrape.sh [DURATION]      (default 15s each)
# Needs: apt-get install wrk prometheus-node-exporter
set -euo pipefail
cd "$(dirname "$0")/.."
dur="${1:-15s}"
for c in wrk prometheus-node-exporter; do
  command -v "$c" >/dev/null || { echo "missing $c: apt-get install -y wrk prometheus-node-exporter" >&2; exit 1; }
done
cargo build --release --quiet
work="$(mktemp -d)"
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cp -r config/demo "$work/demo"
sed 's#../target/nhi-demo/state.db#state/state.db#' config/demo.yaml > "$work/demo.yaml"
p1=$(free_port); p2=$(free_port)
./target/release/nhi-exporter --config.file="$work/demo.yaml" --web.listen-address=127.0.0.1:$p1 --log.level=warn & pids+=($!)
prometheus-node-exporter --web.listen-address=127.0.0.1:$p2 --log.level=warn 2>/dev/null & pids+=($!)
for p in $p1 $p2; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/metrics" >/dev/null && break; sleep 0.1; done
done
run() { # name port
  local out; out=$(wrk -t2 -c8 -d"$dur" --latency "http://127.0.0.1:$2/metrics")
  local rps p99 bytes
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  bytes=$(curl -s "http://127.0.0.1:$2/metrics" | wc -c)
  printf '%-26s %12s req/s   p99 %-9s  body %s bytes\n' "$1" "$rps" "$p99" "$bytes"
}
echo "wrk -t2 -c8 -d$dur, loopback, $(nproc) cores"
run nhi-exporter "$p1"
run prometheus-node-exporter "$p2"
