"""The SageMaker Python SDK v2, unchanged, against a real server: train with logs, deploy,
predict, batch transform and tune, with a built-in (XGBoost) and with a script-mode estimator
(scikit-learn), and a built-in estimator with `record_set` (K-Means)
(tests/integration/sagemaker_sdk_v2.py, run in the SDK's own virtual environment)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import Clients, aws_user_env

ROOT = Path(__file__).resolve().parents[2]
SDK_PYTHON = ROOT / ".venv-sagemaker" / "bin" / "python"
SCRIPT = Path(__file__).with_name("sagemaker_sdk_v2.py")
pytestmark = pytest.mark.skipif(
    not SDK_PYTHON.exists(), reason="the SageMaker SDK's venv is missing: run `make sdk-venv`"
)


def test_the_sagemaker_sdk_runs_unchanged(process_server: Clients, tmp_path: Path) -> None:
    env = aws_user_env(tmp_path, process_server.endpoint)
    seen_file = tmp_path / "seen.json"
    done = subprocess.run(
        [str(SDK_PYTHON), str(SCRIPT), str(seen_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(seen_file.read_text())

    assert seen["bucket"] == "sdk-work"
    assert "sdk-work" in [b["Name"] for b in process_server.s3.list_buckets()["Buckets"]]
    assert seen["training_status"] == "Completed"
    assert "[0]#011train-logloss" in done.stdout or "train-logloss" in done.stdout  # logs=True
    assert str(seen["model_data"]).startswith(f"s3://{seen['bucket']}/sdk/output/")
    predicted = [int(p > 0.5) for p in seen["predictions"]]
    assert sum(p == y for p, y in zip(predicted, seen["labels"], strict=True)) >= 8
    assert seen["transform_outputs"] == ["sdk/out/xgboost-batch/batch/batch.csv.out"]
    assert seen["transform_lines"] == 100
    assert seen["tuning_trials"] == 3
    assert process_server.sagemaker.describe_training_job(TrainingJobName=seen["tuning_best"])
    assert seen["kmeans_status"] == "Completed"
    assert seen["script_status"] == "Completed"
    labels = [float(v) for v in seen["labels"]]
    assert sum(p == y for p, y in zip(seen["script_predictions"], labels, strict=True)) >= 8
    assert seen["script_transform_lines"] == 100
    assert seen["script_tuning_trials"] == 2
    assert process_server.sagemaker.list_endpoints()["Endpoints"] == []  # delete_endpoint worked
