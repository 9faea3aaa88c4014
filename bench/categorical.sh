#!/usr/bin/env bash
# A real table with a text column, read raw: Géron's housing.csv (header, 207 empty
# total_bedrooms, the text column ocean_proximity) with label_column=median_house_value.
# The same 80/20 split (bench/categorical_parity.py) goes to `train` (every candidate, XGBoost's
# default settings for the xgboost one) and to the Python references in the same run: xgboost
# and LightGBM with the column as a pandas category, and xgboost with the column dropped.
# Prints each one's validation RMSE and fit time.
#
#   bash bench/categorical.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/setup.sh pandas lightgbm
cargo build --release --locked --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gunzip -c datasets/housing.csv.gz > "$work/housing.csv"
mkdir -p "$work/job/input/config"
python3 bench/categorical_parity.py "$work/housing.csv" "$work/job/input/data" > "$work/python.json"
echo '{"model_kind": "tabular", "label_column": "median_house_value"}' \
  > "$work/job/input/config/hyperparameters.json"
/usr/bin/time -f "%e %M" -o "$work/time" env SAGEMAKER_BASE_DIR="$work/job" "$bin/train" \
  > "$work/train.out" 2> "$work/train.err" || { tail -5 "$work/train.err"; exit 1; }
read -r secs kib < "$work/time"
python3 - "$work" "$secs" "$kib" <<'PY'
import json, sys
work, secs, kib = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
py = json.load(open(f"{work}/python.json"))
c = json.load(open(f"{work}/job/output/data/model_comparison.json"))
m = json.load(open(f"{work}/job/model/manifest.json"))
print(f"rows: train {py['train']}, validation {py['validation']}; "
      f"categories read: {m['categories']}")
print(f"train (every candidate, raw file): wall {secs:.2f} s, peak {kib // 1024} MiB")
print(f"{'model':45} {'validation RMSE':>16} {'fit s':>7}")
for name, r in sorted(c["candidates"].items(), key=lambda kv: kv[1]["validation"]["rmse"]):
    print(f"{'ours: ' + name:45} {r['validation']['rmse']:16.1f} {r['fit_seconds']:7.2f}")
for name in ["xgboost_categorical", "lightgbm_categorical", "xgboost_text_column_dropped"]:
    print(f"{'python: ' + name:45} {py[name]['rmse']:16.1f} {py[name]['fit_seconds']:7.2f}")
ours = c["candidates"]["xgboost"]["validation"]["rmse"]
theirs = py["xgboost_categorical"]["rmse"]
print(f"ours xgboost vs Python xgboost (enable_categorical): relative RMSE difference "
      f"{abs(ours - theirs) / theirs:.2e}")
PY
