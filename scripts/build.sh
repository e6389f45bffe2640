#!/usr/bin/env bash
# build.sh [TYPE [DIR]] - configure and build (TYPE: RelWithDebInfo (default) or Sanitize).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
type=${1:-RelWithDebInfo}
dir=${2:-$top/build}
cmake -S "$top" -B "$dir" -DCMAKE_BUILD_TYPE="$type" >/dev/null
cmake --build "$dir" -j"$(nproc)"
