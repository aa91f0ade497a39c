"""Metric extraction: `MetricDefinitions` regexes applied to a job's log lines."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from opensage.store import MetricPoint


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    regex: re.Pattern[str]


def compile_definitions(definitions: list[dict[str, str]]) -> list[MetricDefinition]:
    """Later definitions of the same name (the user's) replace earlier ones (a built-in's)."""
    by_name = {d["Name"]: d["Regex"] for d in definitions}
    return [MetricDefinition(name, re.compile(regex)) for name, regex in by_name.items()]


def extract(definitions: list[MetricDefinition], line: str, timestamp: float) -> list[MetricPoint]:
    """Every non-overlapping match of each regex; group 1 as a float, NaN and junk skipped."""
    points = []
    for definition in definitions:
        for match in definition.regex.finditer(line):
            text = match.group(1) if match.groups() else match.group(0)
            try:
                value = float(text)
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                points.append(MetricPoint(definition.name, value, timestamp))
    return points


def final_metrics(points: list[MetricPoint]) -> list[dict[str, float | str]]:
    last: dict[str, MetricPoint] = {}
    for point in points:
        last[point.name] = point
    return [
        {"MetricName": p.name, "Value": p.value, "Timestamp": p.timestamp} for p in last.values()
    ]
