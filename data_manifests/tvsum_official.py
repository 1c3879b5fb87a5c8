"""The official TVSum release (yalesong/tvsum): ``ydata-tvsum50.mat``, MATLAB v7.3 (HDF5).

The file holds a struct array ``tvsum50`` with 50 entries and the fields ``video`` (YouTube id), ``category``
(domain code, e.g. "VT"), ``title``, ``length`` (seconds), ``nframes``, ``user_anno`` (20 annotators x
nframes, per-frame scores 1-5) and ``gt_score`` (per-frame mean). In HDF5 every field is an object
reference per entry; strings are uint16 character arrays.

Segments: fixed ``clip_seconds`` windows (default 2 s, TVSum's shot length) at fps = nframes / length;
segment i holds frames ``[floor(i * clip_seconds * fps), floor((i + 1) * clip_seconds * fps))``; only whole
segments are kept. A segment's score for an annotator is, by default, the mean of that annotator's frame
scores inside it (``reduce="mean"``); ``reduce="center"`` takes the frame at the segment's centre
(``floor((i + 0.5) * clip_seconds * fps)``), which reproduces the scores of the UMT release exactly.
(With the mean, segment means correlate with the UMT scores at r >= 0.999 per video; only about 58% of the
values are equal, because annotators' 2-s shots are not aligned with these windows.)

Labels as everywhere for TVSum: ``scores`` = the 20 per-segment scores; ``label`` = 1 when the segment's mean
score is above the video's median of those means. Domain = category.

Splits: ``splits={domain: {split: [ids]}}``, or, when None, the lighthouse split (lighthouse "val" -> "test")
found in ``<folder of the .mat>/../lighthouse`` or ``<folder of the .mat>/lighthouse``; videos not listed in
the splits are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .schema import clip_rows, conform, empty_manifest
from .splits import SplitSpec, lighthouse_beside, split_lookup

FIELDS = ("video", "category", "title", "length", "nframes", "user_anno", "gt_score")
REDUCTIONS = ("mean", "center")


def read_tvsum_mat(path: str | Path) -> list[dict]:
    """The 50 entries of ``ydata-tvsum50.mat`` as dicts: video, category, title (str), length (float s),
    nframes (int), user_anno [nframes, 20] float32, gt_score [nframes] float32."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise ValueError(f"TVSum .mat file not found: {path}")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not a MATLAB v7.3 (HDF5) file ({exc})") from None
    with fh:
        if "tvsum50" not in fh:
            raise ValueError(f"{path}: no 'tvsum50' struct in the file")
        group = fh["tvsum50"]
        missing = [name for name in FIELDS if name not in group]
        if missing:
            raise ValueError(f"{path}: 'tvsum50' has no field {missing[0]!r}")
        n = group["video"].shape[0]
        entries = []
        for i in range(n):
            raw = {name: fh[group[name][i, 0]][()] for name in FIELDS}
            user_anno = np.asarray(raw["user_anno"], dtype=np.float32)  # stored [annotators, nframes]
            nframes = int(np.asarray(raw["nframes"]).ravel()[0])
            if user_anno.shape[1] != nframes:
                user_anno = user_anno.T
            if user_anno.shape[1] != nframes:
                raise ValueError(f"{path}: entry {i} user_anno shape {user_anno.shape} vs nframes {nframes}")
            entries.append(
                {
                    "video": _chars(raw["video"]),
                    "category": _chars(raw["category"]),
                    "title": _chars(raw["title"]),
                    "length": float(np.asarray(raw["length"]).ravel()[0]),
                    "nframes": nframes,
                    "user_anno": np.ascontiguousarray(user_anno.T),  # [nframes, annotators]
                    "gt_score": np.asarray(raw["gt_score"], dtype=np.float32).ravel(),
                }
            )
    return entries


def segment_scores(frame_scores: np.ndarray, fps: float, clip_seconds: float = 2.0, reduce: str = "mean") -> np.ndarray:
    """Per-segment scores [S, A] from per-frame scores [F, A] (see the module docstring for the windows)."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"unknown reduce {reduce!r}; expected one of {', '.join(REDUCTIONS)}")
    frame_scores = np.asarray(frame_scores, dtype=np.float64)
    if frame_scores.ndim != 2:
        raise ValueError(f"frame scores must be [frames, annotators], got shape {frame_scores.shape}")
    if not fps > 0 or not clip_seconds > 0:
        raise ValueError(f"fps and clip_seconds must be > 0, got {fps} and {clip_seconds}")
    n_frames = frame_scores.shape[0]
    clip_frames = clip_seconds * fps
    if clip_frames < 1:
        raise ValueError(f"a {clip_seconds}-s segment at {fps} fps holds less than one frame")
    n = int(np.floor(n_frames / clip_frames + 1e-9))
    if n == 0:
        return np.zeros((0, frame_scores.shape[1]), dtype=np.float32)
    if reduce == "center":
        idx = np.minimum(np.floor((np.arange(n) + 0.5) * clip_frames).astype(int), n_frames - 1)
        return frame_scores[idx].astype(np.float32)
    bounds = np.minimum(np.floor(np.arange(n + 1) * clip_frames + 1e-9).astype(int), n_frames)
    # frames after the last whole segment are left out of its sum
    sums = np.add.reduceat(frame_scores[: bounds[-1]], bounds[:-1], axis=0)
    return (sums / np.diff(bounds)[:, None]).astype(np.float32)


def tvsum_official_manifest(
    path: str | Path,
    splits: SplitSpec | None = None,
    clip_seconds: float = 2.0,
    reduce: str = "mean",
) -> pd.DataFrame:
    """Manifest of ``ydata-tvsum50.mat``: ``clip_seconds`` segments, 20 scores each, domain = category."""
    path = Path(path)
    if splits is not None:
        lookup = split_lookup(splits)
    else:
        lookup = lighthouse_beside(path.parent.parent / "lighthouse", path.parent / "lighthouse")
        if lookup is None:
            raise ValueError(
                f"no split for {path}: no lighthouse files beside it; pass splits={{domain: {{split: [ids]}}}}"
            )
    frames = []
    for entry in read_tvsum_mat(path):
        vid = entry["video"]
        if vid not in lookup:
            continue
        fps = entry["nframes"] / entry["length"]
        scores = segment_scores(entry["user_anno"], fps, clip_seconds, reduce)
        if len(scores) == 0:
            continue
        split = lookup[vid][1]
        frames.append(clip_rows(vid, "tvsum", entry["category"], split, scores, clip_seconds))
    if not frames:
        if splits is not None:
            raise ValueError(f"none of the videos listed in splits is in {path}")
        return empty_manifest()
    return conform(pd.concat(frames, ignore_index=True))


def _chars(array: np.ndarray) -> str:
    """A MATLAB char array (uint16 code units) as a str. Some TVSum titles hold UTF-8 bytes stored one per
    char ("Å\xa0KODA"); those are decoded back ("ŠKODA")."""
    codes = np.asarray(array).ravel(order="F").astype(np.uint16)
    text = codes.tobytes().decode("utf-16-le")
    if not text.isascii() and all(ord(c) < 256 for c in text):
        try:
            return text.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            pass
    return text
