"""The FastAPI anchor for bench_hosting.py: the least a Python model server can do.

One process, one uvicorn worker, one route. `POST /invocations` takes one CSV row of features,
parses it with numpy, scores it with `Booster.inplace_predict` and answers the score as
text/csv. The handler is `async` and predicts inline: a sync handler would add a hop through
the thread pool on every request, and the anchor is meant to be the fastest honest baseline.
The booster predicts on one thread (`nthread=1`), as SageMaker's XGBoost container and opensage
do: for one row, xgboost's default OpenMP team costs far more than it saves (its idle threads
spin), and on a small machine shared with the load generator that alone cut throughput 5x.
Run it from the anchors' venv:

    ANCHOR_MODEL=path/to/xgboost-model uvicorn fastapi_app:app --app-dir benchmarks/anchors
"""

from __future__ import annotations

import io
import os

import numpy as np
import xgboost as xgb
from fastapi import FastAPI, Request, Response

MODEL_ENV = "ANCHOR_MODEL"


def load_booster(path: str) -> xgb.Booster:
    """Load from bytes: xgboost detects the format itself (a bare path without extension warns)."""
    booster = xgb.Booster()
    with open(path, "rb") as model:
        booster.load_model(bytearray(model.read()))
    booster.set_param("nthread", "1")
    return booster


booster = load_booster(os.environ[MODEL_ENV])
app = FastAPI()


@app.get("/ping")
async def ping() -> Response:
    """Readiness probe for the benchmark, as SageMaker containers have."""
    return Response(status_code=200)


@app.post("/invocations")
async def invocations(request: Request) -> Response:
    body = await request.body()
    features = np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2, dtype=np.float32)
    scores = booster.inplace_predict(features)
    text = "\n".join(f"{score:.9g}" for score in np.ravel(scores))
    return Response(content=text, media_type="text/csv")
