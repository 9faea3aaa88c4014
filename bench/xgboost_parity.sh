#!/usr/bin/env bash
# Parity table: served XGBoost models (JSON and UBJSON from this machine's Python XGBoost 3.2;
# XGBoost 1.7.6 binary files and pickles) against XGBoost's own predict, per objective.
#
#   bash bench/xgboost_parity.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/setup.sh
cargo build --release --locked --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
python3 bench/xgboost_parity.py "$bin/serve" "$(bash scripts/xgboost1-venv.sh)"
