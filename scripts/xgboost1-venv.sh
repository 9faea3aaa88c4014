#!/usr/bin/env bash
# Provisions Python XGBoost 1.7.6, the last 1.x release (and pandas with pyarrow, which write the
# Parquet training files users write), in a virtual environment OUTSIDE the
# clone (${XDG_CACHE_HOME:-$HOME/.cache}/sagemaker-tabular/xgboost1-venv), and prints its
# Python. tests/xgboost_e2e.rs uses it to write what SageMaker's older built-in XGBoost images
# left behind (XGBoost 1.x binary models, pickled Boosters) and their reference predictions:
# the XGBoost 3 library this image ships reads neither. Safe to re-run; progress on stderr.
set -euo pipefail

SPEC="xgboost==1.7.6 pandas pyarrow<20"
venv="${XGBOOST1_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sagemaker-tabular/xgboost1-venv}"
py="$venv/bin/python"
marker="$venv/.spec"   # written last: a venv without it is incomplete and is rebuilt
log() { echo "xgboost1-venv: $*" >&2; }

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w 900 9 || { log "timed out waiting for $venv.lock"; exit 1; }
fi
if [ -x "$py" ] && [ "$(cat "$marker" 2>/dev/null)" = "$SPEC" ]; then
  log "reusing $venv ($SPEC)"
else
  log "creating $venv with $SPEC"
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$py" -m pip install --quiet --no-cache-dir --disable-pip-version-check --no-input \
    $SPEC "numpy<2" </dev/null >&2
  "$py" -c 'import xgboost, pandas, pyarrow; assert xgboost.__version__ == "1.7.6", xgboost.__version__' >&2
  printf '%s\n' "$SPEC" >"$marker"
fi
echo "$py"
