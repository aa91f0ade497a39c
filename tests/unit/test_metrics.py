"""Metric extraction from log lines and FinalMetricDataList (spec 1.15)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.control.metrics import MetricDefinition, compile_definitions, extract, final_metrics
from opensage.runtime.shim import escape_control
from opensage.store import MetricPoint

NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
XGB_VALIDATION = r".*\[[0-9]+\].*#011validation-rmse:" + NUMBER + r".*"
XGB_TRAIN = r".*\[[0-9]+\]#011train-rmse:" + NUMBER + r".*"


def xgb_line(iteration: int, train: str, validation: str) -> str:
    # what the shim stores for XGBoost's tab-separated evaluation line
    return escape_control(f"[{iteration}]\ttrain-rmse:{train}\tvalidation-rmse:{validation}")


def definitions(*pairs: tuple[str, str]) -> list[MetricDefinition]:
    return compile_definitions([{"Name": n, "Regex": r} for n, r in pairs])


def test_xgboost_line_with_escaped_tabs() -> None:
    line = xgb_line(3, "0.51234", "0.60917")
    assert line == "[3]#011train-rmse:0.51234#011validation-rmse:0.60917"
    defs = definitions(("validation:rmse", XGB_VALIDATION), ("train:rmse", XGB_TRAIN))
    assert extract(defs, line, 12.5) == [
        MetricPoint("validation:rmse", 0.60917, 12.5),
        MetricPoint("train:rmse", 0.51234, 12.5),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-3", 1e-3), ("-2.5E+2", -250.0), (".5", 0.5), ("+7", 7.0), ("12", 12.0)],
)
def test_number_formats(text: str, value: float) -> None:
    defs = definitions(("validation:rmse", XGB_VALIDATION))
    (point,) = extract(defs, xgb_line(0, "1", text), 0.0)
    assert point.value == value


def test_lines_that_do_not_match_give_nothing() -> None:
    defs = definitions(("validation:rmse", XGB_VALIDATION))
    assert extract(defs, "[0]\ttrain-rmse:1\tvalidation-rmse:2", 0.0) == []  # raw tab, not #011
    assert extract(defs, "Training started", 0.0) == []
    assert extract(defs, "", 0.0) == []


def test_several_matches_per_line_in_order() -> None:
    defs = definitions(("loss", r"loss=([0-9.]+)"))
    points = extract(defs, "step 1 loss=0.9 step 2 loss=0.7 step 3 loss=0.5", 3.0)
    assert [p.value for p in points] == [0.9, 0.7, 0.5]
    assert {p.timestamp for p in points} == {3.0}


def test_nan_infinite_and_junk_are_skipped() -> None:
    defs = definitions(("loss", r"loss=(\S+)"))
    line = "loss=nan loss=inf loss=-Infinity loss=abc loss=1.5 loss=NaN loss=2"
    assert [p.value for p in extract(defs, line, 0.0)] == [1.5, 2.0]


def test_regex_without_group_uses_the_whole_match() -> None:
    defs = definitions(("n", r"[0-9]+\.[0-9]+"))
    assert [p.value for p in extract(defs, "a 1.5 b 2.25", 0.0)] == [1.5, 2.25]


def test_optional_group_that_did_not_take_part_is_skipped() -> None:
    defs = definitions(("acc", r"acc(?:=([0-9.]+))?"))
    assert [p.value for p in extract(defs, "acc acc=0.9", 0.0)] == [0.9]


def test_later_definitions_override_earlier_ones_with_the_same_name() -> None:
    compiled = compile_definitions(
        [
            {"Name": "validation:rmse", "Regex": r"builtin=([0-9.]+)"},
            {"Name": "train:rmse", "Regex": r"train=([0-9.]+)"},
            {"Name": "validation:rmse", "Regex": r"user=([0-9.]+)"},
        ]
    )
    assert [(d.name, d.regex.pattern) for d in compiled] == [
        ("validation:rmse", r"user=([0-9.]+)"),
        ("train:rmse", r"train=([0-9.]+)"),
    ]
    points = extract(compiled, "builtin=1 user=2 train=3", 0.0)
    assert [(p.name, p.value) for p in points] == [("validation:rmse", 2.0), ("train:rmse", 3.0)]


def test_compile_definitions_rejects_nothing_silently() -> None:
    assert compile_definitions([]) == []
    with pytest.raises(re.error):
        compile_definitions([{"Name": "bad", "Regex": "("}])


def test_final_metrics_keeps_the_last_value_per_name() -> None:
    points = [
        MetricPoint("train:rmse", 0.9, 1.0),
        MetricPoint("validation:rmse", 1.0, 1.0),
        MetricPoint("train:rmse", 0.5, 2.0),
        MetricPoint("train:rmse", 0.4, 3.0),
    ]
    assert final_metrics(points) == [
        {"MetricName": "train:rmse", "Value": 0.4, "Timestamp": 3.0},
        {"MetricName": "validation:rmse", "Value": 1.0, "Timestamp": 1.0},
    ]
    assert final_metrics([]) == []


@given(
    values=st.lists(
        st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=8
    )
)
@settings(max_examples=100, deadline=None)
def test_extract_round_trips_printed_floats(values: list[float]) -> None:
    defs = definitions(("m", r"m=([-+0-9.eE]+)"))
    line = " ".join(f"m={v!r}" for v in values)
    assert [p.value for p in extract(defs, line, 0.0)] == values
