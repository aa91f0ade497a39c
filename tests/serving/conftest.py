"""Shared fixtures for the model server tests: tiny boosters, model trees, an HTTP client.

Boosters are trained once per session on a few dozen rows for a few rounds; they are written the
way the training program writes them (`save_raw("ubj")` to `<model_dir>/xgboost-model`).
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

N_FEATURES = 4
PING_DEADLINE_SECONDS = 60.0


@dataclass(frozen=True)
class Trained:
    """A tiny booster and the rows it can be asked about."""

    booster: xgb.Booster
    x: np.ndarray[Any, Any]

    def expected(self, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.asarray(self.booster.inplace_predict(rows.astype(np.float64)))

    def write(self, model_dir: Path) -> Path:
        model_dir.mkdir(parents=True, exist_ok=True)
        path = model_dir / "xgboost-model"
        path.write_bytes(bytes(self.booster.save_raw(raw_format="ubj")))
        return path


def train(objective: str, labels: np.ndarray[Any, Any], **params: Any) -> Trained:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(labels.shape[0], N_FEATURES))
    dtrain = xgb.DMatrix(x, label=labels)
    booster = xgb.train(
        {"objective": objective, "seed": 0, "nthread": 1, "max_depth": 2, **params}, dtrain, 3
    )
    return Trained(booster, x)


@pytest.fixture(scope="session")
def binary() -> Trained:
    return train("binary:logistic", np.array([0.0, 1.0] * 20))


@pytest.fixture(scope="session")
def softprob() -> Trained:
    return train("multi:softprob", np.array([0.0, 1.0, 2.0] * 10), num_class=3)


@pytest.fixture(scope="session")
def softmax() -> Trained:
    return train("multi:softmax", np.array([0.0, 1.0, 2.0] * 10), num_class=3)


@pytest.fixture(scope="session")
def regression() -> Trained:
    return train("reg:squarederror", np.linspace(0.0, 5.0, 40))


def csv_rows(rows: np.ndarray[Any, Any]) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows).encode()


class UnixHTTPConnection(http.client.HTTPConnection):
    """`http.client` over a Unix domain socket, as the control plane talks to the server."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]


class ServerProcess:
    """`python -m opensage.serving serve` as the platform starts it: env vars and a base dir."""

    def __init__(self, base: Path, env: Mapping[str, str], socket_path: str | None = None):
        self.socket_path = socket_path
        self.port = None if socket_path else free_port()
        full_env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "OMP_NUM_THREADS": "1"}
        for name in ("OPENSAGE_SERVING_HANDLER", "SAGEMAKER_PROGRAM", "SAGEMAKER_BATCH"):
            full_env.pop(name, None)
        full_env.update(env)
        if socket_path:
            full_env["OPENSAGE_SERVING_SOCKET"] = socket_path
        else:
            full_env.pop("OPENSAGE_SERVING_SOCKET", None)
            full_env["SAGEMAKER_BIND_TO_PORT"] = str(self.port)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opensage.serving", "serve"],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def connection(self) -> http.client.HTTPConnection:
        if self.socket_path:
            return UnixHTTPConnection(self.socket_path)
        assert self.port is not None
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Reply:
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            return Reply(response.status, response.read(), dict(response.getheaders()))
        finally:
            conn.close()

    def wait_ready(self) -> None:
        """Poll `/ping` until 200; waiting on the process between tries notices an early exit."""
        deadline = time.monotonic() + PING_DEADLINE_SECONDS
        while True:
            try:
                if self.request("GET", "/ping").status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no /ping 200 within {PING_DEADLINE_SECONDS} s")
            try:
                code = self.proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            _, stderr = self.proc.communicate()
            raise AssertionError(f"server exited {code} before it was ready:\n{stderr}")

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        """Wait for the exit; return the code and stderr."""
        _, stderr = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: Unix socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="oss-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """Started servers, killed at the end of the test if a failed assertion left them running."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.kill()
