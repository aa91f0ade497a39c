"""Save an xgboost model file as an MLflow model, in the anchors' venv (mlflow is not in ours).

    python save_mlflow_model.py MODEL_FILE OUTPUT_DIR

The booster is loaded with the anchors' xgboost (pinned to the project's version) and written
with `mlflow.xgboost.save_model`, without a signature or input example: `mlflow models serve`
then skips schema enforcement, which is the cheapest path it has.
"""

from __future__ import annotations

import sys

import mlflow.xgboost
import xgboost as xgb


def main(model_file: str, output_dir: str) -> None:
    booster = xgb.Booster()
    with open(model_file, "rb") as model:
        booster.load_model(bytearray(model.read()))
    mlflow.xgboost.save_model(booster, output_dir)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
