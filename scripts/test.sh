#!/usr/bin/env bash
# test.sh - every test, on the normal build and on the ASan+UBSan build.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
"$top/scripts/build.sh" RelWithDebInfo "$top/build"
"$top/scripts/build.sh" Sanitize "$top/build-sanitize"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
echo "== normal build =="
ctest --test-dir "$top/build" --output-on-failure -j2 || status=1
echo "== sanitizer build (ASan+UBSan) =="
ctest --test-dir "$top/build-sanitize" --output-on-failure -j2 || status=1
# Fuzzing (tests/fuzz, clang + libFuzzer): each target over its corpus, then ~20 s of fuzzing.
if command -v clang >/dev/null; then
  echo "== fuzz targets (libFuzzer, ASan+UBSan) =="
  cmake -S "$top/tests/fuzz" -B "$top/build-fuzz" -DCMAKE_C_COMPILER=clang >/dev/null
  cmake --build "$top/build-fuzz" -j"$(nproc)"
  log=$(mktemp)
  if ! ctest --test-dir "$top/build-fuzz" -j2 -V >"$log" 2>&1; then
    status=1
    grep -E -B40 'fuzz .*FAILED|\*\*\*Failed' "$log" | tail -120 || true
  fi
  grep -E '^[0-9]+: fuzz [a-z_]+: |tests passed' "$log" || true    # executions per target
  rm -f "$log"
else
  echo "== fuzz targets skipped: clang not installed (scripts/deps.sh) =="
fi
exit $status
