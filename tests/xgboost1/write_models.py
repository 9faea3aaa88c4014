"""Writes what SageMaker's older built-in XGBoost images left behind, with Python XGBoost 1.7.6:
for each objective, the model as XGBoost 1.x's binary format, as a pickled Booster (protocol 4,
as the 1.x images; its handle a UBJSON snapshot) and as a protocol-2 pickle whose handle is the
binary format (as the 0.90 images), plus the rows and XGBoost's own predictions.

usage: python write_models.py OUT_DIR
"""
import json
import os
import pickle
import sys
import warnings

import numpy as np
import xgboost
import xgboost.core

warnings.simplefilter("ignore")
out = sys.argv[1]
rng = np.random.default_rng(3)
X = (rng.random((600, 5)) * 10).astype(np.float32)
X[rng.random(X.shape) < 0.05] = np.nan
v = np.nan_to_num(X[:, 0], nan=5.0) + 0.5 * np.nan_to_num(X[:, 1], nan=2.0)
labels = {
    "reg": v + 1.0,
    "bin": (v > 7.0).astype(np.float32),
    "multi": np.minimum(np.floor(v / 5.0), 2.0).astype(np.float32),
}
rows = X[:40]
with open(os.path.join(out, "rows.csv"), "w") as f:
    for r in rows:
        f.write(",".join("" if np.isnan(x) else repr(float(x)) for x in r) + "\n")


def old_style_pickle(raw, limit):
    """A protocol-2 pickle of a Booster whose handle is the binary format, as XGBoost 0.90 wrote."""
    real = xgboost.core.Booster

    class Booster:
        pass

    Booster.__module__, Booster.__qualname__ = "xgboost.core", "Booster"
    xgboost.core.Booster = Booster
    try:
        o = Booster()
        o.__dict__ = {"handle": bytearray(raw), "best_ntree_limit": limit}
        return pickle.dumps(o, protocol=2)
    finally:
        xgboost.core.Booster = real


want = {}
for name, objective, y, extra in [
    ("binary", "binary:logistic", "bin", {}),
    ("softprob", "multi:softprob", "multi", {"num_class": 3}),
    ("softmax", "multi:softmax", "multi", {"num_class": 3}),
    ("regression", "reg:squarederror", "reg", {}),
    ("poisson", "count:poisson", "reg", {}),
    ("forest", "binary:logistic", "bin", {"num_parallel_tree": 3, "subsample": 0.7}),
]:
    d = xgboost.DMatrix(X, label=labels[y])
    params = {"objective": objective, "max_depth": 4, "nthread": 1, "seed": 1, **extra}
    if name == "regression":
        # Early stopping: the pickle's best_ntree_limit keeps fewer trees than were grown.
        valid = xgboost.DMatrix(X[:100], label=labels[y][:100] + rng.normal(0, 3, 100))
        b = xgboost.train(params, d, 60, evals=[(valid, "v")], early_stopping_rounds=3, verbose_eval=False)
    else:
        b = xgboost.train(params, d, 15)
    b.save_model(os.path.join(out, name + ".bin"))
    with open(os.path.join(out, name + ".pkl"), "wb") as f:
        pickle.dump(b, f, protocol=4)
    with open(os.path.join(out, name + ".old.pkl"), "wb") as f:
        f.write(old_style_pickle(b.save_raw(raw_format="deprecated"), b.best_ntree_limit))
    dm = xgboost.DMatrix(rows)
    want[name] = {
        "file": b.predict(dm).tolist(),
        "pickle": b.predict(dm, ntree_limit=b.best_ntree_limit).tolist(),
        "trees_grown": b.num_boosted_rounds(),
        "best_ntree_limit": b.best_ntree_limit,
    }
with open(os.path.join(out, "want.json"), "w") as f:
    json.dump(want, f)
