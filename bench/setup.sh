# Sourced by the benchmark scripts from the repository root: machine set-up, XGBOOST_LIB_DIR,
# GNU time, and the Python reference stack (numpy, scikit-learn, xgboost-cpu 3.2.0, plus any
# extra packages given as arguments).
bash scripts/setup.sh
source scripts/env.sh
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
python3 -m pip install -q numpy scikit-learn "xgboost-cpu==3.2.0" "$@" 2>&1 \
  | grep -v "^WARNING: Running pip as" || true
