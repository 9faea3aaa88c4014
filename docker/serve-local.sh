#!/usr/bin/env bash
# Serves a trained model directory with the image, as a SageMaker endpoint would: the model
# mounted read-only at /opt/ml/model, a read-only root filesystem, port 8080 published.
#
#   bash docker/serve-local.sh IMAGE MODEL_DIR [PORT]      (Ctrl-C stops it)
#
# MODEL_DIR holds manifest.json and its payloads (or a model.tar.gz). Extra settings pass through
# the environment, e.g. SAGEMAKER_BATCH=true bash docker/serve-local.sh ...
set -euo pipefail
image=${1:?usage: serve-local.sh IMAGE MODEL_DIR [PORT]}
model=$(cd "${2:?usage: serve-local.sh IMAGE MODEL_DIR [PORT]}" && pwd)
port=${3:-8080}
envs=()
for v in SAGEMAKER_BATCH SAGEMAKER_MAX_PAYLOAD_IN_MB SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT SAGEMAKER_MODEL_SERVER_WORKERS; do
  [ -n "${!v:-}" ] && envs+=(-e "$v=${!v}")
done
exec docker run --rm --read-only --tmpfs /tmp -p "$port:8080" "${envs[@]}" \
  -v "$model:/opt/ml/model:ro" "$image" serve
