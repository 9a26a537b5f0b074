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
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
