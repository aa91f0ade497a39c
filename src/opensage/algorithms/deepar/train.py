"""DeepAR training: random windows of context_length + prediction_length steps over the `train`
series, Adam, up to `epochs` epochs (early stopping on the training loss, which SageMaker's
DeepAR watches too: it has no validation channel), then `model_algo-1` from the best epoch and,
with a `test` channel, the forecast metrics of its held-out last prediction_length points.

An epoch is as many mini-batches as it takes to see about as many time steps as the channel
holds (at least one). Windows are drawn uniformly over the valid end points of all series, so
longer series give more windows. Everything random comes from fixed seeds: the same job trains
the same model on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import torch

from opensage.algorithms.base import UserError
from opensage.algorithms.deepar.data import (
    MIN_OBSERVATIONS,
    Layout,
    Series,
    check_record,
    count_observations,
    frequency_lags,
    read_channel,
    resolve_layout,
)
from opensage.algorithms.deepar.evaluation import score
from opensage.algorithms.deepar.model import (
    Architecture,
    DeepARModel,
    DeepARNet,
    batch,
    configure_threads,
    device,
)
from opensage.algorithms.deepar.spec import (
    parse_cardinality,
    parse_dynamic_feat,
    parse_frequency,
    parse_quantiles,
)
from opensage.algorithms.env import TrainingEnv
from opensage.algorithms.logs import log_line, number

SEED: Final = 0
CLIP_NORM: Final = 10.0
"""GluonTS's default gradient clipping."""


def train(env: TrainingEnv) -> None:
    freq = parse_frequency(env["time_freq"])
    prediction_length: int = env["prediction_length"]
    reader = env.channel("train")
    assert reader is not None  # required by the spec; TrainingEnv checked it
    records = read_channel("train", reader.folder, reader.content_type)
    series = [s for s in records if len(s.target) >= prediction_length]
    observed = count_observations(series)
    if observed < MIN_OBSERVATIONS:
        raise UserError(
            f"Channel 'train' has {observed} observed target values in series at least "
            f"prediction_length ({prediction_length}) long; DeepAR needs at least "
            f"{MIN_OBSERVATIONS}."
        )
    if len(series) < len(records):
        env.log.info(
            f"{len(records) - len(series)} series shorter than prediction_length are ignored"
        )
    layout = resolve_layout(
        series, parse_cardinality(env["cardinality"]), parse_dynamic_feat(env["num_dynamic_feat"])
    )
    check_likelihood(series, env["likelihood"])
    longest = max(len(s.target) for s in series)
    arch = Architecture(
        freq=str(freq),
        context_length=env["context_length"],
        prediction_length=prediction_length,
        lags=tuple(lag for lag in frequency_lags(freq) if lag < max(longest, 2)),
        likelihood=env["likelihood"],
        num_cells=env["num_cells"],
        num_layers=env["num_layers"],
        cell_type=env["cell_type"],
        dropout_rate=env["dropout_rate"],
        cardinality=layout.cardinality,
        embedding_dimension=env["embedding_dimension"],
        num_dynamic=layout.num_dynamic,
    )
    env.log.info(f"Lags used: {list(arch.lags)}")
    batch_size: int = env["mini_batch_size"]
    configure_threads(arch.work(batch_size))
    torch.manual_seed(SEED)
    net = DeepARNet(arch).to(device())
    best = fit(net, series, env, batch_size, observed)
    net.load_state_dict(best)
    model = DeepARModel(net)
    model.save(env.model_dir)
    test = env.channel("test")
    if test is not None:
        evaluate(model, read_channel("test", test.folder, test.content_type), layout, env)


def check_likelihood(series: Sequence[Series], likelihood: str) -> None:
    """Targets the likelihood can describe: counts for negative-binomial, (0, 1) for beta."""
    for s in series:
        values = s.target[np.isfinite(s.target)]
        if likelihood == "negative-binomial" and (values < 0).any():
            raise UserError(
                f"{s.where}: a negative target, but likelihood negative-binomial models counts "
                "(values >= 0)."
            )
        if likelihood == "beta" and ((values <= 0) | (values >= 1)).any():
            raise UserError(
                f"{s.where}: a target outside (0, 1), but likelihood beta models values "
                "strictly between 0 and 1."
            )


def fit(
    net: DeepARNet,
    series: Sequence[Series],
    env: TrainingEnv,
    batch_size: int,
    observed: int,
) -> dict[str, torch.Tensor]:
    """Train `net`; the state dict of its epoch with the lowest training loss."""
    arch = net.arch
    ends_from = [min(len(s.target), arch.window) for s in series]
    counts = np.asarray([len(s.target) - lo + 1 for s, lo in zip(series, ends_from, strict=True)])
    offsets = np.concatenate([[0], np.cumsum(counts)])
    rng = np.random.default_rng(SEED)
    per_epoch = max(1, math.ceil(observed / (batch_size * arch.window)))
    optimizer = torch.optim.Adam(net.parameters(), lr=env["learning_rate"])
    epochs: int = env["epochs"]
    patience: int | None = env.get("early_stopping_patience")
    best_loss = math.inf
    best_state = _snapshot(net)
    waited = 0
    for epoch in range(epochs):
        net.train()
        total = 0.0
        seen = 0
        for _ in range(per_epoch):
            picks = rng.integers(0, offsets[-1], size=batch_size)
            rows = np.searchsorted(offsets, picks, side="right") - 1
            items = [
                (series[r], ends_from[r] + int(p - offsets[r]))
                for r, p in zip(rows, picks, strict=True)
            ]
            loss, count = net.loss(batch(arch, items))
            if int(count) == 0:
                continue
            optimizer.zero_grad()
            torch.autograd.backward(loss / count)
            torch.nn.utils.clip_grad_norm_(net.parameters(), CLIP_NORM)
            optimizer.step()
            total += float(loss.detach())
            seen += int(count)
        epoch_loss = total / seen if seen else math.nan
        if math.isfinite(epoch_loss):
            log_line(
                f"#quality_metric: host={env.current_host}, epoch={epoch}, train loss "
                f"<loss>={number(epoch_loss)}"
            )
        env.log.progress(epoch + 1, epochs)
        if epoch_loss < best_loss:
            best_loss, best_state, waited = epoch_loss, _snapshot(net), 0
        else:
            waited += 1
            if patience is not None and waited >= patience:
                env.log.info(
                    f"Early stopping after epoch {epoch + 1}: the training loss has not improved "
                    f"for {patience} epochs; keeping epoch {epoch + 1 - waited}'s model"
                )
                break
    if math.isfinite(best_loss):
        env.log.quality("train", "final_loss", best_loss, "Minimize")
    return best_state


def _snapshot(net: DeepARNet) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in net.state_dict().items()}


def evaluate(model: DeepARModel, records: list[Series], layout: Layout, env: TrainingEnv) -> None:
    """Forecast each test series' last prediction_length points from the rest; log RMSE and
    the weighted quantile losses."""
    horizon = model.arch.prediction_length
    history = []
    truth = []
    for s in records:
        check_record(s, layout, 0)
        if len(s.target) <= horizon:
            continue
        history.append(Series(s.start, s.target[:-horizon], s.cat, s.dynamic, s.where))
        truth.append(s.target[-horizon:])
    if not history:
        env.log.info(
            f"Channel 'test' holds no series longer than prediction_length ({horizon}); no test "
            "metrics"
        )
        return
    levels = parse_quantiles(env["test_quantiles"])
    samples = model.forecast(history, env["num_eval_samples"], seed=SEED)
    scores = score(np.stack(truth), samples, levels)
    host = env.current_host
    if math.isfinite(scores.rmse):
        env.log.quality("test", "RMSE", scores.rmse, "Minimize")
        log_line(f"#test_score ({host}, RMSE): {number(scores.rmse)}")
    for level, value in scores.weighted_quantile_losses.items():
        if math.isfinite(value):
            log_line(f"#test_score ({host}, wQuantileLoss[{level}]): {number(value)}")
    mean = scores.mean_weighted_quantile_loss
    if math.isfinite(mean):
        env.log.quality("test", "mean_wQuantileLoss", mean, "Minimize")
        log_line(f"#test_score ({host}, mean_wQuantileLoss): {number(mean)}")
