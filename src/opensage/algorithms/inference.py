"""Requests and responses of the 1P built-ins' model servers (spec algorithms 1.3-1.5).

Every 1P built-in takes the same requests: CSV rows of features (`label_size` columns dropped
first, 0 by default), JSON `{"instances": [...]}` or JSON Lines of instances, each either
`{"features": [...]}` or `{"data": {"features": {"values": [...], "keys": [...], "shape": [d]}}}`
(sparse when it has keys), and RecordIO-protobuf records. It answers a list of per-row objects
(`{"score": 0.4, "predicted_label": 1}`), rendered as JSON under the algorithm's envelope key
(`predictions`, `projections`), JSON Lines, RecordIO-protobuf (each key a `label` tensor) or CSV
(values in key order). Only `predict` differs between algorithms.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from opensage.algorithms.base import CSV, JSON, JSONLINES, RECORDIO, Algorithm
from opensage.formats.content_types import MediaType, canonical, parse_accept, parse_media_type
from opensage.formats.errors import RecordError
from opensage.serving.environment import ServingEnvironment
from opensage.serving.errors import InferenceError
from opensage.serving.handler import Result, builtin_execution_parameters

Features = Any
"""A float32 2-D numpy array, or a float32 `scipy.sparse.csr_matrix`."""
Row = dict[str, Any]


@dataclass(frozen=True)
class Columns:
    """Per-row results held as one array per key (1-D: a number per row, 2-D: a list per row).

    A handler answering thousands of rows at a time returns this instead of a dict per row:
    JSON and JSON Lines are then written from whole columns, three times faster than a
    `json.dumps` per row (batch transform sends 6 MB requests), with the same bytes.
    """

    fields: Mapping[str, npt.NDArray[Any]]

    def rows(self) -> list[Row]:
        names = list(self.fields)
        values = zip(*(column.tolist() for column in self.fields.values()), strict=True)
        return [dict(zip(names, row, strict=True)) for row in values]

    def json_objects(self) -> list[str] | None:
        """Each row as `json.dumps` writes it, or None where a column needs json's own rules
        (booleans, NaN and infinities, anything but numbers)."""
        parts: list[str] = []
        cells: list[list[str]] = []
        for name, column in self.fields.items():
            if column.dtype.kind not in "iuf" or column.ndim not in (1, 2):
                return None
            if column.dtype.kind == "f" and not np.isfinite(column).all():
                return None
            parts.append(f"{json.dumps(name)}: ".replace("%", "%%"))
            # float and int reprs are what json writes; a list's repr is its JSON too.
            cells.append(list(map(repr, column.tolist())))
        template = "{" + ", ".join(f"{part}%s" for part in parts) + "}"
        return [template % row for row in zip(*cells, strict=True)]


Results = Sequence[Row] | Columns


def parse_features(body: bytes, content_type: MediaType) -> Features:
    """The rows of a request body; InferenceError 400 when the body is not what it says."""
    kind = content_type.essence
    try:
        if kind == CSV:
            return _csv(body, content_type)
        if kind == JSON:
            return _instances(_json_instances(json.loads(body)))
        if kind == JSONLINES:
            lines = [line for line in body.splitlines() if line.strip()]
            return _instances([json.loads(line) for line in lines])
        if kind == RECORDIO:
            from opensage.formats.tensors import read_tensors

            features, _ = read_tensors(body)
            if sp.issparse(features):
                return sp.csr_matrix(features, dtype=np.float32)
            return np.asarray(features, dtype=np.float32)
    except RecordError as exc:
        raise InferenceError(400, f"Unable to read the {kind} request: {exc}") from None
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InferenceError(400, f"Unable to read the {kind} request: {_one_line(exc)}") from None
    raise InferenceError(415, f"Content type {kind} is not supported.")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _csv(body: bytes, content_type: MediaType) -> Features:
    from opensage.formats.content_types import label_size
    from opensage.formats.csv import read_csv

    size = label_size(content_type, 0)
    features, _ = read_csv(body, label_size=size, dtype=np.float32)
    return features


def _json_instances(document: Any) -> list[Any]:
    if isinstance(document, dict) and "instances" in document:
        instances = document["instances"]
    elif isinstance(document, dict) and ("features" in document or "data" in document):
        instances = [document]
    elif isinstance(document, list):
        instances = document
    else:
        raise ValueError('expected {"instances": [...]} or a list of instances')
    if not isinstance(instances, list):
        raise ValueError('"instances" must be a list')
    return instances


def _instances(instances: Sequence[Any]) -> Features:
    """Dense rows, or CSR as soon as one instance is sparse (keys and shape)."""
    rows = [_instance(instance) for instance in instances]
    if not rows:
        return np.empty((0, 0), np.float32)
    if all(keys is None for _, keys, _ in rows):
        widths = {len(values) for values, _, _ in rows}
        if len(widths) > 1:
            raise ValueError(f"instances have different numbers of features: {sorted(widths)}")
        return np.asarray([values for values, _, _ in rows], dtype=np.float32).reshape(
            len(rows), widths.pop()
        )
    width = max(shape if shape is not None else len(values) for values, _, shape in rows)
    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    for values, keys, _ in rows:
        columns = keys if keys is not None else list(range(len(values)))
        if len(columns) != len(values):
            raise ValueError("a sparse instance needs as many keys as values")
        indices.extend(int(k) for k in columns)
        data.extend(float(v) for v in values)
        indptr.append(len(indices))
    if indices and (min(indices) < 0 or max(indices) >= width):
        raise ValueError(f"a key lies outside the shape [{width}]")
    matrix = sp.csr_matrix(
        (np.asarray(data, np.float32), np.asarray(indices, np.int64), np.asarray(indptr)),
        shape=(len(rows), width),
    )
    matrix.sort_indices()
    return matrix


def _instance(instance: Any) -> tuple[list[float], list[int] | None, int | None]:
    if isinstance(instance, list):
        return [float(v) for v in instance], None, None
    if not isinstance(instance, dict):
        raise ValueError("each instance must be an object or a list of numbers")
    if "features" in instance:
        return [float(v) for v in instance["features"]], None, None
    tensor = instance["data"]["features"]
    values = [float(v) for v in tensor.get("values", [])]
    keys = tensor.get("keys")
    shape = tensor.get("shape")
    if keys is None:
        return values, None, None
    width = int(shape[0]) if shape else None
    if width is None:
        raise ValueError("a sparse instance (with keys) needs a shape")
    return values, [int(k) for k in keys], width


def encode(results: Results, accept: str, envelope: str = "predictions") -> bytes:
    """Per-row results in the Accept type: JSON under `envelope`, JSON Lines, RecordIO, CSV."""
    if isinstance(results, Columns):
        objects = results.json_objects() if accept in (JSON, JSONLINES) else None
        if objects is not None and accept == JSON:
            return f"{{{json.dumps(envelope)}: [{', '.join(objects)}]}}".encode()
        if objects is not None:
            return "".join(f"{line}\n" for line in objects).encode()
        results = results.rows()
    rows: Sequence[Row] = results
    if accept == JSON:
        return json.dumps({envelope: list(rows)}).encode()
    if accept == JSONLINES:
        return "".join(json.dumps(row) + "\n" for row in rows).encode()
    if accept == RECORDIO:
        from opensage.formats.tensors import encode_label_records

        return encode_label_records(rows)
    if accept == CSV:
        return "".join(",".join(_csv_cells(row)) + "\n" for row in rows).encode()
    raise InferenceError(406, f"Accept type {accept} is not supported.")


def _csv_cells(row: Row) -> list[str]:
    cells: list[str] = []
    for value in row.values():
        if isinstance(value, list | tuple):
            cells.extend(repr(float(v)) for v in value)
        else:
            cells.append(repr(float(value)))
    return cells


def to_json_number(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON numbers and lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class BuiltinHandler:
    """The serving handler of a 1P built-in: parse, `predict`, encode. Subclasses implement
    `predict` and say how wide the rows must be; nothing mutable is kept per request."""

    envelope = "predictions"

    def __init__(
        self,
        algorithm: Algorithm,
        width: int | None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = ServingEnvironment.from_env(environ)
        self.algorithm = algorithm
        self.width = width
        self.workers = env.workers
        self.default_accept = env.default_accept or algorithm.default_accept

    def predict(self, features: Features, params: Mapping[str, str]) -> Results:
        """One result object per row; `params` are the Accept type's (`verbose=true`)."""
        raise NotImplementedError

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
    ) -> Result:
        if not body.strip():
            return Result(b"", self.default_accept, 204)
        media = self._content_type(content_type)
        answer = self._accept(accept)
        features = self._check_width(parse_features(body, media))
        if features.shape[0] == 0:
            return Result(b"", answer.essence, 204)
        rows = self.predict(features, answer.params)
        return Result(encode(rows, answer.essence, self.envelope), answer.essence)

    def execution_parameters(self) -> Mapping[str, object]:
        return builtin_execution_parameters(self.workers)

    def _content_type(self, content_type: str | None) -> MediaType:
        try:
            media = canonical(parse_media_type(content_type or CSV))
        except ValueError:
            media = None
        if media is None or media.essence not in self.algorithm.request_types:
            raise InferenceError(
                415,
                f"Content type {content_type} is not supported by the {self.algorithm.title} "
                f"algorithm; use one of: {', '.join(self.algorithm.request_types)}.",
            )
        return media

    def _accept(self, accept: str | None) -> MediaType:
        offered = self.algorithm.accept_types
        try:
            ranges = parse_accept(accept)
        except ValueError:
            ranges = []
        default = canonical(parse_media_type(self.default_accept))
        for media in ranges:
            if "*" in media.essence:  # a wildcard: the default if it fits, else the first that does
                fits = [default] + [parse_media_type(kind) for kind in offered]
                match = next((kind for kind in fits if media.matches(kind)), None)
                if match is not None:
                    return MediaType(match.type, match.subtype, {**match.params, **media.params})
                continue
            media = canonical(media)
            if media.essence in offered:
                return media
        if not ranges:
            return default
        raise InferenceError(
            406,
            f"Accept type {accept} is not supported by the {self.algorithm.title} algorithm; "
            f"use one of: {', '.join(offered)}.",
        )

    def _check_width(self, features: Features) -> Features:
        if self.width is None or features.shape[0] == 0:
            return features
        if sp.issparse(features) and features.shape[1] < self.width:
            m = features
            return sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], self.width))
        if features.shape[1] != self.width:
            raise InferenceError(
                400,
                f"The request has {features.shape[1]} features per record but the model was "
                f"trained on {self.width}.",
            )
        return features


def dense(features: Features) -> npt.NDArray[np.float32]:
    """Request rows as a dense float32 array."""
    if sp.issparse(features):
        return np.asarray(features.toarray(), dtype=np.float32)
    return np.asarray(features, dtype=np.float32)


IMAGE_SIGNATURES: Final = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}
"""The first bytes of a JPEG and of a PNG, for the vision built-ins' requests."""


def check_image_signature(body: bytes, kind: str) -> None:
    """A body declared image/jpeg or image/png must be one: 415 otherwise (RFC 9110 lets a
    server refuse a media type after inspecting the data). application/x-image takes either."""
    signature = IMAGE_SIGNATURES.get(kind)
    if signature is not None and not body.startswith(signature):
        raise InferenceError(
            415,
            f"The body is not a {kind.split('/')[1].upper()} image although the content type "
            f"says {kind}; send application/x-image for either format.",
        )
