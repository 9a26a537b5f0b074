#!/usr/bin/env bash
# Seeds of spool_segment: segments written by a running gateway (run by
# make.sh, or alone: fuzz/seeds/spool.sh fuzz/seeds/spool_segment).
#
# The built-in default on a free port, its resolver a closed loopback port (so
# deliveries defer and records of attempts are written too): with delivery
# suspended, messages in cleartext and over STARTTLS, several recipients, a
# long body, a null sender, DSN parameters (RFC 3461), REQUIRETLS, SMTPUTF8
# and 8BITMIME; then hold, release, delete and bounce through the admin API,
# and delivery resumed so attempts are recorded. Each segment is seeded as
# written, with a torn tail, and in the forms spool_seeds.py makes.
set -euo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
gw_pid=
cleanup() {
  [ -z "$gw_pid" ] || kill "$gw_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

gw=${PORTCULLIS:-$root/target/debug/portcullis}
[ -x "$gw" ] || (cd "$root" && cargo build -q -p portcullis-cli)
mkdir gw
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$gw" run --listen "127.0.0.1:$port" --data-dir gw --resolver 127.0.0.1:9 >gw.log 2>&1 &
gw_pid=$!
for _ in $(seq 100); do [ -s gw/admin/endpoint.json ] && break; sleep 0.1; done
sw() { swaks --server "127.0.0.1:$port" "$@" >/dev/null; }
ctl() { "$gw" ctl --data-dir gw "$@" >/dev/null; }
ctl suspend delivery
sw --from sender@example.org --to a@example.com
sw --from sender@example.org --to a@example.com,b@example.com --tls --body "$(python3 -c 'print(("x" * 70 + "\n") * 300)')"
sw --from sender@example.org --to c@example.com --tls --header 'TLS-Required: No'
sw --from '' --to d@example.com
ids=$("$gw" ctl --data-dir gw --json queue list | python3 -c 'import json,sys; print(" ".join(m["id"] for m in json.load(sys.stdin)))')
read -r m1 m2 m3 m4 <<<"$ids"
# swaks sends no DSN parameters; smtplib does.
python3 - "$port" <<'PYEOF'
import smtplib, ssl, sys

port = int(sys.argv[1])
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test") as s:
    s.sendmail("sender@example.org", ["e@example.com", "f@example.com"],
               "Subject: dsn\r\n\r\nbody\r\n",
               mail_options=["RET=HDRS", "ENVID=QQ314159"],
               rcpt_options=["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;e@example.com"])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test") as s:
    s.starttls(context=ctx)
    s.ehlo("client.test")
    s.sendmail("sender@example.org", ["g@example.com"],
               "Subject: utf8 \u00e9\r\n\r\n\u00e9\r\n".encode(),
               mail_options=["BODY=8BITMIME", "REQUIRETLS", "SMTPUTF8", "RET=FULL"],
               rcpt_options=["NOTIFY=NEVER"])
PYEOF
ctl queue hold "$m1"
ctl queue release "$m1"
ctl queue delete "$m2"
ctl queue bounce "$m3"
ctl queue hold "$m4"
ctl resume delivery
sleep 2
kill "$gw_pid"
wait "$gw_pid" || true
gw_pid=

rm -f "$out"/segment-*
i=0
for f in gw/spool/*.log; do
  i=$((i + 1))
  { printf '\x00'; cat "$f"; } >"$out/segment-$i"
  # A torn tail: the last record cut short, as a crash mid-write leaves it.
  { printf '\x00'; head -c $(($(stat -c %s "$f") - 7)) "$f"; } >"$out/segment-$i-torn"
  python3 "$here/spool_seeds.py" "$f" "$out" "segment-$i"
done
