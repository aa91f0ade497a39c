"""The quickstart: XGBoost on scikit-learn's breast cancer data, through the real server: train,
deploy and predict, then a batch transform of the held-out rows."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from opensage.sdk import Estimator, Session, TrainingInput
from opensage.sdk.deserializers import CSVDeserializer
from opensage.sdk.serializers import CSVSerializer

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def _write_csv(path: Path, features: np.ndarray, labels: np.ndarray) -> None:
    """Label first, no header: the built-in algorithms' CSV."""
    np.savetxt(path, np.column_stack([labels, features]), delimiter=",", fmt="%.6g")


def run() -> None:
    session = Session()
    print(f"opensage endpoint: {session.endpoint_url}")
    data = load_breast_cancer()
    x_rest, x_test, y_rest, y_test = train_test_split(
        data.data, data.target, test_size=0.2, random_state=0, stratify=data.target
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.25, random_state=0, stratify=y_rest
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

    print("\nDeploying the model to a real-time endpoint ", end="")
    predictor = estimator.deploy(
        initial_instance_count=1,
        instance_type="ml.m5.large",
        serializer=CSVSerializer(),
        deserializer=CSVDeserializer(),
    )
    try:
        rows = predictor.predict(x_test)
        scores = np.array([float(row[0]) for row in rows])
        accuracy = float(((scores > 0.5) == y_test).mean())
        print(f"Endpoint {predictor.endpoint_name}: {len(y_test)} held-out rows, "
              f"accuracy {accuracy:.3f}")  # fmt: skip
    finally:
        predictor.delete_endpoint()
        print("Endpoint deleted.")
    try:
        _batch_transform(session, estimator, bucket, x_test, y_test)
    finally:
        predictor.delete_model()
    session.close()


def _batch_transform(
    session: Session, estimator: Estimator, bucket: str, x_test: np.ndarray, y_test: np.ndarray
) -> None:
    """The same held-out rows through a batch transform job: one CSV in, one score per line out."""
    with tempfile.TemporaryDirectory() as tmp:
        np.savetxt(Path(tmp) / "test.csv", x_test, delimiter=",", fmt="%.6g")
        test = session.upload_data(f"{tmp}/test.csv", bucket, "quickstart/test")
    csv = "text/csv"
    transformer = estimator.transformer(
        instance_count=1,
        instance_type="ml.m5.large",
        strategy="MultiRecord",
        assemble_with="Line",
        accept=csv,
        output_path=f"s3://{bucket}/quickstart/transform",
    )
    print("\nBatch transform of the held-out rows")
    transformer.transform(test, content_type=csv, split_type="Line", logs=False)
    body = session.s3_client.get_object(Bucket=bucket, Key="quickstart/transform/test.csv.out")
    scores = np.array([float(line) for line in body["Body"].read().decode().split()])
    accuracy = float(((scores > 0.5) == y_test).mean())
    job = transformer.latest_transform_job
    print(f"Transform job {job.job_name if job else ''}: {len(scores)} rows scored into "
          f"{transformer.output_path}/test.csv.out, accuracy {accuracy:.3f}")  # fmt: skip
