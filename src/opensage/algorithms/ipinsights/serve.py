"""The IP Insights serving handler: `load(model_dir)` for `opensage.serving` (spec §9(d)).

Requests: CSV rows `entity_id, ipv4`; JSON `{"instances": [...]}` or JSON Lines, each instance
`{"features": ["user_1", "1.2.3.4"]}` or `{"data": {"features": {"values": [...]}}}`. Answers:
`{"predictions": [{"dot_product": 2.1}, ...]}` in JSON, one object a line in JSON Lines; with
`verbose=true` on the Accept type each object also holds `entity_embedding` and `ip_embedding`.
RecordIO-protobuf is not offered (415), as in SageMaker. A malformed row is a 400 naming it.

The shared request parsing of the 1P built-ins reads numbers; this handler reads its two text
columns itself and reuses the shared content negotiation and response encoding.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from opensage.algorithms.base import CSV, JSON, JSONLINES
from opensage.algorithms.inference import BuiltinHandler, Columns, encode
from opensage.algorithms.ipinsights.data import RowError, csv_pairs, pairs
from opensage.algorithms.ipinsights.hashing import UInt32s
from opensage.algorithms.ipinsights.model import IPInsightsModel
from opensage.algorithms.ipinsights.spec import SPEC
from opensage.formats.content_types import MediaType
from opensage.serving.errors import InferenceError
from opensage.serving.handler import Result


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> IPInsightsHandler:
    return IPInsightsHandler(IPInsightsModel.load(model_dir), environ)


class IPInsightsHandler(BuiltinHandler):
    """Stateless per request: the model is read-only after loading."""

    def __init__(self, model: IPInsightsModel, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(SPEC, None, environ)
        self.model = model

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
        entities, ips = parse_request(body, media)
        if not entities:
            return Result(b"", answer.essence, 204)
        verbose = answer.params.get("verbose", "").strip().lower() == "true"
        columns = self.columns(entities, ips, verbose)
        return Result(encode(columns, answer.essence, self.envelope), answer.essence)

    def columns(self, entities: list[str], ips: UInt32s, verbose: bool = False) -> Columns:
        """`dot_product` per pair (float64 of the float32 score), and with `verbose` the two
        vectors it is the dot product of."""
        model = self.model
        e = model.entity[model.entity_rows(entities)]
        h = model.encode(ips)
        fields: dict[str, Any] = {"dot_product": np.einsum("nd,nd->n", e, h).astype(np.float64)}
        if verbose:
            fields["entity_embedding"] = e.astype(np.float64)
            fields["ip_embedding"] = h.astype(np.float64)
        return Columns(fields)


def parse_request(body: bytes, media: MediaType) -> tuple[list[str], UInt32s]:
    """The pairs of a request; InferenceError 400 naming the first bad row."""
    kind = media.essence
    try:
        text = body.decode("utf-8-sig")
        if kind == CSV:
            return csv_pairs(text)
        if kind == JSON:
            return pairs(_numbered(_instances(json.loads(text))), "instance")
        if kind == JSONLINES:
            return pairs(_json_lines(text), "line")
    except RowError as exc:
        raise InferenceError(400, f"Unable to read the {kind} request: {exc}") from None
    except (ValueError, TypeError, KeyError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise InferenceError(400, f"Unable to read the {kind} request: {message}") from None
    raise InferenceError(415, f"Content type {kind} is not supported.")


def _instances(document: Any) -> list[Any]:
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


def _json_lines(text: str) -> Iterator[tuple[int, list[Any]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            instance = json.loads(line)
        except ValueError as exc:
            raise RowError(f"line {number}: not JSON ({exc})") from None
        yield number, _fields(instance, number, "line")


def _numbered(instances: Any) -> Iterator[tuple[int, list[Any]]]:
    for number, instance in enumerate(instances, start=1):
        yield number, _fields(instance, number, "instance")


def _fields(instance: Any, number: int, unit: str) -> list[Any]:
    """`["u", "1.2.3.4"]`, `{"features": [...]}` or `{"data": {"features": {"values": [...]}}}`."""
    values: Any = instance
    if isinstance(instance, dict):
        if "features" in instance:
            values = instance["features"]
        elif isinstance(instance.get("data"), dict) and isinstance(
            instance["data"].get("features"), dict
        ):
            values = instance["data"]["features"].get("values")
        else:
            values = None
    if not isinstance(values, list):
        raise RowError(
            f'{unit} {number}: expected {{"features": [entity_id, ipv4]}} or '
            f'{{"data": {{"features": {{"values": [entity_id, ipv4]}}}}}}'
        )
    return values
