#!/usr/bin/env bash
# The whole test suite, Rust then Python (the README's test command; .ci/run calls it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
bash scripts/setup-python.sh
# The CLI the Python tests compare with is the one `cargo test` just built.
WOWFLOW_BIN="$PWD/target/debug/wowflow" .venv/bin/python -m pytest -q python/tests
