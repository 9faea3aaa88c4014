#!/usr/bin/env bash
# Benchmarks of generic tabular training and batch transform (model_kind=tabular):
# - California housing, the original's XGBoost settings and 80/20 split: our RMSE next to Python
#   xgboost's on the same rows (bench/tabular_parity.py), and the candidates' comparison;
# - agaricus (libsvm), 2 rounds, depth 2, eta 1: test error next to XGBoost's demo figure 0.02173;
# - batch: 1,000,000 rows x 8 features (housing rows resampled with noise) through `serve` in
#   MULTI_RECORD mode, payloads of MAX_MB (default 6) MiB, 2 at a time (bench/batch_client.py):
#   rows/s and the server's peak memory next to the largest payload.
#
#   bash bench/tabular.sh [MAX_MB]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
max_mb=${1:-6}
source bench/setup.sh
cargo build --release --locked --bins
bin=${CARGO_TARGET_DIR:-$repo/target}/release
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
server=

echo "== California housing: 80/20 split, reg:squarederror, 100 rounds, depth 5, eta 0.2, subsample 0.8, colsample 0.8"
housing="$work/housing.csv"
gunzip -c datasets/california_housing_targetfirst.csv.gz > "$housing"
mkdir -p "$work/housing/input/config"
python3 bench/tabular_parity.py "$housing" "$work/housing/input/data" > "$work/python.json"
echo '{"model_kind": "tabular", "num_round": "100", "max_depth": "5", "eta": "0.2", "subsample": "0.8", "colsample_bytree": "0.8"}' \
  > "$work/housing/input/config/hyperparameters.json"
/usr/bin/time -f "%e %M" -o "$work/time" env SAGEMAKER_BASE_DIR="$work/housing" "$bin/train" > "$work/housing.out" 2> "$work/housing.err" \
  || { tail -5 "$work/housing.err"; exit 1; }
read -r secs kib < "$work/time"
python3 - "$work" "$secs" "$kib" <<'PY'
import json, sys
work, secs, kib = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
py = json.load(open(f"{work}/python.json"))
c = json.load(open(f"{work}/housing/output/data/model_comparison.json"))
ours = c["candidates"]["xgboost"]["validation"]["rmse"]
print(f"train (all four candidates): wall {secs:.2f} s, peak {kib // 1024} MiB; rows {c['rows']}")
for name, r in sorted(c["candidates"].items(), key=lambda kv: kv[1]["validation"]["rmse"]):
    v = r["validation"]
    print(f"  {name:14} rmse {v['rmse']:.4f}  mae {v['mae']:.4f}  r2 {v['r2']:.4f}  fit {r['fit_seconds']:.2f} s")
print(f"criterion {c['criterion']['metric']} ({c['criterion']['goal']}) -> best {c['best_model']}, served {c['served_model']}")
print(f"xgboost test RMSE: rust {ours:.5f}, python {py['rmse']:.5f}, difference {100 * (ours - py['rmse']) / py['rmse']:+.3f} % (bar: within 1 %)")
PY

echo "== agaricus (libsvm): binary:logistic, 2 rounds, depth 2, eta 1"
mkdir -p "$work/agaricus/input/config" "$work/agaricus/input/data/train" "$work/agaricus/input/data/validation"
cp datasets/agaricus.txt.train.gz "$work/agaricus/input/data/train/"
cp datasets/agaricus.txt.test.gz "$work/agaricus/input/data/validation/"
echo '{"model_kind": "tabular", "objective": "binary:logistic", "num_round": "2", "max_depth": "2", "eta": "1"}' \
  > "$work/agaricus/input/config/hyperparameters.json"
SAGEMAKER_BASE_DIR="$work/agaricus" "$bin/train" 2>/dev/null | grep -E '^\[1\]|:error='

echo "== batch: 1,000,000 rows x 8 features, MULTI_RECORD payloads <= $max_mb MiB, SAGEMAKER_BATCH=true"
python3 - "$housing" "$work/batch.csv" <<'PY'
import sys, numpy as np
data = np.loadtxt(sys.argv[1], delimiter=",")[:, 1:]
rng = np.random.default_rng(5)
rows = data[rng.integers(0, len(data), 1_000_000)] * rng.normal(1.0, 0.01, (1_000_000, 8))
np.savetxt(sys.argv[2], rows, delimiter=",", fmt="%.6g")
PY
# batch_run CONCURRENCY: a fresh server, the file twice, then its peak memory.
batch_run() {
  SAGEMAKER_BASE_DIR="$work/housing" SAGEMAKER_BATCH=true SAGEMAKER_BIND_TO_PORT=18093 "$bin/serve" 2> "$work/serve.log" &
  server=$!
  for _ in $(seq 100); do curl -sf localhost:18093/ping > /dev/null && break; sleep 0.1; done
  local base peak
  base=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
  python3 bench/batch_client.py "$work/batch.csv" 18093 "$max_mb" "$1"
  python3 bench/batch_client.py "$work/batch.csv" 18093 "$max_mb" "$1" | tee "$work/batch.out"
  peak=$(awk '/VmHWM/ {print $2}' /proc/$server/status)
  local largest
  largest=$(sed -E 's/.*largest ([0-9.]+) MiB.*/\1/' "$work/batch.out")
  kill $server; wait $server 2>/dev/null || true
  awk -v b="$base" -v p="$peak" -v m="$largest" -v c="$1" 'BEGIN {
    printf "server memory, %d payload(s) in flight: %.1f MiB after loading, peak %.1f MiB = %.2fx the largest payload (%.2f MiB); above the loaded server, %.2fx per payload in flight (bar: < 4x)\n", c, b/1024, p/1024, p/1024/m, m, (p-b)/1024/m/c }'
}
batch_run 2
batch_run 1
