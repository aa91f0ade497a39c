"""Serving a user's inference script with the SageMaker Inference Toolkit's semantics (§1.6).

Scripts written for SageMaker's framework containers define some of `model_fn`, `input_fn`,
`predict_fn`, `output_fn`, `transform_fn`, `pre_model_fn`, `model_warmup_fn`; each may take a
trailing `context` (see `opensage.serving.context`). The differences from the toolkit are about
failing early: the module, the model and every handler's arity are checked at start-up (the
toolkit defers all of it to the first request), and `requirements.txt` is not installed,
because opensage serves with the platform's own Python environment.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from opensage.serving import codecs
from opensage.serving.context import Context
from opensage.serving.environment import ServingEnvironment
from opensage.serving.handler import CUSTOM_ATTRIBUTES_HEADER, Result

DEFAULT_MODULE = "inference"
DEFAULT_ACCEPT = codecs.JSON
log = logging.getLogger("opensage.serving")


@dataclass(frozen=True)
class Step:
    """A handler function and whether it takes the trailing `context` (decided once)."""

    func: Callable[..., Any]
    takes_context: bool

    @classmethod
    def of(cls, func: Callable[..., Any], arity: int) -> Step:
        """Check the arity like the toolkit: `arity` arguments, or one more for the context."""
        try:
            count = len(inspect.signature(func).parameters)
        except (TypeError, ValueError):  # a builtin without a signature: call it plainly
            return cls(func, False)
        if count not in (arity, arity + 1):
            name = getattr(func, "__name__", repr(func))
            raise TypeError(
                f"{name} takes {count} arguments but {arity} (or {arity + 1} with a trailing "
                "context) are passed to it."
            )
        return cls(func, count == arity + 1)

    def __call__(self, context: Context, *args: Any) -> Any:
        return self.func(*args, context) if self.takes_context else self.func(*args)


class ScriptHandler:
    """`transform_fn(model, data, content_type, accept)` per request, with the toolkit's I/O."""

    def __init__(
        self,
        model: Any,
        model_dir: Path,
        transform: Callable[[Context, Any, Any, str | None, str], Any],
        default_accept: str,
        execution_parameters_fn: Callable[[], Any] | None = None,
    ) -> None:
        self.model = model
        self.model_dir = model_dir
        self._transform = transform
        self.default_accept = default_accept
        self._execution_parameters_fn = execution_parameters_fn

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
    ) -> Result:
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        if custom_attributes is not None:
            headers[CUSTOM_ATTRIBUTES_HEADER] = custom_attributes
        context = Context(self.model_dir, headers)
        if not accept or accept == "*/*":
            accept = self.default_accept
        data: str | bytes = body.decode("utf-8") if content_type in codecs.UTF8_TYPES else body
        result = self._transform(context, self.model, data, content_type, accept)
        response_type = accept
        if isinstance(result, tuple):  # (body, content_type), as the toolkit allows
            result, response_type = result[0], result[1]
        processor = context.request_processor[0]
        return Result(
            body=_as_bytes(result),
            content_type=str(response_type),
            status=processor.status_code or 200,
            custom_attributes=context.response_custom_attributes,
        )

    def execution_parameters(self) -> Mapping[str, object] | None:
        """The legacy `execution_parameters_fn()` answer, if the module defines one."""
        if self._execution_parameters_fn is None:
            return None
        answer = self._execution_parameters_fn()
        if isinstance(answer, str | bytes | bytearray):
            answer = json.loads(answer)
        if not isinstance(answer, Mapping):
            raise TypeError(f"execution_parameters_fn returned {type(answer).__name__}, not a dict")
        return answer


def load(env: ServingEnvironment) -> ScriptHandler:
    """Import the user module, load the model and bind the handler functions."""
    code_dirs = _code_dirs(env)
    # The model directory may be shared by several instances or read-only: no __pycache__ there.
    sys.dont_write_bytecode = True
    for directory in reversed(code_dirs):
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))
    for directory in code_dirs:
        if (directory / "requirements.txt").is_file():
            log.warning(
                "Not installing %s: opensage serves models with the platform's Python "
                "environment; install what the script needs into it instead.",
                directory / "requirements.txt",
            )
    module_name = _module_name(env.program)
    module = _import(module_name)
    functions = _Functions.of(module, module_name, code_dirs)
    init_context = Context(env.model_dir)
    model_dir = str(env.model_dir)
    if functions.pre_model_fn is not None:
        Step.of(functions.pre_model_fn, 1)(init_context, model_dir)
    model = Step.of(functions.model_fn, 1)(init_context, model_dir)
    if functions.model_warmup_fn is not None:
        Step.of(functions.model_warmup_fn, 2)(init_context, model_dir, model)
    return ScriptHandler(
        model=model,
        model_dir=env.model_dir,
        transform=functions.transform(model),
        default_accept=env.default_accept or DEFAULT_ACCEPT,
        execution_parameters_fn=getattr(module, "execution_parameters_fn", None),
    )


@dataclass(frozen=True)
class _Functions:
    """The user's functions, with the toolkit's defaults for the missing ones."""

    model_fn: Callable[..., Any]
    transform_fn: Callable[..., Any] | None
    input_fn: Callable[..., Any]
    predict_fn: Callable[..., Any] | None
    output_fn: Callable[..., Any]
    pre_model_fn: Callable[..., Any] | None
    model_warmup_fn: Callable[..., Any] | None

    @classmethod
    def of(cls, module: ModuleType | None, module_name: str, code_dirs: list[Path]) -> _Functions:
        def user(name: str) -> Callable[..., Any] | None:
            func = getattr(module, name, None)
            return func if callable(func) else None

        transform_fn = user("transform_fn")
        input_fn, predict_fn, output_fn = user("input_fn"), user("predict_fn"), user("output_fn")
        if transform_fn and (input_fn or predict_fn or output_fn):
            raise ValueError(
                "Cannot use transform_fn implementation in conjunction with input_fn, "
                f"predict_fn, and/or output_fn implementation (in module {module_name!r})"
            )
        return cls(
            model_fn=user("model_fn") or _missing_model_fn(module, module_name, code_dirs),
            transform_fn=transform_fn,
            input_fn=input_fn or codecs.default_input_fn,
            predict_fn=predict_fn,
            output_fn=output_fn or codecs.default_output_fn,
            pre_model_fn=user("pre_model_fn"),
            model_warmup_fn=user("model_warmup_fn"),
        )

    def transform(self, model: Any) -> Callable[[Context, Any, Any, str | None, str], Any]:
        """The per-request function, its arities checked now rather than on first use."""
        if self.transform_fn is not None:
            return Step.of(self.transform_fn, 4)
        input_step = Step.of(self.input_fn, 2)
        predict_step = Step.of(self.predict_fn or _default_predict_fn(model), 2)
        output_step = Step.of(self.output_fn, 2)

        def transform(
            context: Context, model: Any, data: Any, content_type: Any, accept: str
        ) -> Any:
            decoded = input_step(context, data, content_type)
            prediction = predict_step(context, decoded, model)
            return output_step(context, prediction, accept)

        return transform


def _default_predict_fn(model: Any) -> Callable[[Any, Any], Any]:
    """`model.predict(data)`, else `model(data)`; a model with neither fails at start-up."""
    if callable(getattr(model, "predict", None)):
        return lambda data, model: model.predict(data)
    if callable(model):
        return lambda data, model: model(data)
    raise TypeError(
        f"The model returned by model_fn (a {type(model).__name__}) has no predict method and is "
        "not callable: define predict_fn (or transform_fn) in the inference script."
    )


def _missing_model_fn(
    module: ModuleType | None, module_name: str, code_dirs: list[Path]
) -> Callable[[str], Any]:
    where = ", ".join(str(directory) for directory in code_dirs) or "the model's code/ folder"
    found = (
        f"module {module_name!r} defines none"
        if module is not None
        else f"no module {module_name!r} was found in {where} (set SAGEMAKER_PROGRAM to name it)"
    )

    def model_fn(model_dir: str) -> Any:
        raise NotImplementedError(
            f"Please provide a model_fn implementation: {found}. See documentation for model_fn "
            "at https://sagemaker.readthedocs.io/en/stable/"
        )

    return model_fn


def _code_dirs(env: ServingEnvironment) -> list[Path]:
    """`<model_dir>/code`, then a local `SAGEMAKER_SUBMIT_DIRECTORY` (an S3 URI is ignored: the
    platform extracts that code into `<model_dir>/code` before the server starts)."""
    candidates = [env.model_dir / "code"]
    if env.submit_directory and "://" not in env.submit_directory:
        candidates.append(Path(env.submit_directory))
    unique: list[Path] = []
    for directory in candidates:
        if directory.is_dir() and directory not in unique:
            unique.append(directory)
    return unique


def _module_name(program: str | None) -> str:
    name = (program or DEFAULT_MODULE).strip()
    return name.removesuffix(".py") or DEFAULT_MODULE


def _import(module_name: str) -> ModuleType | None:
    """The user module, or None when there is none (the toolkit then uses defaults only)."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        log.info("No inference module %r found; using the default handlers", module_name)
        return None
    log.info("Importing inference module %r from %s", module_name, spec.origin)
    return importlib.import_module(module_name)


def _as_bytes(value: Any) -> bytes:
    """The response body: bytes as is, str as UTF-8, None empty, anything else as JSON (MMS)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if value is None:
        return b""
    return codecs.to_json(value).encode("utf-8")
