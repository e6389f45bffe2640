#!/usr/bin/env bash
# demo.sh [DIR] - build and start a demo instance (Berkeley DB tables, SMTP on port 10025).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$top/demo}
"$top/scripts/deps.sh"
"$top/scripts/build.sh"
postctl="$top/build/bin/postctl"
if [ -f "$dir/etc/main.cf" ] && "$postctl" -c "$dir/etc" status >/dev/null 2>&1; then
    "$postctl" -c "$dir/etc" stop
fi
"$postctl" init --dir "$dir" --port-base 10000 --hostname "${POSTERN_HOSTNAME:-mail.example.test}" \
    --inet-interfaces 127.0.0.1 --force
"$postctl" -c "$dir/etc" start
"$postctl" -c "$dir/etc" status
echo "demo: export POSTERN_CONFIG=$dir/etc; then postctl status|stop|conf ...; log in $dir/log/postern.log"
