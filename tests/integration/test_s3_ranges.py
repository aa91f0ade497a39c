"""The S3 subset's ranged GETs: boto3 downloads objects over 8 MB in ranged parts."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import Clients


def test_ranged_gets_and_a_multipart_download(server: Clients, tmp_path: Path) -> None:
    data = bytes(range(256)) * (40 * 1024 * 4 + 3)  # ~40 MiB, not a multiple of a part
    server.s3.put_object(Bucket="data", Key="ranges/big.bin", Body=data)

    part = server.s3.get_object(Bucket="data", Key="ranges/big.bin", Range="bytes=5-9")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 5-9/{len(data)}"
    assert part["Body"].read() == data[5:10]
    tail = server.s3.get_object(Bucket="data", Key="ranges/big.bin", Range="bytes=-7")
    assert tail["Body"].read() == data[-7:]
    rest = server.s3.get_object(
        Bucket="data", Key="ranges/big.bin", Range=f"bytes={len(data) - 4}-"
    )
    assert rest["Body"].read() == data[-4:]
    with pytest.raises(ClientError) as info:
        server.s3.get_object(Bucket="data", Key="ranges/big.bin", Range=f"bytes={len(data)}-")
    assert info.value.response["Error"]["Code"] == "InvalidRange"

    target = tmp_path / "big.bin"
    server.s3.download_file("data", "ranges/big.bin", str(target))  # ranged parts, threads
    assert target.read_bytes() == data
    listed = server.s3.list_objects_v2(Bucket="data", Prefix="ranges/nothing")
    assert listed["KeyCount"] == 0
