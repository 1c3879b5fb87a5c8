"""Stage 1 on Dask: one task per video, every extractor fed from one decoding pass, results cached.

The driver lists the videos, skips units already in the cache (same content fingerprint, config and
weights), and submits one task per remaining video to a Dask cluster: a ``LocalCluster`` by default, or an
existing scheduler. Workers load each model once per process and write their HDF5 files and index rows
themselves (atomically), so whatever finished before a crash stays finished.
"""
from __future__ import annotations

import itertools
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hl.common import HLError, StorageError, one_line
from hl.extract import segments as seg
from hl.extract.backbones import get_spec
from hl.extract.decode import VideoSource
from hl.extract.extractors import (
    EXTRACTORS,
    FALLBACKS,
    WEIGHT_FREE,
    ExtractorDef,
    RunSettings,
    extract_video,
    extractor_config,
    get_extractor,
    missing_weights,
    precision_notice,
    weights_for,
)
from hl.extract.weights import weights_hash

from ..cache import FeatureOrigin, FeatureStore, config_hash, fingerprint
from ..cluster import host_threads, run_tasks

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp",
                    ".ts", ".mts", ".ogv"}


@dataclass(frozen=True)
class VideoItem:
    video_id: str
    path: str
    segments: tuple[tuple[float, float], ...] | None = None  # manifest-given windows, else fixed


@dataclass(frozen=True)
class UnitPlan:
    """One extractor as the workers run it."""

    extractor: ExtractorDef
    weights: str | tuple[str, ...] | None  # a tuple for a backbone with parts: its own file, then the parts'
    weights_hash: str


@dataclass
class VideoOutcome:
    video_id: str
    path: str
    status: str  # "ok" | "failed" | "skipped"
    error: str = ""
    segments: int = 0
    seconds: float = 0.0
    extractors: list[str] = field(default_factory=list)
    stop: bool = False  # the cache cannot be written: the run ends (error says why)


@dataclass
class ExtractReport:
    outcomes: list[VideoOutcome]
    notices: list[str]
    wall_s: float

    @property
    def failed(self) -> list[VideoOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def computed(self) -> list[VideoOutcome]:
        return [o for o in self.outcomes if o.status == "ok"]

    @property
    def skipped(self) -> list[VideoOutcome]:
        return [o for o in self.outcomes if o.status == "skipped"]


# -- listing --------------------------------------------------------------------------------------------
def discover_videos(root: str | Path) -> list[VideoItem]:
    """Video files under `root` (recursively, hidden files skipped). The id is the path relative to `root`
    without extension, so equal names in different sub-folders stay distinct."""
    root = Path(os.path.abspath(root))  # the paths go to workers, which may run in another directory
    if root.is_file():
        return [VideoItem(root.stem, str(root))]
    if not root.is_dir():
        raise HLError(f"{root}: no such folder")
    items = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if p.suffix.lower() in VIDEO_EXTENSIONS:
            items.append(VideoItem(rel.with_suffix("").as_posix(), str(p)))
    return items


def attach_segments(items: list[VideoItem], manifest) -> list[VideoItem]:
    """Use the windows of a manifest (hl.data_manifests schema) for the videos it lists."""
    windows = {vid: tuple(map(tuple, g.sort_values("segment")[["start", "end"]].to_numpy().tolist()))
               for vid, g in manifest.groupby("video_id")}
    return [VideoItem(i.video_id, i.path, windows.get(i.video_id, windows.get(Path(i.path).stem))) for i in items]


def plan_extractors(names: Iterable[str] | None, weights_dir: str | Path | None, settings: RunSettings,
                    allow_random: bool = False, require: dict[str, FeatureOrigin] | None = None
                    ) -> tuple[list[UnitPlan], list[str]]:
    """Resolve extractor names into plans with their weights. Returns (plans, notices for the user).

    With no names: every pretrained extractor whose weights are present, else the weight-free ones.
    A named extractor without weights falls back (tased -> motion_saliency) or is an error, unless
    `allow_random` (random-init weights: for tests and benchmarks only).

    `require` ({extractor: FeatureOrigin}, what a trained run was fed) pins each extractor to the weights file
    with that sha256 (random weights where the run had them) and checks that `settings` give the same extractor
    settings; anything else is a one-line HLError: no fallback, nothing made differently."""
    if require:
        return [_required_plan(name, origin, weights_dir, settings) for name, origin in require.items()], []
    notices: list[str] = []
    if names is None:
        chosen = [d.name for d in EXTRACTORS.values()
                  if d.needs_weights and d.default and d.sampling != "window" and weights_for(d, weights_dir)]
        if not chosen:
            chosen = list(WEIGHT_FREE)
            notices.append(
                "NO PRETRAINED WEIGHTS FOUND: extracting weight-free features only (stats, stats_audio). "
                "They are far weaker than I3D/C3D/PANN features. See `hl weights list` / `hl weights download`."
            )
        names = chosen
    plans = []
    for name in names:
        d = _extractor(name)
        weights = weights_for(d, weights_dir)
        if d.needs_weights and weights is None and not allow_random:
            if name in FALLBACKS:
                notices.append(f"NO WEIGHTS FOR {name}: using the weight-free {FALLBACKS[name]} instead.")
                d = get_extractor(FALLBACKS[name])
            else:
                lacking = missing_weights(d, weights_dir)
                what = f" (it lacks {' and '.join(lacking)} weights)" if lacking != [d.backbone] else ""
                raise HLError(
                    f"no weights for {name!r} in the weights directory{what}: `hl weights download` or "
                    f"`hl weights add` them, or choose weight-free extractors (stats, stats_audio)"
                )
        elif d.needs_weights and weights is None:
            notices.append(f"RANDOM WEIGHTS FOR {name}: features are meaningless except for speed tests.")
        plans.append(UnitPlan(d, weights, weights_hash(weights)))
    return plans, notices


def _extractor(name: str) -> ExtractorDef:
    try:
        return get_extractor(name)
    except (KeyError, ValueError) as exc:
        raise HLError(str(exc).strip("'\"")) from None


def _required_plan(name: str, origin: FeatureOrigin, weights_dir: str | Path | None,
                   settings: RunSettings) -> UnitPlan:
    """The plan that makes `name` features of exactly `origin`."""
    from hl.extract.weights import weights_files

    d = _extractor(name)
    weights = None
    if d.needs_weights and origin.weights_hash != "none":
        parts = [b for _, b in get_spec(d.backbone).parts]
        if parts:  # every combination of the files present for the backbone and for each part
            present = [tuple(map(str, c)) for c in itertools.product(
                *(weights_files(b, weights_dir) for b in (d.backbone, *parts)))]
        else:
            present = [str(p) for p in weights_files(d.backbone, weights_dir)]
        weights = next((p for p in present if weights_hash(p) == origin.weights_hash), None)
        if weights is None:
            have = ", ".join(f"{_names(p)} ({weights_hash(p)[:12]})" for p in present) or "none"
            raise HLError(f"the run's {name} features come from weights with sha256 {origin.weights_hash[:12]}, "
                          f"which the weights directory does not hold (it has: {have}); add that file with "
                          f"`hl weights add`")
    planned = FeatureOrigin.from_config(name, extractor_config(d, settings, ""), weights_hash(weights))
    if planned.config_hash != origin.config_hash:
        differ = sorted(k for k in {*planned.config, *origin.config}
                        if planned.config.get(k) != origin.config.get(k))
        raise HLError(f"the run's {name} features were made with other extractor settings than hl makes now "
                      f"(they differ in {', '.join(differ)}); train the run again on features of this hl")
    return UnitPlan(d, weights, weights_hash(weights))


def _names(weights: str | tuple[str, ...]) -> str:
    return " + ".join(Path(p).name for p in (weights if isinstance(weights, tuple) else (weights,)))


def _segment_spec(item: VideoItem, segment_seconds: float) -> str:
    if item.segments is None:
        return f"fixed:{segment_seconds:g}"
    arr = np.asarray(item.segments, dtype=np.float64)
    return "manifest:" + config_hash({"w": np.round(arr, 4).tolist()})


# -- the task that runs on a worker ---------------------------------------------------------------------
def process_video(item: VideoItem, plans: list[UnitPlan], cache_root: str, settings: RunSettings,
                  segment_seconds: float, retry_failed: bool = False,
                  torch_threads: int | dict[str, int] = 1) -> VideoOutcome:
    """Extract every planned unit of one video that the cache lacks; record failures as index rows.
    Never raises for a bad video: the outcome says what happened. When the cache cannot be written (full,
    read-only) the outcome says so with ``stop``: the driver ends the run with that one line."""
    try:
        return _process_video(item, plans, cache_root, settings, segment_seconds, retry_failed, torch_threads)
    except StorageError as exc:
        return VideoOutcome(item.video_id, item.path, "failed", error=str(exc), stop=True)


def _process_video(item: VideoItem, plans: list[UnitPlan], cache_root: str, settings: RunSettings,
                   segment_seconds: float, retry_failed: bool, torch_threads: int | dict[str, int]) -> VideoOutcome:
    t_start = time.perf_counter()
    store = FeatureStore(cache_root)
    _set_threads(torch_threads)
    settings = _worker_device(settings)
    try:
        fp = fingerprint(item.path)
    except OSError as exc:
        return _fail_all(store, item, plans, "", segment_seconds, f"{item.path}: cannot read ({exc.strerror})")
    spec = _segment_spec(item, segment_seconds)
    todo = pending_units(store, item, plans, fp, spec, settings, retry_failed)
    if not todo:
        return VideoOutcome(item.video_id, item.path, "skipped", extractors=[p.extractor.name for p in plans])

    try:
        source = VideoSource(item.path, short_side=settings.short_side)
        info = source.info
        if item.segments is None:
            segments = seg.fixed_segments(info.duration, segment_seconds)
        else:
            segments = seg.validate_segments(np.asarray(item.segments), info.duration)
        emit = _progress_emitter(item.video_id)
        result = extract_video(source, segments, [(p.extractor, p.weights) for p, _ in todo], settings,
                               progress=emit)
    except HLError as exc:
        return _fail_all(store, item, [p for p, _ in todo], fp, segment_seconds, str(exc), settings, spec)
    except Exception as exc:  # noqa: BLE001 - one bad video never stops the batch
        log.debug("extraction failed for %s:\n%s", item.path, traceback.format_exc())
        return _fail_all(store, item, [p for p, _ in todo], fp, segment_seconds, f"{item.path}: {one_line(exc)}",
                         settings, spec)

    total = time.perf_counter() - t_start
    for p, chash in todo:
        name = p.extractor.name
        arrays = result.arrays[name]
        attrs = {
            "source_path": item.path, "fingerprint": fp, "config_hash": chash, "weights_hash": p.weights_hash,
            "config": extractor_config(p.extractor, settings, spec), "fps": info.fps,
            "num_frames": info.num_frames, "duration": info.duration, "notes": result.notes.get(name, ""),
        }
        if p.extractor.output == "saliency":
            attrs["normalisation"] = ("per-pixel value in [0,255] = round(255 * map), map in [0,1] as the model "
                                      "outputs it (not normalised to sum 1; divide by the frame's sum for that)")
        path = store.write_unit(item.video_id, name, arrays, attrs)
        main = arrays.get("features", arrays.get("maps"))
        store.write_index_row({
            "video_id": item.video_id, "source_path": item.path, "fingerprint": fp, "extractor": name,
            "config_hash": chash, "weights_hash": p.weights_hash, "status": "ok", "error": None,
            "notes": result.notes.get(name) or None, "segments": len(result.segments),
            "dim": int(np.prod(main.shape[1:])) if main is not None and main.ndim > 1 else 0,
            "file": path.relative_to(store.root).as_posix(), "duration_s": info.duration,
            "decode_s": result.decode_s, "model_s": result.model_s[name], "total_s": total,
        })
    return VideoOutcome(item.video_id, item.path, "ok", segments=len(result.segments), seconds=total,
                        extractors=[p.extractor.name for p, _ in todo])


def pending_units(store: FeatureStore, item: VideoItem, plans: list[UnitPlan], fp: str, spec: str,
                  settings: RunSettings, retry_failed: bool,
                  hashes: dict | None = None) -> list[tuple[UnitPlan, str]]:
    """The (plan, config hash) pairs of `item` that the cache does not hold yet; `hashes` keeps config hashes
    across calls."""
    todo = []
    hashes = {} if hashes is None else hashes
    for p in plans:
        chash = hashes.get((p.extractor.name, spec))
        if chash is None:
            chash = hashes[p.extractor.name, spec] = config_hash(extractor_config(p.extractor, settings, spec))
        if not store.is_done(item.video_id, p.extractor.name, fp, chash, p.weights_hash,
                             include_failed=not retry_failed):
            todo.append((p, chash))
    return todo


def plan_videos(store: FeatureStore, items: list[VideoItem], plans: list[UnitPlan], settings: RunSettings,
                segment_seconds: float, retry_failed: bool = False,
                fingerprints: dict[str, str] | None = None) -> tuple[list[VideoItem], list[VideoItem]]:
    """Split `items` into (to extract, already cached) reading the index once. A video whose fingerprint
    cannot be taken is to extract (its worker records why). `fingerprints` ({path: fingerprint}) spares
    re-reading files whose fingerprint is known."""
    hashes: dict = {}
    fps: list[str | None] = []
    for item in items:
        try:
            fps.append(fingerprints[item.path] if fingerprints and item.path in fingerprints
                       else fingerprint(item.path))
        except OSError:
            fps.append(None)  # to extract: its worker records why
    specs = [_segment_spec(item, segment_seconds) for item in items]
    one_spec = len(set(specs)) == 1  # fixed windows: one config hash per extractor
    ids = [item.video_id for item in items]
    known_fps = [fp or "" for fp in fps]
    done = np.array([fp is not None for fp in fps], dtype=bool)
    for p in plans:
        def chash(spec: str, p: UnitPlan = p) -> str:
            if (p.extractor.name, spec) not in hashes:
                hashes[p.extractor.name, spec] = config_hash(extractor_config(p.extractor, settings, spec))
            return hashes[p.extractor.name, spec]

        chashes = chash(specs[0]) if one_spec else [chash(spec) for spec in specs]
        done &= store.done_units(p.extractor.name, ids, known_fps, chashes, p.weights_hash,
                                 include_failed=not retry_failed)
    todo = [item for item, d in zip(items, done) if not d]
    cached = [item for item, d in zip(items, done) if d]
    return todo, cached


def _fail_all(store: FeatureStore, item: VideoItem, plans: list[UnitPlan], fp: str, segment_seconds: float,
              reason: str, settings: RunSettings | None = None, spec: str | None = None) -> VideoOutcome:
    reason = " ".join(reason.split())  # one line
    for p in plans:
        chash = config_hash(extractor_config(p.extractor, settings, spec)) if settings and spec else ""
        store.write_index_row({
            "video_id": item.video_id, "source_path": item.path, "fingerprint": fp, "extractor": p.extractor.name,
            "config_hash": chash, "weights_hash": p.weights_hash, "status": "failed", "error": reason,
            "segments": 0, "dim": 0, "file": None,
        })
    return VideoOutcome(item.video_id, item.path, "failed", error=reason,
                        extractors=[p.extractor.name for p in plans])


def _set_threads(torch_threads: int | dict[str, int]) -> None:
    import torch

    n = host_threads(torch_threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _worker_device(settings: RunSettings) -> RunSettings:
    """On a host with several GPUs, spread the workers over them (worker i -> cuda:i mod count)."""
    if settings.device != "cuda":
        return settings
    import dataclasses

    import torch

    count = torch.cuda.device_count()
    if count <= 1:
        return settings
    try:
        from distributed import get_worker

        name = get_worker().name
        index = int(name) if str(name).isdigit() else abs(hash(name))
    except (ImportError, ValueError):
        index = 0
    return dataclasses.replace(settings, device=f"cuda:{index % count}")


def _progress_emitter(video_id: str) -> Callable[[float], None] | None:
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    return lambda frac: worker.log_event("hl-progress", {"video_id": video_id, "fraction": frac})


# -- the driver -----------------------------------------------------------------------------------------
@dataclass
class Reporter:
    """Progress callbacks; the CLI draws bars, tests collect events."""

    start: Callable[[int, int], None] = lambda total, skipped: None
    video_done: Callable[[VideoOutcome, int, int], None] = lambda outcome, done, total: None
    video_progress: Callable[[str, float], None] = lambda video_id, fraction: None


def run_extraction(
    videos: str | Path | list[VideoItem],
    out: str | Path,
    extractors: Iterable[str] | None = None,
    segment_seconds: float = 2.0,
    manifest=None,
    weights_dir: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    settings: RunSettings | None = None,
    allow_random_weights: bool = False,
    retry_failed: bool = False,
    reporter: Reporter | None = None,
    notice: Callable[[str], None] | None = None,
    require: dict[str, FeatureOrigin] | None = None,
) -> ExtractReport:
    """Extract features for every video into the cache at `out`; returns what happened to each video.
    `require` makes every extractor reproduce a trained run's features exactly (see :func:`plan_extractors`)."""
    t0 = time.perf_counter()
    settings = settings or RunSettings()
    reporter = reporter or Reporter()
    if settings.precision not in ("fp32", "bf16", "fp16"):
        raise HLError(f"unknown precision {settings.precision!r} (fp32, bf16, fp16)")
    if settings.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise HLError("--device cuda asked for, but torch sees no CUDA device")
    items = discover_videos(videos) if not isinstance(videos, list) else videos
    if manifest is not None:
        items = attach_segments(items, manifest)
    plans, notices = plan_extractors(extractors, weights_dir, settings, allow_random_weights, require)
    slow = precision_notice(settings.device, settings.precision)
    notices = [slow, *notices] if slow else notices
    for line in notices if notice is not None else ():
        notice(line)
    store = FeatureStore(os.path.abspath(out))  # workers may run in another directory
    if not store.root.exists():
        store.check_writable()
    if not items:
        return ExtractReport([], notices + [f"no video files found in {videos}"], time.perf_counter() - t0)

    # Units already cached are found here, without starting a cluster: a re-run costs a fingerprint each.
    outcomes: list[VideoOutcome] = []
    reporter.start(len(items), 0)
    todo_items, cached = plan_videos(store, items, plans, settings, segment_seconds, retry_failed)
    for item in cached:
        outcomes.append(VideoOutcome(item.video_id, item.path, "skipped",
                                     extractors=[p.extractor.name for p in plans]))
        reporter.video_done(outcomes[-1], len(outcomes), len(items))
    if not todo_items:  # nothing to write: a read-only cache serves
        return ExtractReport(outcomes, notices, time.perf_counter() - t0)
    store.check_writable()  # a read-only or full cache: one line now, not one failure per video
    store.clean_stale()

    gpu = settings.device.startswith("cuda")
    cores = os.cpu_count() or 1
    n = workers or (max(1, _cuda_count()) if gpu else max(1, min(len(todo_items), cores // 2 or 1, 4)))

    def worker_error(job: tuple, exc: BaseException) -> VideoOutcome:  # a worker died mid-task, etc.
        item = job[0]
        return VideoOutcome(item.video_id, item.path, "failed", error=f"{item.path}: worker error: {one_line(exc)}")

    def finished(outcome: VideoOutcome, done: int, total: int) -> None:
        if outcome.stop:  # the cache cannot take more: every other video would fail the same
            raise StorageError(outcome.error)
        outcomes.append(outcome)
        reporter.video_done(outcome, len(outcomes), len(items))

    run_tasks(process_video, [(item, plans, str(store.root), settings, segment_seconds, retry_failed)
                              for item in todo_items],
              scheduler, n, "hl-extract", finished, resources={"GPU": 1} if gpu else None,
              topics={"hl-progress": lambda event: reporter.video_progress(event[1]["video_id"],
                                                                           event[1]["fraction"])},
              on_error=worker_error)
    compact_index(store, notices)
    store.clean_stale()  # what a worker killed mid-write left
    order = {i.video_id: k for k, i in enumerate(items)}
    outcomes.sort(key=lambda o: order[o.video_id])
    return ExtractReport(outcomes, notices, time.perf_counter() - t0)


def compact_index(store: FeatureStore, notices: list[str]) -> None:
    """Fold the run's per-unit index files into the compacted index; a compaction already running elsewhere
    (another run ending) does it instead."""
    try:
        store.compact()
    except (HLError, OSError) as exc:
        notices.append(f"index not compacted now: {exc if isinstance(exc, HLError) else one_line(exc)}")


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
