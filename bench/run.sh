#!/usr/bin/env bash
# Relay benchmark: client → relay → sink on loopback, Portcullis and Postfix
# as the relay, in one run. Installs what it needs (bench/install-deps.sh),
# builds release binaries, runs every scenario against both relays, prints a
# table and writes it to $OUT (default: bench/results/<date>.md).
#
#   bench/run.sh                 # 2000 messages per scenario, 20 connections
#   N=5000 C=50 bench/run.sh     # more
#   RELAYS="postfix" bench/run.sh  # one relay only
#   TLS_REPORT=1 bench/run.sh    # Portcullis with [tls-report] on: every TLS
#                                # session counted, counts flushed every second
#   RELAYS="portcullis portcullis_cluster" TLS_REPORT=1 bench/run.sh
#                                # one Portcullis alone, then one as a cluster
#                                # node on a private PostgreSQL (heartbeats,
#                                # TLS-RPT counts pushed to the database, the
#                                # shared-state sync): the cost of the shared store
#
# Scenarios (each with a freshly started relay, so peak RSS is per scenario):
#   a  plaintext both legs: Postfix's smtp-source → relay → smtp-sink
#   a' plaintext both legs: Rust load generator → relay → Rust sink (latency)
#   b  STARTTLS both legs:  Rust load generator → relay → Rust sink; the relay
#      offers STARTTLS inbound with a test-PKI certificate and must use TLS
#      outbound (Postfix smtp_tls_security_level=encrypt, Portcullis
#      tls="required"); neither verifies the sink's certificate.
# Both relays keep their default durable queue (Postfix: queue files with
# fsync; Portcullis: the spool's group-commit log). Postfix gets what a
# careful operator gives it for TLS: outbound TLS connection reuse through
# tlsproxy (smtp_tls_connection_reuse, with tlsproxy enabled in master.cf)
# and TLS session caches on both sides. Everything binds 127.0.0.1 and every
# wait has a deadline. Beside msg/s the table gives CPU seconds per 1,000
# messages (user + system, from /proc), less sensitive to the shared cores.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-2000}
C=${C:-20}
SIZE=${SIZE:-2000}
RELAYS=${RELAYS:-"portcullis postfix"}
TLS_REPORT=${TLS_REPORT:-0}
DEADLINE=${DEADLINE:-300}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ).md}

"$ROOT/bench/install-deps.sh" >/dev/null
echo "building release binaries ..."
build=(-p portcullis-testkit --bin portcullis-relay-bench)
case " $RELAYS " in *" portcullis "*) build+=(-p portcullis-cli --bin portcullis) ;; esac
(cd "$ROOT" && cargo build --release -q "${build[@]}")
PORTCULLIS=$TARGET/release/portcullis
BENCH=$TARGET/release/portcullis-relay-bench

WORK=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ -f "$WORK/pfx/etc/main.cf" ] && postfix -c "$WORK/pfx/etc" stop >/dev/null 2>&1
  [ -n "${PG_BIN:-}" ] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m immediate stop >/dev/null 2>&1
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # wait_port PORT: until something listens on 127.0.0.1:PORT
  for _ in $(seq 1 600); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# Peak memory (kB) of the relay, sampled every 200 ms while the scenario
# runs (Postfix is many processes; Portcullis is one):
#   hwm: the sum over its processes of each one's VmHWM (peak RSS; shared
#        pages such as libc count once per process, which favours nobody
#        when there is one process);
#   pss: the highest sampled sum of Pss (shared pages split between the
#        processes sharing them): the fairer figure for Postfix.
tree_pids() { # tree_pids PID...: the processes and all their descendants
  local all=("$@") frontier=("$@") next
  while ((${#frontier[@]})); do
    next=()
    for p in "${frontier[@]}"; do
      for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do next+=("$c"); done
    done
    all+=("${next[@]}")
    frontier=("${next[@]}")
  done
  echo "${all[@]}"
}
sample_rss() { # sample_rss OUTFILE ROOTPID...: runs until killed
  local out=$1; shift
  declare -A peak=()
  local pss_peak=0
  while true; do
    local pss=0
    for p in $(tree_pids "$@"); do
      v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
      [ -n "$v" ] && { [ -z "${peak[$p]:-}" ] || [ "$v" -gt "${peak[$p]}" ]; } && peak[$p]=$v
      v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true)
      [ -n "$v" ] && pss=$((pss + v))
    done
    [ "$pss" -gt "$pss_peak" ] && pss_peak=$pss
    total=0; for p in "${!peak[@]}"; do total=$((total + peak[$p])); done
    echo "$total ${#peak[@]} $pss_peak" >"$out"
    sleep 0.2
  done
}

# CPU seconds (user + system) a relay used so far: its live processes, and
# the children it has already reaped (Postfix's master reaps its services).
CLK_TCK=$(getconf CLK_TCK)
cpu_seconds() { # cpu_seconds ROOTPID...
  local ticks=0 p t
  for p in $(tree_pids "$@"); do
    for t in $(cut -d' ' -f14-17 "/proc/$p/stat" 2>/dev/null); do ticks=$((ticks + t)); done
  done
  python3 -c "print(f'{$ticks/$CLK_TCK:.2f}')"
}

"$BENCH" pki --out "$WORK/pki" >/dev/null
chmod 644 "$WORK"/pki/*

# ---------------------------------------------------------------- Postfix
postfix_start() { # postfix_start RELAY_PORT SINK_PORT tls|plain
  local P=$WORK/pfx
  [ -f "$P/etc/main.cf" ] && postfix -c "$P/etc" stop >/dev/null 2>&1 || true
  rm -rf "$P"; mkdir -p "$P/etc" "$P/spool" "$P/data"
  cp /etc/postfix/master.cf "$P/etc/master.cf"
  cat >"$P/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $P/spool
data_directory = $P/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$2
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = $P/maillog
maillog_file_prefixes = /tmp
disable_dns_lookups = yes
smtp_dns_support_level = disabled
alias_maps =
alias_database =
local_recipient_maps =
smtpd_client_connection_count_limit = 1000
smtpd_client_connection_rate_limit = 0
EOF
  if [ "$3" = tls ]; then
    cat >>"$P/etc/main.cf" <<EOF
smtpd_tls_cert_file = $WORK/pki/relay.crt
smtpd_tls_key_file = $WORK/pki/relay.key
smtpd_tls_security_level = may
smtp_tls_security_level = encrypt
smtp_tls_loglevel = 0
smtpd_tls_loglevel = 0
smtp_tls_connection_reuse = yes
smtp_tls_session_cache_database = btree:\$data_directory/smtp_scache
smtpd_tls_session_cache_database = btree:\$data_directory/smtpd_scache
EOF
    # Debian ships tlsproxy commented out; connection reuse over TLS needs it.
    sed -i 's/^#tlsproxy /tlsproxy /' "$P/etc/master.cf"
    grep -q '^tlsproxy ' "$P/etc/master.cf" ||
      echo 'tlsproxy  unix  -       -       n       -       0       tlsproxy' >>"$P/etc/master.cf"
  fi
  # The private instance listens on the benchmark port, and no service
  # chroots (its queue directory holds no copy of /etc).
  sed -i "s/^smtp      inet  n       -       y       -       -       smtpd/127.0.0.1:$1 inet n - n - - smtpd/" "$P/etc/master.cf"
  postconf -c "$P/etc" -F '*/*/chroot = n' >/dev/null
  chown -R postfix "$P/data"
  postfix -c "$P/etc" set-permissions >/dev/null 2>&1 || true
  postfix -c "$P/etc" start >/dev/null
  wait_port "$1"
  RELAY_PIDS=("$(tr -d ' ' <"$P/spool/pid/master.pid")")
}
postfix_stop() { postfix -c "$WORK/pfx/etc" stop >/dev/null 2>&1 || true; sleep 1; }

# ------------------------------------------------------------- Portcullis
portcullis_start() { # portcullis_start RELAY_PORT SINK_PORT tls|plain
  local D=$WORK/pc tls_in=off tls_out=none cert=""
  rm -rf "$D"; mkdir -p "$D"
  if [ "$3" = tls ]; then
    tls_in=preferred; tls_out=required; cert='certificate = "relay"'
    "$PORTCULLIS" --store "$D/data/certs" cert import relay "$WORK/pki/relay.crt" \
      --key "$WORK/pki/relay.key" >/dev/null
  fi
  cat >"$D/portcullis.toml" <<EOF
hostname = "relay.bench.test"
data-dir = "$D/data"
shutdown-grace-seconds = 5

[[listener]]
name = "bench"
address = "127.0.0.1:$1"
kind = "private"
$cert
max-concurrency = 10000
rat.accept = ["sink.bench.test"]

[[listener.hat.sender-group]]
name = "LOCAL"
match = ["127.0.0.0/8"]
policy = "RELAY"

[listener.hat.policy.RELAY]
action = "relay"
tls = "$tls_in"
max-connections-per-host = 10000

[[outbound.destination]]
domain = "default"
tls = "$tls_out"
dane = "none"
mta-sts = false

[[route]]
domain = "default"
hosts = ["127.0.0.1:$2"]

[mta-sts]
enabled = false

[log]
file = "$D/mail.log"
EOF
  if [ "$TLS_REPORT" = 1 ]; then
    cat >>"$D/portcullis.toml" <<EOF

[tls-report]
enabled = true
organization-name = "bench"
contact-info = "mailto:postmaster@relay.bench.test"
flush-interval-seconds = 1
EOF
  fi
  [ -n "${CLUSTER_DB:-}" ] && portcullis_join_cluster "$D"
  "$PORTCULLIS" run --config "$D/portcullis.toml" >"$D/stdout.log" 2>&1 &
  RELAY_PIDS=("$!")
  PIDS+=("$!")
  wait_port "$1" || { cat "$D/stdout.log" "$D/mail.log" >&2 2>/dev/null; return 1; }
}
# ---------------------------------------------- Portcullis as a cluster node
# A private PostgreSQL on loopback (Debian's, as the postgres user), started
# once; each scenario gets a database of its own.
pg_start() {
  [ -n "${PG_PORT:-}" ] && return 0
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  PG_PORT=$(port)
  mkdir -p "$WORK/pg" && chown postgres: "$WORK/pg"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust --no-sync >/dev/null
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
    -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >/dev/null
}
portcullis_cluster_start() {
  pg_start
  CLUSTER_DB=bench$RANDOM
  "$PG_BIN/psql" -qX -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE DATABASE $CLUSTER_DB" >/dev/null
  portcullis_start "$@"
  CLUSTER_DB=
}
portcullis_cluster_stop() { portcullis_stop; }
# The node's file is the whole configuration plus [cluster]; `cluster init`
# stores it (without [cluster]) as the shared configuration.
portcullis_join_cluster() { # portcullis_join_cluster DIR
  cat >>"$1/portcullis.toml" <<EOF

[cluster]
database = "postgres://postgres@127.0.0.1:$PG_PORT/$CLUSTER_DB"
node = "bench"
database-tls = "off"
EOF
  "$PORTCULLIS" cluster init --config "$1/portcullis.toml" "$1/portcullis.toml" >/dev/null
}

portcullis_stop() {
  kill -TERM "${RELAY_PIDS[0]}" 2>/dev/null || true
  timeout 30 tail --pid="${RELAY_PIDS[0]}" -f /dev/null || kill -KILL "${RELAY_PIDS[0]}" 2>/dev/null || true
}

# -------------------------------------------------------------- scenarios
ROWS=()
run_scenario() { # run_scenario RELAY SCENARIO
  local relay=$1 sc=$2 rp sp mode=plain rss_file=$WORK/rss.$relay.$sc
  rp=$(port); sp=$(port)
  [ "$sc" = b ] && mode=tls
  "${relay}_start" "$rp" "$sp" "$mode"
  sample_rss "$rss_file" "${RELAY_PIDS[@]}" &
  local sampler=$!
  PIDS+=("$sampler")
  local rate p50=- p99=- accepted delivered
  if [ "$sc" = a ]; then
    timeout "$DEADLINE" smtp-sink -u nobody -M "$N" 127.0.0.1:"$sp" 1000 &
    local sink=$!
    wait_port "$sp"
    local t0 t1
    t0=$(date +%s.%N)
    timeout "$DEADLINE" smtp-source -s "$C" -m "$N" -l "$SIZE" -f load@bench.test \
      -t user@sink.bench.test 127.0.0.1:"$rp"
    local t_accept
    t_accept=$(date +%s.%N)
    if wait "$sink"; then delivered=$N; else delivered="<$N (timed out)"; fi
    t1=$(date +%s.%N)
    rate=$(python3 -c "print(f'{$N/($t1-$t0):.0f}')")
    accepted="$N (in $(python3 -c "print(f'{$t_accept-$t0:.2f}')") s)"
  else
    local tlsarg=()
    [ "$sc" = b ] && tlsarg=(--tls "$WORK/pki")
    local line
    line=$("$BENCH" run --relay 127.0.0.1:"$rp" --sink 127.0.0.1:"$sp" "${tlsarg[@]}" \
      -n "$N" -c "$C" --size "$SIZE" --timeout "$DEADLINE" | grep '^RESULT') || {
      echo "scenario $sc with $relay failed" >&2; }
    echo "  $relay/$sc: $line"
    val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    rate=$(val relay_rate); p50=$(val p50_ms); p99=$(val p99_ms)
    accepted=$(val accepted); delivered="$(val delivered) (tls: $(val delivered_tls))"
  fi
  sleep 0.5
  local cpu cpu_k
  cpu=$(cpu_seconds "${RELAY_PIDS[@]}")
  cpu_k=$(python3 -c "print(f'{$cpu * 1000 / $N:.2f}')")
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  local rss procs pss
  read -r rss procs pss <"$rss_file" || { rss=0; procs=0; pss=0; }
  "${relay}_stop"
  ROWS+=("| $sc | $relay | ${rate:-?} | $cpu_k | $p50 | $p99 | $((rss / 1024)) MiB | $((pss / 1024)) MiB | $procs | $accepted | $delivered |")
  eval "RATE_${relay}_${sc//\'/p}=${rate:-0}; RSS_${relay}_${sc//\'/p}=$rss; PSS_${relay}_${sc//\'/p}=$pss; CPU_${relay}_${sc//\'/p}=$cpu_k"
}

for sc in a "a'" b; do
  for relay in $RELAYS; do
    echo "scenario $sc, relay $relay: $N messages, $C connections, $SIZE bytes"
    run_scenario "$relay" "$sc" || ROWS+=("| $sc | $relay | failed | | | | | | | | |")
  done
done

mkdir -p "$(dirname "$OUT")"
{
  echo "# Relay benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "Command: \`N=$N C=$C SIZE=$SIZE TLS_REPORT=$TLS_REPORT bench/run.sh\` on $(nproc) CPU(s), $(uname -r); Postfix $(postconf -d -h mail_version)."
  echo "Work directory on $(stat -f -c %T "$WORK") ($(df --output=source "$WORK" | tail -1))."
  echo "Postfix: TLS connection reuse through tlsproxy, TLS session caches (smtp and smtpd)."
  echo "Rate = messages delivered to the sink per second, from the first connection to the last delivery."
  echo "Latency = connection start to the relay's 250 after DATA (one message per connection)."
  echo
  echo "CPU s/1k = CPU seconds (user + system) the relay used per 1,000 messages."
  echo
  echo "| scenario | relay | msg/s | CPU s/1k | p50 ms | p99 ms | peak RSS (sum of VmHWM) | peak PSS | processes | accepted | delivered |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  for sc in a ap b; do
    pr=$(eval echo "\${RATE_portcullis_$sc:-0}"); cr=$(eval echo "\${RATE_portcullis_cluster_$sc:-0}")
    pc=$(eval echo "\${CPU_portcullis_$sc:-0}"); cc=$(eval echo "\${CPU_portcullis_cluster_$sc:-0}")
    python3 - "$sc" "$cr" "$pr" "$cc" "$pc" <<'EOF'
import sys
sc, cr, pr, cc, pc = sys.argv[1], *map(float, sys.argv[2:])
if cr and pr:
    print(f"- scenario {sc.replace('ap', chr(97)+chr(39))}: cluster node (PostgreSQL)/alone throughput {cr/pr:.2f}x, CPU per message {cc/pc:.2f}x")
EOF
  done
  for sc in a ap b; do
    pr=$(eval echo "\${RATE_portcullis_$sc:-0}"); fr=$(eval echo "\${RATE_postfix_$sc:-0}")
    pm=$(eval echo "\${RSS_portcullis_$sc:-0}"); fm=$(eval echo "\${RSS_postfix_$sc:-0}")
    pp=$(eval echo "\${PSS_portcullis_$sc:-0}"); fp=$(eval echo "\${PSS_postfix_$sc:-0}")
    pc=$(eval echo "\${CPU_portcullis_$sc:-0}"); fc=$(eval echo "\${CPU_postfix_$sc:-0}")
    python3 - "$sc" "$pr" "$fr" "$pm" "$fm" "$pp" "$fp" "$pc" "$fc" <<'EOF'
import sys
sc, pr, fr, pm, fm, pp, fp, pc, fc = sys.argv[1], *map(float, sys.argv[2:])
q = lambda a, b: f"{a/b:.2f}x" if a and b else "n/a"
print(f"- scenario {sc.replace('ap', chr(97)+chr(39))}: Portcullis/Postfix throughput {q(pr, fr)}, "
      f"CPU per message {q(pc, fc)}, peak RSS {q(pm, fm)}, peak PSS {q(pp, fp)}")
EOF
  done
} | tee "$OUT"
echo "written to $OUT"
