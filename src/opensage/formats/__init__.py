"""Data formats shared by the built-in algorithms, serving and the SDK (spec training-and-data 2).

Container-side: imports only numpy, scipy, protobuf and the standard library. Every reader raises
`RecordError` (file, record index, byte offset) for malformed input.

- `recordio`: the dmlc RecordIO framing (`encode_record`, `read_records`, `split_frames`).
- `protobuf`: the `aialgs.data.Record` messages (`Record`, `Value`, `Float32Tensor`, ...).
- `tensors`: RecordIO-protobuf <-> numpy / scipy (`write_dense`, `write_sparse`, `read_batches`,
  `read_dense`, `read_sparse`), byte-identical to the SageMaker SDK's writers.
- `csv`, `libsvm`, `jsonlines`, `manifest`: the text formats and manifests.
- `compression`: gzip by magic bytes; `content_types`: media types, Accept, the format table.
"""

from opensage.formats.errors import RecordError
from opensage.formats.recordio import encode_record, read_records
from opensage.formats.tensors import (
    read_batches,
    read_dense,
    read_sparse,
    write_dense,
    write_sparse,
)

__all__ = [
    "RecordError",
    "encode_record",
    "read_batches",
    "read_dense",
    "read_records",
    "read_sparse",
    "write_dense",
    "write_sparse",
]
