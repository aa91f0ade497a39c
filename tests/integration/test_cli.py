"""The CLI: usage errors, not tracebacks; jobs commands against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opensage.sdk import CategoricalParameter, Estimator, HyperparameterTuner, Session
from tests.integration.conftest import Clients, backend_env, python_job, wait_final

LEVEL_SCRIPT = """
import json, os
level = int(json.loads(os.environ["SM_HPS"])["level"])
if level < 3:
    print("score: %d" % level)
"""


def opensage(*args: str, endpoint: str | None = None, home: Path | None = None) -> tuple[int, str]:
    env = dict(os.environ)
    if endpoint:
        env["OPENSAGE_ENDPOINT"] = endpoint
    if home:
        env["OPENSAGE_HOME"] = str(home)
        env.update(backend_env(home))
    done = subprocess.run(
        [sys.executable, "-m", "opensage.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def test_server_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    code, output = opensage("server", "--host", "0.0.0.0", "--port", "1", home=tmp_path)
    assert code == 1
    assert "Refusing to listen on 0.0.0.0" in output
    assert "Traceback" not in output


def test_jobs_commands(server: Clients) -> None:
    python_job(server, "cli-job", "print('from the cli job')")
    wait_final(server, "cli-job")
    code, output = opensage("jobs", "list", endpoint=server.endpoint)
    assert code == 0
    assert "cli-job" in output
    code, output = opensage("jobs", "logs", "cli-job", endpoint=server.endpoint)
    assert (code, output.strip()) == (0, "from the cli job")
    code, output = opensage("jobs", "describe", "cli-job", endpoint=server.endpoint)
    assert code == 0
    assert '"TrainingJobStatus": "Completed"' in output
    python_job(server, "cli-stop", "import time; time.sleep(300)")
    code, output = opensage("jobs", "stop", "cli-stop", endpoint=server.endpoint)
    assert (code, output.strip()) == (0, "Stopping cli-stop")
    assert wait_final(server, "cli-stop")["TrainingJobStatus"] == "Stopped"
    code, output = opensage("jobs", "describe", "missing-job", endpoint=server.endpoint)
    assert code == 1
    assert output.strip() == "opensage: ValidationException: Requested resource not found."


def test_tuning_commands(server: Clients, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(LEVEL_SCRIPT)
    estimator = Estimator(
        entry_point="train.py",
        source_dir=str(tmp_path),
        output_path="s3://data/cli-tuning",
        sagemaker_session=Session(endpoint_url=server.endpoint),
    )
    tuner = HyperparameterTuner(
        estimator,
        "score",
        {"level": CategoricalParameter([1, 2, 3])},
        metric_definitions=[{"Name": "score", "Regex": r"score: (\d+)"}],
        strategy="Grid",
        max_parallel_jobs=2,
    )
    tuner.fit(job_name="cli-tuning")  # level 3 never reports a score
    trials = server.sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="cli-tuning"
    )["TrainingJobSummaries"]
    level = {json.loads(t["TunedHyperParameters"]["level"]): t["TrainingJobName"] for t in trials}

    code, output = opensage("tuning", "list", endpoint=server.endpoint)
    assert code == 0
    lines = output.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "STRATEGY", "TRIALS", "BEST", "CREATED"]
    row = next(line.split() for line in lines if line.startswith("cli-tuning "))
    assert row[:5] == ["cli-tuning", "Completed", "Grid", "3/3", "2"]

    code, output = opensage("tuning", "describe", "cli-tuning", endpoint=server.endpoint)
    assert code == 0
    lines = output.splitlines()
    settings = {line[:16].strip(): line[16:] for line in lines[: lines.index("")]}
    assert settings["Status"] == "Completed"
    assert settings["Strategy"] == "Grid"
    assert settings["Objective"] == "Maximize score"
    assert settings["Ranges"] == 'level in "1", "2", "3"'
    assert settings["Best"] == f"{level['2']} (2)"
    trial_table = [line.split() for line in lines[lines.index("") + 1 :]]
    assert trial_table == [
        ["TRIAL", "STATUS", "OBJECTIVE", "level"],
        [level["2"], "Completed", "2", '"2"'],  # best first
        [level["1"], "Completed", "1", '"1"'],
        [level["3"], "Completed", "-", '"3"'],  # no objective: last
    ]
    code, output = opensage("tuning", "describe", "missing-tuning", endpoint=server.endpoint)
    assert code == 1
    assert output.strip() == (
        "opensage: ResourceNotFound: Amazon SageMaker can't find a tuning job with name "
        "missing-tuning"
    )


def test_unreachable_server_is_a_usage_error() -> None:
    code, output = opensage("jobs", "list", endpoint="http://127.0.0.1:9")
    assert code == 1
    assert "cannot reach the server" in output
    assert "Traceback" not in output


def test_one_server_per_home(tmp_path: Path) -> None:
    from opensage.app import EmbeddedServer, HomeInUseError
    from tests.integration.conftest import settings_for

    first = EmbeddedServer(settings_for(tmp_path)).start()
    try:
        code, output = opensage("server", "--port", "1", home=tmp_path)
        assert code == 1
        assert f"{tmp_path} is in use by another opensage server (pid {os.getpid()})" in output
        with pytest.raises(HomeInUseError):
            EmbeddedServer(settings_for(tmp_path)).start()
    finally:
        first.stop()
    second = EmbeddedServer(settings_for(tmp_path)).start()  # free again once the first stopped
    second.stop()


def test_images_commands(tmp_path: Path) -> None:
    """load (docker save and OCI layout), list, rm: the store under OPENSAGE_HOME, no server."""
    from tests.images.builder import Entry, Image, build_layout, docker_save

    image = Image([[Entry("app", folder=True), Entry("app/run", b"#!/bin/sh\n", 0o755)]],
                  {"Entrypoint": ["/app/run"]})  # fmt: skip
    docker_save(tmp_path / "saved.tar", image, ["demo/app:1"])
    build_layout(tmp_path / "layout", image, "latest")
    home = tmp_path / "home"
    code, out = opensage("images", "load", str(tmp_path / "saved.tar"), home=home)
    assert code == 0, out
    assert out.startswith("Loaded demo/app:1 (sha256:")
    code, out = opensage("images", "load", str(tmp_path / "layout"), home=home)
    assert code == 1
    assert "--name" in out
    code, out = opensage("images", "load", str(tmp_path / "layout"), "--name", "demo/app:2",
                         home=home)  # fmt: skip
    assert code == 0, out
    code, out = opensage("images", "list", home=home)
    lines = out.splitlines()
    assert lines[0].split() == ["REPOSITORY:TAG", "IMAGE", "ID", "SIZE", "ENTRYPOINT"]
    assert [line.split()[0] for line in lines[1:]] == ["demo/app:1", "demo/app:2"]
    assert len({line.split()[1] for line in lines[1:]}) == 1  # one image id for both
    assert lines[1].endswith("/app/run")
    code, out = opensage("images", "rm", "demo/app:1", "demo/app:2", home=home)
    assert code == 0, out
    assert "deleted" in out.splitlines()[-1]
    code, out = opensage("images", "rm", "demo/app:1", home=home)
    assert code == 1
    assert "not in the store" in out
    code, out = opensage("images", "load", str(tmp_path / "missing.tar"), home=home)
    assert code == 1
    assert "does not exist" in out


def test_resource_commands_and_invoke(server: Clients) -> None:
    if server.runtime != "process":
        pytest.skip("the CLI reads the API alike under both runtimes")
    from tests.integration.hosting import delete, deploy, variant, xgboost_model

    model = xgboost_model(server, "cli-model")
    config = deploy(server, "cli-endpoint", [variant(model)])
    try:
        code, output = opensage("endpoints", "list", endpoint=server.endpoint)
        assert code == 0
        header, row = output.splitlines()[:2]
        assert header.split() == ["NAME", "STATUS", "CREATED", "MODIFIED"]
        assert row.split()[:2] == ["cli-endpoint", "InService"]
        code, output = opensage("endpoints", "describe", "cli-endpoint", endpoint=server.endpoint)
        assert json.loads(output)["EndpointConfigName"] == config
        code, output = opensage(
            "endpoints", "invoke", "cli-endpoint", "--body", "3,0,0,0,0", endpoint=server.endpoint
        )
        assert code == 0
        assert float(output.strip()) > 0.5
        code, output = opensage("models", "list", endpoint=server.endpoint)
        assert [line.split()[0] for line in output.splitlines()] == ["NAME", "cli-model"]
        code, output = opensage("endpoint-configs", "list", "--name-contains", "cli-endpoint",
                                endpoint=server.endpoint)  # fmt: skip
        assert [line.split()[0] for line in output.splitlines()] == ["NAME", config]
        code, output = opensage("transforms", "list", endpoint=server.endpoint)
        assert (code, output.strip()) == (0, "No batch transform jobs.")
        code, output = opensage("endpoints", "invoke", "missing", "--body", "1",
                                endpoint=server.endpoint)  # fmt: skip
        assert code == 1
        assert output.strip() == (
            "opensage: ValidationError: Endpoint missing of account 123456789012 not found."
        )
        assert "Traceback" not in output
        code, output = opensage("endpoints", "invoke", "cli-endpoint", "--body", "@/no/such.csv",
                                endpoint=server.endpoint)  # fmt: skip
        assert (code, output.strip()) == (
            1,
            "opensage: Cannot read the request body /no/such.csv: No such file or directory",
        )
    finally:
        delete(server, "cli-endpoint")


def test_jobs_logs_follow_prints_until_the_job_ends(server: Clients) -> None:
    if server.runtime != "process":
        pytest.skip("the CLI reads the API alike under both runtimes")
    script = "import time; [(print('line', i, flush=True), time.sleep(0.5)) for i in range(3)]"
    python_job(server, "cli-follow", script)
    code, output = opensage("jobs", "logs", "--follow", "cli-follow", endpoint=server.endpoint)
    assert code == 0
    lines = output.splitlines()
    assert lines[:3] == ["line 0", "line 1", "line 2"]
    assert lines[-1] == "cli-follow: Completed"
