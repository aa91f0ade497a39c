"""CloudWatch metrics (GetMetricStatistics, ListMetrics) over the endpoint metrics we store.

Namespace `AWS/SageMaker`, dimensions `EndpointName` and `VariantName`, the metrics of
`endpoint_metrics`. Statistics are computed from the stored per-flush sums, so a period shorter
than the flush interval gets whole flushes. Percentiles (ExtendedStatistics) are not kept.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from opensage.control.endpoint_metrics import COUNTERS, LATENCIES
from opensage.errors import ValidationError
from opensage.store import MetricPoint, Store

NAMESPACE = "AWS/SageMaker"
_ERROR_COUNTERS = {"Invocation4XXErrors", "Invocation5XXErrors", "InvocationModelErrors"}


class CloudWatchService:
    def __init__(self, store: Store, endpoint_arn: Callable[[str], str]) -> None:
        self.store = store
        self.endpoint_arn = endpoint_arn

    def get_metric_statistics(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["MetricName"]
        if request.get("ExtendedStatistics"):
            raise ValidationError("ExtendedStatistics (percentiles) are not supported yet.")
        statistics = request.get("Statistics") or []
        if not statistics:
            raise ValidationError("Statistics must contain at least one statistic.")
        period = int(request["Period"])
        start, end = float(request["StartTime"]), float(request["EndTime"])
        if end <= start:
            raise ValidationError(
                "The parameter StartTime must be less than the parameter EndTime."
            )
        dimensions = {d["Name"]: d["Value"] for d in request.get("Dimensions", [])}
        out: dict[str, Any] = {"Label": name, "Datapoints": []}
        known = name in COUNTERS or name in LATENCIES
        if (
            request["Namespace"] != NAMESPACE
            or not known
            or set(dimensions)
            != {
                "EndpointName",
                "VariantName",
            }
        ):
            return out  # CloudWatch answers an unknown metric with no datapoints
        variant = dimensions["VariantName"]
        points = self.store.metric_points(self.endpoint_arn(dimensions["EndpointName"]), start)
        buckets: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for point in points:
            if point.timestamp >= end or not point.name.startswith(f"{variant}/"):
                continue
            key = point.name.removeprefix(f"{variant}/")
            if key in (name, f"{name}:Minimum", f"{name}:Maximum", "Invocations"):
                buckets[int((point.timestamp - start) // period)][key].append(point.value)
        unit = "Microseconds" if name in LATENCIES else "None"
        for index in sorted(buckets):
            datapoint = _statistics(name, buckets[index], statistics)
            if datapoint is not None:
                out["Datapoints"].append(
                    {"Timestamp": start + index * period, **datapoint, "Unit": unit}
                )
        return out

    def list_metrics(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("Namespace", NAMESPACE) != NAMESPACE:
            return {"Metrics": []}
        wanted = request.get("MetricName")
        filters = {d["Name"]: d.get("Value") for d in request.get("Dimensions", [])}
        metrics = []
        for endpoint in self.store.query_kind("Endpoint"):
            seen = {_split(p) for p in self.store.metric_points(endpoint.arn)}
            for variant, metric in sorted(s for s in seen if s is not None):
                dims = {"EndpointName": endpoint.name, "VariantName": variant}
                if wanted not in (None, metric):
                    continue
                if any(k not in dims or v not in (None, dims[k]) for k, v in filters.items()):
                    continue
                metrics.append(
                    {
                        "Namespace": NAMESPACE,
                        "MetricName": metric,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                    }
                )
        return {"Metrics": metrics}


def _split(point: MetricPoint) -> tuple[str, str] | None:
    variant, _, metric = point.name.partition("/")
    return None if ":" in metric or not metric else (variant, metric)


def _statistics(
    name: str, values: dict[str, list[float]], wanted: list[str]
) -> dict[str, float] | None:
    count = sum(values.get("Invocations", []))
    if count <= 0:
        return None
    total = sum(values.get(name, []))
    if name in LATENCIES:
        low = min(values.get(f"{name}:Minimum", [math.nan]))
        high = max(values.get(f"{name}:Maximum", [math.nan]))
    elif name in _ERROR_COUNTERS:  # each request emits 1 (error) or 0
        low, high = (0.0 if total < count else 1.0), (1.0 if total > 0 else 0.0)
    else:
        low = high = total / count
    every = {"SampleCount": count, "Sum": total, "Average": total / count, "Minimum": low,
             "Maximum": high}  # fmt: skip
    return {k: v for k, v in every.items() if k in wanted}
