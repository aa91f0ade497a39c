"""IP Insights training: the `train` (and optional `validation`) channel's rows, the fit, the
model file, and SageMaker's log lines (spec algorithms §9(c)):

    #quality_metric: host=algo-1, epoch=0, batch=0 train binary_classification_accuracy <score>=0.5
    #quality_metric: host=algo-1, epoch=0, train binary_classification_accuracy <score>=0.71
    #quality_metric: host=algo-1, validation discriminator_auc <score>=0.97

The first two kinds are informational; the last, once per epoch when a `validation` channel is
given, is the tunable `validation:discriminator_auc` (its final value is the last epoch's).
"""

from __future__ import annotations

from opensage.algorithms.base import UserError
from opensage.algorithms.env import ChannelReader, TrainingEnv
from opensage.algorithms.ipinsights.fit import Logins, Settings


def settings(env: TrainingEnv) -> Settings:
    return Settings(
        num_entity_vectors=int(env["num_entity_vectors"]),
        vector_dim=int(env["vector_dim"]),
        epochs=int(env["epochs"]),
        learning_rate=float(env["learning_rate"]),
        weight_decay=float(env["weight_decay"]),
        mini_batch_size=int(env["mini_batch_size"]),
        num_ip_encoder_layers=int(env["num_ip_encoder_layers"]),
        random_negative_sampling_rate=int(env["random_negative_sampling_rate"]),
        shuffled_negative_sampling_rate=int(env["shuffled_negative_sampling_rate"]),
        batch_metrics_publish_interval=int(env["batch_metrics_publish_interval"]),
    )


def train(env: TrainingEnv) -> None:
    from opensage.algorithms.ipinsights.fit import fit
    from opensage.algorithms.ipinsights.model import BatchStats

    config = settings(env)
    reader = env.channel("train")
    if reader is None:  # the spec makes it required; TrainingEnv has already refused this
        raise UserError("Channel 'train' is required.")
    data = _read(reader, config)
    validation_reader = env.channel("validation")
    validation = _read(validation_reader, config) if validation_reader is not None else None
    env.log.info(
        f"IP Insights: {data.n} training pairs"
        + (f", {validation.n} validation pairs" if validation is not None else "")
        + f"; {config.num_entity_vectors} entity vectors of dimension {config.vector_dim}"
    )

    def on_batch(epoch: int, batch: int, stats: BatchStats) -> None:
        where = f"#quality_metric: host={env.log.host}, epoch={epoch}, batch={batch} train"
        env.log.info(f"{where} binary_classification_cross_entropy <loss>={stats.loss!r}")
        env.log.info(f"{where} binary_classification_accuracy <score>={stats.accuracy!r}")

    def on_epoch(epoch: int, stats: BatchStats, score: float | None) -> None:
        where = f"#quality_metric: host={env.log.host}, epoch={epoch}, train"
        env.log.info(f"{where} binary_classification_cross_entropy <loss>={stats.loss!r}")
        env.log.info(f"{where} binary_classification_accuracy <score>={stats.accuracy!r}")
        if score is not None:
            env.log.quality("validation", "discriminator_auc", score, "Maximize")
        env.log.progress(epoch + 1, config.epochs)

    model = fit(config, data, validation, on_batch, on_epoch)
    model.save(env.model_dir)


def _read(reader: ChannelReader, config: Settings) -> Logins:
    from opensage.algorithms.ipinsights.data import read_channel

    if reader.pipe:  # the spec says File mode only; TrainingEnv has already refused Pipe mode
        raise UserError("The IP Insights algorithm reads its channels in File mode only.")
    return read_channel(reader.folder, reader.name, config.num_entity_vectors)
