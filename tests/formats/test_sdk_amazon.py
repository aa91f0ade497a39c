"""`opensage.sdk.amazon` and `Estimator.record_set`: the SDK's shapes, names and bytes."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np
import pytest

from opensage.formats.tensors import read_dense
from opensage.sdk import (
    Estimator,
    RecordSet,
    read_records,
    write_numpy_to_dense_tensor,
    write_spmatrix_to_sparse_tensor,
)
from opensage.sdk.amazon import upload_numpy_to_s3_shards


class FakeS3:
    def __init__(self, fail_on: str | None = None) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.fail_on = fail_on

    def put_object(self, Bucket: str, Key: str, Body: bytes, **extra: Any) -> None:
        if self.fail_on and Key.endswith(self.fail_on):
            raise RuntimeError("upload failed")
        self.objects[(Bucket, Key)] = Body

    def delete_object(self, Bucket: str, Key: str) -> None:
        del self.objects[(Bucket, Key)]


class FakeSession:
    def __init__(self) -> None:
        self.s3_client = FakeS3()

    def default_bucket(self) -> str:
        return "sagemaker-us-east-1-123456789012"


def test_record_set_writes_shards_and_manifest() -> None:
    session = FakeSession()
    est = Estimator(image_uri="kmeans:1", instance_count=3, sagemaker_session=session)  # type: ignore[arg-type]
    train = np.arange(40, dtype=np.float32).reshape(10, 4)
    labels = np.arange(10, dtype=np.float32)
    rs = est.record_set(train, labels, channel="train")
    assert isinstance(rs, RecordSet)
    assert (rs.num_records, rs.feature_dim, rs.channel) == (10, 4, "train")
    bucket = "sagemaker-us-east-1-123456789012"
    match = re.fullmatch(
        rf"s3://{bucket}/(sagemaker-record-sets/Estimator-\d{{4}}(-\d\d){{5}}-\d{{3}}/)"
        r"\.amazon\.manifest",
        rs.s3_data,
    )
    assert match, rs.s3_data
    prefix = match.group(1)
    objects = session.s3_client.objects
    manifest = json.loads(objects[(bucket, prefix + ".amazon.manifest")])
    assert manifest == [
        {"prefix": f"s3://{bucket}/{prefix}"},
        "matrix_0.pbr",
        "matrix_1.pbr",
        "matrix_2.pbr",
    ]
    rows = [read_dense(objects[(bucket, prefix + n)]) for n in manifest[1:]]
    assert [len(r[0]) for r in rows] == [3, 3, 4]  # the SDK's split: the last takes the rest
    np.testing.assert_array_equal(np.concatenate([r[0] for r in rows]), train)
    np.testing.assert_array_equal(np.concatenate([r[1] for r in rows]), labels)
    channel = rs.records_s3_input().channel("train")
    assert channel == {
        "ChannelName": "train",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "ManifestFile",
                "S3Uri": rs.s3_data,
                "S3DataDistributionType": "ShardedByS3Key",
            }
        },
    }
    assert "ContentType" not in channel
    assert list(rs.data_channel()) == ["train"]
    assert "RecordSet" in repr(rs)


def test_shard_names_are_zero_padded_and_failures_clean_up() -> None:
    s3 = FakeS3()
    uri = upload_numpy_to_s3_shards(11, s3, "b", "p", np.zeros((22, 2)))
    assert uri == "s3://b/p/.amazon.manifest"
    names = json.loads(s3.objects[("b", "p/.amazon.manifest")])[1:]
    assert names[:2] == ["matrix_00.pbr", "matrix_01.pbr"]
    assert names[-1] == "matrix_10.pbr"
    failing = FakeS3(fail_on="matrix_2.pbr")
    with pytest.raises(RuntimeError):
        upload_numpy_to_s3_shards(3, failing, "b", "p/", np.zeros((6, 2)))
    assert failing.objects == {}
    with pytest.raises(ValueError, match="less than num shards"):
        upload_numpy_to_s3_shards(3, s3, "b", "p", np.zeros((2, 2)))


def test_helpers_match_sdk_signatures() -> None:
    import scipy.sparse

    buffer = io.BytesIO()
    write_numpy_to_dense_tensor(buffer, np.array([[1.0, 2.0]], np.float32))
    write_spmatrix_to_sparse_tensor(
        buffer, scipy.sparse.csr_matrix(np.array([[0, 3.0]], np.float32)), np.array([1.0])
    )
    buffer.seek(0)
    records = read_records(buffer)
    assert len(records) == 2
    assert list(records[0].features["values"].float32_tensor.values) == [1.0, 2.0]
    assert list(records[1].features["values"].float32_tensor.keys) == [1]
    assert list(records[1].label["values"].float64_tensor.values) == [1.0]
