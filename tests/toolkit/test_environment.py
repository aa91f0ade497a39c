"""The Environment built from the three config files: the split, the topology, SM_TRAINING_ENV."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from opensage.contract import MLPaths
from opensage.toolkit.environment import TRAINING_ENV_KEYS, Environment, num_gpus, num_neurons

# The key list of spec 1.8, as written there.
SPEC_TRAINING_ENV_KEYS = {
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
}


def write_config(
    base: Path,
    hyperparameters: dict[str, str],
    resource_config: dict[str, object] | None = None,
    input_data_config: dict[str, object] | None = None,
) -> MLPaths:
    paths = MLPaths(base)
    paths.input_config.mkdir(parents=True)
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    if resource_config is not None:
        paths.resource_config_file.write_text(json.dumps(resource_config))
    if input_data_config is not None:
        paths.input_data_config_file.write_text(json.dumps(input_data_config))
    return paths


def two_groups() -> dict[str, object]:
    return {
        "current_host": "algo-3",
        "hosts": ["algo-1", "algo-2", "algo-3"],
        "current_instance_type": "ml.p3.2xlarge",
        "current_group_name": "gpu",
        "instance_groups": [
            {"instance_group_name": "cpu", "instance_type": "ml.c5.xlarge", "hosts": ["algo-1"]},
            {
                "instance_group_name": "gpu",
                "instance_type": "ml.p3.2xlarge",
                "hosts": ["algo-3", "algo-2"],
            },
        ],
        "network_interface_name": "eth1",
        "topology": {"rack": 1},
    }


def test_split_of_reserved_framework_and_user_hyperparameters(tmp_path: Path) -> None:
    paths = write_config(
        tmp_path,
        {
            "epochs": "2",
            "learning-rate": "0.001",
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"s3://b/k/sourcedir.tar.gz"',
            "sagemaker_container_log_level": "30",
            "sagemaker_job_name": '"job"',
            "sagemaker_region": '"eu-north-1"',
            "sagemaker_enable_cloudwatch_metrics": "false",
            "default_user_module_name": '"x"',
            "_tuning_objective_metric": '"validation:rmse"',
            "sagemaker_s3_output": '"s3://b/out"',
            "sagemaker_mpi_enabled": "false",
            "sagemaker_estimator_class_name": '"PyTorch"',
        },
        {"current_host": "algo-1", "hosts": ["algo-1"]},
        {},
    )
    env = Environment.from_paths(paths, {"TRAINING_JOB_NAME": "job-7"})
    assert env.hyperparameters == {"epochs": 2, "learning-rate": 0.001}
    assert env.additional_framework_parameters == {
        "sagemaker_mpi_enabled": False,
        "sagemaker_estimator_class_name": "PyTorch",
    }
    assert env.user_entry_point == "train.py"
    assert env.module_name == "train"
    assert env.module_dir == "s3://b/k/sourcedir.tar.gz"
    assert env.log_level == 30
    assert env.job_name == "job-7"
    assert env.region == "eu-north-1"
    assert env.sagemaker_s3_output == "s3://b/out"
    assert env.to_cmd_args() == ["--epochs", "2", "--learning-rate", "0.001"]
    sm = env.to_env_vars()
    assert sm["SM_HP_LEARNING-RATE"] == "0.001"
    assert sm["SM_HPS"] == '{"epochs":2,"learning-rate":0.001}'
    assert sm["SM_FRAMEWORK_PARAMS"] == (
        '{"sagemaker_estimator_class_name":"PyTorch","sagemaker_mpi_enabled":false}'
    )
    assert sm["SM_LOG_LEVEL"] == "30"


def test_sagemaker_program_env_overrides_the_hyperparameter(tmp_path: Path) -> None:
    paths = write_config(tmp_path, {"sagemaker_program": '"train.py"'})
    env = Environment.from_paths(paths, {"SAGEMAKER_PROGRAM": "other.py"})
    assert env.user_entry_point == "other.py"
    assert env.module_name == "other"


def test_defaults_without_files(tmp_path: Path) -> None:
    paths = MLPaths(tmp_path)
    env = Environment.from_paths(paths, {"SAGEMAKER_TRAINING_MODULE": "fw.training:main"})
    assert env.user_entry_point is None
    assert env.module_dir == str(paths.code)
    assert env.current_host == "algo-1"
    assert env.hosts == ["algo-1"]
    assert env.current_instance_type == "local"
    assert env.current_instance_group == "homogeneousCluster"
    assert env.network_interface_name == "eth0"
    assert env.log_level == 20
    assert env.job_name is None
    assert env.framework_module == "fw.training:main"
    assert env.distribution_hosts == ["algo-1"]
    assert env.master_hostname == "algo-1"
    assert env.is_master
    sm = env.to_env_vars()
    assert sm["SM_USER_ENTRY_POINT"] == ""
    assert sm["SM_CHANNELS"] == "[]"
    assert sm["SM_FRAMEWORK_MODULE"] == "fw.training:main"
    assert "SM_TOPOLOGY" not in sm


def test_heterogeneous_cluster(tmp_path: Path) -> None:
    paths = write_config(
        tmp_path,
        {"sagemaker_program": '"train.py"', "sagemaker_distributed_dataparallel_enabled": "true"},
        two_groups(),
        {"training": {"TrainingInputMode": "File"}},
    )
    env = Environment.from_paths(paths, {})
    assert env.instance_groups == ["cpu", "gpu"]
    assert env.is_hetero
    assert env.current_instance_group_hosts == ["algo-3", "algo-2"]
    assert env.distribution_instance_groups == ["gpu"]
    assert env.distribution_hosts == ["algo-3", "algo-2"]
    assert env.master_hostname == "algo-3"
    assert env.is_master
    sm = env.to_env_vars()
    assert sm["SM_IS_HETERO"] == "true"
    assert sm["SM_CURRENT_INSTANCE_GROUP"] == "gpu"
    assert sm["SM_INSTANCE_GROUPS"] == '["cpu","gpu"]'
    assert sm["SM_DISTRIBUTION_INSTANCE_GROUPS"] == '["gpu"]'
    assert sm["SM_NETWORK_INTERFACE_NAME"] == "eth1"
    assert sm["SM_TOPOLOGY"] == '{"rack":1}'
    assert json.loads(sm["SM_INSTANCE_GROUPS_DICT"])["cpu"]["hosts"] == ["algo-1"]


def test_no_distribution_means_first_host_is_master(tmp_path: Path) -> None:
    paths = write_config(tmp_path, {}, two_groups(), {})
    env = Environment.from_paths(paths, {})
    assert env.distribution_hosts == []
    assert env.master_hostname == "algo-1"
    assert not env.is_master


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("{}", False), ('{"a":1}', True)])
def test_model_parallel_flag(tmp_path: Path, value: str | None, expected: bool | None) -> None:
    environ = {} if value is None else {"SM_HP_MP_PARAMETERS": value}
    env = Environment.from_paths(MLPaths(tmp_path), environ)
    assert env.is_modelparallel_enabled is expected


def test_training_env_has_exactly_the_spec_keys(tmp_path: Path) -> None:
    assert set(TRAINING_ENV_KEYS) == SPEC_TRAINING_ENV_KEYS
    env = Environment.from_paths(write_config(tmp_path, {}, two_groups(), {}), {})
    training_env = json.loads(env.to_env_vars()["SM_TRAINING_ENV"])
    assert set(training_env) == SPEC_TRAINING_ENV_KEYS
    assert training_env["topology"] == {"rack": 1}
    assert training_env["model_dir"] == str(tmp_path / "model")


def fake_tool(bin_dir: Path, name: str, output: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\n")
    tool.chmod(0o755)


def test_gpus_and_neuron_cores_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    fake_tool(
        bin_dir,
        "nvidia-smi",
        "GPU 0: NVIDIA H200 (UUID: GPU-1)\nGPU 1: NVIDIA H200 (UUID: GPU-2)\n",
    )
    fake_tool(bin_dir, "neuron-ls", '[{"nc_count": 2}, {"nc_count": 2}]')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    env = Environment.from_paths(MLPaths(tmp_path / "ml"), {})
    assert (env.num_gpus, env.num_neurons) == (2, 4)
    assert env.to_env_vars()["SM_NUM_GPUS"] == "2"


def test_no_gpu_tools_means_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert num_gpus() == 0
    assert num_neurons() == 0
