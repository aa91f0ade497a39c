"""The `docker` and `podman` image runtimes: the same stored images, run by a container engine.

Chosen with `OPENSAGE_IMAGE_RUNTIME=docker|podman` where an engine answers; bubblewrap stays the
default, which needs no daemon. The image store stays the source of truth: before an image's
first run the engine is given it as a `docker save` archive streamed from the store (`docker
load`), and runs it by its id, so a name never means different images in the two places.

A job is `docker run --rm` (attached: the shim records its output and exit status, and the CLI
passes SIGTERM on to the container) with the job folder mounted at `/opt/ml`, `--network none`
for network isolation, the image's User, and the program as `--entrypoint` plus arguments. A
model server publishes port 8080 on a loopback port the engine picks; `opensage.runtime.netproxy`
(in `--engine` mode) asks the engine which one and bridges `<instance>/serving.sock` to it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from typing import IO

from opensage.errors import ValidationError
from opensage.runtime.base import ContainerSpec

ENGINES = ("docker", "podman")


def engine_answers(engine: str) -> bool:
    """Whether the engine's CLI is installed and its daemon (or service) answers."""
    try:
        done = subprocess.run([engine, "info"], capture_output=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class EngineRuntime:
    def __init__(self, engine: str) -> None:
        if engine not in ENGINES:
            raise ValidationError(f"Unknown image runtime '{engine}': choose one of {ENGINES}")
        self.name = engine
        self.engine = engine

    def wrap(self, spec: ContainerSpec) -> tuple[list[str], dict[str, str]]:
        if spec.image_id is None:
            raise ValidationError(f"The {self.engine} runtime runs container images only")
        name = "opensage-" + hashlib.sha256(str(spec.run_dir).encode()).hexdigest()[:16]
        argv = [self.engine, "run", "--rm", "--name", name,
                "--volume", f"{spec.job_dir}:/opt/ml", "--workdir", spec.workdir or "/",
                "--entrypoint", spec.command[0]]  # fmt: skip
        for key, value in spec.env.items():
            argv += ["--env", f"{key}={value}"]
        if spec.user is not None:
            argv += ["--user", spec.user]
        if spec.serve_port is not None:
            argv += ["--publish", f"127.0.0.1::{spec.serve_port}"]
        elif spec.network_isolation:
            argv += ["--network", "none"]
        argv += [spec.image_id, *spec.command[1:]]
        if spec.serve_port is not None:
            socket_path = str(spec.job_dir / "serving.sock")
            proxy = [sys.executable, "-m", "opensage.runtime.netproxy", "--engine", self.engine,
                     name, socket_path, str(spec.serve_port), "--"]  # fmt: skip
            return [*proxy, *argv], dict(os.environ)
        return argv, dict(os.environ)

    def container_base(self, spec: ContainerSpec) -> str:
        return "/opt/ml"

    def has_image(self, image_id: str) -> bool:
        done = subprocess.run(
            [self.engine, "image", "inspect", image_id], capture_output=True, timeout=60
        )
        return done.returncode == 0

    def load(self, archive: IO[bytes]) -> None:
        done = subprocess.run(
            [self.engine, "load"], stdin=archive, capture_output=True, timeout=3600
        )
        if done.returncode != 0:
            raise ValidationError(
                f"{self.engine} load failed: {done.stderr.decode(errors='replace')[-500:]}"
            )


def docker_save_members(config: str, layers: list[str], tag: str) -> bytes:
    """The `manifest.json` of a docker save archive whose blobs sit at `blobs/sha256/<hex>`."""
    manifest = [{"Config": _blob_name(config), "RepoTags": [tag],
                 "Layers": [_blob_name(layer) for layer in layers]}]  # fmt: skip
    return json.dumps(manifest).encode()


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def write_docker_save(
    out: IO[bytes], blobs: dict[str, str], config: str, layers: list[str], tag: str
) -> None:
    """Stream a docker save archive: `blobs` maps each digest to its file in the store."""
    with tarfile.open(fileobj=out, mode="w|") as tar:
        for digest in [config, *layers]:
            tar.add(blobs[digest], arcname=_blob_name(digest))
        manifest = docker_save_members(config, layers, tag)
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
