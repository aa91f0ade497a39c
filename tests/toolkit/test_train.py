"""`python -m opensage.toolkit train` end to end, as a training job runs it."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opensage.contract import MLPaths
from opensage.toolkit.environment import TRAINING_ENV_KEYS, num_gpus
from opensage.toolkit.errors import ExecuteUserScriptError
from opensage.toolkit.process import ERROR_MESSAGE_CHARS, error_message

JOB = "job-1"
HYPERPARAMETERS = {
    "epochs": "2",
    "lr": "0.001",
    "optimizer": '"adam"',
    "sagemaker_program": '"train.py"',
    "sagemaker_submit_directory": '"s3://b/k/sourcedir.tar.gz"',
}
RESOURCE_CONFIG: dict[str, Any] = {
    "current_host": "algo-1",
    "hosts": ["algo-1"],
    "current_instance_type": "ml.m5.large",
    "current_group_name": "homogeneousCluster",
    "instance_groups": [
        {
            "instance_group_name": "homogeneousCluster",
            "instance_type": "ml.m5.large",
            "hosts": ["algo-1"],
        }
    ],
    "network_interface_name": "eth0",
}
INPUT_DATA_CONFIG = {
    "train": {
        "ContentType": "text/csv",
        "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated",
        "RecordWrapperType": "None",
    },
    "validation": {"TrainingInputMode": "File"},
}
DUMP_SCRIPT = """\
import json, os, sys
from pathlib import Path
dump = {"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd()}
Path(os.environ["SM_MODEL_DIR"], "dump.json").write_text(json.dumps(dump))
print("trained")
"""


def compact(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def make_job(
    base: Path,
    code: dict[str, str] | None = None,
    hyperparameters: dict[str, str] | None = None,
) -> MLPaths:
    paths = MLPaths(base)
    for directory in paths.directories():
        directory.mkdir(parents=True, exist_ok=True)
    hps = HYPERPARAMETERS if hyperparameters is None else hyperparameters
    paths.hyperparameters_file.write_text(json.dumps(hps))
    paths.resource_config_file.write_text(json.dumps(RESOURCE_CONFIG))
    paths.input_data_config_file.write_text(json.dumps(INPUT_DATA_CONFIG))
    for name, text in (code or {}).items():
        (paths.code / name).write_text(text)
    return paths


def toolkit_env(paths: MLPaths, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SM_", "SAGEMAKER_", "PYTHONPATH", "PIP_"))
    }
    env.update(SAGEMAKER_BASE_DIR=str(paths.base), TRAINING_JOB_NAME=JOB, MY_VAR="kept")
    env.update(extra)
    return env


def run_toolkit(paths: MLPaths, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opensage.toolkit", "train"],
        env=toolkit_env(paths, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def failure(paths: MLPaths) -> str:
    return paths.failure_file.read_text()


def test_runs_the_script_with_args_and_every_sm_variable(tmp_path: Path) -> None:
    paths = make_job(tmp_path, {"train.py": DUMP_SCRIPT})
    result = run_toolkit(paths)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invoking user script" in result.stdout
    assert "trained" in result.stdout
    assert paths.success_file.exists()
    assert not paths.failure_file.exists()

    dump = json.loads((paths.model / "dump.json").read_text())
    assert dump["argv"] == ["train.py", "--epochs", "2", "--lr", "0.001", "--optimizer", "adam"]
    assert dump["cwd"] == str(paths.code)
    env: dict[str, str] = dump["env"]
    base = str(tmp_path)
    hps = {"epochs": 2, "lr": 0.001, "optimizer": "adam"}
    user_args = ["--epochs", "2", "--lr", "0.001", "--optimizer", "adam"]
    groups_dict = {"homogeneousCluster": RESOURCE_CONFIG["instance_groups"][0]}
    channel_dirs = {
        "train": f"{base}/input/data/train",
        "validation": f"{base}/input/data/validation",
    }
    expected = {
        "SM_MODEL_DIR": f"{base}/model",
        "SM_CHANNELS": '["train","validation"]',
        "SM_CHANNEL_TRAIN": channel_dirs["train"],
        "SM_CHANNEL_VALIDATION": channel_dirs["validation"],
        "SM_HPS": '{"epochs":2,"lr":0.001,"optimizer":"adam"}',
        "SM_HP_EPOCHS": "2",
        "SM_HP_LR": "0.001",
        "SM_HP_OPTIMIZER": "adam",
        "SM_USER_ARGS": '["--epochs","2","--lr","0.001","--optimizer","adam"]',
        "SM_CURRENT_HOST": "algo-1",
        "SM_HOSTS": '["algo-1"]',
        "SM_CURRENT_INSTANCE_TYPE": "ml.m5.large",
        "SM_CURRENT_INSTANCE_GROUP": "homogeneousCluster",
        "SM_CURRENT_INSTANCE_GROUP_HOSTS": '["algo-1"]',
        "SM_INSTANCE_GROUPS": '["homogeneousCluster"]',
        "SM_INSTANCE_GROUPS_DICT": compact(groups_dict),
        "SM_DISTRIBUTION_INSTANCE_GROUPS": "[]",
        "SM_IS_HETERO": "false",
        "SM_NETWORK_INTERFACE_NAME": "eth0",
        "SM_NUM_CPUS": str(os.cpu_count()),
        "SM_NUM_GPUS": str(num_gpus()),
        "SM_NUM_NEURONS": "0",
        "SM_LOG_LEVEL": "20",
        "SM_OUTPUT_DIR": f"{base}/output",
        "SM_OUTPUT_DATA_DIR": f"{base}/output/data",
        "SM_OUTPUT_INTERMEDIATE_DIR": f"{base}/output/intermediate",
        "SM_INPUT_DIR": f"{base}/input",
        "SM_INPUT_CONFIG_DIR": f"{base}/input/config",
        "SM_RESOURCE_CONFIG": compact(RESOURCE_CONFIG),
        "SM_INPUT_DATA_CONFIG": compact(INPUT_DATA_CONFIG),
        "SM_FRAMEWORK_PARAMS": "{}",
        "SM_FRAMEWORK_MODULE": "",
        "SM_USER_ENTRY_POINT": "train.py",
        "SM_MODULE_NAME": "train",
        "SM_MODULE_DIR": "s3://b/k/sourcedir.tar.gz",
    }
    sm = {k: v for k, v in env.items() if k.startswith("SM_") and k != "SM_TRAINING_ENV"}
    assert sm == expected

    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert list(training_env) == sorted(TRAINING_ENV_KEYS)
    assert training_env == {
        "additional_framework_parameters": {},
        "channel_input_dirs": channel_dirs,
        "current_host": "algo-1",
        "current_instance_group": "homogeneousCluster",
        "current_instance_group_hosts": ["algo-1"],
        "current_instance_type": "ml.m5.large",
        "distribution_hosts": [],
        "distribution_instance_groups": [],
        "framework_module": None,
        "hosts": ["algo-1"],
        "hyperparameters": hps,
        "input_config_dir": f"{base}/input/config",
        "input_data_config": INPUT_DATA_CONFIG,
        "input_dir": f"{base}/input",
        "instance_groups": ["homogeneousCluster"],
        "instance_groups_dict": groups_dict,
        "is_hetero": False,
        "is_master": True,
        "is_modelparallel_enabled": None,
        "is_smddpmprun_installed": False,
        "is_smddprun_installed": False,
        "job_name": JOB,
        "log_level": 20,
        "master_hostname": "algo-1",
        "model_dir": f"{base}/model",
        "module_dir": "s3://b/k/sourcedir.tar.gz",
        "module_name": "train",
        "network_interface_name": "eth0",
        "num_cpus": os.cpu_count(),
        "num_gpus": num_gpus(),
        "num_neurons": 0,
        "output_data_dir": f"{base}/output/data",
        "output_dir": f"{base}/output",
        "output_intermediate_dir": f"{base}/output/intermediate",
        "resource_config": RESOURCE_CONFIG,
        "topology": None,
        "user_entry_point": "train.py",
    }
    assert json.loads(env["SM_USER_ARGS"]) == user_args
    assert env["PYTHONPATH"].split(":")[0] == str(paths.code)
    assert env["MY_VAR"] == "kept"
    assert env["TRAINING_JOB_NAME"] == JOB
    assert env["CURRENT_HOST"] == "algo-1"


def test_a_failing_script_writes_the_toolkit_failure_text(tmp_path: Path) -> None:
    script = (
        "import sys\nprint('some stdout')\n"
        "sys.stderr.write('first line\\nValueError: bad things happened\\n')\nsys.exit(3)\n"
    )
    paths = make_job(tmp_path, {"train.py": script})
    result = run_toolkit(paths)
    assert result.returncode == 1
    assert "some stdout" in result.stdout
    assert "ValueError: bad things happened" in result.stderr
    assert failure(paths) == (
        "ExecuteUserScriptError:\nExitCode 3\n"
        'ErrorMessage "first line\nValueError: bad things happened"\n'
        f'Command "{sys.executable} train.py --epochs 2 --lr 0.001 --optimizer adam"'
    )
    assert not paths.success_file.exists()


def test_a_failure_file_written_by_the_script_wins(tmp_path: Path) -> None:
    script = (
        "import os, sys\nfrom pathlib import Path\n"
        "Path(os.environ['SM_OUTPUT_DIR'], 'failure').write_text('my own reason')\n"
        "sys.exit(2)\n"
    )
    paths = make_job(tmp_path, {"train.py": script})
    assert run_toolkit(paths).returncode == 1
    assert failure(paths) == "my own reason"


def test_a_local_sourcedir_tarball_is_extracted(tmp_path: Path) -> None:
    tarball = tmp_path / "input" / "data" / "code" / "sourcedir.tar.gz"
    tarball.parent.mkdir(parents=True)
    with tarfile.open(tarball, "w:gz") as tar:
        data = DUMP_SCRIPT.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    hps = {**HYPERPARAMETERS, "sagemaker_submit_directory": json.dumps(str(tarball))}
    paths = make_job(tmp_path, hyperparameters=hps)
    result = run_toolkit(paths)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (paths.code / "train.py").exists()
    assert json.loads((paths.model / "dump.json").read_text())["argv"][0] == "train.py"


def test_a_tarball_escaping_the_code_dir_is_refused(tmp_path: Path) -> None:
    tarball = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name in ("train.py", "../evil.py"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"#"))
    hps = {**HYPERPARAMETERS, "sagemaker_submit_directory": json.dumps(str(tarball))}
    paths = make_job(tmp_path, hyperparameters=hps)
    result = run_toolkit(paths)
    assert result.returncode == 1
    assert failure(paths).startswith("ClientError: Refusing to extract")
    assert "path traversal" in failure(paths)
    assert not (tmp_path / "evil.py").exists()
    assert not (paths.code / "train.py").exists()


def sourcedir_tarball(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@contextmanager
def fake_s3(objects: dict[str, bytes]) -> Iterator[str]:
    """A path-style S3 endpoint serving HEAD and GET of a few objects."""

    class Handler(BaseHTTPRequestHandler):
        def _object(self, with_body: bool) -> None:
            body = objects.get(self.path.split("?")[0])
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/x-tar")
            self.send_header("ETag", '"0123456789abcdef"')
            self.send_header("Last-Modified", formatdate(usegmt=True))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self._object(with_body=False)

        def do_GET(self) -> None:
            self._object(with_body=True)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join()


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "y",
    "AWS_REGION": "us-east-1",
    "AWS_MAX_ATTEMPTS": "1",
    "AWS_RETRY_MODE": "standard",
}


def test_an_s3_sourcedir_is_downloaded_when_the_code_dir_is_empty(tmp_path: Path) -> None:
    tarball = sourcedir_tarball({"train.py": DUMP_SCRIPT})
    paths = make_job(tmp_path)
    with fake_s3({"/b/k/sourcedir.tar.gz": tarball}) as endpoint:
        result = run_toolkit(paths, S3_ENDPOINT_URL=endpoint, **S3_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (paths.code / "train.py").read_text() == DUMP_SCRIPT
    assert json.loads((paths.model / "dump.json").read_text())["argv"][0] == "train.py"


def test_an_s3_download_failure_is_reported(tmp_path: Path) -> None:
    paths = make_job(tmp_path)
    result = run_toolkit(paths, S3_ENDPOINT_URL="http://127.0.0.1:9", **S3_ENV)
    assert result.returncode == 1
    assert failure(paths).startswith(
        "ClientError: Failed to download the user code s3://b/k/sourcedir.tar.gz "
        "from http://127.0.0.1:9"
    )


def test_a_shell_entry_point_runs_with_quoted_args(tmp_path: Path) -> None:
    script = '#!/bin/sh\nprintf "%s\\n" "$@" > "$SM_MODEL_DIR/args.txt"\n'
    hps = {"epochs": "2", "msg": '"hello world"', "sagemaker_program": '"run.sh"'}
    paths = make_job(tmp_path, {"run.sh": script}, hyperparameters=hps)
    result = run_toolkit(paths)
    assert result.returncode == 0, result.stdout + result.stderr
    args = (paths.model / "args.txt").read_text().splitlines()
    assert args == ["--epochs", "2", "--msg", "hello world"]


def test_a_missing_program_is_a_client_error(tmp_path: Path) -> None:
    hps = {k: v for k, v in HYPERPARAMETERS.items() if k != "sagemaker_program"}
    paths = make_job(tmp_path, {"train.py": DUMP_SCRIPT}, hyperparameters=hps)
    assert run_toolkit(paths).returncode == 1
    assert failure(paths).startswith("ClientError: No user entry point")


def test_sagemaker_program_env_overrides(tmp_path: Path) -> None:
    paths = make_job(tmp_path, {"other.py": DUMP_SCRIPT, "train.py": "raise SystemExit(9)"})
    assert run_toolkit(paths, SAGEMAKER_PROGRAM="other.py").returncode == 0
    assert json.loads((paths.model / "dump.json").read_text())["argv"][0] == "other.py"


def test_a_failed_requirements_install_is_a_client_error(tmp_path: Path) -> None:
    code = {"train.py": DUMP_SCRIPT, "requirements.txt": "not a valid requirement ===!!!\n"}
    paths = make_job(tmp_path, code)
    result = run_toolkit(paths, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    assert result.returncode == 1
    text = failure(paths)
    assert text.startswith("InstallRequirementsError:\nExitCode ")
    assert "requirement" in text.split("ErrorMessage")[1].lower()
    assert text.endswith(f'Command "{sys.executable} -m pip install -r requirements.txt"')
    assert not (paths.model / "dump.json").exists()


def test_a_broken_config_is_a_framework_error(tmp_path: Path) -> None:
    paths = make_job(tmp_path, {"train.py": DUMP_SCRIPT})
    paths.resource_config_file.write_text("{not json")
    assert run_toolkit(paths).returncode == 1
    assert failure(paths).startswith("Framework Error: \nTraceback (most recent call last):")


def test_usage(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "opensage.toolkit", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "usage" in result.stderr


def start_and_wait_for_child(paths: MLPaths) -> tuple[subprocess.Popen[bytes], int]:
    toolkit = subprocess.Popen(
        [sys.executable, "-m", "opensage.toolkit", "train"],
        env=toolkit_env(paths),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file = paths.model / "pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        if time.monotonic() > deadline or toolkit.poll() is not None:
            toolkit.kill()
            toolkit.wait()
            pytest.fail("the user script never started")
        time.sleep(0.02)
    return toolkit, int(pid_file.read_text())


SLEEPER = """\
import os, signal, sys, time
from pathlib import Path
model = Path(os.environ["SM_MODEL_DIR"])
if os.environ.get("HANDLE") == "1":
    def on_term(signum, frame):
        (model / "terminated").write_text(str(signum))
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
(model / "pid.tmp").write_text(str(os.getpid()))
(model / "pid.tmp").rename(model / "pid")
time.sleep(60)
"""


def test_sigterm_is_forwarded_and_a_graceful_exit_succeeds(tmp_path: Path) -> None:
    paths = make_job(tmp_path, {"train.py": "import os\nos.environ['HANDLE'] = '1'\n" + SLEEPER})
    toolkit, _ = start_and_wait_for_child(paths)
    toolkit.send_signal(signal.SIGTERM)
    assert toolkit.wait(timeout=30) == 0
    assert (paths.model / "terminated").read_text() == str(int(signal.SIGTERM))
    assert paths.success_file.exists()


def test_sigterm_stops_the_child(tmp_path: Path) -> None:
    paths = make_job(tmp_path, {"train.py": SLEEPER})
    toolkit, child_pid = start_and_wait_for_child(paths)
    toolkit.send_signal(signal.SIGTERM)
    assert toolkit.wait(timeout=30) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)
    assert not paths.failure_file.exists()
    assert not paths.success_file.exists()


def test_error_message_keeps_the_end_of_stderr() -> None:
    lines = [f"line {i}" for i in range(1000)]
    message = error_message("\n".join(lines).encode())
    assert len(message) <= ERROR_MESSAGE_CHARS
    assert message.endswith("line 999")
    assert message.splitlines()[0] in lines  # starts on a whole line
    assert error_message(b"  short\n") == "short"
    assert error_message(b"\xff bad utf-8") == "\ufffd bad utf-8"


def test_failure_text_fits_in_failure_reason() -> None:
    message = error_message(("x" * 50 + "\n").encode() * 200)
    text = ExecuteUserScriptError("/usr/bin/python train.py", 1, message).failure_text()
    assert len("AlgorithmError: " + text.split('\nCommand "')[0]) <= 1024
