#!/usr/bin/env bash
# Installs what the relay benchmark needs beyond the test suite, idempotently:
# Postfix (the relay we compare against; its smtp-source/smtp-sink drive the
# plaintext scenario) and swaks (a quick manual check). Postfix's package must
# not start or configure a system daemon: the benchmark runs a private
# instance on loopback.
set -euo pipefail

packages=(postfix swaks libnet-ssleay-perl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "benchmark packages already installed: ${packages[*]}"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
[ "$created_policy" -eq 0 ] || $SUDO rm -f "$policy"
