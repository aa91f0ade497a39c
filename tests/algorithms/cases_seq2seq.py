"""Seq2seq's conformance cases: 200 short digit sequences to reverse (vocabulary of 12 tokens),
tiny networks (16 hidden units, 30 updates): an RNN encoder-decoder with MLP attention that logs
every metric (BLEU on the whole validation set), and a ConvS2S-style CNN encoder-decoder;
requests in JSON (with attention matrices), JSON Lines and RecordIO-protobuf."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from opensage.algorithms.seq2seq.data import encode_records
from opensage.formats.tensors import read_record_messages
from tests.algorithms.conformance import DocumentCase, Request

JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
WORDS = [str(d) for d in range(8)]
VOCAB = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}


def reversal(seed: int, count: int, low: int = 2, high: int = 6) -> dict[str, list[list[int]]]:
    """`count` random id sequences (lengths low..high) and their reversals."""
    rng = np.random.default_rng(seed)
    sources = [
        rng.integers(4, 4 + len(WORDS), size=rng.integers(low, high + 1)) for _ in range(count)
    ]
    return {
        "source": [s.tolist() for s in sources],
        "target": [s[::-1].tolist() for s in sources],
    }


def _files() -> dict[str, tuple[str, dict[str, bytes]]]:
    vocab = json.dumps(VOCAB).encode()
    return {
        "train": (RECORDIO, {"train.rec": encode_records(reversal(0, 200))}),
        "validation": (RECORDIO, {"val.rec": encode_records(reversal(1, 20))}),
        "vocab": (JSON, {"vocab.src.json": vocab, "vocab.trg.json": vocab}),
    }


def _requests() -> list[Request]:
    sentences = ["1 2 3", "7 6 5 4", "0 unknown 3"]
    plain = {"instances": [{"data": s} for s in sentences]}
    attention = {
        "instances": [{"data": s, "configuration": {"attention_matrix": "true"}} for s in sentences]
    }
    lines = "".join(json.dumps({"source": s}) + "\n" for s in sentences)
    records = encode_records({"source": [[5, 6, 7], [11, 10, 9, 8]]})
    return [
        Request(JSON, JSON, json.dumps(plain).encode(), 3, ("target",)),
        Request(JSON, JSON, json.dumps(attention).encode(), 3, ("target", "matrix")),
        Request(JSONLINES, JSONLINES, lines.encode(), 3, ("target",)),
        Request(RECORDIO, RECORDIO, records, 2, ("target",)),
    ]


def decode(body: bytes, accept: str) -> list[Any]:
    """JSON and JSON Lines as the suite reads them; RecordIO records as `{"target": [ids]}`."""
    if accept.startswith(RECORDIO):
        return [
            {key: list(value.int32_tensor.values) for key, value in record.features.items()}
            for record in read_record_messages(body)
        ]
    if accept.startswith(JSONLINES):
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    document = json.loads(body)
    assert list(document) == ["predictions"], document
    rows: list[Any] = document["predictions"]
    return rows


TINY = {
    "num_embed_source": "8",
    "num_embed_target": "8",
    "batch_size": "16",
    "checkpoint_frequency_num_batches": "10",
    "max_num_batches": "30",
    "learning_rate": "0.01",
    "max_seq_len_source": "8",
    "max_seq_len_target": "8",
}

CASES = [
    DocumentCase(
        name="seq2seq-rnn-attention",
        algorithm="seq2seq",
        hyperparameters={
            **TINY,
            "rnn_num_hidden": "16",
            "rnn_attention_type": "mlp",
            "bleu_sample_size": "-1",
            "beam_size": "2",
        },
        files=_files,
        requests=_requests,
        metrics=(
            "validation:perplexity",
            "validation:accuracy",
            "validation:bleu",
            "train:perplexity",
        ),
        decode=decode,
        refused_content_types=("text/csv",),
    ),
    DocumentCase(
        name="seq2seq-cnn",
        algorithm="seq2seq",
        hyperparameters={
            **TINY,
            "encoder_type": "cnn",
            "decoder_type": "cnn",
            "cnn_num_hidden": "16",
            "num_layers_encoder": "2",
            "num_layers_decoder": "2",
            "optimized_metric": "bleu",
            "beam_size": "2",
        },
        files=_files,
        requests=_requests,
        metrics=("validation:perplexity", "validation:accuracy", "validation:bleu"),
        decode=decode,
    ),
]
