"""The log lines SageMaker's 1P algorithms print, which tuning jobs and `MetricDefinitions`
scrape (spec algorithms 1.6):

    [11/28/2026 21:00:00 INFO 140234] #quality_metric: host=algo-1, test msd <loss>=0.0657
    [11/28/2026 21:00:00 INFO 140234] #test_score (algo-1) : ('accuracy', 0.9867)
    [11/28/2026 21:00:00 INFO 140234] #progress_metric: host=algo-1, completed 50 % of epochs

`<loss>` marks a minimised metric and `<score>` a maximised one. Lines go to stdout, flushed, so
the platform's log stream and its metric scraper see them as they happen.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

from opensage.algorithms.base import Direction


def log_line(message: str, stream: TextIO | None = None) -> None:
    stamp = time.strftime("%m/%d/%Y %H:%M:%S")
    out = sys.stdout if stream is None else stream
    print(f"[{stamp} INFO {threading.get_ident() % 1_000_000}] {message}", file=out, flush=True)


def number(value: float) -> str:
    """A metric value as the regexes read it: plain decimal or exponent, never `nan`/`inf`."""
    return repr(float(value))


@dataclass
class MetricsLog:
    """Writes one host's metric lines."""

    host: str = "algo-1"

    def quality(self, channel: str, name: str, value: float, direction: Direction) -> None:
        polarity = "score" if direction == "Maximize" else "loss"
        log_line(
            f"#quality_metric: host={self.host}, {channel} {name} <{polarity}>={number(value)}"
        )

    def score(self, channel: str, name: str, value: float) -> None:
        log_line(f"#{channel}_score ({self.host}) : ('{name}', {number(value)})")

    def progress(self, done: int, total: int, what: str = "epochs") -> None:
        percent = 100 if total <= 0 else round(100 * done / total)
        log_line(f"#progress_metric: host={self.host}, completed {percent} % of {what}")

    def info(self, message: str) -> None:
        log_line(message)
