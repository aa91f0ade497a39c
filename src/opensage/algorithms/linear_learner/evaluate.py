"""Metrics of a fitted model, and the binary decision threshold's calibration.

Everything is vectorised over rows; `calibrate` also over models (one column each), so picking
the best of `num_models` costs one sort.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]


def calibrate(
    scores: Array,
    labels: Array,
    criterion: str,
    beta: float = 1.0,
    target_precision: float = 0.8,
    target_recall: float = 0.8,
) -> tuple[Array, Array]:
    """The threshold of each column of `scores` (rows, models) that is best for `criterion`,
    and the criterion's value there. `predicted_label = score >= threshold`.

    Every cut between two distinct sorted scores is a candidate (its midpoint is the threshold),
    plus "nothing positive" and "everything positive": the exact optimum on this sample.
    """
    n, k = scores.shape
    by_model = np.ascontiguousarray(scores.T)  # sorting contiguous rows is several times faster
    order = np.argsort(-by_model, axis=1)
    ranked = np.take_along_axis(by_model, order, axis=1).T
    positives = labels.astype(np.float64)[order].T
    tp = np.vstack([np.zeros((1, k)), np.cumsum(positives, axis=0)])
    predicted = np.arange(n + 1, dtype=np.float64)[:, None]
    fp = predicted - tp
    total_pos = float(labels.sum())
    total_neg = n - total_pos
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = tp / total_pos if total_pos > 0 else np.zeros_like(tp)
    value, key = _criterion(
        criterion, tp, fp, precision, recall, n, total_neg, beta, target_precision, target_recall
    )
    cut_between_ties = np.zeros((n + 1, k), dtype=bool)
    cut_between_ties[1:n] = ranked[:-1] == ranked[1:]
    key = np.where(cut_between_ties, -np.inf, key)
    best = np.argmax(key, axis=0)
    columns = np.arange(k)
    return _thresholds(ranked, best), value[best, columns]


def _criterion(
    criterion: str,
    tp: Array,
    fp: Array,
    precision: Array,
    recall: Array,
    n: int,
    total_neg: float,
    beta: float,
    target_precision: float,
    target_recall: float,
) -> tuple[Array, Array]:
    """(the criterion's value, the key to maximise) at every cut."""
    if criterion == "accuracy":
        value = (tp + (total_neg - fp)) / n
        return value, value
    if criterion == "f_beta":
        value = f_beta(precision, recall, beta)
        return value, value
    if criterion == "precision_at_target_recall":
        reached = recall >= target_recall
        return np.where(reached, precision, 0.0), np.where(reached, precision, recall - 2.0)
    if criterion == "recall_at_target_precision":
        reached = precision >= target_precision
        return np.where(reached, recall, 0.0), np.where(reached, recall, precision - 2.0)
    raise ValueError(f"no threshold calibration for criterion {criterion}")


def _thresholds(ranked: Array, best: Array) -> Array:
    n = ranked.shape[0]
    columns = np.arange(ranked.shape[1])
    above = ranked[np.clip(best - 1, 0, n - 1), columns].astype(np.float64)
    below = ranked[np.clip(best, 0, n - 1), columns].astype(np.float64)
    middle = (above + below) / 2.0
    nothing = np.nextafter(ranked[0, columns].astype(np.float64), np.inf)
    return np.asarray(np.where(best == 0, nothing, np.where(best == n, below, middle)))


def f_beta(precision: Array, recall: Array, beta: float) -> Array:
    b2 = beta * beta
    top = (1.0 + b2) * precision * recall
    bottom = b2 * precision + recall
    return np.divide(top, bottom, out=np.zeros_like(top, dtype=np.float64), where=bottom > 0)


def roc_auc(scores: Array, labels: Array) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN with one class only."""
    from scipy.stats import rankdata

    positive = labels == 1
    n_pos = int(positive.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_metrics(scores: Array, labels: Array, threshold: float, beta: float) -> dict[str, float]:
    predicted = scores >= threshold
    actual = labels == 1
    tp = float(np.sum(predicted & actual))
    precision = tp / float(predicted.sum()) if predicted.any() else 0.0
    recall = tp / float(actual.sum()) if actual.any() else 0.0
    score = f_beta(np.array([precision]), np.array([recall]), beta)[0]
    return {
        "binary_classification_accuracy": float(np.mean(predicted == actual)),
        "binary_f_beta": float(score),
        "precision": precision,
        "recall": recall,
        "roc_auc_score": roc_auc(scores, labels),
    }


def multiclass_metrics(
    probabilities: Array, labels: Array, top_k: int, beta: float
) -> dict[str, float]:
    """Accuracy, top-k accuracy, macro precision/recall/F-beta (over the classes that occur
    as a label or a prediction, as scikit-learn's `average="macro"`) and DCG of the true class."""
    n, classes = probabilities.shape
    truth = labels.astype(np.intp)
    predicted = np.argmax(probabilities, axis=1)
    true_score = probabilities[np.arange(n), truth]
    # Rank of the true class: classes scored strictly higher, plus ties placed before it.
    higher = (probabilities > true_score[:, None]).sum(axis=1)
    ties_before = (probabilities == true_score[:, None]) & (np.arange(classes) < truth[:, None])
    rank = higher + ties_before.sum(axis=1)
    counts_true = np.bincount(truth, minlength=classes).astype(np.float64)
    counts_pred = np.bincount(predicted, minlength=classes).astype(np.float64)
    hits = np.bincount(truth[predicted == truth], minlength=classes).astype(np.float64)
    present = (counts_true + counts_pred) > 0
    precision = np.divide(hits, counts_pred, out=np.zeros(classes), where=counts_pred > 0)
    recall = np.divide(hits, counts_true, out=np.zeros(classes), where=counts_true > 0)
    return {
        "multiclass_accuracy": float(np.mean(predicted == truth)),
        "multiclass_top_k_accuracy": float(np.mean(rank < min(top_k, classes))),
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "macro_f_beta": float(f_beta(precision, recall, beta)[present].mean()),
        "dcg": float(np.mean(1.0 / np.log2(rank + 2.0))),
    }


def regression_metrics(predictions: Array, labels: Array) -> dict[str, float]:
    error = predictions.astype(np.float64) - labels
    mse = float(np.mean(error * error))
    return {"mse": mse, "rmse": math.sqrt(mse), "absolute_loss": float(np.mean(np.abs(error)))}
