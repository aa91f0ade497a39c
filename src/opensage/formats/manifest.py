"""Manifests: the SDK's `ManifestFile` (spec 2.10) and augmented manifests (spec 2.3).

- The SDK manifest is a JSON array, `[{"prefix": "s3://b/p/"}, "matrix_0.pbr", ...]`; each object is
  prefix + relative key. `record_set()` writes it as `<prefix>.amazon.manifest`.
- An augmented manifest is JSON Lines; the channel's `AttributeNames` say which attributes are
  streamed, in that order, for each line. An attribute ending in `-ref` holds an `s3://` URI whose
  object bytes are streamed; other values stream as text (strings raw, anything else as compact
  JSON: spec RECOMMENDATION).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from opensage.formats.errors import RecordError
from opensage.formats.jsonlines import iter_lines
from opensage.formats.recordio import encode_record

MANIFEST_NAME = ".amazon.manifest"


def encode_manifest(prefix: str, keys: Sequence[str]) -> bytes:
    """The manifest file's bytes, as the SDK writes them (`json.dumps`, default separators)."""
    return json.dumps([{"prefix": prefix}, *keys]).encode("utf-8")


def parse_manifest(data: bytes | str, *, source: str | None = None) -> tuple[str, list[str]]:
    """(prefix, relative keys) of a manifest file; `RecordError` if it is not one."""
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise RecordError(f"manifest is not JSON ({exc})", source=source) from None
    if (
        not isinstance(value, list)
        or not value
        or not isinstance(value[0], dict)
        or not isinstance(value[0].get("prefix"), str)
    ):
        raise RecordError(
            'a manifest is a JSON array starting with {"prefix": "s3://..."}', source=source
        )
    keys = value[1:]
    for i, key in enumerate(keys):
        if not isinstance(key, str):
            raise RecordError(f"manifest entry {i + 1} is not a string: {key!r}", source=source)
    return value[0]["prefix"], keys


def manifest_uris(data: bytes | str, *, source: str | None = None) -> list[str]:
    """Each object's full URI: prefix + relative key."""
    prefix, keys = parse_manifest(data, source=source)
    return [prefix + key for key in keys]


@dataclass(frozen=True)
class Attribute:
    """One attribute of one augmented-manifest line; `is_ref` when `value` is an S3 URI whose
    object bytes are to be streamed."""

    name: str
    value: Any

    @property
    def is_ref(self) -> bool:
        return self.name.endswith("-ref")


def attribute_text(value: Any) -> bytes:
    """A non-ref attribute's streamed bytes: strings raw, other values compact JSON."""
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def read_augmented_manifest(
    data: bytes | BinaryIO, attribute_names: Sequence[str], *, source: str | None = None
) -> Iterator[list[Attribute]]:
    """Each line's attributes named by `attribute_names`, in that order."""
    stream: BinaryIO = io.BytesIO(bytes(data)) if isinstance(data, bytes | bytearray) else data
    for number, offset, line in iter_lines(stream):

        def fail(message: str, number: int = number, offset: int = offset) -> RecordError:
            return RecordError(
                f"{message} (line {number + 1})", source=source, record=number, offset=offset
            )

        try:
            item = json.loads(line)
        except ValueError as exc:
            raise fail(f"not JSON ({exc})") from None
        if not isinstance(item, dict):
            raise fail("an augmented manifest line must be a JSON object")
        attributes = []
        for name in attribute_names:
            if name not in item:
                raise fail(f"attribute {name!r} missing")
            value = item[name]
            if name.endswith("-ref") and not (isinstance(value, str) and value.startswith("s3://")):
                raise fail(f"attribute {name!r} must be an s3:// URI")
            attributes.append(Attribute(name, value))
        yield attributes


def augmented_manifest_stream(
    data: bytes | BinaryIO,
    attribute_names: Sequence[str],
    fetch: Callable[[str], bytes],
    *,
    record_io: bool = False,
    source: str | None = None,
) -> Iterator[bytes]:
    """The bytes a Pipe-mode channel carries: each attribute value in order (`-ref` attributes
    fetched with `fetch(uri)`), each wrapped as one RecordIO record when `record_io`."""
    for attributes in read_augmented_manifest(data, attribute_names, source=source):
        for attribute in attributes:
            payload = (
                fetch(attribute.value) if attribute.is_ref else attribute_text(attribute.value)
            )
            yield encode_record(payload) if record_io else payload
