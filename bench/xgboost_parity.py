"""Parity of served XGBoost models with XGBoost's own predict, per model format and objective.

usage: python3 bench/xgboost_parity.py SERVE_BINARY PYTHON_XGBOOST_1_7
Trains each objective with this Python's XGBoost (3.x) and saves JSON and UBJSON; has Python
XGBoost 1.7.6 write its binary format and both pickle kinds (tests/xgboost1/write_models.py);
serves each file with `serve` and prints max |ours - XGBoost| over 200 rows with missing values
as a Markdown table.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np
import xgboost as xgb

serve, py17 = sys.argv[1:3]
work = tempfile.mkdtemp()
rng = np.random.default_rng(5)
X = (rng.random((2000, 6)) * 10).astype(np.float32)
X[rng.random(X.shape) < 0.05] = np.nan
v = np.nan_to_num(X[:, 0], nan=5.0) + 0.5 * np.nan_to_num(X[:, 1], nan=2.0)
labels = {"reg": v + 1.0, "bin": (v > 7.0).astype(np.float32),
          "multi": np.minimum(np.floor(v / 5.0), 2.0).astype(np.float32),
          # survival times, 30 % right-censored (negative, as XGBoost's Cox objective reads them)
          "survival": np.where(rng.random(len(v)) < 0.3, -(v + 1.0), v + 1.0).astype(np.float32)}
rows = X[:200]


def diff(got, want):
    """Largest absolute difference, and relative to max(1, |want|)."""
    d = np.abs(got - want)
    return float(d.max()), float((d / np.maximum(1.0, np.abs(want))).max())


def csv(rows):
    return "".join(",".join("" if np.isnan(x) else repr(float(x)) for x in r) + "\n" for r in rows).encode()


def answer(model_file, body):
    d = tempfile.mkdtemp()
    os.makedirs(f"{d}/model")
    with open(model_file, "rb") as src, open(f"{d}/model/xgboost-model", "wb") as dst:
        dst.write(src.read())
    env = dict(os.environ, SAGEMAKER_BASE_DIR=d, SAGEMAKER_BIND_TO_PORT="18093")
    p = subprocess.Popen([serve], env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen("http://127.0.0.1:18093/ping", timeout=1)
                break
            except Exception:
                time.sleep(0.05)
        req = urllib.request.Request("http://127.0.0.1:18093/invocations", data=body,
                                     headers={"Content-Type": "text/csv", "Accept": "text/csv"})
        try:
            text = urllib.request.urlopen(req, timeout=30).read().decode()
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{model_file}: {e.code} {e.read().decode()}")
        return np.array([float(t) for t in text.replace("[", " ").replace("]", " ").replace(",", " ").split()])
    finally:
        p.terminate()
        p.wait()


results = []
qid = np.arange(len(X)) // 8  # ranking: queries of 8 rows
cats = X.copy()
cats[:, 0] = np.floor(cats[:, 0])  # categorical: features 0 and 3 as whole categories 0-9
cats[:, 3] = np.floor(cats[:, 3])
for objective, y, extra in [
    ("reg:squarederror", "reg", {}), ("reg:logistic", "bin", {}), ("reg:absoluteerror", "reg", {}),
    ("reg:pseudohubererror", "reg", {}), ("reg:squaredlogerror", "reg", {}), ("reg:gamma", "reg", {}),
    ("reg:tweedie", "reg", {}), ("count:poisson", "reg", {}), ("binary:logistic", "bin", {}),
    ("binary:logitraw", "bin", {}), ("binary:hinge", "bin", {}),
    ("multi:softprob", "multi", {"num_class": 3}), ("multi:softmax", "multi", {"num_class": 3}),
    ("survival:cox", "survival", {"eta": 0.05}), ("rank:pairwise", "bin", {}), ("rank:ndcg", "multi", {}),
    ("rank:map", "bin", {}), ("reg:squarederror, categorical", "reg", {}),
]:
    name = objective
    if objective.endswith(", categorical"):
        objective = objective.split(",")[0]
        types = ["c", "q", "q", "c", "q", "q"]
        train = xgb.DMatrix(cats, label=labels[y], feature_types=types, enable_categorical=True)
        test = xgb.DMatrix(cats[:200], feature_types=types, enable_categorical=True)
    else:
        train = xgb.DMatrix(X, label=labels[y], qid=qid if objective.startswith("rank:") else None)
        test = xgb.DMatrix(rows)
    b = xgb.train({"objective": objective, "max_depth": 6, "nthread": 2, "seed": 1, **extra},
                  train, 100)
    want = b.predict(test).ravel()
    for fmt, ext in [("JSON", "json"), ("UBJSON", "ubj")]:
        path = f"{work}/m.{ext}"
        b.save_model(path)
        got = answer(path, csv(cats[:200] if name != objective else rows))
        results.append((f"XGBoost {xgb.__version__} {fmt}", name, *diff(got, want)))

old = f"{work}/x17"
os.makedirs(old)
subprocess.run([py17, "tests/xgboost1/write_models.py", old], check=True, capture_output=True)
want17 = json.load(open(f"{old}/want.json"))
objectives = {"binary": "binary:logistic", "softprob": "multi:softprob", "softmax": "multi:softmax",
              "regression": "reg:squarederror (early-stopped)", "poisson": "count:poisson",
              "forest": "binary:logistic (3 parallel trees)"}
body = open(f"{old}/rows.csv", "rb").read()
for name, objective in objectives.items():
    for fmt, suffix, key in [("1.7.6 binary", "bin", "file"), ("1.7.6 pickle", "pkl", "pickle"),
                             ("0.90-style pickle", "old.pkl", "pickle")]:
        got = answer(f"{old}/{name}.{suffix}", body)
        want = np.array(want17[name][key], dtype=np.float64).ravel()
        results.append((f"XGBoost {fmt}", objective, *diff(got, want)))

print("| model file | objective | max abs difference | max relative difference |")
print("|---|---|---|---|")
for fmt, objective, absolute, relative in results:
    print(f"| {fmt} | `{objective}` | {absolute:.1e} | {relative:.1e} |")
