"""The Sequence-to-Sequence built-in on the algorithm contract: its table, metrics, channels and
content types (spec algorithms §14). Plain data, no torch: the API server imports it to validate
a CreateTrainingJob before any process starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opensage.algorithms.base import (
    AT_LEAST_1,
    JSON,
    JSONLINES,
    NON_NEGATIVE,
    POSITIVE,
    RECORDIO,
    UNIT,
    Algorithm,
    ChannelSpec,
    Hyperparameter,
    HyperparameterError,
    HyperparameterTable,
    Interval,
    Kind,
    Value,
    quality_metric,
)

TEXT: Final = "text/plain"
OCTET_STREAM: Final = "application/octet-stream"
NETWORKS: Final = ("rnn", "cnn")
CELLS: Final = ("lstm", "gru")
ATTENTIONS: Final = ("dot", "fixed", "mlp", "bilinear")
STATE_INITS: Final = ("last", "avg", "zero")
CNN_ACTIVATIONS: Final = ("glu", "relu", "softrelu", "sigmoid", "tanh")
OPTIMIZERS: Final = ("adam", "sgd", "rmsprop")
SCHEDULERS: Final = ("plateau_reduce", "fixed_rate_inv_t", "fixed_rate_inv_sqrt_t")
METRICS: Final = ("perplexity", "accuracy", "bleu")
DROPOUT_TUNING: Final = Interval(0, 0.5)


def _int(
    name: str, default: str | None, interval: Interval | None = AT_LEAST_1, **kw: object
) -> Hyperparameter:
    return Hyperparameter(name, Kind.INT, default, interval, **kw)  # type: ignore[arg-type]


def _choice(name: str, default: str, options: tuple[str, ...]) -> Hyperparameter:
    return Hyperparameter(name, Kind.CHOICE, default, options=options)


def _dropout(name: str) -> Hyperparameter:
    return Hyperparameter(name, Kind.FLOAT, "0", UNIT, tunable_range=DROPOUT_TUNING)


def _rnn_num_hidden_is_even(values: Mapping[str, Value]) -> None:
    """The first encoder layer is bidirectional: each direction gets half the units."""
    hidden = values.get("rnn_num_hidden")
    if isinstance(hidden, int) and hidden % 2:
        raise HyperparameterError(
            "rnn_num_hidden",
            "must be even: the bidirectional first encoder layer splits it between directions",
            str(hidden),
        )


def _max_num_batches_is_a_limit(values: Mapping[str, Value]) -> None:
    if values.get("max_num_batches") == 0:
        raise HyperparameterError("max_num_batches", "must be -1 (no limit) or at least 1", "0")


TABLE: Final = HyperparameterTable(
    "Sequence-to-Sequence algorithm",
    (
        # architecture
        _choice("encoder_type", "rnn", NETWORKS),
        _choice("decoder_type", "rnn", NETWORKS),
        _int("num_layers_encoder", "1", Interval(1, 10), tunable_range=Interval(1, 10)),
        _int("num_layers_decoder", "1", Interval(1, 10), tunable_range=Interval(1, 10)),
        _choice("rnn_cell_type", "lstm", CELLS),
        _int("rnn_num_hidden", "1024", Interval(2, 8192)),
        _choice("rnn_attention_type", "mlp", ATTENTIONS),
        _int("rnn_attention_num_hidden", None, Interval(1, 8192)),
        Hyperparameter("rnn_attention_in_upper_layers", Kind.BOOL, "true"),
        _choice("rnn_decoder_state_init", "last", STATE_INITS),
        Hyperparameter("rnn_residual_connections", Kind.BOOL, "false"),
        _int("rnn_first_residual_layer", "2", Interval(2, 10)),
        _choice("cnn_activation_type", "glu", CNN_ACTIVATIONS),
        _int("cnn_num_hidden", "512", Interval(1, 8192)),
        _int("cnn_kernel_width_encoder", "3", Interval(1, 100)),
        _int("cnn_kernel_width_decoder", "5", Interval(1, 100)),
        _int("num_embed_source", "512", Interval(1, 8192), tunable_range=Interval(256, 512)),
        _int("num_embed_target", "512", Interval(1, 8192), tunable_range=Interval(256, 512)),
        # data
        _int("max_seq_len_source", "100", Interval(1, 10000)),
        _int("max_seq_len_target", "100", Interval(1, 10000)),
        Hyperparameter("bucketing_enabled", Kind.BOOL, "true"),
        _int("bucket_width", "10", Interval(1, 10000)),
        # optimization
        _int("batch_size", "64", Interval(1, 100000)),
        _choice("optimizer_type", "adam", OPTIMIZERS),
        Hyperparameter(
            "learning_rate", Kind.FLOAT, "0.0003", POSITIVE, tunable_range=Interval(5e-5, 0.2)
        ),
        Hyperparameter(
            "momentum",
            Kind.FLOAT,
            None,
            Interval(0, 1, high_open=True),
            tunable_range=Interval(0.5, 0.9),
        ),
        Hyperparameter(
            "weight_decay", Kind.FLOAT, "0", NON_NEGATIVE, tunable_range=Interval(0, 0.1)
        ),
        Hyperparameter("clip_gradient", Kind.FLOAT, "1", tunable_range=Interval(1, 5)),
        _choice("weight_init_type", "xavier", ("xavier", "uniform")),
        Hyperparameter(
            "weight_init_scale", Kind.FLOAT, "2.34", POSITIVE, tunable_range=Interval(2, 3)
        ),
        _choice("xavier_factor_type", "in", ("in", "out", "avg")),
        _choice("loss_type", "cross-entropy", ("cross-entropy",)),
        _choice("lr_scheduler_type", "plateau_reduce", SCHEDULERS),
        Hyperparameter(
            "plateau_reduce_lr_factor",
            Kind.FLOAT,
            "0.5",
            Interval(0, 1, low_open=True, high_open=True),
            tunable_range=Interval(0.1, 0.5),
        ),
        _int("plateau_reduce_lr_threshold", "3", tunable_range=Interval(1, 5)),
        _int("fixed_rate_lr_half_life", "10", tunable_range=Interval(10, 30)),
        # regularization
        _dropout("embed_dropout_source"),
        _dropout("embed_dropout_target"),
        _dropout("rnn_decoder_hidden_dropout"),
        _dropout("cnn_hidden_dropout"),
        # stopping and evaluation
        _choice("optimized_metric", "perplexity", METRICS),
        _choice("training_metric", "perplexity", ("perplexity", "accuracy")),
        _int("checkpoint_frequency_num_batches", "1000"),
        _int("checkpoint_threshold", "3"),
        _int("max_num_batches", "-1", Interval(-1)),
        _int("max_num_epochs", None),
        _int("min_num_epochs", "0", NON_NEGATIVE),
        _int("bleu_sample_size", "0", Interval(-1)),
        _int("beam_size", "5", Interval(1, 100)),
    ),
    checks=(_rnn_num_hidden_is_even, _max_num_batches_is_a_limit),
)
"""SageMaker's seq2seq table (spec algorithms §14(a)) and the ranges of its tuning guide.
`rnn_attention_num_hidden` has no default: it is `rnn_num_hidden` unless given. `momentum` has
no default: SGD without momentum unless given."""

_RECORDS: Final = (RECORDIO,)
_VOCAB: Final = (RECORDIO, JSON, TEXT, OCTET_STREAM)
"""The vocab channel holds JSON files; a channel without a content type arrives as RecordIO
(the algorithm's default), so that is accepted too."""

SPEC: Final = Algorithm(
    name="seq2seq",
    title="Sequence-to-Sequence",
    repositories=("seq2seq",),
    hyperparameters=TABLE,
    metrics=(
        quality_metric("validation", "perplexity", "Minimize"),
        quality_metric("validation", "accuracy", "Maximize"),
        quality_metric("validation", "bleu", "Maximize"),
        quality_metric("train", "perplexity", None),
    ),
    channels=(
        ChannelSpec("train", required=True, content_types=_RECORDS, csv_label_size=0),
        ChannelSpec("validation", required=True, content_types=_RECORDS, csv_label_size=0),
        ChannelSpec("vocab", required=True, content_types=_VOCAB, csv_label_size=0),
    ),
    default_content_type=RECORDIO,
    request_types=(JSON, JSONLINES, RECORDIO),
    accept_types=(JSON, JSONLINES, RECORDIO),
    default_accept=JSON,
    supports_pipe=False,
)
