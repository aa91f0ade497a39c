"""The training environment: what `sagemaker_training.environment.Environment` exposes.

Built from the three JSON files under `input/config`, a few environment variables and the
machine (CPU and GPU counts). Every directory is a path under the actual base dir
(`MLPaths.from_env()`), so the values read `/opt/ml/...` in a container and `<jobdir>/...` when
the platform runs the job as a plain process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opensage.contract import MLPaths
from opensage.toolkit import mapping

PROGRAM_PARAM = "sagemaker_program"
SUBMIT_DIR_PARAM = "sagemaker_submit_directory"
LOG_LEVEL_PARAM = "sagemaker_container_log_level"
JOB_NAME_PARAM = "sagemaker_job_name"
REGION_PARAM = "sagemaker_region"
S3_OUTPUT_PARAM = "sagemaker_s3_output"
MPI_ENABLED_PARAM = "sagemaker_mpi_enabled"
SAGEMAKER_PREFIX = "sagemaker_"

# Split off the user's hyperparameters and consumed by the toolkit itself [TK params.py].
RESERVED_HYPERPARAMETERS = frozenset(
    {
        PROGRAM_PARAM,
        SUBMIT_DIR_PARAM,
        "sagemaker_enable_cloudwatch_metrics",
        REGION_PARAM,
        LOG_LEVEL_PARAM,
        JOB_NAME_PARAM,
        "default_user_module_name",
        "_tuning_objective_metric",
        S3_OUTPUT_PARAM,
    }
)

PROGRAM_ENV = "SAGEMAKER_PROGRAM"
TRAINING_MODULE_ENV = "SAGEMAKER_TRAINING_MODULE"
JOB_NAME_ENV = "TRAINING_JOB_NAME"
MODEL_PARALLEL_ENV = "SM_HP_MP_PARAMETERS"
DEFAULT_GROUP = "homogeneousCluster"
DEFAULT_HOST = "algo-1"

# Framework params that switch distribution on for the current instance group [TK].
DISTRIBUTION_FLAGS = (
    MPI_ENABLED_PARAM,
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
)

# The keys of SM_TRAINING_ENV, in the order of the spec (sorted, like the real dump).
TRAINING_ENV_KEYS = (
    "additional_framework_parameters",
    "channel_input_dirs",
    "current_host",
    "current_instance_group",
    "current_instance_group_hosts",
    "current_instance_type",
    "distribution_hosts",
    "distribution_instance_groups",
    "framework_module",
    "hosts",
    "hyperparameters",
    "input_config_dir",
    "input_data_config",
    "input_dir",
    "instance_groups",
    "instance_groups_dict",
    "is_hetero",
    "is_master",
    "is_modelparallel_enabled",
    "is_smddpmprun_installed",
    "is_smddprun_installed",
    "job_name",
    "log_level",
    "master_hostname",
    "model_dir",
    "module_dir",
    "module_name",
    "network_interface_name",
    "num_cpus",
    "num_gpus",
    "num_neurons",
    "output_data_dir",
    "output_dir",
    "output_intermediate_dir",
    "resource_config",
    "topology",
    "user_entry_point",
)


def num_gpus() -> int:
    """Count the `GPU ` lines of `nvidia-smi --list-gpus`; 0 without nvidia-smi."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--list-gpus"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def num_neurons() -> int:
    """Count NeuronCores with `neuron-ls -j` (AWS Inferentia/Trainium); 0 without it."""
    if shutil.which("neuron-ls") is None:
        return 0
    try:
        out = subprocess.run(
            ["neuron-ls", "-j"], capture_output=True, check=True, timeout=30
        ).stdout
        devices = json.loads(out)
        return sum(int(device.get("nc_count", 0)) for device in devices)
    except (OSError, subprocess.SubprocessError, ValueError, TypeError, AttributeError):
        return 0


def num_cpus() -> int:
    return os.cpu_count() or 1


def split_hyperparameters(
    hyperparameters: Mapping[str, object],
) -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
    """Split decoded hyperparameters into (reserved, framework params, user hyperparameters)."""
    reserved: dict[str, object] = {}
    framework: dict[str, object] = {}
    user: dict[str, object] = {}
    for key, value in hyperparameters.items():
        if key in RESERVED_HYPERPARAMETERS:
            reserved[key] = value
        elif key.startswith(SAGEMAKER_PREFIX):
            framework[key] = value
        else:
            user[key] = value
    return reserved, framework, user


def _log_level(value: object) -> object:
    """The level the user asked for; the decoded value is kept, like the real toolkit."""
    return logging.INFO if value is None else value


@dataclass
class Environment:
    """A read-only snapshot of the training environment (the toolkit's `Environment`)."""

    paths: MLPaths
    hyperparameters: dict[str, object]
    additional_framework_parameters: dict[str, object]
    sagemaker_hyperparameters: dict[str, object]
    resource_config: dict[str, Any]
    input_data_config: dict[str, Any]
    user_entry_point: str | None
    module_dir: str
    log_level: object
    framework_module: str | None
    job_name: str | None
    num_cpus: int
    num_gpus: int
    num_neurons: int
    is_modelparallel_enabled: bool | None
    is_smddprun_installed: bool
    is_smddpmprun_installed: bool
    environ: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_paths(
        cls,
        paths: MLPaths | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Environment:
        """Read the config files under `paths` (default `MLPaths.from_env()`)."""
        env = dict(os.environ if environ is None else environ)
        paths = paths or MLPaths.from_env(env)
        decoded = mapping.decode_hyperparameters(paths.hyperparameters())
        reserved, framework, user = split_hyperparameters(decoded)

        program = env.get(PROGRAM_ENV) or reserved.get(PROGRAM_PARAM)
        module_dir = reserved.get(SUBMIT_DIR_PARAM)
        model_parallel = env.get(MODEL_PARALLEL_ENV)
        return cls(
            paths=paths,
            hyperparameters=user,
            additional_framework_parameters=framework,
            sagemaker_hyperparameters=reserved,
            resource_config=dict(paths.resource_config()),
            input_data_config=dict(paths.input_data_config()),
            user_entry_point=None if program is None else str(program),
            module_dir=str(paths.code) if module_dir is None else str(module_dir),
            log_level=_log_level(reserved.get(LOG_LEVEL_PARAM)),
            framework_module=env.get(TRAINING_MODULE_ENV),
            job_name=env.get(JOB_NAME_ENV),
            num_cpus=num_cpus(),
            num_gpus=num_gpus(),
            num_neurons=num_neurons(),
            is_modelparallel_enabled=(
                None if model_parallel is None else model_parallel not in ("", "{}")
            ),
            is_smddprun_installed=shutil.which("smddprun") is not None,
            is_smddpmprun_installed=shutil.which("smddpmprun") is not None,
            environ=env,
        )

    # --- host topology -------------------------------------------------------------------

    @property
    def current_host(self) -> str:
        return str(self.resource_config.get("current_host") or DEFAULT_HOST)

    @property
    def hosts(self) -> list[str]:
        hosts = self.resource_config.get("hosts")
        return [str(host) for host in hosts] if hosts else [self.current_host]

    @property
    def current_instance_type(self) -> str:
        return str(self.resource_config.get("current_instance_type", "local"))

    @property
    def current_instance_group(self) -> str:
        return str(self.resource_config.get("current_group_name", DEFAULT_GROUP))

    @property
    def network_interface_name(self) -> str:
        return str(self.resource_config.get("network_interface_name", "eth0"))

    @property
    def topology(self) -> object:
        return self.resource_config.get("topology")

    @property
    def _instance_group_configs(self) -> list[dict[str, Any]]:
        groups = self.resource_config.get("instance_groups") or []
        return [group for group in groups if isinstance(group, dict)]

    @property
    def instance_groups(self) -> list[str]:
        return [str(group.get("instance_group_name")) for group in self._instance_group_configs]

    @property
    def instance_groups_dict(self) -> dict[str, dict[str, Any]]:
        return {
            str(group.get("instance_group_name")): group for group in self._instance_group_configs
        }

    @property
    def current_instance_group_hosts(self) -> list[str]:
        for group in self._instance_group_configs:
            if group.get("instance_group_name") == self.current_instance_group:
                return list(group.get("hosts") or [])
        return []

    @property
    def distribution_instance_groups(self) -> list[str]:
        given = self.additional_framework_parameters.get("sagemaker_distribution_instance_groups")
        if isinstance(given, list):
            return [str(group) for group in given]
        params = self.additional_framework_parameters
        if any(params.get(flag) for flag in DISTRIBUTION_FLAGS):
            return [self.current_instance_group]
        return []

    @property
    def distribution_hosts(self) -> list[str]:
        if not self._instance_group_configs:
            return list(self.hosts)
        wanted = self.distribution_instance_groups
        hosts: list[str] = []
        for group in self._instance_group_configs:
            if group.get("instance_group_name") in wanted:
                hosts.extend(str(host) for host in group.get("hosts") or [])
        return hosts

    @property
    def is_hetero(self) -> bool:
        return len(self.instance_groups) > 1

    @property
    def master_hostname(self) -> str:
        return (self.distribution_hosts or self.hosts)[0]

    @property
    def is_master(self) -> bool:
        return self.current_host == self.master_hostname

    # --- program ---------------------------------------------------------------------------

    @property
    def module_name(self) -> str | None:
        program = self.user_entry_point
        return program[:-3] if program and program.endswith(".py") else program

    @property
    def sagemaker_s3_output(self) -> object:
        return self.sagemaker_hyperparameters.get(S3_OUTPUT_PARAM)

    @property
    def region(self) -> str:
        region = self.sagemaker_hyperparameters.get(REGION_PARAM)
        if region:
            return str(region)
        env = self.environ
        return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""

    # --- directories -----------------------------------------------------------------------

    @property
    def channel_input_dirs(self) -> dict[str, str]:
        return {name: str(self.paths.channel(name)) for name in self.input_data_config}

    @property
    def code_dir(self) -> str:
        return str(self.paths.code)

    @property
    def model_dir(self) -> str:
        return str(self.paths.model)

    @property
    def input_dir(self) -> str:
        return str(self.paths.input)

    @property
    def input_config_dir(self) -> str:
        return str(self.paths.input_config)

    @property
    def output_dir(self) -> str:
        return str(self.paths.output)

    @property
    def output_data_dir(self) -> str:
        return str(self.paths.output_data)

    @property
    def output_intermediate_dir(self) -> str:
        return str(self.paths.intermediate)

    # --- encodings -------------------------------------------------------------------------

    def training_env(self) -> dict[str, Any]:
        """Every property of the environment: the value of `SM_TRAINING_ENV`."""
        return {key: getattr(self, key) for key in TRAINING_ENV_KEYS}

    def to_cmd_args(self) -> list[str]:
        return mapping.to_cmd_args(self.hyperparameters)

    def to_env_vars(self) -> dict[str, str]:
        """The `SM_*` variables, exactly as `Environment.to_env_vars` of the toolkit."""
        env: dict[str, object] = {
            "hosts": self.hosts,
            "network_interface_name": self.network_interface_name,
            "hps": self.hyperparameters,
            "user_entry_point": self.user_entry_point,
            "framework_params": self.additional_framework_parameters,
            "resource_config": self.resource_config,
            "input_data_config": self.input_data_config,
            "output_data_dir": self.output_data_dir,
            "channels": sorted(self.channel_input_dirs),
            "current_host": self.current_host,
            "current_instance_type": self.current_instance_type,
            "current_instance_group": self.current_instance_group,
            "current_instance_group_hosts": self.current_instance_group_hosts,
            "instance_groups": self.instance_groups,
            "instance_groups_dict": self.instance_groups_dict,
            "distribution_instance_groups": self.distribution_instance_groups,
            "is_hetero": self.is_hetero,
            "module_name": self.module_name,
            "log_level": self.log_level,
            "framework_module": self.framework_module,
            "input_dir": self.input_dir,
            "input_config_dir": self.input_config_dir,
            "output_dir": self.output_dir,
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "num_neurons": self.num_neurons,
            "model_dir": self.model_dir,
            "module_dir": self.module_dir,
            "training_env": self.training_env(),
            "user_args": self.to_cmd_args(),
            "output_intermediate_dir": self.output_intermediate_dir,
        }
        if self.topology is not None:
            env["topology"] = self.topology
        for name, path in self.channel_input_dirs.items():
            env[f"channel_{name}"] = path
        for key, value in self.hyperparameters.items():
            env[f"hp_{key}"] = value
        return mapping.to_env_vars(env)
