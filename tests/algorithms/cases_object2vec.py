"""Object2Vec's conformance cases: ~200 tiny pairs of token-id sequences (vocabulary 30,
enc_dim 8, 2 epochs) through each encoder: a classification case with validation and test
channels (accuracy, cross_entropy) and a pretrained, frozen enc0 embedding; a regression case
(mean_squared_error) with hcnn and row_sparse embeddings; and bilstm with tied embeddings,
negative sampling, length bucketing and `INFERENCE_PREFERRED_MODE=embedding`. Requests in JSON
and JSON Lines for scores and for embeddings (with `infer_max_seqlens`)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tests.algorithms.conformance import JSON, JSONLINES, DocumentCase, Request

VOCAB = 30
MAX_LEN = 5
ENC_DIM = 8


def pairs(seed: int, n: int, regression: bool = False) -> list[dict[str, Any]]:
    """Pairs of sequences; label 1 when they share their first token's group (id // 10), or
    for regression the number of shared groups."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        in0 = rng.integers(0, VOCAB, size=int(rng.integers(1, MAX_LEN + 3))).tolist()
        in1 = rng.integers(0, VOCAB, size=int(rng.integers(1, MAX_LEN + 3))).tolist()
        if rng.random() < 0.5:
            in1[0] = int(in0[0] // 10 * 10 + rng.integers(0, 10))
        groups = {t // 10 for t in in0} & {t // 10 for t in in1}
        label: float = float(len(groups)) if regression else int(in0[0] // 10 == in1[0] // 10)
        records.append({"label": label, "in0": in0, "in1": in1})
    return records


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def _channels(
    regression: bool = False, pretrained: bool = False
) -> dict[str, tuple[str, dict[str, bytes]]]:
    found = {
        "train": (JSONLINES, {"part-0.jsonl": jsonl(pairs(0, 200, regression))}),
        "validation": (JSONLINES, {"part-0.jsonl": jsonl(pairs(1, 40, regression))}),
        "test": (JSONLINES, {"part-0.jsonl": jsonl(pairs(2, 40, regression))}),
    }
    if pretrained:
        vocab = {f"w{i}": i for i in range(VOCAB)}
        rng = np.random.default_rng(3)
        lines = "".join(
            f"w{i} " + " ".join(f"{v:.4f}" for v in rng.normal(size=4)) + "\n"
            for i in range(0, VOCAB, 2)
        )
        found["auxiliary"] = (
            "text/plain",
            {"vocab.json": json.dumps(vocab).encode(), "glove.txt": lines.encode()},
        )
    return found


def _requests() -> list[Request]:
    records = pairs(5, 4)
    both = [{"in0": r["in0"], "in1": r["in1"]} for r in records]
    first = [{"in0": r["in0"]} for r in records]
    second = [{"in1": r["in1"]} for r in records]

    def json_body(instances: list[dict[str, Any]]) -> bytes:
        return json.dumps({"instances": instances}).encode()

    return [
        Request(JSON, JSON, json_body(both), 4, ("scores",)),
        Request(JSONLINES, JSONLINES, jsonl(both), 4, ("scores",)),
        Request(JSONLINES, JSON, jsonl(both), 4, ("scores",)),
        Request(JSON, JSON, json_body(first), 4, ("embeddings",)),
        Request(f"{JSON}; infer_max_seqlens=2,3", JSONLINES, json_body(second), 4, ("embeddings",)),
        Request(JSONLINES, JSONLINES, jsonl(first + second), 8, ("embeddings",)),
    ]


def _case(name: str, files: Any, metrics: tuple[str, ...], **changes: str) -> DocumentCase:
    hyperparameters = {
        "enc0_max_seq_len": str(MAX_LEN),
        "enc0_vocab_size": str(VOCAB),
        "enc_dim": str(ENC_DIM),
        "enc0_token_embedding_dim": "4",
        "mlp_dim": "8",
        "mlp_layers": "1",
        "mlp_activation": "relu",
        "epochs": "2",
        "mini_batch_size": "16",
        "learning_rate": "0.01",
        **changes,
    }
    return DocumentCase(
        name=f"object2vec-{name}",
        algorithm="object2vec",
        hyperparameters=hyperparameters,
        files=files,
        requests=_requests,
        metrics=metrics,
        refused_content_types=("text/csv",),
        environ={"INFERENCE_PREFERRED_MODE": "embedding"} if "bilstm" in name else {},
    )


CASES = [
    _case(
        "pooled-classification",
        lambda: _channels(pretrained=True),
        ("validation:accuracy", "validation:cross_entropy", "test:accuracy", "test:cross_entropy"),
        enc0_network="pooled_embedding",
        enc0_pretrained_embedding_file="glove.txt",
        enc0_vocab_file="vocab.json",
        comparator_list="hadamard, abs_diff",
    ),
    _case(
        "hcnn-regression",
        lambda: _channels(regression=True),
        ("validation:mean_squared_error", "test:mean_squared_error"),
        enc0_network="hcnn",
        enc1_network="hcnn",
        enc1_max_seq_len="4",
        enc1_vocab_size=str(VOCAB),
        enc1_token_embedding_dim="6",
        enc0_cnn_filter_width="2",
        output_layer="mean_squared_error",
        optimizer="adagrad",
        token_embedding_storage_type="row_sparse",
    ),
    _case(
        "bilstm-tied-negative-sampling",
        _channels,
        ("validation:accuracy", "test:cross_entropy"),
        enc0_network="bilstm",
        enc1_network="bilstm",
        enc1_max_seq_len=str(MAX_LEN),
        enc0_layers="2",
        tied_token_embedding_weight="true",
        enc1_token_embedding_dim="4",
        negative_sampling_rate="1",
        bucket_width="2",
        num_classes="3",
        dropout="0.2",
    ),
]
