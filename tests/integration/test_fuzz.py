"""Random request bodies never make the server answer 500."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import Clients

OPERATIONS = [
    "CreateTrainingJob", "DescribeTrainingJob", "ListTrainingJobs", "StopTrainingJob",
    "AddTags", "ListTags", "DeleteTags",
]  # fmt: skip
FIELDS = [
    "TrainingJobName", "RoleArn", "AlgorithmSpecification", "TrainingImage",
    "TrainingInputMode", "OutputDataConfig", "S3OutputPath", "ResourceConfig", "InstanceCount",
    "InstanceType", "InputDataConfig", "ChannelName", "DataSource", "S3DataSource", "S3Uri",
    "S3DataType", "HyperParameters", "MaxResults", "NextToken", "SortBy", "ResourceArn", "Tags",
    "Key", "Value", "TagKeys", "StoppingCondition", "MaxRuntimeInSeconds", "ContainerEntrypoint",
]  # fmt: skip

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.dictionaries(st.sampled_from(FIELDS), values, max_size=6)


def post(endpoint: str, operation: str, body: bytes) -> int:
    request = urllib.request.Request(
        endpoint + "/",
        data=body,
        method="POST",
        headers={"X-Amz-Target": f"SageMaker.{operation}",
                 "Content-Type": "application/x-amz-json-1.1"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        code, answer = int(error.code), json.loads(error.read())
    assert answer["__type"], answer  # every error has the AWS shape
    return code


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operation=st.sampled_from(OPERATIONS), body=bodies | values)
def test_random_bodies_never_500(server: Clients, operation: str, body: Any) -> None:
    assert post(server.endpoint, operation, json.dumps(body).encode()) < 500


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operation=st.sampled_from(OPERATIONS), body=st.binary(max_size=64))
def test_random_bytes_never_500(server: Clients, operation: str, body: bytes) -> None:
    assert post(server.endpoint, operation, body) < 500
