"""The DeepAR network (spec algorithms §15(f); Salinas et al. 2020) and `model_algo-1`.

An autoregressive RNN (LSTM or GRU, `num_layers` x `num_cells`, dropout between layers) reads
at each time step: the target's lags (GluonTS's frequency lags, divided by the series' mean
scale), the date features of the frequency, an age feature, the `dynamic_feat` values, and the
static part: one embedding per `cat` field and log(scale). Its state projects to the
likelihood's parameters for that step's target. Training teacher-forces windows of
context_length + prediction_length steps; forecasting runs the context through the network,
then draws `num_samples` paths ancestrally, each draw fed back as the next step's lag.

The scale of a window is the mean absolute observed value of its context part (1 where that is
0 or nothing is observed; always 1 for beta). Missing targets are 0 as inputs and left out of
the loss.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from opensage.algorithms.artifacts import load_model, save_model
from opensage.algorithms.deepar.data import (
    DATE_FEATURES,
    Floats,
    Series,
    age_feature,
    date_features,
)
from opensage.algorithms.deepar.likelihood import ARGS, UNSCALED, Output, output
from opensage.algorithms.deepar.spec import Frequency, parse_frequency
from opensage.algorithms.ntm.model import WORK_PER_THREAD

ROWS_PER_CHUNK: Final = 8192
"""Sample paths drawn together when forecasting (bounds memory, not results)."""


@dataclass(frozen=True)
class Architecture:
    freq: str
    context_length: int
    prediction_length: int
    lags: tuple[int, ...]
    likelihood: str = "student-T"
    num_cells: int = 40
    num_layers: int = 2
    cell_type: str = "lstm"
    dropout_rate: float = 0.1
    cardinality: tuple[int, ...] = ()
    embedding_dimension: int = 10
    num_dynamic: int = 0

    @property
    def frequency(self) -> Frequency:
        return parse_frequency(self.freq)

    @property
    def window(self) -> int:
        return self.context_length + self.prediction_length

    @property
    def max_lag(self) -> int:
        return max(self.lags)

    @property
    def num_step_features(self) -> int:
        """Date features, age, dynamic features."""
        return len(DATE_FEATURES[self.frequency.unit]) + 1 + self.num_dynamic

    @property
    def input_size(self) -> int:
        static = len(self.cardinality) * self.embedding_dimension + 1
        return len(self.lags) + self.num_step_features + static

    def work(self, rows: int) -> int:
        """Multiply-adds of one time step of training over `rows` windows (forward and
        backward): the steps run one after another, so only a step's matrices can share
        threads."""
        gates = 4 if self.cell_type == "lstm" else 3
        per_step = gates * self.num_cells * (self.input_size + self.num_cells) * self.num_layers
        return 3 * rows * per_step

    def meta(self) -> dict[str, Any]:
        return {
            "freq": self.freq,
            "context_length": self.context_length,
            "prediction_length": self.prediction_length,
            "lags": list(self.lags),
            "likelihood": self.likelihood,
            "num_cells": self.num_cells,
            "num_layers": self.num_layers,
            "cell_type": self.cell_type,
            "dropout_rate": self.dropout_rate,
            "cardinality": list(self.cardinality),
            "embedding_dimension": self.embedding_dimension,
            "num_dynamic": self.num_dynamic,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Architecture:
        return cls(
            freq=str(meta["freq"]),
            context_length=int(meta["context_length"]),
            prediction_length=int(meta["prediction_length"]),
            lags=tuple(int(lag) for lag in meta["lags"]),
            likelihood=str(meta["likelihood"]),
            num_cells=int(meta["num_cells"]),
            num_layers=int(meta["num_layers"]),
            cell_type=str(meta["cell_type"]),
            dropout_rate=float(meta["dropout_rate"]),
            cardinality=tuple(int(c) for c in meta["cardinality"]),
            embedding_dimension=int(meta["embedding_dimension"]),
            num_dynamic=int(meta["num_dynamic"]),
        )


@dataclass
class Windows:
    """A batch of windows as numpy arrays: `past` (B x max_lag + T) raw targets with NaN for
    missing, before-start and future values; `features` (B x T x step features); `cat`
    (B x fields)."""

    past: Floats
    features: Floats
    cat: npt.NDArray[np.int64]

    def tensors(self, where: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            torch.from_numpy(self.past).to(where),
            torch.from_numpy(self.features).to(where),
            torch.from_numpy(self.cat).to(where),
        )


def window(arch: Architecture, s: Series, end: int) -> tuple[Floats, Floats]:
    """The past targets and step features of the window of `arch.window` steps that ends
    (exclusive) at step `end` of `s`; steps before the start or after the target are NaN."""
    steps = arch.window
    first = end - steps - arch.max_lag
    past = np.full(arch.max_lag + steps, np.nan, np.float32)
    lo, hi = max(first, 0), min(end, len(s.target))
    if hi > lo:
        past[lo - first : hi - first] = s.target[lo:hi]
    begin = end - steps
    parts = [
        date_features(s.start, arch.frequency, steps, begin),
        age_feature(steps, begin)[:, None],
    ]
    if arch.num_dynamic:
        assert s.dynamic is not None
        dyn = np.zeros((steps, arch.num_dynamic), np.float32)
        lo, hi = max(begin, 0), min(end, s.dynamic.shape[1])
        if hi > lo:
            dyn[lo - begin : hi - begin] = s.dynamic[:, lo:hi].T
        parts.append(dyn)
    return past, np.concatenate(parts, axis=1)


def batch(arch: Architecture, items: Sequence[tuple[Series, int]]) -> Windows:
    """The windows ending at each (series, end)."""
    pasts, features = zip(*(window(arch, s, end) for s, end in items), strict=True)
    fields = len(arch.cardinality)
    cat = np.zeros((len(items), fields), np.int64)
    if fields:
        cat[:] = np.asarray([s.cat or () for s, _ in items], dtype=np.int64)
    return Windows(np.stack(pasts), np.stack(features), cat)


class DeepARNet(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, arch.embedding_dimension) for card in arch.cardinality
        )
        rnn = nn.LSTM if arch.cell_type == "lstm" else nn.GRU
        self.rnn = rnn(
            arch.input_size,
            arch.num_cells,
            arch.num_layers,
            batch_first=True,
            dropout=arch.dropout_rate if arch.num_layers > 1 else 0.0,
        )
        self.projection = nn.Linear(arch.num_cells, ARGS[arch.likelihood])
        self.lag_index: torch.Tensor
        self.register_buffer("lag_index", torch.tensor(arch.lags, dtype=torch.long))

    def scale(self, past: torch.Tensor) -> torch.Tensor:
        """The mean absolute observed value of each window's context (B,); 1 where none."""
        arch = self.arch
        context = past[:, arch.max_lag : arch.max_lag + arch.context_length]
        if arch.likelihood in UNSCALED:
            return torch.ones(past.shape[0], device=past.device)
        seen = torch.isfinite(context)
        total = torch.where(seen, context.abs(), torch.zeros_like(context)).sum(dim=1)
        mean = total / seen.sum(dim=1).clamp(min=1)
        return torch.where(mean > 0, mean, torch.ones_like(mean))

    def inputs(
        self,
        values: torch.Tensor,
        steps: torch.Tensor,
        features: torch.Tensor,
        static: torch.Tensor,
    ) -> torch.Tensor:
        """Each step's input: lags of the scaled `values` (B x buffer, 0 where missing) read
        at buffer positions `steps` (T,), then features (B x T x F) and the static part."""
        index = steps[:, None] - self.lag_index[None, :]
        lagged = values[:, index]
        width = steps.shape[0]
        return torch.cat([lagged, features, static[:, None, :].expand(-1, width, -1)], dim=2)

    def static(self, cat: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        parts = [embed(cat[:, k]) for k, embed in enumerate(self.embeddings)]
        parts.append(torch.log(scale)[:, None])
        return torch.cat(parts, dim=1)

    def forward(
        self, past: torch.Tensor, features: torch.Tensor, cat: torch.Tensor
    ) -> tuple[Output, torch.Tensor, torch.Tensor]:
        """Teacher-forced outputs over the whole window; also the targets and whether each
        was observed (B x T)."""
        arch = self.arch
        scale = self.scale(past)
        seen = torch.isfinite(past)
        values = torch.where(seen, past, torch.zeros_like(past)) / scale[:, None]
        steps = torch.arange(arch.max_lag, arch.max_lag + arch.window, device=past.device)
        x = self.inputs(values, steps, features, self.static(cat, scale))
        hidden, _ = self.rnn(x)
        raw = self.projection(hidden)
        target = past[:, arch.max_lag :]
        return output(arch.likelihood, raw, scale[:, None]), target, seen[:, arch.max_lag :]

    def loss(self, windows: Windows) -> tuple[torch.Tensor, torch.Tensor]:
        """The summed negative log-likelihood of the observed targets, and how many there are."""
        where = next(self.parameters()).device
        out, target, seen = self(*windows.tensors(where))
        clean = torch.where(seen, target, self._safe_value(target))
        nll = -out.log_prob(clean)
        nll = torch.where(seen, nll, torch.zeros_like(nll))
        return nll.sum(), seen.sum()

    def _safe_value(self, target: torch.Tensor) -> torch.Tensor:
        """A value every likelihood accepts, for masked positions (their loss is dropped)."""
        fill = 0.5 if self.arch.likelihood == "beta" else 0.0
        return torch.full_like(target, fill)

    def sample_paths(
        self, past: torch.Tensor, features: torch.Tensor, cat: torch.Tensor, num_samples: int
    ) -> torch.Tensor:
        """num_samples ancestral sample paths per window (B x num_samples x prediction_length);
        `past` holds the context (and lags) with the prediction part NaN."""
        arch = self.arch
        scale = self.scale(past)
        seen = torch.isfinite(past)
        values = torch.where(seen, past, torch.zeros_like(past)) / scale[:, None]
        static = self.static(cat, scale)
        start = arch.max_lag
        context_steps = torch.arange(start, start + arch.context_length, device=past.device)
        x = self.inputs(values, context_steps, features[:, : arch.context_length], static)
        _, state = self.rnn(x)
        rows = past.shape[0] * num_samples
        values = values.repeat_interleave(num_samples, dim=0)
        features = features.repeat_interleave(num_samples, dim=0)
        static = static.repeat_interleave(num_samples, dim=0)
        scale = scale.repeat_interleave(num_samples, dim=0)
        state = _repeat_state(state, num_samples)
        draws = torch.empty(rows, arch.prediction_length, device=past.device)
        for k in range(arch.prediction_length):
            position = start + arch.context_length + k
            step = torch.tensor([position], device=past.device)
            feature = features[:, arch.context_length + k : arch.context_length + k + 1]
            hidden, state = self.rnn(self.inputs(values, step, feature, static), state)
            out = output(arch.likelihood, self.projection(hidden[:, 0]), scale)
            draw = out.sample()
            draws[:, k] = draw
            values[:, position] = draw / scale
        return draws.reshape(past.shape[0], num_samples, arch.prediction_length)


def _repeat_state(state: Any, times: int) -> Any:
    if isinstance(state, tuple):
        return tuple(part.repeat_interleave(times, dim=1) for part in state)
    return state.repeat_interleave(times, dim=1)


def device() -> torch.device:
    """A GPU when one is present; the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def configure_threads(work: int) -> None:
    """CPU threads sized to `work` (multiply-adds of one step) as NTM sizes them, at most the
    cores and 8; an explicit OMP_NUM_THREADS wins. Unlike NTM's helper this does not switch on
    `torch.use_deterministic_algorithms`: the CPU kernels used here are deterministic already,
    and that switch imports torch's compiler stack (3 s of every training job and server)."""
    if not os.environ.get("OMP_NUM_THREADS"):
        wanted = 1 + work // WORK_PER_THREAD
        torch.set_num_threads(max(1, min(8, os.cpu_count() or 1, wanted)))


class DeepARModel:
    """A trained network for forecasting (eval mode, no gradients), on `device()`."""

    def __init__(self, net: DeepARNet) -> None:
        self.net = net.eval()
        self.device = next(net.parameters()).device

    @property
    def arch(self) -> Architecture:
        return self.net.arch

    def forecast(self, series: Sequence[Series], num_samples: int, seed: int = 0) -> Floats:
        """Sample paths (len(series) x num_samples x prediction_length) continuing each series'
        target; the same series, samples and seed give the same paths. Deterministic-L1 draws
        its point forecast once and repeats it."""
        arch = self.arch
        draws = 1 if arch.likelihood == "deterministic-L1" else num_samples
        per_chunk = max(1, ROWS_PER_CHUNK // draws)
        parts = []
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for first in range(0, len(series), per_chunk):
                chunk = series[first : first + per_chunk]
                items = [(s, len(s.target) + arch.prediction_length) for s in chunk]
                windows = batch(arch, items)
                paths = self.net.sample_paths(*windows.tensors(self.device), draws)
                parts.append(paths.cpu().numpy())
        found = np.concatenate(parts) if parts else np.empty((0, draws, arch.prediction_length))
        if draws != num_samples:
            found = np.repeat(found, num_samples, axis=1)
        return np.asarray(found, dtype=np.float32)

    def save(self, model_dir: Path) -> Path:
        arrays = {
            name: value.detach().cpu().numpy() for name, value in self.net.state_dict().items()
        }
        return save_model(model_dir, arrays, {"algorithm": "deepar", **self.arch.meta()})

    @classmethod
    def load(cls, model_dir: Path) -> DeepARModel:
        arrays, meta = load_model(model_dir)
        if meta.get("algorithm") != "deepar":
            raise ValueError(f"{model_dir} does not hold a DeepAR model")
        net = DeepARNet(Architecture.from_meta(meta))
        state = {name: torch.from_numpy(arrays[name]) for name in net.state_dict()}
        net.load_state_dict(state)
        return cls(net.to(device()))
