#!/usr/bin/env bash
# deps.sh - install the Debian packages Postern needs to build and test, if any are missing.
# As root it runs apt-get; as an ordinary user it uses sudo when it can, else says what to install.
set -euo pipefail
packages=(build-essential cmake pkg-config libssl-dev libdb-dev libcap-dev libevent-dev libargon2-dev
          libcmocka-dev libpq-dev openssl swaks dovecot-core postfix isync
          postgresql dnsmasq-base clang libclang-rt-14-dev valgrind)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps.sh: installing ${missing[*]}"
# Postfix is a test peer only: it must not become this machine's mail system.
preseed='postfix postfix/main_mailer_type select No configuration'
if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    echo "$preseed" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
elif sudo -n true 2>/dev/null; then
    echo "$preseed" | sudo debconf-set-selections
    sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
    echo "deps.sh: missing packages; as root run: apt-get install -y ${missing[*]}" >&2
    exit 1
fi
