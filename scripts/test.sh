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
exit $status
