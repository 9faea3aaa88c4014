#!/usr/bin/env bash
# Multi-host training on one machine: the fire ensemble on the 251K mix and on 753K generator
# rows, 1, 2 and 3 hosts on loopback (hosts 127.0.0.1..3); each channel (train, validation, test:
# 70/15/15) is three files and each host holds its own of them (ShardedByS3Key), so every run
# is tested on the same rows.
#
#   bash bench/multihost.sh           # the 251K mix and 753K rows, 1, 2 and 3 hosts
#   bash bench/multihost.sh --2m      # only 2M rows, 1 and 3 hosts (about 8 minutes)
#
# Prints per run the wall time of the slowest host, each host's peak memory (GNU time), the test
# AUC of the ensemble, and the bytes that crossed loopback (the collective's traffic, read from
# /proc/net/dev; nothing else of ours uses loopback meanwhile). A boosting-only run of 200 rounds
# gives the traffic per boosting round. The hosts share this machine's 2 cores, so wall time says
# little about speed-up on real instances; memory per host and traffic are what carry over.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
mode=${1:-}
set --
source bench/setup.sh
cargo build --release -p train --locked
train=${CARGO_TARGET_DIR:-$repo/target}/release/train

work=$(mktemp -d)
trap 'pkill -f "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
# make NAME GENERATOR_ROWS DEMO_ROWS SEED: NAME-{train,validation,test}{0,1,2}.csv, a 70/15/15
# split of the generated rows, each in three files of a third of its rows (header repeated).
make() {
  local name=$1
  "$train" datagen fire --rows "$2" --demo "$3" --seed "$4" --format csv --out "$work/$name.csv" >&2
  head -1 "$work/$name.csv" > "$work/header"
  tail -n +2 "$work/$name.csv" > "$work/body"
  local n; n=$(wc -l < "$work/body")
  awk -v a=$((n * 70 / 100)) -v b=$((n * 85 / 100)) -v w="$work" \
    '{ print > (w "/" (NR <= a ? "train" : NR <= b ? "validation" : "test")) }' "$work/body"
  for split in train validation test; do
    split -n l/3 -d "$work/$split" "$work/part"
    for k in 0 1 2; do cat "$work/header" "$work/part0$k" > "$work/$name-$split$k.csv"; done
  done
  rm -f "$work/body" "$work/train" "$work/validation" "$work/test" "$work"/part0*
}

# Bytes received on loopback (what was sent there, once).
lo_bytes() { awk '/^ *lo:/ {sub(/^ *lo:/, ""); printf "%.0f\n", $1}' /proc/net/dev; }

# run NAME DATA HOSTS HYPERPARAMETERS: every host gets its shards of DATA's three channels
# (host i of n: shards i, i+n, ...).
run() {
  local name=$1 data=$2 n=$3 hp=$4 port=$((19400 + RANDOM % 500 * 2))
  local hosts="" i
  for i in $(seq 1 "$n"); do hosts="$hosts\"127.0.0.$i\","; done
  hosts="[${hosts%,}]"
  for i in $(seq 1 "$n"); do
    local r="$work/$name/h$i"
    mkdir -p "$r/input/config" "$r/input/data/train"
    echo "$hp" > "$r/input/config/hyperparameters.json"
    echo '{"train": {"S3DistributionType": "ShardedByS3Key"}, "validation": {"S3DistributionType": "ShardedByS3Key"}, "test": {"S3DistributionType": "ShardedByS3Key"}}' > "$r/input/config/inputdataconfig.json"
    [ "$n" -gt 1 ] && echo "{\"current_host\": \"127.0.0.$i\", \"hosts\": $hosts}" > "$r/input/config/resourceconfig.json"
    for split in train validation test; do
      mkdir -p "$r/input/data/$split"
      for k in 0 1 2; do
        if [ $((k % n)) -eq $((i - 1)) ]; then ln -s "$work/$data-$split$k.csv" "$r/input/data/$split/"; fi
      done
    done
  done
  local before after start end pids=""
  before=$(lo_bytes); start=$(date +%s.%N)
  for i in $(seq 1 "$n"); do
    local r="$work/$name/h$i"
    SAGEMAKER_BASE_DIR=$r SAGEMAKER_TABULAR_TRACKER_PORT=$port \
      /usr/bin/time -f "%e %M" -o "$r/time" "$train" > "$r/out" 2> "$r/err" &
    pids="$pids $!"
  done
  for p in $pids; do wait "$p" || { echo "$name: a host failed"; tail -3 "$work/$name"/h*/err; exit 1; }; done
  end=$(date +%s.%N); after=$(lo_bytes)
  local peaks="" auc
  for i in $(seq 1 "$n"); do peaks="$peaks $(( $(cut -d' ' -f2 "$work/$name/h$i/time") / 1024 ))"; done
  auc=$(grep -o 'metric: test:auc=[0-9.]*' "$work/$name/h1/out" | cut -d= -f2)
  printf '%-22s hosts %d   wall %6.1f s   peak MiB per host:%s   test AUC %s   loopback %.1f MB\n' \
    "$name" "$n" "$(echo "$end - $start" | bc)" "$peaks" "${auc:-?}" "$(echo "($after - $before) / 1000000" | bc -l)"
  echo "$peaks" | tr ' ' '\n' | sort -n | tail -n 1 > "$work/$name.peak"
}

# The largest peak per host with 3 hosts over the peak of one host on the same rows.
ratio() {
  printf '%-22s peak per host, 3 hosts / 1 host: %.2f (goal <= 0.45)\n' "$1" \
    "$(echo "$(cat "$work/$1-3.peak") / $(cat "$work/$1-1.peak")" | bc -l)"
}

if [ "$mode" = --2m ]; then
  make huge 2000000 0 13
  echo "== fire ensemble on 2M rows (200 + 200 trees, nthread 1 per host), 70/15/15 channels in 3 files each"
  for n in 1 3; do run "huge-$n" huge "$n" '{"nthread": "1"}'; done
  ratio huge
  exit 0
fi

make mix 200000 51000 7
make big 753000 0 11
for data in mix big; do
  echo "== fire ensemble on $data (200 + 200 trees, nthread 1 per host), 70/15/15 channels in 3 files each"
  for n in 1 2 3; do
    run "$data-$n" "$data" "$n" '{"nthread": "1"}'
  done
  ratio "$data"
done
echo "== boosting only, 200 rounds of depth 6 on mix: traffic per round"
for n in 2 3; do
  run "boosting-$n" mix "$n" '{"nthread": "1", "models": "gradient_boosting"}'
done
echo "(traffic per boosting round = loopback bytes / 200; the README estimates 10 and 100 hosts from it)"
