"""IOPS parity reference: Python xgboost on exactly the rows and split `train` gets.

usage: python3 bench/iops_parity.py INSIGHTS.json CHANNEL_DIR

Reads the generator's JSON array, makes the original's split (scikit-learn
train_test_split, stratified by risk level, random_state 42: 30 % held out, then halved),
writes each split's raw insights as a JSON array into CHANNEL_DIR/{train,validation,test}/
for `train` to read, and fits the same two models with Python xgboost and the same
settings (README: IOPS models). Prints one JSON line of test metrics.
"""
import json
import os
import sys
import time

import numpy as np
import xgboost as xgb
from sklearn.model_selection import train_test_split

RAW = ["read_iops", "write_iops", "total_iops", "iops_variance", "avg_latency", "p95_latency",
       "p99_latency", "latency_spike_count", "bandwidth_mbps", "throughput_variance", "error_rate",
       "error_trend", "hour_of_day", "day_of_week", "time_since_last_alert",
       "sequential_access_ratio", "random_access_ratio", "queue_depth", "io_size_avg",
       "io_size_variance"]
LEVELS = ["low", "medium", "high", "critical"]


def features(records):
    """The 25 features as documented in the README (computed from float32 raw values)."""
    raw = np.array([[r[k] for k in RAW] for r in records], dtype=np.float32).astype(np.float64)
    col = {k: raw[:, i] for i, k in enumerate(RAW)}
    total, latency = col["total_iops"], col["avg_latency"]
    derived = np.column_stack([
        total / np.maximum(latency, 0.01),
        2 * col["error_rate"] + np.where(latency > 10, 3.0, 0.0),
        col["error_trend"] + col["latency_spike_count"] / 10,
        np.minimum(total / 15000.0, 1.0),
        col["bandwidth_mbps"] / np.maximum(total, 1.0),
    ])
    return np.column_stack([raw, derived]).astype(np.float32)


def params(objective, metrics):
    p = {"objective": objective, "tree_method": "hist", "eta": 0.2, "max_depth": 5,
         "min_child_weight": 1, "subsample": 0.8, "colsample_bytree": 0.8, "gamma": 0,
         "alpha": 0, "lambda": 1, "max_bin": 256, "seed": 42, "nthread": 0,
         "eval_metric": metrics}
    if objective.startswith("multi:"):
        p["num_class"] = 4
    return p


def main():
    path, channels = sys.argv[1], sys.argv[2]
    records = json.load(open(path))
    y_class = np.array([LEVELS.index(r["risk_level"]) for r in records])
    index = np.arange(len(records))
    train, held = train_test_split(index, test_size=0.3, stratify=y_class, random_state=42)
    valid, test = train_test_split(held, test_size=0.5, stratify=y_class[held], random_state=42)
    for name, rows in [("train", train), ("validation", valid), ("test", test)]:
        os.makedirs(f"{channels}/{name}", exist_ok=True)
        json.dump([records[i] for i in rows], open(f"{channels}/{name}/insights.json", "w"))

    x = features(records)
    y_score = np.array([r["performance_score"] for r in records], dtype=np.float32)
    out = {}
    start = time.perf_counter()
    for kind, y, objective, metrics in [
        ("classifier", y_class, "multi:softprob", ["merror", "mlogloss"]),
        ("regressor", y_score, "reg:squarederror", ["rmse"]),
    ]:
        dtrain = xgb.DMatrix(x[train], label=y[train])
        dvalid = xgb.DMatrix(x[valid], label=y[valid])
        booster = xgb.train(params(objective, metrics), dtrain, num_boost_round=100,
                            evals=[(dtrain, "train"), (dvalid, "validation")],
                            early_stopping_rounds=10, verbose_eval=False)
        p = booster.predict(xgb.DMatrix(x[test]), iteration_range=(0, booster.best_iteration + 1))
        if kind == "classifier":
            out["accuracy"] = float((p.argmax(axis=1) == y[test]).mean())
        else:
            p = np.clip(p, 0, 100)
            out["rmse"] = float(np.sqrt(np.mean((p.astype(np.float64) - y[test]) ** 2)))
        out[f"{kind}_best_iteration"] = int(booster.best_iteration)
    out["fit_seconds"] = time.perf_counter() - start
    print(json.dumps(out))


if __name__ == "__main__":
    main()
