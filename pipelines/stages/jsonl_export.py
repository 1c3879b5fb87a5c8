"""Predictions in the JSON-lines format the query-based highlight tools evaluate (moment-DETR's
``standalone_eval``, lighthouse): one line per video,

    {"qid": "<video id>", "vid": "<video id>", "pred_saliency_scores": [score of clip 0, clip 1, ...]}

``pred_saliency_scores`` holds one score per 2-second clip of the video, in time order, higher = more of a
highlight (the format's published description); hl has no text queries, so ``qid`` is the video id, as
lighthouse's TVSum and YouTube Highlights files have it. ``pred_relevant_windows`` (moment retrieval) is not
written: hl does highlight detection only.

Runs on fixed 2-s segments export their scores as they are. Other segmentations are resampled onto 2-s clips:
a clip gets the score of the segment whose window holds the clip's centre (the highest such segment where windows
overlap, the nearest segment when none holds it).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hl.common import write_text

CLIP_SECONDS = 2.0


def clip_scores(scores, segments, clip_seconds: float = CLIP_SECONDS) -> np.ndarray:
    """One score per `clip_seconds` clip ``[k c, (k + 1) c)`` of ``[0, end of the last segment]``."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    if len(s) != len(seg):
        raise ValueError(f"{len(s)} scores for {len(seg)} segments")
    if len(s) == 0:
        return s
    duration = float(seg[:, 1].max())
    n = max(1, int(np.ceil(duration / clip_seconds - 1e-9)))
    fixed = np.allclose(seg[:, 0], np.arange(len(s)) * clip_seconds) and len(s) == n
    if fixed:
        return s.copy()
    centres = (np.arange(n) + 0.5) * clip_seconds
    out = np.empty(n)
    for k, c in enumerate(centres):
        holds = (seg[:, 0] <= c) & (c < seg[:, 1])
        if holds.any():
            out[k] = s[holds].max()
        else:
            out[k] = s[np.abs(seg.mean(axis=1) - c).argmin()]
    return out


def prediction_lines(preds: dict[str, dict], clip_seconds: float = CLIP_SECONDS) -> list[dict]:
    """The JSON-lines records of `preds` (:func:`hl.pipelines.stages.predict.predict`'s result)."""
    return [{"qid": vid, "vid": vid,
             "pred_saliency_scores": [float(x) for x in clip_scores(p["scores"], p["segments"], clip_seconds)]}
            for vid, p in preds.items()]


def write_jsonl(preds: dict[str, dict], path: str | Path, clip_seconds: float = CLIP_SECONDS) -> Path:
    """Write PRED.jsonl (atomically): one line per video, see the module docstring."""
    lines = prediction_lines(preds, clip_seconds)
    return write_text(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))
