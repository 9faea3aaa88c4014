"""Raw housing.csv (a text column, missing values) in Python: the references for bench/categorical.sh.

usage: python3 bench/categorical_parity.py HOUSING.csv CHANNEL_DIR

Splits the file 80/20 (scikit-learn train_test_split, random_state 42), writes the two parts
with the header as CHANNEL_DIR/train/ and CHANNEL_DIR/validation/ for `train`, and fits what a
careful Python user would on the same rows, printing each one's validation RMSE as JSON:
- xgboost with native categorical support (pandas `category` dtype, enable_categorical=True),
  XGBoost's default settings and 100 rounds, as `train` fits its xgboost candidate;
- LightGBM with the same column as a pandas category (its own categorical splits), 100 rounds;
- xgboost with the text column dropped (what a user does when the table cannot be read).
"""
import json
import os
import sys
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.model_selection import train_test_split

path, channels = sys.argv[1], sys.argv[2]
frame = pd.read_csv(path)
lines = open(path).read().splitlines()
header, body = lines[0], lines[1:]
train, test = train_test_split(np.arange(len(frame)), test_size=0.2, random_state=42)
for name, rows in [("train", train), ("validation", test)]:
    os.makedirs(f"{channels}/{name}", exist_ok=True)
    with open(f"{channels}/{name}/part.csv", "w") as f:
        f.write(header + "\n")
        f.writelines(body[i] + "\n" for i in rows)

label = "median_house_value"
y = frame[label].to_numpy(np.float32)
x = frame.drop(columns=[label])
# pandas sorts a text column's categories by name: the codes `train` gives them too.
x["ocean_proximity"] = x["ocean_proximity"].astype("category")
numeric = x.drop(columns=["ocean_proximity"])


def rmse(p):
    return float(np.sqrt(np.mean((np.asarray(p, np.float64) - y[test]) ** 2)))


out = {"train": len(train), "validation": len(test)}
params = {"objective": "reg:squarederror", "tree_method": "hist", "seed": 0, "nthread": 2}
for name, features in [("xgboost_categorical", x), ("xgboost_text_column_dropped", numeric)]:
    start = time.perf_counter()
    dtrain = xgb.DMatrix(features.iloc[train], label=y[train], enable_categorical=True)
    booster = xgb.train(params, dtrain, num_boost_round=100)
    seconds = time.perf_counter() - start
    p = booster.predict(xgb.DMatrix(features.iloc[test], enable_categorical=True))
    out[name] = {"rmse": rmse(p), "fit_seconds": seconds}
start = time.perf_counter()
model = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 2, "seed": 0},
                  lgb.Dataset(x.iloc[train], label=y[train]), num_boost_round=100)
out["lightgbm_categorical"] = {"rmse": rmse(model.predict(x.iloc[test])),
                               "fit_seconds": time.perf_counter() - start}
print(json.dumps(out))
