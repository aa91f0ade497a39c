"""How the process and sandbox runtimes wrap a container program (argv and environment)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opensage.contract import BASE_DIR_ENV, DEFAULT_BASE_DIR
from opensage.errors import ValidationError
from opensage.runtime import ContainerSpec, runtime_for
from opensage.runtime.base import RunHandle
from opensage.runtime.process import ProcessRuntime
from opensage.runtime.sandbox import SandboxRuntime, _opt_mounts

COMMAND = ["python", "-m", "opensage.toolkit", "train"]


def spec(
    tmp_path: Path, *, isolated: bool = False, env: dict[str, str] | None = None
) -> ContainerSpec:
    return ContainerSpec(
        job_dir=tmp_path / "jobs" / "job-a" / "algo-1",
        run_dir=tmp_path / "jobs" / "job-a" / "run",
        command=list(COMMAND),
        env={"TRAINING_JOB_NAME": "job-a"} if env is None else env,
        network_isolation=isolated,
    )


def test_runtime_for() -> None:
    assert isinstance(runtime_for("process"), ProcessRuntime)
    assert isinstance(runtime_for("sandbox"), SandboxRuntime)
    with pytest.raises(ValidationError, match="Unknown runtime 'docker'"):
        runtime_for("docker")


# process ------------------------------------------------------------------------------------


def test_process_runtime_points_the_base_dir_at_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENSAGE_TEST_HOST_VAR", "kept")
    monkeypatch.setenv(BASE_DIR_ENV, "/somewhere/else")
    container = spec(tmp_path, env={"TRAINING_JOB_NAME": "job-a", BASE_DIR_ENV: "/user"})
    argv, env = ProcessRuntime().wrap(container)
    assert argv == COMMAND
    assert argv is not container.command
    assert env[BASE_DIR_ENV] == str(container.job_dir)
    assert env["TRAINING_JOB_NAME"] == "job-a"
    assert env["OPENSAGE_TEST_HOST_VAR"] == "kept"


def test_process_runtime_ignores_network_isolation(tmp_path: Path) -> None:
    assert ProcessRuntime().wrap(spec(tmp_path, isolated=True))[0] == COMMAND


# sandbox ------------------------------------------------------------------------------------


def pairs(argv: list[str], flag: str, arity: int) -> list[tuple[str, ...]]:
    return [tuple(argv[i + 1 : i + 1 + arity]) for i, a in enumerate(argv) if a == flag]


def test_sandbox_binds_the_job_dir_at_opt_ml(tmp_path: Path) -> None:
    container = spec(tmp_path)
    argv, _ = SandboxRuntime().wrap(container)
    assert argv[0].endswith("bwrap")
    assert (str(container.job_dir), DEFAULT_BASE_DIR) in pairs(argv, "--bind", 2)
    assert ("/", "/") in pairs(argv, "--ro-bind", 2)
    assert pairs(argv, "--chdir", 1) == [(DEFAULT_BASE_DIR,)]
    assert "--unshare-pid" in argv
    assert "--die-with-parent" in argv
    separator = argv.index("--")
    assert argv[separator + 1 :] == COMMAND
    assert "--unshare-net" not in argv


def test_sandbox_unshares_the_network_only_with_isolation(tmp_path: Path) -> None:
    argv, _ = SandboxRuntime().wrap(spec(tmp_path, isolated=True))
    separator = argv.index("--")
    assert "--unshare-net" in argv[:separator]
    assert argv[separator + 1 :] == COMMAND


def test_sandbox_removes_the_base_dir_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BASE_DIR_ENV, "/host/job")
    monkeypatch.setenv("OPENSAGE_TEST_HOST_VAR", "kept")
    _, env = SandboxRuntime().wrap(spec(tmp_path))
    assert BASE_DIR_ENV not in env
    assert env["OPENSAGE_TEST_HOST_VAR"] == "kept"
    assert env["TRAINING_JOB_NAME"] == "job-a"


def test_opt_mounts_rebuild_the_parent_when_the_target_is_missing(tmp_path: Path) -> None:
    parent = tmp_path / "opt"
    (parent / "vendor").mkdir(parents=True)
    (parent / "tool").write_text("x")
    assert _opt_mounts(parent / "ml") == [
        "--tmpfs", str(parent),
        "--ro-bind", str(parent / "tool"), str(parent / "tool"),
        "--ro-bind", str(parent / "vendor"), str(parent / "vendor"),
    ]  # fmt: skip


def test_opt_mounts_nothing_when_the_target_exists_or_the_parent_does_not(
    tmp_path: Path,
) -> None:
    (tmp_path / "opt" / "ml").mkdir(parents=True)
    assert _opt_mounts(tmp_path / "opt" / "ml") == []
    assert _opt_mounts(tmp_path / "missing" / "ml") == []


# run handle ---------------------------------------------------------------------------------


def test_run_handle_reads_the_shim_files(tmp_path: Path) -> None:
    handle = RunHandle(tmp_path)
    assert handle.log_path == tmp_path / "output.log"
    assert handle.exit_code() is None
    assert handle.shim_alive() is False
    handle.terminate()  # no child.pid yet: nothing to signal
    (tmp_path / "exit_code").write_text("137")
    assert handle.exit_code() == 137


def test_shim_alive_rejects_a_recycled_pid(tmp_path: Path) -> None:
    (tmp_path / "shim.pid").write_text(str(os.getpid()))  # pytest, not a shim
    assert RunHandle(tmp_path).shim_alive() is False
