"""The training container contract: the `/opt/ml` tree, shared by the platform and the programs.

The platform (runtime/) builds this tree for a job; the programs that run inside a job
(algorithms/, toolkit/) read it. Both sides import this module and nothing else of each other,
so the contract lives in one place. In the `process` runtime the tree is a per-job folder named
by `SAGEMAKER_BASE_DIR` (the variable the SageMaker training toolkit reads); in the `sandbox`
runtime it is bind-mounted at the real `/opt/ml` and the variable is unset.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"
FAILURE_REASON_LIMIT = 1024


@dataclass(frozen=True)
class MLPaths:
    """Every path of the `/opt/ml` tree, rooted at `base`.

    >>> MLPaths(Path("/opt/ml")).channel("train")
    PosixPath('/opt/ml/input/data/train')
    """

    base: Path

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> MLPaths:
        env = os.environ if environ is None else environ
        return cls(Path(env.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR))

    @property
    def input(self) -> Path:
        return self.base / "input"

    @property
    def input_config(self) -> Path:
        return self.input / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.input_config / "hyperparameters.json"

    @property
    def resource_config_file(self) -> Path:
        return self.input_config / "resourceconfig.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.input_config / "inputdataconfig.json"

    @property
    def data(self) -> Path:
        return self.input / "data"

    def channel(self, name: str) -> Path:
        return self.data / name

    @property
    def model(self) -> Path:
        return self.base / "model"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def output_data(self) -> Path:
        return self.output / "data"

    @property
    def intermediate(self) -> Path:
        return self.output / "intermediate"

    @property
    def failure_file(self) -> Path:
        return self.output / "failure"

    @property
    def success_file(self) -> Path:
        return self.output / "success"

    @property
    def checkpoints(self) -> Path:
        return self.base / "checkpoints"

    @property
    def code(self) -> Path:
        return self.base / "code"

    def directories(self) -> list[Path]:
        """The folders a job starts with (all empty but the config folder)."""
        return [
            self.input_config,
            self.data,
            self.model,
            self.output_data,
            self.intermediate,
            self.checkpoints,
            self.code,
        ]

    def read_json(self, path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def hyperparameters(self) -> dict[str, str]:
        return dict(self.read_json(self.hyperparameters_file))

    def resource_config(self) -> dict[str, Any]:
        return dict(self.read_json(self.resource_config_file))

    def input_data_config(self) -> dict[str, dict[str, str]]:
        return dict(self.read_json(self.input_data_config_file))

    def write_failure(self, text: str) -> None:
        """Record why the job failed; the platform turns it into `FailureReason`.

        Like the SageMaker toolkit, an existing failure file wins: the first error is the cause.
        """
        self.output.mkdir(parents=True, exist_ok=True)
        if not self.failure_file.exists():
            self.failure_file.write_text(text, encoding="utf-8")
