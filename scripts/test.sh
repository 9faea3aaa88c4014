#!/usr/bin/env bash
# All tests: unit tests of every crate and the end-to-end tests (real binaries, real XGBoost).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo build --workspace --bins --locked
cargo test --workspace --locked
