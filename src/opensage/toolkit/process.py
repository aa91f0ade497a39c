"""Running a child process: output passed through, a stderr tail kept, signals forwarded."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from opensage.contract import FAILURE_REASON_LIMIT
from opensage.toolkit.errors import CalledProcessError, StopRequested

STDERR_TAIL_BYTES = 8192
# The part of the stderr tail that goes into the failure text: small enough that the
# `ErrorMessage` (the end of stderr, where the exception is) survives the platform's cut of
# the failure file to FailureReason (1024 characters, "AlgorithmError: " included).
ERROR_MESSAGE_CHARS = FAILURE_REASON_LIMIT - 124
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DRAIN_TIMEOUT_S = 5.0


def error_message(tail: bytes, limit: int = ERROR_MESSAGE_CHARS) -> str:
    """The end of a stderr tail as text: at most `limit` characters, from a line start."""
    text = tail.decode("utf-8", "replace").strip()
    if len(text) <= limit:
        return text
    text = text[-limit:]
    newline = text.find("\n")
    return text[newline + 1 :] if 0 <= newline < len(text) - 1 else text


class Supervisor:
    """Runs one child at a time and forwards SIGTERM/SIGINT to it.

    The platform stops a job with SIGTERM (then SIGKILL after a grace period). A signal that
    arrives while a child runs is passed on and the child is waited for; one that arrives
    between children raises `StopRequested` so the toolkit stops at once.
    """

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self._spawning = False
        self.stop_signal: int | None = None

    def install(self) -> None:
        """Take over SIGTERM and SIGINT (only possible from the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_signal = signum
        child = self._child
        if child is None:
            if self._spawning:
                return  # `run` forwards it as soon as the child exists
            raise StopRequested(signum)
        _send(child, signum)

    def run(
        self,
        cmd: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        error_class: type[CalledProcessError],
    ) -> None:
        """Run `cmd`; raise `error_class` with the stderr tail if it exits non-zero.

        stdout is inherited (it goes straight to the toolkit's stdout); stderr is read through a
        pipe, copied to the toolkit's stderr as it arrives, and its last bytes are kept.
        """
        if self.stop_signal is not None:
            raise StopRequested(self.stop_signal)
        tail = _Tail(STDERR_TAIL_BYTES)
        self._spawning = True
        try:
            child = subprocess.Popen(
                list(cmd), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            self._child = child
        finally:
            self._spawning = False
        assert child.stderr is not None
        pump = threading.Thread(target=_pump, args=(child.stderr.fileno(), tail), daemon=True)
        pump.start()
        try:
            if self.stop_signal is not None:
                _send(child, self.stop_signal)
            return_code = child.wait()
        finally:
            self._child = None
        # A grandchild that keeps stderr open must not hang the toolkit.
        pump.join(DRAIN_TIMEOUT_S)
        if not pump.is_alive():
            child.stderr.close()
        if return_code == 0:
            return
        if self.stop_signal is not None:
            raise StopRequested(self.stop_signal)
        raise error_class(" ".join(cmd), return_code, error_message(tail.value()))


def _send(child: subprocess.Popen[bytes], signum: int) -> None:
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)


class _Tail:
    """The last `limit` bytes written, safe to read while the pump thread writes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._data = bytearray()
        self._lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self._lock:
            self._data.extend(chunk)
            if len(self._data) > self._limit:
                del self._data[: -self._limit]

    def value(self) -> bytes:
        with self._lock:
            return bytes(self._data)


def _pump(fd: int, tail: _Tail) -> None:
    """Copy the child's stderr to ours as it arrives, keeping the tail."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        tail.add(chunk)
        _write_stderr(chunk)


def _write_stderr(chunk: bytes) -> None:
    stream = sys.stderr
    if stream is None:
        return
    try:
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            stream.flush()
            buffer.write(chunk)
            buffer.flush()
        else:
            stream.write(chunk.decode("utf-8", "replace"))
            stream.flush()
    except (OSError, ValueError):
        pass
