#!/usr/bin/env python3
"""A faithful stand-in for SageMaker's built-in XGBoost serving stack: Flask under gunicorn
(gevent workers in the built-in; sync workers here, one per core), Python xgboost predicting
each CSV body with the loaded Booster (nthread 1, as the built-in sets), answering
comma-joined predictions as text/csv.

  MODEL_FILE=/path/xgboost-model gunicorn -w 2 -b 127.0.0.1:8082 ref_xgboost_server:app
"""
import io
import os

import numpy as np
import xgboost as xgb
from flask import Flask, Response, request

booster = xgb.Booster(model_file=os.environ["MODEL_FILE"])
booster.set_param("nthread", 1)
app = Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    return Response(status=200)


@app.route("/invocations", methods=["POST"])
def invocations():
    body = request.get_data()
    if not body:
        return Response(status=204)
    try:
        x = np.loadtxt(io.StringIO(body.decode()), delimiter=",", ndmin=2)
    except ValueError as e:
        return Response(f"bad request: {e}", status=415)
    preds = booster.predict(xgb.DMatrix(x), validate_features=False)
    return Response(",".join(map(str, preds.tolist())), status=200, mimetype="text/csv")
