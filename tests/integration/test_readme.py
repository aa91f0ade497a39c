"""The README's ways in (the AWS CLI, boto3, the SageMaker SDK, the opensage SDK), run as written
against a real server with only the environment the README sets: they must stay true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opensage.app import EmbeddedServer
from tests.integration.conftest import Clients, make_clients, settings_for

ROOT = Path(__file__).resolve().parents[2]
SDK_PYTHON = ROOT / ".venv-sagemaker" / "bin" / "python"
SNIPPET = re.compile(r"<!-- snippet: (\w+) -->\n```(\w+)\n(.*?)```", re.S)


TRAIN_PY = """
import json, os


def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        return json.load(f)


def predict_fn(data, model):
    return data * model["scale"]


if __name__ == "__main__":
    assert os.listdir(os.environ["SM_CHANNEL_TRAIN"]) == ["rows.csv"]
    scale = float(json.loads(os.environ["SM_HPS"])["scale"])
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
        json.dump({"scale": scale}, f)
"""


def snippets() -> dict[str, str]:
    return {name: code for name, _lang, code in SNIPPET.findall((ROOT / "README.md").read_text())}


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    home = tmp_path_factory.mktemp("opensage-home-readme")
    embedded = EmbeddedServer(settings_for(home, "process")).start()
    yield make_clients(embedded.endpoint_url, "process", home)
    embedded.stop()


def run(command: list[str], server: Clients, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENSAGE_"))}
    config = cwd / "sagemaker-config.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\n"
        "SageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
    )
    env.update(
        AWS_ENDPOINT_URL=server.endpoint,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        HOME=str(cwd),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        OPENSAGE_ENDPOINT=server.endpoint,
        SAGEMAKER_USER_CONFIG_OVERRIDE=str(config),
        SAGEMAKER_SUPPRESS_V2_WARNING="1",
    )
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_the_three_ways_in_run_as_written(readme_server: Clients, tmp_path: Path) -> None:
    code = snippets()
    assert set(code) == {"cli", "boto3", "sagemaker", "opensage"}
    # the CLI snippet's export points at the default port; the test's server has its own
    cli = code["cli"].replace("export AWS_ENDPOINT_URL=http://127.0.0.1:8080 ", "export ")
    listing = run(["bash", "-euo", "pipefail", "-c", cli], readme_server, tmp_path)
    assert "rows.csv" in listing
    assert '"TrainingJobSummaries": []' in listing

    printed = run([sys.executable, "-c", code["boto3"]], readme_server, tmp_path)
    assert printed.splitlines() == ["['data/more.csv', 'data/rows.csv']", "[]"]

    (tmp_path / "train.py").write_text(TRAIN_PY)
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "rows.csv").write_text("1,2\n")
    printed = run([sys.executable, "-c", code["opensage"]], readme_server, tmp_path)
    lines = printed.strip().splitlines()
    model_data, progress, prediction = lines[-3:]
    assert progress == "-!"  # deploy's progress dots, as the SageMaker SDK prints them
    assert model_data.startswith("s3://")
    assert model_data.endswith("/output/model.tar.gz")
    assert prediction == "[[1.0, 2.4]]"

    if not SDK_PYTHON.exists():
        pytest.skip("the SageMaker SDK's venv is missing: run `make sdk-venv`")
    printed = run([str(SDK_PYTHON), "-c", code["sagemaker"]], readme_server, tmp_path)
    assert printed.strip().splitlines()[-1].startswith("s3://my-bucket/")
    jobs = readme_server.sagemaker.list_training_jobs()["TrainingJobSummaries"]
    assert [j["TrainingJobStatus"] for j in jobs] == ["Completed", "Completed"]  # both SDKs
