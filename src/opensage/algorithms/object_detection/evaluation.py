"""Mean average precision (spec algorithms §17(c) `validation:mAP`), as Pascal VOC computes it:
detections of a class are ranked by score over all images; one is a true positive when its IoU
with a not yet claimed ground-truth box of its class reaches the threshold (the
`overlap_threshold`); AP is the all-point interpolated area under the precision-recall curve
(VOC 2010 onwards, not the 11-point rule of VOC 2007), and mAP its mean over the classes that
have ground truth. Plain numpy, so it is checked by hand examples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


def iou(box: npt.NDArray[Any], boxes: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """IoU of one corner box (4,) with each of `boxes` (n, 4)."""
    left = np.maximum(box[0], boxes[:, 0])
    top = np.maximum(box[1], boxes[:, 1])
    right = np.minimum(box[2], boxes[:, 2])
    bottom = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(inter / np.maximum(area + areas - inter, 1e-12), dtype=np.float64)


def average_precision(recall: npt.NDArray[Any], precision: npt.NDArray[Any]) -> float:
    """All-point interpolated AP of a precision-recall curve (ranked order)."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def class_ap(
    detections: Sequence[npt.NDArray[Any]],
    truths: Sequence[npt.NDArray[Any]],
    cls: int,
    threshold: float,
) -> float | None:
    """AP of class `cls`; None when no image has a ground-truth box of it."""
    gt = [t[t[:, 0] == cls, 1:5] for t in truths]
    total = sum(len(g) for g in gt)
    if total == 0:
        return None
    rows = [
        (float(d[1]), i, d[2:6])
        for i, dets in enumerate(detections)
        for d in dets
        if int(d[0]) == cls
    ]
    rows.sort(key=lambda row: -row[0])  # stable: equal scores keep image order
    claimed = [np.zeros(len(g), dtype=bool) for g in gt]
    hits = np.zeros(len(rows))
    for k, (_, image, box) in enumerate(rows):
        if len(gt[image]) == 0:
            continue
        overlaps = iou(np.asarray(box, dtype=np.float64), gt[image].astype(np.float64))
        best = int(overlaps.argmax())
        if overlaps[best] >= threshold and not claimed[image][best]:
            claimed[image][best] = True
            hits[k] = 1.0
    tp = np.cumsum(hits)
    fp = np.cumsum(1.0 - hits)
    recall = tp / total
    precision = tp / np.maximum(tp + fp, 1e-12)
    return average_precision(recall, precision)


def mean_average_precision(
    detections: Sequence[npt.NDArray[Any]],
    truths: Sequence[npt.NDArray[Any]],
    num_classes: int,
    threshold: float = 0.5,
) -> float:
    """mAP of per-image detections (k, 6: class, score, corners) against per-image ground
    truth (n, 5: class, corners), both in the same (normalised) coordinates."""
    aps = [class_ap(detections, truths, c, threshold) for c in range(num_classes)]
    found = [ap for ap in aps if ap is not None]
    return float(np.mean(found)) if found else 0.0
