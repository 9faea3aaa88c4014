#!/usr/bin/env bash
# Sends every sample payload of one model kind to a running endpoint and prints each answer.
#
#   bash docker/predict.sh [fire|iops] [HOST:PORT]        (defaults: fire, localhost:8080)
#
# Exits non-zero if /ping or any request does not answer 200.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
kind=${1:-fire}
addr=${2:-localhost:8080}
curl -sf "http://$addr/ping" > /dev/null || { echo "GET /ping did not answer 200 at $addr" >&2; exit 1; }
echo "GET /ping -> 200"
for file in sample-payloads/"$kind"-*; do
  case $file in
    *.csv) type=text/csv ;;
    *.jsonl) type=application/jsonlines ;;
    *) type=application/json ;;
  esac
  echo "== POST /invocations $file ($type)"
  curl -sf -H "Content-Type: $type" --data-binary @"$file" "http://$addr/invocations" \
    || { echo "request failed: $file" >&2; exit 1; }
  echo
done
