"""The quickstart: XGBoost on scikit-learn's breast cancer data, through the real server."""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from opensage.sdk import Estimator, Session, TrainingInput

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def _write_csv(path: Path, features: np.ndarray, labels: np.ndarray) -> None:
    """Label first, no header: the built-in algorithms' CSV."""
    np.savetxt(path, np.column_stack([labels, features]), delimiter=",", fmt="%.6g")


def run() -> None:
    session = Session()
    print(f"opensage endpoint: {session.endpoint_url}")
    data = load_breast_cancer()
    x_train, x_val, y_train, y_val = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name, x, y in (("train", x_train, y_train), ("validation", x_val, y_val)):
            (Path(tmp) / name).mkdir()
            _write_csv(Path(tmp) / name / f"{name}.csv", x, y)
        bucket = session.default_bucket()
        train = session.upload_data(f"{tmp}/train", bucket, "quickstart/train")
        validation = session.upload_data(f"{tmp}/validation", bucket, "quickstart/validation")
    print(f"uploaded {len(y_train)} training and {len(y_val)} validation rows to s3://{bucket}/")

    estimator = Estimator(
        image_uri=XGBOOST_IMAGE,
        hyperparameters={
            "objective": "binary:logistic",
            "num_round": 50,
            "max_depth": 4,
            "eta": 0.2,
            "eval_metric": "logloss,auc",
            "early_stopping_rounds": 10,
        },
        output_path=f"s3://{bucket}/quickstart/output",
        sagemaker_session=session,
        base_job_name="quickstart-xgboost",
    )
    csv = "text/csv"
    estimator.fit(
        {
            "train": TrainingInput(train, content_type=csv),
            "validation": TrainingInput(validation, content_type=csv),
        }
    )
    desc = estimator.describe()
    print("\nFinal metrics:")
    for metric in sorted(desc.get("FinalMetricDataList", []), key=lambda m: m["MetricName"]):
        print(f"  {metric['MetricName']:<24} {metric['Value']:.5f}")
    print(f"\nModel: {estimator.model_data}")
    _check_model(session, estimator.model_data, x_val, y_val)
    session.close()


def _check_model(session: Session, model_uri: str, x: np.ndarray, y: np.ndarray) -> None:
    """Load the artifact in plain xgboost, as a user would, and score the validation rows."""
    import xgboost

    bucket, _, key = model_uri.removeprefix("s3://").partition("/")
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "model.tar.gz"
        archive.write_bytes(session.s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        booster = xgboost.Booster()
        booster.load_model(bytearray((Path(tmp) / "xgboost-model").read_bytes()))
    accuracy = float(((booster.predict(xgboost.DMatrix(x)) > 0.5) == y).mean())
    print(f"Validation accuracy of the downloaded model in plain xgboost: {accuracy:.3f}")
