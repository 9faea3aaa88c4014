"""California housing parity reference: Python xgboost with the original pipeline's settings.

usage: python3 bench/tabular_parity.py HOUSING_TARGETFIRST.csv CHANNEL_DIR

Makes the original's 80/20 split (scikit-learn train_test_split, random_state 42), writes the
two parts (target first, no header) as CHANNEL_DIR/train/ and CHANNEL_DIR/validation/ for
`train`, fits xgboost (reg:squarederror, 100 rounds, max_depth 5, eta 0.2, subsample 0.8,
colsample_bytree 0.8, seed 42, hist) on the 80 % and prints the RMSE on the 20 % as JSON.
"""
import json
import os
import sys
import time

import numpy as np
import xgboost as xgb
from sklearn.model_selection import train_test_split

path, channels = sys.argv[1], sys.argv[2]
data = np.loadtxt(path, delimiter=",", dtype=np.float64)
lines = open(path).read().splitlines()
index = np.arange(len(data))
train, test = train_test_split(index, test_size=0.2, random_state=42)
for name, rows in [("train", train), ("validation", test)]:
    os.makedirs(f"{channels}/{name}", exist_ok=True)
    with open(f"{channels}/{name}/part.csv", "w") as f:
        f.writelines(lines[i] + "\n" for i in rows)
x = data[:, 1:].astype(np.float32)
y = data[:, 0].astype(np.float32)
params = {"objective": "reg:squarederror", "max_depth": 5, "eta": 0.2, "subsample": 0.8,
          "colsample_bytree": 0.8, "seed": 42, "tree_method": "hist", "max_bin": 256}
start = time.perf_counter()
booster = xgb.train(params, xgb.DMatrix(x[train], label=y[train]), num_boost_round=100)
seconds = time.perf_counter() - start
p = booster.predict(xgb.DMatrix(x[test]))
rmse = float(np.sqrt(np.mean((p.astype(np.float64) - y[test]) ** 2)))
print(json.dumps({"rmse": rmse, "fit_seconds": seconds, "train": len(train), "test": len(test)}))
