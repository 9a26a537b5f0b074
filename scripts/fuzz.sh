#!/usr/bin/env bash
# Runs the cargo-fuzz targets on the stable toolchain.
#   scripts/fuzz.sh                 every target, 300 s each
#   scripts/fuzz.sh 60 dane_tlsa_wire   one target, 60 s
# Installs cargo-fuzz if missing. Uses libFuzzer without a sanitizer (catches
# panics, fast); set FUZZ_ASAN=1 for AddressSanitizer via RUSTC_BOOTSTRAP.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-300}
shift || true

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# "name feature" pairs, read from the [[bin]] blocks of fuzz/Cargo.toml.
targets=$(awk -F'"' '/^name = /{n=$2} /^required-features/{print n, $2}' Cargo.toml | grep -v '^portcullis-fuzz ')

sanitizer=(--sanitizer none)
if [ "${FUZZ_ASAN:-}" = 1 ]; then
  export RUSTC_BOOTSTRAP=1
  sanitizer=()
fi

failed=0
while read -r name feature; do
  [ -n "$name" ] || continue
  if (($#)) && [[ ! " $* " == *" $name "* ]]; then continue; fi
  echo "== $name (feature $feature): ${seconds}s"
  mkdir -p "corpus/$name"
  if ! cargo fuzz run "${sanitizer[@]}" --features "$feature" "$name" "corpus/$name" -- \
      -max_total_time="$seconds" -print_final_stats=1 2>"/tmp/fuzz-$name.log"; then
    echo "!! $name found a crash; see /tmp/fuzz-$name.log and fuzz/artifacts/$name"
    failed=1
  fi
  grep -E '^(#[0-9]+ *DONE|Done [0-9]+ runs|stat::number_of_executed_units)' "/tmp/fuzz-$name.log" || true
done <<<"$targets"
exit $failed
