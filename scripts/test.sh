#!/usr/bin/env bash
# Runs every test of nhi-exporter. On a fresh machine it first installs what
# the tests need: Debian's prometheus package (promtool and the server).
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; exit 1; fi
}

install_debian_packages() {
  local missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus >/dev/null || missing+=(prometheus)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Debian's package starts a prometheus service on :9090 where systemd
  # runs; the tests start their own servers on free loopback ports.
  promtool --version | head -1
}

install_debian_packages

log "formatting"
if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all -- --check; else
  echo "NOTICE: rustfmt is not installed; formatting not checked"; fi

log "lint"
if cargo clippy --version >/dev/null 2>&1; then cargo clippy --all-targets --locked -- -D warnings; else
  echo "NOTICE: clippy is not installed; lints not checked"; fi

log "benchmarks compile"
cargo bench --locked --no-run

log "Prometheus rules and dashboards"
bash scripts/check-rules.sh

log "tests"
cargo test --locked --all-features -- --test-threads=2
