"""Stage 2a from the cache: train co-occurrence heads per domain (or jointly), seeds in parallel on Dask.

    metrics = train_heads(TrainSpec(cache="CACHE"), "RUN")    # writes a run directory (hl.pipelines.run)

Nothing is chosen on the test split: training runs a fixed number of epochs (or stops early on validation
videos carved out of the training videos with ``val_fraction``), and every seed is reported.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from hl.common import HLError
from hl.heads.fit import HeadConfig, Video, fit, save
from hl.heads.presets import merge_fields, preset_fields
from hl.heads.ridge import RidgeConfig, fit_ridge, save_ridge
from hl.heads.segment_heads import score_head
from hl.heads.selection import SelectionConfig, choose, chosen_config, fold_curve, folds_for

from ..cache import FeatureStore
from ..cluster import run_tasks
from ..run import JOINT, Run, RunConfig, feature_origins, segment_windows
from .evaluate import VideoLabels, evaluate_scores, manifest_labels, protocol_metric
from .feature_choice import segment_features

log = logging.getLogger(__name__)


@dataclass
class TrainSpec:
    cache: str
    manifest: str | None = None  # default: CACHE/manifest.parquet
    # None: chosen from what the cache holds (hl.pipelines.stages.feature_choice: i3d + i3d_flow and pann first)
    visual: tuple[str, ...] | None = None
    audio: tuple[str, ...] | None = None
    domains: tuple[str, ...] | None = None  # None: every domain in the manifest
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    joint: bool = False  # one model over all training domains instead of one per domain
    val_fraction: float = 0.0  # >0: carve validation videos out of the training videos, stop early on them
    track_test: bool = False  # score the test videos after every epoch (the papers' best-epoch protocol only)
    select: dict | None = None  # SelectionConfig fields: choose the setting and epochs on the training videos
    head: dict = field(default_factory=dict)  # HeadConfig fields overriding the defaults (arch: {...} too);
    # {"model": "ridge", ...RidgeConfig fields} for the ridge baseline
    preset: str | None = None  # a named setting (hl.heads.presets) in place of the defaults; `head` on top

    @property
    def ridge(self) -> bool:
        return self.head.get("model") == "ridge"

    def head_config(self) -> HeadConfig | RidgeConfig:
        if self.ridge:
            if self.preset is not None:
                raise HLError(f"the ridge model takes no preset (got {self.preset!r})")
            return RidgeConfig.from_dict(self.head)
        base = HeadConfig().to_dict()
        if self.preset is not None:
            try:
                base = merge_fields(base, preset_fields(self.preset))
            except ValueError as exc:
                raise HLError(str(exc)) from None
        return HeadConfig.from_dict(merge_fields(base, self.head))

    @property
    def manifest_path(self) -> Path:
        return Path(self.manifest) if self.manifest else Path(self.cache) / "manifest.parquet"


@dataclass
class LabelledVideo:
    """A manifest video with its cached features: what training reads."""

    video: Video
    labels: VideoLabels

    @property
    def domain(self) -> str:
        return self.labels.domain

    @property
    def split(self) -> str:
        return self.labels.split


def recipe_record(spec: TrainSpec) -> dict:
    """What set the run's head and why, in words a person reads in RUN/config.json ("training" -> "recipe")."""
    if spec.ridge:
        source, why = "ridge", ("the linear baseline (hl.heads.ridge); its alpha is chosen per domain by validation "
                                "on the training videos")
    elif spec.select is not None:
        source, why = "select", ("per domain, the setting and epoch count with the highest validation figure (the "
                                 "dataset's metric) on folds of the training videos; what was chosen and its table "
                                 "are in RUN/selection/")
    elif spec.preset is not None:
        source, why = "preset", (f"the named setting {spec.preset!r} (hl.heads.presets), as its source states it; "
                                 "not tuned on this data")
    else:
        source, why = "shipped", ("the shipped recipe (hl.heads.fit.HeadConfig): fixed, chosen once by "
                                  "cross-validation pooled over TVSum's ten domains and measured on TVSum and "
                                  "YouTube Highlights; not tuned on this data (--select tunes it per domain by "
                                  "validation on the training videos)")
    record = {"source": source, "why": why, "overrides": dict(spec.head)}
    if spec.val_fraction > 0 and not spec.ridge:
        record["early_stopping"] = (f"{spec.val_fraction:g} of each domain's training videos held out; training "
                                    "stops on their validation loss")
    return record


def absolute_paths(spec):
    """`spec` with its cache and manifest paths made absolute: the tasks run on workers whose working directory
    is not the caller's."""
    return replace(spec, cache=os.path.abspath(spec.cache),
                   manifest=os.path.abspath(spec.manifest) if spec.manifest else spec.manifest)


def read_manifest_at(path: Path) -> pd.DataFrame:
    from hl.data_manifests.schema import read_manifest, validate

    if not path.exists():
        raise HLError(f"{path}: no manifest (pass --manifest, or import one into the cache)")
    try:
        manifest = read_manifest(path)
        validate(manifest)
    except (ValueError, KeyError) as exc:
        reason = str(exc).strip("'\"")
        raise HLError(f"{path}: {reason}") from None
    return manifest


def load_videos(store: FeatureStore, manifest: pd.DataFrame, visual: Sequence[str],
                audio: Sequence[str]) -> tuple[list[LabelledVideo], list[str]]:
    """Labelled videos for every manifest video whose features are cached. Returns (videos, missing ids).

    Features and labels are cropped to the shorter of the two (released features can differ by a clip)."""
    videos, missing = [], []
    for labels in manifest_labels(manifest):
        vid = labels.video_id
        v = store.stack(vid, visual)
        if v is None:
            missing.append(vid)
            continue
        a = store.stack(vid, audio) if audio else None
        n = min(len(labels.labels), len(v[0]))
        audio_x = None
        if a is not None and a[1][:n].any():
            audio_x = a[0][:n].copy()
            audio_x[~a[1][:n]] = 0.0
        videos.append(LabelledVideo(Video(vid, v[0][:n], audio_x, labels.labels[:n]), labels))
    return videos, missing


def resolve_domains(manifest: pd.DataFrame, requested: Sequence[str] | None) -> list[str]:
    """The requested domains (all of the manifest's when None), checked against the manifest."""
    present = set(manifest["domain"].unique())
    domains = sorted(present) if not requested else list(requested)
    unknown = set(domains) - present
    if unknown:
        raise HLError(f"domains not in the manifest: {', '.join(sorted(unknown))}")
    return domains


def domain_manifest(manifest: pd.DataFrame, domain: str, domains: Sequence[str] | None) -> pd.DataFrame:
    """The rows a task of `domain` trains and tests on (the joint model: every requested domain)."""
    if domain != JOINT:
        return manifest[manifest["domain"] == domain]
    return manifest[manifest["domain"].isin(domains)] if domains else manifest


def _carve_validation(train: list[LabelledVideo], fraction: float, seed: int):
    if fraction <= 0 or len(train) < 2:
        return train, []
    rng = np.random.default_rng(seed)
    k = min(len(train) - 1, max(1, int(round(fraction * len(train)))))
    pick = set(rng.choice(len(train), size=k, replace=False).tolist())
    return [v for i, v in enumerate(train) if i not in pick], [v for i, v in enumerate(train) if i in pick]


def _task_videos(spec: TrainSpec, domain: str) -> tuple[list[LabelledVideo], list[LabelledVideo]]:
    """(training videos, test videos) of one task's domain (or of the joint model), in a fixed order."""
    manifest = domain_manifest(read_manifest_at(spec.manifest_path), domain, spec.domains)
    videos, _ = load_videos(FeatureStore(spec.cache), manifest, spec.visual, spec.audio)
    train = [v for v in videos if v.split == "train"]
    if not train:
        raise HLError(f"domain {domain!r}: no training videos with cached features")
    return train, [v for v in videos if v.split == "test"]


def selection_task(spec: TrainSpec, domain: str, candidate: int, fold: int, threads: int = 1) -> dict:
    """One candidate setting trained on the training videos outside one validation fold, scored on that fold
    after every few epochs (the dataset's metric). Runs on a worker; never sees a test video."""
    import torch

    torch.set_num_threads(max(1, threads))
    t0 = time.perf_counter()
    train, _ = _task_videos(spec, domain)
    sel = SelectionConfig.from_dict(spec.select)
    held = folds_for(len(train), sel)[fold]
    curve = fold_curve([v.video for v in train], held, spec.head_config(), sel.grid[candidate], sel,
                       validation_metric(train))
    return {"domain": domain, "candidate": candidate, "fold": fold, "curve": curve,
            "label": f"selection: setting {candidate}, fold {fold}", "seconds": time.perf_counter() - t0}


def train_task(spec: TrainSpec, run_dir: str, domain: str, seed: int, chosen: dict | None = None,
               threads: int = 1) -> dict:
    """Train one head (one domain, or the joint model) for one seed; score its test videos. Runs on a worker.
    ``chosen``: the setting and epochs the selection chose for the domain ({"setting", "epochs"})."""
    import torch

    torch.set_num_threads(max(1, threads))
    t0 = time.perf_counter()
    run = Run.open(run_dir)
    train, test = _task_videos(spec, domain)
    config = spec.head_config()
    if chosen is not None:
        sel = SelectionConfig.from_dict(spec.select)
        config = chosen_config(config, chosen["setting"], chosen["epochs"], sel)
        if sel.final == "folds":
            return _fold_heads(run, train, test, config, sel, domain, seed, t0)
    if isinstance(config, RidgeConfig):
        model, record = fit_ridge([v.video for v in train], config, seed=seed, metric=validation_metric(train))
        save_ridge(model, config, run.model_path(domain, seed))
        run.write_selection(domain, seed, record)
        return {"domain": domain, "seed": seed, "scores": _score_rows(model, test, seed), "train_videos": len(train),
                "val_videos": 0, "test_videos": len(test), "epochs": 0, "seconds": time.perf_counter() - t0}
    fit_train, val = _carve_validation(train, spec.val_fraction, seed)
    if val and config.patience is None:
        config.patience = 10
    tracked: list[dict] = []

    def track(epoch: int, model) -> None:  # the papers' protocol: test scores after every epoch, kept apart
        tracked.extend({**r, "epoch": epoch} for r in _score_rows(model, test, seed))

    model, history = fit([v.video for v in fit_train], config, seed=seed, val=[v.video for v in val] or None,
                         watch=track if spec.track_test and test else None)
    save(model, config, run.model_path(domain, seed))
    run.write_history(domain, seed, history)
    rows = _score_rows(model, test, seed)
    return {"domain": domain, "seed": seed, "scores": rows, "epoch_scores": tracked, "train_videos": len(fit_train),
            "val_videos": len(val), "test_videos": len(test), "epochs": len(history),
            "seconds": time.perf_counter() - t0}


def _fold_heads(run: Run, train, test, config: HeadConfig, sel: SelectionConfig, domain: str, seed: int,
                t0: float) -> dict:
    """``final="folds"``: one head per validation fold (trained on the other folds), their test scores averaged;
    the run keeps every fold head (``seed<k>-fold<j>.pt``), and inference averages them."""
    folds = folds_for(len(train), sel)
    scores = []
    for j, held in enumerate(folds):
        fit_on = [v.video for i, v in enumerate(train) if i not in set(held)]
        model, history = fit(fit_on, config, seed=seed)
        save(model, config, run.model_path(domain, seed).with_name(f"seed{int(seed)}-fold{j}.pt"))
        run.write_history(domain, seed, history)
        scores.append(_score_rows(model, test, seed))
    rows = [{**r, "score": float(np.mean([s[i]["score"] for s in scores]))} for i, r in enumerate(scores[0])]
    return {"domain": domain, "seed": seed, "scores": rows, "train_videos": len(train), "val_videos": 0,
            "test_videos": len(test), "epochs": config.epochs, "seconds": time.perf_counter() - t0}


def select_settings(spec: TrainSpec, run: Run, domains: Sequence[str], videos: Sequence[LabelledVideo],
                    scheduler: str | None, workers: int, progress) -> dict[str, dict | None]:
    """Run the selection of every domain (one Dask task per domain x setting x fold), write each domain's
    record to the run, and return {domain: {"setting", "epochs"} or None when it has too few videos}."""
    sel = SelectionConfig.from_dict(spec.select)
    base = spec.head_config()
    n_train = {d: sum(v.split == "train" and (d == JOINT or v.domain == d) for v in videos) for d in domains}
    jobs = [(spec, d, c, j) for d in domains for c in range(len(sel.grid))
            for j in range(len(folds_for(n_train[d], sel)))]
    results = run_tasks(selection_task, jobs, None if scheduler is None else scheduler, workers, "hl-select",
                        progress)
    chosen: dict[str, dict | None] = {}
    for d in domains:
        curves: dict[int, list] = {}
        for r in sorted((r for r in results if r["domain"] == d), key=lambda r: (r["candidate"], r["fold"])):
            curves.setdefault(r["candidate"], []).append(r["curve"])
        if not curves:
            chosen[d] = None
            run.write_selection(d, None, {"chosen": None, "reason": f"{n_train[d]} training video(s): too few to "
                                          f"hold any out; the base setting, {base.epochs} epochs"})
            continue
        setting, epochs, record = choose(curves, base, sel)
        chosen[d] = {"setting": setting, "epochs": epochs}
        run.write_selection(d, None, {"train_videos": n_train[d], "folds": len(folds_for(n_train[d], sel)),
                                      "final": sel.final, **record})
    return chosen


def with_cached_features(spec: TrainSpec, store: FeatureStore, video_ids: Sequence[str]
                         ) -> tuple[TrainSpec, dict | None]:
    """`spec` with the visual/audio features it leaves open (None) chosen from what the cache holds for
    `video_ids`, and a record of that choice (None when the spec named both)."""
    if spec.visual is not None and spec.audio is not None:
        return spec, None
    visual, audio = segment_features(store, video_ids)
    chosen = {"visual": list(spec.visual) if spec.visual is not None else list(visual.names),
              "audio": list(spec.audio) if spec.audio is not None else list(audio.names)}
    record = {"from_cache": [k for k in ("visual", "audio") if getattr(spec, k) is None], **chosen,
              "line": ", ".join(c.describe(k) for k, c in (("visual", visual), ("audio", audio))
                                if getattr(spec, k) is None)}
    return replace(spec, visual=tuple(chosen["visual"]), audio=tuple(chosen["audio"])), record


def validation_metric(videos: Sequence[LabelledVideo]):
    """metric(indices into `videos`, their scores) -> the dataset's protocol figure over those videos (the mean
    over their domains): how validation on training videos is scored, never loss."""

    def metric(idx: Sequence[int], scores: Sequence[np.ndarray]) -> float:
        by_domain: dict[str, list] = {}
        for i, s in zip(idx, scores):
            by_domain.setdefault(videos[i].domain, []).append((videos[i].labels, np.asarray(s)))
        return float(np.mean([protocol_metric(pairs)[1] for pairs in by_domain.values()]))

    return metric


def _score_rows(model, test: Sequence[LabelledVideo], seed: int) -> list[dict]:
    if not test:
        return []
    scores = score_head(model, [v.video for v in test])
    return [{"video_id": v.video.video_id, "domain": v.domain, "seed": seed, "segment": i, "score": float(x)}
            for v, s in zip(test, scores) for i, x in enumerate(s)]


def train_heads(spec: TrainSpec, run_dir: str | Path, scheduler: str | None = None, workers: int | None = None,
                progress: Callable[[dict, int, int], None] | None = None,
                notice: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Train every (domain, seed) head as parallel Dask tasks, score the test videos, compute the metrics.
    Features the spec leaves open are chosen from the cache; `notice` receives the one line saying which.
    Returns the metrics table (also written to RUN/metrics.parquet)."""
    if not spec.seeds:
        raise HLError("no seeds given (--seeds)")
    if spec.ridge and (spec.track_test or spec.val_fraction > 0):
        raise HLError("the ridge model has no epochs: it takes neither --track-test nor --val-fraction (it chooses "
                      "its alpha by validation on the training videos itself)")
    spec, run_dir = absolute_paths(spec), os.path.abspath(run_dir)  # workers may run in another directory
    manifest = read_manifest_at(spec.manifest_path)
    store = FeatureStore(spec.cache)
    domains = resolve_domains(manifest, spec.domains)
    manifest = manifest[manifest["domain"].isin(domains)]
    spec, chosen = with_cached_features(spec, store, sorted(manifest["video_id"].unique()))
    if chosen is not None and notice is not None:
        notice(f"features chosen from the cache: {chosen['line']}")
    if not spec.visual:
        raise HLError("no visual features named (--visual)")
    if not spec.audio and not spec.ridge and "model" not in spec.head.get("arch", {}):
        # no audio stream: the visual-only model, not the co-occurrence one (which needs audio)
        spec = replace(spec, head={**spec.head, "arch": {**spec.head.get("arch", {}), "model": "v"}})
    videos, missing = load_videos(store, manifest, spec.visual, spec.audio)
    if not videos:
        raise HLError(f"{spec.cache}: no cached {'+'.join(spec.visual)} features for the manifest's videos")
    if missing:
        log.warning("%d manifest videos have no cached features and are left out: %s", len(missing),
                    ", ".join(missing[:5]))
    trained_on = [v.video.video_id for v in videos if v.split == "train"]
    run = Run.create(run_dir, RunConfig(
        kind="segment", visual=list(spec.visual), audio=list(spec.audio),
        features=feature_origins(store, trained_on, [*spec.visual, *spec.audio]),
        segments=segment_windows(store, trained_on, spec.visual[0], manifest),
        cache=str(spec.cache), manifest=str(spec.manifest_path), domains=domains, seeds=list(spec.seeds),
        joint=spec.joint, head=spec.head_config().to_dict(),
        training={"spec": asdict(spec), "missing_videos": missing, "features_chosen": chosen,
                  "recipe": recipe_record(spec)},
    ))
    trained = [JOINT] if spec.joint else domains
    picked: dict[str, dict | None] = {}
    if spec.select is not None and not spec.ridge:
        picked = select_settings(spec, run, trained, videos, scheduler, workers or os.cpu_count() or 1, progress)
    jobs = [(spec, str(run.path), d, s, picked.get(d)) for d in trained for s in spec.seeds]
    results = run_tasks(train_task, jobs, scheduler, workers or os.cpu_count() or 1, "hl-train", progress)
    scores = run.write_results(results)
    metrics = evaluate_scores(scores, [v.labels for v in videos])
    run.write_metrics(metrics)
    return metrics
