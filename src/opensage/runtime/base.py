"""The runtime port: start a container program under the shim, or re-attach to one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from opensage.errors import ValidationError
from opensage.runtime.shim import process_stat, tether_of


@dataclass(frozen=True)
class ContainerSpec:
    """One host of a job: the program, its `/opt/ml` tree on the host, and its environment.

    With `root` (an image's unpacked file system) the program runs on that root instead of the
    host's, in `workdir`, with `env` as its whole environment; `serve_port` is the TCP port its
    model server listens on, which the runtime makes reachable at `<job_dir>/serving.sock`.
    """

    job_dir: Path
    run_dir: Path
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    network_isolation: bool = False
    root: Path | None = None
    workdir: str | None = None
    serve_port: int | None = None
    user: str | None = None
    """Who an image's program runs as: `uid:gid` (resolved from the image's own files) for the
    sandbox, the image's `User` as written for an engine; None: root."""
    image_id: str | None = None
    """The image's id, for a runtime that runs images by id (a container engine)."""


class Runtime(Protocol):
    name: str

    def wrap(self, spec: ContainerSpec) -> tuple[list[str], dict[str, str]]:
        """The argv and environment that run `spec.command` under this runtime."""
        ...

    def container_base(self, spec: ContainerSpec) -> str:
        """Where the program sees `spec.job_dir` (its `/opt/ml`), for paths passed in its env."""
        ...


class RunHandle:
    """A running (or finished) program, known only through the shim's files and its pids."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    @property
    def log_path(self) -> Path:
        return self.run_dir / "output.log"

    def exit_code(self) -> int | None:
        path = self.run_dir / "exit_code"
        return int(path.read_text()) if path.exists() else None

    def _pid(self, name: str) -> int | None:
        path = self.run_dir / name
        return int(path.read_text()) if path.exists() else None

    def shim_alive(self) -> bool:
        """The shim still runs: its pid exists, is no zombie, and started when ours did.

        The start time (not the command line, which reads empty while a process execs) tells
        our shim from another process that got a recycled pid.
        """
        pid = self._pid("shim.pid")
        started = self.run_dir / "shim.started"
        if pid is None or not started.exists():
            return False
        stat = process_stat(pid)
        return stat is not None and stat[0] != "Z" and stat[1] == started.read_text()

    def signal(self, sig: signal.Signals) -> None:
        pid = self._pid("child.pid")
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)


def start(runtime: Runtime, spec: ContainerSpec, *, tethered: bool = False) -> RunHandle:
    """Launch the shim detached from this process, so the job survives a server restart.

    A `tethered` program (an endpoint instance) is stopped by its shim when this process ends.
    """
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    argv, env = runtime.wrap(spec)
    tether = ["--tether", tether_of(os.getpid())] if tethered else []
    shim = [sys.executable, "-m", "opensage.runtime.shim", "--detach", *tether,
            str(spec.run_dir), "--"]  # fmt: skip
    with (spec.run_dir / "shim.err").open("wb") as shim_err:
        subprocess.run(
            [*shim, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=shim_err,
            env=env,
            start_new_session=True,
            check=True,
        )
    return RunHandle(spec.run_dir)


def runtime_for(name: str) -> Runtime:
    """The composition root picks a runtime by name; nothing else branches on it."""
    from opensage.runtime.process import ProcessRuntime
    from opensage.runtime.sandbox import SandboxRuntime

    runtimes: dict[str, Runtime] = {"process": ProcessRuntime(), "sandbox": SandboxRuntime()}
    if name not in runtimes:
        raise ValidationError(f"Unknown runtime '{name}': choose one of {sorted(runtimes)}")
    return runtimes[name]
