"""The Object2Vec serving handler: `load(model_dir)` for `opensage.serving` (spec algorithms
§13(d)).

Requests are `{"instances": [{"in0": [...], "in1": [...]}, ...]}` (application/json) or the same
records one per line (application/jsonlines). Records with both `in0` and `in1` answer
`{"scores": [...]}` (num_classes probabilities, or one value for regression); records with only
one of them answer that encoder's `{"embeddings": [...]}` (enc_dim values). One request is all
pairs or all single sequences. The Content-Type parameter `infer_max_seqlens=<in0>,<in1>` cuts
the sequences to those lengths (each 1..5000) before encoding.

`INFERENCE_PREFERRED_MODE=classification|embedding` (default classification) picks what is
built when the model loads: the whole network, or only the encoders; a request for the other
builds it on first use (SageMaker's GPU containers refuse it instead; answering is kinder).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np

from opensage.algorithms.base import JSON
from opensage.algorithms.inference import BuiltinHandler, Columns, encode
from opensage.algorithms.ntm.model import configure_threads
from opensage.algorithms.object2vec.model import Object2VecModel, Tokens
from opensage.algorithms.object2vec.spec import SPEC
from opensage.serving.errors import InferenceError
from opensage.serving.handler import Result

MODES: Final = ("classification", "embedding")
PREFERRED_MODE: Final = "INFERENCE_PREFERRED_MODE"
SEQLENS: Final = "infer_max_seqlens"
MAX_SEQLEN: Final = 5000


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> Object2VecHandler:
    variables = os.environ if environ is None else environ
    mode = variables.get(PREFERRED_MODE, "classification").strip().lower() or "classification"
    if mode not in MODES:
        raise ValueError(
            f"{PREFERRED_MODE}={mode!r} is not one of: {', '.join(MODES)} (it picks the network "
            "loaded first)"
        )
    model = Object2VecModel.load(model_dir, mode)
    configure_threads(model.arch.work(64))
    return Object2VecHandler(model, environ)


class Object2VecHandler(BuiltinHandler):
    """Scores of pairs or embeddings of single sequences; the network is read-only."""

    def __init__(self, model: Object2VecModel, environ: Mapping[str, str] | None = None) -> None:
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
        media = self._content_type(content_type or JSON)
        answer = self._accept(accept)
        records = parse_records(body, media.essence)
        if not records:
            return Result(b"", answer.essence, 204)
        limits = max_seqlens(media.params.get(SEQLENS))
        sides = [self._side(records, i, limits[i]) for i in (0, 1)]
        kinds = {tuple(side[row] is not None for side in sides) for row in range(len(records))}
        if kinds == {(True, True)}:
            scores = self.model.scores(_all(sides[0]), _all(sides[1]))
            columns = Columns({"scores": scores})
        elif (True, True) in kinds:
            raise InferenceError(
                400,
                "Mixed records: every record of a request has both 'in0' and 'in1' (scores) "
                "or only one of them (embeddings).",
            )
        else:
            columns = Columns({"embeddings": self._embeddings(sides)})
        return Result(encode(columns, answer.essence, self.envelope), answer.essence)

    def _side(
        self, records: list[dict[str, Any]], i: int, limit: int | None
    ) -> list[Tokens | None]:
        settings = self.model.arch.encoders[i]
        cut = min(settings.max_seq_len, limit or settings.max_seq_len)
        found: list[Tokens | None] = []
        for row, record in enumerate(records):
            value = record.get(f"in{i}")
            found.append(None if value is None else _ids(value, row, i, settings.vocab_size, cut))
        return found

    def _embeddings(self, sides: list[list[Tokens | None]]) -> Any:
        rows = np.zeros((len(sides[0]), self.model.arch.enc_dim), np.float32)
        for i in (0, 1):
            picked = [row for row, tokens in enumerate(sides[i]) if tokens is not None]
            if picked:
                rows[picked] = self.model.embeddings(i, [_some(sides[i][row]) for row in picked])
        return rows


def _some(tokens: Tokens | None) -> Tokens:
    assert tokens is not None
    return tokens


def _all(side: list[Tokens | None]) -> list[Tokens]:
    return [_some(tokens) for tokens in side]


def parse_records(body: bytes, kind: str) -> list[dict[str, Any]]:
    """The request's records; each must be an object with 'in0' and/or 'in1'."""
    try:
        if kind == JSON:
            document = json.loads(body)
            if isinstance(document, dict) and "instances" in document:
                records = document["instances"]
            elif isinstance(document, dict):
                records = [document]
            else:
                records = document
        else:
            records = [json.loads(line) for line in body.splitlines() if line.strip()]
    except (ValueError, RecursionError) as exc:
        raise InferenceError(400, f"Unable to read the {kind} request: {exc}") from None
    if not isinstance(records, list):
        raise InferenceError(400, 'Expected {"instances": [{"in0": [...], "in1": [...]}, ...]}.')
    for row, record in enumerate(records):
        if not isinstance(record, dict) or ("in0" not in record and "in1" not in record):
            raise InferenceError(
                400,
                f"Record {row} has neither 'in0' nor 'in1': give both for a score, or one "
                "for its encoder's embedding.",
            )
    return records


def max_seqlens(text: str | None) -> tuple[int | None, int | None]:
    """`infer_max_seqlens=<in0>,<in1>`: the longest sequence each encoder reads."""
    if text is None:
        return None, None
    parts = [part.strip() for part in text.strip().strip("\"'").split(",")]
    try:
        values = [int(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != 2 or not all(1 <= v <= MAX_SEQLEN for v in values):
        raise InferenceError(
            400,
            f"{SEQLENS}={text} must be two integers in 1..{MAX_SEQLEN}, '<in0>,<in1>' "
            "(the longest sequence each encoder reads).",
        )
    return values[0], values[1]


def _ids(value: Any, row: int, i: int, vocab_size: int, cut: int) -> Tokens:
    if not isinstance(value, list) or not value:
        raise InferenceError(400, f"Record {row}: 'in{i}' must be a non-empty list of token ids.")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise InferenceError(400, f"Record {row}: 'in{i}' must hold integer token ids.")
    ids = np.asarray(value[:cut], dtype=np.int64)
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise InferenceError(
            400,
            f"Record {row}: 'in{i}' holds a token id outside the vocabulary [0, {vocab_size}).",
        )
    return ids
