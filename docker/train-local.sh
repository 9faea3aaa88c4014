#!/usr/bin/env bash
# Trains inside the image against a local directory laid out like /opt/ml, as SageMaker would.
#
#   bash docker/train-local.sh IMAGE DIR [CHANNEL_DIR] [HYPERPARAMETERS_JSON]
#
# DIR becomes the /opt/ml tree (input/config, input/data/train, model, output). Without
# CHANNEL_DIR the image's own generator writes 20,000 fire rows as the train channel; with it,
# the files of CHANNEL_DIR are copied in. HYPERPARAMETERS_JSON defaults to '{}' (the fire
# ensemble), e.g. '{"model_kind": "iops"}'. The container runs as your user, so the files it writes
# are yours. Exit status and /opt/ml/output/failure are the job's.
set -euo pipefail
image=${1:?usage: train-local.sh IMAGE DIR [CHANNEL_DIR] [HYPERPARAMETERS_JSON]}
dir=${2:?usage: train-local.sh IMAGE DIR [CHANNEL_DIR] [HYPERPARAMETERS_JSON]}
channel=${3:-}
hyperparameters=${4:-'{}'}
mkdir -p "$dir/input/config" "$dir/input/data/train" "$dir/model" "$dir/output"
dir=$(cd "$dir" && pwd)
printf '%s\n' "$hyperparameters" > "$dir/input/config/hyperparameters.json"
user=(--user "$(id -u):$(id -g)")
if [ -n "$channel" ]; then
  cp -R "$channel"/. "$dir/input/data/train/"
elif [ -z "$(ls -A "$dir/input/data/train")" ]; then
  if grep -q '"iops"' <<< "$hyperparameters"; then
    gen=(datagen iops --rows 10000 --out /opt/ml/input/data/train/training-data.json)
  else
    gen=(datagen fire --rows 20000 --out /opt/ml/input/data/train/fire.json)
  fi
  docker run --rm "${user[@]}" -v "$dir:/opt/ml" "$image" train "${gen[@]}"
fi
docker run --rm "${user[@]}" -v "$dir:/opt/ml" "$image" train
echo "model: $dir/model   evaluation: $dir/output/data/evaluation.json" >&2
