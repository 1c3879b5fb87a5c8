"""Which evaluation protocol applies to a set of test videos, chosen by the manifest's ``dataset`` column.

* ``tvsum``: top-5 mAP per annotator (labels: each annotator's score > that annotator's median), the
  mean over videos then over the 20 annotators (:func:`hl.heads.metrics.tvsum_map`)
* ``youtube``: mAP with label = match > 0 (:func:`hl.heads.metrics.youtube_map`)
* anything else (CoSum, user CSVs, synthetic): mean over videos of the AP of the binary labels
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hl.heads.metrics import average_precision, tvsum_map, youtube_map

TVSUM_PROTOCOL = "umt"  # or "mininet": see hl.heads.metrics


def protocol_metric(labelled: Sequence[tuple[object, np.ndarray]], tvsum_protocol: str = TVSUM_PROTOCOL
                    ) -> tuple[str, float]:
    """(metric name, value) for [(LabelledVideo, scores [T])] of one domain."""
    datasets = {v.dataset for v, _ in labelled}
    if len(datasets) != 1:
        raise ValueError(f"one domain's test videos come from several datasets: {sorted(datasets)}")
    dataset = datasets.pop()
    if dataset == "tvsum" and all(v.scores is not None and v.scores.shape[1] > 1 for v, _ in labelled):
        pairs = [(s[: len(v.scores)], v.scores[: len(s)]) for v, s in labelled]
        return "top5_mAP", tvsum_map(pairs, protocol=tvsum_protocol)
    if dataset == "youtube" and all(v.scores is not None for v, _ in labelled):
        return "mAP", youtube_map([(s, v.scores[: len(s), 0]) for v, s in labelled])
    return "mAP", float(np.mean([average_precision(s, v.video.labels[: len(s)]) for v, s in labelled]))


def evaluate_scores(scores: pd.DataFrame, videos: Sequence, tvsum_protocol: str = TVSUM_PROTOCOL) -> pd.DataFrame:
    """One row per (domain, seed) of `scores` (video_id, domain, seed, segment, score): the dataset's metric
    over that domain's test videos. `videos` are the LabelledVideos of hl.pipelines.train."""
    by_id = {v.video.video_id: v for v in videos}
    rows = []
    for (domain, seed), g in scores.groupby(["domain", "seed"]):
        labelled = [(by_id[vid], gg.sort_values("segment")["score"].to_numpy()) for vid, gg in g.groupby("video_id")]
        name, value = protocol_metric(labelled, tvsum_protocol=tvsum_protocol)
        rows.append({"domain": domain, "seed": int(seed), "metric": name, "value": value, "videos": len(labelled)})
    return pd.DataFrame(rows, columns=["domain", "seed", "metric", "value", "videos"])
