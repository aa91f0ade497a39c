"""The user's entry point: its type, its installation, its command line and its environment."""

from __future__ import annotations

import enum
import os
import shlex
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from opensage.toolkit.environment import JOB_NAME_PARAM, Environment
from opensage.toolkit.errors import InstallModuleError, InstallRequirementsError
from opensage.toolkit.process import Supervisor

REQUIREMENTS = "requirements.txt"


class EntryPointType(enum.Enum):
    PROGRAM = "python program"
    PACKAGE = "python package"
    COMMAND = "command"


def entry_point_type(code_dir: Path, name: str) -> EntryPointType:
    """`.sh` is a command; `setup.py` in the code dir makes a package; `.py` a program."""
    if name.endswith(".sh"):
        return EntryPointType.COMMAND
    if (code_dir / "setup.py").exists():
        return EntryPointType.PACKAGE
    if name.endswith(".py"):
        return EntryPointType.PROGRAM
    return EntryPointType.COMMAND


def python_path(code_dir: str) -> str:
    """`PYTHONPATH` for the user's process: the code dir first, then the toolkit's `sys.path`."""
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = ""
    entries = [code_dir]
    for entry in sys.path:
        if entry and entry != cwd and entry not in entries:
            entries.append(entry)
    return ":".join(entries)


def child_environment(env: Environment) -> dict[str, str]:
    """`os.environ` plus the `SM_*` variables and what the real toolkit exports besides."""
    child = dict(env.environ)
    child.update(env.to_env_vars())
    child["CURRENT_HOST"] = env.current_host
    job_name = env.sagemaker_hyperparameters.get(JOB_NAME_PARAM)
    child["SAGEMAKER_JOB_NAME"] = "" if job_name is None else str(job_name)
    child["SAGEMAKER_REGION"] = env.region
    child["PYTHONPATH"] = python_path(env.code_dir)
    # Framework images set this in their Dockerfiles: logs and metrics arrive as printed.
    child.setdefault("PYTHONUNBUFFERED", "1")
    # A hyperparameter or channel name that cannot be a variable name is left out.
    return {k: v for k, v in child.items() if k and "=" not in k and "\0" not in k + v}


def install(
    code_dir: Path,
    name: str,
    supervisor: Supervisor,
    env: dict[str, str],
) -> EntryPointType:
    """Install the user's package or requirements, or make a command executable."""
    kind = entry_point_type(code_dir, name)
    has_requirements = (code_dir / REQUIREMENTS).exists()
    pip = [sys.executable, "-m", "pip", "install"]
    if kind is EntryPointType.PACKAGE:
        cmd = [*pip, "."] + (["-r", REQUIREMENTS] if has_requirements else [])
        supervisor.run(cmd, cwd=code_dir, env=env, error_class=InstallModuleError)
    elif kind is EntryPointType.PROGRAM and has_requirements:
        cmd = [*pip, "-r", REQUIREMENTS]
        supervisor.run(cmd, cwd=code_dir, env=env, error_class=InstallRequirementsError)
    elif kind is EntryPointType.COMMAND:
        script = code_dir / name
        if script.is_file():
            mode = script.stat().st_mode
            script.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return kind


def command(kind: EntryPointType, name: str, args: Sequence[str]) -> list[str]:
    """The command line of the user's process, as the toolkit's `ProcessRunner` builds it."""
    if kind is EntryPointType.PACKAGE:
        return [sys.executable, "-m", name.removesuffix(".py"), *args]
    if kind is EntryPointType.PROGRAM:
        return [sys.executable, name, *args]
    return ["/bin/sh", "-c", " ".join([f"./{name}", *(shlex.quote(arg) for arg in args)])]
