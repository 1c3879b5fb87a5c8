"""CoSum (Chu, Song and Jaimes, "Video Co-Summarization", CVPR 2015): 51 YouTube videos of 10 events.

Release layout (``root``; the dataset repository as published)::

    shots/<NN_event>/<name><k>_shots.txt      N + 1 lines of frame numbers: shot n (1-based) spans the frames
                                              of line n to line n + 1
    annotation/<NN_event>/<k>__<judge>.mat     MATLAB v5 file with ``labels`` [M, 2]: column 0 = the 1-based
                                              indices of the shots the judge selected, column 1 = all ones
                                              (judges: kk, vv, dualplus)

e.g. ``shots/01_base_jump/base1_shots.txt`` with ``annotation/01_base_jump/1__kk.mat``.

Manifest rules
--------------
* One segment per shot: video_id = the shot file's stem without ``_shots`` ("base1"); domain = the event
  folder without its number ("base_jump"); start/end = (frame - 1) / fps of the shot's two boundary lines.
  The frame numbers carry no rate, so ``fps`` must be given (a number, a mapping video_id -> fps, or a
  callable).
* ``scores`` = one 0/1 per judge, judges in sorted name order (dualplus, kk, vv): whether the judge selected
  the shot. ``label`` = 1 when at least ``min_votes`` judges (default 2, the dataset's own ground truth:
  "shots selected by at least two judges") selected it.
* The published annotations index shots after a post-processing step that splits long shots (paper Sec. 3.1)
  which the shot files do not include: in 22 of the 51 videos some selected indices exceed the number of
  shots in the shot file. Those selections are dropped with a warning (MINI-Net's loader drops them
  silently).
* A few shot files do not increase everywhere (10 of the 51 videos have a shot whose end line is at or
  before its start line): such empty shots are left out, with a warning; the remaining segments keep their
  shot index (``segment`` = shot number - 1), so they stay aligned with the annotations.
* CoSum has no standard split (it is a test set for methods trained elsewhere): every video gets ``split``
  (default "test") unless ``splits={domain: {split: [video ids]}}`` lists it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .schema import SPLITS, conform
from .splits import SplitSpec, split_lookup

_EVENT_DIR = re.compile(r"^(\d+)_(.+)$")
_SHOT_FILE = re.compile(r"^(.*?)(\d+)_shots\.txt$")
_ANNO_FILE = re.compile(r"^(\d+)__(.+)\.mat$")

FpsSpec = float | Mapping[str, float] | Callable[[str], float]


def read_shot_boundaries(path: str | Path) -> np.ndarray:
    """The frame numbers of a CoSum shot file (N + 1 integers for N shots, in file order)."""
    path = Path(path)
    values = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                values.append(int(float(text)))
            except ValueError:
                raise ValueError(f"{path}:{lineno}: not a frame number: {text!r}") from None
    if len(values) < 2:
        raise ValueError(f"{path}: a shot file needs at least two frame numbers (one shot)")
    return np.asarray(values, dtype=np.int64)


def read_selected_shots(path: str | Path) -> np.ndarray:
    """The 1-based shot indices a judge selected (column 0 of ``labels`` in a CoSum annotation .mat)."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        mat = loadmat(path)
    except (ValueError, OSError, NotImplementedError) as exc:
        raise ValueError(f"{path}: cannot read as a MATLAB v5 file ({exc})") from None
    if "labels" not in mat:
        raise ValueError(f"{path}: no 'labels' matrix")
    labels = np.asarray(mat["labels"])
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    if labels.ndim != 2 or labels.shape[1] < 1:
        raise ValueError(f"{path}: 'labels' must be an [M, 2] matrix, got shape {labels.shape}")
    shots = labels[:, 0].astype(np.int64)
    if (shots < 1).any():
        raise ValueError(f"{path}: shot indices are 1-based, found {shots.min()}")
    return np.unique(shots)


def read_cosum(root: str | Path) -> list[dict]:
    """Every video of a CoSum release: dicts with video_id, domain, boundaries (frame numbers) and
    selections {judge: 1-based shot indices}."""
    root = Path(root)
    shots_dir, anno_dir = root / "shots", root / "annotation"
    if not shots_dir.is_dir() or not anno_dir.is_dir():
        raise ValueError(f"{root}: a CoSum release needs 'shots/' and 'annotation/' folders")
    videos = []
    for event_dir in sorted(p for p in shots_dir.iterdir() if p.is_dir()):
        match = _EVENT_DIR.match(event_dir.name)
        domain = match.group(2) if match else event_dir.name
        annotations: dict[str, dict[str, Path]] = {}
        for mat_path in sorted((anno_dir / event_dir.name).glob("*.mat")):
            m = _ANNO_FILE.match(mat_path.name)
            if m:
                annotations.setdefault(str(int(m.group(1))), {})[m.group(2)] = mat_path
        for shot_path in sorted(event_dir.glob("*_shots.txt")):
            m = _SHOT_FILE.match(shot_path.name)
            if not m:
                continue
            index = str(int(m.group(2)))
            judges = annotations.get(index)
            if not judges:
                raise ValueError(f"{shot_path}: no annotation {index}__<judge>.mat in {anno_dir / event_dir.name}")
            videos.append(
                {
                    "video_id": shot_path.name[: -len("_shots.txt")],
                    "domain": domain,
                    "shot_file": shot_path,
                    "boundaries": read_shot_boundaries(shot_path),
                    "selections": {judge: read_selected_shots(p) for judge, p in sorted(judges.items())},
                }
            )
    if not videos:
        raise ValueError(f"{shots_dir}: no <event>/<name><k>_shots.txt files")
    return videos


def cosum_manifest(
    root: str | Path,
    fps: FpsSpec,
    splits: SplitSpec | None = None,
    split: str = "test",
    min_votes: int = 2,
) -> pd.DataFrame:
    """Manifest of a CoSum release: one segment per shot, per-judge selections as scores, label = at least
    ``min_votes`` judges. See the module docstring."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    lookup = split_lookup(splits) if splits is not None else {}
    frames = []
    for video in read_cosum(root):
        vid = video["video_id"]
        rate = _fps_for(fps, vid)
        bounds = video["boundaries"]
        n_shots = len(bounds) - 1
        judges = sorted(video["selections"])
        votes = np.zeros((n_shots, len(judges)), dtype=np.float32)
        dropped = 0
        for j, judge in enumerate(judges):
            chosen = video["selections"][judge]
            dropped += int((chosen > n_shots).sum())
            votes[chosen[chosen <= n_shots] - 1, j] = 1.0
        if dropped:
            warnings.warn(
                f"CoSum video {vid!r}: {dropped} selected shot indices exceed its {n_shots} shots "
                f"({video['shot_file'].name}); dropped",
                stacklevel=2,
            )
        keep = bounds[1:] > bounds[:-1]
        if not keep.all():
            warnings.warn(
                f"CoSum video {vid!r}: shots {(np.flatnonzero(~keep) + 1).tolist()} end at or before their "
                f"start ({video['shot_file'].name}); left out",
                stacklevel=2,
            )
        rows = pd.DataFrame(
            {
                "video_id": vid,
                "dataset": "cosum",
                "domain": video["domain"],
                "split": lookup.get(vid, (None, split))[1],
                "segment": np.arange(n_shots, dtype=np.int32),
                "start": (bounds[:-1] - 1) / rate,
                "end": (bounds[1:] - 1) / rate,
                "label": (votes.sum(axis=1) >= min_votes).astype(np.int8),
                "scores": list(votes),
            }
        )
        frames.append(rows[keep])
    return conform(pd.concat(frames, ignore_index=True))


def _fps_for(fps: FpsSpec, video_id: str) -> float:
    if callable(fps):
        value = fps(video_id)
    elif isinstance(fps, Mapping):
        if video_id not in fps:
            raise ValueError(f"no fps given for CoSum video {video_id!r}")
        value = fps[video_id]
    else:
        value = fps
    value = float(value)
    if not value > 0:
        raise ValueError(f"fps of CoSum video {video_id!r} must be > 0, got {value}")
    return value
