"""The search space: the API's ParameterRanges, validated (spec §5.2), plus the unit-cube view.

Samplers work in the unit cube [0, 1]^d and every coordinate goes through its parameter's scaling
on the way in and out, so "uniform over this range" has one definition for Random, Hyperband and
the tests (the Bayesian strategy hands Optuna the same scalings).

Scaling (a parameter's `scaling` is always resolved, never Auto):
- Linear: uniform in the value.
- Logarithmic: uniform in log(value); needs every value > 0.
- ReverseLogarithmic (continuous only, 0 <= min, max < 1): uniform in log(1 - value), which puts
  resolution near 1 (momentum-like parameters).
- Auto: SageMaker leaves it unspecified. We choose Logarithmic when min > 0 and max >= 100 * min
  (the range spans two orders of magnitude or more, as learning rates and regularisation
  strengths do), Linear otherwise; never ReverseLogarithmic, which only a user can know fits.

Integers are sampled on [min - 0.5, max + 0.5] in the warped coordinate, then rounded (half up)
and clamped, so every integer of the range has a cell of the same warped width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np

from opensage.tuning.errors import SpaceError

MAX_TUNABLE = 30
MAX_CATEGORICAL_VALUES = 30
AUTO_LOG_RATIO = 100.0

Value = int | float | str


class Scaling(StrEnum):
    AUTO = "Auto"
    LINEAR = "Linear"
    LOGARITHMIC = "Logarithmic"
    REVERSE_LOGARITHMIC = "ReverseLogarithmic"


def _warp(x: float, scaling: Scaling) -> float:
    if scaling is Scaling.LOGARITHMIC:
        return math.log(x)
    if scaling is Scaling.REVERSE_LOGARITHMIC:
        return math.log1p(-x)
    return x


def _unwarp(w: float, scaling: Scaling) -> float:
    if scaling is Scaling.LOGARITHMIC:
        return math.exp(w)
    if scaling is Scaling.REVERSE_LOGARITHMIC:
        return -math.expm1(w)
    return w


def _clamp(x: float, low: float, high: float) -> float:
    return min(high, max(low, x))


def _to_unit(x: float, low: float, high: float, scaling: Scaling) -> float:
    """Position of x in [low, high] along the warped axis; a degenerate range maps to 0."""
    w_low, w_high = _warp(low, scaling), _warp(high, scaling)
    if w_high == w_low:
        return 0.0
    return _clamp((_warp(_clamp(x, low, high), scaling) - w_low) / (w_high - w_low), 0.0, 1.0)


def _from_unit(u: float, low: float, high: float, scaling: Scaling) -> float:
    w_low, w_high = _warp(low, scaling), _warp(high, scaling)
    return _unwarp(w_low + _clamp(u, 0.0, 1.0) * (w_high - w_low), scaling)


def _number(name: str, value: Value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"hyperparameter {name!r} is numeric; got {value!r}")
    return float(value)


def _integral(name: str, value: Value) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # exact, even past 2**53
    number = _number(name, value)
    if not number.is_integer():
        raise ValueError(f"hyperparameter {name!r} is an integer; got {value!r}")
    return int(number)


def _parse_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class IntegerParameter:
    """An IntegerParameterRanges entry."""

    name: str
    min_value: int
    max_value: int
    scaling: Scaling = Scaling.LINEAR
    kind: ClassVar[str] = "Integer"

    def to_unit(self, value: Value) -> float:
        low, high = self.min_value - 0.5, self.max_value + 0.5
        return _to_unit(_integral(self.name, value), low, high, self.scaling)

    def from_unit(self, u: float) -> int:
        x = _from_unit(u, self.min_value - 0.5, self.max_value + 0.5, self.scaling)
        return int(_clamp(math.floor(x + 0.5), self.min_value, self.max_value))

    def format(self, value: Value) -> str:
        return str(_integral(self.name, value))

    def parse(self, text: str) -> int | None:
        """The integer `text` spells inside the range ('7' or '7.0'), else None."""
        try:
            number = int(text)
        except ValueError:
            real = _parse_number(text)
            if real is None or not real.is_integer():
                return None
            number = int(real)
        return number if self.min_value <= number <= self.max_value else None


@dataclass(frozen=True)
class ContinuousParameter:
    """A ContinuousParameterRanges entry."""

    name: str
    min_value: float
    max_value: float
    scaling: Scaling = Scaling.LINEAR
    kind: ClassVar[str] = "Continuous"

    def to_unit(self, value: Value) -> float:
        return _to_unit(_number(self.name, value), self.min_value, self.max_value, self.scaling)

    def from_unit(self, u: float) -> float:
        x = _from_unit(u, self.min_value, self.max_value, self.scaling)
        return _clamp(x, self.min_value, self.max_value)

    def format(self, value: Value) -> str:
        """Shortest digits that read back to the same float, never in exponent notation.

        Spec §5.3 ('0.1015727388941435'); '0.00001' rather than '1e-05', as a hand-written
        parser in a training script may not read exponents.
        """
        return np.format_float_positional(_number(self.name, value), unique=True, trim="0")

    def parse(self, text: str) -> float | None:
        number = _parse_number(text)
        if number is None or not self.min_value <= number <= self.max_value:
            return None
        return number


@dataclass(frozen=True)
class CategoricalParameter:
    """A CategoricalParameterRanges entry; values are passed through verbatim (spec §5.3)."""

    name: str
    values: tuple[str, ...]
    kind: ClassVar[str] = "Categorical"

    def to_unit(self, value: Value) -> float:
        if value not in self.values:
            raise ValueError(f"{value!r} is not one of hyperparameter {self.name!r}'s values")
        return (self.values.index(str(value)) + 0.5) / len(self.values)

    def from_unit(self, u: float) -> str:
        return self.values[min(len(self.values) - 1, int(_clamp(u, 0.0, 1.0) * len(self.values)))]

    def format(self, value: Value) -> str:
        if not isinstance(value, str):
            raise TypeError(f"hyperparameter {self.name!r} is categorical; got {value!r}")
        return value

    def parse(self, text: str) -> str | None:
        return text if text in self.values else None


Parameter = IntegerParameter | ContinuousParameter | CategoricalParameter


@dataclass(frozen=True)
class Space:
    """The tunable hyperparameters in request order: integers, then continuous, then categorical.

    The order is part of the contract: it fixes which random draw goes to which parameter and the
    Grid enumeration order.
    """

    parameters: tuple[Parameter, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def format(self, values: Mapping[str, Value]) -> dict[str, str]:
        """The strings a trial's CreateTrainingJob carries (spec §5.3)."""
        missing = [p.name for p in self.parameters if p.name not in values]
        if missing:
            raise ValueError(f"no value for hyperparameter(s) {', '.join(map(repr, missing))}")
        return {p.name: p.format(values[p.name]) for p in self.parameters}

    def parse(self, texts: Mapping[str, str]) -> dict[str, Value] | None:
        """Typed values of a stored trial, or None when it does not fit this space.

        Keys the space does not know are dropped; a missing, unreadable or out-of-range value
        makes the whole trial unusable (a TransferLearning parent may have had another space).
        """
        values: dict[str, Value] = {}
        for p in self.parameters:
            text = texts.get(p.name)
            value = None if text is None else p.parse(text)
            if value is None:
                return None
            values[p.name] = value
        return values

    def to_unit(self, values: Mapping[str, Value]) -> tuple[float, ...]:
        return tuple(p.to_unit(values[p.name]) for p in self.parameters)

    def from_unit(self, point: Sequence[float]) -> dict[str, Value]:
        if len(point) != len(self.parameters):
            raise ValueError(f"a point of {len(point)} coordinates for {len(self.parameters)} axes")
        return {p.name: p.from_unit(u) for p, u in zip(self.parameters, point, strict=True)}

    def grid_size(self) -> int:
        """The number of combinations of a categorical-only space (1 when it is empty)."""
        return math.prod(len(p.values) for p in self._categoricals())

    def grid_combination(self, index: int) -> dict[str, Value]:
        """Combination `index` (0-based) in lexicographic order: the first parameter varies slowest,
        each parameter's values in the order listed (itertools.product order)."""
        categoricals = self._categoricals()
        if not 0 <= index < self.grid_size():
            raise IndexError(f"grid combination {index} outside 0..{self.grid_size() - 1}")
        values: dict[str, Value] = {}
        for p in reversed(categoricals):
            index, position = divmod(index, len(p.values))
            values[p.name] = p.values[position]
        return {p.name: values[p.name] for p in categoricals}

    def _categoricals(self) -> list[CategoricalParameter]:
        numeric = [p.name for p in self.parameters if not isinstance(p, CategoricalParameter)]
        if numeric:
            raise ValueError(f"a grid needs categorical parameters only; {numeric} are numeric")
        return [p for p in self.parameters if isinstance(p, CategoricalParameter)]


_RANGE_KEYS = ("IntegerParameterRanges", "ContinuousParameterRanges", "CategoricalParameterRanges")


def parse_ranges(ranges: Mapping[str, Any]) -> Space:
    """The validated space of an API ParameterRanges (all values strings, as on the wire)."""
    unknown = sorted(set(ranges) - {*_RANGE_KEYS, "AutoParameters"})
    if unknown:
        raise SpaceError(f"ParameterRanges has unknown member(s) {unknown}; expected {_RANGE_KEYS}")
    if ranges.get("AutoParameters"):
        raise SpaceError(
            "AutoParameters (Autotune) is not supported yet: list the ranges explicitly in "
            "IntegerParameterRanges, ContinuousParameterRanges or CategoricalParameterRanges"
        )
    parameters: list[Parameter] = []
    sources: dict[str, str] = {}
    for key in _RANGE_KEYS:
        for entry in _entries(ranges, key):
            parameter = _parameter(key, entry)
            if parameter.name in sources:
                raise SpaceError(
                    f"Hyperparameter {parameter.name!r} is listed twice in ParameterRanges "
                    f"({sources[parameter.name]} and {key}); give each parameter one range"
                )
            sources[parameter.name] = key
            parameters.append(parameter)
    if len(parameters) > MAX_TUNABLE:
        raise SpaceError(
            f"ParameterRanges has {len(parameters)} tunable hyperparameters; "
            f"at most {MAX_TUNABLE} are allowed"
        )
    return Space(tuple(parameters))


def _entries(ranges: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    entries = ranges.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise SpaceError(f"ParameterRanges.{key} must be a list of objects")
    return entries


def _parameter(key: str, entry: Mapping[str, Any]) -> Parameter:
    name = entry.get("Name")
    if not isinstance(name, str) or not name:
        raise SpaceError(f"An entry of ParameterRanges.{key} has no Name")
    if key == "CategoricalParameterRanges":
        return _categorical(name, entry)
    integer = key == "IntegerParameterRanges"
    low = _bound(name, entry, "MinValue", integer=integer)
    high = _bound(name, entry, "MaxValue", integer=integer)
    where = f"Hyperparameter {name!r} [{entry['MinValue']}, {entry['MaxValue']}]"
    if low > high:
        raise SpaceError(f"{where}: MinValue is greater than MaxValue")
    scaling = _scaling(where, entry.get("ScalingType", Scaling.AUTO.value))
    if scaling is Scaling.LOGARITHMIC and low <= 0:
        raise SpaceError(f"{where}: Logarithmic scaling needs all values > 0")
    if scaling is Scaling.REVERSE_LOGARITHMIC and integer:
        raise SpaceError(f"{where}: ReverseLogarithmic scaling is for continuous parameters only")
    if scaling is Scaling.REVERSE_LOGARITHMIC and not (low >= 0 and high < 1):
        raise SpaceError(f"{where}: ReverseLogarithmic scaling needs 0 <= MinValue, MaxValue < 1")
    if scaling is Scaling.AUTO:
        scaling = auto_scaling(low, high)
    if integer:
        return IntegerParameter(name, int(low), int(high), scaling)
    return ContinuousParameter(name, low, high, scaling)


def _bound(name: str, entry: Mapping[str, Any], field: str, *, integer: bool) -> float:
    text = entry.get(field)
    if not isinstance(text, str):
        raise SpaceError(f"Hyperparameter {name!r}: {field} must be a string, got {text!r}")
    if integer:
        try:
            return int(text)
        except ValueError:
            raise SpaceError(
                f"Hyperparameter {name!r}: {field} {text!r} is not an integer"
            ) from None
    number = _parse_number(text)
    if number is None:
        raise SpaceError(f"Hyperparameter {name!r}: {field} {text!r} is not a finite number")
    return number


def _scaling(where: str, text: object) -> Scaling:
    if text not in tuple(Scaling):
        choices = [s.value for s in Scaling]
        raise SpaceError(f"{where}: ScalingType {text!r} is not one of {choices}")
    return Scaling(str(text))


def auto_scaling(low: float, high: float) -> Scaling:
    """Our reading of ScalingType Auto: see the module docstring."""
    if low > 0 and high >= AUTO_LOG_RATIO * low:
        return Scaling.LOGARITHMIC
    return Scaling.LINEAR


def _categorical(name: str, entry: Mapping[str, Any]) -> CategoricalParameter:
    values = entry.get("Values")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise SpaceError(f"Hyperparameter {name!r}: Values must be a list of strings")
    if not values:
        raise SpaceError(f"Hyperparameter {name!r}: Values is empty; give 1 to 30 values")
    if len(values) > MAX_CATEGORICAL_VALUES:
        raise SpaceError(
            f"Hyperparameter {name!r} has {len(values)} values; "
            f"at most {MAX_CATEGORICAL_VALUES} are allowed"
        )
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise SpaceError(f"Hyperparameter {name!r}: value(s) {repeated} are listed more than once")
    return CategoricalParameter(name, tuple(values))
