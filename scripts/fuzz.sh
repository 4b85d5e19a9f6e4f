#!/usr/bin/env bash
# The long fuzzing campaign: libFuzzer (cargo-fuzz, nightly) on every target
# of fuzz/ for SECONDS each (default 60), one after the other. The stable
# smoke run of the same entries is `cargo test --test fuzz_smoke` (part of
# the normal test command; no nightly build).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# Env:   SANITIZER=none|address (default none: the parsers are safe Rust, and
#        an ASan build of the whole dependency tree is slow; a panic is a
#        crash either way), FUZZ_JOBS (default 1), CARGO_TARGET_DIR (default
#        fuzz/target).
# Needs: rustup's nightly toolchain and `cargo install cargo-fuzz --locked`.
#
# Each target starts from its seeds (fuzz/corpus/<target>/, read only) and
# grows a scratch corpus in fuzz/target/corpus/<target>/; a crash is written
# to fuzz/artifacts/<target>/ and stops that target. The summary is one line
# per target from libFuzzer's final stats: executions, cov, ft, crashes.
# A crash found: fix the parser, copy the input into fuzz/corpus/<target>/
# and add it to `regressions` in tests/fuzz_smoke.rs.
set -uo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-60}
shift || true
SANITIZER=${SANITIZER:-none}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/fuzz/target}
if [ $# -gt 0 ]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build -s "$SANITIZER" || exit 1

LOGS=$CARGO_TARGET_DIR/fuzz-logs
mkdir -p "$LOGS"
printf '%-24s %12s %8s %8s %s\n' target execs cov ft result
failed=0
for t in "${TARGETS[@]}"; do
  scratch=$CARGO_TARGET_DIR/corpus/$t
  mkdir -p "$scratch" "fuzz/artifacts/$t"
  # The built binary itself: `cargo fuzz run` would rebuild the crate each
  # time in a git worktree (build.rs watches .git/HEAD, not a file there).
  "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/$t" "$scratch" "$PWD/fuzz/corpus/$t" \
    -artifact_prefix="$PWD/fuzz/artifacts/$t/" -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -dict="$PWD/fuzz/canary.dict" -print_final_stats=1 >"$LOGS/$t.log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$LOGS/$t.log" | grep -o '[0-9]*$')
  last=$(grep -E '^#[0-9]+' "$LOGS/$t.log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  if [ $rc -eq 0 ]; then result=ok; else result="CRASH (see $LOGS/$t.log, fuzz/artifacts/$t/)"; failed=1; fi
  printf '%-24s %12s %8s %8s %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
exit $failed
