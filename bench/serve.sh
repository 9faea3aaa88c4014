#!/usr/bin/env bash
# Benchmark of `serve` (fire ensemble, 200 + 200 trees, trained on the 251K mix) against the
# Python reference stack (Flask + gunicorn, 2 workers, ../shared/bench/ref_server.py), same run,
# same machine, same tool (wrk, single-record JSON body, keep-alive).
#
#   bash bench/serve.sh [--with-sklearn]
#
# Prints: requests/s at 64 connections and p50/p99 latency at 1 connection for each server;
# cold start (process start to first 200 on /ping, median of 5); batch throughput of a
# 1,000,000-row CSV sent as MULTI_RECORD payloads of up to 6 MB (bench/batch_client.py, 3 runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
shared=${SHARED_DIR:-$repo/../shared}
source bench/setup.sh flask gunicorn joblib
cargo build --release --locked --bins
bin=${CARGO_TARGET_DIR:-$repo/target}/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
duration=${BENCH_SECONDS:-15}

echo "== models (251K mix: gen_fire.py 200000 --demo 51000 --seed 7)"
python3 "$shared/bench/gen_fire.py" 200000 "$work/mix.json" --demo 51000 --seed 7 >&2
mkdir -p "$work/ml/input/data/train" && ln -s "$work/mix.json" "$work/ml/input/data/train/"
SAGEMAKER_BASE_DIR="$work/ml" "$bin/train" > /dev/null 2>&1
stacks=(xgb)
[ "${1:-}" = "--with-sklearn" ] && stacks+=(sklearn)
for stack in "${stacks[@]}"; do
  python3 "$shared/bench/ref_train_fire.py" "$work/mix.json" --stack "$stack" --save "$work/ref_$stack" > /dev/null
done

source bench/wrk.sh
post_body "$repo/sample-payloads/fire-single.json" application/json

echo "== wrk, single-record JSON, ${duration}s per run"
SAGEMAKER_BASE_DIR="$work/ml" SAGEMAKER_BIND_TO_PORT=18080 "$bin/serve" 2> "$work/serve.log" &
pids+=($!)
wait_ready 18080
run_wrk "rust serve" 18080
for stack in "${stacks[@]}"; do
  (cd "$shared/bench" && MODEL_DIR="$work/ref_$stack" exec gunicorn -w 2 -b 127.0.0.1:18081 ref_server:app) 2> "$work/gunicorn.log" &
  pids+=($!)
  wait_ready 18081
  run_wrk "python ($stack)" 18081
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
  unset 'pids[-1]'
done
python3 - "$work" "${stacks[@]}" <<'PY'
import sys
w, stacks = sys.argv[1], sys.argv[2:]
ours = float(open(f"{w}/rust serve.rps").read())
best = max(float(open(f"{w}/python ({s}).rps").read()) for s in stacks)
print(f"throughput ratio at 64 connections: {ours / best:.0f}x the better Python reference (bar: >= 200x)")
PY

echo "== cold start: process start to first 200 on /ping (200 + 200-tree ensemble)"
python3 bench/cold_start.py "$bin/serve" "$work/ml" 18082

echo "== batch: 1,000,000 rows x 18 features, MULTI_RECORD payloads <= 6 MB, SAGEMAKER_BATCH=true"
"$bin/train" datagen fire --rows 1000000 --seed 3 --format csv-label-first --out "$work/batch-labelled.csv" 2>/dev/null
cut -d, -f2- "$work/batch-labelled.csv" > "$work/batch.csv"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
SAGEMAKER_BASE_DIR="$work/ml" SAGEMAKER_BIND_TO_PORT=18083 SAGEMAKER_BATCH=true "$bin/serve" 2>/dev/null &
pids+=($!)
wait_ready 18083
for _ in 1 2 3; do python3 bench/batch_client.py "$work/batch.csv" 18083 6; done
