"""`hl highlights`: new videos + a trained run -> each video's best moments, as JSON, CSV, clips and a report.

    result = find_highlights("new_videos/", "runs/tvsum", "out/", top=5, min_gap=4.0, clips=True)
    result.report      # out/report.html

1. Features of the run's extractors (``Run.visual + Run.audio``) are extracted into a cache (``OUT/cache`` unless
   another is given) with the same segment length the run was trained on; a video already in the cache (same
   content, config and weights) is not decoded again. Weights come from the weights directory; a run trained on
   weight-free features (stats, stats_audio) needs none.
2. The run scores every segment (pixel-level runs, ``"head": "pixel"`` in their config, also give maps).
3. :func:`hl.pipelines.moments.find_moments` turns scores into moments; thumbnails (and map overlays) are read
   by frame index, clips are cut by packet copy (or re-encoded), so an hour-long video is never held in memory.
4. ``OUT/highlights.json``, ``OUT/highlights.csv``, ``OUT/report.html`` (+ ``OUT/assets/``), ``OUT/clips/``.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cache import FeatureStore, video_key
from .clips import Clip, clip_suffix, cut_clip
from .extract_stage import ExtractError, ExtractReport, Reporter, discover_videos, run_extraction
from .moments import Moment, find_moments
from .predict import PredictError, open_run, predict_scores
from .report import Card, VideoEntry, grab_frames, overlay_map, save_jpeg, write_report

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_SECONDS = 2.0


class HighlightsError(RuntimeError):
    """A problem with the request (no run, no videos, missing weights, ...): one line for the user."""


@dataclass
class VideoHighlights:
    video_id: str
    path: str
    duration: float
    scores: np.ndarray  # [S]
    segments: np.ndarray  # [S, 2] seconds
    heads: str
    moments: list[Moment]
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


# -- the run ---------------------------------------------------------------------------------------------
def _read_run(run: str | Path) -> tuple[Path, dict]:
    path = Path(run)
    cfg = path / "config.json"
    if not cfg.is_file():
        raise HighlightsError(f"{path}: not a run directory (no config.json); train one with `hl train-head`")
    try:
        return path, json.loads(cfg.read_text())
    except json.JSONDecodeError as exc:
        raise HighlightsError(f"{cfg}: unreadable ({exc.msg})") from None


def is_pixel_run(config: dict) -> bool:
    return config.get("head") == "pixel"


def run_extractors(config: dict) -> list[str]:
    """The extractors whose features a run scores from: its visual then audio features (and any extra
    ``extractors`` its config lists), without repeats."""
    spec = config.get("spec", {})
    names = [*spec.get("visual", ()), *spec.get("audio", ()), *config.get("extractors", ())]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise HighlightsError("the run's config.json names no features (spec.visual / spec.audio)")
    return names


def run_segment_seconds(config: dict) -> float | None:
    """Length of the fixed windows the run was trained on, read from its training cache (None if unknown)."""
    spec = config.get("spec", {})
    if not spec.get("cache") or not spec.get("visual"):
        return None
    store = FeatureStore(spec["cache"])
    name = spec["visual"][0]
    try:
        vid = next(iter(store.videos(name)), None)
        if vid is None:
            return None
        attrs = store.attrs(vid, name)
        seg_spec = json.loads(attrs.get("config", "{}")).get("segments", "")
        if isinstance(seg_spec, str) and seg_spec.startswith("fixed:"):
            return float(seg_spec.split(":", 1)[1])
        lengths = np.diff(store.segments(vid, name), axis=1).ravel()
        return float(np.round(np.median(lengths), 3)) if len(lengths) else None
    except (OSError, KeyError, ValueError):
        return None


def _predict(run_path: Path, config: dict, cache: Path, ids: list[str]) -> dict[str, dict]:
    if is_pixel_run(config):
        from .train_pixel import predict_pixel  # the pixel-level head's module

        return predict_pixel(run_path, cache, ids)
    return predict_scores(open_run(run_path), cache, ids)


# -- the work --------------------------------------------------------------------------------------------
def _check(top: int, min_gap: float, clip_mode: str) -> None:
    if int(top) != top or top < 1:
        raise HighlightsError(f"--top must be a whole number >= 1, got {top}")
    if not min_gap >= 0:
        raise HighlightsError(f"--min-gap must be >= 0 seconds, got {min_gap}")
    if clip_mode not in ("copy", "reencode"):
        raise HighlightsError(f"unknown clip mode {clip_mode!r} (copy, reencode)")


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
    min_score: float | None = None,
    clips: bool = False,
    clip_mode: str = "copy",
    weights_dir: str | Path | None = None,
    segment_seconds: float | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    settings=None,
    reporter: Reporter | None = None,
    notice: Callable[[str], None] | None = None,
    on_video: Callable[[str, int, int], None] | None = None,
) -> HighlightsResult:
    """Find the best moments of every video in `videos` (a file or a folder, searched recursively) with the
    trained `run`, and write them to `out`. Raises :class:`HighlightsError` for a bad request; a video that
    cannot be decoded is reported in ``result.failed`` and does not stop the others."""
    _check(top, min_gap, clip_mode)
    out = Path(out)
    cache = Path(cache) if cache is not None else out / "cache"
    run_path, config = _read_run(run)
    names = run_extractors(config)
    say = notice or (lambda line: log.warning("%s", line))
    if segment_seconds is None:
        segment_seconds = run_segment_seconds(config)
        if segment_seconds is None:
            segment_seconds = DEFAULT_SEGMENT_SECONDS
            say(f"could not read the run's segment length from its training cache; using {segment_seconds:g} s")
    try:
        items = discover_videos(videos)
    except ExtractError as exc:
        raise HighlightsError(str(exc)) from None
    if not items:
        raise HighlightsError(f"{videos}: no video files found")

    out.mkdir(parents=True, exist_ok=True)
    try:
        extraction = run_extraction(items, cache, names, segment_seconds=segment_seconds, weights_dir=weights_dir,
                                    scheduler=scheduler, workers=workers, settings=settings, reporter=reporter,
                                    notice=say)
    except (ExtractError, ValueError) as exc:
        raise HighlightsError(str(exc)) from None

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
    try:
        preds = _predict(run_path, config, cache, ok) if ok else {}
    except PredictError as exc:
        raise HighlightsError(str(exc)) from None

    results: dict[str, VideoHighlights] = {}
    warnings: list[str] = []
    for done, vid in enumerate(ok, 1):
        p = preds[vid]
        duration = float(store.row(vid, names[0])["duration_s"] or np.asarray(p["segments"])[:, 1].max())
        scores = np.asarray(p["scores"], dtype=np.float32)
        segments = np.asarray(p["segments"], dtype=np.float64)
        moments = find_moments(scores, segments, top=top, min_gap=min_gap, duration=duration, merge=merge,
                               max_length=max_length, min_score=min_score)
        vh = VideoHighlights(vid, paths[vid], duration, scores, segments, str(p.get("heads", "")), moments)
        _forget_old_files(out, vid)
        _pictures(vh, out, p.get("maps"), p.get("times"), warnings)
        if clips:
            _clips(vh, out, clip_mode, warnings)
        results[vid] = vh
        if on_video is not None:
            on_video(vid, done, len(ok))

    json_path, csv_path = write_tables(results, out)
    details = {"run": str(run_path), "top": top, "min gap": f"{min_gap:g} s", "segments": f"{segment_seconds:g} s",
               "features": "+".join(names)}
    entries = [_entry(vh) for vh in results.values()]
    report = write_report(entries, out, title=f"Highlights — {run_path.name}", details=details, failed=failed)
    return HighlightsResult(out, cache, json_path, csv_path, report, results, failed, warnings, extraction)


def _forget_old_files(out: Path, video_id: str) -> None:
    """Remove the thumbnails and clips an earlier call wrote for this video into the same OUT (it may have had
    more moments then), so that the folder holds only what the new report links to."""
    mine = re.compile(re.escape(video_key(video_id)) + r"-\d{2}(-map)?\.[A-Za-z0-9]+")
    for folder in (out / "assets", out / "clips"):
        if folder.is_dir():
            for f in folder.iterdir():
                if mine.fullmatch(f.name):
                    f.unlink()


def _pictures(vh: VideoHighlights, out: Path, maps, times, warnings: list[str]) -> None:
    """Thumbnails at each moment's peak (and, for pixel-level runs, the map nearest the peak over its frame)."""
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
        warnings.append(f"{vh.path}: no thumbnails ({type(exc).__name__}: {exc})")
        return
    for k in range(n):
        rel = f"assets/{key}-{k + 1:02d}.jpg"
        save_jpeg(frames[k], out / rel)
        vh.thumbnails[k] = rel
        if pick is not None:
            rel_map = f"assets/{key}-{k + 1:02d}-map.jpg"
            save_jpeg(overlay_map(frames[n + k], np.asarray(maps[pick[k]])), out / rel_map)
            vh.maps[k] = rel_map


def _clips(vh: VideoHighlights, out: Path, mode: str, warnings: list[str]) -> None:
    key = video_key(vh.video_id)
    suffix = clip_suffix(vh.path, mode)
    vh.clips = []
    for k, m in enumerate(vh.moments):
        try:
            vh.clips.append(cut_clip(vh.path, m.start, m.end, out / "clips" / f"{key}-{k + 1:02d}{suffix}", mode))
        except Exception as exc:  # noqa: BLE001 - one clip never stops the batch
            warnings.append(f"{vh.path}: clip {k + 1} not cut ({type(exc).__name__}: {exc})")
            vh.clips.append(None)


def _rel(path: Path, out: Path) -> str:
    return os.path.relpath(path, out).replace(os.sep, "/")


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
    """{video_id: [{rank, start, end, score, mean_score, peak_time, segments, thumbnail, clip?}]}, paths
    relative to OUT; ``clip`` holds the times actually cut."""
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


CSV_COLUMNS = ["video_id", "rank", "start", "end", "score", "mean_score", "peak_time", "segments", "source",
               "thumbnail", "clip", "clip_start", "clip_end", "clip_mode"]


def write_tables(results: dict[str, VideoHighlights], out: str | Path) -> tuple[Path, Path]:
    """OUT/highlights.json (see :func:`moment_records`) and OUT/highlights.csv (one row per moment)."""
    out = Path(out)
    records = moment_records(results)
    json_path = out / "highlights.json"
    tmp = json_path.with_name(f".highlights.json.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, json_path)
    csv_path = out / "highlights.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for vid, rows in records.items():
            for r in rows:
                clip = r.get("clip") or {}
                w.writerow({"video_id": vid, "rank": r["rank"], "start": r["start"], "end": r["end"],
                            "score": r["score"], "mean_score": r["mean_score"], "peak_time": r["peak_time"],
                            "segments": " ".join(map(str, r["segments"])), "source": results[vid].path,
                            "thumbnail": r["thumbnail"] or "", "clip": clip.get("path", ""),
                            "clip_start": clip.get("start", ""), "clip_end": clip.get("end", ""),
                            "clip_mode": clip.get("mode", "")})
    return json_path, csv_path


# -- the command -----------------------------------------------------------------------------------------
def highlights_command(
    video_or_dir: str | Path,
    run: str | Path,
    top: int = 5,
    min_gap: float = 4.0,
    out: str | Path | None = None,
    clips: bool = False,
    cache: str | Path | None = None,
    reencode: bool = False,
    weights_dir: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
    stream=None,
) -> int:
    """Everything `hl highlights` does, with progress on `stream` (stderr) and a summary through `echo`.
    Returns the exit status: 0, or 1 when some videos could not be scored. Raises :class:`HighlightsError`
    (one line) for a bad request."""
    import sys

    from tqdm import tqdm

    from .progress import ExtractProgress

    stream = stream or sys.stderr
    out = Path(out) if out is not None else Path("highlights")
    progress = ExtractProgress(enabled=not quiet, stream=stream)
    bar: list[tqdm] = []

    def scored(video_id: str, done: int, total: int) -> None:
        if quiet:
            return
        if not bar:
            progress.close()  # the extraction bar is finished
            bar.append(tqdm(total=total, unit="video", desc="highlights", file=stream, dynamic_ncols=True))
        bar[0].update(1)

    try:
        result = find_highlights(video_or_dir, run, out, cache=cache, top=top, min_gap=min_gap, clips=clips,
                                 clip_mode="reencode" if reencode else "copy", weights_dir=weights_dir,
                                 scheduler=scheduler, workers=workers, reporter=progress.reporter(),
                                 notice=progress.notice, on_video=scored)
    finally:
        progress.close()
        for b in bar:
            b.close()
    videos = result.videos
    if len(videos) <= 10:
        for vid, vh in videos.items():
            best = ", ".join(f"#{k + 1} {m.start:.1f}-{m.end:.1f} s ({m.score:.2f})" for k, m in enumerate(vh.moments))
            echo(f"{vid}: {best or 'no moments'}")
    ext = result.extraction
    echo(f"{len(videos)} videos scored ({len(ext.computed)} extracted, {len(ext.skipped)} from the cache), "
         f"{len(result.failed)} failed -> {result.report}")
    for vid, error in result.failed.items():
        echo(f"  failed: {vid}: {error}")
    for line in result.warnings:
        echo(f"  warning: {line}")
    lead = max((m.start - c.start for vh in videos.values() for m, c in zip(vh.moments, vh.clips)
                if c is not None and c.mode == "copy"), default=0.0)
    if lead > 2.0:
        echo(f"  note: copied clips start up to {lead:.1f} s before their moments (they must start on a keyframe); "
             f"--reencode cuts them exactly")
    return 1 if result.failed else 0
