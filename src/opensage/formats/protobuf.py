"""The `aialgs.data` proto2 `Record` (spec training-and-data 2.5) as real protobuf messages.

The classes are built at import time from a `FileDescriptorProto` assembled here, field for field
the SageMaker SDK's `record.proto`, so no protoc step or generated file is needed and messages
serialize to the same bytes as the SDK's `record_pb2`. They live in a private descriptor pool so
that loading the SDK's own `record_pb2` in the same process cannot clash with them.

These are the general, exact path (any map keys, `Bytes` values, `uid`...); `wire.py` and
`tensors.py` hold the fast numpy paths for the common dense and sparse cases.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from opensage.formats.errors import RecordError

PACKAGE = "aialgs.data"

_F = descriptor_pb2.FieldDescriptorProto
_TENSOR_TYPES = {
    "Float32Tensor": _F.TYPE_FLOAT,
    "Float64Tensor": _F.TYPE_DOUBLE,
    "Int32Tensor": _F.TYPE_INT32,
}


def _field(
    message: Any,
    name: str,
    number: int,
    ftype: int,
    *,
    repeated: bool = False,
    packed: bool = False,
    type_name: str | None = None,
    oneof_index: int | None = None,
) -> None:
    field = message.field.add(name=name, number=number, type=ftype)
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if packed:
        field.options.packed = True
    if type_name is not None:
        field.type_name = type_name
    if oneof_index is not None:
        field.oneof_index = oneof_index


def file_descriptor() -> Any:
    """`record.proto` as a `FileDescriptorProto`, the same messages, numbers and options."""
    f = descriptor_pb2.FileDescriptorProto(name="record.proto", package=PACKAGE, syntax="proto2")
    f.options.java_package = "com.amazonaws.aialgorithms.proto"
    f.options.java_outer_classname = "RecordProtos"
    for name, vtype in _TENSOR_TYPES.items():
        tensor = f.message_type.add(name=name)
        _field(tensor, "values", 1, vtype, repeated=True, packed=True)
        _field(tensor, "keys", 2, _F.TYPE_UINT64, repeated=True, packed=True)
        _field(tensor, "shape", 3, _F.TYPE_UINT64, repeated=True, packed=True)
    blob = f.message_type.add(name="Bytes")
    _field(blob, "value", 1, _F.TYPE_BYTES, repeated=True)
    _field(blob, "content_type", 2, _F.TYPE_STRING)
    value = f.message_type.add(name="Value")
    value.oneof_decl.add(name="value")
    for name, number, tname in (
        ("float32_tensor", 2, "Float32Tensor"),
        ("float64_tensor", 3, "Float64Tensor"),
        ("int32_tensor", 7, "Int32Tensor"),
        ("bytes", 9, "Bytes"),
    ):
        _field(value, name, number, _F.TYPE_MESSAGE, type_name=f".{PACKAGE}.{tname}", oneof_index=0)
    record = f.message_type.add(name="Record")
    for name, number, entry in (("features", 1, "FeaturesEntry"), ("label", 2, "LabelEntry")):
        nested = record.nested_type.add(name=entry)
        nested.options.map_entry = True
        _field(nested, "key", 1, _F.TYPE_STRING)
        _field(nested, "value", 2, _F.TYPE_MESSAGE, type_name=f".{PACKAGE}.Value")
        _field(
            record, name, number, _F.TYPE_MESSAGE,
            repeated=True, type_name=f".{PACKAGE}.Record.{entry}",
        )  # fmt: skip
    for name, number in (("uid", 3), ("metadata", 4), ("configuration", 5)):
        _field(record, name, number, _F.TYPE_STRING)
    collection = f.message_type.add(name="RecordCollection")
    _field(collection, "record", 1, _F.TYPE_MESSAGE, repeated=True, type_name=f".{PACKAGE}.Record")
    return f


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(file_descriptor())


def _message_class(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{PACKAGE}.{name}"))


Float32Tensor: Any = _message_class("Float32Tensor")
Float64Tensor: Any = _message_class("Float64Tensor")
Int32Tensor: Any = _message_class("Int32Tensor")
Bytes: Any = _message_class("Bytes")
Value: Any = _message_class("Value")
Record: Any = _message_class("Record")
RecordCollection: Any = _message_class("RecordCollection")


def parse_record(
    payload: bytes,
    *,
    source: str | None = None,
    index: int | None = None,
    offset: int | None = None,
) -> Any:
    """A `Record` message from its serialized bytes; garbage raises `RecordError`."""
    try:
        return Record.FromString(payload)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise RecordError(
            f"not a protobuf Record ({exc})", source=source, record=index, offset=offset
        ) from exc
