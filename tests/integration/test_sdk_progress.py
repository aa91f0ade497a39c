"""The SDK's progress bars read a job's progress through the public API (S3 listings and the
tuning job's counters), against the real server's S3."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from opensage.sdk.progress import Bar, TransformOutputs, tuning_counts
from tests.integration.conftest import Clients

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
LATER = datetime(2999, 1, 1, tzinfo=UTC)


def transform_desc(source: dict[str, str], output: str, created: datetime) -> dict[str, Any]:
    return {
        "CreationTime": created,
        "TransformInput": {"DataSource": {"S3DataSource": source}},
        "TransformOutput": {"S3OutputPath": output},
    }


@pytest.fixture(scope="module")
def s3(process_server: Clients) -> Any:
    client = process_server.s3
    client.create_bucket(Bucket="progress")
    for key in ("in/a.csv", "in/sub/b.csv", "elsewhere/c.csv"):
        client.put_object(Bucket="progress", Key=key, Body=b"1,2\n")
    manifest = [{"prefix": "s3://progress/in/"}, "a.csv", "sub/b.csv"]
    client.put_object(Bucket="progress", Key="lists/inputs.manifest", Body=json.dumps(manifest))
    # one input done; a file that is no output of an input; a non-output file
    for key in ("out/a.csv.out", "out/stray.csv.out", "out/_SUCCESS"):
        client.put_object(Bucket="progress", Key=key, Body=b"0.5\n")
    return client


@pytest.mark.parametrize(
    "source",
    [
        {"S3DataType": "S3Prefix", "S3Uri": "s3://progress/in/"},
        {"S3DataType": "S3Prefix", "S3Uri": "s3://progress/in"},  # a key prefix, not a folder
        {"S3DataType": "ManifestFile", "S3Uri": "s3://progress/lists/inputs.manifest"},
    ],
)
def test_transform_outputs_counts_the_inputs_outputs(s3: Any, source: dict[str, str]) -> None:
    outputs = TransformOutputs(s3, transform_desc(source, "s3://progress/out", LONG_AGO))
    expected = (
        {"out/in/a.csv.out", "out/in/sub/b.csv.out"}  # relative to the folder `s3://progress/`
        if source["S3Uri"].endswith("/in")
        else {"out/a.csv.out", "out/sub/b.csv.out"}
    )
    assert outputs.expected == expected
    assert outputs.total == 2
    assert outputs.count() == (0 if source["S3Uri"].endswith("/in") else 1)

    s3.put_object(Bucket="progress", Key="out/sub/b.csv.out", Body=b"0.5\n")
    try:
        assert outputs.count(force=True) == (0 if source["S3Uri"].endswith("/in") else 2)
    finally:
        s3.delete_object(Bucket="progress", Key="out/sub/b.csv.out")


def test_outputs_written_before_the_job_do_not_count(s3: Any) -> None:
    source = {"S3DataType": "S3Prefix", "S3Uri": "s3://progress/in/"}
    outputs = TransformOutputs(s3, transform_desc(source, "s3://progress/out/", LATER))
    assert outputs.total == 2
    assert outputs.count() == 0


def test_unreadable_inputs_leave_the_total_unknown(s3: Any) -> None:
    missing = {"S3DataType": "ManifestFile", "S3Uri": "s3://progress/missing.manifest"}
    outputs = TransformOutputs(s3, transform_desc(missing, "s3://progress/out", LONG_AGO))
    assert outputs.total is None
    assert outputs.count() == 2  # every `.out` under the output path written since the start
    s3.put_object(Bucket="progress", Key="bad.manifest", Body=b"not json")
    bad = {"S3DataType": "ManifestFile", "S3Uri": "s3://progress/bad.manifest"}
    assert TransformOutputs(s3, transform_desc(bad, "s3://progress/out", LONG_AGO)).total is None


def test_tuning_counts() -> None:
    desc: dict[str, Any] = {
        "HyperParameterTuningJobConfig": {"ResourceLimits": {"MaxNumberOfTrainingJobs": 6}},
        "TrainingJobStatusCounters": {
            "Completed": 2,
            "InProgress": 2,
            "RetryableError": 0,
            "NonRetryableError": 1,
            "Stopped": 1,
        },
    }
    assert tuning_counts(desc) == (4, 6, "2 running")
    desc["BestTrainingJob"] = {
        "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "loss", "Value": 0.125}
    }
    assert tuning_counts(desc) == (4, 6, "2 running, best loss 0.125")
    desc["HyperParameterTuningJobConfig"]["ResourceLimits"] = {}  # a completion criterion only
    assert tuning_counts(desc)[1] is None


def test_bar_prints_its_final_state_once_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with Bar("Transform job t", total=None) as bar:
        bar.update(1, "InProgress")
        bar.update(3, "Completed", total=3)
    out = capsys.readouterr().out
    assert out.count("Transform job t") == 1
    assert "3/3" in out
    assert "Completed" in out
