#!/usr/bin/env python3
"""Writes the exact train / validation / test split of ../shared/bench/ref_train_fire.py
(stratified 15 % test, then 15/85 of the rest as validation, random_state 42) as three SageMaker
channels of JSON Lines, so `train` can be compared with the reference on the same rows.

usage: same_split.py DATA.json OUT_DIR   -> OUT_DIR/{train,validation,test}/part.jsonl
"""
import json, os, sys
import numpy as np
from sklearn.model_selection import train_test_split

NAMES = ["t_mean", "t_std", "t_max", "t_p95", "t_hot_area_pct", "t_hot_largest_blob_pct",
         "t_grad_mean", "t_grad_std", "t_diff_mean", "t_diff_std", "flow_mag_mean",
         "flow_mag_std", "tproxy_val", "tproxy_delta", "tproxy_vel", "gas_val", "gas_delta",
         "gas_vel"]

data = json.load(open(sys.argv[1]))["samples"]
X = np.array([[s["features"][k] for k in NAMES] for s in data])
y = np.array([s["label"] for s in data])
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.15, random_state=42, stratify=y)
Xtr, Xva, ytr, yva = train_test_split(Xtr, ytr, test_size=0.15 / 0.85, random_state=42, stratify=ytr)
for name, Xs, ys in [("train", Xtr, ytr), ("validation", Xva, yva), ("test", Xte, yte)]:
    os.makedirs(os.path.join(sys.argv[2], name), exist_ok=True)
    with open(os.path.join(sys.argv[2], name, "part.jsonl"), "w") as f:
        for row, label in zip(Xs, ys):
            f.write(json.dumps({"features": dict(zip(NAMES, map(float, row))), "label": int(label)}) + "\n")
    print(f"{name}: {len(ys)} rows", file=sys.stderr)
