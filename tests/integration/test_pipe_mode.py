"""Pipe mode: each channel's epochs arrive through FIFOs, with the same bytes as File mode."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import Clients, log_messages, python_job, s3_channel, wait_final

READER = """
import hashlib, json, os, pathlib, sys, time

data = pathlib.Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "input" / "data"

def fifo(name):
    path = data / name
    deadline = time.monotonic() + 30
    while not path.exists():  # the next epoch's FIFO appears once the last one is done
        assert time.monotonic() < deadline, f"{name} never appeared"
        time.sleep(0.01)
    return path

config = json.loads((data.parent / "config" / "inputdataconfig.json").read_text())
out = {"modes": {k: v["TrainingInputMode"] for k, v in config.items()}}
with open(fifo("train_0"), "rb") as f:
    out["peek"] = f.read(3).hex()  # close early: the rest of epoch 0 is dropped
for epoch in (1, 2):
    with open(fifo(f"train_{epoch}"), "rb") as f:
        out[f"epoch{epoch}"] = f.read().hex()
out["file_mode"] = sorted(p.name for p in (data / "code").iterdir())
print("RESULT " + json.dumps(out), flush=True)
"""


RUN = (
    "import os, runpy; runpy.run_path(os.environ.get('SAGEMAKER_BASE_DIR', '/opt/ml') + "
    "'/input/data/code/reader.py', run_name='__main__')"
)


def reader_job(clients: Clients, name: str, train: dict[str, object]) -> None:
    """The reader script arrives as a File-mode channel beside the Pipe-mode one."""
    clients.s3.put_object(Bucket="data", Key=f"code/{name}/reader.py", Body=READER.encode())
    code = {**s3_channel("code", f"s3://data/code/{name}/"), "InputMode": "File"}
    python_job(clients, name, RUN, channels=[train, code],
               algorithm={"TrainingInputMode": "Pipe"})  # fmt: skip


def result(clients: Clients, job: str) -> dict[str, object]:
    line = next(m for m in log_messages(clients, job) if m.startswith("RESULT "))
    return dict(json.loads(line.removeprefix("RESULT ")))


def pipe_job(clients: Clients, name: str, **channel: object) -> dict[str, object]:
    reader_job(clients, name, {**s3_channel("train", "s3://data/pipe/"), **channel})
    desc = wait_final(clients, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    return result(clients, name)


def test_pipe_epochs_carry_the_channel_bytes(server: Clients) -> None:
    parts = {"pipe/a.csv": b"1,2,3\n4,5,6\n", "pipe/b.csv": b"7,8,9\n"}
    for key, body in parts.items():
        server.s3.put_object(Bucket="data", Key=key, Body=body)
    whole = parts["pipe/a.csv"] + parts["pipe/b.csv"]

    out = pipe_job(server, "pipe-plain")
    assert bytes.fromhex(str(out["peek"])) == b"1,2"
    assert bytes.fromhex(str(out["epoch1"])) == whole == bytes.fromhex(str(out["epoch2"]))
    assert out["modes"] == {"train": "Pipe", "code": "File"}
    assert out["file_mode"] == ["reader.py"]


def test_pipe_gzip_and_shuffle(server: Clients) -> None:
    bodies = {f"pipe-gz/{i}.txt": f"object {i}\n".encode() for i in range(6)}
    for key, body in bodies.items():
        server.s3.put_object(Bucket="data", Key=key, Body=gzip.compress(body))
    train = {
        **s3_channel("train", "s3://data/pipe-gz/"),
        "CompressionType": "Gzip",
        "ShuffleConfig": {"Seed": 7},
    }
    reader_job(server, "pipe-gz", train)
    desc = wait_final(server, "pipe-gz")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    out = result(server, "pipe-gz")
    epochs = [bytes.fromhex(str(out[f"epoch{e}"])) for e in (1, 2)]
    expected = sorted(bodies.values())
    for epoch in epochs:  # every object, decompressed, each exactly once
        assert sorted(line + b"\n" for line in epoch.splitlines()) == expected
    digests = {hashlib.sha256(e).hexdigest() for e in epochs}
    assert len(digests) == 2  # re-shuffled each epoch


def test_pipe_recordio_wrapping(server: Clients) -> None:
    from opensage.formats.recordio import read_all_records

    bodies = [b"first object", b"second, a bit longer object", b"3"]
    for i, body in enumerate(bodies):
        server.s3.put_object(Bucket="data", Key=f"pipe-rio/{i}", Body=body)
    train = {**s3_channel("train", "s3://data/pipe-rio/"), "RecordWrapperType": "RecordIO"}
    reader_job(server, "pipe-rio", train)
    desc = wait_final(server, "pipe-rio")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    out = result(server, "pipe-rio")
    assert read_all_records(bytes.fromhex(str(out["epoch1"]))) == bodies


def augmented(uri: str) -> dict[str, object]:
    channel = s3_channel("train", uri)
    source = channel["DataSource"]["S3DataSource"]
    source["S3DataType"] = "AugmentedManifestFile"
    source["AttributeNames"] = ["source-ref", "label"]
    return {**channel, "RecordWrapperType": "RecordIO"}


def test_augmented_manifest_streams_attributes(server: Clients) -> None:
    from opensage.formats.recordio import read_all_records

    images = {"am/img1.jpg": b"\xff\xd8 first image", "am/img2.jpg": b"\xff\xd8 second"}
    for key, body in images.items():
        server.s3.put_object(Bucket="data", Key=key, Body=body)
    lines = [
        {"source-ref": "s3://data/am/img1.jpg", "label": 1, "other": "ignored"},
        {"source-ref": "s3://data/am/img2.jpg", "label": 0},
    ]
    manifest = "\n".join(json.dumps(line) for line in lines) + "\n"
    server.s3.put_object(Bucket="data", Key="am/train.manifest", Body=manifest.encode())
    reader_job(server, "pipe-am", augmented("s3://data/am/train.manifest"))
    desc = wait_final(server, "pipe-am")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    out = result(server, "pipe-am")
    records = read_all_records(bytes.fromhex(str(out["epoch1"])))
    assert records == [images["am/img1.jpg"], b"1", images["am/img2.jpg"], b"0"]


def test_a_malformed_manifest_fails_the_job_with_where(server: Clients) -> None:
    body = b'{"source-ref": "s3://data/am/img1.jpg", "label": 1}\n{not json\n'
    server.s3.put_object(Bucket="data", Key="am-bad/train.manifest", Body=body)
    reader_job(server, "pipe-am-bad", augmented("s3://data/am-bad/train.manifest"))
    desc = wait_final(server, "pipe-am-bad")
    assert desc["TrainingJobStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith("ClientError: Channel 'train' (Pipe mode): ")
    assert "s3://data/am-bad/train.manifest" in reason
    assert "record 1" in reason


def test_augmented_manifest_needs_pipe_mode(server: Clients) -> None:
    channel = {**augmented("s3://data/am/train.manifest"), "InputMode": "File"}
    with pytest.raises(ClientError) as exc:
        python_job(server, "am-file", "pass", channels=[channel])
    assert "Pipe input mode only" in exc.value.response["Error"]["Message"]
