"""The `process` runtime: a plain child process; the `/opt/ml` tree is the job folder."""

from __future__ import annotations

import os

from opensage.contract import BASE_DIR_ENV
from opensage.errors import ValidationError
from opensage.runtime.base import ContainerSpec


class ProcessRuntime:
    """No isolation: `EnableNetworkIsolation` cannot be honoured here (the sandbox does)."""

    name = "process"

    def wrap(self, spec: ContainerSpec) -> tuple[list[str], dict[str, str]]:
        if spec.root is not None:
            raise ValidationError("The process runtime cannot run container images")
        env = {**os.environ, **spec.env, BASE_DIR_ENV: str(spec.job_dir)}
        return list(spec.command), env

    def container_base(self, spec: ContainerSpec) -> str:
        return str(spec.job_dir)
