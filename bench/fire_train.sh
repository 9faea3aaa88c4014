#!/usr/bin/env bash
# Benchmark of `train` (fire ensemble) against the Python references, measured in the same run.
#
#   bash bench/fire_train.sh [--skip-sklearn]
#
# Data: ../shared/bench/gen_fire.py 200000 --demo 51000 --seed 7 (the original's 251K mix) and
# 251000 clean generator rows. Prints wall time and peak memory (GNU time) of each run, and the
# test metrics: ours on the reference's exact split (bench/same_split.py) and on the clean data.
# The scikit-learn reference takes about 11 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
shared=${SHARED_DIR:-$repo/../shared}
skip_sklearn=${1:-}
set -- lightgbm # the packages bench/setup.sh adds to the Python stack
source bench/setup.sh
cargo build --release -p train --locked
train=${CARGO_TARGET_DIR:-$repo/target}/release/train

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$shared/bench/gen_fire.py" 200000 "$work/mix.json" --demo 51000 --seed 7 >&2
python3 "$shared/bench/gen_fire.py" 251000 "$work/clean.json" --seed 11 >&2

# measure NAME CMD... : runs CMD under GNU time, keeps stdout in $work/NAME.out
measure() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err" \
    || { echo "$name failed:"; tail -5 "$work/$name.err"; exit 1; }
  read -r secs kib < "$work/$name.time"
  printf '%-34s wall %7.2f s   peak %6d MiB\n' "$name" "$secs" $((kib / 1024))
}
opt_ml() { # opt_ml DIR DATA...: a SageMaker tree with the given files in the train channel
  local dir=$1; shift
  mkdir -p "$dir/input/data/train" "$dir/input/config"
  for f in "$@"; do ln -s "$f" "$dir/input/data/train/"; done
}

echo "== training on the 251K JSON mix (process start to exit)"
opt_ml "$work/ours" "$work/mix.json"
measure "rust train" env SAGEMAKER_BASE_DIR="$work/ours" "$train"
# The strongest references a careful Python user picks (scaled logistic regression; XGBoost or
# LightGBM trees), interleaved with ours three times: this machine's speed drifts by 10-20 %.
for round in 1 2 3; do
  rm -rf "$work/ours/model" "$work/ours/output"
  measure "rust train #$round" env SAGEMAKER_BASE_DIR="$work/ours" RUST_LOG=info "$train"
  measure "python ref --stack xgb-scaled #$round" python3 "$shared/bench/ref_train_fire.py" "$work/mix.json" --stack xgb-scaled
  measure "python ref --stack lgbm #$round" python3 "$shared/bench/ref_train_fire.py" "$work/mix.json" --stack lgbm
done
measure "python ref --stack xgb" python3 "$shared/bench/ref_train_fire.py" "$work/mix.json" --stack xgb
if [ "$skip_sklearn" != "--skip-sklearn" ]; then
  measure "python ref --stack sklearn" python3 "$shared/bench/ref_train_fire.py" "$work/mix.json" --stack sklearn
fi

echo "== quality on the reference's exact split of the mix"
mkdir -p "$work/same/input/config"
python3 bench/same_split.py "$work/mix.json" "$work/same/input/data" 2>/dev/null
measure "rust train (same split)" env SAGEMAKER_BASE_DIR="$work/same" "$train"

echo "== quality on 251K clean generator rows"
opt_ml "$work/clean" "$work/clean.json"
measure "rust train (clean)" env SAGEMAKER_BASE_DIR="$work/clean" "$train"

echo "== figures"
python3 - "$work" "$skip_sklearn" <<'PY'
import json, sys
w, skip = sys.argv[1], sys.argv[2] == "--skip-sklearn"
def t(name):
    s, k = open(f"{w}/{name}.time").read().split()
    return float(s), int(k) / 1024
def ours(d):
    return json.load(open(f"{w}/{d}/output/data/evaluation.json"))["test"]["ensemble"]
refs = {"xgb": json.loads(open(f"{w}/python ref --stack xgb.out").read())}
if not skip:
    refs["sklearn"] = json.loads(open(f"{w}/python ref --stack sklearn.out").read())
for stack, r in refs.items():
    m = r["metrics"]["ensemble"]
    print(f"python {stack:8s} ensemble test: acc {m['acc']:.4f} f1 {m['f1']:.4f} auc {m['auc']:.4f}  weights {r['weights']}")
for d, label in [("ours", "own split"), ("same", "reference split"), ("clean", "clean 251K")]:
    m = ours(d)
    print(f"rust ({label:15s}) ensemble test: acc {m['accuracy']:.4f} f1 {m['f1']:.4f} auc {m['auc']:.4f}")
rt, rm = t("rust train")
for stack in refs:
    pt, pm = t(f"python ref --stack {stack}")
    print(f"speed-up vs python {stack}: {pt / rt:.1f}x   peak memory ratio: {rm / pm:.3f}")
if "sklearn" in refs:
    gap = refs["sklearn"]["metrics"]["ensemble"]["auc"] - ours("same")["auc"]
    print(f"AUC gap to the scikit-learn ensemble on the same split: {gap:+.4f} (bar: <= 0.005)")

# Against the strongest references, best of three interleaved runs each.
import re
best = lambda name: min(t(f"{name} #{r}") for r in (1, 2, 3))
ours_t, ours_m = best("rust train")
print(f"rust train: best wall {ours_t:.2f} s, peak {ours_m:.0f} MiB (goal <= 150)")
for r in (1, 2, 3):
    log = open(f"{w}/rust train #{r}.err").read()
    fits = dict(re.findall(r'member="(\w+)" seconds="([0-9.]+)"', log))
    print(f"  run {r}: wall {t(f'rust train #{r}')[0]:.2f} s, member fits {fits}")
refs_best = {}
for stack in ("xgb-scaled", "lgbm"):
    wall, mem = best(f"python ref --stack {stack}")
    refs_best[stack] = wall
    for r in (1, 2, 3):
        out = json.loads(open(f"{w}/python ref --stack {stack} #{r}.out").read())
        print(f"  python {stack} run {r}: wall {t(f'python ref --stack {stack} #{r}')[0]:.2f} s, "
              f"load {out['load_s']} s, fits {out['fit_s']}, in-script total {out['total_s']} s, "
              f"test AUC {out['metrics']['ensemble']['auc']}")
    print(f"python {stack}: best wall {wall:.2f} s, peak {mem:.0f} MiB")
strongest = min(refs_best, key=refs_best.get)
print(f"speed-up vs the strongest reference ({strongest}): {refs_best[strongest] / ours_t:.2f}x (goal >= 1.5x)")
# The limit: XGBoost's own fit of the two tree models (from the xgb-scaled runs, best of three)
# plus parsing the file at 1 GB/s.
import os
xgb_fit = min(sum(json.loads(open(f"{w}/python ref --stack xgb-scaled #{r}.out").read())["fit_s"][m]
                  for m in ("random_forest", "gradient_boosting")) for r in (1, 2, 3))
limit = xgb_fit + os.path.getsize(f"{w}/mix.json") / 1e9
print(f"limit (XGBoost's tree fits {xgb_fit:.2f} s + parsing at 1 GB/s): {limit:.2f} s; ours / limit {ours_t / limit:.2f} (goal <= 1.25)")
m = ours("ours")
print(f"rust test AUC (own split, last run) {m['auc']:.4f}; python xgb-scaled / lgbm test AUC above (goal: within 0.002)")
PY
python3 - "$work/clean.json" <<'PY'
# The best any model can do on the clean data: the generator's noise-free score s(x) ranks rows
# by E[label | x]; its AUC is the ceiling (the label noise N(0, 0.05) is not in the features).
import json, sys
import numpy as np
from sklearn.metrics import roc_auc_score
d = json.load(open(sys.argv[1]))["samples"]
f = lambda k: np.array([s["features"][k] for s in d])
y = np.array([s["label"] for s in d])
t_max, gas = f("t_max"), f("gas_val")
area, grad = f("t_hot_area_pct"), f("t_grad_mean")
s = (0.30 * (t_max > 60) + 0.25 * (f("t_p95") > 55) + 0.20 * (f("t_mean") > 40) + 0.20 * (area > 15)
     + 0.15 * (f("t_hot_largest_blob_pct") > 5) + 0.15 * (grad > 8) + 0.15 * (f("t_diff_mean") > 12)
     + 0.25 * (gas > 800) + 0.20 * (f("gas_delta") > 150)
     + 0.30 * ((t_max > 70) & (gas > 1000)) + 0.20 * ((area > 20) & (grad > 10)))
print(f"clean data ceiling: AUC of the noise-free generator score on all rows {roc_auc_score(y, np.clip(s, 0, 1)):.4f}")
PY
