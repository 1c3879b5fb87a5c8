"""A user's own highlight intervals, as CSV, turned into a manifest of fixed-length segments.

CSV columns (header required; extra columns are ignored):

    video     the video's id or path; a path (it has a folder part or a video-file suffix) gives the id
              ``Path(video).stem`` and the original value is kept in the extra column ``source``
    start     highlight start: seconds ("12.5") or [hh:]mm:ss[.fff] ("1:02", "00:01:02.5")
    end       highlight end, same formats, > start
    domain    optional, default ``domain`` argument ("user")
    split     optional, train | val | test, default ``split`` argument ("train")
    duration  optional video duration (seconds or [hh:]mm:ss); else ``durations`` (a mapping from the
              ``video`` value or the id, or a callable taking the ``video`` value) must give it

One row per highlight; a video may have many rows. A row with both ``start`` and ``end`` empty declares a
video with no highlight. ``domain``, ``split`` and ``duration`` must agree across a video's rows.

Segments follow the extraction windows (``hl.extract.segments.fixed_segments``): a video of duration D cut
into windows of L seconds (default 2) gives ``max(1, ceil(D / L))`` segments ``[k L, min((k + 1) L, D)]``,
the last one possibly shorter. Label rule: a segment is 1 when the union of the video's highlight intervals
covers at least half of the segment's own length (``overlap >= 0.5 * (end - start)``), else 0.
Highlights ending after the video (by more than 0.5 s) are errors; up to 0.5 s over is clamped.
``scores`` is null (users give intervals, not scores); ``dataset`` is "user".

Bad input raises ValueError naming the file, the line (header = line 1) and the cause.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .schema import SPLITS, conform

DurationSpec = Mapping[str, float] | Callable[[str], float] | None

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts"}
END_TOLERANCE = 0.5
_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")
_EPS = 1e-9


def parse_time(text: str) -> float:
    """Seconds from "12.5", "1:02" (mm:ss) or "01:02:03.5" (hh:mm:ss); ValueError when malformed."""
    text = str(text).strip()
    m = _CLOCK.match(text)
    if m:
        hours, minutes, seconds = int(m.group(1) or 0), int(m.group(2)), float(m.group(3))
        if minutes >= 60 and m.group(1) is not None or seconds >= 60:
            raise ValueError(f"not a valid [hh:]mm:ss time: {text!r}")
        return hours * 3600.0 + minutes * 60.0 + seconds
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a time (seconds or [hh:]mm:ss): {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"not a finite time: {text!r}")
    return value


def fixed_windows(duration: float, seconds: float) -> np.ndarray:
    """[S, 2] windows covering [0, duration], the extraction stage's rule (see the module docstring)."""
    count = max(1, math.ceil(duration / seconds - _EPS))
    starts = np.arange(count, dtype=np.float64) * seconds
    return np.stack([starts, np.minimum(starts + seconds, duration)], axis=1)


def covered_length(windows: np.ndarray, intervals: list[tuple[float, float]]) -> np.ndarray:
    """For each [start, end] window, the length covered by the union of ``intervals``."""
    merged: list[list[float]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    covered = np.zeros(len(windows))
    for s, e in merged:
        covered += np.clip(np.minimum(windows[:, 1], e) - np.maximum(windows[:, 0], s), 0.0, None)
    return covered


def video_id_of(value: str) -> str:
    """The id of a ``video`` value: the file stem for a path, the value itself otherwise."""
    p = Path(value)
    if len(p.parts) > 1 or p.suffix.lower() in VIDEO_SUFFIXES:
        return p.stem
    return value


def user_csv_manifest(
    path: str | Path,
    segment_seconds: float = 2.0,
    durations: DurationSpec = None,
    domain: str = "user",
    split: str = "train",
) -> pd.DataFrame:
    """Manifest of fixed ``segment_seconds`` segments labelled from the highlight intervals in the CSV at
    ``path`` (see the module docstring for columns and rules)."""
    path = Path(path)
    if not segment_seconds > 0:
        raise ValueError(f"segment_seconds must be > 0, got {segment_seconds}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not path.exists():
        raise ValueError(f"highlight CSV not found: {path}")

    videos: dict[str, dict] = {}  # source value -> info, in first-appearance order
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("video", "start", "end") if c not in header]
        if missing:
            raise ValueError(f"{path}, line 1: missing column {missing[0]!r} (need video, start, end)")
        reader.fieldnames = header
        for row in reader:
            line = reader.line_num
            where = f"{path}, line {line}"
            row = {k: (v or "").strip() for k, v in row.items() if k is not None}
            source = row["video"]
            if not source:
                raise ValueError(f"{where}: empty 'video'")
            info = videos.setdefault(
                source, {"line": line, "intervals": [], "domain": None, "split": None, "duration": None}
            )
            for key, default in (("domain", domain), ("split", split)):
                value = row.get(key) or default
                if key == "split" and value not in SPLITS:
                    raise ValueError(f"{where}: split {value!r} is not one of {', '.join(SPLITS)}")
                if info[key] is not None and info[key] != value:
                    raise ValueError(f"{where}: {key} {value!r} differs from {info[key]!r} on an earlier row")
                info[key] = value
            if row.get("duration"):
                try:
                    value = parse_time(row["duration"])
                except ValueError as exc:
                    raise ValueError(f"{where}: duration: {exc}") from None
                if not value > 0:
                    raise ValueError(f"{where}: duration must be > 0, got {row['duration']!r}")
                if info["duration"] is not None and abs(info["duration"] - value) > 1e-6:
                    raise ValueError(f"{where}: duration {value} differs from {info['duration']} on an earlier row")
                info["duration"] = value
            if not row["start"] and not row["end"]:
                continue  # a video without highlights
            try:
                start, end = parse_time(row["start"]), parse_time(row["end"])
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            if start < 0:
                raise ValueError(f"{where}: start must be >= 0, got {row['start']!r}")
            if not end > start:
                raise ValueError(f"{where}: end ({row['end']}) must be after start ({row['start']})")
            info["intervals"].append((start, end, line))

    if not videos:
        raise ValueError(f"{path}: no rows")
    frames = []
    ids: dict[str, str] = {}
    for source, info in videos.items():
        where = f"{path}, line {info['line']}"
        vid = video_id_of(source)
        if vid in ids and ids[vid] != source:
            raise ValueError(f"{where}: video {source!r} and {ids[vid]!r} both give the id {vid!r}")
        ids[vid] = source
        duration = info["duration"]
        if duration is None:
            duration = _lookup_duration(durations, source, vid, where)
        intervals = []
        for start, end, line in info["intervals"]:
            if start >= duration or end > duration + END_TOLERANCE:
                raise ValueError(
                    f"{path}, line {line}: highlight [{start}, {end}] s is outside the video ({duration} s)"
                )
            intervals.append((start, min(end, duration)))
        windows = fixed_windows(duration, segment_seconds)
        covered = covered_length(windows, intervals)
        labels = covered >= 0.5 * (windows[:, 1] - windows[:, 0]) - _EPS
        frames.append(
            pd.DataFrame(
                {
                    "video_id": vid,
                    "dataset": "user",
                    "domain": info["domain"],
                    "split": info["split"],
                    "segment": np.arange(len(windows), dtype=np.int32),
                    "start": windows[:, 0],
                    "end": windows[:, 1],
                    "label": labels.astype(np.int8),
                    "scores": [None] * len(windows),
                    "source": source,
                }
            )
        )
    return conform(pd.concat(frames, ignore_index=True))


def _lookup_duration(durations: DurationSpec, source: str, vid: str, where: str) -> float:
    value = None
    if callable(durations):
        try:
            value = durations(source)
        except Exception as exc:  # a probing callable may fail in many ways: report which video
            raise ValueError(f"{where}: cannot get the duration of {source!r} ({exc})") from None
    elif isinstance(durations, Mapping):
        value = durations.get(source, durations.get(vid))
    if value is None:
        raise ValueError(f"{where}: no duration for video {source!r} (add a 'duration' column or pass durations)")
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{where}: duration of {source!r} must be > 0, got {value}")
    return value
