"""DeepAR's data (spec algorithms §15(b)): time series records read from JSON Lines (plain or
gzip) or Parquet files, their checks, and what the network sees of a time step: the lags and
the automatic date features of the frequency (§15(f)).

A record is `{"start": "2009-11-01 00:00:00", "target": [4.3, "NaN", 5.1], "cat": [0, 1],
"dynamic_feat": [[1.1, 1.2, 0.5]]}`; missing targets are `null` or `"NaN"`. Every problem
becomes a `UserError` naming the channel, the file and the line, as SageMaker's own messages do.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from opensage.algorithms.base import JSON, JSONLINES, UserError
from opensage.algorithms.deepar.spec import PARQUET, Frequency
from opensage.algorithms.env import data_files

Floats = npt.NDArray[np.float32]
LAG_LIMIT: Final = 1200
"""GluonTS's `lag_ub`: no lag further back than this many steps."""
MIN_OBSERVATIONS: Final = 300
_GZIP_MAGIC: Final = b"\x1f\x8b"
_PARQUET_MAGIC: Final = b"PAR1"


# --- lags and date features --------------------------------------------------------------------


def _around(middle: Fraction, delta: int) -> list[int]:
    centre = math.floor(middle)
    return list(range(centre - delta, centre + delta + 1))


def _cycles(period: int, multiple: Fraction, delta: int, cycles: int) -> list[list[int]]:
    return [_around(Fraction(k * period) / multiple, delta) for k in range(1, cycles + 1)]


def _weeks(multiple: Fraction) -> list[list[int]]:
    week_lags = [math.floor(Fraction(n) / multiple) for n in (4, 8, 12)]
    return [*_cycles(52, multiple, 1, 3), week_lags]


def _days(multiple: Fraction) -> list[list[int]]:
    return _cycles(7, multiple, 1, 4) + _cycles(30, multiple, 1, 4)


def frequency_lags(freq: Frequency) -> list[int]:
    """GluonTS's `get_lags_for_frequency`: 1..7, then the same season (+/- a step or two) of
    the previous cycles of each longer period (daily data: 1-4 weeks, 1-4 months, 1-3 years),
    up to `LAG_LIMIT` steps."""
    n = Fraction(freq.multiple)
    groups: list[list[int]]
    if freq.unit == "M":
        groups = _cycles(12, n, 1, 3)
    elif freq.unit == "W":
        groups = _weeks(n)
    elif freq.unit == "D":
        groups = _days(n) + _weeks(n / 7)
    elif freq.unit == "H":
        groups = _cycles(24, n, 1, 7) + _days(n / 24) + _weeks(n / (24 * 7))
    else:
        groups = (
            _cycles(60, n, 2, 3)
            + _cycles(24, n / 60, 1, 7)
            + _days(n / (60 * 24))
            + _weeks(n / (60 * 24 * 7))
        )
    longer = {lag for group in groups for lag in group if 7 < lag <= LAG_LIMIT}
    return list(range(1, 8)) + sorted(longer)


DATE_FEATURES: Final = {
    "min": ("minute_of_hour", "hour_of_day", "day_of_week", "day_of_month", "day_of_year"),
    "H": ("hour_of_day", "day_of_week", "day_of_month", "day_of_year"),
    "D": ("day_of_week", "day_of_month", "day_of_year"),
    "W": ("day_of_month", "week_of_year"),
    "M": ("month_of_year",),
}
"""Spec §15(f)'s table: the automatic date features of each frequency."""


def timestamps(start: np.datetime64, freq: Frequency, steps: int, offset: int = 0) -> Any:
    """The times of steps `offset .. offset + steps - 1` from `start`, in minutes."""
    index = np.arange(offset, offset + steps, dtype=np.int64) * freq.multiple
    if freq.unit == "M":
        month = start.astype("datetime64[M]")
        return (month + index.astype("timedelta64[M]")).astype("datetime64[m]")
    minutes = {"W": 7 * 24 * 60, "D": 24 * 60, "H": 60, "min": 1}[freq.unit]
    return start.astype("datetime64[m]") + (index * minutes).astype("timedelta64[m]")


def date_features(start: np.datetime64, freq: Frequency, steps: int, offset: int = 0) -> Floats:
    """steps x len(DATE_FEATURES[unit]) values in [-0.5, 0.5], as GluonTS scales them."""
    times = timestamps(start, freq, steps, offset)
    days = times.astype("datetime64[D]")
    day_number = days.astype(np.int64)
    columns = {
        "minute_of_hour": (times.astype(np.int64) % 60) / 59.0,
        "hour_of_day": (times.astype("datetime64[h]").astype(np.int64) % 24) / 23.0,
        "day_of_week": ((day_number + 3) % 7) / 6.0,  # 1970-01-01 was a Thursday; Monday is 0
        "day_of_month": (days - days.astype("datetime64[M]")).astype(np.int64) / 30.0,
        "day_of_year": (days - days.astype("datetime64[Y]")).astype(np.int64) / 365.0,
        "week_of_year": ((days - days.astype("datetime64[Y]")).astype(np.int64) // 7) / 52.0,
        "month_of_year": (times.astype("datetime64[M]").astype(np.int64) % 12) / 11.0,
    }
    names = DATE_FEATURES[freq.unit]
    return np.stack([columns[name] - 0.5 for name in names], axis=1).astype(np.float32)


def age_feature(steps: int, offset: int = 0) -> Floats:
    """GluonTS's `AddAgeFeature`: log10(2 + the step's index from the series' start), 0 for
    steps before the start."""
    index = np.clip(np.arange(offset, offset + steps, dtype=np.float64), 0, None)
    return np.log10(2.0 + index).astype(np.float32)


# --- records -------------------------------------------------------------------------------------


@dataclass
class Series:
    """One record: `target` with NaN gaps, `cat` ids, `dynamic` (features x time)."""

    start: np.datetime64
    target: Floats
    cat: tuple[int, ...] | None = None
    dynamic: Floats | None = None
    where: str = ""


def parse_start(value: Any) -> np.datetime64:
    """`YYYY-MM-DD HH:MM:SS` (or a prefix such as `YYYY-MM-DD`), no time zone."""
    if not isinstance(value, str):
        raise ValueError(f"'start' must be a string like \"2009-11-01 00:00:00\", not {value!r}")
    text = value.strip().replace(" ", "T")
    try:
        return np.datetime64(text, "m")
    except ValueError:
        raise ValueError(
            f"'start' {value!r} is not a timestamp like \"2009-11-01 00:00:00\" (no time zone)"
        ) from None


def _numbers(values: Any, field: str) -> Floats:
    if not isinstance(values, list):
        raise ValueError(f"'{field}' must be a list of numbers")
    out = np.empty(len(values), np.float32)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, str) and v.strip().lower() == "nan"):
            out[i] = np.nan
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[i] = v
        else:
            raise ValueError(f"'{field}' has {v!r} at position {i}, which is not a number")
    return out


def parse_record(record: Any, where: str = "") -> Series:
    """One JSON object as a `Series`; ValueError saying what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("a record must be a JSON object with 'start' and 'target'")
    if "start" not in record or "target" not in record:
        raise ValueError("a record needs both 'start' and 'target'")
    start = parse_start(record["start"])
    target = _numbers(record["target"], "target")
    if np.isinf(target).any():
        raise ValueError("'target' holds an infinite value")
    cat = None
    if record.get("cat") is not None:
        raw = record["cat"]
        raw = [raw] if isinstance(raw, int) and not isinstance(raw, bool) else raw
        if not isinstance(raw, list) or not all(
            isinstance(c, int | float) and not isinstance(c, bool) and float(c).is_integer()
            for c in raw
        ):
            raise ValueError("'cat' must be a list of non-negative integers")
        if any(c < 0 for c in raw):
            raise ValueError("'cat' holds a negative category; categories are 0-based")
        cat = tuple(int(c) for c in raw)
    dynamic = None
    if record.get("dynamic_feat") is not None:
        arrays = record["dynamic_feat"]
        if not isinstance(arrays, list) or not all(isinstance(a, list) for a in arrays):
            raise ValueError("'dynamic_feat' must be a list of arrays of numbers")
        rows = [_numbers(a, "dynamic_feat") for a in arrays]
        if len({len(r) for r in rows}) > 1:
            raise ValueError("the arrays of 'dynamic_feat' have different lengths")
        dynamic = np.stack(rows) if rows else np.empty((0, len(target)), np.float32)
        if not np.isfinite(dynamic).all():
            raise ValueError("'dynamic_feat' holds a missing or infinite value")
    return Series(start, target, cat, dynamic, where)


def read_channel(name: str, folder: Path, content_type: str) -> list[Series]:
    """Every record of a channel's files (sub-folders too; dot-files and `_SUCCESS` skipped).

    The format is the file's: `.parquet` (or Parquet bytes) is Parquet, anything else JSON
    Lines, gzip-compressed or not; the channel's content type decides only for files whose
    name says nothing."""
    files = data_files(folder) if folder.is_dir() else []
    series: list[Series] = []
    for path in files:
        label = f"Channel '{name}', file {path.relative_to(folder)}"
        data = path.read_bytes()
        if data.startswith(_GZIP_MAGIC):
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise UserError(f"{label}: not a readable gzip file ({exc}).") from None
        parquet = path.suffix == ".parquet" or data.startswith(_PARQUET_MAGIC)
        if parquet or (content_type == PARQUET and path.suffix not in (".json", ".gz")):
            series.extend(_parquet(data, label))
        else:
            assert content_type in (JSON, JSONLINES, PARQUET)
            series.extend(_json_lines(data, label))
    return series


def _json_lines(data: bytes, label: str) -> Iterator[Series]:
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{label}, line {number}"
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise UserError(f"{where}: not a JSON object ({exc}).") from None
        try:
            yield parse_record(record, where)
        except ValueError as exc:
            raise UserError(f"{where}: {exc}.") from None


def _parquet(data: bytes, label: str) -> Iterator[Series]:
    if importlib.util.find_spec("pyarrow") is None:
        raise UserError(
            f"{label}: Parquet needs pyarrow, not installed here; give JSON Lines (.json or "
            ".json.gz) instead."
        )
    import pandas as pd

    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # any reader failure is the file's problem
        raise UserError(f"{label}: not a readable Parquet file ({exc}).") from None
    for number, row in enumerate(frame.to_dict("records"), start=1):
        where = f"{label}, row {number}"
        record = {key: _plain(value) for key, value in row.items()}
        try:
            yield parse_record(record, where)
        except ValueError as exc:
            raise UserError(f"{where}: {exc}.") from None


def _plain(value: Any) -> Any:
    """Parquet cells (numpy arrays, timestamps) as the JSON values a record holds."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat") and not isinstance(value, str):
        return str(value)
    return value


@dataclass(frozen=True)
class Layout:
    """What the network reads besides the target: the cardinality of each `cat` field (empty:
    none) and the number of `dynamic_feat` arrays (0: none)."""

    cardinality: tuple[int, ...]
    num_dynamic: int


def resolve_layout(
    series: Sequence[Series], cardinality: str | tuple[int, ...], dynamic: str | int
) -> Layout:
    """The layout the hyperparameters and the training records agree on; UserError naming the
    first record that disagrees."""
    first = series[0]
    if cardinality == "ignore":
        cards: tuple[int, ...] = ()
    else:
        width = len(first.cat) if first.cat is not None else 0
        for s in series:
            if (len(s.cat) if s.cat is not None else 0) != width:
                raise UserError(
                    f"{s.where}: 'cat' has {len(s.cat or ())} values but {first.where} has "
                    f"{width}; every record needs the same number of categorical features."
                )
        if cardinality == "auto":
            cards = tuple(
                max(s.cat[k] for s in series if s.cat is not None) + 1 for k in range(width)
            )
        else:
            assert isinstance(cardinality, tuple)
            cards = cardinality
            if width != len(cards):
                raise UserError(
                    f"{first.where}: 'cat' has {width} values but the hyperparameter "
                    f"cardinality lists {len(cards)}; give one cardinality per cat field."
                )
    if dynamic == "ignore":
        num_dynamic = 0
    else:
        count = first.dynamic.shape[0] if first.dynamic is not None else 0
        num_dynamic = count if dynamic == "auto" else int(dynamic)
    layout = Layout(cards, num_dynamic)
    for s in series:
        check_record(s, layout, 0)
    return layout


def check_record(s: Series, layout: Layout, extra: int) -> None:
    """`s` has the cat and dynamic_feat `layout` needs (dynamic_feat `extra` steps longer than
    the target); UserError naming the record."""
    if layout.cardinality:
        if s.cat is None or len(s.cat) != len(layout.cardinality):
            raise UserError(
                f"{s.where}: 'cat' must hold {len(layout.cardinality)} categories (the model "
                "uses categorical features)."
            )
        for k, (c, card) in enumerate(zip(s.cat, layout.cardinality, strict=True)):
            if c >= card:
                raise UserError(
                    f"{s.where}: cat[{k}] is {c}, not below its cardinality {card}; categories "
                    "are 0-based."
                )
    if layout.num_dynamic:
        count = s.dynamic.shape[0] if s.dynamic is not None else 0
        if count != layout.num_dynamic:
            raise UserError(
                f"{s.where}: 'dynamic_feat' has {count} arrays but the model uses "
                f"{layout.num_dynamic}."
            )
        assert s.dynamic is not None
        wanted = len(s.target) + extra
        if s.dynamic.shape[1] != wanted:
            raise UserError(
                f"{s.where}: each 'dynamic_feat' array has {s.dynamic.shape[1]} values but must "
                f"have {wanted} (the target's length"
                + (f" plus prediction_length {extra})." if extra else ").")
            )


def count_observations(series: Sequence[Series]) -> int:
    return int(sum(np.isfinite(s.target).sum() for s in series))
