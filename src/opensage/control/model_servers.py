"""Model servers: one container of a model run as a process serving `/ping` and `/invocations`
on a Unix socket, for endpoint instances and batch transform jobs alike.

The model's artifacts are staged once (`stage_model`), each server gets a hard-linked view of
them as its `/opt/ml/model`, and the runtime runs the image's serving program under the shim.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opensage.control import images
from opensage.errors import OpenSageError, ValidationError
from opensage.images import ImageError
from opensage.runtime import ContainerSpec, RunHandle, Runtime
from opensage.runtime.base import start
from opensage.storage import ObjectStorage, S3Uri

SOCKET_ENV = "OPENSAGE_SERVING_SOCKET"
IMAGE_PORT = 8080  # where SageMaker's inference contract has a container listen
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux


@dataclass(frozen=True)
class ServerConfig:
    """What every model server's environment gets from the platform."""

    region: str
    container_env: dict[str, str]
    images: images.ImageSupport | None = None


class LaunchError(Exception):
    """A model server cannot start: the reason becomes the endpoint's or the job's
    FailureReason."""


def start_model_server(
    runtime: Runtime,
    config: ServerConfig,
    container: dict[str, Any],
    model_dir: Path,
    ml: Path,
    run_dir: Path,
    *,
    network_isolation: bool,
    extra_env: dict[str, str] | None = None,
) -> tuple[RunHandle, Path]:
    """Start `container` (a model's container definition) serving the model staged in
    `model_dir`, with `ml` as its /opt/ml and `run_dir` for its shim files and log; its handle
    and the host path of its socket. `extra_env` goes over the container's own environment (a
    transform job's Environment and batch variables)."""
    link_tree(model_dir, ml / "model")
    ml = socket_folder(ml)
    host_socket = ml / "serving.sock"
    spec = ContainerSpec(job_dir=ml, run_dir=run_dir, command=[])
    base = runtime.container_base(spec)
    own = {**(container.get("Environment") or {}), **(extra_env or {})}
    support = config.images
    try:
        program = images.resolve_serving(
            container["Image"], own, support.store if support else None
        )
        image_runtime, root, user = runtime, None, None
        if support is not None and program.image is not None:
            image_runtime = support.runner()
            root = support.prepare(program.image)
            user = support.user(program.image, root)
    except (ValidationError, ImageError) as exc:
        raise LaunchError(f"image {container['Image']} cannot run: {exc}") from None
    env = {
        **config.container_env,
        "AWS_REGION": config.region,
        "AWS_DEFAULT_REGION": config.region,
        "PYTHONUNBUFFERED": "1",
        **program.env,
        **own,
        SOCKET_ENV: f"{base}/serving.sock",
    }
    if str(env.get("SAGEMAKER_SUBMIT_DIRECTORY", "")).startswith("s3://"):
        env["SAGEMAKER_SUBMIT_DIRECTORY"] = f"{base}/model/code"
    if program.image is not None and support is not None:
        # An image's own server listens on SageMaker's port, in its own network namespace.
        env = {**program.image.env, **env, "SAGEMAKER_BIND_TO_PORT": str(IMAGE_PORT)}
        env.pop(SOCKET_ENV)
        spec = ContainerSpec(
            job_dir=ml,
            run_dir=run_dir,
            command=program.command,
            env=env,
            network_isolation=network_isolation,
            root=root,
            workdir=program.image.working_dir,
            serve_port=IMAGE_PORT,
            user=user,
            image_id=program.image.id,
        )
        return start(image_runtime, spec, tethered=True), host_socket
    spec = ContainerSpec(
        job_dir=ml,
        run_dir=run_dir,
        command=program.command,
        env=env,
        network_isolation=network_isolation,
    )
    return start(runtime, spec, tethered=True), host_socket


def socket_folder(ml: Path) -> Path:
    """`ml`, or where its socket path would not fit in a Unix socket address (108 bytes on
    Linux, so an OPENSAGE_HOME deeper than about 60 characters), a short alias of it: a symbolic
    link in this user's folder of the temporary directory, named by a hash of `ml`. The server
    binds and the clients connect through the alias (a socket path is resolved like any other),
    so the instance's files stay under OPENSAGE_HOME; aliases left dangling by removed
    instances are cleared here."""
    if len(str(ml / "serving.sock")) <= _MAX_SOCKET_PATH:
        return ml
    aliases = Path(tempfile.gettempdir()) / f"opensage-{os.getuid()}"
    aliases.mkdir(mode=0o700, exist_ok=True)
    if aliases.is_symlink() or aliases.stat().st_uid != os.getuid():
        raise LaunchError(f"{aliases} belongs to another user; cannot make a socket alias there.")
    for old in aliases.iterdir():
        if old.is_symlink() and not old.exists():
            old.unlink(missing_ok=True)
    alias = aliases / hashlib.sha256(str(ml).encode()).hexdigest()[:16]
    if len(str(alias / "serving.sock")) > _MAX_SOCKET_PATH:
        raise LaunchError(
            f"The model server's socket path {ml / 'serving.sock'} is too long and so is the "
            f"temporary directory {aliases}; set OPENSAGE_HOME or TMPDIR to a shorter path."
        )
    if alias.is_symlink() and os.readlink(alias) != str(ml):
        alias.unlink()
    if not alias.is_symlink():
        alias.symlink_to(ml, target_is_directory=True)
    return alias


def stage_model(storage: ObjectStorage, container: dict[str, Any], folder: Path) -> None:
    """Download a container's model data (and S3 code) into `folder`, as SageMaker does."""
    folder.mkdir(parents=True, exist_ok=True)
    url = container.get("ModelDataUrl")
    source = (container.get("ModelDataSource") or {}).get("S3DataSource")
    try:
        if url:
            _extract(storage, S3Uri.parse(url), folder)
        elif source:
            uri = S3Uri.parse(source["S3Uri"])
            if source["S3DataType"] == "S3Prefix":
                objects = storage.list(uri)
                if not objects:
                    raise LaunchError(f"Could not find model data at {uri}.")
                for info in objects:
                    relative = info.uri.key[len(uri.key) :]
                    _safe_download(storage, info.uri, folder, relative)
            elif source["CompressionType"] == "Gzip":
                _extract(storage, uri, folder)
            else:
                _safe_download(storage, uri, folder, uri.key.rsplit("/", 1)[-1])
        submit = (container.get("Environment") or {}).get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit.startswith("s3://"):
            _extract(storage, S3Uri.parse(submit), folder / "code")
    except OpenSageError as exc:
        raise LaunchError(f"Could not download model data: {exc.message}") from exc


def _extract(storage: ObjectStorage, uri: S3Uri, folder: Path) -> None:
    if storage.head(uri) is None:
        raise LaunchError(f"Could not find model data at {uri}.")
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "model.tar.gz"
        storage.download(uri, archive)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(folder, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise LaunchError(f"Model data at {uri} is not a valid tar.gz archive: {exc}") from exc


def _safe_download(storage: ObjectStorage, uri: S3Uri, folder: Path, relative: str) -> None:
    target = (folder / relative).resolve()
    if not relative or not target.is_relative_to(folder.resolve()):
        raise LaunchError(f"Model data object {uri} has a name that escapes the model folder.")
    if target.exists() or any(p.is_file() for p in target.parents if p != folder.resolve()):
        raise LaunchError(f"Model data object {uri} clashes with another file of the model.")
    storage.download(uri, target)


def link_tree(source: Path, target: Path) -> None:
    """A per-instance view of the model: hard links, so nothing is copied."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(source, target, copy_function=os.link, symlinks=True)
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, symlinks=True)


def ping(path: str, timeout: float) -> bool:
    """`GET /ping` over a Unix socket: True on HTTP 200."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: model\r\nConnection: close\r\n\r\n")
            head = sock.recv(64)
    except OSError:
        return False
    return head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200"))


def stop_leftovers(root: Path, grace: float) -> None:
    """Stop instance processes a previous server left behind (it crashed)."""
    if not root.exists():
        return
    handles = [RunHandle(pid.parent) for pid in root.rglob("shim.pid")]
    alive = [h for h in handles if h.shim_alive()]
    for handle in alive:
        handle.terminate()
    deadline = time.monotonic() + grace
    for handle in alive:
        while handle.shim_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if handle.shim_alive():
            handle.kill()
            with contextlib.suppress(OSError, ValueError):
                os.kill(int((handle.run_dir / "shim.pid").read_text()), signal.SIGKILL)
