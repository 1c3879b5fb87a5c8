"""A small evaluator of highlight predictions in the JSON-lines format of moment-DETR's ``standalone_eval``
(and lighthouse), written from that format's published description only, never from hl's own code:

* a prediction file has one JSON object per line, with ``qid`` (the query id), ``vid`` (the video id) and
  ``pred_saliency_scores``: a score per 2-second clip of the video, in order, higher is better;
* a TVSum ground-truth file (lighthouse's ``tvsum_*_release.jsonl``) has per line ``qid``, ``vid`` and ``label``:
  per 2-second clip, the 1-5 scores of the 20 annotators.

TVSum's top-5 mAP as the highlight-detection literature computes it: for each annotator, a clip is a highlight
when its score exceeds the median of that annotator's scores over the video; rank the clips by predicted score
(ties keep clip order), keep the first 5, and compute the average precision inside those 5 (a video with no
highlight among them scores 0) by the trapezoid rule starting at precision 1; average over annotators, then over
videos.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _ap_of_ranked(hits: list[int]) -> float:
    positives = sum(hits)
    if positives == 0:
        return 0.0
    ap, found, recall_before, precision_before = 0.0, 0, 0.0, 1.0
    for i, hit in enumerate(hits, start=1):
        found += hit
        recall, precision = found / positives, found / i
        ap += (recall - recall_before) * (precision + precision_before) / 2
        recall_before, precision_before = recall, precision
    return ap


def tvsum_video_map(pred_scores: list[float], label: list[list[float]], top: int = 5) -> float:
    """Top-`top` mAP of one video: `pred_scores` per clip, `label` [clips][annotators]."""
    if len(pred_scores) != len(label):
        raise ValueError(f"{len(pred_scores)} predicted scores for {len(label)} annotated clips")
    order = sorted(range(len(pred_scores)), key=lambda i: (-pred_scores[i], i))[:top]
    aps = []
    for a in range(len(label[0])):
        column = [row[a] for row in label]
        median = statistics.median(column)
        aps.append(_ap_of_ranked([1 if column[i] > median else 0 for i in order]))
    return sum(aps) / len(aps)


def evaluate_tvsum(pred_path: str | Path, gt_path: str | Path) -> dict[str, float]:
    """{qid: top-5 mAP} of every ground-truth query, and "mean" over them; a query without a prediction is an
    error, as are predictions for unknown queries."""
    preds = {str(r["qid"]): r for r in read_jsonl(pred_path)}
    truth = {str(r["qid"]): r for r in read_jsonl(gt_path)}
    unknown = set(preds) - set(truth)
    missing = set(truth) - set(preds)
    if unknown or missing:
        raise ValueError(f"predictions for unknown queries {sorted(unknown)}, none for {sorted(missing)}")
    out = {}
    for qid, gt in truth.items():
        pred = preds[qid]
        if str(pred["vid"]) != str(gt["vid"]):
            raise ValueError(f"query {qid}: prediction for video {pred['vid']}, ground truth for {gt['vid']}")
        out[qid] = tvsum_video_map([float(x) for x in pred["pred_saliency_scores"]], gt["label"])
    out["mean"] = sum(out.values()) / len(truth)
    return out
