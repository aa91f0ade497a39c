"""Corpus BLEU-4 as sacrebleu computes it (`corpus_bleu`, default `exp` smoothing), on token
sequences (word strings or ids), as a fraction in [0, 1] rather than sacrebleu's percent.

Clipped n-gram matches and hypothesis n-gram counts are summed over the corpus for n = 1..4;
an order with no match scores `1 / (2^k * total)` for its k-th such order (the `exp`
smoothing); an order the hypotheses have no n-grams of at all makes BLEU 0; the brevity penalty
is `exp(1 - r / c)` when the hypotheses (c tokens) are shorter than the references (r tokens).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Final

MAX_ORDER: Final = 4


def _ngrams(tokens: Sequence[Hashable], order: int) -> Counter[tuple[Hashable, ...]]:
    return Counter(tuple(tokens[i : i + order]) for i in range(len(tokens) - order + 1))


def corpus_bleu(
    hypotheses: Sequence[Sequence[Hashable]], references: Sequence[Sequence[Hashable]]
) -> float:
    """BLEU of `hypotheses` against one reference each, in [0, 1]."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    correct = [0] * MAX_ORDER
    total = [0] * MAX_ORDER
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references, strict=True):
        hyp_len += len(hyp)
        ref_len += len(ref)
        for n in range(1, MAX_ORDER + 1):
            counts = _ngrams(hyp, n)
            reference = _ngrams(ref, n)
            correct[n - 1] += sum(min(c, reference[g]) for g, c in counts.items())
            total[n - 1] += max(0, len(hyp) - n + 1)
    log_sum = 0.0
    smooth = 1.0
    for n in range(MAX_ORDER):
        if total[n] == 0:
            return 0.0
        if correct[n] == 0:
            smooth *= 2
            precision = 1.0 / (smooth * total[n])
        else:
            precision = correct[n] / total[n]
        log_sum += math.log(precision)
    if hyp_len == 0:
        return 0.0
    penalty = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return penalty * math.exp(log_sum / MAX_ORDER)
