"""CreateTrainingJob / Describe / List / Stop and tags through the real boto3 client."""

from __future__ import annotations

import datetime
import json
import sys
import time
import urllib.request
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from opensage.server.validation import validate
from tests.integration.conftest import ROLE, Clients, python_job, wait_final

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")


def raw_call(endpoint: str, operation: str, body: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        endpoint + "/",
        data=data,
        method="POST",
        headers={
            "X-Amz-Target": f"SageMaker.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def assert_output_shape(endpoint: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """The raw response satisfies the operation's output shape (required members, types)."""
    status, answer = raw_call(endpoint, operation, body)
    assert status == 200, answer
    validate(SAGEMAKER.operation_model(operation).output_shape, answer)
    return answer


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    error = info.value.response["Error"]
    return error["Code"], error["Message"]


def test_create_describe_list_stop_and_shapes(server: Clients) -> None:
    python_job(server, "api-quick", "print('done')", Tags=[{"Key": "team", "Value": "ml"}])
    python_job(server, "api-slow", "import time; time.sleep(60)")
    desc = wait_final(server, "api-quick")
    assert desc["TrainingJobStatus"] == "Completed"
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == (
        "s3://data/output/api-quick/output/model.tar.gz"
    )
    assert desc["RoleArn"] == ROLE
    assert desc["StoppingCondition"]["MaxRuntimeInSeconds"] == 86400
    statuses = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert desc["TrainingStartTime"] <= desc["TrainingEndTime"]
    assert_output_shape(server.endpoint, "DescribeTrainingJob", {"TrainingJobName": "api-quick"})
    assert_output_shape(server.endpoint, "ListTrainingJobs", {"MaxResults": 1})

    arn = desc["TrainingJobArn"]
    assert server.sagemaker.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    server.sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}])
    server.sagemaker.delete_tags(ResourceArn=arn, TagKeys=["team"])
    assert server.sagemaker.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "dev"}]

    server.sagemaker.stop_training_job(TrainingJobName="api-slow")
    stopping = server.sagemaker.describe_training_job(TrainingJobName="api-slow")
    assert stopping["TrainingJobStatus"] in ("Stopping", "Stopped")
    stopped = wait_final(server, "api-slow")
    assert stopped["TrainingJobStatus"] == "Stopped"
    assert stopped["SecondaryStatus"] == "Stopped"
    code, message = error_of(server.sagemaker.stop_training_job, TrainingJobName="api-quick")
    assert code == "ValidationException"
    assert "not in progress" in message


def test_list_filters_sort_and_pagination(server: Clients) -> None:
    names = [f"page-{i}" for i in range(5)]
    for name in names:
        python_job(server, name, "pass")
        time.sleep(0.01)  # distinct creation times for the CreationTime sort, not for sync
    for name in names:
        wait_final(server, name)
    python_job(server, "page-failing", "import sys; sys.exit(2)")
    wait_final(server, "page-failing")
    sm = server.sagemaker

    listed = sm.list_training_jobs(NameContains="page-", SortBy="Name", SortOrder="Ascending")
    got = [j["TrainingJobName"] for j in listed["TrainingJobSummaries"]]
    assert got == sorted([*names, "page-failing"])

    failed = sm.list_training_jobs(NameContains="page-", StatusEquals="Failed")
    assert [j["TrainingJobName"] for j in failed["TrainingJobSummaries"]] == ["page-failing"]

    newest = sm.list_training_jobs(NameContains="page-", SortBy="CreationTime",
                                   SortOrder="Descending")  # fmt: skip
    created = [j["CreationTime"] for j in newest["TrainingJobSummaries"]]
    assert created == sorted(created, reverse=True)

    pages = sm.get_paginator("list_training_jobs").paginate(
        NameContains="page-", SortBy="Name", PaginationConfig={"PageSize": 2}
    )
    page_sizes, seen = [], []
    for page in pages:
        page_sizes.append(len(page["TrainingJobSummaries"]))
        seen += [j["TrainingJobName"] for j in page["TrainingJobSummaries"]]
    assert page_sizes == [2, 2, 2]
    assert seen == got

    first = sm.describe_training_job(TrainingJobName="page-0")["CreationTime"]
    hour = datetime.timedelta(hours=1)
    before = sm.list_training_jobs(NameContains="page-", CreationTimeBefore=first - hour)
    assert before["TrainingJobSummaries"] == []
    after = sm.list_training_jobs(NameContains="page-", CreationTimeAfter=first - hour,
                                  CreationTimeBefore=first + hour)  # fmt: skip
    assert len(after["TrainingJobSummaries"]) == 6


def test_bad_requests_get_aws_errors(server: Clients) -> None:
    sm = server.sagemaker
    code, message = error_of(sm.describe_training_job, TrainingJobName="no-such-job")
    assert (code, message) == ("ValidationException", "Requested resource not found.")
    code, _ = error_of(sm.stop_training_job, TrainingJobName="no-such-job")
    assert code == "ValidationException"

    python_job(server, "dup", "pass")
    code, message = error_of(python_job, clients=server, name="dup", code="pass")
    assert code == "ResourceInUse"
    assert "dup" in message

    status, body = raw_call(server.endpoint, "CreateTrainingJob", {"TrainingJobName": "x"})
    assert status == 400
    assert body["__type"] == "ValidationException"
    assert "Value null at 'roleArn' failed to satisfy constraint" in body["message"]

    status, body = raw_call(
        server.endpoint,
        "DescribeTrainingJob",
        {"TrainingJobName": "bad_name!"},
    )
    assert (status, body["__type"]) == (400, "ValidationException")
    assert "regular expression pattern" in body["message"]

    code, message = error_of(
        sm.create_training_job,
        TrainingJobName="unknown-image",
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": "acme/whatever:1", "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://data/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
    )
    assert code == "ValidationException"
    assert "acme/whatever:1" in message
    code, _ = error_of(sm.describe_training_job, TrainingJobName="unknown-image")
    assert code == "ValidationException"  # nothing was stored for the refused job

    code, message = error_of(
        sm.create_training_job,
        TrainingJobName="no-resources",
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": "opensage/python:3",
                                "TrainingInputMode": "File",
                                "ContainerEntrypoint": [sys.executable]},
        OutputDataConfig={"S3OutputPath": "s3://data/output"},
    )  # fmt: skip
    assert code == "ValidationException"
    assert "ResourceConfig" in message

    status, body = raw_call(server.endpoint, "DescribeTrainingJob", b"{not json")
    assert (status, body["__type"]) == (400, "SerializationException")
    status, body = raw_call(server.endpoint, "NoSuchOperation", {})
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    assert "NoSuchOperation" in body["message"]
    code, message = error_of(sm.describe_processing_job, ProcessingJobName="t")
    assert code == "UnsupportedOperation"
    assert "DescribeProcessingJob" in message
    code, _ = error_of(sm.list_training_jobs, NextToken="garbage")
    assert code == "ValidationException"
    code, _ = error_of(
        sm.list_tags, ResourceArn="arn:aws:sagemaker:us-east-1:123456789012:training-job/nope"
    )
    assert code == "ResourceNotFound"


def test_logs_client_reads_job_output(server: Clients) -> None:
    python_job(server, "logged", "print('line one'); print('a\\tb')")
    wait_final(server, "logged")
    group = "/aws/sagemaker/TrainingJobs"
    streams = server.logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="logged/")
    (stream,) = streams["logStreams"]
    assert stream["logStreamName"].startswith("logged/algo-1-")
    events = server.logs.get_log_events(
        logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True
    )
    assert [e["message"] for e in events["events"]] == ["line one", "a#011b"]
    again = server.logs.get_log_events(
        logGroupName=group,
        logStreamName=stream["logStreamName"],
        nextToken=events["nextForwardToken"],
    )
    assert again["events"] == []
    with pytest.raises(server.logs.exceptions.ResourceNotFoundException):
        server.logs.describe_log_streams(logGroupName="/nope")
