"""The UMT feature release (TencentARC/UMT): per-clip features and labels of TVSum and YouTube Highlights.

Layout of ``root`` (one release folder, e.g. ``data/tvsum/umt``)::

    video_features/{id}_rgb.npy   I3D RGB,  [T, 1024] float64
    video_features/{id}_opt.npy   I3D flow, [T, 1024] float64
    audio_features/{id}.npy       PANN,     [T, 2048] float32
    tvsum_anno.json               {id: {"domain", "fps", "frames", "title", "url", "length",
                                        "anno": [T][20] scores 1-5}}        (2-s clips)
    youtube_anno.json             {id: {"match": [T] in {1, 0, -1},
                                        "clip": [T][start_frame, end_frame], "fps", "domain"?, ...}}
                                  (100-frame windows, 50% overlap)

Manifest rules
--------------
* TVSum: segment i = [2i, 2i + 2] s. ``scores`` = the 20 raw scores; ``label`` = 1 when the clip's mean score
  is above the median over the video of the clip means. (Training label only: the TVSum top-5 mAP labels each
  annotator separately, see ``hl.heads.metrics``.)
* YouTube Highlights: segment i = [clip[i][0] / fps, clip[i][1] / fps] s. ``scores`` = [match];
  ``label`` = match > 0 (borderline 0 counts negative, as the reference evaluation does).
* Each video's rows are cropped to the shortest of its label count and its feature files' lengths (when the
  feature files are present), so the manifest's segments index :func:`umt_features` rows one to one
  (TVSum ``kLxoNp-UchI``: 64 labels, 64 visual, 65 audio clips -> 64 rows).

Splits
------
``splits={domain: {"train": [...], "val": [...], "test": [...]}}`` assigns videos explicitly; videos not
listed are left out of the manifest. UMT's own split files (``datasets/utils/static.py``) name only ``train``
and ``val``, and their ``val`` list is the benchmark's test set: a domain whose splits hold no ``test`` list has
its ``val`` list read as ``test`` (:func:`umt_split_names`), so those videos are scored and never chosen on.
With ``splits=None``: a video uses the ``"split"`` field of its
annotation entry when the release stores one (the TVSum release does not); otherwise the lighthouse TVSum
split when the lighthouse files are found beside the release (``root/../lighthouse`` or
``root/lighthouse``), with lighthouse "val" as "test" (see :mod:`hl.data_manifests.lighthouse`);
otherwise it is an error asking for ``splits``. A video's domain is its entry's ``"domain"`` field, else
the ``splits`` key listing it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from hl.common import is_plain_name

from .schema import SPLITS, clip_rows, conform, empty_manifest
from .splits import lighthouse_beside, split_lookup

CLIP_SECONDS = 2.0
ANNO_FILES = {"tvsum": "tvsum_anno.json", "youtube": "youtube_anno.json"}


def load_umt_anno(root: str | Path, dataset: str) -> dict[str, dict]:
    """The release's annotation dict for ``dataset`` ("tvsum" or "youtube")."""
    if dataset not in ANNO_FILES:
        raise ValueError(f"unknown UMT dataset {dataset!r}; expected one of {', '.join(ANNO_FILES)}")
    path = Path(root) / ANNO_FILES[dataset]
    if not path.exists():
        raise ValueError(f"UMT annotation file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        anno = json.load(fh)
    if not isinstance(anno, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by video id, got {type(anno).__name__}")
    return anno


def umt_datasets(root: str | Path) -> list[str]:
    """The datasets ("tvsum", "youtube") whose annotation file is in ``root``."""
    return [name for name, file in ANNO_FILES.items() if (Path(root) / file).exists()]


def umt_video_ids(root: str | Path) -> list[str]:
    """Sorted ids of every video annotated in the release (all annotation files found in ``root``)."""
    datasets = umt_datasets(root)
    if not datasets:
        raise ValueError(f"no UMT annotation file ({', '.join(ANNO_FILES.values())}) in {root}")
    ids: set[str] = set()
    for name in datasets:
        ids.update(load_umt_anno(root, name))
    return sorted(ids)


def feature_paths(root: str | Path, video_id: str) -> dict[str, Path]:
    root = Path(root)
    if not is_plain_name(video_id):
        raise ValueError(f"{root}: the annotations name video {video_id!r}, which cannot name a feature file "
                         f"of the release (a path separator, NUL or ..)")
    return {
        "i3d": root / "video_features" / f"{video_id}_rgb.npy",
        "i3d_flow": root / "video_features" / f"{video_id}_opt.npy",
        "pann": root / "audio_features" / f"{video_id}.npy",
    }


def umt_features(root: str | Path, video_id: str) -> dict[str, np.ndarray]:
    """``{"i3d": [T,1024], "i3d_flow": [T,1024], "pann": [T,2048]}`` as float32, all cropped to the shortest
    of the three lengths (as the reference loader does)."""
    arrays = {}
    for key, path in feature_paths(root, video_id).items():
        if not path.exists():
            raise ValueError(f"UMT feature file for {video_id!r} not found: {path}")
        arr = np.load(path)
        if arr.ndim != 2:
            raise ValueError(f"{path}: expected a [T, D] array, got shape {arr.shape}")
        arrays[key] = arr
    n = min(a.shape[0] for a in arrays.values())
    return {k: np.ascontiguousarray(a[:n], dtype=np.float32) for k, a in arrays.items()}


def umt_manifest(
    root: str | Path,
    splits: dict[str, dict[str, list[str]]] | None = None,
    datasets: list[str] | None = None,
) -> pd.DataFrame:
    """Manifest of the release in ``root`` (every annotation file found, or only ``datasets``).
    See the module docstring for the label, segment and split rules."""
    root = Path(root)
    datasets = umt_datasets(root) if datasets is None else list(datasets)
    if not datasets:
        raise ValueError(f"no UMT annotation file ({', '.join(ANNO_FILES.values())}) in {root}")
    assigned = split_lookup(umt_split_names(splits)) if splits is not None else None
    fallback = None if splits is not None else lighthouse_beside(root.parent / "lighthouse", root / "lighthouse")

    frames = []
    for dataset in datasets:
        anno = load_umt_anno(root, dataset)
        for video_id, entry in anno.items():
            where = _place(video_id, entry, dataset, assigned, fallback, root)
            if where is None:
                continue
            domain, split = where
            rows = (
                _tvsum_rows(video_id, entry, domain, split)
                if dataset == "tvsum"
                else _youtube_rows(video_id, entry, domain, split)
            )
            n = _feature_length(root, video_id)
            frames.append(rows if n is None else rows.iloc[: min(n, len(rows))])
    if not frames:
        if splits is not None:
            raise ValueError(f"none of the videos listed in splits is annotated in {root}")
        return empty_manifest()
    return conform(pd.concat(frames, ignore_index=True))


def umt_split_names(splits: dict) -> dict:
    """UMT's split naming -> hl's: per domain, a ``val`` list with no ``test`` list beside it is the test set
    (UMT evaluates on ``val``). Splits that name a ``test`` list are kept as they are."""
    if not isinstance(splits, dict):
        return splits  # split_lookup names the error
    out = {}
    for domain, per_split in splits.items():
        if isinstance(per_split, dict) and "val" in per_split and "test" not in per_split:
            per_split = {("test" if k == "val" else k): v for k, v in per_split.items()}
        out[domain] = per_split
    return out


def _tvsum_rows(video_id: str, entry: dict, domain: str, split: str) -> pd.DataFrame:
    if "anno" not in entry:
        raise ValueError(f"TVSum video {video_id!r}: annotation entry has no 'anno' field")
    scores = np.asarray(entry["anno"], dtype=np.float32)
    if scores.ndim != 2 or scores.shape[0] == 0:
        raise ValueError(f"TVSum video {video_id!r}: 'anno' must be a non-empty [T][annotators] list")
    return clip_rows(video_id, "tvsum", domain, split, scores, CLIP_SECONDS)


def _youtube_rows(video_id: str, entry: dict, domain: str, split: str) -> pd.DataFrame:
    for key in ("match", "clip", "fps"):
        if key not in entry:
            raise ValueError(f"YouTube video {video_id!r}: annotation entry has no {key!r} field")
    match = np.asarray(entry["match"], dtype=np.float64)
    clips = np.asarray(entry["clip"], dtype=np.float64)
    fps = float(entry["fps"])
    if match.ndim != 1 or clips.shape != (len(match), 2):
        raise ValueError(
            f"YouTube video {video_id!r}: 'clip' must hold one [start_frame, end_frame] per 'match' entry "
            f"(got {len(match)} matches, clip shape {clips.shape})"
        )
    if not set(np.unique(match)) <= {-1.0, 0.0, 1.0}:
        raise ValueError(f"YouTube video {video_id!r}: 'match' values must be 1, 0 or -1")
    if not fps > 0:
        raise ValueError(f"YouTube video {video_id!r}: 'fps' must be > 0, got {fps}")
    return pd.DataFrame(
        {
            "video_id": video_id,
            "dataset": "youtube",
            "domain": domain,
            "split": split,
            "segment": np.arange(len(match), dtype=np.int32),
            "start": clips[:, 0] / fps,
            "end": clips[:, 1] / fps,
            "label": (match > 0).astype(np.int8),
            "scores": [np.array([m], dtype=np.float32) for m in match],
        }
    )


def _place(
    video_id: str,
    entry: dict,
    dataset: str,
    assigned: dict[str, tuple[str, str]] | None,
    fallback: dict[str, tuple[str, str]] | None,
    root: Path,
) -> tuple[str, str] | None:
    """(domain, split) of a video, or None when explicit splits leave it out."""
    if not isinstance(entry, dict):
        raise ValueError(f"{dataset} video {video_id!r}: annotation entry must be an object")
    if assigned is not None:
        if video_id not in assigned:
            return None
        domain, split = assigned[video_id]
        return str(entry.get("domain", domain)), split
    if "split" in entry:
        split = str(entry["split"])
        if split not in SPLITS:
            raise ValueError(f"{dataset} video {video_id!r}: stored split {split!r} is not one of {SPLITS}")
    elif fallback is not None and dataset == "tvsum" and video_id in fallback:
        split = fallback[video_id][1]
    else:
        raise ValueError(
            f"{dataset} video {video_id!r} has no split in {root} (no stored split, no lighthouse split "
            "beside it): pass splits={domain: {'train': [...], 'test': [...]}}"
        )
    if "domain" in entry:
        return str(entry["domain"]), split
    if fallback is not None and video_id in fallback:
        return fallback[video_id][0], split
    raise ValueError(f"{dataset} video {video_id!r} has no 'domain' field: pass splits to name its domain")


def _feature_length(root: Path, video_id: str) -> int | None:
    lengths = []
    for path in feature_paths(root, video_id).values():
        if path.exists():
            lengths.append(np.load(path, mmap_mode="r").shape[0])
    return min(lengths) if lengths else None
