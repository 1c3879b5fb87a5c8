"""Evaluation: a run's stored test scores against the labels of its manifest, under each dataset's protocol.

The protocol follows the manifest's ``dataset`` column:

* ``tvsum``: top-5 mAP per annotator (labels: each annotator's score > that annotator's median), the mean over
  videos then over the 20 annotators (:func:`hl.heads.metrics.tvsum_map`)
* ``youtube``: mAP with label = match > 0 (:func:`hl.heads.metrics.youtube_map`)
* anything else (CoSum, user CSVs, synthetic): mean over videos of the AP of the binary labels

Two readings of a run trained with several seeds: each seed's heads alone (mean +- std over the seeds), and the
mean of the seeds' scores segment by segment (:func:`evaluate_seed_mean`), which is the model ``hl highlights``
and ``hl predict`` score with. Labels come from the manifest alone: evaluating reads no features.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hl.common import HLError
from hl.heads.metrics import average_precision, tvsum_map, youtube_map

from ..run import Run

TVSUM_PROTOCOL = "umt"  # or "mini-net": see hl.heads.metrics


@dataclass
class VideoLabels:
    """One manifest video's labels, as the protocols read them."""

    video_id: str
    domain: str
    split: str
    dataset: str
    labels: np.ndarray  # [T] float32 0/1, in segment order
    scores: np.ndarray | None  # [T, A] raw annotator scores (TVSum) or [T, 1] match (YouTube); None if absent


def manifest_labels(manifest: pd.DataFrame) -> list[VideoLabels]:
    """One :class:`VideoLabels` per manifest video, sorted by id."""
    out = []
    for vid, rows in manifest.groupby("video_id", sort=True):
        rows = rows.sort_values("segment")
        raw = rows["scores"].tolist()
        scores = np.asarray(raw, dtype=np.float32) if all(r is not None for r in raw) else None
        if scores is not None and scores.ndim == 1:
            scores = scores[:, None]
        first = rows.iloc[0]
        out.append(VideoLabels(str(vid), str(first["domain"]), str(first["split"]), str(first["dataset"]),
                               rows["label"].to_numpy().astype(np.float32), scores))
    return out


def protocol_metric(labelled: Sequence[tuple[VideoLabels, np.ndarray]], tvsum_protocol: str = TVSUM_PROTOCOL
                    ) -> tuple[str, float]:
    """(metric name, value) for [(VideoLabels, scores [T])] of one domain."""
    datasets = {v.dataset for v, _ in labelled}
    if len(datasets) != 1:
        raise HLError(f"one domain's test videos come from several datasets: {sorted(datasets)}")
    dataset = datasets.pop()
    if dataset == "tvsum" and all(v.scores is not None and v.scores.shape[1] > 1 for v, _ in labelled):
        pairs = [(s[: len(v.scores)], v.scores[: len(s)]) for v, s in labelled]
        return "top5_mAP", tvsum_map(pairs, protocol=tvsum_protocol)
    if dataset == "youtube" and all(v.scores is not None for v, _ in labelled):
        return "mAP", youtube_map([(s, v.scores[: len(s), 0]) for v, s in labelled])
    return "mAP", float(np.mean([average_precision(s, v.labels[: len(s)]) for v, s in labelled]))


def evaluate_scores(scores: pd.DataFrame, labels: Iterable[VideoLabels], tvsum_protocol: str = TVSUM_PROTOCOL
                    ) -> pd.DataFrame:
    """One row per (domain, seed) of `scores` (video_id, domain, seed, segment, score): the dataset's metric
    over that domain's test videos."""
    by_id = {v.video_id: v for v in labels}
    rows = []
    for (domain, seed), g in scores.groupby(["domain", "seed"]):
        missing = sorted(set(g["video_id"]) - set(by_id))
        if missing:
            raise HLError(f"no labels for scored videos {', '.join(missing[:3])} (not in the manifest)")
        labelled = [(by_id[vid], gg.sort_values("segment")["score"].to_numpy()) for vid, gg in g.groupby("video_id")]
        name, value = protocol_metric(labelled, tvsum_protocol=tvsum_protocol)
        rows.append({"domain": domain, "seed": int(seed), "metric": name, "value": value, "videos": len(labelled)})
    return pd.DataFrame(rows, columns=["domain", "seed", "metric", "value", "videos"])


def run_test_scores(run: Run | str | Path) -> tuple[pd.DataFrame, list[VideoLabels]]:
    """The run's stored test scores (video_id, domain, seed, segment, score) and the labels of those videos from
    the run's manifest; a one-line HLError when there are none."""
    from hl.data_manifests.schema import read_manifest

    run = run if isinstance(run, Run) else Run.open(run)
    scores = run.scores()
    if scores.empty:
        raise HLError(f"{run.path}: the run scored no test videos (its manifest puts none of the trained domains' "
                      f"videos in split 'test'; UMT's split files call the test set 'val': import them with "
                      f"`hl import umt --splits`, which reads them so)")
    if not run.manifest_path.is_file():
        raise HLError(f"{run.path}: its manifest {run.manifest_path} is gone")
    manifest = read_manifest(run.manifest_path)
    return scores, manifest_labels(manifest[manifest["video_id"].isin(scores["video_id"].unique())])


def evaluate_run(run: Run | str | Path, tvsum_protocol: str = TVSUM_PROTOCOL) -> pd.DataFrame:
    """One row per (domain, seed) of the run's stored test scores under the dataset's protocol."""
    return evaluate_scores(*run_test_scores(run), tvsum_protocol)


SEED_MEAN = -1  # the ``seed`` of the rows of evaluate_seed_mean


def evaluate_seed_mean(scores: pd.DataFrame, labels: Iterable[VideoLabels], tvsum_protocol: str = TVSUM_PROTOCOL
                       ) -> pd.DataFrame:
    """One row per domain (``seed`` -1): the metric of the mean score over the run's seeds, segment by segment:
    the model ``hl highlights`` and ``hl predict`` score with (the mean over a domain's heads)."""
    mean = scores.groupby(["video_id", "domain", "segment"], as_index=False)["score"].mean()
    return evaluate_scores(mean.assign(seed=SEED_MEAN), labels, tvsum_protocol)


def evaluate_run_seed_mean(run: Run | str | Path, tvsum_protocol: str = TVSUM_PROTOCOL) -> pd.DataFrame:
    """:func:`evaluate_seed_mean` of the run's stored test scores."""
    return evaluate_seed_mean(*run_test_scores(run), tvsum_protocol)


BEST_EPOCH_HEADING = "best epoch picked on the test videos (the papers' protocol; optimistic)"


def evaluate_best_epoch(run: Run | str | Path, tvsum_protocol: str = TVSUM_PROTOCOL) -> pd.DataFrame:
    """The papers' protocol, never hl's figure: for each (domain, seed) the best metric over the epochs whose
    test scores the run tracked (``hl train-head --track-test``), with that ``epoch``. It picks on the test
    videos, so it is optimistic; report it only under :data:`BEST_EPOCH_HEADING`."""
    from hl.data_manifests.schema import read_manifest

    run = run if isinstance(run, Run) else Run.open(run)
    tracked = run.epoch_scores()
    if not run.manifest_path.is_file():
        raise HLError(f"{run.path}: its manifest {run.manifest_path} is gone")
    manifest = read_manifest(run.manifest_path)
    labels = manifest_labels(manifest[manifest["video_id"].isin(tracked["video_id"].unique())])
    per_epoch = []
    for epoch, g in tracked.groupby("epoch"):
        m = evaluate_scores(g.drop(columns="epoch"), labels, tvsum_protocol)
        per_epoch.append(m.assign(epoch=int(epoch)))
    table = pd.concat(per_epoch, ignore_index=True)
    best = table.sort_values(["value", "epoch"], ascending=[False, True]).drop_duplicates(["domain", "seed"])
    return best.sort_values(["domain", "seed"]).reset_index(drop=True)


def summary_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per domain mean +- std over seeds, and the overall row (per seed the mean over domains, then mean +- std)."""
    per = metrics.groupby("domain")["value"].agg(["mean", "std", "count"]).reset_index()
    overall = metrics.groupby("seed")["value"].mean()
    per.loc[len(per)] = ["MEAN", overall.mean(), overall.std(ddof=1) if len(overall) > 1 else 0.0, len(overall)]
    per["std"] = per["std"].fillna(0.0)
    return per


def summary_dict(metrics: pd.DataFrame) -> dict:
    """The summary as plain JSON values: the metric's name, per domain mean/std/count and the per-seed values,
    and the overall mean/std over seeds."""
    table = summary_table(metrics)
    name = str(metrics["metric"].iloc[0]) if len(metrics) else "metric"
    per_seed = {d: {str(int(s)): float(v) for s, v in zip(g["seed"], g["value"])}
                for d, g in metrics.groupby("domain")}
    domains = {str(r["domain"]): {"mean": float(r["mean"]), "std": float(r["std"]), "seeds": per_seed[r["domain"]]}
               for _, r in table.iloc[:-1].iterrows()}
    last = table.iloc[-1]
    return {"metric": name, "domains": domains, "mean": float(last["mean"]), "std": float(last["std"]),
            "seeds": int(last["count"])}
