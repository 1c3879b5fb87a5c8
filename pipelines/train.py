"""Stage 2a from the cache: train co-occurrence heads per domain (or jointly), seeds in parallel on Dask.

A run directory holds everything a later step needs::

    RUN/config.json                     features, head config, seeds, domains, cache and manifest used
    RUN/models/<domain>/seed<k>.pt      one head per (domain, seed); domain "joint" for a joint model
    RUN/scores.parquet                  test-split scores: video_id, domain, seed, segment, score
    RUN/metrics.parquet                 one row per (domain, seed): the dataset's protocol metric
    RUN/history/<domain>-seed<k>.json   per-epoch training losses

Nothing is chosen on the test split: training runs a fixed number of epochs (or stops early on validation
videos carved out of the training videos with ``val_fraction``), and every seed is reported.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hl.heads.fit import HeadConfig, Video, fit, save, score

from .cache import FeatureStore
from .cluster import run_tasks
from .protocols import evaluate_scores

log = logging.getLogger(__name__)

JOINT = "joint"


class TrainError(RuntimeError):
    """A problem with the request (missing features, empty split, ...): one line for the user."""


@dataclass
class TrainSpec:
    cache: str
    manifest: str | None = None  # default: CACHE/manifest.parquet
    visual: tuple[str, ...] = ("i3d", "i3d_flow")
    audio: tuple[str, ...] = ("pann",)
    domains: tuple[str, ...] | None = None  # None: every domain in the manifest
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    joint: bool = False  # one model over all training domains instead of one per domain
    val_fraction: float = 0.0  # >0: carve validation videos out of the training videos, stop early on them
    head: dict = field(default_factory=dict)  # HeadConfig fields overriding the defaults (arch: {...} too)

    def head_config(self) -> HeadConfig:
        base = HeadConfig().to_dict()
        for k, v in self.head.items():
            if k == "arch":
                base["arch"].update(v)
            else:
                base[k] = v
        return HeadConfig.from_dict(base)


@dataclass
class LabelledVideo:
    video: Video
    domain: str
    split: str
    dataset: str
    scores: np.ndarray | None  # raw annotator scores [T, A] (TVSum) or match [T, 1] (YouTube)


def read_manifest_for(spec: TrainSpec) -> pd.DataFrame:
    from hl.data_manifests.schema import read_manifest

    path = Path(spec.manifest) if spec.manifest else Path(spec.cache) / "manifest.parquet"
    if not path.exists():
        raise TrainError(f"{path}: no manifest (pass --manifest, or import one into the cache)")
    return read_manifest(path)


def _stack(store: FeatureStore, video_id: str, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Concatenate the features of `names` for one video -> ([T, D], valid [T]); None if any is missing."""
    parts, valid = [], []
    for name in names:
        try:
            parts.append(store.features(video_id, name))
            valid.append(store.valid(video_id, name))
        except KeyError:
            return None
    n = min(len(p) for p in parts)
    return (np.concatenate([p[:n] for p in parts], axis=1),
            np.logical_and.reduce([v[:n] for v in valid]))


def load_videos(store: FeatureStore, manifest: pd.DataFrame, visual: Sequence[str],
                audio: Sequence[str]) -> tuple[list[LabelledVideo], list[str]]:
    """Labelled videos for every manifest video whose features are cached. Returns (videos, missing ids).

    Features and labels are cropped to the shorter of the two (released features can differ by a clip)."""
    videos, missing = [], []
    for vid, rows in manifest.groupby("video_id", sort=True):
        rows = rows.sort_values("segment")
        v = _stack(store, vid, visual)
        if v is None:
            missing.append(vid)
            continue
        a = _stack(store, vid, audio) if audio else None
        n = min(len(rows), len(v[0]))
        audio_x = None
        if a is not None and a[1][:n].any():
            audio_x = a[0][:n].copy()
            audio_x[~a[1][:n]] = 0.0
        raw = rows["scores"].iloc[:n].tolist()
        scores = np.asarray(raw, dtype=np.float32) if all(r is not None for r in raw) else None
        if scores is not None and scores.ndim == 1:
            scores = scores[:, None]
        first = rows.iloc[0]
        videos.append(LabelledVideo(
            Video(vid, v[0][:n], audio_x, rows["label"].to_numpy()[:n].astype(np.float32)),
            str(first["domain"]), str(first["split"]), str(first["dataset"]), scores,
        ))
    return videos, missing


def resolve_domains(manifest: pd.DataFrame, requested: Sequence[str] | None) -> list[str]:
    """The requested domains (all of the manifest's when None), checked against the manifest."""
    present = set(manifest["domain"].unique())
    domains = sorted(present) if not requested else list(requested)
    unknown = set(domains) - present
    if unknown:
        raise TrainError(f"domains not in the manifest: {', '.join(sorted(unknown))}")
    return domains


def _carve_validation(train: list[LabelledVideo], fraction: float, seed: int):
    if fraction <= 0 or len(train) < 2:
        return train, []
    rng = np.random.default_rng(seed)
    k = min(len(train) - 1, max(1, int(round(fraction * len(train)))))
    pick = set(rng.choice(len(train), size=k, replace=False).tolist())
    return [v for i, v in enumerate(train) if i not in pick], [v for i, v in enumerate(train) if i in pick]


def train_task(spec: TrainSpec, run_dir: str, domain: str, seed: int, threads: int = 1) -> dict:
    """Train one head (one domain, or the joint model) for one seed; score its test videos. Runs on a worker."""
    import torch

    torch.set_num_threads(max(1, threads))
    t0 = time.perf_counter()
    store = FeatureStore(spec.cache)
    manifest = read_manifest_for(spec)
    if domain != JOINT:
        manifest = manifest[manifest["domain"] == domain]
    elif spec.domains:
        manifest = manifest[manifest["domain"].isin(spec.domains)]
    videos, _ = load_videos(store, manifest, spec.visual, spec.audio)
    train = [v for v in videos if v.split == "train"]
    test = [v for v in videos if v.split == "test"]
    if not train:
        raise TrainError(f"domain {domain!r}: no training videos with cached features")
    config = spec.head_config()
    fit_train, val = _carve_validation(train, spec.val_fraction, seed)
    if val and config.patience is None:
        config.patience = 10
    model, history = fit([v.video for v in fit_train], config, seed=seed, val=[v.video for v in val] or None)
    out = Path(run_dir)
    (out / "models" / domain).mkdir(parents=True, exist_ok=True)
    save(model, config, out / "models" / domain / f"seed{seed}.pt")
    (out / "history").mkdir(exist_ok=True)
    (out / "history" / f"{domain}-seed{seed}.json").write_text(json.dumps(history))
    scores = score(model, [v.video for v in test]) if test else []
    rows = []
    for v, s in zip(test, scores):
        rows.extend({"video_id": v.video.video_id, "domain": v.domain, "seed": seed, "segment": i,
                     "score": float(x)} for i, x in enumerate(s))
    return {"domain": domain, "seed": seed, "scores": rows, "train_videos": len(fit_train),
            "val_videos": len(val), "test_videos": len(test), "epochs": len(history),
            "seconds": time.perf_counter() - t0}


def train_heads(spec: TrainSpec, run_dir: str | Path, scheduler: str | None = None, workers: int | None = None,
                progress: Callable[[dict, int, int], None] | None = None) -> pd.DataFrame:
    """Train every (domain, seed) head as parallel Dask tasks, score the test videos, compute the metrics.
    Returns the metrics table (also written to RUN/metrics.parquet)."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest_for(spec)
    store = FeatureStore(spec.cache)
    domains = resolve_domains(manifest, spec.domains)
    videos, missing = load_videos(store, manifest[manifest["domain"].isin(domains)], spec.visual, spec.audio)
    if not videos:
        raise TrainError(f"{spec.cache}: no cached {'+'.join(spec.visual)} features for the manifest's videos")
    if missing:
        log.warning("%d manifest videos have no cached features and are left out: %s", len(missing),
                    ", ".join(missing[:5]))
    config = spec.head_config()
    (run / "config.json").write_text(json.dumps({
        "spec": asdict(spec), "head": config.to_dict(), "domains": domains,
        "manifest": str(Path(spec.manifest) if spec.manifest else Path(spec.cache) / "manifest.parquet"),
        "missing_videos": missing,
    }, indent=2))
    jobs = [(d, s) for d in ([JOINT] if spec.joint else domains) for s in spec.seeds]

    results = run_tasks(train_task, [(spec, str(run), d, s) for d, s in jobs], scheduler,
                        workers or os.cpu_count() or 1, "hl-train", progress)
    return write_run_outputs(run, results, videos)


def write_run_outputs(run: Path, results: list[dict], videos) -> pd.DataFrame:
    """RUN/scores.parquet (every test segment's score), RUN/tasks.parquet (one row per task) and
    RUN/metrics.parquet (``evaluate_scores`` against ``videos``) from the tasks' results; returns the metrics."""
    scores = pd.DataFrame([r for res in results for r in res["scores"]],
                          columns=["video_id", "domain", "seed", "segment", "score"])
    scores = scores.sort_values(["domain", "seed", "video_id", "segment"]).reset_index(drop=True)
    scores.to_parquet(run / "scores.parquet", index=False)
    pd.DataFrame([{k: v for k, v in r.items() if k != "scores"} for r in results]).sort_values(
        ["domain", "seed"]).to_parquet(run / "tasks.parquet", index=False)
    metrics = evaluate_scores(scores, videos)
    metrics.to_parquet(run / "metrics.parquet", index=False)
    return metrics


def summary_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per domain mean +- std over seeds, and the overall row (per seed the mean over domains, then mean +- std)."""
    per = metrics.groupby("domain")["value"].agg(["mean", "std", "count"]).reset_index()
    overall = metrics.groupby("seed")["value"].mean()
    per.loc[len(per)] = ["MEAN", overall.mean(), overall.std(ddof=1) if len(overall) > 1 else 0.0, len(overall)]
    per["std"] = per["std"].fillna(0.0)
    return per
