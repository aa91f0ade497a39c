"""BlazingText's conformance cases: tiny generated corpora (vector_dim 8, 2 epochs) for cbow with
an `evaluation` channel (train:mean_rho), skipgram with subwords, batch_skipgram, and supervised
with a validation channel (validation:accuracy), asked in JSON and JSON Lines."""

from __future__ import annotations

import json
from typing import Any

from opensage.algorithms.blazingtext.synthetic import cluster_corpus, labelled_sentences
from tests.algorithms.conformance import DocumentCase, Request

TEXT = "text/plain"
JSON = "application/json"
JSONLINES = "application/jsonlines"
TINY = {"vector_dim": "8", "epochs": "2", "min_count": "1"}


def decode(body: bytes, accept: str) -> list[Any]:
    """BlazingText answers a bare JSON list, or one object per JSON Lines line."""
    if accept.startswith(JSONLINES):
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    document = json.loads(body)
    assert isinstance(document, list), document
    return document


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _word2vec_files(evaluation: bool) -> Any:
    def files() -> dict[str, tuple[str, dict[str, bytes]]]:
        corpus, pairs = cluster_corpus(60, clusters=3, size=5, seed=1)
        found = {"train": (TEXT, {"corpus.txt": _text(corpus)})}
        if evaluation:
            found["evaluation"] = (TEXT, {"pairs.tsv": _text(pairs)})
        return found

    return files


def _word_requests() -> list[Request]:
    words = ["g0x1", "g1x2", "never-seen"]
    body = json.dumps({"instances": words}).encode()
    lines = "\n".join(json.dumps(w) for w in words).encode()
    return [
        Request(JSON, JSON, body, 3, ("vector", "word")),
        Request(JSONLINES, JSONLINES, lines, 3, ("vector", "word")),
    ]


def _supervised_files() -> dict[str, tuple[str, dict[str, bytes]]]:
    lines = labelled_sentences(120, labels=3, seed=2, topic_words=6, common_words=20)
    return {
        "train": (TEXT, {"train.txt": _text(lines[:90])}),
        "validation": (TEXT, {"validation.txt": _text(lines[90:])}),
    }


def _supervised_requests() -> list[Request]:
    texts = ["t0w1 c1 t0w3 c2", "t1w0 t1w2 c0", "nothing known here"]
    body = json.dumps({"instances": texts, "configuration": {"k": 2}}).encode()
    lines = "\n".join(
        json.dumps({"source": t, "k": k}) for t, k in zip(texts, (1, 2, 3), strict=True)
    ).encode()
    return [
        Request(JSON, JSON, body, 3, ("label", "prob")),
        Request(JSONLINES, JSONLINES, lines, 3, ("prob", "label")),
    ]


def _case(
    name: str, files: Any, requests: Any, metrics: tuple[str, ...], **hp: str
) -> DocumentCase:
    return DocumentCase(
        name=f"blazingtext-{name}",
        algorithm="blazingtext",
        hyperparameters={**TINY, **hp},
        files=files,
        requests=requests,
        metrics=metrics,
        decode=decode,
        refused_content_types=("application/x-recordio-protobuf",),
    )


CASES = [
    _case("cbow", _word2vec_files(True), _word_requests, ("train:mean_rho",), mode="cbow"),
    _case(
        "skipgram-subwords",
        _word2vec_files(False),
        _word_requests,
        (),
        mode="skipgram",
        subwords="true",
        buckets="1000",
        evaluation="false",
    ),
    _case(
        "batch-skipgram",
        _word2vec_files(True),
        _word_requests,
        ("train:mean_rho",),
        mode="batch_skipgram",
        batch_size="6",
    ),
    _case(
        "supervised",
        _supervised_files,
        _supervised_requests,
        ("validation:accuracy",),
        mode="supervised",
        word_ngrams="2",
        buckets="5000",
        early_stopping="true",
        patience="1",
        min_epochs="1",
    ),
]
