"""The Object2Vec built-in on the algorithm contract: its table, cross-field rules, metrics,
channels and content types (spec algorithms §13). Plain data, no torch: the API server imports
it to validate a CreateTrainingJob before any process starts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from opensage.algorithms.base import (
    AUTO,
    JSON,
    JSONLINES,
    Algorithm,
    ChannelSpec,
    Hyperparameter,
    HyperparameterError,
    HyperparameterTable,
    Interval,
    Kind,
    Value,
    parse_value,
    quality_metric,
)

TEXT: Final = "text/plain"
OCTET_STREAM: Final = "application/octet-stream"
NETWORKS: Final = ("hcnn", "bilstm", "pooled_embedding")
ENC0: Final = "enc0"
COMPARATORS: Final = ("hadamard", "concat", "abs_diff")
OPTIMIZERS: Final = ("adadelta", "adagrad", "adam", "sgd", "rmsprop")
SOFTMAX: Final = "softmax"
MSE: Final = "mean_squared_error"
AUTO_LAYERS: Final = {"hcnn": 2, "bilstm": 1, "pooled_embedding": 1}
"""`enc{0,1}_layers=auto`: two convolutions for hcnn, one LSTM layer for bilstm."""
_FILE_NAME: Final = re.compile(r"[A-Za-z0-9._]+")

MAX_SEQ_LEN: Final = Interval(1, 5000)
VOCAB_SIZE: Final = Interval(2, 3_000_000)


def _encoder_rows(i: int) -> tuple[Hyperparameter, ...]:
    required = i == 0
    network_options = NETWORKS if i == 0 else (*NETWORKS, ENC0)
    return (
        Hyperparameter(f"enc{i}_max_seq_len", Kind.INT, interval=MAX_SEQ_LEN, required=required),
        Hyperparameter(f"enc{i}_vocab_size", Kind.INT, interval=VOCAB_SIZE, required=required),
        Hyperparameter(
            f"enc{i}_network", Kind.CHOICE, "hcnn" if i == 0 else ENC0, options=network_options
        ),
        Hyperparameter(
            f"enc{i}_token_embedding_dim",
            Kind.INT,
            "300",
            Interval(2, 1000),
            tunable_range=Interval(5, 300),
        ),
        Hyperparameter(
            f"enc{i}_layers",
            Kind.INT,
            AUTO,
            Interval(1, 4),
            tunable_range=Interval(1, 4),
            auto=True,
        ),
        Hyperparameter(
            f"enc{i}_cnn_filter_width",
            Kind.INT,
            "3",
            Interval(1, 9),
            tunable_range=Interval(1, 5),
        ),
        Hyperparameter(f"enc{i}_pretrained_embedding_file", Kind.TEXT, ""),
        Hyperparameter(f"enc{i}_vocab_file", Kind.TEXT, ""),
        Hyperparameter(f"enc{i}_freeze_pretrained_embedding", Kind.BOOL, "true"),
    )


def _default(name: str) -> Value:
    hp = TABLE_ROWS_BY_NAME[name]
    assert hp.default is not None
    return parse_value(hp, hp.default)


def _get(values: Mapping[str, Value], name: str) -> Value:
    return values[name] if name in values else _default(name)


def _encoder1_mirrors_or_is_given(values: Mapping[str, Value]) -> None:
    """enc1's vocabulary and length: taken from enc0 when enc1 is enc0's network (then a given
    value must agree), the vocabulary also when the token embedding is tied; required else."""
    shared = _get(values, "enc1_network") == ENC0
    tied = bool(_get(values, "tied_token_embedding_weight"))
    for field, mirrored in (("vocab_size", shared or tied), ("max_seq_len", shared)):
        name = f"enc1_{field}"
        if name in values:
            if mirrored and values[name] != values.get(f"enc0_{field}"):
                why = "enc1_network is enc0" if shared else "tied_token_embedding_weight is true"
                raise HyperparameterError(
                    name, f"must equal enc0_{field} when {why}", str(values[name])
                )
        elif not mirrored:
            raise HyperparameterError(
                name, "is required when enc1_network is not enc0 (enc1 has its own encoder)"
            )
    if tied:
        dims = [_get(values, f"enc{i}_token_embedding_dim") for i in (0, 1)]
        if dims[0] != dims[1]:
            raise HyperparameterError(
                "enc1_token_embedding_dim",
                "must equal enc0_token_embedding_dim when tied_token_embedding_weight is true",
                str(dims[1]),
            )


def _comparators_once_each(values: Mapping[str, Value]) -> None:
    chosen = values.get("comparator_list")
    if isinstance(chosen, tuple) and len(set(chosen)) != len(chosen):
        raise HyperparameterError(
            "comparator_list", "names a comparator twice; give each at most once", ",".join(chosen)
        )


def _pretrained_files(values: Mapping[str, Value]) -> None:
    for i in (0, 1):
        embedding = str(values.get(f"enc{i}_pretrained_embedding_file", ""))
        vocab = str(values.get(f"enc{i}_vocab_file", ""))
        for name, text in (
            (f"enc{i}_pretrained_embedding_file", embedding),
            (f"enc{i}_vocab_file", vocab),
        ):
            if text and not _FILE_NAME.fullmatch(text):
                raise HyperparameterError(
                    name,
                    "is not a file name in the auxiliary channel (letters, digits, '.' and "
                    "'_' only)",
                    text,
                )
        if i == 1 and (embedding or vocab) and _get(values, "enc1_network") == ENC0:
            raise HyperparameterError(
                "enc1_pretrained_embedding_file" if embedding else "enc1_vocab_file",
                "is for enc1's own encoder, but enc1_network is enc0 (enc1 shares enc0's); "
                "give enc0_pretrained_embedding_file and enc0_vocab_file instead",
                embedding or vocab,
            )
        if bool(embedding) != bool(vocab):
            raise HyperparameterError(
                f"enc{i}_pretrained_embedding_file" if vocab else f"enc{i}_vocab_file",
                f"is needed too: a pretrained embedding for encoder {i} takes both "
                f"enc{i}_pretrained_embedding_file and enc{i}_vocab_file",
            )


def _negative_sampling_classifies(values: Mapping[str, Value]) -> None:
    rate = values.get("negative_sampling_rate", 0)
    if rate and _get(values, "output_layer") == MSE:
        raise HyperparameterError(
            "negative_sampling_rate",
            "must be 0 with output_layer mean_squared_error: negative samples are labelled 0, "
            "which only means 'unrelated' for classification",
            str(rate),
        )


SPARSE_OPTIMIZERS: Final = ("adam", "adagrad", "sgd")
"""The optimizers with a sparse-gradient form (torch's SparseAdam, Adagrad, SGD)."""


def _sparse_storage_optimizers(values: Mapping[str, Value]) -> None:
    optimizer = _get(values, "optimizer")
    if values.get("token_embedding_storage_type") == "row_sparse" and (
        optimizer not in SPARSE_OPTIMIZERS
    ):
        raise HyperparameterError(
            "token_embedding_storage_type",
            f"trains the token embeddings with sparse gradients, which optimizer {optimizer} "
            f"does not take; use one of {', '.join(SPARSE_OPTIMIZERS)}, or dense storage",
            "row_sparse",
        )


TABLE_ROWS: Final = (
    *_encoder_rows(0),
    *_encoder_rows(1),
    Hyperparameter(
        "enc_dim", Kind.INT, "4096", Interval(4, 10000), tunable_range=Interval(4, 4096)
    ),
    Hyperparameter("bucket_width", Kind.INT, "0", Interval(0, 100)),
    Hyperparameter("comparator_list", Kind.LIST, "hadamard, concat, abs_diff", options=COMPARATORS),
    Hyperparameter("dropout", Kind.FLOAT, "0.0", Interval(0, 1), tunable_range=Interval(0, 1)),
    Hyperparameter(
        "early_stopping_patience", Kind.INT, "3", Interval(1, 5), tunable_range=Interval(1, 5)
    ),
    Hyperparameter(
        "early_stopping_tolerance",
        Kind.FLOAT,
        "0.01",
        Interval(1e-6, 0.1),
        tunable_range=Interval(0.001, 0.1),
    ),
    Hyperparameter("epochs", Kind.INT, "30", Interval(1, 100), tunable_range=Interval(4, 20)),
    Hyperparameter(
        "learning_rate", Kind.FLOAT, "0.0004", Interval(1e-6, 1), tunable_range=Interval(1e-6, 1)
    ),
    Hyperparameter(
        "mini_batch_size", Kind.INT, "32", Interval(1, 10000), tunable_range=Interval(1, 8192)
    ),
    Hyperparameter("mlp_activation", Kind.CHOICE, "linear", options=("tanh", "relu", "linear")),
    Hyperparameter(
        "mlp_dim", Kind.INT, "512", Interval(2, 10000), tunable_range=Interval(16, 1024)
    ),
    Hyperparameter("mlp_layers", Kind.INT, "2", Interval(0, 10), tunable_range=Interval(1, 4)),
    Hyperparameter("negative_sampling_rate", Kind.INT, "0", Interval(0)),
    Hyperparameter("num_classes", Kind.INT, "2", Interval(2, 30)),
    Hyperparameter("optimizer", Kind.CHOICE, "adam", options=OPTIMIZERS),
    Hyperparameter("output_layer", Kind.CHOICE, SOFTMAX, options=(SOFTMAX, MSE)),
    Hyperparameter("tied_token_embedding_weight", Kind.BOOL, "false"),
    Hyperparameter(
        "token_embedding_storage_type", Kind.CHOICE, "dense", options=("dense", "row_sparse")
    ),
    Hyperparameter(
        "weight_decay", Kind.FLOAT, "0", Interval(0, 10000), tunable_range=Interval(0, 1)
    ),
)
TABLE_ROWS_BY_NAME: Final = {hp.name: hp for hp in TABLE_ROWS}

TABLE: Final = HyperparameterTable(
    "Object2Vec algorithm",
    TABLE_ROWS,
    checks=(
        _encoder1_mirrors_or_is_given,
        _comparators_once_each,
        _pretrained_files,
        _negative_sampling_classifies,
        _sparse_storage_optimizers,
    ),
)
"""`token_embedding_storage_type=row_sparse` trains the token embeddings with sparse gradients
(adam, adagrad or sgd); `negative_sampling_rate` has no upper bound, as [D] says (the SDK caps
it at 100)."""


@dataclass(frozen=True)
class EncoderSettings:
    """One encoder's resolved settings (enc1's mirrored from enc0 where the rules say)."""

    network: str
    vocab_size: int
    max_seq_len: int
    token_embedding_dim: int
    layers: int
    cnn_filter_width: int


def _int(value: Value) -> int:
    assert isinstance(value, int), value
    return value


def encoder_settings(values: Mapping[str, Value], i: int) -> EncoderSettings:
    """Encoder `i`'s settings from resolved hyperparameters: enc1 takes enc0's network and
    sizes when `enc1_network=enc0`, and enc0's vocabulary when tied and not given."""
    shared = i == 1 and values["enc1_network"] == ENC0
    source = 0 if shared else i

    def pick(field: str) -> int:
        name = f"enc{i}_{field}"
        return _int(values[name] if name in values and not shared else values[f"enc0_{field}"])

    network = str(values[f"enc{source}_network"])
    layers = values[f"enc{source}_layers"]
    return EncoderSettings(
        network=network,
        vocab_size=pick("vocab_size"),
        max_seq_len=pick("max_seq_len"),
        token_embedding_dim=_int(values[f"enc{source}_token_embedding_dim"]),
        layers=AUTO_LAYERS[network] if layers == AUTO else _int(layers),
        cnn_filter_width=_int(values[f"enc{source}_cnn_filter_width"]),
    )


_DATA: Final = (JSONLINES,)
_AUXILIARY: Final = (TEXT, JSON, JSONLINES, OCTET_STREAM)

SPEC: Final = Algorithm(
    name="object2vec",
    title="Object2Vec",
    repositories=("object2vec",),
    hyperparameters=TABLE,
    metrics=(
        quality_metric("validation", "accuracy", "Maximize"),
        quality_metric("validation", "cross_entropy", "Minimize"),
        quality_metric("validation", "mean_squared_error", "Minimize"),
        quality_metric("test", "accuracy", "Maximize"),
        quality_metric("test", "cross_entropy", "Minimize"),
        quality_metric("test", "mean_squared_error", "Minimize"),
    ),
    channels=(
        ChannelSpec("train", required=True, content_types=_DATA),
        ChannelSpec("validation", content_types=_DATA),
        ChannelSpec("test", content_types=_DATA),
        ChannelSpec("auxiliary", content_types=_AUXILIARY),
    ),
    default_content_type=JSONLINES,
    request_types=(JSON, JSONLINES),
    accept_types=(JSON, JSONLINES),
    default_accept=JSON,
    supports_pipe=False,
)
