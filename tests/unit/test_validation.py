"""Request validation against the real botocore SageMaker model (spec 4.1 message style)."""

from __future__ import annotations

import contextlib
import copy
import functools
import time
from typing import Any

import botocore.session
import pytest
from botocore.model import ServiceModel, Shape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opensage.errors import ValidationError
from opensage.server.validation import validate


@functools.cache
def model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("sagemaker")


def input_shape(operation: str) -> Shape:
    shape = model().operation_model(operation).input_shape
    assert shape is not None
    return shape


CREATE = "CreateTrainingJob"

VALID: dict[str, Any] = {
    "TrainingJobName": "xgb-2024-01-01",
    "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
    "AlgorithmSpecification": {
        "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/xgboost:1.7-1",
        "TrainingInputMode": "File",
    },
    "HyperParameters": {"num_round": "10", "objective": "reg:squarederror"},
    "InputDataConfig": [
        {
            "ChannelName": "train",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bkt/train/"}},
            "ContentType": "text/csv",
        }
    ],
    "OutputDataConfig": {"S3OutputPath": "s3://bkt/output"},
    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
}


def request(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def message(value: Any, operation: str = CREATE) -> str:
    with pytest.raises(ValidationError) as info:
        validate(input_shape(operation), value)
    assert info.value.code == "ValidationException"
    assert info.value.http_status == 400
    return info.value.message


def test_valid_request_passes_unchanged() -> None:
    assert validate(input_shape(CREATE), request()) == VALID


def test_no_input_shape_gives_empty_dict() -> None:
    assert validate(None, {"anything": 1}) == {}


def test_missing_required_member() -> None:
    assert message(request(RoleArn=None)) == (
        "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_explicit_null_counts_as_missing() -> None:
    body = request()
    body["RoleArn"] = None
    assert "Value null at 'roleArn'" in message(body)


def test_bad_name_pattern() -> None:
    text = message(request(TrainingJobName="bad_name"))
    assert text == (
        "1 validation error detected: Value 'bad_name' at 'trainingJobName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    )


def test_name_length_limit() -> None:
    assert validate(input_shape(CREATE), request(TrainingJobName="a" * 63))
    text = message(request(TrainingJobName="a" * 64))
    assert text.startswith("2 validation errors detected: ")
    assert "Member must have length less than or equal to 63" in text
    assert "Member must satisfy regular expression pattern" in text


def test_enum_violation_reports_the_nested_path() -> None:
    body = request()
    body["AlgorithmSpecification"]["TrainingInputMode"] = "Bogus"
    text = message(body)
    assert text.startswith(
        "1 validation error detected: Value 'Bogus' at 'algorithmSpecification.trainingInputMode'"
        " failed to satisfy constraint: Member must satisfy enum value set: ["
    )
    assert "File" in text
    assert "Pipe" in text


def test_list_members_are_numbered_from_one() -> None:
    body = request()
    body["InputDataConfig"].append({"ChannelName": "bad name!", "DataSource": {}})
    text = message(body)
    assert "at 'inputDataConfig.2.member.channelName'" in text


def test_error_count_and_separator() -> None:
    text = message(request(RoleArn=None, TrainingJobName="bad_name"))
    assert text.startswith("2 validation errors detected: Value null at 'roleArn'")
    assert "; Value 'bad_name' at 'trainingJobName'" in text


def test_at_most_ten_errors_are_listed_but_all_are_counted() -> None:
    body = request(HyperParameters={f"k{i}": "x" * 3000 for i in range(12)})
    text = message(body)
    assert text.startswith("12 validation errors detected: ")
    assert text.count("failed to satisfy constraint") == 10


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"TrainingJobName": 5}, "Value '5' at 'trainingJobName' failed to satisfy constraint: "
         "Member must be a string"),
        ({"ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": "1",
                             "VolumeSizeInGB": 5}},
         "at 'resourceConfig.instanceCount' failed to satisfy constraint: Member must be an "
         "integer"),
        ({"ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": True,
                             "VolumeSizeInGB": 5}}, "Member must be an integer"),
        ({"ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1.5,
                             "VolumeSizeInGB": 5}}, "Member must be an integer"),
        ({"StoppingCondition": {"MaxRuntimeInSeconds": 0}},
         "Value '0' at 'stoppingCondition.maxRuntimeInSeconds' failed to satisfy constraint: "
         "Member must have value greater than or equal to 1"),
        ({"EnableNetworkIsolation": "yes"}, "Member must be a boolean"),
        ({"InputDataConfig": {}}, "at 'inputDataConfig' failed to satisfy constraint: Member must "
         "be a list"),
        ({"InputDataConfig": []}, "Member must have length greater than or equal to 1"),
        ({"HyperParameters": []}, "at 'hyperParameters' failed to satisfy constraint: Member must "
         "be a map"),
        ({"HyperParameters": {"a": None}}, "Value null at 'hyperParameters.a' failed to satisfy "
         "constraint: Member must not be null"),
        ({"HyperParameters": {"a": 1}}, "Member must be a string"),
        ({"OutputDataConfig": "s3://bkt/out"}, "at 'outputDataConfig' failed to satisfy "
         "constraint: Member must be a structure"),
    ],
)  # fmt: skip
def test_wrong_types(changes: dict[str, Any], fragment: str) -> None:
    assert fragment in message(request(**changes))


def test_body_that_is_not_an_object() -> None:
    assert message([1, 2]).startswith(
        "1 validation error detected: Value '[1, 2]' at 'body' failed to satisfy constraint: "
        "Member must be a structure"
    )


def test_unknown_and_null_members_are_dropped() -> None:
    body = request(Bogus=1)
    body["AlgorithmSpecification"]["Extra"] = "x"
    body["VpcConfig"] = None
    cleaned = validate(input_shape(CREATE), body)
    assert cleaned == VALID


@pytest.mark.parametrize(
    "value",
    [1700000000, 1700000000.0, "2023-11-14T22:13:20Z", "2023-11-14T22:13:20+00:00",
     "2023-11-15T00:13:20+02:00", "2023-11-14T22:13:20.000Z"],
)  # fmt: skip
def test_timestamps_are_normalised_to_epoch_floats(value: Any) -> None:
    cleaned = validate(input_shape("ListTrainingJobs"), {"CreationTimeAfter": value})
    assert cleaned == {"CreationTimeAfter": 1700000000.0}
    assert type(cleaned["CreationTimeAfter"]) is float


@pytest.mark.parametrize("value", ["yesterday", True, [1], {"t": 1}, ""])
def test_bad_timestamps(value: Any) -> None:
    text = message({"CreationTimeAfter": value}, "ListTrainingJobs")
    assert "at 'creationTimeAfter' failed to satisfy constraint: Member must be a timestamp" in text


def test_huge_integer_timestamp_is_a_validation_error() -> None:
    message({"CreationTimeAfter": 10**400}, "ListTrainingJobs")


def test_iso_timestamp_without_offset_is_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        cleaned = validate(
            input_shape("ListTrainingJobs"), {"CreationTimeAfter": "2023-11-14T22:13:20"}
        )
    finally:
        monkeypatch.undo()
        time.tzset()
    assert cleaned == {"CreationTimeAfter": 1700000000.0}


# properties ---------------------------------------------------------------------------------

# Integers stay within 64 bits here; the huge-integer case has its own test above.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats()
    | st.text(max_size=20)
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@functools.cache
def shaped(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values that mostly follow `shape` (member names, enums, types) but often go wrong."""
    if depth > 4:
        return JSON
    kind = shape.type_name
    typed: st.SearchStrategy[Any]
    if kind == "structure":
        members = shape.members
        typed = st.fixed_dictionaries(
            {},
            optional={
                name: st.deferred(lambda member=member: shaped(member, depth + 1))
                for name, member in members.items()
            },
        )
    elif kind == "list":
        typed = st.lists(st.deferred(lambda: shaped(shape.member, depth + 1)), max_size=3)
    elif kind == "map":
        typed = st.dictionaries(
            st.text(max_size=8),
            st.deferred(lambda: shaped(shape.value, depth + 1)),
            max_size=3,
        )
    elif kind == "string":
        enum = shape.enum
        typed = st.sampled_from(enum) | st.text(max_size=30) if enum else st.text(max_size=30)
    elif kind in ("integer", "long"):
        typed = st.integers(min_value=-(2**63), max_value=2**63)
    elif kind in ("float", "double"):
        typed = st.floats() | st.integers(min_value=-(2**63), max_value=2**63)
    elif kind == "timestamp":
        typed = (
            st.floats()
            | st.integers(min_value=-(2**40), max_value=2**40)
            | st.datetimes().map(lambda d: d.isoformat())
            | st.text(max_size=30)
        )
    elif kind == "boolean":
        typed = st.booleans()
    else:
        typed = JSON
    return st.one_of(typed, typed, typed, JSON)


OPERATIONS = sorted(model().operation_names)


@given(data=st.data(), operation=st.sampled_from(OPERATIONS))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_input_for_any_operation_is_a_dict_or_a_validation_error(
    data: st.DataObject, operation: str
) -> None:
    shape = model().operation_model(operation).input_shape
    value = data.draw(shaped(shape) if shape is not None else JSON)
    try:
        cleaned = validate(shape, value)
    except ValidationError as exc:
        error = exc
    else:
        assert isinstance(cleaned, dict)
        if shape is not None:
            assert set(cleaned) <= set(shape.members)
        return
    count, rest = error.message.split(" ", 1)
    assert int(count) >= 1
    assert rest.startswith(("validation error detected: ", "validation errors detected: "))


@given(value=JSON)
@settings(max_examples=150, deadline=None)
def test_arbitrary_json_for_create_training_job(value: Any) -> None:
    with contextlib.suppress(ValidationError):
        assert isinstance(validate(input_shape(CREATE), value), dict)
