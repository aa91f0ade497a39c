"""DeepAR's output distributions (spec algorithms §15(a)): how the network's projection becomes
a distribution over the target in its own units, its log-likelihood, and its samples.

Each likelihood maps the scaled parameters and the series' mean scale `s` to the data's units
as GluonTS does: gaussian and student-T scale location and spread by `s`; negative-binomial
takes mean `mu * s` and shape `alpha / sqrt(s)`; beta ignores the scale (values lie in (0, 1));
deterministic-L1 is a point forecast `mu * s` whose loss is the absolute error in scaled units
and whose "samples" are that point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import torch
from torch.distributions import Beta, NegativeBinomial, Normal, StudentT
from torch.nn.functional import softplus

EPS: Final = 1e-6
ARGS: Final = {
    "gaussian": 2,
    "student-T": 3,
    "negative-binomial": 2,
    "beta": 2,
    "deterministic-L1": 1,
}
"""How many outputs of the projection each likelihood reads."""
UNSCALED: Final = ("beta",)


@dataclass
class Output:
    """One step's (or window's) parameters in the data's units."""

    likelihood: str
    params: tuple[torch.Tensor, ...]
    scale: torch.Tensor

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """Log-likelihood of `y` (NaN-free) under each element's distribution; for
        deterministic-L1 minus the absolute error in scaled units."""
        if self.likelihood == "deterministic-L1":
            return -(y / self.scale - self.params[0] / self.scale).abs()
        return self.distribution().log_prob(y)

    def distribution(self) -> torch.distributions.Distribution:
        p = self.params
        if self.likelihood == "gaussian":
            return Normal(p[0], p[1], validate_args=False)
        if self.likelihood == "student-T":
            return StudentT(p[2], p[0], p[1], validate_args=False)
        if self.likelihood == "negative-binomial":
            mu, alpha = p
            return NegativeBinomial(
                total_count=1.0 / alpha, logits=torch.log(mu * alpha), validate_args=False
            )
        if self.likelihood == "beta":
            return Beta(p[0], p[1], validate_args=False)
        raise ValueError(f"{self.likelihood} has no distribution")

    def sample(self) -> torch.Tensor:
        """One draw per element (the point itself for deterministic-L1), from torch's global
        generator: callers seed it (`torch.random.fork_rng`) for reproducible answers."""
        if self.likelihood == "deterministic-L1":
            return self.params[0]
        return self.distribution().sample()


def output(likelihood: str, raw: torch.Tensor, scale: torch.Tensor) -> Output:
    """The distribution of the projection `raw` (..., ARGS[likelihood]) for series of mean
    scale `scale` (broadcast against raw[..., 0])."""
    if likelihood == "gaussian":
        return Output(
            likelihood, (raw[..., 0] * scale, (softplus(raw[..., 1]) + EPS) * scale), scale
        )
    if likelihood == "student-T":
        mu = raw[..., 0] * scale
        sigma = (softplus(raw[..., 1]) + EPS) * scale
        return Output(likelihood, (mu, sigma, 2.0 + softplus(raw[..., 2])), scale)
    if likelihood == "negative-binomial":
        mu = (softplus(raw[..., 0]) + EPS) * scale
        alpha = (softplus(raw[..., 1]) + EPS) / torch.sqrt(scale)
        return Output(likelihood, (mu, alpha), scale)
    if likelihood == "beta":
        a = softplus(raw[..., 0]) + EPS
        b = softplus(raw[..., 1]) + EPS
        return Output(likelihood, (a, b), scale)
    if likelihood == "deterministic-L1":
        return Output(likelihood, (raw[..., 0] * scale,), scale)
    raise ValueError(f"unknown likelihood {likelihood}")
