#!/usr/bin/env bash
# Benchmark and parity check of the IOPS models (model_kind=iops) against Python xgboost.
#
#   bash bench/iops.sh
#
# Data: `train datagen iops` (the original generator: 10,000 insights, seed 1). Prints
# - our wall time and peak memory for training both models on the 10,000 insights (70/15/15);
# - test accuracy and RMSE of ours and of Python xgboost (bench/iops_parity.py) on the same rows,
#   the same split and the same settings, and their relative difference.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
source bench/setup.sh
cargo build --release -p train --locked
train=${CARGO_TARGET_DIR:-$repo/target}/release/train

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$train" datagen iops --rows 10000 --seed 1 --out "$work/insights.json" 2>/dev/null
for d in own same; do
  mkdir -p "$work/$d/input/config"
  echo '{"model_kind": "iops"}' > "$work/$d/input/config/hyperparameters.json"
done
mkdir -p "$work/own/input/data/train"
cp "$work/insights.json" "$work/own/input/data/train/"

echo "== training both models on 10,000 insights (process start to exit, 5 runs)"
for i in 1 2 3 4 5; do
  /usr/bin/time -f "%e %M" -o "$work/time" env SAGEMAKER_BASE_DIR="$work/own" "$train" > "$work/own.out" 2> "$work/own.err" \
    || { tail -5 "$work/own.err"; exit 1; }
  read -r secs kib < "$work/time"
  printf 'rust train run %d: wall %.2f s, peak %d MiB\n' "$i" "$secs" $((kib / 1024))
done
grep '^metric: test:' "$work/own.out"

echo "== parity with Python xgboost (same rows, split and settings)"
python3 bench/iops_parity.py "$work/insights.json" "$work/same/input/data" > "$work/python.json"
SAGEMAKER_BASE_DIR="$work/same" "$train" > "$work/same.out" 2> "$work/same.err" || { tail -5 "$work/same.err"; exit 1; }
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
py = json.load(open(f"{work}/python.json"))
ours = json.load(open(f"{work}/same/output/data/evaluation.json"))
rows = [
    ("classifier test accuracy", ours["classifier"]["test"]["accuracy"], py["accuracy"]),
    ("regressor test RMSE", ours["regressor"]["test"]["rmse"], py["rmse"]),
    ("classifier best iteration", ours["classifier"]["best_iteration"], py["classifier_best_iteration"]),
    ("regressor best iteration", ours["regressor"]["best_iteration"], py["regressor_best_iteration"]),
]
print(f"{'':28} {'rust':>10} {'python':>10} {'diff %':>8}")
for name, a, b in rows:
    print(f"{name:28} {a:10.4f} {b:10.4f} {100 * (a - b) / b if b else 0:8.3f}")
print(f"python xgboost fit time (both models, in-process): {py['fit_seconds']:.2f} s")
PY
