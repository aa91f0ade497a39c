"""The Object2Vec network (spec algorithms §13(f)) and `model_algo-1`.

Two encoders turn token-id sequences into `enc_dim` vectors: `pooled_embedding` (the mean of the
token embeddings, projected), `hcnn` (`layers` same-length 1-D convolutions of width
`cnn_filter_width` with ReLU, max-pooled over time) or `bilstm` (`layers` bidirectional LSTM
layers; the last layer's final forward and backward states, projected). `enc1_network=enc0`
makes enc1 the same module as enc0; `tied_token_embedding_weight` shares only the token
embedding. The comparator concatenates the chosen parts in `comparator_list` order: `hadamard`
u*v, `concat` [u, v], `abs_diff` |u - v|; an MLP (`mlp_layers` of `mlp_dim`, the activation,
dropout) ends in `num_classes` logits (softmax) or one value (mean_squared_error).

Padding is masked everywhere (mean, max-pool, packed LSTM), so an encoding does not depend on
how long the other sequences of its batch are: a record answers the same alone or in a batch.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from opensage.algorithms.artifacts import load_model, save_model
from opensage.algorithms.ntm.model import device
from opensage.algorithms.object2vec.spec import MSE, EncoderSettings

INFERENCE_ROWS: Final = 1024
"""Records encoded per forward pass when serving."""
_ACTIVATIONS: Final = {"tanh": nn.Tanh, "relu": nn.ReLU, "linear": nn.Identity}
Tokens = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Architecture:
    encoders: tuple[EncoderSettings, EncoderSettings]
    shared_encoder: bool
    tied_embedding: bool
    enc_dim: int
    comparators: tuple[str, ...]
    mlp_layers: int
    mlp_dim: int
    mlp_activation: str
    dropout: float
    output_layer: str
    num_classes: int
    sparse_embeddings: bool = False
    """`token_embedding_storage_type=row_sparse`: the embeddings get sparse gradients."""

    @property
    def outputs(self) -> int:
        return 1 if self.output_layer == MSE else self.num_classes

    @property
    def regression(self) -> bool:
        return self.output_layer == MSE

    def work(self, rows: int) -> int:
        """Rough multiply-adds of one training step over `rows` pairs (forward and backward)."""
        per_row = 0
        for enc in self.encoders:
            steps = enc.max_seq_len * enc.layers * self.enc_dim
            if enc.network == "hcnn":
                per_row += steps * enc.cnn_filter_width * max(enc.token_embedding_dim, self.enc_dim)
            elif enc.network == "bilstm":
                per_row += 4 * steps * (enc.token_embedding_dim + self.enc_dim)
            else:
                per_row += (
                    enc.max_seq_len * enc.token_embedding_dim
                    + self.enc_dim * enc.token_embedding_dim
                )
        per_row += self.mlp_layers * self.mlp_dim * max(self.mlp_dim, 4 * self.enc_dim)
        return 3 * rows * per_row

    def meta(self) -> dict[str, Any]:
        found = asdict(self)
        found["encoders"] = [asdict(enc) for enc in self.encoders]
        found["comparators"] = list(self.comparators)
        return found

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Architecture:
        encoders = tuple(EncoderSettings(**enc) for enc in meta["encoders"])
        assert len(encoders) == 2
        return cls(
            encoders=(encoders[0], encoders[1]),
            shared_encoder=bool(meta["shared_encoder"]),
            tied_embedding=bool(meta["tied_embedding"]),
            enc_dim=int(meta["enc_dim"]),
            comparators=tuple(str(c) for c in meta["comparators"]),
            mlp_layers=int(meta["mlp_layers"]),
            mlp_dim=int(meta["mlp_dim"]),
            mlp_activation=str(meta["mlp_activation"]),
            dropout=float(meta["dropout"]),
            output_layer=str(meta["output_layer"]),
            num_classes=int(meta["num_classes"]),
            sparse_embeddings=bool(meta.get("sparse_embeddings", False)),
        )


def padding_mask(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """True where a position holds a token (batch x time)."""
    positions = torch.arange(tokens.shape[1], device=tokens.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


class Encoder(nn.Module):
    """Token ids (batch x time, padded) and their lengths -> `enc_dim` vectors."""

    def __init__(self, settings: EncoderSettings, enc_dim: int, embedding: nn.Embedding) -> None:
        super().__init__()
        self.settings = settings
        self.embedding = embedding
        width = settings.token_embedding_dim
        self.convolutions = nn.ModuleList()
        self.lstm: nn.LSTM | None = None
        if settings.network == "hcnn":
            for layer in range(settings.layers):
                self.convolutions.append(
                    nn.Conv1d(
                        width if layer == 0 else enc_dim,
                        enc_dim,
                        settings.cnn_filter_width,
                    )
                )
            self.projection: nn.Module = nn.Identity()
        elif settings.network == "bilstm":
            hidden = max(1, enc_dim // 2)
            self.lstm = nn.LSTM(
                width, hidden, num_layers=settings.layers, bidirectional=True, batch_first=True
            )
            self.projection = nn.Linear(2 * hidden, enc_dim)
        else:
            self.projection = nn.Linear(width, enc_dim)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = padding_mask(tokens, lengths)
        embedded = self.embedding(tokens) * mask.unsqueeze(2)
        if self.settings.network == "hcnn":
            x = embedded.transpose(1, 2)
            keep = mask.unsqueeze(1)
            width = self.settings.cnn_filter_width
            same = ((width - 1) // 2, width // 2)  # the output as long as the input
            for convolution in self.convolutions:
                x = torch.relu(convolution(nn.functional.pad(x * keep, same)))
            pooled: torch.Tensor = x.masked_fill(~keep, float("-inf")).amax(dim=2)
            return pooled
        if self.lstm is not None:
            packed = nn.utils.rnn.pack_padded_sequence(
                embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            _, (hidden, _) = self.lstm(packed)
            final = torch.cat([hidden[-2], hidden[-1]], dim=1)
            return self.projection(final)  # type: ignore[no-any-return]
        mean = embedded.sum(dim=1) / lengths.unsqueeze(1).to(embedded.dtype)
        return self.projection(mean)  # type: ignore[no-any-return]


class EncoderPair(nn.Module):
    """enc0 and enc1 (the same module when `enc1_network=enc0`)."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        first, second = arch.encoders
        sparse = arch.sparse_embeddings
        embedding0 = nn.Embedding(first.vocab_size, first.token_embedding_dim, sparse=sparse)
        nn.init.normal_(embedding0.weight, std=0.1)
        self.enc0 = Encoder(first, arch.enc_dim, embedding0)
        if arch.shared_encoder:
            self.enc1 = self.enc0
            return
        if arch.tied_embedding:
            embedding1 = embedding0
        else:
            embedding1 = nn.Embedding(second.vocab_size, second.token_embedding_dim, sparse=sparse)
            nn.init.normal_(embedding1.weight, std=0.1)
        self.enc1 = Encoder(second, arch.enc_dim, embedding1)

    def encoder(self, i: int) -> Encoder:
        return self.enc0 if i == 0 else self.enc1


def compare(u: torch.Tensor, v: torch.Tensor, comparators: Sequence[str]) -> torch.Tensor:
    """The comparator: the chosen parts, concatenated in the order given."""
    parts: list[torch.Tensor] = []
    for name in comparators:
        if name == "hadamard":
            parts.append(u * v)
        elif name == "concat":
            parts.extend((u, v))
        elif name == "abs_diff":
            parts.append((u - v).abs())
        else:
            raise ValueError(f"unknown comparator {name}")
    return torch.cat(parts, dim=1)


def comparator_width(enc_dim: int, comparators: Sequence[str]) -> int:
    return enc_dim * sum(2 if name == "concat" else 1 for name in comparators)


class Object2VecNet(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        self.encoders = EncoderPair(arch)
        layers: list[nn.Module] = []
        width = comparator_width(arch.enc_dim, arch.comparators)
        for _ in range(arch.mlp_layers):
            layers.append(nn.Linear(width, arch.mlp_dim))
            layers.append(_ACTIVATIONS[arch.mlp_activation]())
            if arch.dropout > 0:
                layers.append(nn.Dropout(arch.dropout))
            width = arch.mlp_dim
        layers.append(nn.Linear(width, arch.outputs))
        self.mlp = nn.Sequential(*layers)

    def forward(
        self,
        tokens0: torch.Tensor,
        lengths0: torch.Tensor,
        tokens1: torch.Tensor,
        lengths1: torch.Tensor,
    ) -> torch.Tensor:
        """Logits (batch x num_classes) or values (batch) of the pairs."""
        u = self.encoders.enc0(tokens0, lengths0)
        v = self.encoders.enc1(tokens1, lengths1)
        out = self.mlp(compare(u, v, self.arch.comparators))
        return out.squeeze(1) if self.arch.regression else out  # type: ignore[no-any-return]


def pad(sequences: Sequence[Tokens]) -> tuple[Tokens, Tokens]:
    """Sequences as one zero-padded matrix and their lengths."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    width = int(lengths.max()) if len(sequences) else 0
    tokens = np.zeros((len(sequences), max(width, 1)), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = sequence
    return tokens, lengths


def as_tensors(tokens: Tokens, lengths: Tokens, where: torch.device) -> tuple[torch.Tensor, ...]:
    return torch.from_numpy(tokens).to(where), torch.from_numpy(lengths).to(where)


def state_arrays(module: nn.Module) -> dict[str, npt.NDArray[Any]]:
    return {name: value.detach().cpu().numpy() for name, value in module.state_dict().items()}


class Object2VecModel:
    """A trained model for inference (eval mode, no gradients): the whole network for scores,
    or only the encoders for embeddings, whichever `preferred` says is loaded first; the other
    is built from the same arrays on first use."""

    def __init__(
        self,
        arch: Architecture,
        arrays: dict[str, npt.NDArray[Any]],
        preferred: str = "classification",
    ) -> None:
        self.arch = arch
        self.arrays = arrays
        self._net: Object2VecNet | None = None
        self._encoders: EncoderPair | None = None
        self._building = threading.Lock()
        self.device = device()
        if preferred == "embedding":
            self.encoders()
        else:
            self.net()

    @classmethod
    def from_net(cls, net: Object2VecNet) -> Object2VecModel:
        return cls(net.arch, state_arrays(net))

    def net(self) -> Object2VecNet:
        """The whole network, built once (the first concurrent requests wait for it)."""
        with self._building:
            if self._net is None:
                net = Object2VecNet(self.arch)
                state = {k: torch.from_numpy(self.arrays[k]) for k in net.state_dict()}
                net.load_state_dict(state)
                self._net = net.to(self.device).eval()
            return self._net

    def encoders(self) -> EncoderPair:
        """The encoders: the whole network's when it is built, else built alone, once."""
        with self._building:
            if self._net is not None:
                return self._net.encoders
            if self._encoders is None:
                pair = EncoderPair(self.arch)
                prefix = "encoders."
                pair.load_state_dict(
                    {k: torch.from_numpy(self.arrays[prefix + k]) for k in pair.state_dict()}
                )
                self._encoders = pair.to(self.device).eval()
            return self._encoders

    def scores(self, in0: Sequence[Tokens], in1: Sequence[Tokens]) -> npt.NDArray[np.float32]:
        """Class probabilities (rows x num_classes) or predicted values (rows x 1)."""
        net = self.net()
        out: list[npt.NDArray[np.float32]] = []
        with torch.no_grad():
            for start in range(0, len(in0), INFERENCE_ROWS):
                stop = start + INFERENCE_ROWS
                t0, l0 = as_tensors(*pad(in0[start:stop]), self.device)
                t1, l1 = as_tensors(*pad(in1[start:stop]), self.device)
                raw = net(t0, l0, t1, l1)
                values = raw.unsqueeze(1) if self.arch.regression else torch.softmax(raw, dim=1)
                out.append(values.cpu().numpy().astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.arch.outputs), np.float32)

    def embeddings(self, i: int, sequences: Sequence[Tokens]) -> npt.NDArray[np.float32]:
        """Encoder `i`'s vectors (rows x enc_dim)."""
        encoder = self.encoders().encoder(i)
        out: list[npt.NDArray[np.float32]] = []
        with torch.no_grad():
            for start in range(0, len(sequences), INFERENCE_ROWS):
                tokens, lengths = as_tensors(
                    *pad(sequences[start : start + INFERENCE_ROWS]), self.device
                )
                out.append(encoder(tokens, lengths).cpu().numpy().astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.arch.enc_dim), np.float32)

    def save(self, model_dir: Path) -> Path:
        return save_model(model_dir, self.arrays, {"algorithm": "object2vec", **self.arch.meta()})

    @classmethod
    def load(cls, model_dir: Path, preferred: str = "classification") -> Object2VecModel:
        arrays, meta = load_model(model_dir)
        if meta.get("algorithm") != "object2vec":
            raise ValueError(f"{model_dir} holds no Object2Vec model")
        return cls(Architecture.from_meta(meta), arrays, preferred)
