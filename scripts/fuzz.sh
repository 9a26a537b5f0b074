#!/usr/bin/env bash
# Runs the cargo-fuzz targets on the stable toolchain.
#   scripts/fuzz.sh                      every target, 300 s each
#   scripts/fuzz.sh 60 dane_tlsa_wire    one target, 60 s
#   scripts/fuzz.sh --seeds [S] [T...]   each target over its seeds, then S
#                                        seconds more (default 5); fails on a crash
#   scripts/fuzz.sh --replay DIR [T...]  the binaries in DIR (built by plain
#                                        `cargo build`, as scripts/test.sh does)
#                                        run once over the seeds; no cargo-fuzz
#   scripts/fuzz.sh --coverage [T...]    what the corpus and seeds reach: libFuzzer's
#                                        edges and features, and the line coverage of
#                                        the parser under test (llvm-cov; report in
#                                        fuzz/coverage/T.txt)
#   scripts/fuzz.sh --cmin [T...]        minimises fuzz/seeds/T with cargo fuzz cmin
# Fuzzing starts from fuzz/corpus/T (ignored by git; new inputs land there)
# plus the committed seeds in fuzz/seeds/T, with fuzz/dict/T.dict if present.
# FUZZ_SEEDS=0 leaves seeds and dictionary out (for before/after figures);
# FUZZ_CORPUS=DIR puts the working corpora under DIR instead of fuzz/corpus.
# Installs cargo-fuzz if missing. Uses libFuzzer without a sanitizer (catches
# panics, fast); set FUZZ_ASAN=1 for AddressSanitizer via RUSTC_BOOTSTRAP.
# Bash reads this file as it runs: while a run is in progress, replace the
# file (write a copy, then mv) rather than edit it in place.
set -euo pipefail
fuzz_dir="$(dirname "$0")/../fuzz"

mode=run
seconds=300
case "${1:-}" in
  --seeds) mode=seeds seconds=5; shift
    if [[ "${1:-}" =~ ^[0-9]+$ ]]; then seconds=$1; shift; fi ;;
  --replay) mode=replay; bindir=$(cd "$2" && pwd); shift 2 ;;
  --coverage) mode=coverage; shift ;;
  --cmin) mode=cmin; shift ;;
  [0-9]*) seconds=$1; shift ;;
esac
cd "$fuzz_dir"

corpus_root=${FUZZ_CORPUS:-corpus}
use_seeds=${FUZZ_SEEDS:-1}

# "name feature" pairs, read from the [[bin]] blocks of fuzz/Cargo.toml.
targets=$(awk -F'"' '/^name = /{n=$2} /^required-features/{print n, $2}' Cargo.toml | grep -v '^portcullis-fuzz ')
# Every target is built with the features of all of them: one release build
# then serves every target (a build per feature set would rebuild most of the
# dependency graph each time, because feature unification differs).
features=$(awk '{print $2}' <<<"$targets" | sort -u | paste -sd' ')

if [ "$mode" != replay ]; then
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
fi

sanitizer=(--sanitizer none)
if [ "${FUZZ_ASAN:-}" = 1 ]; then
  export RUSTC_BOOTSTRAP=1
  sanitizer=()
fi

# The corpus directories and libFuzzer options for one target: the working
# corpus first (libFuzzer writes new inputs to the first directory).
inputs() {
  local name=$1
  mkdir -p "$corpus_root/$name"
  dirs=("$corpus_root/$name")
  opts=()
  if [ "$use_seeds" = 1 ]; then
    [ -d "seeds/$name" ] && dirs+=("seeds/$name")
    [ -f "dict/$name.dict" ] && opts+=("-dict=dict/$name.dict")
  fi
  return 0
}

# The last statistics libFuzzer printed: runs, edges (cov), features (ft).
summary() {
  local log=$1
  # -a: the log holds the fuzzer's raw inputs (dictionary entries, crashes).
  grep -a -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$log" | tail -1 || true
  grep -a -E '^stat::number_of_executed_units' "$log" || true
}

# The source files of the parser each target is about: its line coverage is
# reported over these (paths from the repository root).
parser_files() {
  case $1 in
    smtp_server_command) echo crates/smtp-tls/src/{server,command,lines,address,data,envelope}.rs ;;
    smtp_server_bdat) echo crates/smtp-tls/src/{server_bdat,server,command,data}.rs ;;
    smtp_client_reply) echo crates/smtp-tls/src/{client,reply}.rs ;;
    cert_pkcs12 | cert_pkcs12_structured) echo crates/certstore/src/{pkcs12,key}.rs ;;
    cert_pem) echo crates/certstore/src/{pem,info,key,lib,chain}.rs ;;
    cert_der) echo crates/certstore/src/{info,pem,chain}.rs ;;
    dane_tlsa_presentation) echo crates/dane/src/{tlsa,hex}.rs ;;
    dane_tlsa_wire) echo crates/dane/src/{tlsa,set,matching,cert}.rs ;;
    dane_dns_answer) echo crates/dane/src/dns/answer.rs ;;
    policy_mta_sts_policy) echo crates/policy/src/mta_sts/policy.rs ;;
    policy_mta_sts_txt) echo crates/policy/src/mta_sts/txt.rs ;;
    policy_tlsrpt_txt) echo crates/policy/src/tlsrpt_txt.rs ;;
    policy_tlsrpt_report) echo crates/policy/src/tlsrpt_report.rs crates/policy/src/tlsrpt_report/{parse,datetime}.rs ;;
    policy_hat_pattern) echo crates/policy/src/{sender_pattern,hat,name}.rs ;;
    policy_rat_pattern) echo crates/policy/src/{rat,name}.rs ;;
    policy_tls_required_header) echo crates/policy/src/requiretls.rs ;;
    config_load) echo crates/mta/src/config/*.rs ;;
    mta_tlsrpt_rua) echo crates/mta/src/tlsrpt/deliver.rs crates/policy/src/tlsrpt_txt.rs ;;
    mta_tlsrpt_mail) echo crates/mta/src/tlsrpt_inbox/mail.rs crates/policy/src/tlsrpt_report.rs crates/policy/src/tlsrpt_report/{parse,datetime}.rs ;;
    spool_segment) echo crates/mta/src/spool/{scan,record,dsn_record,fuzzing}.rs ;;
  esac
}

# Line coverage of the parser under test over the corpus and seeds, with
# `cargo fuzz coverage` and the llvm-cov of rustc's own LLVM major version
# (Debian packages it as llvm-N; installed here if missing).
line_coverage() {
  local name=$1 llvm_major llvm_bin files profile bin
  llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
  llvm_bin=/usr/lib/llvm-$llvm_major/bin
  if [ ! -x "$llvm_bin/llvm-cov" ]; then
    echo "installing llvm-$llvm_major (llvm-cov for rustc's LLVM $llvm_major) ..."
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    # A new machine's package lists are empty until the first update.
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "llvm-$llvm_major" >/dev/null
  fi
  files=$(cd .. && parser_files "$name")
  if [ -z "$files" ]; then
    echo "!! no parser files listed for $name in scripts/fuzz.sh (parser_files)"
    return 1
  fi
  rm -rf "coverage/$name"
  if ! cargo fuzz coverage "${sanitizer[@]}" --features "$features" --llvm-path "$llvm_bin" \
      "$name" "${dirs[@]}" >"/tmp/fuzz-coverage-$name.log" 2>&1; then
    echo "!! cargo fuzz coverage failed for $name; see /tmp/fuzz-coverage-$name.log"
    return 1
  fi
  profile=coverage/$name/coverage.profdata
  bin=$(find target -path "*/coverage/*/release/$name" -type f | head -1)
  (cd .. && "$llvm_bin/llvm-cov" report "fuzz/$bin" -instr-profile="fuzz/$profile" $files) \
    >"coverage/$name.txt"
  echo "line coverage of $(wc -w <<<"$files") parser files (regions, functions, lines; fuzz/coverage/$name.txt):"
  grep '^TOTAL' "coverage/$name.txt"
}

failed=0
while read -r name feature; do
  [ -n "$name" ] || continue
  if (($#)) && [[ ! " $* " == *" $name "* ]]; then continue; fi
  log="/tmp/fuzz-$name.log"
  case $mode in
    run | seeds)
      inputs "$name"
      echo "== $name (feature $feature): ${seconds}s"
      if ! cargo fuzz run "${sanitizer[@]}" --features "$features" "$name" "${dirs[@]}" -- \
          -max_total_time="$seconds" -print_final_stats=1 "${opts[@]}" 2>"$log"; then
        echo "!! $name found a crash; see $log and fuzz/artifacts/$name"
        failed=1
      fi
      summary "$log"
      ;;
    replay)
      [ -d "seeds/$name" ] || continue
      echo "== $name: $(find "seeds/$name" -type f | wc -l) seeds"
      # Files given one by one are each run once, without fuzzing.
      if ! find "seeds/$name" -type f -print0 | xargs -0 "$bindir/$name" >"$log" 2>&1; then
        echo "!! $name failed on a seed; see $log"
        tail -20 "$log"
        failed=1
      fi
      ;;
    coverage)
      inputs "$name"
      log="/tmp/fuzz-$name.coverage.log" # not the log of a run in progress
      echo "== $name: coverage of ${dirs[*]}"
      # -runs=0: load every input once, fuzz nothing.
      cargo fuzz run "${sanitizer[@]}" --features "$features" "$name" "${dirs[@]}" -- \
        -runs=0 -print_final_stats=1 >"$log" 2>&1 || failed=1
      summary "$log"
      line_coverage "$name" || failed=1
      ;;
    cmin)
      [ -d "seeds/$name" ] || continue
      echo "== $name: minimising seeds/$name"
      # cmin replaces the directory with the inputs that keep its coverage.
      if cargo fuzz cmin "${sanitizer[@]}" --features "$features" "$name" "seeds/$name" >"$log" 2>&1; then
        echo "   $(find "seeds/$name" -type f | wc -l) seeds kept"
      else
        echo "!! cmin failed for $name; see $log"
        failed=1
      fi
      ;;
  esac
done <<<"$targets"
exit $failed
