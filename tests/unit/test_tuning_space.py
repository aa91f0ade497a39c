"""The search space: ParameterRanges validation, unit-cube mapping, formatting, the grid."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.errors import ValidationError
from opensage.tuning import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Scaling,
    Space,
    SpaceError,
    auto_scaling,
    parse_ranges,
    suggest,
)

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=12)


@st.composite
def integer_ranges(draw: st.DrawFn, name: str) -> dict[str, str]:
    scaling = draw(st.sampled_from(["Auto", "Linear", "Logarithmic"]))
    low = draw(st.integers(1 if scaling == "Logarithmic" else -1000, 1000))
    high = low + draw(st.integers(0, 10**6))
    return {"Name": name, "MinValue": str(low), "MaxValue": str(high), "ScalingType": scaling}


@st.composite
def continuous_ranges(draw: st.DrawFn, name: str) -> dict[str, str]:
    scaling = draw(st.sampled_from(["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"]))
    if scaling == "ReverseLogarithmic":
        low = draw(st.floats(0, 0.99))
        high = low + (1 - low) * draw(st.floats(0, 0.999))
    elif scaling == "Logarithmic":
        low = draw(st.floats(1e-8, 1e4))
        high = low * draw(st.floats(1, 1e6))
    else:
        low = draw(st.floats(-1e6, 1e6))
        high = low + draw(st.floats(0, 1e6))
    return {"Name": name, "MinValue": repr(low), "MaxValue": repr(high), "ScalingType": scaling}


@st.composite
def parameter_ranges(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    all_names = draw(st.lists(names, min_size=1, max_size=8, unique=True))
    kinds = [draw(st.sampled_from(["int", "cont", "cat"])) for _ in all_names]
    ranges: dict[str, list[dict[str, Any]]] = {
        "IntegerParameterRanges": [],
        "ContinuousParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for name, kind in zip(all_names, kinds, strict=True):
        if kind == "int":
            ranges["IntegerParameterRanges"].append(draw(integer_ranges(name)))
        elif kind == "cont":
            ranges["ContinuousParameterRanges"].append(draw(continuous_ranges(name)))
        else:
            values = draw(st.lists(st.text(max_size=6), min_size=1, max_size=5, unique=True))
            ranges["CategoricalParameterRanges"].append({"Name": name, "Values": values})
    return ranges


@settings(max_examples=150, deadline=None)
@given(parameter_ranges(), st.integers(0, 2**32), st.integers(1, 500))
def test_random_suggestions_lie_in_range_and_read_back(
    ranges: dict[str, list[dict[str, Any]]], seed: int, number: int
) -> None:
    space = parse_ranges(ranges)
    suggestion = suggest("Random", space, seed, number)
    assert list(suggestion) == list(space.names)
    values = space.parse(suggestion)
    assert values is not None
    assert space.format(values) == suggestion
    for p in space.parameters:
        text = suggestion[p.name]
        if isinstance(p, IntegerParameter):
            assert text == str(int(text))
            assert p.min_value <= int(text) <= p.max_value
        elif isinstance(p, ContinuousParameter):
            assert "e" not in text
            assert float(text) == values[p.name]
            assert p.min_value <= float(text) <= p.max_value
        else:
            assert text in p.values


@settings(deadline=None)
@given(st.lists(names, min_size=1, max_size=30, unique=True), st.data())
def test_parameters_keep_request_order_by_kind(names_: list[str], data: st.DataObject) -> None:
    kinds = [data.draw(st.sampled_from(["Integer", "Continuous", "Categorical"])) for _ in names_]
    ranges: dict[str, list[dict[str, Any]]] = {
        f"{kind}ParameterRanges": [] for kind in ("Integer", "Continuous", "Categorical")
    }
    for name, kind in zip(names_, kinds, strict=True):
        entry: dict[str, Any] = {"Name": name, "MinValue": "1", "MaxValue": "2"}
        if kind == "Categorical":
            entry = {"Name": name, "Values": ["a"]}
        ranges[f"{kind}ParameterRanges"].append(entry)
    space = parse_ranges(ranges)
    expected = [e["Name"] for key in ranges for e in ranges[key]]
    assert list(space.names) == expected
    assert [p.kind for p in space.parameters] == sorted(
        kinds, key=["Integer", "Continuous", "Categorical"].index
    )


continuous_parameters = st.one_of(
    st.builds(
        lambda low, width: ContinuousParameter("x", low, low + width, Scaling.LINEAR),
        st.floats(-1e6, 1e6),
        st.floats(1e-3, 1e6),
    ),
    st.builds(
        lambda low, factor: ContinuousParameter("x", low, low * factor, Scaling.LOGARITHMIC),
        st.floats(1e-8, 1e4),
        st.floats(1.01, 1e6),
    ),
    st.builds(
        lambda low, frac: ContinuousParameter(
            "x", low, low + (1 - low) * frac, Scaling.REVERSE_LOGARITHMIC
        ),
        st.floats(0, 0.99),
        st.floats(0.01, 0.999),
    ),
)


@settings(deadline=None)
@given(continuous_parameters, st.floats(0, 1))
def test_continuous_unit_round_trip(p: ContinuousParameter, u: float) -> None:
    x = p.from_unit(u)
    assert p.min_value <= x <= p.max_value
    assert p.to_unit(x) == pytest.approx(u, abs=1e-6)


@settings(deadline=None)
@given(continuous_parameters)
def test_continuous_unit_ends_are_the_bounds(p: ContinuousParameter) -> None:
    assert p.from_unit(0.0) == pytest.approx(p.min_value, rel=1e-9, abs=1e-12)
    assert p.from_unit(1.0) == pytest.approx(p.max_value, rel=1e-9, abs=1e-12)
    assert p.to_unit(p.min_value) == pytest.approx(0.0, abs=1e-9)
    assert p.to_unit(p.max_value) == pytest.approx(1.0, abs=1e-9)


@settings(deadline=None)
@given(
    st.integers(1, 10**6),
    st.integers(0, 10**6),
    st.sampled_from([Scaling.LINEAR, Scaling.LOGARITHMIC]),
    st.data(),
)
def test_integer_unit_round_trip(
    low: int, width: int, scaling: Scaling, data: st.DataObject
) -> None:
    p = IntegerParameter("k", low, low + width, scaling)
    k = data.draw(st.integers(p.min_value, p.max_value))
    assert p.from_unit(p.to_unit(k)) == k
    u = data.draw(st.floats(0, 1))
    assert p.min_value <= p.from_unit(u) <= p.max_value


def test_integer_cells_have_equal_width_on_a_linear_scale() -> None:
    p = IntegerParameter("k", 1, 4)
    draws = [p.from_unit((i + 0.5) / 400) for i in range(400)]
    assert {k: draws.count(k) for k in range(1, 5)} == {1: 100, 2: 100, 3: 100, 4: 100}


@settings(deadline=None)
@given(st.lists(st.text(max_size=4), min_size=1, max_size=30, unique=True), st.data())
def test_categorical_unit_round_trip(values: list[str], data: st.DataObject) -> None:
    p = CategoricalParameter("c", tuple(values))
    v = data.draw(st.sampled_from(values))
    assert p.from_unit(p.to_unit(v)) == v
    assert p.from_unit(data.draw(st.floats(0, 1))) in values


def test_reverse_logarithmic_puts_resolution_near_one() -> None:
    p = ContinuousParameter("momentum", 0.0, 0.999, Scaling.REVERSE_LOGARITHMIC)
    assert p.from_unit(0.5) == pytest.approx(1 - math.sqrt(0.001))
    assert p.from_unit(2 / 3) == pytest.approx(0.99)


def test_formatting_follows_the_observed_strings() -> None:
    space = Space(
        (
            IntegerParameter("k", 1, 10),
            ContinuousParameter("lr", 0.0, 1.0),
            ContinuousParameter("tiny", 0.0, 1.0),
            ContinuousParameter("whole", 0.0, 5.0),
            CategoricalParameter("opt", ('"adam"', "sgd")),
        )
    )
    formatted = space.format(
        {"k": 7, "lr": 0.1015727388941435, "tiny": 1e-05, "whole": 2.0, "opt": '"adam"'}
    )
    assert formatted == {
        "k": "7",
        "lr": "0.1015727388941435",
        "tiny": "0.00001",
        "whole": "2.0",
        "opt": '"adam"',
    }


def test_format_names_a_missing_or_mistyped_value() -> None:
    space = Space((IntegerParameter("k", 1, 10), CategoricalParameter("c", ("a",))))
    with pytest.raises(ValueError, match="'c'"):
        space.format({"k": 1})
    with pytest.raises(ValueError, match="'k'"):
        space.format({"k": 1.5, "c": "a"})
    with pytest.raises(TypeError, match="'c'"):
        space.format({"k": 1, "c": 3})


def test_parse_drops_unknown_keys_and_rejects_what_does_not_fit() -> None:
    space = Space((IntegerParameter("k", 1, 10), ContinuousParameter("x", 0.0, 1.0)))
    assert space.parse({"k": "3", "x": "0.5", "old": "z"}) == {"k": 3, "x": 0.5}
    assert space.parse({"k": "3.0", "x": "1"}) == {"k": 3, "x": 1.0}
    assert space.parse({"k": "3"}) is None
    assert space.parse({"k": "11", "x": "0.5"}) is None
    assert space.parse({"k": "3.5", "x": "0.5"}) is None
    assert space.parse({"k": "3", "x": "nan"}) is None


@pytest.mark.parametrize(
    ("low", "high", "scaling"),
    [
        (1e-4, 1e-2, Scaling.LOGARITHMIC),
        (1, 100, Scaling.LOGARITHMIC),
        (1, 99, Scaling.LINEAR),
        (0, 1000, Scaling.LINEAR),
        (-1, 1000, Scaling.LINEAR),
        (0.9, 0.999, Scaling.LINEAR),
    ],
)
def test_auto_scaling_rule(low: float, high: float, scaling: Scaling) -> None:
    assert auto_scaling(low, high) is scaling


def test_auto_is_the_default_and_resolved() -> None:
    space = parse_ranges(
        {
            "IntegerParameterRanges": [{"Name": "trees", "MinValue": "10", "MaxValue": "1000"}],
            "ContinuousParameterRanges": [
                {"Name": "eta", "MinValue": "0.1", "MaxValue": "0.5", "ScalingType": "Auto"}
            ],
        }
    )
    assert [p.scaling for p in space.parameters] == [Scaling.LOGARITHMIC, Scaling.LINEAR]


def _numeric(kind: str, name: str, low: str, high: str, scaling: str = "Linear") -> dict[str, Any]:
    entry = {"Name": name, "MinValue": low, "MaxValue": high, "ScalingType": scaling}
    return {f"{kind}ParameterRanges": [entry]}


def _many(count: int) -> dict[str, Any]:
    return {
        "IntegerParameterRanges": [
            {"Name": f"p{i}", "MinValue": "1", "MaxValue": "2"} for i in range(count)
        ]
    }


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        (_numeric("Integer", "depth", "1.5", "4"), "'depth': MinValue '1.5' is not an integer"),
        (_numeric("Continuous", "eta", "0", "abc"), "'eta': MaxValue 'abc' is not a finite number"),
        (_numeric("Continuous", "eta", "0", "inf"), "'eta': MaxValue 'inf' is not a finite"),
        (_numeric("Integer", "depth", "5", "4"), "'depth' \\[5, 4\\]: MinValue is greater"),
        (_numeric("Continuous", "lr", "0", "1", "Logarithmic"), "'lr' .*needs all values > 0"),
        (_numeric("Integer", "n", "-2", "8", "Logarithmic"), "'n' .*needs all values > 0"),
        (_numeric("Integer", "n", "0", "8", "ReverseLogarithmic"), "'n' .*continuous .*only"),
        (_numeric("Continuous", "m", "0.5", "1", "ReverseLogarithmic"), "'m' .*MaxValue < 1"),
        (_numeric("Continuous", "m", "-0.1", "0.9", "ReverseLogarithmic"), "'m' .*0 <= MinValue"),
        (_numeric("Continuous", "m", "0", "0.9", "Cubic"), "'m' .*ScalingType 'Cubic'"),
        ({"IntegerParameterRanges": [{"Name": "k", "MaxValue": "3"}]}, "'k': MinValue must be"),
        ({"CategoricalParameterRanges": [{"Name": "opt", "Values": []}]}, "'opt': Values is empty"),
        (
            {"CategoricalParameterRanges": [{"Name": "c", "Values": [str(i) for i in range(31)]}]},
            "'c' has 31 values; at most 30",
        ),
        ({"CategoricalParameterRanges": [{"Name": "c", "Values": ["a", "a"]}]}, "'c': .*'a'"),
        (
            {
                "IntegerParameterRanges": [{"Name": "x", "MinValue": "1", "MaxValue": "2"}],
                "CategoricalParameterRanges": [{"Name": "x", "Values": ["a"]}],
            },
            "'x' is listed twice .*IntegerParameterRanges and CategoricalParameterRanges",
        ),
        (_many(31), "31 tunable hyperparameters; at most 30"),
        ({"AutoParameters": [{"Name": "x", "ValueHint": "1"}]}, "AutoParameters .*not supported"),
        ({"IntegerParameterRange": []}, "unknown member.*IntegerParameterRange"),
        ({"IntegerParameterRanges": [{"MinValue": "1", "MaxValue": "2"}]}, "has no Name"),
        ({"IntegerParameterRanges": {"Name": "k"}}, "must be a list of objects"),
    ],
)
def test_validation_errors_name_the_parameter(ranges: dict[str, Any], message: str) -> None:
    with pytest.raises(SpaceError, match=message) as caught:
        parse_ranges(ranges)
    assert isinstance(caught.value, ValidationError)
    assert isinstance(caught.value, ValueError)


def test_limits_are_inclusive() -> None:
    assert len(parse_ranges(_many(30)).parameters) == 30
    values = [str(i) for i in range(30)]
    space = parse_ranges({"CategoricalParameterRanges": [{"Name": "c", "Values": values}]})
    assert space.grid_size() == 30


def test_degenerate_ranges_are_allowed() -> None:
    space = parse_ranges(
        {
            "IntegerParameterRanges": [{"Name": "k", "MinValue": "4", "MaxValue": "4"}],
            "ContinuousParameterRanges": [{"Name": "x", "MinValue": "0.5", "MaxValue": "0.5"}],
        }
    )
    assert suggest("Random", space, 1, 1) == {"k": "4", "x": "0.5"}
    assert space.to_unit({"k": 4, "x": 0.5}) == (0.5, 0.0)


@settings(deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=5))
def test_grid_enumerates_every_combination_once_in_order(counts: list[int]) -> None:
    space = Space(
        tuple(
            CategoricalParameter(f"p{i}", tuple(f"v{j}" for j in range(n)))
            for i, n in enumerate(counts)
        )
    )
    assert space.grid_size() == math.prod(counts)
    combos = [tuple(space.grid_combination(i).values()) for i in range(space.grid_size())]
    assert combos == list(itertools.product(*(p.values for p in space.parameters)))
    with pytest.raises(IndexError):
        space.grid_combination(space.grid_size())


def test_grid_needs_categorical_parameters() -> None:
    space = Space((IntegerParameter("k", 1, 3), CategoricalParameter("c", ("a",))))
    with pytest.raises(ValueError, match="'k'"):
        space.grid_size()
