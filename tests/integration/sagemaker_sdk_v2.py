"""A SageMaker Python SDK v2 user's script, run unchanged against opensage.

It runs in its own virtual environment (`make sdk-venv`: the SDK and its dependencies, nothing
of opensage) with only `AWS_ENDPOINT_URL` and throwaway credentials pointing it at the server:
no endpoint_url argument, no patched client. The one line of set-up is the Session's
`default_bucket`: without it the SDK names the bucket after the account, which it asks of STS
at a hard-coded AWS address (`sagemaker.utils.sts_regional_endpoint`), whatever the
environment says. It prints one JSON object of what it saw, which
tests/integration/test_sagemaker_sdk.py checks. It writes that to the file named by its
argument, as the SDK prints the training logs on stdout.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile

import boto3
import numpy as np
import sagemaker
from sagemaker import KMeans
from sagemaker.deserializers import CSVDeserializer
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.serializers import CSVSerializer
from sagemaker.sklearn import SKLearn
from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter

XGBOOST = sagemaker.image_uris.retrieve("xgboost", "us-east-1", version="1.7-1")
ROLE = "arn:aws:iam::123456789012:role/sagemaker-sdk-user"
INSTANCE = "ml.m5.large"


def rows(x: np.ndarray, y: np.ndarray | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    for i, features in enumerate(x):
        writer.writerow(([int(y[i])] if y is not None else []) + [f"{v:.5f}" for v in features])
    return out.getvalue()


TRAIN_SCRIPT = """
import argparse, glob, os
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression


def load(channel):
    return np.loadtxt(glob.glob(os.path.join(channel, "*.csv"))[0], delimiter=",")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--strength", type=float, default=1.0)
    args = parser.parse_args()
    train, test = load(os.environ["SM_CHANNEL_TRAIN"]), load(os.environ["SM_CHANNEL_VALIDATION"])
    model = LogisticRegression(C=args.strength).fit(train[:, 1:], train[:, 0])
    print("validation-accuracy: %.4f" % model.score(test[:, 1:], test[:, 0]))
    joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


def script_mode(
    session: sagemaker.Session,
    bucket: str,
    inputs: dict,
    x: np.ndarray,
    batch: str,
    seen: dict[str, object],
) -> None:
    """A script-mode estimator (the scikit-learn framework image, a user's train.py) through the
    same train, deploy, predict, transform and tune."""
    with tempfile.TemporaryDirectory() as source:
        with open(os.path.join(source, "train.py"), "w") as f:
            f.write(TRAIN_SCRIPT)
        estimator = SKLearn(
            entry_point="train.py",
            source_dir=source,
            framework_version="1.2-1",
            role=ROLE,
            instance_count=1,
            instance_type=INSTANCE,
            output_path=f"s3://{bucket}/sdk/sklearn-output",
            sagemaker_session=session,
            hyperparameters={"strength": 0.5},
            metric_definitions=[
                {"Name": "validation:accuracy", "Regex": "validation-accuracy: ([0-9.]+)"}
            ],
        )
        estimator.fit(inputs, logs=True)
        seen["script_status"] = estimator.latest_training_job.describe()["TrainingJobStatus"]
        predictor = estimator.deploy(
            initial_instance_count=1,
            instance_type=INSTANCE,
            serializer=CSVSerializer(),
            deserializer=CSVDeserializer(),
        )
        seen["script_predictions"] = [
            float(v) for row in predictor.predict(x[300:310]) for v in row
        ]
        predictor.delete_endpoint()
        transformer = estimator.transformer(
            instance_count=1,
            instance_type=INSTANCE,
            output_path=f"s3://{bucket}/sdk/out/sklearn-batch",
        )
        transformer.transform(batch, content_type="text/csv", split_type="Line")
        transformer.wait()
        outputs = session.list_s3_files(bucket, "sdk/out/sklearn-batch/")
        seen["script_transform_lines"] = sum(
            len(session.read_s3_file(bucket, k).split()) for k in outputs
        )
        tuner = HyperparameterTuner(
            estimator,
            objective_metric_name="validation:accuracy",
            objective_type="Maximize",
            metric_definitions=[
                {"Name": "validation:accuracy", "Regex": "validation-accuracy: ([0-9.]+)"}
            ],
            hyperparameter_ranges={
                "strength": ContinuousParameter(0.01, 10, scaling_type="Logarithmic")
            },
            max_jobs=2,
            max_parallel_jobs=1,
            strategy="Bayesian",
        )
        tuner.fit(inputs)
        tuner.wait()
        seen["script_tuning_trials"] = len(tuner.analytics().dataframe())


def main() -> None:
    session = sagemaker.Session(boto3.Session(region_name="us-east-1"), default_bucket="sdk-work")
    bucket = session.default_bucket()  # created here, as the SDK does on AWS
    seen: dict[str, object] = {"bucket": bucket}

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in {
            "train": rows(x[:300], y[:300]),
            "validation": rows(x[300:], y[300:]),
            "batch": rows(x[300:]),
        }.items():
            os.makedirs(os.path.join(tmp, name))
            with open(os.path.join(tmp, name, f"{name}.csv"), "w") as f:
                f.write(text)
        uris = {
            name: session.upload_data(os.path.join(tmp, name), bucket, f"sdk/{name}")
            for name in ("train", "validation", "batch")
        }
    inputs = {
        "train": TrainingInput(uris["train"], content_type="text/csv"),
        "validation": TrainingInput(uris["validation"], content_type="text/csv"),
    }

    estimator = Estimator(
        image_uri=XGBOOST,
        role=ROLE,
        instance_count=1,
        instance_type=INSTANCE,
        output_path=f"s3://{bucket}/sdk/output",
        sagemaker_session=session,
        hyperparameters={"objective": "binary:logistic", "num_round": 20, "max_depth": 3},
    )
    estimator.fit(inputs, logs=True)
    seen["training_status"] = estimator.latest_training_job.describe()["TrainingJobStatus"]
    seen["model_data"] = estimator.model_data

    predictor = estimator.deploy(
        initial_instance_count=1,
        instance_type=INSTANCE,
        serializer=CSVSerializer(),
        deserializer=CSVDeserializer(),
    )
    scores = predictor.predict(x[300:310])
    seen["predictions"] = [float(v) for row in scores for v in row]
    seen["labels"] = [int(v) for v in y[300:310]]
    predictor.delete_endpoint()

    transformer = estimator.transformer(
        instance_count=1, instance_type=INSTANCE, output_path=f"s3://{bucket}/sdk/out/xgboost-batch"
    )
    transformer.transform(uris["batch"], content_type="text/csv", split_type="Line")
    transformer.wait()
    outputs = session.list_s3_files(bucket, "sdk/out/xgboost-batch/")
    seen["transform_outputs"] = outputs
    seen["transform_lines"] = sum(len(session.read_s3_file(bucket, k).split()) for k in outputs)

    tuner = HyperparameterTuner(
        estimator,
        objective_metric_name="validation:logloss",
        objective_type="Minimize",
        hyperparameter_ranges={
            "eta": ContinuousParameter(0.05, 0.5),
            "max_depth": IntegerParameter(2, 5),
        },
        max_jobs=3,
        max_parallel_jobs=2,
        strategy="Random",
    )
    tuner.fit(inputs)
    tuner.wait()
    seen["tuning_best"] = tuner.best_training_job()
    frame = tuner.analytics().dataframe()
    seen["tuning_trials"] = len(frame)

    script_mode(session, bucket, inputs, x, uris["batch"], seen)

    kmeans = KMeans(
        role=ROLE,
        instance_count=1,
        instance_type=INSTANCE,
        k=2,
        output_path=f"s3://{bucket}/sdk/kmeans",
        sagemaker_session=session,
    )
    kmeans.fit(kmeans.record_set(x.astype("float32")), logs=False)
    seen["kmeans_status"] = kmeans.latest_training_job.describe()["TrainingJobStatus"]

    with open(sys.argv[1], "w") as f:
        json.dump(seen, f)


if __name__ == "__main__":
    main()
