"""Script mode through the SDK: the /opt/ml contract, SM_* variables, artifacts, failures, stops."""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from opensage.sdk import Estimator, Session, TrainingInput, UnexpectedStatusError
from tests.integration.conftest import Clients, log_messages, python_job, wait_final, wait_for

SPEC_SM_VARIABLES = [
    "SM_MODEL_DIR", "SM_CHANNELS", "SM_CHANNEL_TRAIN", "SM_HPS", "SM_HP_EPOCHS",
    "SM_HP_LEARNING-RATE", "SM_USER_ARGS", "SM_CURRENT_HOST", "SM_HOSTS",
    "SM_CURRENT_INSTANCE_TYPE", "SM_CURRENT_INSTANCE_GROUP", "SM_NETWORK_INTERFACE_NAME",
    "SM_NUM_CPUS", "SM_NUM_GPUS", "SM_LOG_LEVEL", "SM_OUTPUT_DIR", "SM_OUTPUT_DATA_DIR",
    "SM_OUTPUT_INTERMEDIATE_DIR", "SM_INPUT_DIR", "SM_INPUT_CONFIG_DIR", "SM_RESOURCE_CONFIG",
    "SM_INPUT_DATA_CONFIG", "SM_FRAMEWORK_PARAMS", "SM_USER_ENTRY_POINT", "SM_MODULE_NAME",
    "SM_MODULE_DIR", "SM_TRAINING_ENV", "TRAINING_JOB_NAME", "TRAINING_JOB_ARN",
]  # fmt: skip

TRAIN_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    model_dir = Path(os.environ["SM_MODEL_DIR"])
    base = model_dir.parent
    files = sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())
    report = {
        "argv": sys.argv[1:],
        "env": {k: v for k, v in os.environ.items() if k.startswith(("SM_", "TRAINING_"))},
        "files": files,
        "hyperparameters": json.loads((base / "input/config/hyperparameters.json").read_text()),
        "resourceconfig": json.loads((base / "input/config/resourceconfig.json").read_text()),
        "inputdataconfig": json.loads((base / "input/config/inputdataconfig.json").read_text()),
        "train_data": (Path(os.environ["SM_CHANNEL_TRAIN"]) / "part-0.csv").read_text(),
    }
    (model_dir / "report.json").write_text(json.dumps(report))
    (Path(os.environ["SM_OUTPUT_DATA_DIR"]) / "extra.txt").write_text("extra")
    print("epoch=1 loss=0.25")
    print("epoch=2 loss=0.125")
    """
)


@pytest.fixture(scope="module")
def session(server: Clients) -> Session:
    return Session(endpoint_url=server.endpoint)


def read_tar(session: Session, uri: str) -> dict[str, bytes]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = session.s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_script_sees_the_contract_and_model_arrives(
    session: Session, tmp_path: Path, server: Clients
) -> None:
    (tmp_path / "train.py").write_text(TRAIN_SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "part-0.csv").write_text("1,2,3\n4,5,6\n")
    train = session.upload_data(str(tmp_path / "data"), "data", "script/train")
    estimator = Estimator(
        entry_point="train.py",
        source_dir=str(tmp_path),
        hyperparameters={"epochs": 2, "learning-rate": 0.01, "optimizer": "adam"},
        output_path="s3://data/script-out",
        sagemaker_session=session,
        metric_definitions=[{"Name": "train:loss", "Regex": r"loss=(\S+)"}],
        base_job_name="script",
    )
    estimator.fit({"train": TrainingInput(train, content_type="text/csv")}, logs=False)
    desc = estimator.describe()
    job = desc["TrainingJobName"]
    assert estimator.model_data == f"s3://data/script-out/{job}/output/model.tar.gz"
    model = read_tar(session, estimator.model_data)
    report: dict[str, Any] = json.loads(model["report.json"])
    assert read_tar(session, f"s3://data/script-out/{job}/output/output.tar.gz") == {
        "extra.txt": b"extra"
    }

    assert report["argv"] == ["--epochs", "2", "--learning-rate", "0.01", "--optimizer", "adam"]
    env = report["env"]
    missing = [name for name in SPEC_SM_VARIABLES if name not in env]
    assert missing == []
    assert env["TRAINING_JOB_NAME"] == job
    assert env["SM_CHANNELS"] == '["train"]'
    assert env["SM_HPS"] == '{"epochs":2,"learning-rate":0.01,"optimizer":"adam"}'
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["job_name"] == job
    assert training_env["hosts"] == ["algo-1"]
    assert report["train_data"] == "1,2,3\n4,5,6\n"
    expected_files = {
        "input/config/hyperparameters.json",
        "input/config/resourceconfig.json",
        "input/config/inputdataconfig.json",
        "input/data/train/part-0.csv",
        "code/train.py",
    }
    assert expected_files <= set(report["files"])
    assert all(isinstance(v, str) for v in report["hyperparameters"].values())
    assert report["hyperparameters"]["sagemaker_program"] == '"train.py"'
    assert report["resourceconfig"]["current_host"] == "algo-1"
    assert report["inputdataconfig"]["train"] == {
        "ContentType": "text/csv",
        "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated",
        "RecordWrapperType": "None",
    }
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert metrics == {"train:loss": 0.125}


def test_failing_script_failure_file_becomes_reason(session: Session, tmp_path: Path) -> None:
    (tmp_path / "fail.py").write_text(
        "import os, sys\n"
        "open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w')"
        ".write('ValueError: the data has no label column')\n"
        "sys.exit(4)\n"
    )
    estimator = Estimator(
        entry_point=str(tmp_path / "fail.py"),
        output_path="s3://data/script-out",
        sagemaker_session=session,
        base_job_name="failing",
    )
    with pytest.raises(UnexpectedStatusError) as info:
        estimator.fit(logs=False)
    assert info.value.status == "Failed"
    desc = estimator.describe()
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["SecondaryStatus"] == "Failed"
    assert desc["FailureReason"] == "AlgorithmError: ValueError: the data has no label column"


def test_failing_script_without_failure_file(session: Session, tmp_path: Path) -> None:
    (tmp_path / "crash.py").write_text("import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)\n")
    estimator = Estimator(
        entry_point=str(tmp_path / "crash.py"),
        output_path="s3://data/script-out",
        sagemaker_session=session,
    )
    with pytest.raises(UnexpectedStatusError):
        estimator.fit(logs=False)
    reason = estimator.describe()["FailureReason"]
    assert reason.startswith("AlgorithmError: ExecuteUserScriptError:")
    assert "ExitCode 3" in reason
    assert "boom" in reason


def test_max_runtime_and_stop(server: Clients) -> None:
    sleeper = (
        "import os, pathlib, time; "
        "pathlib.Path(os.environ.get('SAGEMAKER_BASE_DIR', '/opt/ml'), 'model', 'partial')"
        ".write_text('kept'); "
        "print('started', flush=True); "
        "time.sleep(120)"
    )
    python_job(server, "too-long", sleeper, StoppingCondition={"MaxRuntimeInSeconds": 1})
    python_job(server, "to-stop", sleeper)
    wait_for(lambda: _events(server, "to-stop"), what="to-stop to print")
    server.sagemaker.stop_training_job(TrainingJobName="to-stop")

    stopped = wait_final(server, "to-stop")
    assert (stopped["TrainingJobStatus"], stopped["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert "Stopping" in [t["Status"] for t in stopped["SecondaryStatusTransitions"]]
    timed_out = wait_final(server, "too-long")
    assert timed_out["TrainingJobStatus"] == "Stopped"
    assert timed_out["SecondaryStatus"] == "MaxRuntimeExceeded"
    session = Session(endpoint_url=server.endpoint)
    for name in ("to-stop", "too-long"):
        model = read_tar(session, f"s3://data/output/{name}/output/model.tar.gz")
        assert model == {"partial": b"kept"}


def _events(server: Clients, job: str) -> list[dict[str, Any]]:
    group = "/aws/sagemaker/TrainingJobs"
    streams = server.logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{job}/")
    if not streams["logStreams"]:
        return []
    name = streams["logStreams"][0]["logStreamName"]
    events = server.logs.get_log_events(logGroupName=group, logStreamName=name, startFromHead=True)
    return list(events["events"])


def test_fit_streams_logs_and_download_data(
    session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "talk.py").write_text("print('hello from the job')\n")
    estimator = Estimator(
        entry_point=str(tmp_path / "talk.py"),
        output_path="s3://data/talk-out",
        sagemaker_session=session,
        base_job_name="talk",
    )
    estimator.fit(logs=True)
    printed = capsys.readouterr().out
    assert "hello from the job" in printed
    assert "Completed - Training job completed" in printed
    job = estimator.describe()["TrainingJobName"]
    files = session.download_data(str(tmp_path / "down"), "data", f"talk-out/{job}/output")
    assert sorted(Path(f).name for f in files) == ["model.tar.gz", "output.tar.gz"]


def test_stop_sends_sigterm_then_sigkill_after_the_grace_period(server: Clients) -> None:
    stubborn = (
        "import signal, time; "
        "signal.signal(signal.SIGTERM, lambda *a: print('got SIGTERM, ignoring it', flush=True)); "
        "print('ready', flush=True); "
        "time.sleep(300)"
    )
    python_job(server, "stubborn", stubborn)
    wait_for(lambda: "ready" in log_messages(server, "stubborn"), what="stubborn to start")
    server.sagemaker.stop_training_job(TrainingJobName="stubborn")
    desc = wait_final(server, "stubborn")  # the fixture's grace period is 3 s
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert log_messages(server, "stubborn") == ["ready", "got SIGTERM, ignoring it"]


def test_checkpoints_come_in_go_out_during_and_after_the_job(server: Clients) -> None:
    prefix = f"ckpt-{server.runtime}"
    server.s3.put_object(Bucket="data", Key=f"{prefix}/run/step-1", Body=b"one")
    server.s3.put_object(Bucket="data", Key=f"{prefix}/run2/untouched", Body=b"sibling")
    code = (
        "import os, pathlib, time; "
        "d = pathlib.Path(os.environ.get('SAGEMAKER_BASE_DIR', '/opt/ml'), 'checkpoints'); "
        "print('resumed from', (d / 'step-1').read_text(), flush=True); "
        "(d / 'step-2').write_text('two'); "
        "time.sleep(300)"
    )
    python_job(
        server,
        f"checkpointed-{server.runtime}",
        code,
        CheckpointConfig={"S3Uri": f"s3://data/{prefix}/run"},
    )

    def uploaded() -> bool:
        listed = server.s3.list_objects_v2(Bucket="data", Prefix=f"{prefix}/run/")
        return f"{prefix}/run/step-2" in [o["Key"] for o in listed.get("Contents", [])]

    wait_for(uploaded, what="the checkpoint to be uploaded while the job runs")
    assert (
        server.sagemaker.describe_training_job(TrainingJobName=f"checkpointed-{server.runtime}")[
            "TrainingJobStatus"
        ]
        == "InProgress"
    )
    server.sagemaker.stop_training_job(TrainingJobName=f"checkpointed-{server.runtime}")
    wait_final(server, f"checkpointed-{server.runtime}")
    assert log_messages(server, f"checkpointed-{server.runtime}") == ["resumed from one"]
    get = server.s3.get_object
    assert get(Bucket="data", Key=f"{prefix}/run/step-1")["Body"].read() == b"one"
    assert get(Bucket="data", Key=f"{prefix}/run/step-2")["Body"].read() == b"two"
    assert get(Bucket="data", Key=f"{prefix}/run2/untouched")["Body"].read() == b"sibling"
