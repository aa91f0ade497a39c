"""The BlazingText serving handler: `load(model_dir)` for `opensage.serving` (spec algorithms
§10(d)).

Content-Type and Accept must be the same type, `application/json` or `application/jsonlines`
(batch transform); another request type is a 415 and a different Accept a 406. Text is split on
whitespace, as fastText does, and not lower-cased.

word2vec: `{"instances": ["w1", "w2"]}` answers the bare list
`[{"vector": [...], "word": "w1"}, ...]`; a word the model does not know gets zeros, unless the
model was trained with subwords (then the mean of its known character n-gram rows). JSON Lines:
each line a word (a JSON string, `{"word": ...}` or `{"source": ...}`) or `{"instances": [...]}`;
one answer object a word, one a line.

supervised: `{"instances": ["text", ...], "configuration": {"k": 2}}` answers the bare list
`[{"label": ["__label__a", ...], "prob": [...]}, ...]`, most probable first (k defaults to 1 and
is capped at the number of labels). JSON Lines: `{"source": "text", "k": 2}` per line answers
`{"prob": [...], "label": [...]}` per line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from opensage.algorithms.base import JSON, JSONLINES
from opensage.algorithms.blazingtext.classifier import Classifier, top_k
from opensage.algorithms.blazingtext.model import (
    CLASSIFIER,
    VECTORS_BIN,
    WordVectors,
    load_classifier,
)
from opensage.algorithms.blazingtext.spec import SPEC
from opensage.serving.environment import ServingEnvironment
from opensage.serving.errors import InferenceError
from opensage.serving.handler import Result, builtin_execution_parameters, media_type


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> BlazingTextHandler:
    workers = ServingEnvironment.from_env(environ).workers
    if (model_dir / CLASSIFIER).is_file():
        return ClassifierHandler(load_classifier(model_dir), workers)
    if (model_dir / VECTORS_BIN).is_file():
        return VectorsHandler(WordVectors.load(model_dir), workers)
    raise ValueError(
        f"{model_dir} holds neither {CLASSIFIER} (supervised) nor {VECTORS_BIN} (word2vec): "
        "not a BlazingText model"
    )


class BlazingTextHandler:
    """Parses and checks the request types; subclasses answer JSON or JSON Lines."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
    ) -> Result:
        kind = media_type(content_type) or JSON
        if kind not in SPEC.request_types:
            raise InferenceError(
                415,
                f"Content type {content_type} is not supported by the BlazingText algorithm; use "
                f"{JSON} (or {JSONLINES} for batch transform), with the same Accept type.",
            )
        wanted = media_type(accept)
        if wanted not in (None, "*/*", kind):
            raise InferenceError(
                406,
                f"Accept type {accept} is not supported here: the BlazingText algorithm answers "
                f"in the request's own type, so Accept must be {kind} like the Content-Type.",
            )
        if not body.strip():
            return Result(b"", kind, 204)
        try:
            text = body.decode("utf-8")
            if kind == JSON:
                answer: Any = self.answer_json(json.loads(text))
                out = json.dumps(answer)
            else:
                rows = [json.loads(line) for line in text.splitlines() if line.strip()]
                out = "".join(json.dumps(row) + "\n" for row in self.answer_lines(rows))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InferenceError(400, f"Unable to read the {kind} request: {exc}") from None
        return Result(out.encode(), kind)

    def answer_json(self, document: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    def answer_lines(self, rows: list[Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def execution_parameters(self) -> Mapping[str, object]:
        return builtin_execution_parameters(self.workers)


def _instances(document: Any) -> list[str]:
    if not isinstance(document, dict) or not isinstance(document.get("instances"), list):
        raise InferenceError(400, 'The request must be {"instances": [...]} (a list of strings).')
    instances: list[str] = document["instances"]
    if not all(isinstance(item, str) for item in instances):
        raise InferenceError(400, 'Every item of "instances" must be a string.')
    return instances


def _k(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InferenceError(400, f"k must be a positive integer, not {value!r}.")
    try:
        k = int(value)
    except ValueError:
        raise InferenceError(400, f"k must be a positive integer, not {value!r}.") from None
    if k < 1:
        raise InferenceError(400, f"k must be a positive integer, not {value!r}.")
    return k


class VectorsHandler(BlazingTextHandler):
    """Word vectors (word2vec modes)."""

    def __init__(self, vectors: WordVectors, workers: int = 1) -> None:
        super().__init__(workers)
        self.vectors = vectors

    def _vector(self, word: str) -> dict[str, Any]:
        found = self.vectors.vector(word)
        values = np.zeros(self.vectors.dim, np.float32) if found is None else found
        return {"vector": [float(v) for v in values.tolist()], "word": word}

    def answer_json(self, document: Any) -> list[dict[str, Any]]:
        return [self._vector(word) for word in _instances(document)]

    def answer_lines(self, rows: list[Any]) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            if isinstance(row, str):
                out.append(self._vector(row))
            elif isinstance(row, dict) and "instances" in row:
                out.extend(self._vector(word) for word in _instances(row))
            elif isinstance(row, dict) and isinstance(
                word := row.get("word", row.get("source")), str
            ):
                out.append(self._vector(word))
            else:
                raise InferenceError(
                    400,
                    'Each JSON Lines record must be a word: "w", {"word": "w"} or {"source": "w"}.',
                )
        return out


class ClassifierHandler(BlazingTextHandler):
    """Labels and probabilities (supervised mode)."""

    def __init__(self, model: Classifier, workers: int = 1) -> None:
        super().__init__(workers)
        self.model = model

    def _predict(self, texts: list[str], ks: list[int]) -> list[tuple[list[str], list[float]]]:
        if not texts:
            return []
        probabilities = self.model.probabilities([text.split() for text in texts])
        order, probs = top_k(probabilities, max(ks))
        return [
            (
                [self.model.labels[int(i)] for i in order[row, :k]],
                [round(float(p), 6) for p in probs[row, :k]],
            )
            for row, k in enumerate(ks)
        ]

    def answer_json(self, document: Any) -> list[dict[str, Any]]:
        texts = _instances(document)
        configuration = document.get("configuration") or {}
        if not isinstance(configuration, dict):
            raise InferenceError(400, '"configuration" must be an object such as {"k": 2}.')
        k = _k(configuration.get("k"))
        return [
            {"label": labels, "prob": probs}
            for labels, probs in self._predict(texts, [k] * len(texts))
        ]

    def answer_lines(self, rows: list[Any]) -> list[dict[str, Any]]:
        texts: list[str] = []
        ks: list[int] = []
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("source"), str):
                raise InferenceError(
                    400,
                    'Each JSON Lines record must be {"source": "some text"} (and an optional "k").',
                )
            texts.append(row["source"])
            ks.append(_k(row.get("k")))
        return [{"prob": probs, "label": labels} for labels, probs in self._predict(texts, ks)]
