"""How the vision trainers keep a CUDA device busy, in one place.

A training step on a GPU runs at the device's speed only while the host queues kernels ahead of
it. Every host synchronisation - reading a loss with `float()`, a blocking copy from pageable
memory (which is what `torch.tensor(values, device=cuda)` and a plain `.to(cuda)` are), indexing
with a boolean mask - makes the host wait for the device and then the device for the host. So on
CUDA the trainers:

* keep the decoded uint8 images on the device when they fit (`Staged`), else in pinned memory,
  and take each batch by index there;
* send small host arrays (augmentation parameters, constants, targets) with non-blocking copies
  from pinned memory (`to_device`, `constant`);
* sum losses and counts on the device and read them once per epoch;
* hold the network and its inputs channels-last, the layout tensor-core convolutions want
  (`place`, `as_input`), with cuDNN autotuning for the fixed shapes (`configure`);
* step fused optimizers (`fused`), which also take a GradScaler's scale without a host sync;
* run the forward pass under `torch.autocast` when a precision other than float32 is chosen
  (`autocast`): float16 (with a GradScaler, in the trainer) or bfloat16.

On the CPU each helper is the identity or the plain call, so seeded CPU training gives the same
numbers it gave before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

PRECISIONS: Final = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}
"""Training precisions: the autocast type of each (None: plain float32)."""
DEVICE_SHARE: Final = 0.5
"""The share of the device's free memory the staged training images may take."""
Net = TypeVar("Net", bound=nn.Module)


def on_cuda(where: torch.device) -> bool:
    return where.type == "cuda"


def configure(where: torch.device) -> None:
    """Process-wide settings for training fixed-shape batches on `where`: cuDNN tries the
    convolution algorithms once per shape and keeps the fastest. (`ntm.model.configure_threads`
    asks for deterministic algorithms on the CPU only, so nothing rules those out here.)"""
    if on_cuda(where):
        torch.backends.cudnn.benchmark = True


def autocast_dtype(precision: str, where: torch.device) -> torch.dtype | None:
    """The autocast type of `precision` on `where`: None for float32 and on the CPU (mixed
    precision is a GPU feature; the CPU trains in float32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; one of {', '.join(PRECISIONS)}")
    return PRECISIONS[precision] if on_cuda(where) else None


def autocast(dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """The forward pass's mixed-precision context (nothing for float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


def place(net: Net, where: torch.device) -> Net:
    """`net` on `where`, its convolution weights channels-last on CUDA."""
    net = net.to(where)
    if on_cuda(where):
        for parameter in net.parameters():
            if parameter.dim() == 4:
                parameter.data = parameter.data.contiguous(memory_format=torch.channels_last)
    return net


def as_input(x: torch.Tensor) -> torch.Tensor:
    """A batch in the layout the network is in (channels-last on CUDA)."""
    if x.dim() != 4 or not on_cuda(x.device):
        return x
    return x.contiguous(memory_format=torch.channels_last)


def fused(where: torch.device) -> bool:
    """Whether to ask the optimizer for its fused kernels: one launch per step, and they take a
    GradScaler's scale on the device (the unfused path reads it on the host every step)."""
    return on_cuda(where)


def to_device(array: npt.NDArray[Any] | torch.Tensor, where: torch.device) -> torch.Tensor:
    """A host array on `where` without making the host wait: through pinned memory, with a
    non-blocking copy, on CUDA."""
    tensor = (
        torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array
    )
    if not on_cuda(where) or tensor.device.type != "cpu":  # (device "cuda" is not "cuda:0")
        return tensor.to(where)
    return tensor.pin_memory().to(where, non_blocking=True)


def constant(values: Sequence[float], where: torch.device) -> torch.Tensor:
    """A float32 vector of `values` on `where` (what `torch.tensor(values, device=where)` gives,
    without its blocking copy)."""
    return to_device(torch.tensor(values, dtype=torch.float32), where)


class Staged:
    """A data set's array (images, labels) where batches are cheapest to take from: on the
    device when it fits in `DEVICE_SHARE` of the free memory, else in pinned host memory (the
    batch then goes over with a non-blocking copy); as it is on the CPU."""

    def __init__(self, array: npt.NDArray[Any], where: torch.device) -> None:
        self.device = where
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if not on_cuda(where):
            self.data = tensor
        elif array.nbytes <= DEVICE_SHARE * torch.cuda.mem_get_info(where)[0]:
            self.data = tensor.to(where)
        else:
            self.data = tensor.pin_memory()

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def index(self, rows: torch.Tensor) -> torch.Tensor:
        """Host row numbers (an epoch's order, say) where `take` wants them, sent once."""
        return to_device(rows, self.data.device)

    def take(self, rows: torch.Tensor) -> torch.Tensor:
        """The rows `rows` (from `index`) on the training device."""
        batch = self.data[rows]
        return to_device(batch, self.device)


def stage_each(arrays: Sequence[npt.NDArray[Any]], where: torch.device) -> list[torch.Tensor]:
    """`Staged` for arrays of different shapes (images of their own sizes): all on the device
    when together they fit, else each in pinned host memory; as they are on the CPU."""
    tensors = [torch.from_numpy(np.ascontiguousarray(array)) for array in arrays]
    if not on_cuda(where):
        return tensors
    total = sum(array.nbytes for array in arrays)
    if total <= DEVICE_SHARE * torch.cuda.mem_get_info(where)[0]:
        return [tensor.to(where) for tensor in tensors]
    return [tensor.pin_memory() for tensor in tensors]
