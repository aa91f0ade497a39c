"""The seq2seq serving handler: `load(model_dir)` for `opensage.serving` (spec algorithms §14(d)).

Requests, each answered in its own type (Content-Type and Accept agree; an Accept of another
type is 406, a wildcard or none means the request's type):

* `application/json`: `{"instances": [{"data": "whitespace tokenised text"}, ...]}` ->
  `{"predictions": [{"target": "..."}, ...]}`; an instance's (or the request's)
  `"configuration": {"attention_matrix": "true"}` adds `"matrix"`, target tokens x source
  tokens (the rows of the attention over the source words, without the appended `</s>`).
* `application/jsonlines` (batch transform): `{"source": "..."}` a line -> `{"target": "..."}`.
* `application/x-recordio-protobuf`: records with int32 `features["source"]` ids -> records
  with int32 `features["target"]` ids.

Unknown tokens read as `<unk>`; sources longer than `max_seq_len_source` are truncated. Output is
beam search of the training job's `beam_size`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from opensage.algorithms.base import JSON, JSONLINES, RECORDIO
from opensage.algorithms.inference import BuiltinHandler, Features, Results
from opensage.algorithms.seq2seq.data import Ids, encode_records, read_sources
from opensage.algorithms.seq2seq.decoding import Seq2SeqModel, Translation
from opensage.algorithms.seq2seq.model import UNK, threads_for
from opensage.algorithms.seq2seq.spec import SPEC
from opensage.formats.content_types import parse_accept
from opensage.formats.errors import RecordError
from opensage.serving.errors import InferenceError
from opensage.serving.handler import Result


def load(model_dir: Path, environ: Mapping[str, str] | None = None) -> Seq2SeqHandler:
    model = Seq2SeqModel.load(model_dir)
    threads_for(model.arch, 64)
    return Seq2SeqHandler(model, environ)


class Seq2SeqHandler(BuiltinHandler):
    """Translations of documents; the network is in eval mode and read-only."""

    def __init__(self, model: Seq2SeqModel, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(SPEC, None, environ)
        self.model = model

    def predict(self, features: Features, params: Mapping[str, str]) -> Results:
        raise NotImplementedError("seq2seq reads documents; invoke parses them")

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
    ) -> Result:
        media = self._content_type(content_type or JSON).essence
        answer = self._answer_type(media, accept)
        if not body.strip():
            return Result(b"", answer, 204)
        if media == RECORDIO:
            return Result(self._records(body), answer)
        if media == JSONLINES:
            return Result(self._lines(body), answer)
        return Result(self._json(body), answer)

    def _answer_type(self, media: str, accept: str | None) -> str:
        try:
            ranges = parse_accept(accept) if accept else []
        except ValueError:
            ranges = []
        if not ranges or any("*" in r.essence for r in ranges):
            return media
        answer = self._accept(accept).essence
        if answer != media:
            raise InferenceError(
                406,
                f"Accept type {accept} does not match the request's content type {media}: the "
                "Sequence-to-Sequence algorithm answers JSON with JSON, JSON Lines with JSON "
                "Lines and RecordIO-protobuf with RecordIO-protobuf.",
            )
        return answer

    def _ids(self, text: Any, where: str) -> Ids:
        if not isinstance(text, str):
            raise InferenceError(400, f"{where} must be a string of whitespace-separated tokens.")
        lookup = self.model.source_ids
        return np.asarray([lookup.get(token, UNK) for token in text.split()], dtype=np.int64)

    def _words(self, translation: Translation) -> str:
        vocab = self.model.target_vocab
        return " ".join(vocab[i] for i in translation.ids)

    def _json(self, body: bytes) -> bytes:
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise InferenceError(
                400, f"Unable to read the application/json request: {exc}"
            ) from None
        instances = document.get("instances") if isinstance(document, dict) else None
        if not isinstance(instances, list) or not all(isinstance(i, dict) for i in instances):
            raise InferenceError(
                400, 'The request must be {"instances": [{"data": "tokens ..."}, ...]}.'
            )
        shared = document.get("configuration") or {}
        sources = [
            self._ids(i.get("data"), f"instances[{n}].data") for n, i in enumerate(instances)
        ]
        rows = []
        for instance, translation in zip(instances, self.model.translate(sources), strict=True):
            row: dict[str, Any] = {"target": self._words(translation)}
            configuration = {**_mapping(shared), **_mapping(instance.get("configuration"))}
            if str(configuration.get("attention_matrix", "false")).lower() == "true":
                row["matrix"] = translation.attention.tolist()
            rows.append(row)
        return json.dumps({"predictions": rows}).encode()

    def _lines(self, body: bytes) -> bytes:
        sources = []
        for n, line in enumerate(line for line in body.splitlines() if line.strip()):
            try:
                document = json.loads(line)
            except ValueError as exc:
                raise InferenceError(
                    400, f"Line {n + 1} of the application/jsonlines request: {exc}"
                ) from None
            if not isinstance(document, dict) or "source" not in document:
                raise InferenceError(400, f'Line {n + 1} must be {{"source": "tokens ..."}}.')
            sources.append(self._ids(document["source"], f"line {n + 1}'s source"))
        translations = self.model.translate(sources)
        return "".join(json.dumps({"target": self._words(t)}) + "\n" for t in translations).encode()

    def _records(self, body: bytes) -> bytes:
        try:
            sources = read_sources(body)
        except RecordError as exc:
            raise InferenceError(
                400, f"Unable to read the RecordIO-protobuf request: {exc}"
            ) from None
        except Exception as exc:  # a record without an int32 source (UserError) is the client's
            raise InferenceError(400, f"Bad RecordIO-protobuf request: {exc}") from None
        size = len(self.model.source_vocab)
        sources = [np.where((s >= 0) & (s < size), s, UNK) for s in sources]
        translations = self.model.translate(sources)
        return encode_records({"target": [t.ids for t in translations]})


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
