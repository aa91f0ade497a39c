"""Worker processes: with `SAGEMAKER_MODEL_SERVER_WORKERS` above 1, that many processes each
load their own handler, as SageMaker's model servers (MMS, gunicorn) run a worker process per
CPU.

Processes rather than threads because a handler's parsing and encoding hold the GIL: two worker
threads take turns on two 6 MB batch-transform requests, two processes run side by side.

The shape is MMS's: one front-end process listens on the one socket and hands each request to an
idle worker over a socket pair, so no keep-alive connection is pinned to a busy worker and
`/ping` stays on the front end's event loop. The workers are forked before anything heavy is
imported (no threads, no OpenMP pool, no CUDA context yet) and then load the model themselves.
`WorkerPool.start` returns once every worker has loaded, before the front end binds its socket,
so "the socket accepts and /ping answers" still means ready.

A worker ignores SIGTERM (the platform signals the whole process group): it finishes its request
and leaves when the front end closes its end of the pair, or at once when the front end dies
(end of file). A worker that dies stops the whole server, which then exits 1, as a crash of a
single-process server would: the control plane replaces the instance.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any, Final

from opensage.serving.errors import InferenceError, status_of
from opensage.serving.handler import Handler, Result

log = logging.getLogger("opensage.serving")

STOP_GRACE_SECONDS: Final = 2.0
"""How long `close` waits for idle workers to leave before it kills them."""


class StartupFailed(Exception):
    """A worker could not load the model; the message is the one line the server prints."""


class WorkerDied(Exception):
    """A worker exited while it held a request."""


@dataclass
class _Worker:
    number: int
    pid: int
    conn: Connection
    exited: threading.Event = field(default_factory=threading.Event)
    code: int | None = None


class WorkerPool:
    """The `Handler` protocol over forked worker processes, one request per worker at a time."""

    def __init__(self, workers: list[_Worker], parameters: tuple[Any, ...]) -> None:
        self._workers = workers
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        for worker in workers:
            self._idle.put(worker)
        self._parameters = parameters
        self._closing = False
        self.failed = False
        """Set when a worker died while serving: the server should exit 1."""

    @classmethod
    def start(cls, load: Callable[[], Handler], count: int) -> WorkerPool:
        """Fork `count` workers that each call `load`; raise `StartupFailed` if any cannot.

        `load` runs in the workers only, and must raise `StartupFailed` with the line to show
        (after printing any traceback) when the model cannot be loaded.
        """
        workers: list[_Worker] = []
        for number in range(1, count + 1):
            front, back = Pipe()
            pid = os.fork()
            if pid == 0:  # the worker: it keeps only its own end of its own pair
                front.close()
                for other in workers:
                    other.conn.close()
                share_cpus(count)
                exit_now(_work(load, back))
            back.close()
            workers.append(_Worker(number, pid, front))
        pool: WorkerPool | None = None
        try:
            answers = [_first_message(worker) for worker in workers]
            pool = cls(workers, answers[0])
        finally:
            if pool is None:
                for worker in workers:
                    _kill(worker.pid)
                    _reap(worker)
        for worker in workers:
            threading.Thread(
                target=pool._watch, args=(worker,), name=f"worker-{worker.number}", daemon=True
            ).start()
        return pool

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
    ) -> Result:
        worker = self._idle.get()
        try:
            worker.conn.send((content_type, accept, custom_attributes))
            worker.conn.send_bytes(body)
            result: Result = worker.conn.recv()
        except (EOFError, OSError):
            raise WorkerDied(
                f"model server worker {worker.number} (pid {worker.pid}) exited during the request"
            ) from None
        finally:
            self._idle.put(worker)
        return result

    def execution_parameters(self) -> Mapping[str, object] | None:
        """The first worker's answer at start-up: it depends on the model and environment only."""
        if self._parameters[0] == "error":
            raise InferenceError(self._parameters[1], self._parameters[2])
        parameters: Mapping[str, object] | None = self._parameters[1]
        return parameters

    def close(self) -> None:
        """Let idle workers leave (end of file), then kill whoever has not within the grace."""
        self._closing = True
        for worker in self._workers:
            worker.conn.close()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in self._workers:
            if not worker.exited.wait(max(0.0, deadline - time.monotonic())):
                _kill(worker.pid)

    def _watch(self, worker: _Worker) -> None:
        """Reap the worker; if it dies while the server is serving, stop the server."""
        _reap(worker)
        if self._closing:
            return
        self.failed = True
        log.error(
            "Model server worker %d (pid %d) exited with code %s; stopping the model server",
            worker.number,
            worker.pid,
            worker.code,
        )
        os.kill(os.getpid(), signal.SIGTERM)


def _first_message(worker: _Worker) -> tuple[Any, ...]:
    """The worker's execution parameters once it has loaded, or `StartupFailed`."""
    try:
        message: tuple[Any, ...] = worker.conn.recv()
    except (EOFError, OSError):
        _reap(worker)
        raise StartupFailed(
            f"model server worker {worker.number} exited with code {worker.code} while "
            "loading the model"
        ) from None
    if message[0] == "failed":
        raise StartupFailed(message[1])
    return message[1:]


THREAD_VARIABLES: Final = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def share_cpus(workers: int) -> None:
    """Size this worker's native thread pools (OpenMP, BLAS) to its share of the CPUs, unless
    the environment says otherwise: `workers` pools as wide as the machine spin against each
    other (on 2 CPUs, Linear Learner's matrix products cost 40 % more CPU). It works because no
    numerical library is loaded yet when the worker is forked."""
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, threads)


def _work(load: Callable[[], Handler], conn: Connection) -> int:
    """A worker's life: load, report, then answer requests until the front end goes."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        handler = load()
    except StartupFailed as exc:
        conn.send(("failed", str(exc)))
        return 1
    conn.send(("ready", *_parameters(handler)))
    from opensage.serving.app import error_result  # the same error mapping as one process

    while True:
        try:
            content_type, accept, custom_attributes = conn.recv()
            body = conn.recv_bytes()
        except (EOFError, OSError):
            return 0
        try:
            result = handler.invoke(body, content_type, accept, custom_attributes)
        except Exception as exc:
            result = error_result(exc)
        try:
            conn.send(result)
        except OSError:
            return 0


def _parameters(handler: Handler) -> tuple[Any, ...]:
    """("ok", parameters or None) or ("error", status, message), sendable as they are."""
    try:
        return ("ok", handler.execution_parameters())
    except Exception as exc:
        chosen = status_of(exc) or (500, f"{type(exc).__name__}: {exc}")
        return ("error", *chosen)


def _reap(worker: _Worker) -> None:
    try:
        _, status = os.waitpid(worker.pid, 0)
        worker.code = os.waitstatus_to_exitcode(status)
    except ChildProcessError:
        pass
    worker.exited.set()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def exit_now(code: int) -> None:
    """Flush and leave without interpreter teardown: a stuck prediction thread must not keep a
    stopped server alive, and unloading xgboost and friends costs time for nothing."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
