"""BlazingText's compiled CPU path: `_fasttext.c`, fastText's own per-example Hogwild SGD,
built at install time when a C compiler is there (`[tool.setuptools] ext-modules`, optional).

On the CPU it is the one way BlazingText trains when it is built: fastText's loop runs one
example at a time with the hidden vector in cache, which no batch of PyTorch ops matches on a
CPU. The PyTorch path stays for the GPU, and for a CPU where the module could not be built
(`KERNELS is None`): the same model, trained in mini-batches.

Threads: every core (`cpu_threads`), as SageMaker's BlazingText does, unless OMP_NUM_THREADS
says otherwise. One thread trains bit-reproducibly for a seed; several threads update the
shared tables without locks (Hogwild, as fastText), so their result varies from run to run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final

import numpy as np
import numpy.typing as npt

from opensage.algorithms.blazingtext.text import IntArray

try:
    from opensage.algorithms.blazingtext import _fasttext
except ImportError:  # not built: no C compiler (or no pthreads) when the package was installed
    _fasttext = None  # type: ignore[assignment]

KERNELS: Final = _fasttext
"""The compiled module, or None where it is not built."""

REPORT_EVERY: Final = 0.1
"""Seconds between looks at the training counter, for the per-epoch log lines."""


def cpu_threads() -> int:
    """Threads for CPU training: OMP_NUM_THREADS when set (the job's explicit choice; 1 gives a
    reproducible model), else every core."""
    explicit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if explicit.isdigit() and int(explicit) > 0:
        return int(explicit)
    return os.cpu_count() or 1


def describe(compiled: bool, device: str, threads: int) -> str:
    """The log line saying how a job trains, so a slow CPU job shows it lacks the module."""
    if compiled:
        return f"Training on the CPU with the compiled fastText loop, {threads} thread(s)"
    if device == "cpu":
        return "Training on the CPU with PyTorch (the compiled loop is not built)"
    return f"Training on {device} with PyTorch"


def flat_rows(padded: IntArray) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """Rows padded with -1 (one row of ids per word) as the kernels take them: the ids, flat,
    and each word's offsets into them."""
    present = padded >= 0
    offsets = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int64)
    return padded[present].astype(np.int32), offsets


def line_starts(line_of: IntArray) -> npt.NDArray[np.int64]:
    """Where each line starts in a corpus given the line of each position, and its end."""
    starts = np.flatnonzero(np.diff(line_of)) + 1
    return np.concatenate([[0], starts, [len(line_of)]]).astype(np.int64)


class EpochReports:
    """Per-epoch log lines while a kernel trains without the GIL: the C threads never call back
    into Python, so a side thread watches the shared word counter instead. Epochs that end
    between two looks share the time between them."""

    def __init__(
        self,
        counter: npt.NDArray[np.int64],
        words: int,
        epochs: int,
        info: Callable[[str], None] | None,
    ) -> None:
        self.counter = counter
        self.words = max(words, 1)
        self.epochs = epochs
        self.info = info
        self.reported = 0
        self.since = time.perf_counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.watcher = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> EpochReports:
        if self.info is not None:
            self.watcher.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.info is None:
            return
        self.stop.set()
        self.watcher.join()
        if kind is None:
            self._report(self.epochs)

    def _watch(self) -> None:
        while not self.stop.wait(REPORT_EVERY):
            self._report(min(self.epochs, int(self.counter[0]) // self.words))

    def _report(self, finished: int) -> None:
        with self.lock:
            if self.info is None or finished <= self.reported:
                return
            now = time.perf_counter()
            seconds = (now - self.since) / (finished - self.reported)
            for epoch in range(self.reported + 1, finished + 1):
                self.info(
                    f"Epoch {epoch}/{self.epochs}: {self.words} words in {seconds:.2f} s "
                    f"({self.words / max(seconds, 1e-9):,.0f} words/s)"
                )
            self.reported, self.since = finished, now
