"""Decoding with a seq2seq network: padded batches, greedy and beam search (attention kept
for the answers' matrices), and `Seq2SeqModel`, the trained network with its vocabularies as
`model_algo-1` holds them, for inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from opensage.algorithms.artifacts import load_model, save_model
from opensage.algorithms.ntm.model import device
from opensage.algorithms.seq2seq.model import (
    BOS,
    EOS,
    PAD,
    Architecture,
    Seq2SeqNet,
    State,
)

# --- batches and decoding ---------------------------------------------------------------------


def source_batch(
    sources: list[npt.NDArray[np.int64]], where: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sources padded into B x S with `</s>` appended, and their lengths (with `</s>`)."""
    lengths = [len(s) + 1 for s in sources]
    out = np.zeros((len(sources), max(lengths)), dtype=np.int64)
    for row, ids in enumerate(sources):
        out[row, : len(ids)] = ids
        out[row, len(ids)] = EOS
    return torch.from_numpy(out).to(where), torch.tensor(lengths, dtype=torch.long)


def target_batch(
    targets: list[npt.NDArray[np.int64]], where: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs `<s> y` and outputs `y </s>`, padded into B x T."""
    width = max(len(t) for t in targets) + 1
    inputs = np.zeros((len(targets), width), dtype=np.int64)
    outputs = np.zeros((len(targets), width), dtype=np.int64)
    for row, ids in enumerate(targets):
        inputs[row, 0] = BOS
        inputs[row, 1 : len(ids) + 1] = ids
        outputs[row, : len(ids)] = ids
        outputs[row, len(ids)] = EOS
    return torch.from_numpy(inputs).to(where), torch.from_numpy(outputs).to(where)


@dataclass
class Translation:
    """Output ids (without `</s>`) and attention, one row per output id, one column per source
    id (without the appended `</s>`)."""

    ids: list[int]
    attention: npt.NDArray[np.float32]


def _next_scores(logits: torch.Tensor, step: int, limit: int) -> torch.Tensor:
    """Log-probabilities of the next token: never `<pad>` or `<s>`; only `</s>` at the limit."""
    scores = torch.log_softmax(logits.float(), dim=-1)
    scores[:, PAD] = -math.inf
    scores[:, BOS] = -math.inf
    if step >= limit:
        eos = scores[:, EOS].clone()
        scores.fill_(-math.inf)
        scores[:, EOS] = eos
    return scores


def _reorder(state: State, index: torch.Tensor) -> State:
    return {key: value.index_select(0, index.to(value.device)) for key, value in state.items()}


def _translations(
    ids: torch.Tensor, attention: torch.Tensor, lengths: torch.Tensor
) -> list[Translation]:
    out = []
    ids_np = ids.cpu().numpy()
    attention_np = attention.float().cpu().numpy()
    for row in range(ids_np.shape[0]):
        tokens = ids_np[row].tolist()
        end = tokens.index(EOS) if EOS in tokens else len(tokens)
        source = int(lengths[row]) - 1
        matrix = np.ascontiguousarray(attention_np[row, :end, :source], dtype=np.float32)
        out.append(Translation([int(t) for t in tokens[:end]], matrix))
    return out


def greedy(net: Seq2SeqNet, sources: list[npt.NDArray[np.int64]], limit: int) -> list[Translation]:
    """The most likely next token at every step, up to `limit` tokens before `</s>`."""
    where = next(net.parameters()).device
    source, lengths = source_batch(sources, where)
    with torch.no_grad():
        state = net.decoder.start(net.encode(source, lengths))
        tokens = torch.full((len(sources),), BOS, dtype=torch.long, device=where)
        done = torch.zeros(len(sources), dtype=torch.bool, device=where)
        outputs, weights = [], []
        for step in range(limit + 1):
            logits, attention, state = net.decoder.step(state, tokens)
            tokens = _next_scores(logits, step, limit).argmax(-1)
            tokens = torch.where(done, torch.full_like(tokens, EOS), tokens)
            outputs.append(tokens)
            weights.append(attention)
            done = done | (tokens == EOS)
            if bool(done.all()):
                break
    return _translations(torch.stack(outputs, 1), torch.stack(weights, 1), lengths)


def beam_search(
    net: Seq2SeqNet, sources: list[npt.NDArray[np.int64]], beam: int, limit: int
) -> list[Translation]:
    """Beam search of width `beam`; the best finished hypothesis by log-probability per token.
    With `beam=1` it finds what `greedy` does (which `decode` then uses: it is cheaper)."""
    where = next(net.parameters()).device
    source, lengths = source_batch(sources, where)
    batch = len(sources)
    with torch.no_grad():
        state = net.decoder.start(net.encode(source, lengths))
        state = _reorder(state, torch.arange(batch, device=where).repeat_interleave(beam))
        scores = torch.full((batch, beam), -math.inf, device=where)
        scores[:, 0] = 0.0
        tokens = torch.full((batch * beam,), BOS, dtype=torch.long, device=where)
        finished = torch.zeros(batch * beam, dtype=torch.bool, device=where)
        history = torch.empty(batch * beam, 0, dtype=torch.long, device=where)
        weights = torch.empty(batch * beam, 0, source.shape[1], device=where)
        steps = torch.zeros(batch * beam, device=where)
        base = (torch.arange(batch, device=where) * beam).unsqueeze(1)
        for step in range(limit + 1):
            logits, attention, state = net.decoder.step(state, tokens)
            next_scores = _next_scores(logits, step, limit)
            next_scores[finished] = -math.inf
            next_scores[finished, EOS] = 0.0  # a finished hypothesis stays as it is
            vocab = next_scores.shape[1]
            candidates = (scores.view(-1, 1) + next_scores).view(batch, beam * vocab)
            scores, flat = candidates.topk(beam, dim=1)
            origin = (base + flat // vocab).view(-1)
            tokens = (flat % vocab).view(-1)
            state = _reorder(state, origin)
            history = torch.cat([history[origin], tokens.unsqueeze(1)], 1)
            weights = torch.cat([weights[origin], attention[origin].float().unsqueeze(1)], 1)
            steps = steps[origin] + (~finished[origin]).float()
            finished = finished[origin] | (tokens == EOS)
            if bool(finished.all()):
                break
        normalised = scores / steps.view(batch, beam).clamp(min=1)
        best = (base.squeeze(1) + normalised.argmax(1)).view(-1)
    return _translations(history[best], weights[best], lengths)


def decode(
    net: Seq2SeqNet, sources: list[npt.NDArray[np.int64]], beam: int, chunk: int = 64
) -> list[Translation]:
    """Translations of `sources` in chunks of similar length (sorted, then put back)."""
    net.eval()
    order = sorted(range(len(sources)), key=lambda i: (len(sources[i]), i))
    found: dict[int, Translation] = {}
    limit = net.arch.max_seq_len_target
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        truncated = [sources[i][: net.arch.max_seq_len_source] for i in part]
        found_part = (
            greedy(net, truncated, limit) if beam == 1 else beam_search(net, truncated, beam, limit)
        )
        for index, translation in zip(part, found_part, strict=True):
            found[index] = translation
    return [found[i] for i in range(len(sources))]


# --- the model file ---------------------------------------------------------------------------


class Seq2SeqModel:
    """A trained network and its vocabularies (id order) for inference, in eval mode."""

    def __init__(
        self, net: Seq2SeqNet, source_vocab: list[str], target_vocab: list[str], beam: int
    ) -> None:
        self.net = net.eval()
        self.source_vocab = source_vocab
        self.target_vocab = target_vocab
        self.source_ids = {token: i for i, token in enumerate(source_vocab)}
        self.beam = beam

    @property
    def arch(self) -> Architecture:
        return self.net.arch

    def translate(
        self, sources: list[npt.NDArray[np.int64]], beam: int | None = None
    ) -> list[Translation]:
        return decode(self.net, sources, beam or self.beam)

    def save(self, model_dir: Path) -> Path:
        arrays = {
            name: value.detach().cpu().numpy() for name, value in self.net.state_dict().items()
        }
        meta = {
            "algorithm": "seq2seq",
            "architecture": self.arch.meta(),
            "beam_size": self.beam,
            "vocab_source": self.source_vocab,
            "vocab_target": self.target_vocab,
        }
        return save_model(model_dir, arrays, meta)

    @classmethod
    def load(cls, model_dir: Path) -> Seq2SeqModel:
        arrays, meta = load_model(model_dir)
        net = Seq2SeqNet(Architecture.from_meta(meta["architecture"]))
        state = {name: torch.from_numpy(arrays[name]) for name in net.state_dict()}
        net.load_state_dict(state)
        return cls(
            net.to(device()),
            [str(t) for t in meta["vocab_source"]],
            [str(t) for t in meta["vocab_target"]],
            int(meta["beam_size"]),
        )
