"""The CloudWatch Logs view over the shim's log files (spec 1.16)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opensage.control.logs import TRAINING_GROUP, LogService
from opensage.errors import LogsResourceNotFoundError, ValidationError
from opensage.store import Resource, Store

REGION, ACCOUNT = "us-east-1", "123456789012"
START = 1_700_000_000.0
STREAM = "job-a/algo-1-1700000000"


def add_job(store: Store, name: str, *, stream: str | None = None, start: float = START) -> None:
    state: dict[str, Any] = {"SecondaryStatus": "Training"}
    if stream is not None:
        state.update(LogStream=stream, TrainingStartTime=start)
    store.insert(
        Resource(
            kind="TrainingJob",
            name=name,
            arn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}",
            status="InProgress",
            created_at=start - 10,
            updated_at=start,
            request={},
            state=state,
        )
    )


def write_log(path: Path, lines: list[tuple[int, str]], tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{ms} {message}\n" for ms, message in lines) + tail, "utf-8")


@pytest.fixture
def log_file(tmp_path: Path) -> Callable[..., Path]:
    return lambda job, host="algo-1": tmp_path / "jobs" / job / "run" / "output.log"


@pytest.fixture
def service(store: Store, log_file: Callable[..., Path]) -> LogService:
    add_job(store, "job-a", stream=STREAM)
    write_log(
        log_file("job-a"),
        [(1000 + i, f"line {i}#011tab") for i in range(10)],
        tail="1010 still being written",
    )
    return LogService(store, log_file, REGION, ACCOUNT)


def events(service: LogService, **request: Any) -> dict[str, Any]:
    return service.get_log_events(
        {"logGroupName": TRAINING_GROUP, "logStreamName": STREAM, **request}
    )


def messages(page: dict[str, Any]) -> list[str]:
    return [e["message"] for e in page["events"]]


# DescribeLogStreams -------------------------------------------------------------------------


def test_describe_log_streams(service: LogService, log_file: Callable[..., Path]) -> None:
    out = service.describe_log_streams(
        {"logGroupName": TRAINING_GROUP, "logStreamNamePrefix": "job-a/"}
    )
    (stream,) = out["logStreams"]
    assert stream == {
        "logStreamName": STREAM,
        "creationTime": int(START * 1000),
        "arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{TRAINING_GROUP}:log-stream:{STREAM}",
        "storedBytes": log_file("job-a").stat().st_size,
        "firstEventTimestamp": 1000,
        "lastEventTimestamp": 1009,
        "lastIngestionTime": 1009,
    }
    assert "nextToken" not in out


def test_describe_prefix_is_a_string_prefix_not_a_name_match(
    store: Store, log_file: Callable[..., Path]
) -> None:
    add_job(store, "job-a", stream="job-a/algo-1-1")
    add_job(store, "job-ab", stream="job-ab/algo-1-2")
    add_job(store, "xjob-a", stream="xjob-a/algo-1-3")
    add_job(store, "job-a-pending")  # no stream yet
    service = LogService(store, log_file, REGION, ACCOUNT)

    def names(prefix: str, **extra: Any) -> list[str]:
        request = {"logGroupName": TRAINING_GROUP, "logStreamNamePrefix": prefix, **extra}
        return [s["logStreamName"] for s in service.describe_log_streams(request)["logStreams"]]

    assert names("job-a/") == ["job-a/algo-1-1"]
    assert names("job-a") == ["job-a/algo-1-1", "job-ab/algo-1-2"]
    assert names("job-a", descending=True) == ["job-ab/algo-1-2", "job-a/algo-1-1"]
    assert names("") == ["job-a/algo-1-1", "job-ab/algo-1-2", "xjob-a/algo-1-3"]
    assert names("nothing/") == []
    # a job without output yet still has a stream, just no events
    (stream,) = service.describe_log_streams(
        {"logGroupName": TRAINING_GROUP, "logStreamNamePrefix": "job-ab/"}
    )["logStreams"]
    assert stream["storedBytes"] == 0
    assert "firstEventTimestamp" not in stream


def test_describe_pagination(store: Store, log_file: Callable[..., Path]) -> None:
    for i in range(5):
        add_job(store, f"job-{i}", stream=f"job-{i}/algo-1-{i}")
    service = LogService(store, log_file, REGION, ACCOUNT)
    request: dict[str, Any] = {"logGroupName": TRAINING_GROUP, "limit": 2}
    seen: list[str] = []
    for _ in range(5):
        out = service.describe_log_streams(request)
        seen += [s["logStreamName"] for s in out["logStreams"]]
        if "nextToken" not in out:
            break
        request["nextToken"] = out["nextToken"]
    assert seen == [f"job-{i}/algo-1-{i}" for i in range(5)]
    with pytest.raises(ValidationError):
        service.describe_log_streams({"logGroupName": TRAINING_GROUP, "nextToken": "f/1"})


def test_describe_order_by_last_event_time(service: LogService) -> None:
    out = service.describe_log_streams({"logGroupName": TRAINING_GROUP, "orderBy": "LastEventTime"})
    assert [s["logStreamName"] for s in out["logStreams"]] == [STREAM]
    with pytest.raises(ValidationError, match="Cannot order by LastEventTime"):
        service.describe_log_streams(
            {
                "logGroupName": TRAINING_GROUP,
                "logStreamNamePrefix": "job-a/",
                "orderBy": "LastEventTime",
            }
        )


def test_unknown_group(service: LogService) -> None:
    with pytest.raises(LogsResourceNotFoundError, match="log group does not exist"):
        service.describe_log_streams({"logGroupName": "/aws/sagemaker/Endpoints/x"})
    with pytest.raises(LogsResourceNotFoundError):
        service.get_log_events({"logGroupName": "/nope", "logStreamName": STREAM})
    assert LogsResourceNotFoundError.code == "ResourceNotFoundException"


# GetLogEvents -------------------------------------------------------------------------------


def test_unknown_stream(service: LogService) -> None:
    with pytest.raises(LogsResourceNotFoundError, match="log stream does not exist"):
        events(service, logStreamName="job-a/algo-1-999")
    with pytest.raises(LogsResourceNotFoundError):
        events(service, logStreamName="job-a/")


def test_start_from_head_returns_complete_lines_only(service: LogService) -> None:
    page = events(service, startFromHead=True)
    assert messages(page) == [f"line {i}#011tab" for i in range(10)]
    assert page["events"][0] == {
        "timestamp": 1000,
        "message": "line 0#011tab",
        "ingestionTime": 1000,
    }
    assert (page["nextForwardToken"], page["nextBackwardToken"]) == ("f/10", "b/0")


def test_default_is_the_tail(service: LogService) -> None:
    page = events(service, limit=3)
    assert messages(page) == ["line 7#011tab", "line 8#011tab", "line 9#011tab"]
    assert (page["nextForwardToken"], page["nextBackwardToken"]) == ("f/10", "b/7")


def test_forward_paging_until_an_empty_page(service: LogService) -> None:
    page = events(service, startFromHead=True, limit=4)
    got = messages(page)
    for _ in range(5):
        page = events(service, startFromHead=True, limit=4, nextToken=page["nextForwardToken"])
        if not page["events"]:
            break
        got += messages(page)
    assert got == [f"line {i}#011tab" for i in range(10)]
    # at the end, the forward token stays put (the SDK stops on an empty page)
    assert page["nextForwardToken"] == "f/10"
    again = events(service, nextToken=page["nextForwardToken"])
    assert again["events"] == []
    assert again["nextForwardToken"] == "f/10"


def test_backward_paging(service: LogService) -> None:
    page = events(service, limit=4)
    assert messages(page) == [f"line {i}#011tab" for i in range(6, 10)]
    page = events(service, limit=4, nextToken=page["nextBackwardToken"])
    assert messages(page) == [f"line {i}#011tab" for i in range(2, 6)]
    page = events(service, limit=4, nextToken=page["nextBackwardToken"])
    assert messages(page) == ["line 0#011tab", "line 1#011tab"]
    assert page["nextBackwardToken"] == "b/0"
    assert events(service, limit=4, nextToken="b/0")["events"] == []


def test_new_lines_appear_once_terminated(
    service: LogService, log_file: Callable[..., Path]
) -> None:
    page = events(service, startFromHead=True)
    with log_file("job-a").open("a", encoding="utf-8") as f:
        f.write("\n1011 next\n")
    page = events(service, nextToken=page["nextForwardToken"])
    assert messages(page) == ["still being written", "next"]
    assert [e["timestamp"] for e in page["events"]] == [1010, 1011]


def test_time_filters(service: LogService) -> None:
    assert messages(events(service, startFromHead=True, startTime=1007)) == [
        "line 7#011tab", "line 8#011tab", "line 9#011tab"
    ]  # fmt: skip
    assert messages(events(service, startFromHead=True, endTime=1002)) == [
        "line 0#011tab", "line 1#011tab"
    ]  # fmt: skip
    page = events(service, startFromHead=True, startTime=1003, endTime=1005)
    assert messages(page) == ["line 3#011tab", "line 4#011tab"]
    assert events(service, startFromHead=True, startTime=5000)["events"] == []


def test_missing_log_file_gives_no_events(store: Store, log_file: Callable[..., Path]) -> None:
    add_job(store, "job-b", stream="job-b/algo-1-1")
    service = LogService(store, log_file, REGION, ACCOUNT)
    page = service.get_log_events(
        {"logGroupName": TRAINING_GROUP, "logStreamName": "job-b/algo-1-1", "startFromHead": True}
    )
    assert page == {"events": [], "nextForwardToken": "f/0", "nextBackwardToken": "b/0"}


def test_messages_keep_spaces_and_odd_bytes(store: Store, log_file: Callable[..., Path]) -> None:
    add_job(store, "job-c", stream="job-c/algo-1-1")
    path = log_file("job-c")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"5 a  b \n6 \xff\xfe\n7\nnot-a-stamp x\n" + "² y\n".encode())
    service = LogService(store, log_file, REGION, ACCOUNT)
    page = service.get_log_events(
        {"logGroupName": TRAINING_GROUP, "logStreamName": "job-c/algo-1-1", "startFromHead": True}
    )
    assert [(e["timestamp"], e["message"]) for e in page["events"]] == [
        (5, "a  b "),
        (6, "\ufffd\ufffd"),
        (7, ""),
        (0, "x"),
        (0, "y"),
    ]


@pytest.mark.parametrize("token", ["x/1", "f/", "f/abc", "f/-1", "b/1.5", "s/1", "garbage"])
def test_bad_tokens(service: LogService, token: str) -> None:
    with pytest.raises(ValidationError, match="nextToken is invalid"):
        events(service, nextToken=token)


@pytest.mark.parametrize("token", ["f/²", "b/²", "f/٣"])
def test_non_ascii_digit_token_is_a_validation_error(service: LogService, token: str) -> None:
    with pytest.raises(ValidationError, match="nextToken is invalid"):
        events(service, nextToken=token)


def test_non_ascii_digit_describe_token_is_a_validation_error(service: LogService) -> None:
    with pytest.raises(ValidationError):
        service.describe_log_streams({"logGroupName": TRAINING_GROUP, "nextToken": "s/²"})
