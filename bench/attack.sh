#!/usr/bin/env bash
# Attack and soak benchmark of `serve` (bench/attack.py): peak memory for ~99 MiB CSV, JSON and
# JSON Lines batch bodies and a body of blank lines; a normal client's success rate and latency
# with 2,000 stalled clients connected; then M minutes at twice the measured capacity with RSS
# over time (default 10; `bash bench/attack.sh 1` for a quick look).
#
#   bash bench/attack.sh [MINUTES]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
bash scripts/setup.sh
source scripts/env.sh
cargo build --release --locked --bins
bin=${CARGO_TARGET_DIR:-$repo/target}/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== model: the fire ensemble (200 + 200 trees) on 50,000 generated rows"
mkdir -p "$work/ml/input/data/train"
"$bin/train" datagen fire --rows 42000 --demo 8000 --seed 3 --out "$work/ml/input/data/train/fire.json" >&2
SAGEMAKER_BASE_DIR="$work/ml" "$bin/train" > /dev/null 2>&1
"$bin/train" datagen fire --rows 5000 --seed 4 --format csv-label-first --out "$work/labelled.csv" >&2
cut -d, -f2- "$work/labelled.csv" > "$work/rows.csv"
python3 bench/attack.py "$bin/serve" "$work/ml" "$work/rows.csv" --minutes "${1:-10}"
