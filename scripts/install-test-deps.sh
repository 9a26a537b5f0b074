#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, idempotently:
# Debian packages for interop peers (swaks, openssl, Postfix tools, DNS servers,
# Python) and cargo tools. Safe to run again; it only installs what is missing.
set -euo pipefail

packages=(
  openssl          # certstore interop: x509, verify, req, pkcs12
  swaks            # smtp-tls interop: an SMTP client we did not write
  libnet-ssleay-perl  # swaks --tls
  unbound          # dane: validating resolver in front of the signed test zone
  knot             # dane: authoritative server for the signed test zone
  knot-dnsutils    # dane: kdig for debugging the test zone
  ldnsutils        # dane: ldns-keygen / ldns-signzone to sign the test zone
  pebble           # ACME: a test CA server the ACME tests start on loopback
  postfix          # check: posttls-finger, compared with `portcullis check` (no daemon is started)
  curl             # admin API: an HTTPS client we did not write, against every endpoint
  prometheus       # admin API: promtool check metrics on a live /metrics (no daemon is started)
  chromium         # admin API: the status page rendered headless (--dump-dom, --screenshot)
  systemd          # systemd-analyze verify on examples/portcullis.service (no daemon is started)
  python3          # mta: DSN reports read back with Python's email package (dsn_python.rs)
  python3-jsonschema  # mta: TLS-RPT reports checked against a JSON Schema written from RFC 8460 §4.4 (tlsrpt_send.rs)
  python3-dkim     # mta: dkimverify's library checks the DKIM signature of TLS-RPT report mail (tlsrpt_send.rs)
  postgresql       # mta: the cluster state store; tests start a private server on loopback (no system service)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # Package scripts must not start daemons on the test machine: the tests
  # start their own servers on loopback.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    created_policy=1
  fi
  # Postfix's package must not configure or start a system mail server.
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ "$created_policy" -eq 0 ] || $SUDO rm -f "$policy"
else
  echo "Debian packages already installed: ${packages[*]}"
fi
