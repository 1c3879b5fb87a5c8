"""Highlight-detection metrics, computed as the public reference code computes them.

Average precision (TencentARC/UMT ``datasets/youtube.py`` and ``datasets/tvsum.py``; MINI-Net uses the
same sum): rank a video's clips by predicted score, descending; walk the ranked list keeping ``hits``; at
rank i (0-based) ``rec = hits / num_gt`` and ``prc = hits / (i + 1)``;
``ap += (rec - rec_prev) * (prc + prc_prev) / 2`` starting from ``rec_prev = 0``, ``prc_prev = 1`` (a
trapezoid under the precision-recall curve that starts at precision 1). A list with no positive scores 0.

Ties in the predicted scores: the reference code sorts with ``torch.argsort(descending=True)``, whose order
among equal scores is unspecified. Here equal scores keep their clip order (a stable sort on the negated
score: among ties, the earlier clip ranks first), so results are deterministic.

YouTube Highlights: label = 1 when ``match > 0`` (borderline 0 is negative); mAP = mean AP over videos.

TVSum top-5 mAP (UMT protocol, the default): for each annotator j, label = ``anno[:, j] > median(anno[:, j])``
(median over all the video's clips); rank the clips by score and keep the top 5; AP over those 5 with
``num_gt`` counted inside the top 5 (0 when none of the 5 is positive); average over videos, then over
annotators.

TVSum top-5 mAP, MINI-Net protocol (``protocol="mini-net"``; MINI-Net ``visual-audio fusion/evaluate.py``,
``TVsumOrCoSumEvaluate_sample``, and its ground-truth builder ``src/GT.py``), which differs in:
  * labels: each annotator's top half is positive, i.e. exactly ``floor(T / 2)`` clips ranked by that
    annotator's score (ties broken by clip order here; MINI-Net's ``np.argsort`` leaves them unspecified),
    instead of ``score > median`` (which gives fewer positives when scores tie at the median);
  * length mismatch: predicted scores shorter than the annotation are zero-padded (longer ones cropped) and
    every annotated clip is ranked, instead of ranking only the predicted clips;
  * averaging: mean over annotators per video, then over videos. With the same annotator count in every video
    (TVSum: 20) this equals the UMT order of averaging.
MINI-Net also scores on annotator-derived shots (runs of equal frame score split into 2-s pieces) by
averaging clip scores inside each shot; on TVSum's 2-s clips, pass those clips directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

PROTOCOLS = ("umt", "mini-net")


def _as_array(x, name: str, dtype=np.float64) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=dtype)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def rank_order(scores) -> np.ndarray:
    """Clip indices ranked by score, descending; equal scores keep clip order (stable)."""
    scores = _as_array(scores, "scores")
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {scores.shape}")
    return np.argsort(-scores, kind="stable")


def ranked_average_precision(ranked_labels) -> float:
    """AP of a list of 0/1 labels already in ranked order (best first), by the reference trapezoid rule."""
    labels = _as_array(ranked_labels, "labels")
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("labels must be 0 or 1")
    num_gt = labels.sum()
    if num_gt == 0:
        return 0.0
    hits = np.cumsum(labels)
    rec = hits / num_gt
    prc = hits / np.arange(1, len(labels) + 1)
    rec_prev = np.concatenate([[0.0], rec[:-1]])
    prc_prev = np.concatenate([[1.0], prc[:-1]])
    return math.fsum((rec - rec_prev) * (prc + prc_prev) / 2.0)  # correctly rounded: a perfect ranking is 1.0


def average_precision(scores, labels) -> float:
    """AP of one video: ``scores`` [T] predicted, ``labels`` [T] in {0, 1}. No positive -> 0.0."""
    scores = _as_array(scores, "scores")
    labels = _as_array(labels, "labels")
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(
            f"scores and labels must be 1-D of one length, got {scores.shape} and {labels.shape}"
        )
    return ranked_average_precision(labels[rank_order(scores)])


def youtube_ap(scores, match) -> float:
    """AP of one YouTube Highlights video: label = ``match > 0``. As in the reference, only the first
    ``len(scores)`` clips are ranked when the annotation is longer."""
    scores = _as_array(scores, "scores")
    match = _as_array(match, "match")
    if scores.ndim != 1 or match.ndim != 1:
        raise ValueError("scores and match must be 1-D")
    if len(scores) > len(match):
        raise ValueError(f"{len(scores)} scores for {len(match)} annotated clips")
    labels = (match[: len(scores)] > 0).astype(np.float64)
    return ranked_average_precision(labels[rank_order(scores)])


def youtube_map(videos: Iterable[tuple[Sequence[float], Sequence[float]]]) -> float:
    """mAP over videos given as ``(scores, match)`` pairs (match in {1, 0, -1}); a video with no positive
    counts as 0."""
    aps = [youtube_ap(scores, match) for scores, match in videos]
    if not aps:
        raise ValueError("youtube_map needs at least one video")
    return float(np.mean(aps))


def tvsum_annotator_aps(scores, anno, k: int = 5, protocol: str = "umt") -> np.ndarray:
    """Top-k AP of one TVSum video for each annotator: ``scores`` [T'] predicted, ``anno`` [T, A] raw scores.
    Returns [A]. See the module docstring for the two protocols."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown TVSum protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = _as_array(scores, "scores")
    anno = _as_array(anno, "anno")
    if scores.ndim != 1 or anno.ndim != 2 or anno.shape[0] == 0:
        raise ValueError(f"scores must be [T] and anno [T, annotators], got {scores.shape} and {anno.shape}")
    T = anno.shape[0]

    if protocol == "umt":
        if len(scores) > T:
            raise ValueError(f"{len(scores)} scores for {T} annotated clips")
        labels = (anno > np.median(anno, axis=0, keepdims=True)).astype(np.float64)  # [T, A]
        labels = labels[: len(scores)]
    else:
        scores = np.concatenate([scores[:T], np.zeros(max(0, T - len(scores)))])
        labels = np.zeros_like(anno)
        for j in range(anno.shape[1]):
            labels[np.argsort(-anno[:, j], kind="stable")[: T // 2], j] = 1.0
    top = labels[rank_order(scores)][:k]  # [min(k, T), A]
    return np.array([ranked_average_precision(top[:, j]) for j in range(anno.shape[1])])


def tvsum_top5_map(scores, anno, k: int = 5, protocol: str = "umt") -> float:
    """Top-5 mAP of one TVSum video: the mean over annotators of :func:`tvsum_annotator_aps`."""
    return float(tvsum_annotator_aps(scores, anno, k=k, protocol=protocol).mean())


def tvsum_map(
    videos: Iterable[tuple[Sequence[float], Sequence[Sequence[float]]]], k: int = 5, protocol: str = "umt"
) -> float:
    """Top-5 mAP over videos given as ``(scores, anno)`` pairs: per annotator the mean over videos, then the
    mean over annotators (UMT); per video the mean over annotators, then over videos (MINI-Net)."""
    grid = [tvsum_annotator_aps(scores, anno, k=k, protocol=protocol) for scores, anno in videos]
    if not grid:
        raise ValueError("tvsum_map needs at least one video")
    if protocol == "umt":
        counts = {len(g) for g in grid}
        if len(counts) != 1:
            raise ValueError(f"every video needs the same number of annotators, got {sorted(counts)}")
        return float(np.mean(np.mean(np.stack(grid), axis=0)))
    return float(np.mean([g.mean() for g in grid]))
