#!/usr/bin/env python3
"""The batch benchmark's reference: Python XGBoost's own `inplace_predict` of the same trees a
fire-ensemble model directory holds (its `*.ubj` payloads: the forest's parts and the boosting),
plus the logistic regression in numpy, weighted as the manifest says; the rows already in memory
as a float32 array (no parsing, no HTTP). Prints rows/s of the best of RUNS and, with OUT, writes
the ensemble probabilities, one per line, for comparing with `serve`'s answers.
usage: batch_reference.py MODEL_DIR FEATURES.csv [RUNS] [OUT]"""
import json, os, struct, sys, time
import numpy as np
import pandas as pd
import xgboost as xgb

model_dir, csv = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
out = sys.argv[4] if len(sys.argv) > 4 else None
manifest = json.load(open(os.path.join(model_dir, "manifest.json")))
threads = os.cpu_count()


def logistic(raw):
    """LogisticModel as bincode (standard config): three f64 vectors (mean, scale,
    coefficients) with one-byte lengths, then the intercept."""
    n, at, vecs = raw[0], 0, []
    for _ in range(3):
        assert raw[at] == n, "a vector length that needs more than one byte"
        vecs.append(np.array(struct.unpack_from(f"<{n}d", raw, at + 1)))
        at += 1 + 8 * n
    (intercept,) = struct.unpack_from("<d", raw, at)
    return vecs, intercept


members = {}  # name -> (weight, [boosters] or logistic parameters)
for p in manifest["payloads"]:
    path = os.path.join(model_dir, p["file"])
    if p["format"] == "xgboost-ubj":
        b = xgb.Booster(model_file=path)
        b.set_param({"nthread": threads})
        members.setdefault(p["name"], (p.get("weight", 0.0), []))[1].append(b)
    elif p["format"] == "bincode-logistic":
        members[p["name"]] = (p.get("weight", 0.0), logistic(open(path, "rb").read()))

# Read as serve reads them: the nearest double (pandas' default parser from 3.0 on), then float32.
x = pd.read_csv(csv, header=None).to_numpy().astype(np.float32)
sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))


def predict():
    total = np.zeros(len(x))
    for name, (weight, model) in members.items():
        if isinstance(model, list):  # the mean margin of a forest's parts = one forest's margin
            margin = sum(b.inplace_predict(x, predict_type="margin") for b in model) / len(model)
        else:
            (mean, scale, coef), intercept = model
            margin = ((x - mean) / scale) @ coef + intercept
        total += weight * sigmoid(margin.astype(np.float64))
    return total


best = float("inf")
for _ in range(runs):
    t = time.perf_counter()
    p = predict()
    best = min(best, time.perf_counter() - t)
trees = sum(b.num_boosted_rounds() * int(json.loads(b.save_config())["learner"]["gradient_booster"]["gbtree_model_param"]["num_parallel_tree"]) for _, m in members.values() if isinstance(m, list) for b in m)
print(f"reference: Python XGBoost inplace_predict ({trees} trees, {threads} threads) + numpy LR, "
      f"{len(x)} rows in memory: best of {runs} {best:.2f} s, {len(x) / best:,.0f} rows/s")
if out:
    np.savetxt(out, p, fmt="%.6f")
