"""The README's main job: the quickstart, and the SDK's embedded server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from opensage.storage import S3Uri
from tests.integration.conftest import backend_env, storage_for


def test_quickstart_runs_to_the_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENSAGE_ENDPOINT"}
    env["OPENSAGE_HOME"] = str(tmp_path)
    env.update(backend_env(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "opensage.cli.main", "quickstart"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Completed - Training job completed" in out
    assert "validation:auc" in out
    assert "#011validation-auc:" in out  # the job's log lines, streamed
    assert "/output/model.tar.gz" in out
    assert "held-out rows, accuracy" in out
    accuracy = float(out.split("held-out rows, accuracy ", 1)[1].split()[0])
    assert accuracy > 0.9
    assert "Endpoint deleted." in out
    assert "rows scored into s3://" in out  # the batch transform of the same rows
    batch_accuracy = float(out.rsplit("accuracy ", 1)[1].split()[0])
    assert batch_accuracy == accuracy  # the same model on the same rows
    assert not list((tmp_path / "instances").glob("*"))  # no model server left behind
    assert storage_for(tmp_path).list_buckets()  # the objects where the settings put them


def test_session_starts_an_embedded_server(tmp_path: Path) -> None:
    code = (
        "from opensage.sdk import Session\n"
        "s = Session()\n"
        "uri = s.upload_data('payload.txt', key_prefix='emb')\n"
        "print(uri, s.endpoint_url)\n"
        "s.close()\n"
    )
    (tmp_path / "payload.txt").write_text("hi")
    env = {k: v for k, v in os.environ.items() if k != "OPENSAGE_ENDPOINT"}
    env["OPENSAGE_HOME"] = str(tmp_path / "home")
    env.update(backend_env(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    uri, endpoint = done.stdout.split()
    assert uri == "s3://sagemaker-us-east-1-123456789012/emb/payload.txt"
    assert endpoint.startswith("http://127.0.0.1:")
    stored = storage_for(tmp_path / "home").get_bytes(S3Uri.parse(uri))
    assert stored == b"hi"
