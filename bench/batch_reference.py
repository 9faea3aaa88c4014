#!/usr/bin/env python3
"""The batch benchmark's reference: Python XGBoost's own `inplace_predict` of the same trees a
fire-ensemble model directory holds (its `*.ubj` payloads: the forest's parts and the boosting),
plus the logistic regression in numpy, weighted as the manifest says; the rows already in memory
as a float32 array (no parsing, no HTTP). Prints rows/s of the best of RUNS and, with OUT, writes
the ensemble probabilities, one per line, for comparing with `serve`'s answers.
With --treelite the trees are predicted instead by Treelite's compiled C (tl2cgen: each XGBoost
model compiled by gcc into a shared library, compile time printed, not counted), an anchor
issue 16 names beside XGBoost's own predict.
usage: batch_reference.py [--treelite] MODEL_DIR FEATURES.csv [RUNS] [OUT]"""
import json, os, struct, sys, tempfile, time
import numpy as np
import pandas as pd
import xgboost as xgb

args = [a for a in sys.argv[1:] if a != "--treelite"]
treelite_engine = "--treelite" in sys.argv[1:]
model_dir, csv = args[0], args[1]
runs = int(args[2]) if len(args) > 2 else 3
out = args[3] if len(args) > 3 else None
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
margin_of = lambda b, rows: b.inplace_predict(rows, predict_type="margin")
engine = "Python XGBoost inplace_predict"
if treelite_engine:
    import tl2cgen, treelite

    build, compiled, started = tempfile.mkdtemp(), {}, time.perf_counter()
    for _, model in members.values():
        for b in model if isinstance(model, list) else []:
            lib = os.path.join(build, f"{len(compiled)}.so")
            tl2cgen.export_lib(treelite.frontend.from_xgboost(b), toolchain="gcc", libpath=lib,
                               params={"parallel_comp": threads}, nthread=threads)
            compiled[id(b)] = tl2cgen.Predictor(lib, nthread=threads)
    print(f"treelite: {len(compiled)} models compiled in {time.perf_counter() - started:.0f} s")
    margin_of = lambda b, rows: compiled[id(b)].predict(tl2cgen.DMatrix(rows), pred_margin=True).ravel()
    engine = "Treelite-compiled trees (tl2cgen, gcc)"


def predict():
    total = np.zeros(len(x))
    for name, (weight, model) in members.items():
        if isinstance(model, list):  # the mean margin of a forest's parts = one forest's margin
            margin = sum(margin_of(b, x) for b in model) / len(model)
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
print(f"reference: {engine} ({trees} trees, {threads} threads) + numpy LR, "
      f"{len(x)} rows in memory: best of {runs} {best:.2f} s, {len(x) / best:,.0f} rows/s")
if out:
    np.savetxt(out, p, fmt="%.6f")
