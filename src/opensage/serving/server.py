"""`python -m opensage.serving serve`: load the model, then listen until SIGTERM.

The order is the contract with the control plane: the model is loaded *before* the socket or
port exists, so "the socket accepts and `/ping` answers 200" means ready. If loading fails, the
traceback goes to stderr followed by one summary line (the control plane copies the last
stderr lines into the endpoint's FailureReason) and the process exits 1. SIGTERM makes uvicorn
finish the requests in flight and the process exits 0.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import pkgutil
import re
import signal
import stat
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Final, cast

from opensage.serving.app import InferenceApp
from opensage.serving.environment import HANDLER_ENV, ServingEnvironment
from opensage.serving.handler import Handler
from opensage.serving.workers import StartupFailed, WorkerPool

USAGE: Final = "usage: python -m opensage.serving serve"
GRACEFUL_SHUTDOWN_SECONDS: Final = 25
"""SageMaker sends SIGKILL 30 s after SIGTERM; give up on stuck requests a little before."""
_UNIX_PATH_MAX: Final = 107
_HANDLER_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")
log = logging.getLogger("opensage.serving")


class StartupError(Exception):
    """A configuration problem worth one clear line and no traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 usage, 1 failed start-up, 0 stopped)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["serve"]:
        print(USAGE, file=sys.stderr)
        return 2
    logging.basicConfig(
        stream=sys.stderr, level=_log_level(), format="[%(asctime)s %(levelname)s] %(message)s"
    )
    # Until uvicorn takes over the signals, SIGTERM (e.g. during a slow model load) is a clean
    # exit; afterwards uvicorn re-raises it once it has shut down, which lands here as well.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    try:
        return _run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def _run() -> int:
    """Configure, load, serve: each phase names itself in the failure's last stderr line."""
    try:
        env = ServingEnvironment.from_env()
    except ValueError as exc:
        return _fail(f"invalid configuration: {exc}")
    try:
        if env.workers == 1:
            handler: Handler = _load(env)
        else:
            handler = WorkerPool.start(functools.partial(_load, env), env.workers)
    except StartupFailed as exc:
        return _fail(str(exc))
    pool = handler if isinstance(handler, WorkerPool) else None
    try:
        code = serve(InferenceApp(handler, env.workers, env.max_payload_bytes), env)
    except SystemExit as exc:  # uvicorn re-raises the SIGTERM it stopped on, once it has
        code = exc.code if isinstance(exc.code, int) else 1
    except StartupError as exc:
        return _fail(str(exc))
    except Exception as exc:
        return _fail("the server failed", exc)
    finally:
        if pool is not None:
            pool.close()
    return 1 if pool is not None and pool.failed else code


def _load(env: ServingEnvironment) -> Handler:
    """`load_handler`, every failure a `StartupFailed` carrying the line to show (a traceback,
    where there is one, printed first): a worker process sends that line to the front end."""
    try:
        return load_handler(env)
    except StartupError as exc:
        raise StartupFailed(str(exc)) from None
    except Exception as exc:
        traceback.print_exception(exc, file=sys.stderr)
        raise StartupFailed(f"could not load the model: {_one_line(exc)}") from None


def _fail(what: str, exc: BaseException | None = None) -> int:
    """Traceback first, then the one line the control plane shows as the FailureReason."""
    if exc is not None:
        traceback.print_exception(exc, file=sys.stderr)
        what += f": {_one_line(exc)}"
    print(f"opensage.serving: {what}", file=sys.stderr, flush=True)
    return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def load_handler(env: ServingEnvironment) -> Handler:
    """The built-in handler named by `OPENSAGE_SERVING_HANDLER`, else the user-script one."""
    if env.handler is None:
        from opensage.serving import toolkit

        return toolkit.load(env)
    load = _builtin_loader(env.handler)
    log.info("Loading built-in handler %r from %s", env.handler, env.model_dir)
    return load(env.model_dir)


def _builtin_loader(name: str) -> Callable[[Path], Handler]:
    """`opensage.algorithms.<name>.serve.load`, or a StartupError listing the known names."""
    module_name = f"opensage.algorithms.{name}.serve"
    if _HANDLER_NAME.fullmatch(name):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name not in (module_name, f"opensage.algorithms.{name}"):
                raise  # the handler exists but one of its own imports is missing
        else:
            load = getattr(module, "load", None)
            if callable(load):
                return cast(Callable[[Path], Handler], load)
    known = ", ".join(builtin_handlers()) or "none"
    raise StartupError(
        f"{HANDLER_ENV}={name!r} names no built-in serving handler (no {module_name}.load); "
        f"known handlers: {known}. Unset it to serve a user inference script."
    )


def builtin_handlers() -> list[str]:
    """The algorithm packages that ship a `serve` module."""
    import opensage.algorithms

    return sorted(
        info.name
        for info in pkgutil.iter_modules(opensage.algorithms.__path__)
        if info.ispkg and importlib.util.find_spec(f"opensage.algorithms.{info.name}.serve")
    )


def serve(app: InferenceApp, env: ServingEnvironment) -> int:
    """Run uvicorn on the Unix socket or TCP port until SIGTERM/SIGINT; return the exit code."""
    import uvicorn

    if env.socket:
        _prepare_socket_path(env.socket)
        where = f"unix socket {env.socket}"
    else:
        where = f"http://{env.host}:{env.port}"
    config = uvicorn.Config(
        app,
        uds=env.socket,
        host=env.host,
        port=env.port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        lifespan="off",
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = uvicorn.Server(config)
    workers = "1 process" if env.workers == 1 else f"{env.workers} worker processes"
    log.info("Model loaded; serving on %s with %s", where, workers)
    try:
        server.run()
    finally:
        app.close()
        if env.socket:
            _remove_socket(env.socket)
    return 0 if server.started else 1


def _prepare_socket_path(path: str) -> None:
    if len(os.fsencode(path)) > _UNIX_PATH_MAX:
        raise StartupError(f"Unix socket path is longer than {_UNIX_PATH_MAX} bytes: {path}")
    _remove_socket(path)  # a stale socket left by a killed server


def _remove_socket(path: str) -> None:
    """Unlink `path` if it is a socket; any other file is left for bind to complain about."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _log_level() -> int:
    """`SAGEMAKER_CONTAINER_LOG_LEVEL` as the SageMaker SDK sets it ("20" = INFO)."""
    raw = os.environ.get("SAGEMAKER_CONTAINER_LOG_LEVEL", "")
    return int(raw) if raw.isdigit() else logging.INFO
