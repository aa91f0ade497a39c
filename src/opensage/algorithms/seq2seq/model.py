"""The seq2seq networks (spec algorithms §14(f)): Sockeye-style RNN and ConvS2S-style CNN
encoders and decoders with attention, and their initialisation (decoding is in `decoding`).

RNN encoder: embeddings, a bidirectional first layer (`rnn_num_hidden / 2` units a direction,
as Sockeye's), then unidirectional layers, residual connections from `rnn_first_residual_layer`.
CNN encoder: embeddings plus learned positional embeddings, then `num_layers_encoder` residual
convolutions of width `cnn_kernel_width_encoder` (GLU or another activation); its attention
values are the states plus the embedded input, as in ConvS2S.

RNN decoder: LSTM or GRU cells with input feeding (the previous attentional state joins the
input, and with `rnn_attention_in_upper_layers` every upper layer's input too), attention
`dot`, `mlp` (Bahdanau's concat), `bilinear` (Luong's general) or `fixed` (the mean of the
source states), the attentional state `tanh(W [h; context])`, and the initial state from the
encoder's `last` or `avg` state or `zero`. CNN decoder: causal convolutions of width
`cnn_kernel_width_decoder`, each followed by dot attention over the encoder, as in ConvS2S.

Ids: `<pad>`=0, `<unk>`=1, `<s>`=2, `</s>`=3. Sources get `</s>` appended (as Sockeye does), so
no source is empty; decoders start from `<s>` and stop at `</s>`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from opensage.algorithms.ntm.model import configure_threads

PAD: Final = 0
UNK: Final = 1
BOS: Final = 2
EOS: Final = 3
RESERVED: Final = ("<pad>", "<unk>", "<s>", "</s>")

State = dict[str, torch.Tensor]
"""A decoder's state: every tensor batch-first, so a beam reorders it with `index_select`."""


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild the network (the hyperparameters that shape it)."""

    source_vocab: int
    target_vocab: int
    encoder_type: str = "rnn"
    decoder_type: str = "rnn"
    num_layers_encoder: int = 1
    num_layers_decoder: int = 1
    rnn_cell_type: str = "lstm"
    rnn_num_hidden: int = 1024
    rnn_attention_type: str = "mlp"
    rnn_attention_num_hidden: int = 1024
    rnn_attention_in_upper_layers: bool = True
    rnn_decoder_state_init: str = "last"
    rnn_residual_connections: bool = False
    rnn_first_residual_layer: int = 2
    cnn_activation_type: str = "glu"
    cnn_num_hidden: int = 512
    cnn_kernel_width_encoder: int = 3
    cnn_kernel_width_decoder: int = 5
    num_embed_source: int = 512
    num_embed_target: int = 512
    max_seq_len_source: int = 100
    max_seq_len_target: int = 100
    embed_dropout_source: float = 0.0
    embed_dropout_target: float = 0.0
    rnn_decoder_hidden_dropout: float = 0.0
    cnn_hidden_dropout: float = 0.0

    def meta(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Architecture:
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in meta.items() if key in names})

    @property
    def encoder_dim(self) -> int:
        return self.rnn_num_hidden if self.encoder_type == "rnn" else self.cnn_num_hidden

    def work(self, tokens: int) -> int:
        """Rough multiply-adds of one time step over `tokens` sentences (forward and backward)."""
        uses_cnn = "cnn" in (self.encoder_type, self.decoder_type)
        uses_rnn = "rnn" in (self.encoder_type, self.decoder_type)
        hidden = max(self.rnn_num_hidden * uses_rnn, self.cnn_num_hidden * uses_cnn)
        layers = self.num_layers_encoder + self.num_layers_decoder
        per_token = 8 * hidden * hidden * layers + hidden * self.target_vocab
        return 3 * tokens * per_token


def _activation(name: str) -> nn.Module:
    return {
        "relu": nn.ReLU(),
        "softrelu": nn.Softplus(),
        "sigmoid": nn.Sigmoid(),
        "tanh": nn.Tanh(),
        "glu": nn.GLU(dim=-1),
    }[name]


@dataclass
class Encoded:
    """The encoder's output: attention keys and values (B x S x D) and the source mask."""

    keys: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor


class RNNEncoder(nn.Module):
    def __init__(self, a: Architecture) -> None:
        super().__init__()
        self.a = a
        self.embed = nn.Embedding(a.source_vocab, a.num_embed_source, padding_idx=PAD)
        self.dropout = nn.Dropout(a.embed_dropout_source)
        rnn = nn.LSTM if a.rnn_cell_type == "lstm" else nn.GRU
        half = a.rnn_num_hidden // 2
        layers: list[nn.Module] = [
            rnn(a.num_embed_source, half, batch_first=True, bidirectional=True)
        ]
        for _ in range(a.num_layers_encoder - 1):
            layers.append(rnn(a.rnn_num_hidden, a.rnn_num_hidden, batch_first=True))
        self.layers = nn.ModuleList(layers)

    def forward(self, source: torch.Tensor, lengths: torch.Tensor) -> Encoded:
        x = self.dropout(self.embed(source))
        total = int(source.shape[1])
        for index, layer in enumerate(self.layers):
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = layer(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=total)
            if index > 0 and _residual(self.a, index):
                out = out + x
            x = out
        mask = source != PAD
        return Encoded(x, x, mask, lengths)


def _residual(a: Architecture, index: int) -> bool:
    """Whether layer `index` (0-based) adds its input: `rnn_first_residual_layer` is 1-based."""
    return a.rnn_residual_connections and index + 1 >= a.rnn_first_residual_layer


class Convolution(nn.Module):
    """One residual convolution: centred (encoder) or causal (decoder), then the activation."""

    def __init__(self, hidden: int, kernel: int, activation: str, dropout: float, causal: bool):
        super().__init__()
        width = 2 * hidden if activation == "glu" else hidden
        self.conv = nn.Conv1d(hidden, width, kernel)
        self.kernel = kernel
        self.causal = causal
        self.activation = _activation(activation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)
        pad = (self.kernel - 1, 0) if self.causal else ((self.kernel - 1) // 2, self.kernel // 2)
        h = self.conv(F.pad(h, pad)).transpose(1, 2)
        return torch.as_tensor(self.dropout(self.activation(h)))


class CNNEncoder(nn.Module):
    def __init__(self, a: Architecture) -> None:
        super().__init__()
        self.embed = nn.Embedding(a.source_vocab, a.num_embed_source, padding_idx=PAD)
        self.positions = nn.Embedding(a.max_seq_len_source + 2, a.num_embed_source)
        self.dropout = nn.Dropout(a.embed_dropout_source)
        self.project = nn.Linear(a.num_embed_source, a.cnn_num_hidden)
        self.layers = nn.ModuleList(
            Convolution(
                a.cnn_num_hidden,
                a.cnn_kernel_width_encoder,
                a.cnn_activation_type,
                a.cnn_hidden_dropout,
                causal=False,
            )
            for _ in range(a.num_layers_encoder)
        )

    def forward(self, source: torch.Tensor, lengths: torch.Tensor) -> Encoded:
        mask = source != PAD
        embedded = self.dropout(self.embed(source) + self.positions(_positions(source)))
        e = self.project(embedded)
        keep = mask.unsqueeze(2).to(e.dtype)
        x = e * keep
        for layer in self.layers:
            x = (x + layer(x)) * keep
        return Encoded(x, (x + e) * keep, mask, lengths)


def _positions(tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
    length = int(tokens.shape[1])
    ids = torch.arange(offset, offset + length, device=tokens.device)
    return ids.unsqueeze(0).expand(tokens.shape[0], length)


class Attention(nn.Module):
    """Scores of a query against the source keys, masked and normalised, and the context."""

    def __init__(self, kind: str, query_dim: int, key_dim: int, hidden: int) -> None:
        super().__init__()
        self.kind = kind
        self.key: nn.Module | None = None
        if (kind == "dot" and key_dim != query_dim) or kind == "bilinear":
            self.key = nn.Linear(key_dim, query_dim, bias=False)
        if kind == "mlp":
            self.key = nn.Linear(key_dim, hidden)
            self.query = nn.Linear(query_dim, hidden, bias=False)
            self.score = nn.Linear(hidden, 1, bias=False)

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        """What the scores need of the keys, computed once per sentence."""
        return keys if self.key is None else torch.as_tensor(self.key(keys))

    def forward(
        self, query: torch.Tensor, prepared: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "fixed":
            scores = torch.zeros(mask.shape, dtype=values.dtype, device=values.device)
        elif self.kind == "mlp":
            hidden = torch.tanh(prepared + self.query(query).unsqueeze(1))
            scores = self.score(hidden).squeeze(2)
        else:
            scores = torch.bmm(prepared, query.unsqueeze(2)).squeeze(2)
        weights = torch.softmax(scores.masked_fill(~mask, -math.inf), dim=1)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)
        return context, weights


class RNNDecoder(nn.Module):
    def __init__(self, a: Architecture) -> None:
        super().__init__()
        self.a = a
        hidden = a.rnn_num_hidden
        self.embed = nn.Embedding(a.target_vocab, a.num_embed_target, padding_idx=PAD)
        self.dropout = nn.Dropout(a.embed_dropout_target)
        cell = nn.LSTMCell if a.rnn_cell_type == "lstm" else nn.GRUCell
        upper = 2 * hidden if a.rnn_attention_in_upper_layers else hidden
        self.cells = nn.ModuleList(
            cell(a.num_embed_target + hidden if i == 0 else upper, hidden)
            for i in range(a.num_layers_decoder)
        )
        self.attention = Attention(
            a.rnn_attention_type, hidden, a.encoder_dim, a.rnn_attention_num_hidden
        )
        self.combine = nn.Linear(hidden + a.encoder_dim, hidden)
        self.hidden_dropout = nn.Dropout(a.rnn_decoder_hidden_dropout)
        self.output = nn.Linear(hidden, a.target_vocab)
        self.init = (
            nn.Linear(a.encoder_dim, a.num_layers_decoder * hidden)
            if a.rnn_decoder_state_init != "zero"
            else None
        )

    def start(self, enc: Encoded) -> State:
        batch = int(enc.keys.shape[0])
        layers, hidden = self.a.num_layers_decoder, self.a.rnn_num_hidden
        if self.init is None:
            h = enc.keys.new_zeros(batch, layers, hidden)
        else:
            if self.a.rnn_decoder_state_init == "last":
                last = (enc.lengths.to(enc.keys.device) - 1).clamp(min=0)
                summary = enc.keys[torch.arange(batch, device=enc.keys.device), last]
            else:
                keep = enc.mask.unsqueeze(2).to(enc.keys.dtype)
                summary = (enc.keys * keep).sum(1) / keep.sum(1).clamp(min=1)
            h = torch.tanh(self.init(summary)).view(batch, layers, hidden)
        state: State = {
            "h": h,
            "feed": enc.keys.new_zeros(batch, hidden),
            "keys": self.attention.prepare(enc.keys),
            "values": enc.values,
            "mask": enc.mask,
        }
        if self.a.rnn_cell_type == "lstm":
            state["c"] = h
        return state

    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Logits of the next token (B x V), the attention (B x S) and the next state."""
        feed = state["feed"]
        below = self.dropout(self.embed(tokens))
        hs, cs = [], []
        for index, cell in enumerate(self.cells):
            inputs = torch.cat([below, feed], 1)
            if index > 0 and not self.a.rnn_attention_in_upper_layers:
                inputs = below
            if "c" in state:
                h, c = cell(inputs, (state["h"][:, index], state["c"][:, index]))
                cs.append(c)
            else:
                h = cell(inputs, state["h"][:, index])
            hs.append(h)
            below = h + below if index > 0 and _residual(self.a, index) else h
        context, weights = self.attention(below, state["keys"], state["values"], state["mask"])
        attentional = self.hidden_dropout(torch.tanh(self.combine(torch.cat([below, context], 1))))
        new: State = {**state, "h": torch.stack(hs, 1), "feed": attentional}
        if cs:
            new["c"] = torch.stack(cs, 1)
        return self.output(attentional), weights, new

    def forward(self, enc: Encoded, target_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits B x T x V for the inputs `<s> y1 .. yn`."""
        state = self.start(enc)
        logits = []
        for t in range(int(target_in.shape[1])):
            out, _, state = self.step(state, target_in[:, t])
            logits.append(out)
        return torch.stack(logits, 1)


class CNNDecoder(nn.Module):
    def __init__(self, a: Architecture) -> None:
        super().__init__()
        hidden, enc = a.cnn_num_hidden, a.encoder_dim
        self.embed = nn.Embedding(a.target_vocab, a.num_embed_target, padding_idx=PAD)
        self.positions = nn.Embedding(a.max_seq_len_target + 2, a.num_embed_target)
        self.max_position = a.max_seq_len_target + 1
        self.dropout = nn.Dropout(a.embed_dropout_target)
        self.project = nn.Linear(a.num_embed_target, hidden)
        self.layers = nn.ModuleList(
            Convolution(
                hidden,
                a.cnn_kernel_width_decoder,
                a.cnn_activation_type,
                a.cnn_hidden_dropout,
                causal=True,
            )
            for _ in range(a.num_layers_decoder)
        )
        self.queries = nn.ModuleList(nn.Linear(hidden, enc) for _ in self.layers)
        self.contexts = nn.ModuleList(nn.Linear(enc, hidden) for _ in self.layers)
        self.output = nn.Linear(hidden, a.target_vocab)

    def attend(self, enc: Encoded, target_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits B x T x V and the last layer's attention B x T x S."""
        positions = _positions(target_in).clamp(max=self.max_position)
        e = self.project(self.dropout(self.embed(target_in) + self.positions(positions)))
        x = e
        weights = enc.keys.new_zeros(target_in.shape[0], target_in.shape[1], enc.keys.shape[1])
        for layer, query, context in zip(self.layers, self.queries, self.contexts, strict=True):
            h = layer(x)
            scores = torch.bmm(query(h + e), enc.keys.transpose(1, 2))
            scores = scores.masked_fill(~enc.mask.unsqueeze(1), -math.inf)
            weights = torch.softmax(scores, dim=2)
            x = x + h + context(torch.bmm(weights, enc.values))
        return self.output(x), weights

    def forward(self, enc: Encoded, target_in: torch.Tensor) -> torch.Tensor:
        return self.attend(enc, target_in)[0]

    def start(self, enc: Encoded) -> State:
        batch = int(enc.keys.shape[0])
        prefix = torch.empty(batch, 0, dtype=torch.long, device=enc.keys.device)
        return {
            "prefix": prefix,
            "keys": enc.keys,
            "values": enc.values,
            "mask": enc.mask,
            "lengths": enc.lengths,
        }

    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, State]:
        """The next token after the prefix (recomputed whole: a causal net's answer is the same
        as with a cache, and sentences are short)."""
        prefix = torch.cat([state["prefix"], tokens.unsqueeze(1)], 1)
        enc = Encoded(state["keys"], state["values"], state["mask"], state["lengths"])
        logits, weights = self.attend(enc, prefix)
        return logits[:, -1], weights[:, -1], {**state, "prefix": prefix}


class Seq2SeqNet(nn.Module):
    def __init__(self, a: Architecture) -> None:
        super().__init__()
        self.arch = a
        self.encoder: nn.Module = RNNEncoder(a) if a.encoder_type == "rnn" else CNNEncoder(a)
        self.decoder: RNNDecoder | CNNDecoder = (
            RNNDecoder(a) if a.decoder_type == "rnn" else CNNDecoder(a)
        )

    def encode(self, source: torch.Tensor, lengths: torch.Tensor) -> Encoded:
        encoded: Encoded = self.encoder(source, lengths)
        return encoded

    def forward(
        self, source: torch.Tensor, lengths: torch.Tensor, target_in: torch.Tensor
    ) -> torch.Tensor:
        return torch.as_tensor(self.decoder(self.encode(source, lengths), target_in))


def initialize(net: nn.Module, kind: str, scale: float, factor_type: str) -> None:
    """MXNet's initialisers, as Sockeye sets them: `xavier` draws U(-b, b) with
    b = sqrt(scale / fan) (fan: in, out or their mean), `uniform` draws U(-scale, scale);
    biases start at zero and the `<pad>` embeddings stay zero."""
    with torch.no_grad():
        for param in net.parameters():
            if param.dim() < 2:
                param.zero_()
                continue
            if kind == "uniform":
                param.uniform_(-scale, scale)
                continue
            fan_out = param.shape[0]
            fan_in = param.shape[1] * (int(np.prod(param.shape[2:])) if param.dim() > 2 else 1)
            fan = {"in": fan_in, "out": fan_out, "avg": (fan_in + fan_out) / 2}[factor_type]
            bound = math.sqrt(scale / fan)
            param.uniform_(-bound, bound)
        for module in net.modules():
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()


def threads_for(arch: Architecture, tokens: int) -> None:
    """NTM's `configure_threads` sized by one time step over `tokens` sentences: the networks
    run many small operations a step, where threads only add synchronisation."""
    configure_threads(arch.work(tokens))
