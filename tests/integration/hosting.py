"""Helpers for the hosting tests: models in S3, endpoints up and down, model-server processes."""

from __future__ import annotations

import io
import tarfile
import textwrap
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from tests.integration.conftest import ROLE, XGBOOST_IMAGE, Clients, wait_for

SCRIPT_IMAGE = "opensage/python:3"
N_FEATURES = 5


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def booster_bytes(seed: int = 0, rounds: int = 5) -> bytes:
    """A small binary:logistic booster on N_FEATURES features: the label is x0 > 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, N_FEATURES))
    y = (x[:, 0] > 0).astype(float)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x, label=y), rounds
    )
    return bytes(booster.save_raw(raw_format="ubj"))


def upload(clients: Clients, key: str, data: bytes) -> str:
    clients.s3.put_object(Bucket="data", Key=key, Body=data)
    return f"s3://data/{key}"


def xgboost_model(clients: Clients, name: str, seed: int = 0) -> str:
    url = upload(
        clients, f"models/{name}/model.tar.gz", tar_gz({"xgboost-model": booster_bytes(seed)})
    )
    clients.sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": url},
        ExecutionRoleArn=ROLE,
    )
    return name


def model_from_job(clients: Clients, name: str, image: str, job: dict[str, Any]) -> str:
    """A model serving what a finished training job (its description) wrote, in `image`."""
    clients.sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": image,
            "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"],
        },
        ExecutionRoleArn=ROLE,
    )
    return name


def script_container(clients: Clients, name: str, script: str, **extra: Any) -> dict[str, Any]:
    """A container running `inference.py` (packed into model.tar.gz under code/)."""
    files = {"code/inference.py": textwrap.dedent(script).encode()}
    url = upload(clients, f"models/{name}/model.tar.gz", tar_gz(files))
    return {
        "Image": SCRIPT_IMAGE,
        "ModelDataUrl": url,
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        **extra,
    }


def script_model(clients: Clients, name: str, script: str) -> str:
    clients.sagemaker.create_model(
        ModelName=name,
        PrimaryContainer=script_container(clients, name, script),
        ExecutionRoleArn=ROLE,
    )
    return name


def variant(
    model: str, name: str = "AllTraffic", count: int = 1, weight: float = 1.0
) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model,
        "InitialInstanceCount": count,
        "InstanceType": "ml.m5.large",
        "InitialVariantWeight": weight,
    }


def deploy(clients: Clients, name: str, variants: list[dict[str, Any]], wait: bool = True) -> str:
    config = f"{name}-config-{uuid.uuid4().hex[:6]}"
    clients.sagemaker.create_endpoint_config(EndpointConfigName=config, ProductionVariants=variants)
    clients.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)
    if wait:
        wait_in_service(clients, name)
    return config


def wait_in_service(clients: Clients, name: str) -> None:
    clients.sagemaker.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )


def delete(clients: Clients, name: str) -> None:
    clients.sagemaker.delete_endpoint(EndpointName=name)
    clients.sagemaker.get_waiter("endpoint_deleted").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )


def instance_dirs(home: Path) -> list[Path]:
    root = home / "instances"
    return sorted(root.iterdir()) if root.exists() else []


def model_server_pids(home: Path) -> list[int]:
    """Pids of the live model-server processes (the shims' children) under `home`."""
    pids = []
    for child in sorted(home.glob("logs/endpoints/**/child.pid")):
        pid = int(child.read_text())
        if Path(f"/proc/{pid}").exists():
            pids.append(pid)
    return pids


def no_model_servers(home: Path) -> bool:
    return not model_server_pids(home)


def wait_no_model_servers(home: Path) -> None:
    wait_for(lambda: no_model_servers(home), 30, what="model servers to stop")


ROW = b"1.5,0.1,0.2,0.3,0.4\n-1.5,0.1,0.2,0.3,0.4\n"


SCALE_MODEL_PY = """
import json, os


def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        return json.load(f)


def predict_fn(data, model):
    return data * model["scale"]


if __name__ == "__main__":
    if "SM_CHANNEL_TRAIN" in os.environ:
        print("train channel:", sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"])))
    scale = float(json.loads(os.environ["SM_HPS"])["scale"])
    print(f"training with scale {scale}")
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
        json.dump({"scale": scale}, f)
"""
"""A script-mode entry point that trains `{"scale": <hyperparameter>}` and serves `data * scale`
(`model_fn`, `predict_fn`), saying in its log what it trained on."""
