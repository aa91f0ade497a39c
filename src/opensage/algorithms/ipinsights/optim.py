"""Adam over the model: lazy (row-wise) for the two embedding tables, dense for the layers.

A mini-batch touches a few thousand of possibly millions of table rows; updating every row's
moments each step would cost the whole table per batch. As torch's SparseAdam and MXNet's lazy
updates do, only the touched rows' moments and values change, with the global step's bias
correction. Weight decay is MXNet's: `weight_decay * w` added to the gradient (of the touched
rows only, for the tables).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from opensage.algorithms.ipinsights.hashing import Ints
from opensage.algorithms.ipinsights.model import Floats32, Gradients, IPInsightsModel

BETA1: Final = 0.9
BETA2: Final = 0.999
EPSILON: Final = 1e-8


class Adam:
    def __init__(self, model: IPInsightsModel, learning_rate: float, weight_decay: float) -> None:
        self.model = model
        self.learning_rate = learning_rate
        self.weight_decay = np.float32(weight_decay)
        self.steps = 0
        self.moments: dict[str, tuple[Floats32, Floats32]] = {}
        for name, param in self._params():
            self.moments[name] = (np.zeros_like(param), np.zeros_like(param))

    def _params(self) -> list[tuple[str, Floats32]]:
        model = self.model
        params = [("entity", model.entity), ("prefix", model.prefix)]
        params += [(f"weight_{i}", w) for i, w in enumerate(model.weights)]
        params += [(f"bias_{i}", b) for i, b in enumerate(model.biases)]
        return params

    def step(self, grads: Gradients) -> None:
        self.steps += 1
        t = self.steps
        rate = self.learning_rate * np.sqrt(1 - BETA2**t) / (1 - BETA1**t)
        self._rows("entity", self.model.entity, grads.entity_rows, grads.entity, rate)
        self._rows("prefix", self.model.prefix, grads.prefix_rows, grads.prefix, rate)
        for i, (w, b) in enumerate(zip(self.model.weights, self.model.biases, strict=True)):
            self._dense(f"weight_{i}", w, grads.weights[i], rate)
            self._dense(f"bias_{i}", b, grads.biases[i], rate)

    def _rows(self, name: str, param: Floats32, rows: Ints, grad: Floats32, rate: float) -> None:
        """In place on the gathered rows (`grad` is the caller's fresh array and is consumed):
        the update is memory-bound, so every temporary counts."""
        m_all, v_all = self.moments[name]
        values = param[rows]
        if self.weight_decay:
            grad += self.weight_decay * values
        m = m_all[rows]
        m *= np.float32(BETA1)
        m += np.float32(1 - BETA1) * grad
        m_all[rows] = m
        v = v_all[rows]
        v *= np.float32(BETA2)
        np.square(grad, out=grad)
        grad *= np.float32(1 - BETA2)
        v += grad
        v_all[rows] = v
        np.sqrt(v, out=v)
        v += np.float32(EPSILON)
        np.divide(m, v, out=m)
        m *= np.float32(rate)
        values -= m
        param[rows] = values

    def _dense(self, name: str, param: Floats32, grad: Floats32, rate: float) -> None:
        m, v = self.moments[name]
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        m *= np.float32(BETA1)
        m += np.float32(1 - BETA1) * grad
        v *= np.float32(BETA2)
        v += np.float32(1 - BETA2) * grad * grad
        param -= np.float32(rate) * m / (np.sqrt(v) + np.float32(EPSILON))
