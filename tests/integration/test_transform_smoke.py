"""Smoke: one CSV transform job through the real server."""

from __future__ import annotations

import numpy as np

from tests.integration.conftest import Clients
from tests.integration.hosting import N_FEATURES, upload, xgboost_model


def test_csv_line_multirecord(server: Clients) -> None:
    model = xgboost_model(server, "tsmoke-model")
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(50, N_FEATURES))
    text = "\n".join(",".join(f"{v:.5f}" for v in row) for row in rows) + "\n"
    upload(server, "tsmoke/in/a.csv", text.encode())
    upload(server, "tsmoke/in/b.csv", text.encode())
    server.sagemaker.create_transform_job(
        TransformJobName="tsmoke",
        ModelName=model,
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/tsmoke/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": "s3://data/tsmoke/out", "AssembleWith": "Line", "Accept": "text/csv"},
        TransformResources={"InstanceCount": 2, "InstanceType": "ml.m5.large"},
    )
    server.sagemaker.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="tsmoke", WaiterConfig={"Delay": 0.2, "MaxAttempts": 600}
    )
    desc = server.sagemaker.describe_transform_job(TransformJobName="tsmoke")
    print(desc)
    assert desc["TransformJobStatus"] == "Completed"
    out = server.s3.get_object(Bucket="data", Key="tsmoke/out/a.csv.out")["Body"].read().decode()
    assert len(out.splitlines()) == 50
