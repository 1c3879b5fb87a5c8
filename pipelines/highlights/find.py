"""`hl highlights`: new videos + a trained run -> each video's best moments, as JSON, CSV, clips and a report.

    result = find_highlights("new_videos/", "runs/tvsum", "out/", top=5, min_gap=4.0, clips=True)
    result.report      # out/report.html

1. The features the run reads (``run.config.inputs``) are extracted into a cache (``OUT/cache`` unless another is
   given) exactly as the run's training features were made: the same extractor settings, the weights file with
   the same sha256 (found in the weights directory), the same segment length (:mod:`hl.pipelines.run`). A video
   already in the cache with those features is not decoded again. A run trained on features hl cannot make (a
   release's) or whose weights are absent is refused with one line.
2. The run scores every segment (pixel-level runs also give maps).
3. :func:`hl.pipelines.moments.find_moments` turns scores into moments, none below the video's floor
   (``relative``: ``median + r * (best - median)`` of its scores, default :data:`RELATIVE`, chosen on TVSum's
   training videos by ``benchmarks/moment_threshold.py``; or an absolute ``min_score``); thumbnails (and map
   overlays) are read by frame index, clips are cut by packet copy (or re-encoded), so an hour-long video is
   never held in memory.
4. ``OUT/highlights.json`` (``{"format", "settings", "videos"}``: :func:`highlights_document`),
   ``OUT/highlights.csv``, ``OUT/report.html`` (+ ``OUT/assets/``), ``OUT/clips/``.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hl.common import HLError, atomic_path, one_line, write_text
from hl.extract.extractors import RunSettings

from ..cache import FeatureOrigin, FeatureStore, video_key
from ..run import Run
from ..stages.extract import ExtractReport, Reporter, discover_videos, run_extraction
from ..stages.predict import predict
from .clips import Clip, clip_suffix, cut_clip
from .moments import RELATIVE, Moment, find_moments, moment_floor
from .report import Card, VideoEntry, grab_frames, overlay_map, save_jpeg, write_report

log = logging.getLogger(__name__)

FORMAT = "hl-highlights/2"


@dataclass
class VideoHighlights:
    video_id: str
    path: str
    duration: float
    scores: np.ndarray  # [S]
    segments: np.ndarray  # [S, 2] seconds
    heads: str
    moments: list[Moment]
    floor: float | None = None  # no moment scores below it (None: no floor)
    clips: list[Clip | None] = field(default_factory=list)  # one per moment when clips were asked for
    thumbnails: list[str | None] = field(default_factory=list)  # paths relative to OUT
    maps: list[str | None] = field(default_factory=list)  # map overlays (pixel-level runs), relative to OUT


@dataclass
class HighlightsResult:
    out: Path
    cache: Path
    json: Path
    csv: Path
    report: Path
    videos: dict[str, VideoHighlights]  # the scored videos, in listing order
    failed: dict[str, str]  # video id -> why it was not scored
    warnings: list[str]  # thumbnails or clips that could not be made
    extraction: ExtractReport
    settings: dict = field(default_factory=dict)  # what chose the moments (recorded in highlights.json)


# -- the run ---------------------------------------------------------------------------------------------
def run_features(run: Run) -> dict[str, FeatureOrigin]:
    """{extractor: the origin its features must have} for every input of `run`; a one-line HLError when the run
    was trained on features hl cannot compute for new videos."""
    out = {}
    for name in run.config.inputs:
        origins = run.config.features.get(name)
        if not origins:
            raise HLError(f"{run.path}: the run records no origin for its {name} features; train it again")
        if not origins[0].made_by_hl:
            raise HLError(f"{run.path}: trained on {origins[0].describe()}; hl cannot compute those for new "
                          f"videos: train a run on features `hl extract` makes to find highlights")
        out[name] = origins[0]
    return out


def run_settings(features: dict[str, FeatureOrigin], base: RunSettings | None = None) -> RunSettings:
    """Extraction settings that reproduce the run's features: the precision its pretrained extractors ran in
    and its decoding size; device, batch size and the rest from `base`."""
    from hl.extract.backbones import get_spec
    from hl.extract.extractors import get_extractor

    base = base or RunSettings()
    pretrained = [o.config for o in features.values() if get_extractor(o.extractor).needs_weights]
    # an extractor that "auto" keeps in its own precision (the flow stream in fp32) does not set the others'
    usual = [c for c in pretrained if not get_spec(c["backbone"]).extra.get("auto_precision")]
    precision = (usual or pretrained)[0]["precision"] if pretrained else base.precision
    auto = len({c["precision"] for c in pretrained}) > 1  # made under "auto": each extractor's own precision
    short_side = int(next(iter(features.values())).config.get("short_side", base.short_side))
    return dataclasses.replace(base, precision=precision, short_side=short_side, auto=auto)


def check_extraction(run: Run, features: dict[str, FeatureOrigin], extractors=None, segment_seconds=None,
                     precision: str | None = None, allow_random_weights: bool = False) -> list[str]:
    """Refuse, with a one-line HLError, extraction options that would make other features than the run's; returns
    the notices to show (random weights in use)."""
    from hl.extract.extractors import get_extractor

    names = list(features)
    if extractors is not None and sorted(extractors) != sorted(names):
        raise HLError(f"--extractors {','.join(extractors) or '(none)'}: the run {run.path} reads {','.join(names)} "
                      f"features; leave --extractors out (the run's are used) or give exactly those")
    seconds = run.segment_seconds
    if segment_seconds is not None and abs(float(segment_seconds) - seconds) > 1e-9:
        raise HLError(f"--segment-seconds {segment_seconds:g}: the run {run.path} was trained on {seconds:g}-s "
                      f"segments; leave --segment-seconds out or give {seconds:g}")
    pretrained = {n: o for n, o in features.items() if get_extractor(o.extractor).needs_weights}
    if precision not in (None, "auto"):
        for n, o in pretrained.items():
            made = o.config.get("precision")
            if made != precision:
                raise HLError(f"--precision {precision}: the run's {n} features were made in {made}; leave "
                              f"--precision out (the run's is used) or give {made}")
    random = [n for n, o in pretrained.items() if o.weights_hash == "none"]
    if random and not allow_random_weights:
        raise HLError(f"the run {run.path} was trained on {', '.join(random)} features made with random weights "
                      f"(speed tests only); give --random-weights to make the same for new videos")
    return [f"RANDOM WEIGHTS FOR {n}: as the run's features were made; meaningless except for speed tests."
            for n in random]


# -- the work --------------------------------------------------------------------------------------------
def _check(top: int, min_gap: float, clip_mode: str, relative: float | None, min_score: float | None) -> None:
    if int(top) != top or top < 1:
        raise HLError(f"--top must be a whole number >= 1, got {top}")
    if not min_gap >= 0:
        raise HLError(f"--min-gap must be >= 0 seconds, got {min_gap}")
    if relative is not None and not 0.0 <= relative <= 1.0:
        raise HLError(f"--relative must lie in [0, 1], got {relative}")
    if min_score is not None and not np.isfinite(min_score):
        raise HLError(f"--min-score must be a number, got {min_score}")
    if clip_mode not in ("copy", "reencode"):
        raise HLError(f"unknown clip mode {clip_mode!r} (copy, reencode)")


def find_highlights(
    videos: str | Path,
    run: str | Path,
    out: str | Path,
    *,
    cache: str | Path | None = None,
    top: int = 5,
    min_gap: float = 4.0,
    merge: float = 0.5,
    max_length: float | None = 30.0,
    relative: float | None = RELATIVE,
    min_score: float | None = None,
    clips: bool = False,
    clip_mode: str = "copy",
    weights_dir: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    settings: RunSettings | None = None,
    extractors: list[str] | tuple[str, ...] | None = None,
    segment_seconds: float | None = None,
    precision: str | None = None,
    allow_random_weights: bool = False,
    retry_failed: bool = False,
    manifest=None,
    reporter: Reporter | None = None,
    notice: Callable[[str], None] | None = None,
    on_video: Callable[[str, int, int], None] | None = None,
) -> HighlightsResult:
    """Find the best moments of every video in `videos` (a file or a folder, searched recursively) with the
    trained `run`, and write them to `out`. Raises :class:`HLError` for a bad request; a video that cannot be
    decoded is reported in ``result.failed`` and does not stop the others. No moment scores below the video's
    floor: `min_score` when given, else ``median + relative * (best - median)`` of its scores (``relative=None``:
    no floor).

    The extraction options are those of `hl extract` (:func:`run_extraction`): `settings` give the device and
    batch size; the features are the run's (:func:`check_extraction`), so `extractors`, `segment_seconds` and
    `precision` may only repeat what the run's features were made with (None: the run's), and a run trained on
    random-weight features needs `allow_random_weights`. `manifest` gives its videos their own windows."""
    _check(top, min_gap, clip_mode, relative, min_score)
    if min_score is not None:
        relative = None  # an absolute floor replaces the relative one
    out = Path(out)
    cache = Path(cache) if cache is not None else out / "cache"
    run = run if isinstance(run, Run) else Run.open(run)
    features = run_features(run)
    names = list(features)
    say = notice or (lambda line: log.warning("%s", line))
    for line in check_extraction(run, features, extractors, segment_seconds, precision, allow_random_weights):
        say(line)
    segment_seconds = run.segment_seconds
    if run.config.segments["rule"] != "fixed" and manifest is None:
        say(f"the run was trained on the manifest's own windows; new videos get fixed {segment_seconds:g}-s windows "
            "(their median length)")
    items = discover_videos(videos)
    if not items:
        raise HLError(f"{videos}: no video files found")

    out.mkdir(parents=True, exist_ok=True)
    extraction = run_extraction(items, cache, names, segment_seconds=segment_seconds, weights_dir=weights_dir,
                                scheduler=scheduler, workers=workers, settings=run_settings(features, settings),
                                manifest=manifest, retry_failed=retry_failed, reporter=reporter, notice=say,
                                require=features)

    store = FeatureStore(cache)
    failed: dict[str, str] = {}
    ok: list[str] = []
    for item in items:
        rows = [store.row(item.video_id, n) for n in names]
        bad = [r for r in rows if r is None or r["status"] != "ok"]
        if bad:
            errors = [r["error"] for r in bad if r is not None and r["error"]]
            failed[item.video_id] = errors[0] if errors else "features missing from the cache"
        else:
            ok.append(item.video_id)
    paths = {i.video_id: i.path for i in items}
    preds = predict(run, cache, ok) if ok else {}

    results: dict[str, VideoHighlights] = {}
    warnings: list[str] = []
    for done, vid in enumerate(ok, 1):
        p = preds[vid]
        duration = float(store.row(vid, names[0])["duration_s"] or np.asarray(p["segments"])[:, 1].max())
        scores = np.asarray(p["scores"], dtype=np.float32)
        segments = np.asarray(p["segments"], dtype=np.float64)
        moments = find_moments(scores, segments, top=top, min_gap=min_gap, duration=duration, merge=merge,
                               max_length=max_length, min_score=min_score, relative=relative)
        inside = np.clip(segments, 0.0, duration)
        floor = moment_floor(scores[inside[:, 1] > inside[:, 0]], relative, min_score)
        vh = VideoHighlights(vid, paths[vid], duration, scores, segments, str(p.get("heads", "")), moments, floor)
        _forget_old_files(out, vid)
        _pictures(vh, out, p.get("maps"), p.get("times"), p.get("view"), warnings)
        if clips:
            _clips(vh, out, clip_mode, warnings)
        results[vid] = vh
        if on_video is not None:
            on_video(vid, done, len(ok))

    chosen = {"run": str(run.path), "top": top, "min_gap": min_gap, "merge": merge, "max_length": max_length,
              "relative": relative, "min_score": min_score, "segment_seconds": segment_seconds, "features": names}
    json_path, csv_path = write_tables(results, out, chosen)
    details = {"run": str(run.path), "top": top, "min gap": f"{min_gap:g} s", "segments": f"{segment_seconds:g} s",
               "features": "+".join(names), "floor": floor_rule(relative, min_score)}
    entries = [_entry(vh) for vh in results.values()]
    report = write_report(entries, out, title=f"Highlights — {run.name}", details=details, failed=failed)
    return HighlightsResult(out, cache, json_path, csv_path, report, results, failed, warnings, extraction, chosen)


def floor_rule(relative: float | None, min_score: float | None) -> str:
    """The floor in words, e.g. ``median + 0.5 x (best - median)``."""
    if min_score is not None:
        return f"score >= {min_score:g}"
    if relative is None:
        return "none"
    return f"median + {relative:g} x (best - median) of each video's scores"


def _forget_old_files(out: Path, video_id: str) -> None:
    """Remove the thumbnails and clips an earlier call wrote for this video into the same OUT (it may have had
    more moments then), so that the folder holds only what the new report links to."""
    mine = re.compile(re.escape(video_key(video_id)) + r"-\d{2}(-map)?\.[A-Za-z0-9]+")
    for folder in (out / "assets", out / "clips"):
        if folder.is_dir():
            for f in folder.iterdir():
                if mine.fullmatch(f.name):
                    f.unlink()


def _pictures(vh: VideoHighlights, out: Path, maps, times, view, warnings: list[str]) -> None:
    """Thumbnails at each moment's peak (and, for pixel-level runs, the map nearest the peak over the part of its
    frame the decoder sees, `view`)."""
    view = tuple(view) if view is not None else (0.0, 1.0, 0.0, 1.0)
    n = len(vh.moments)
    vh.thumbnails, vh.maps = [None] * n, [None] * n
    if not n:
        return
    key = video_key(vh.video_id)
    peaks = np.array([m.peak_time for m in vh.moments])
    pick = None
    if maps is not None and times is not None and len(times):
        times = np.asarray(times, dtype=np.float64)
        pick = np.abs(times[None, :] - peaks[:, None]).argmin(axis=1)  # [n] map index per moment
    try:
        wanted = peaks if pick is None else np.concatenate([peaks, times[pick]])
        frames = grab_frames(vh.path, wanted)
    except Exception as exc:  # noqa: BLE001 - a report without pictures beats no report
        warnings.append(f"{vh.path}: no thumbnails ({one_line(exc)})")
        return
    for k in range(n):
        rel = f"assets/{key}-{k + 1:02d}.jpg"
        save_jpeg(frames[k], out / rel)
        vh.thumbnails[k] = rel
        if pick is not None:
            rel_map = f"assets/{key}-{k + 1:02d}-map.jpg"
            save_jpeg(overlay_map(frames[n + k], np.asarray(maps[pick[k]]), view=view), out / rel_map)
            vh.maps[k] = rel_map


def _clips(vh: VideoHighlights, out: Path, mode: str, warnings: list[str]) -> None:
    key = video_key(vh.video_id)
    suffix = clip_suffix(vh.path, mode)
    vh.clips = []
    for k, m in enumerate(vh.moments):
        try:
            vh.clips.append(cut_clip(vh.path, m.start, m.end, out / "clips" / f"{key}-{k + 1:02d}{suffix}", mode))
        except Exception as exc:  # noqa: BLE001 - one clip never stops the batch
            warnings.append(f"{vh.path}: clip {k + 1} not cut ({one_line(exc)})")
            vh.clips.append(None)


def _entry(vh: VideoHighlights) -> VideoEntry:
    cards = []
    for k, m in enumerate(vh.moments):
        clip = vh.clips[k] if k < len(vh.clips) else None
        cards.append(Card(k + 1, m.start, m.end, m.score, m.mean_score, vh.thumbnails[k], vh.maps[k],
                          _clip_rel(clip), clip.start if clip else None, clip.end if clip else None))
    return VideoEntry(vh.video_id, vh.path, vh.duration, vh.scores, vh.segments, cards, vh.heads)


def _clip_rel(clip: Clip | None) -> str | None:
    if clip is None:
        return None
    return f"clips/{clip.path.name}"


def moment_records(results: dict[str, VideoHighlights]) -> dict[str, list[dict]]:
    """{video_id: [{rank, start, end, score, mean_score, peak_time, segments, score_rank, percentile, thumbnail,
    clip?}]}, paths relative to OUT; ``clip`` holds the times actually cut. ``rank`` orders the moments,
    ``score_rank`` and ``percentile`` place the moment's score among the video's segment scores."""
    out = {}
    for vid, vh in results.items():
        rows = []
        for k, m in enumerate(vh.moments):
            row = {"rank": k + 1, **m.to_dict(), "thumbnail": vh.thumbnails[k] if vh.thumbnails else None}
            if vh.maps and vh.maps[k]:
                row["map"] = vh.maps[k]
            clip = vh.clips[k] if k < len(vh.clips) else None
            if clip is not None:
                row["clip"] = {**clip.to_dict(), "path": _clip_rel(clip)}
            rows.append(row)
        out[vid] = rows
    return out


def highlights_document(results: dict[str, VideoHighlights], settings: dict | None = None) -> dict:
    """What OUT/highlights.json holds::

        {"format": "hl-highlights/2",
         "settings": {"run", "top", "min_gap", "merge", "max_length", "relative", "min_score", ...},
         "videos": {video_id: {"source", "duration", "segments", "median", "best", "floor",
                               "moments": [see moment_records]}}}

    ``floor`` is the least score a listed moment may have (null: none); ``median`` and ``best`` are those of the
    video's segment scores."""
    records = moment_records(results)
    videos = {}
    for vid, vh in results.items():
        s = np.asarray(vh.scores, dtype=np.float64)
        videos[vid] = {"source": vh.path, "duration": round(vh.duration, 3), "segments": len(s),
                       "median": round(float(np.median(s)), 6) if len(s) else None,
                       "best": round(float(s.max()), 6) if len(s) else None,
                       "floor": None if vh.floor is None else round(vh.floor, 6), "moments": records[vid]}
    return {"format": FORMAT, "settings": dict(settings or {}), "videos": videos}


CSV_COLUMNS = ["video_id", "rank", "start", "end", "score", "mean_score", "peak_time", "segments", "score_rank",
               "percentile", "floor", "source", "thumbnail", "clip", "clip_start", "clip_end", "clip_mode"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A CSV cell a spreadsheet shows as text: a string that starts like a formula (= + - @, tab, carriage
    return; a video named ``=HYPERLINK(...).mp4``) gets a leading apostrophe. Numbers pass as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_tables(results: dict[str, VideoHighlights], out: str | Path, settings: dict | None = None
                 ) -> tuple[Path, Path]:
    """OUT/highlights.json (see :func:`highlights_document`) and OUT/highlights.csv (one row per moment; text
    cells that would start a spreadsheet formula are prefixed with an apostrophe, see :func:`csv_cell`; the JSON
    keeps every value as it is)."""
    out = Path(out)
    records = moment_records(results)
    doc = highlights_document(results, settings)
    json_path = write_text(out / "highlights.json", json.dumps(doc, indent=1, ensure_ascii=False))
    csv_path = out / "highlights.csv"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for vid, rows in records.items():
            for r in rows:
                clip = r.get("clip") or {}
                floor = doc["videos"][vid]["floor"]
                w.writerow({k: csv_cell(v) for k, v in {
                    "video_id": vid, "rank": r["rank"], "start": r["start"], "end": r["end"],
                    "score": r["score"], "mean_score": r["mean_score"], "peak_time": r["peak_time"],
                    "segments": " ".join(map(str, r["segments"])), "score_rank": r["score_rank"],
                    "percentile": r["percentile"], "floor": "" if floor is None else floor,
                    "source": results[vid].path, "thumbnail": r["thumbnail"] or "", "clip": clip.get("path", ""),
                    "clip_start": clip.get("start", ""), "clip_end": clip.get("end", ""),
                    "clip_mode": clip.get("mode", "")}.items()})
    return json_path, csv_path
