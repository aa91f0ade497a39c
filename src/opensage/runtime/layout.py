"""Builds a job's `/opt/ml` tree on the host: folders and the three config files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opensage.contract import MLPaths


def build_job_tree(
    job_dir: Path,
    hyperparameters: dict[str, str],
    resource_config: dict[str, Any],
    input_data_config: dict[str, dict[str, str]],
) -> MLPaths:
    paths = MLPaths(job_dir)
    for folder in paths.directories():
        folder.mkdir(parents=True, exist_ok=True)
    _write_json(paths.hyperparameters_file, hyperparameters)
    _write_json(paths.resource_config_file, resource_config)
    _write_json(paths.input_data_config_file, input_data_config)
    return paths


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value), encoding="utf-8")
