"""The SageMaker SDK's `sagemaker.amazon.common` helpers and `RecordSet`, on `opensage.formats`.

Same names, signatures and bytes as SDK v2: `write_numpy_to_dense_tensor`,
`write_spmatrix_to_sparse_tensor` and `read_records` (a list of protobuf `Record` messages), so
notebooks written for SageMaker's built-in algorithms run unchanged. The writers produce the
SDK's exact bytes but build dense files with numpy instead of one message per row.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO

import numpy.typing as npt

from opensage.formats import manifest
from opensage.formats.protobuf import Record
from opensage.formats.tensors import encode_dense, encode_sparse, read_record_messages
from opensage.sdk.estimator import TrainingInput

__all__ = [
    "Record",
    "RecordSet",
    "read_records",
    "upload_numpy_to_s3_shards",
    "write_numpy_to_dense_tensor",
    "write_spmatrix_to_sparse_tensor",
]


def write_numpy_to_dense_tensor(
    file: BinaryIO, array: npt.NDArray[Any], labels: npt.NDArray[Any] | None = None
) -> None:
    """One Record per row: `features["values"]` the row, `label["values"]` its label.

    dtypes as the SDK: `np.dtype(int)` -> Int32Tensor, float64 -> Float64, float32 -> Float32,
    anything else `ValueError`.
    """
    file.write(encode_dense(array, labels, strict=True))


def write_spmatrix_to_sparse_tensor(
    file: BinaryIO, array: Any, labels: npt.NDArray[Any] | None = None
) -> None:
    """One sparse Record per row of a scipy sparse matrix: values, keys, `shape=[n_cols]`."""
    file.write(encode_sparse(array, labels, strict=True))


def read_records(file: BinaryIO) -> list[Any]:
    """Every record of a RecordIO-protobuf file as a `Record` message (eagerly, as the SDK)."""
    return read_record_messages(file)


class RecordSet:
    """Records serialized to S3 as a training channel (the SDK's `RecordSet`)."""

    def __init__(
        self,
        s3_data: str,
        num_records: int,
        feature_dim: int,
        s3_data_type: str = "ManifestFile",
        channel: str = "train",
        distribution: str = "ShardedByS3Key",
    ) -> None:
        self.s3_data = s3_data
        self.feature_dim = feature_dim
        self.num_records = num_records
        self.s3_data_type = s3_data_type
        self.channel = channel
        self.distribution = distribution

    def __repr__(self) -> str:
        return str((RecordSet, self.__dict__))

    def data_channel(self) -> dict[str, TrainingInput]:
        """`{channel: TrainingInput}`, ready for `Estimator.fit`."""
        return {self.channel: self.records_s3_input()}

    def records_s3_input(self) -> TrainingInput:
        """The channel: no content type, so built-ins default to RecordIO-protobuf."""
        return TrainingInput(
            self.s3_data, distribution=self.distribution, s3_data_type=self.s3_data_type
        )


def _build_shards(num_shards: int, array: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
    """The SDK's split: `num_shards - 1` equal shards, the last one takes the remainder."""
    if num_shards < 1:
        raise ValueError("num_shards must be >= 1")
    shard_size = int(array.shape[0] / num_shards)
    if shard_size == 0:
        raise ValueError("Array length is less than num shards")
    shards = [array[i * shard_size : (i + 1) * shard_size] for i in range(num_shards - 1)]
    shards.append(array[(num_shards - 1) * shard_size :])
    return shards


def upload_numpy_to_s3_shards(
    num_shards: int,
    s3_client: Any,
    bucket: str,
    key_prefix: str,
    array: npt.NDArray[Any],
    labels: npt.NDArray[Any] | None = None,
    encrypt: bool = False,
) -> str:
    """Write `matrix_<i>.pbr` shards (indices zero-padded to the width of the shard count) and
    `.amazon.manifest` under `key_prefix`; returns the manifest's URI. On failure the uploaded
    shards are deleted again, as the SDK does."""
    shards = _build_shards(num_shards, array)
    label_shards = _build_shards(num_shards, labels) if labels is not None else None
    if not key_prefix.endswith("/"):
        key_prefix += "/"
    extra = {"ServerSideEncryption": "AES256"} if encrypt else {}
    uploaded: list[str] = []
    try:
        for index, shard in enumerate(shards):
            buffer = io.BytesIO()
            shard_labels = label_shards[index] if label_shards is not None else None
            write_numpy_to_dense_tensor(buffer, shard, shard_labels)
            name = f"matrix_{str(index).zfill(len(str(len(shards))))}.pbr"
            s3_client.put_object(
                Bucket=bucket, Key=key_prefix + name, Body=buffer.getvalue(), **extra
            )
            uploaded.append(name)
        body = manifest.encode_manifest(f"s3://{bucket}/{key_prefix}", uploaded)
        manifest_key = key_prefix + manifest.MANIFEST_NAME
        s3_client.put_object(Bucket=bucket, Key=manifest_key, Body=body, **extra)
        return f"s3://{bucket}/{manifest_key}"
    except Exception:
        for name in uploaded:
            s3_client.delete_object(Bucket=bucket, Key=key_prefix + name)
        raise
