"""The S3 subset and STS through the real boto3 clients: buckets, objects, copies, batch deletes,
listings with paging and URL-encoded keys, multipart uploads (boto3's transfer manager and the
raw calls with their errors), and GetCallerIdentity found through `AWS_ENDPOINT_URL` alone."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.integration.conftest import Clients

MIB = 1024 * 1024
SMALL_PARTS = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)


@pytest.fixture
def s3(process_server: Clients, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh bucket per test, named after it, emptied and deleted afterwards."""
    client = process_server.s3
    bucket = request.node.name.replace("_", "-")[:50].strip("-").lower()
    client.create_bucket(Bucket=bucket)
    client.bucket = bucket
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


def code_of(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def test_buckets_are_created_listed_and_only_deleted_when_empty(process_server: Clients) -> None:
    client = process_server.s3
    client.create_bucket(Bucket="short-lived")
    assert "short-lived" in [b["Name"] for b in client.list_buckets()["Buckets"]]
    client.head_bucket(Bucket="short-lived")
    assert client.get_bucket_location(Bucket="short-lived").get("LocationConstraint") is None
    client.put_object(Bucket="short-lived", Key="a/b.txt", Body=b"x")
    with pytest.raises(ClientError) as info:
        client.delete_bucket(Bucket="short-lived")
    assert code_of(info) == "BucketNotEmpty"
    assert client.get_object(Bucket="short-lived", Key="a/b.txt")["Body"].read() == b"x"
    client.delete_object(Bucket="short-lived", Key="a/b.txt")
    client.delete_bucket(Bucket="short-lived")
    with pytest.raises(ClientError) as info:
        client.head_bucket(Bucket="short-lived")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as info:
        client.delete_bucket(Bucket="short-lived")
    assert code_of(info) == "NoSuchBucket"


KEYS = ["plain.txt", "with space.txt", "q?mark#hash", "plus+sign&amp", "ünïcødé/名前.csv", "a%2Fb"]


def test_odd_keys_round_trip_and_list_back_exactly(s3: Any) -> None:
    for key in KEYS:
        s3.put_object(Bucket=s3.bucket, Key=key, Body=key.encode())
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket)["Contents"]]
    assert listed == sorted(KEYS)
    legacy = [o["Key"] for o in s3.list_objects(Bucket=s3.bucket)["Contents"]]
    assert legacy == sorted(KEYS)
    for key in KEYS:
        assert s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == key.encode()


def test_listing_pages_with_prefix_and_delimiter(s3: Any) -> None:
    keys = [f"train/part-{i:02d}.csv" for i in range(7)] + ["train/sub/x", "test/y", "top"]
    for key in keys:
        s3.put_object(Bucket=s3.bucket, Key=key, Body=b"1")
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=s3.bucket, Prefix="train/", PaginationConfig={"PageSize": 3}
        )
    )
    assert [p["KeyCount"] for p in pages] == [3, 3, 2]
    assert [o["Key"] for p in pages for o in p["Contents"]] == sorted(
        k for k in keys if k.startswith("train/")
    )
    legacy = list(
        s3.get_paginator("list_objects").paginate(
            Bucket=s3.bucket, PaginationConfig={"PageSize": 4}
        )
    )
    assert [o["Key"] for p in legacy for o in p["Contents"]] == sorted(keys)
    folders = s3.list_objects_v2(Bucket=s3.bucket, Delimiter="/")
    assert [p["Prefix"] for p in folders["CommonPrefixes"]] == ["test/", "train/"]
    assert [o["Key"] for o in folders["Contents"]] == ["top"]
    after = s3.list_objects_v2(Bucket=s3.bucket, Prefix="train/", StartAfter="train/part-05.csv")
    assert [o["Key"] for o in after["Contents"]] == ["train/part-06.csv", "train/sub/x"]


def test_copy_object_and_batch_delete(s3: Any) -> None:
    s3.put_object(Bucket=s3.bucket, Key="src/one q?.bin", Body=b"payload")
    s3.copy_object(
        Bucket=s3.bucket,
        Key="dst/copy.bin",
        CopySource={"Bucket": s3.bucket, "Key": "src/one q?.bin"},
    )
    assert s3.get_object(Bucket=s3.bucket, Key="dst/copy.bin")["Body"].read() == b"payload"
    with pytest.raises(ClientError) as info:
        s3.copy_object(
            Bucket=s3.bucket, Key="dst/none", CopySource={"Bucket": s3.bucket, "Key": "missing"}
        )
    assert code_of(info) == "NoSuchKey"

    answer = s3.delete_objects(
        Bucket=s3.bucket,
        Delete={"Objects": [{"Key": "src/one q?.bin"}, {"Key": "never-there"}, {"Key": "a/../b"}]},
    )
    assert sorted(d["Key"] for d in answer["Deleted"]) == ["never-there", "src/one q?.bin"]
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("a/../b", "InvalidArgument")]
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket)["Contents"]]
    assert left == ["dst/copy.bin"]


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def test_multipart_upload_download_and_copy_through_the_transfer_manager(
    s3: Any, tmp_path: Path
) -> None:
    data = random_bytes(11 * MIB + 123)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    s3.upload_file(str(source), s3.bucket, "big/object.bin", Config=SMALL_PARTS)
    head = s3.head_object(Bucket=s3.bucket, Key="big/object.bin")
    assert head["ContentLength"] == len(data)

    back = tmp_path / "back.bin"
    s3.download_file(s3.bucket, "big/object.bin", str(back), Config=SMALL_PARTS)
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(data).digest()

    s3.copy(  # over the threshold: CreateMultipartUpload + UploadPartCopy with ranges
        {"Bucket": s3.bucket, "Key": "big/object.bin"},
        s3.bucket,
        "big/copy.bin",
        Config=SMALL_PARTS,
    )
    copied = s3.get_object(Bucket=s3.bucket, Key="big/copy.bin")["Body"].read()
    assert copied == data
    ranged = s3.get_object(Bucket=s3.bucket, Key="big/copy.bin", Range="bytes=6291456-6291465")
    assert ranged["Body"].read() == data[6291456:6291466]


def test_multipart_mistakes_get_s3s_errors_and_store_nothing(s3: Any) -> None:
    bucket, key = s3.bucket, "parts/object.bin"
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    first = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"a" * 10)
    second = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=2, Body=b"b")

    def complete(parts: list[dict[str, Any]]) -> None:
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )

    with pytest.raises(ClientError) as info:  # a first part under 5 MiB
        complete(
            [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}]
        )
    assert code_of(info) == "EntityTooSmall"
    with pytest.raises(ClientError) as info:
        complete([{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}])
    assert code_of(info) == "InvalidPart"
    with pytest.raises(ClientError) as info:
        complete(
            [{"PartNumber": 2, "ETag": second["ETag"]}, {"PartNumber": 1, "ETag": first["ETag"]}]
        )
    assert code_of(info) == "InvalidPartOrder"
    with pytest.raises(ClientError) as info:  # the upload is for another key
        s3.upload_part(Bucket=bucket, Key="other", UploadId=upload, PartNumber=1, Body=b"x")
    assert code_of(info) == "NoSuchUpload"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)

    done = s3.complete_multipart_upload(  # a lone last part may be small
        Bucket=bucket,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": second["ETag"]}]},
    )
    stored = s3.get_object(Bucket=bucket, Key=key)
    assert stored["Body"].read() == b"b"
    assert stored["ETag"] == done["ETag"]
    with pytest.raises(ClientError) as info:  # completed: the upload is gone
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=3, Body=b"x")
    assert code_of(info) == "NoSuchUpload"

    aborted = s3.create_multipart_upload(Bucket=bucket, Key="aborted")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="aborted", UploadId=aborted, PartNumber=1, Body=b"z")
    s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=aborted)
    with pytest.raises(ClientError) as info:
        s3.upload_part(Bucket=bucket, Key="aborted", UploadId=aborted, PartNumber=1, Body=b"z")
    assert code_of(info) == "NoSuchUpload"
    with pytest.raises(ClientError) as info:
        s3.upload_part(Bucket=bucket, Key="aborted", UploadId="../../etc", PartNumber=1, Body=b"")
    assert code_of(info) == "NoSuchUpload"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]


def test_sts_answers_the_account_and_aws_endpoint_url_alone_finds_it(
    process_server: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", process_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDOPENSAGE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    session = boto3.session.Session()
    identity = session.client("sts").get_caller_identity()
    assert identity["Account"] == "123456789012"
    assert identity["Arn"] == "arn:aws:iam::123456789012:user/AKIDOPENSAGE"
    session.client("s3").create_bucket(Bucket="found-by-env")
    assert "found-by-env" in [b["Name"] for b in session.client("s3").list_buckets()["Buckets"]]
    assert session.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    with pytest.raises(ClientError) as info:
        session.client("sts").get_session_token()
    assert code_of(info) == "InvalidAction"
