#!/usr/bin/env bash
# run_fuzz.sh NAME BINARY CORPUS SECONDS - fuzz one target for a bounded time.
# New inputs go to a scratch directory, not the seed corpus in the repository;
# a crash leaves its input as scratch/crash-* and fails the test (add it to the
# corpus once fixed, so fuzz/NAME/regress keeps it fixed). Ends with one line:
# "fuzz NAME: N executions in S s, C corpus units, 0 crashes".
set -uo pipefail
name=$1 bin=$2 corpus=$3 seconds=$4
scratch=$(mktemp -d "${TMPDIR:-/tmp}/postern-fuzz-$name-XXXXXX")
log=$scratch/log
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=0
"$bin" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -max_len=65536 \
       -timeout=10 -artifact_prefix="$scratch/" "$scratch" "$corpus" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
units=$(ls "$scratch" | grep -vc '^log$\|^crash-\|^leak-\|^timeout-\|^oom-' || true)
crashes=$(ls "$scratch" | grep -c '^crash-\|^leak-\|^timeout-\|^oom-' || true)
if [ $rc -ne 0 ]; then
  tail -60 "$log"
  echo "fuzz $name: FAILED (exit $rc), inputs kept in $scratch"
  exit 1
fi
echo "fuzz $name: ${execs:-?} executions in $seconds s, $units new corpus units, $crashes crashes"
rm -rf "$scratch"
