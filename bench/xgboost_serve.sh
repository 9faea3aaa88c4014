#!/usr/bin/env bash
# Serving a 1,000-tree model trained by Python XGBoost (3.2, binary:logistic, depth 6, on the
# California housing features with a binary target), as SageMaker's built-in XGBoost leaves it
# (`xgboost-model`, UBJSON), by `serve` and by a faithful stand-in for the built-in's stack
# (bench/ref_xgboost_server.py: Flask + gunicorn, 2 workers, Python xgboost), same run, same
# machine, same tool (wrk, single-record CSV body, keep-alive). Also: predictions equal, and
# cold start (process start to the first 200 on /ping, median of 5).
#
#   bash bench/xgboost_serve.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
source bench/setup.sh flask gunicorn
cargo build --release --locked --bins
bin=${CARGO_TARGET_DIR:-$repo/target}/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
duration=${BENCH_SECONDS:-15}

mkdir -p "$work/ml/model"
python3 - "$work" <<'PY'
import gzip, sys, numpy as np, xgboost as xgb
work = sys.argv[1]
rows = np.loadtxt(gzip.open("datasets/california_housing_targetfirst.csv.gz", "rt"), delimiter=",")
y, x = (rows[:, 0] > np.median(rows[:, 0])).astype(np.float32), rows[:, 1:].astype(np.float32)
b = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.05, "nthread": 2},
              xgb.DMatrix(x, label=y), 1000)
b.save_model(f"{work}/ml/model/xgboost-model.ubj")
import os; os.rename(f"{work}/ml/model/xgboost-model.ubj", f"{work}/ml/model/xgboost-model")
np.savetxt(f"{work}/rows.csv", x[:200], delimiter=",", fmt="%.9g")
np.savetxt(f"{work}/want.txt", b.predict(xgb.DMatrix(x[:200])), fmt="%.9g")
print(f"model: {b.num_boosted_rounds()} trees, depth 6, {x.shape[1]} features", file=sys.stderr)
PY
head -1 "$work/rows.csv" > "$work/one.csv"
source bench/wrk.sh
post_body "$work/one.csv" text/csv

SAGEMAKER_BASE_DIR="$work/ml" SAGEMAKER_BIND_TO_PORT=18090 "$bin/serve" 2> "$work/serve.log" &
pids+=($!)
wait_ready 18090
curl -s -H 'Content-Type: text/csv' --data-binary @"$work/rows.csv" localhost:18090/invocations \
  | tr ',' '\n' > "$work/ours.txt"
python3 - "$work" <<'PY'
import sys, numpy as np
w = sys.argv[1]
ours, want = np.loadtxt(f"{w}/ours.txt"), np.loadtxt(f"{w}/want.txt")
print(f"predictions, 200 rows: max |ours - Python XGBoost| = {np.abs(ours - want).max():.2e}")
PY
run_wrk "serve (ours)" 18090
(cd bench && MODEL_FILE="$work/ml/model/xgboost-model" gunicorn -w 2 -b 127.0.0.1:18091 \
  ref_xgboost_server:app 2> "$work/ref.log") &
pids+=($!)
wait_ready 18091
run_wrk "Flask+gunicorn+xgboost" 18091
awk -v a="$(cat "$work/serve (ours).rps")" -v b="$(cat "$work/Flask+gunicorn+xgboost.rps")" \
  'BEGIN {printf "requests/s ratio at 64 connections: %.1fx (goal >= 100x)\n", a / b}'
kill "${pids[@]}" 2>/dev/null || true
echo "cold start, process start to the first 200 on /ping (goal <= 100 ms):"
python3 bench/cold_start.py "$bin/serve" "$work/ml" 18092
