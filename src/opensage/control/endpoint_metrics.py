"""Per-variant invocation metrics, as CloudWatch's `AWS/SageMaker` namespace defines them.

The router records every request here (in memory, cheap). A flusher turns what accumulated into
stored metric points, the autoscaler reads a sliding window of InvocationsPerInstance, and
`/metrics` renders running totals for Prometheus.

Stored points, per variant and flush: `<variant>/<metric>` holds the sum over the requests of the
period (a counter's count, a latency's total microseconds) and latencies add
`<variant>/<metric>:Minimum` and `:Maximum`; `<variant>/Invocations` is every metric's sample
count. That is enough to answer CloudWatch's statistics for any period of whole flushes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from opensage.store import MetricPoint, Store

COUNTERS = (
    "Invocations",
    "Invocation4XXErrors",
    "Invocation5XXErrors",
    "InvocationModelErrors",
    "InvocationsPerInstance",
)
LATENCIES = ("ModelLatency", "OverheadLatency")  # microseconds
_WINDOW_SECONDS = 900


class _Totals:
    """Running sums for one variant; plain attributes, since `add` runs on every request."""

    __slots__ = ("e4xx", "e5xx", "invocations", "latency_max", "latency_min", "latency_sum",
                 "model_errors", "per_instance")  # fmt: skip

    def __init__(self) -> None:
        self.invocations = self.e4xx = self.e5xx = self.model_errors = 0
        self.per_instance = 0.0
        self.latency_sum = [0.0, 0.0]  # in LATENCIES order
        self.latency_min = [math.inf, math.inf]
        self.latency_max = [0.0, 0.0]

    def add(
        self, status: int | None, per_instance: float, model_us: float, overhead_us: float
    ) -> None:
        self.invocations += 1
        if status is None or status >= 300:
            self.model_errors += 1
            if status is None or status >= 500:
                self.e5xx += 1
            elif status >= 400:
                self.e4xx += 1
        self.per_instance += per_instance
        for index, value in ((0, model_us), (1, overhead_us)):
            self.latency_sum[index] += value
            if value < self.latency_min[index]:
                self.latency_min[index] = value
            if value > self.latency_max[index]:
                self.latency_max[index] = value

    def counters(self) -> dict[str, float]:
        return dict(zip(COUNTERS, (self.invocations, self.e4xx, self.e5xx, self.model_errors,
                                   self.per_instance), strict=True))  # fmt: skip


class EndpointMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], _Totals] = {}
        self._totals: dict[tuple[str, str], _Totals] = {}
        # per (endpoint, variant): deque of [second, invocations per instance]
        self._window: dict[tuple[str, str], deque[list[float]]] = {}

    def record(
        self,
        endpoint: str,
        variant: str,
        *,
        status: int | None,
        model_us: float,
        overhead_us: float,
        instances: int,
    ) -> None:
        """One invocation that reached a container; `status` None means no valid answer."""
        per_instance = 1.0 / instances if instances > 1 else 1.0
        key = (endpoint, variant)
        second = float(int(time.time()))
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Totals()
            pending.add(status, per_instance, model_us, overhead_us)
            totals = self._totals.get(key)
            if totals is None:
                totals = self._totals[key] = _Totals()
            totals.add(status, per_instance, model_us, overhead_us)
            window = self._window.setdefault(key, deque())
            if window and window[-1][0] == second:
                window[-1][1] += per_instance
            else:
                window.append([second, per_instance])
                while window and window[0][0] < second - _WINDOW_SECONDS:
                    window.popleft()

    def invocations_per_instance(self, endpoint: str, variant: str, seconds: float) -> float:
        """Sum of InvocationsPerInstance over the last `seconds` (what target tracking reads)."""
        since = time.time() - seconds
        with self._lock:
            window = self._window.get((endpoint, variant), deque())
            return sum(value for second, value in window if second >= since)

    def drain(self) -> dict[str, list[MetricPoint]]:
        """The points accumulated since the last drain, by endpoint."""
        now = time.time()
        with self._lock:
            pending, self._pending = self._pending, {}
        out: dict[str, list[MetricPoint]] = {}
        for (endpoint, variant), totals in pending.items():
            points = out.setdefault(endpoint, [])
            for name, value in totals.counters().items():
                points.append(MetricPoint(f"{variant}/{name}", value, now))
            for index, name in enumerate(LATENCIES):
                total = totals.latency_sum[index]
                points.append(MetricPoint(f"{variant}/{name}", total, now))
                points.append(
                    MetricPoint(f"{variant}/{name}:Minimum", totals.latency_min[index], now)
                )
                points.append(
                    MetricPoint(f"{variant}/{name}:Maximum", totals.latency_max[index], now)
                )
        return out

    def forget(self, endpoint: str) -> None:
        with self._lock:
            for table in (self._pending, self._totals, self._window):
                for key in [k for k in table if k[0] == endpoint]:
                    del table[key]

    def prometheus(self) -> str:
        """Running totals in the Prometheus text format (counters and latency summaries)."""
        with self._lock:
            totals = {
                key: (t.counters(), dict(zip(LATENCIES, t.latency_sum, strict=True)))
                for key, t in self._totals.items()
            }
        lines: list[str] = []
        for name in COUNTERS:
            metric = f"opensage_endpoint_{_snake(name)}_total"
            lines += [f"# HELP {metric} SageMaker's {name}, summed.", f"# TYPE {metric} counter"]
            for (endpoint, variant), (counters, _) in sorted(totals.items()):
                lines.append(f"{metric}{_labels(endpoint, variant)} {counters[name]:g}")
        for name in LATENCIES:
            metric = f"opensage_endpoint_{_snake(name)}_microseconds"
            lines += [f"# HELP {metric} SageMaker's {name}.", f"# TYPE {metric} summary"]
            for (endpoint, variant), (counters, sums) in sorted(totals.items()):
                labels = _labels(endpoint, variant)
                lines.append(f"{metric}_sum{labels} {sums[name]:g}")
                lines.append(f"{metric}_count{labels} {counters['Invocations']:g}")
        return "\n".join(lines) + "\n"


def _labels(endpoint: str, variant: str) -> str:
    return f'{{endpoint="{endpoint}",variant="{variant}"}}'


def _snake(name: str) -> str:
    name = name.replace("4XX", "_4xx").replace("5XX", "_5xx")
    out = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    return out.replace("__", "_")


class MetricsFlusher:
    """Stores what the router recorded, every `period` seconds, until stopped."""

    def __init__(
        self,
        metrics: EndpointMetrics,
        store: Store,
        arn_of: Callable[[str], str],
        period: float,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.arn_of = arn_of
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="endpoint-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.flush()

    def flush(self) -> None:
        for endpoint, points in self.metrics.drain().items():
            arn = self.arn_of(endpoint)
            if self.store.get_by_arn(arn) is not None:
                self.store.add_points(arn, points)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.flush()
