#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, then
# checks formatting and lints and runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

# In CI the external test vectors in ../shared/vectors must be present: a run
# without them is a failure, not a skip.
if [ "${CI:-}" = "true" ]; then
  export PORTCULLIS_REQUIRE_VECTORS=1
fi

cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# Each leaf crate builds alone, without its optional features, the way an
# MTA that embeds only that crate would build it.
for crate in smtp-tls dane certstore policy; do
  cargo build -p "portcullis-$crate" --no-default-features --locked
done

# The API documentation builds without broken links or other warnings.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

# Every fuzz target compiles...
cargo build --manifest-path fuzz/Cargo.toml --all-features --bins --locked --target-dir target/fuzz-build
# ...and runs once over its committed seeds (fuzz/seeds): a target that panics
# on a recorded session or an OpenSSL-made file fails here. This uses the
# plain build above; fuzzing proper (cargo-fuzz, release) is scripts/fuzz.sh.
scripts/fuzz.sh --replay target/fuzz-build/debug

cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
