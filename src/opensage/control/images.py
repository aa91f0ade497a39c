"""Which program a training image URI names.

Built-in algorithms and framework images are recognised by repository name alone (users copy
URIs across regions and accounts), as the SageMaker SDK's `image_uris` lays them out:
`<account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>:<tag>`, or a short
`<repository>:<tag>` / `opensage/<name>:<tag>`.
"""

from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from opensage.algorithms import registry
from opensage.algorithms.base import HyperparameterError
from opensage.errors import ValidationError
from opensage.images import (
    Image,
    ImageNotFound,
    ImageStore,
    ReferenceError,
    parse_reference,
    user_ids,
)
from opensage.runtime import Runtime
from opensage.runtime.engine import EngineRuntime, write_docker_save

_ECR = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/"
    r"(?P<repo>[a-z0-9._/-]+?)(:(?P<tag>[A-Za-z0-9._-]+))?(@sha256:[0-9a-f]{64})?$"
)
_SHORT = re.compile(r"^(?P<repo>[a-z0-9._/-]+?)(:(?P<tag>[A-Za-z0-9._-]+))?$")

# Framework images whose container runs the training toolkit (script mode).
FRAMEWORK_REPOSITORIES = {
    "sagemaker-scikit-learn",
    "sagemaker-xgboost",
    "pytorch-training",
    "sagemaker-pytorch",
    "tensorflow-training",
    "huggingface-pytorch-training",
    "opensage/python",
    "python",
}
TOOLKIT = [sys.executable, "-m", "opensage.toolkit", "train"]
MODEL_SERVER = [sys.executable, "-m", "opensage.serving", "serve"]
HANDLER_ENV = "OPENSAGE_SERVING_HANDLER"

# Images whose `serve` runs a user's inference script (the inference toolkit's contract).
SERVING_FRAMEWORK_REPOSITORIES = FRAMEWORK_REPOSITORIES | {
    "pytorch-inference",
    "tensorflow-inference",
    "huggingface-pytorch-inference",
}


@dataclass(frozen=True)
class Program:
    """What runs in the job, and the metric definitions that come with it."""

    command: list[str]
    metric_definitions: list[dict[str, str]] = field(default_factory=list)
    algorithm: str | None = None
    image: Image | None = None
    """A stored image the command runs in (on its root, with its environment)."""


@dataclass(frozen=True)
class ImageSupport:
    """The image store, and the runtime that runs its images (None where nothing here can run
    them: `missing` says what to install)."""

    store: ImageStore
    runtime: Runtime | None
    missing: str = ""

    def runner(self) -> Runtime:
        if self.runtime is None:
            raise ValidationError(self.missing)
        return self.runtime

    def prepare(self, image: Image) -> Path | None:
        """Make `image` runnable: its root unpacked (the sandbox, returned) or the image loaded
        into the container engine (once, by id)."""
        runtime = self.runner()
        if not isinstance(runtime, EngineRuntime):
            return self.store.root_of(image)
        if not runtime.has_image(image.id):
            digests = [str(image.manifest["config"]["digest"])]
            digests += [str(layer["digest"]) for layer in image.layers]
            blobs = {digest: str(self.store.blob_path(digest)) for digest in digests}
            tag = f"opensage/{image.id.removeprefix('sha256:')[:12]}:image"
            with tempfile.TemporaryFile() as archive:
                write_docker_save(archive, blobs, digests[0], digests[1:], tag)
                archive.seek(0)
                runtime.load(archive)
        return None

    def user(self, image: Image, root: Path | None) -> str | None:
        """Who the image runs as: `uid:gid` from its own files on the sandbox; the image's
        `User` as written for an engine, which resolves it itself."""
        if root is None:
            return image.user or None
        ids = user_ids(root, image.user)
        return f"{ids[0]}:{ids[1]}" if ids else None


def stored_image(image: str, store: ImageStore | None) -> Image | None:
    if store is None:
        return None
    try:
        parse_reference(image)
        return store.resolve(image)
    except (ImageNotFound, ReferenceError):
        return None


def container_command(
    image: Image, verb: str, entrypoint: list[str] | None, arguments: list[str] | None
) -> list[str]:
    """`docker run [--entrypoint EP] IMAGE ARGS` with SageMaker's default ARGS, `train` or
    `serve`: the argument replaces the image's Cmd, and ContainerEntrypoint drops it."""
    if entrypoint:
        return [*entrypoint, *(arguments or [])]
    return [*image.entrypoint, *(arguments or [verb])]


def repository(image: str) -> str:
    match = _ECR.match(image) or _SHORT.match(image)
    if match:
        return match.group("repo")
    try:
        return parse_reference(image).repository  # another registry's host: `host:port/repo`
    except ReferenceError:
        raise ValidationError(f"Invalid TrainingImage '{image}'") from None


def resolve(
    image: str,
    hyperparameters: dict[str, str],
    entrypoint: list[str] | None = None,
    arguments: list[str] | None = None,
    store: ImageStore | None = None,
) -> Program:
    """The program for an image; `ValidationException` when opensage cannot run it."""
    stored = stored_image(image, store)
    if stored is not None:
        return Program(container_command(stored, "train", entrypoint, arguments), image=stored)
    repo = repository(image)
    script_mode = "sagemaker_program" in hyperparameters or "SAGEMAKER_PROGRAM" in hyperparameters
    if repo in ("opensage/python", "python") and entrypoint:
        return Program([*entrypoint, *(arguments or [])])
    if entrypoint or arguments:
        raise ValidationError(
            "ContainerEntrypoint and ContainerArguments are supported only with the "
            "opensage/python image for now"
        )
    algorithm = registry.by_repository(repo)
    if algorithm is not None and not (script_mode and repo in FRAMEWORK_REPOSITORIES):
        try:
            algorithm.hyperparameters.validate(hyperparameters)
        except HyperparameterError as exc:
            raise ValidationError(str(exc)) from None
        command = [sys.executable, *algorithm.training_command]
        return Program(command, algorithm.metric_definitions(), algorithm=algorithm.name)
    if repo in FRAMEWORK_REPOSITORIES:
        if not script_mode:
            raise ValidationError(
                f"Image '{image}' is a framework image: set the hyperparameters "
                "sagemaker_program and sagemaker_submit_directory (script mode)"
            )
        return Program(list(TOOLKIT))
    raise ValidationError(
        f"Image '{image}' is not in opensage's image store; load it with `opensage images "
        f"load` or push it to opensage's registry. Built-in algorithms: "
        f"{_builtin_repositories()}; script mode: {', '.join(sorted(FRAMEWORK_REPOSITORIES))}"
    )


@dataclass(frozen=True)
class ServingProgram:
    """What `serve` runs for an inference image, and the variables that pick its handler."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    image: Image | None = None


def resolve_serving(
    image: str, environment: dict[str, str], store: ImageStore | None = None
) -> ServingProgram:
    """The model server for an inference image; `ValidationException` when opensage cannot run it.

    A built-in algorithm's image serves through that algorithm's handler unless the model names
    a script (`SAGEMAKER_PROGRAM`), which turns the XGBoost image into a framework image, as the
    SageMaker XGBoost container does.
    """
    stored = stored_image(image, store)
    if stored is not None:
        return ServingProgram(container_command(stored, "serve", None, None), image=stored)
    repo = repository(image)
    algorithm = registry.by_repository(repo)
    script = "SAGEMAKER_PROGRAM" in environment and repo in SERVING_FRAMEWORK_REPOSITORIES
    if algorithm is not None and not script:
        return ServingProgram(list(MODEL_SERVER), {HANDLER_ENV: algorithm.name})
    if repo in SERVING_FRAMEWORK_REPOSITORIES:
        return ServingProgram(list(MODEL_SERVER))
    raise ValidationError(
        f"Image '{image}' is not in opensage's image store; load it with `opensage images "
        f"load` or push it to opensage's registry. Built-in algorithms: "
        f"{_builtin_repositories()}; inference scripts: "
        f"{', '.join(sorted(SERVING_FRAMEWORK_REPOSITORIES))}"
    )


def _builtin_repositories() -> str:
    return ", ".join(
        repo for algorithm in registry.algorithms().values() for repo in algorithm.repositories
    )
