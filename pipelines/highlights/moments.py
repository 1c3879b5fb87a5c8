"""From per-segment scores to a video's best moments: pure interval arithmetic, no I/O.

A *moment* is a run of time-adjacent segments grown around a high-scoring *peak* segment. Moments are found
greedily, best first, in the manner of non-maximum suppression:

1. Rank the segments by score (highest first; ties go to the earlier segment).
2. Walk down the ranking. A segment starts a new moment (it becomes a peak) when it belongs to no moment yet,
   its score is at least the video's *floor* (below), and it lies at least ``min_gap`` seconds away from every
   moment already found.
3. The moment grows from its peak one neighbouring segment at a time (the higher-scoring side first) while the
   neighbour touches or overlaps the moment, belongs to no other moment, scores at least
   ``level = median + merge * (peak - median)`` (``median`` of the video's scores; ``merge`` = 1 keeps only
   ties with the peak, 0 takes every neighbour above the median), keeps the moment within ``max_length``
   seconds, and keeps it ``min_gap`` seconds away from every other moment.
4. Stop after ``top`` moments.

The floor keeps moments far below the video's best out of the list (a 0.01 beside a 0.97): with ``relative``
= r it is ``median + r * (best - median)`` of the video's scores (r = 0: the median, r = 1: only ties with the
best); an absolute ``min_score``, when given, is the floor instead (``min_score`` = 0 keeps the top k of
scores in [0, 1] whatever they score); neither: no floor. :func:`moment_floor` computes it.

Guarantees (tested as properties): moments never overlap, any two are at least ``min_gap`` seconds apart
(end of one to start of the next), lie within ``[0, duration]``, are at most ``max_length`` long (a single
segment longer than that is kept whole), and come out in decreasing score. ``score`` is the maximum of the
moment's segment scores (its peak's, since every higher-ranked segment was already used or suppressed) and
``mean_score`` their mean; ``score_rank`` (1 = the video's best segment) and ``percentile`` (the share of the
video's segments scoring at or below it, in %) place ``score`` in the video's distribution. No moment scores
below the floor. With a relative floor (or none) the rule is invariant to shifting or positively scaling all
scores.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RELATIVE = 0.55  # the default relative floor, chosen on TVSum's training videos (benchmarks/moment_threshold.py)
_TOUCH = 1e-6  # seconds: segments closer than this count as touching


@dataclass(frozen=True)
class Moment:
    start: float  # seconds
    end: float
    score: float  # max of its segments' scores (the peak's)
    mean_score: float  # mean of its segments' scores
    peak: int  # index of the highest-scoring segment
    peak_time: float  # middle of the peak segment (seconds): where a thumbnail is taken
    segments: tuple[int, ...]  # indices of its segments, in time order
    score_rank: int = 1  # 1 + the number of the video's segments scoring above `score`
    percentile: float = 100.0  # % of the video's segments scoring at or below `score`

    @property
    def length(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "score": round(self.score, 6),
                "mean_score": round(self.mean_score, 6), "peak_time": round(self.peak_time, 3),
                "segments": list(self.segments), "score_rank": self.score_rank,
                "percentile": round(self.percentile, 2)}


def gap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Seconds between two intervals (negative when they overlap)."""
    return max(a[0] - b[1], b[0] - a[1])


def moment_floor(scores, relative: float | None = None, min_score: float | None = None) -> float | None:
    """The least score a moment's peak may have: `min_score` when given, else ``median + relative * (best -
    median)`` of `scores` when `relative` is given, else None (no floor)."""
    if min_score is not None:
        if not np.isfinite(min_score):
            raise ValueError(f"min_score must be a finite number, got {min_score}")
        return float(min_score)
    if relative is None:
        return None
    if not 0.0 <= relative <= 1.0:
        raise ValueError(f"relative must lie in [0, 1], got {relative}")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) == 0:
        return None
    median = float(np.median(s))
    # never above the best itself (rounding): the best segment always passes a relative floor
    return min(median + relative * (float(s.max()) - median), float(s.max()))


def find_moments(
    scores,
    segments,
    top: int = 5,
    min_gap: float = 4.0,
    duration: float | None = None,
    merge: float = 0.5,
    max_length: float | None = 30.0,
    min_score: float | None = None,
    relative: float | None = None,
) -> list[Moment]:
    """The best `top` moments of one video from its segment `scores` [S] and `segments` [S, 2] (start, end in
    seconds, any order, may overlap), none scoring below :func:`moment_floor` (`relative`, `min_score`).
    Segment times are clipped to ``[0, duration]`` (default: the last segment's end); segments that fall
    outside entirely are never used. See the module docstring."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    seg = np.asarray(segments, dtype=np.float64)
    if seg.ndim != 2 or seg.shape[1] != 2:
        raise ValueError(f"segments must be an [S, 2] array of (start, end) seconds, got shape {seg.shape}")
    if len(seg) != len(s):
        raise ValueError(f"{len(s)} scores for {len(seg)} segments")
    if not np.isfinite(s).all() or not np.isfinite(seg).all():
        raise ValueError("scores and segment times must be finite (no NaN or inf)")
    if (seg[:, 1] < seg[:, 0]).any():
        raise ValueError("every segment must end at or after its start")
    if int(top) != top or top < 1:
        raise ValueError(f"top must be a whole number >= 1, got {top}")
    if not min_gap >= 0:
        raise ValueError(f"min_gap must be >= 0 seconds, got {min_gap}")
    if not 0.0 <= merge <= 1.0:
        raise ValueError(f"merge must lie in [0, 1], got {merge}")
    if max_length is not None and not max_length > 0:
        raise ValueError(f"max_length must be > 0 seconds (or None), got {max_length}")
    if relative is not None and not 0.0 <= relative <= 1.0:
        raise ValueError(f"relative must lie in [0, 1], got {relative}")
    if len(s) == 0:
        return []
    if duration is None:
        duration = float(seg[:, 1].max())
    if not duration > 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration}")

    seg = np.clip(seg, 0.0, duration)
    usable = seg[:, 1] > seg[:, 0]
    floor = moment_floor(s[usable], relative, min_score)  # over the segments inside the video
    by_time = np.lexsort((seg[:, 1], seg[:, 0]))  # positions in time order
    where = np.empty(len(s), dtype=np.int64)
    where[by_time] = np.arange(len(s))
    ranking = np.lexsort((seg[:, 0], -s))  # best first, earlier first on ties
    baseline = float(np.median(s))
    used = np.zeros(len(s), dtype=bool)
    found: list[tuple[float, float]] = []  # intervals of the moments so far
    moments: list[Moment] = []

    def clear_of_others(interval: tuple[float, float]) -> bool:
        return all(gap(interval, other) >= min_gap for other in found)

    for peak in ranking.tolist():
        if len(moments) == top:
            break
        if used[peak] or not usable[peak] or (floor is not None and s[peak] < floor):
            continue
        lo = hi = int(where[peak])
        interval = (float(seg[peak, 0]), float(seg[peak, 1]))
        if not clear_of_others(interval):
            continue
        level = baseline + merge * (s[peak] - baseline)
        members = [peak]
        while True:
            options = []
            for pos, left in ((lo - 1, True), (hi + 1, False)):
                if not 0 <= pos < len(s):
                    continue
                j = int(by_time[pos])
                if used[j] or not usable[j] or s[j] < level:
                    continue
                touches = seg[j, 1] >= interval[0] - _TOUCH if left else seg[j, 0] <= interval[1] + _TOUCH
                grown = (min(interval[0], float(seg[j, 0])), max(interval[1], float(seg[j, 1])))
                if not touches or (max_length is not None and grown[1] - grown[0] > max_length + _TOUCH):
                    continue
                if clear_of_others(grown):
                    options.append((s[j], left, j, grown))
            if not options:
                break
            _, left, j, interval = max(options, key=lambda o: (o[0], o[1]))  # higher score; left on ties
            members.append(j)
            lo, hi = (lo - 1, hi) if left else (lo, hi + 1)
        members.sort(key=lambda k: where[k])
        used[members] = True
        found.append(interval)
        best = float(s[members].max())
        moments.append(Moment(
            start=interval[0], end=interval[1], score=best, mean_score=float(s[members].mean()),
            peak=peak, peak_time=float(seg[peak].mean()), segments=tuple(int(k) for k in members),
            score_rank=int((s > best).sum()) + 1, percentile=100.0 * float((s <= best).sum()) / len(s),
        ))
    return moments
