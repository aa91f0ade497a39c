"""Warm-start compatibility between a tuning job and its parent (spec §5.2)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from opensage.control.tuning import Plan, _check_parent
from opensage.errors import ValidationError

BASE: dict[str, Any] = {
    "HyperParameterTuningJobName": "job",
    "HyperParameterTuningJobConfig": {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
        "ParameterRanges": {
            "ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.01", "MaxValue": "1"}],
            "CategoricalParameterRanges": [{"Name": "opt", "Values": ["a", "b", "c"]}],
        },
    },
    "TrainingJobDefinition": {
        "AlgorithmSpecification": {
            "TrainingImage": "opensage/python:3",
            "TrainingInputMode": "File",
        },
        "StaticHyperParameters": {"epochs": "3", "depth": "2"},
        "InputDataConfig": [{"ChannelName": "train"}],
    },
}


def plan(change: Any = None) -> Plan:
    request = copy.deepcopy(BASE)
    if change:
        change(request)
    return Plan.of(request)


def test_an_identical_child_is_accepted() -> None:
    _check_parent("parent", plan(), plan(), "IdenticalDataAndAlgorithm")


def test_a_range_narrowed_or_a_static_changed_is_accepted() -> None:
    def narrow(r: dict[str, Any]) -> None:
        ranges = r["HyperParameterTuningJobConfig"]["ParameterRanges"]
        ranges["ContinuousParameterRanges"][0]["MaxValue"] = "0.5"
        r["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"] = "5"

    _check_parent("parent", plan(), plan(narrow), "TransferLearning")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda r: r["TrainingJobDefinition"]["StaticHyperParameters"].pop("depth"), ["depth"]),
        (
            lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"].update(
                ContinuousParameterRanges=[],
                IntegerParameterRanges=[{"Name": "lr", "MinValue": "1", "MaxValue": "9"}],
            ),
            ["lr", "type"],
        ),
    ],
)
def test_incompatible_children_are_refused(change: Any, words: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        _check_parent("parent", plan(), plan(change), "TransferLearning")
    for word in words:
        assert word in info.value.message


def test_identical_data_needs_the_same_image_and_data() -> None:
    def other_data(r: dict[str, Any]) -> None:
        r["TrainingJobDefinition"]["InputDataConfig"] = [{"ChannelName": "other"}]

    _check_parent("parent", plan(), plan(other_data), "TransferLearning")
    with pytest.raises(ValidationError, match="InputDataConfig"):
        _check_parent("parent", plan(), plan(other_data), "IdenticalDataAndAlgorithm")


def test_more_than_ten_changes_are_refused() -> None:
    def nine_values(r: dict[str, Any]) -> None:
        ranges = r["HyperParameterTuningJobConfig"]["ParameterRanges"]
        ranges["CategoricalParameterRanges"][0]["Values"] = list("abcdefghi")

    def made_static(r: dict[str, Any]) -> None:
        r["HyperParameterTuningJobConfig"]["ParameterRanges"]["CategoricalParameterRanges"] = []
        r["TrainingJobDefinition"]["StaticHyperParameters"].update(opt="a", epochs="9")

    # a 9-value categorical made static (9) and a static value changed (2): 11 changes
    with pytest.raises(ValidationError, match="11 times"):
        _check_parent("parent", plan(nine_values), plan(made_static), "TransferLearning")
