"""Jobs on several instances: one /opt/ml tree and program per host, channels replicated or
sharded by S3 key (in File and Pipe mode), one log stream per host, and all-or-nothing results."""

from __future__ import annotations

import json

from tests.integration.conftest import Clients, log_messages, python_job, s3_channel, wait_final

RUN = (
    "import os, runpy; runpy.run_path(os.environ.get('SAGEMAKER_BASE_DIR', '/opt/ml') + "
    "'/input/data/code/main.py', run_name='__main__')"
)
REPORT = """
import json, os, pathlib, sys, time
base = pathlib.Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
config = json.loads((base / "input/config/resourceconfig.json").read_text())
data = base / "input/data"
fifo = data / "piped_0"
deadline = time.monotonic() + 30
while not fifo.exists():
    assert time.monotonic() < deadline
    time.sleep(0.01)
out = {
    "host": config["current_host"],
    "hosts": config["hosts"],
    "sharded": sorted(p.name for p in (data / "sharded").iterdir()),
    "full": sorted(p.name for p in (data / "full").iterdir()),
    "piped": sorted(fifo.read_bytes().decode().split()),
}
print("RESULT " + json.dumps(out), flush=True)
"""
FAIL_ON_SECOND = """
import json, os, pathlib, time
base = pathlib.Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
host = json.loads((base / "input/config/resourceconfig.json").read_text())["current_host"]
if host == "algo-2":
    (base / "output/failure").write_text("ClientError: algo-2 found bad data")
    raise SystemExit(1)
time.sleep(60)  # algo-1 would run on; the platform stops it when algo-2 fails
"""


def job(clients: Clients, name: str, script: str, channels: list[dict[str, object]]) -> None:
    clients.s3.put_object(Bucket="data", Key=f"code/{name}/main.py", Body=script.encode())
    code = s3_channel("code", f"s3://data/code/{name}/")
    python_job(clients, name, RUN, channels=[code, *channels],
               ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2,
                               "VolumeSizeInGB": 1})  # fmt: skip


def test_sharded_and_replicated_channels(server: Clients) -> None:
    names = [f"part-{i}" for i in range(5)]
    for name in names:
        server.s3.put_object(Bucket="data", Key=f"shards/{name}", Body=f"{name}\n".encode())
    sharded = s3_channel("sharded", "s3://data/shards/")
    sharded["DataSource"]["S3DataSource"]["S3DataDistributionType"] = "ShardedByS3Key"
    piped = {**s3_channel("piped", "s3://data/shards/"), "InputMode": "Pipe"}
    piped["DataSource"] = json.loads(json.dumps(sharded["DataSource"]))
    job(server, "two-hosts", REPORT, [sharded, s3_channel("full", "s3://data/shards/"), piped])
    desc = wait_final(server, "two-hosts")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")

    lines = [m for m in log_messages(server, "two-hosts") if m.startswith("RESULT ")]
    reports = {r["host"]: r for r in (json.loads(m.removeprefix("RESULT ")) for m in lines)}
    assert set(reports) == {"algo-1", "algo-2"}
    for report in reports.values():
        assert report["hosts"] == ["algo-1", "algo-2"]
        assert report["full"] == names
    for channel in ("sharded", "piped"):
        first, second = (set(reports[h][channel]) for h in ("algo-1", "algo-2"))
        assert first, channel
        assert second, channel
        assert not first & second, channel
        assert first | second == set(names), channel

    streams = server.logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                               logStreamNamePrefix="two-hosts/")  # fmt: skip
    hosts = sorted(
        s["logStreamName"].split("/")[1].rsplit("-", 1)[0] for s in streams["logStreams"]
    )
    assert hosts == ["algo-1", "algo-2"]


def test_a_failing_host_fails_the_job_and_stops_the_others(server: Clients) -> None:
    job(server, "one-fails", FAIL_ON_SECOND, [])
    desc = wait_final(server, "one-fails")
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"] == "ClientError: algo-2 found bad data"
