"""The README's ways in (the AWS CLI, boto3, the SageMaker SDK, the opensage SDK), run as written
against a real server with only the environment the README sets: they must stay true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Clients, aws_user_env
from tests.integration.hosting import SCALE_MODEL_PY

ROOT = Path(__file__).resolve().parents[2]
SDK_PYTHON = ROOT / ".venv-sagemaker" / "bin" / "python"
SNIPPET = re.compile(r"<!-- snippet: (\w+) -->\n```(\w+)\n(.*?)```", re.S)


def snippets() -> dict[str, str]:
    return {name: code for name, _lang, code in SNIPPET.findall((ROOT / "README.md").read_text())}


def run(command: list[str], server: Clients, cwd: Path) -> str:
    env = aws_user_env(cwd, server.endpoint)
    env.update(  # the README's exports: any credentials do
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        OPENSAGE_ENDPOINT=server.endpoint,
    )
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_the_four_ways_in_run_as_written(process_server: Clients, tmp_path: Path) -> None:
    code = snippets()
    assert set(code) == {"cli", "boto3", "sagemaker", "opensage"}
    # the CLI snippet's export points at the default port; the test's server has its own
    cli = code["cli"].replace("export AWS_ENDPOINT_URL=http://127.0.0.1:8080 ", "export ")
    listing = run(["bash", "-euo", "pipefail", "-c", cli], process_server, tmp_path)
    assert "rows.csv" in listing
    assert '"TrainingJobSummaries": []' in listing

    printed = run([sys.executable, "-c", code["boto3"]], process_server, tmp_path)
    assert printed.splitlines() == ["['data/more.csv', 'data/rows.csv']", "[]"]

    (tmp_path / "train.py").write_text(SCALE_MODEL_PY)
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "rows.csv").write_text("1,2\n")
    printed = run([sys.executable, "-c", code["opensage"]], process_server, tmp_path)
    lines = printed.strip().splitlines()
    model_data, progress, prediction = lines[-3:]
    assert re.fullmatch(r"-*!", progress)  # deploy's dash per poll, as the SageMaker SDK prints
    assert model_data.startswith("s3://")
    assert model_data.endswith("/output/model.tar.gz")
    assert prediction == "[[1.0, 2.4]]"
    assert "train channel: ['rows.csv']" in printed  # fit's logs: upload_data's file arrived

    if not SDK_PYTHON.exists():
        pytest.skip("the SageMaker SDK's venv is missing: run `make sdk-venv`")
    printed = run([str(SDK_PYTHON), "-c", code["sagemaker"]], process_server, tmp_path)
    assert printed.strip().splitlines()[-1].startswith("s3://my-bucket/")
    jobs = process_server.sagemaker.list_training_jobs()["TrainingJobSummaries"]
    assert [j["TrainingJobStatus"] for j in jobs] == ["Completed", "Completed"]  # both SDKs
