"""The one manifest schema every importer produces: one row per (video, segment).

Columns
-------
video_id  string   the video's id (a YouTube id, or the stem/path the user gave)
dataset   string   where the labels come from: "tvsum", "youtube", "cosum", "user", ...
domain    string   the category / event / domain the video belongs to (TVSum "BK", YouTube "dog", ...)
split     string   "train", "val" or "test"; one split per video
segment   int32    0-based index of the segment inside its video (unique per video)
start     float64  segment start, seconds
end       float64  segment end, seconds (> start)
label     int8     1 = highlight, 0 = not
scores    list<float32>  the annotators' raw scores for the segment where the dataset has them
                   (TVSum: 20 scores 1-5; YouTube Highlights: [match] with match in {1, 0, -1});
                   null otherwise

A manifest is a pandas DataFrame with these columns (extra columns are allowed and kept) and is stored as
Parquet with this pyarrow schema.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hl.common import is_plain_name

SPLITS = ("train", "val", "test")

SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("segment", pa.int32(), nullable=False),
        pa.field("start", pa.float64(), nullable=False),
        pa.field("end", pa.float64(), nullable=False),
        pa.field("label", pa.int8(), nullable=False),
        pa.field("scores", pa.list_(pa.float32()), nullable=True),
    ]
)
COLUMNS = tuple(SCHEMA.names)
_STRING_COLUMNS = ("video_id", "dataset", "domain", "split")
_NUMPY_DTYPES = {"segment": np.int32, "start": np.float64, "end": np.float64, "label": np.int8}


def above_median_labels(scores: np.ndarray) -> np.ndarray:
    """Binary clip labels from a [T, A] matrix of annotator scores: 1 where the clip's mean score over the
    A annotators is strictly above the median (over the video's T clips) of those means, else 0.

    This is the training label of the manifest for TVSum. It is not the evaluation protocol: the TVSum
    top-5 mAP labels each annotator's column separately (see hl.heads.metrics).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0:
        raise ValueError(f"annotator scores must be a non-empty [T, A] matrix, got shape {scores.shape}")
    means = scores.mean(axis=1)
    return (means > np.median(means)).astype(np.int8)


def clip_rows(
    video_id: str, dataset: str, domain: str, split: str, scores: np.ndarray, clip_seconds: float
) -> pd.DataFrame:
    """Rows for one video cut into fixed-length clips with a [T, A] matrix of annotator scores:
    segment i spans [i * clip_seconds, (i + 1) * clip_seconds], ``scores`` = row i,
    ``label`` from :func:`above_median_labels`."""
    scores = np.asarray(scores, dtype=np.float32)
    idx = np.arange(scores.shape[0])
    return pd.DataFrame(
        {
            "video_id": video_id,
            "dataset": dataset,
            "domain": domain,
            "split": split,
            "segment": idx.astype(np.int32),
            "start": idx * float(clip_seconds),
            "end": (idx + 1) * float(clip_seconds),
            "label": above_median_labels(scores),
            "scores": list(scores),
        }
    )


def empty_manifest() -> pd.DataFrame:
    """A manifest with no rows and the schema's dtypes."""
    return conform(pd.DataFrame({c: [] for c in COLUMNS}))


def conform(df: pd.DataFrame) -> pd.DataFrame:
    """Validate ``df`` and return a copy with the schema's dtypes (pandas strings, segment int32,
    start/end float64, label int8, scores a list of float32 arrays or None), rows in their given order."""
    validate(df)
    out = df.copy()
    for col in _STRING_COLUMNS:
        out[col] = out[col].astype(str)
    for col, dtype in _NUMPY_DTYPES.items():
        out[col] = out[col].to_numpy().astype(dtype)
    out["scores"] = pd.Series(
        [None if _is_null(s) else np.asarray(s, dtype=np.float32) for s in out["scores"]],
        index=out.index,
        dtype=object,
    )
    return out.reset_index(drop=True)


def validate(df: pd.DataFrame) -> None:
    """Raise ValueError naming the offending column when ``df`` does not hold a valid manifest."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"a manifest must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest column {missing[0]!r} is missing (required: {', '.join(COLUMNS)})")

    for col in _STRING_COLUMNS:
        values = df[col]
        if values.isna().any():
            raise ValueError(f"manifest column {col!r} has null values")
        bad = [v for v in values if not isinstance(v, str) or v == ""]
        if bad:
            raise ValueError(f"manifest column {col!r} must hold non-empty strings, found {bad[0]!r}")
        bad = [v for v in values if "\x00" in v]
        if bad:
            raise ValueError(f"manifest column {col!r} holds a NUL character: {bad[0]!r}")
    bad = [d for d in df["domain"] if not is_plain_name(d)]
    if bad:
        raise ValueError(f"manifest column 'domain' holds {bad[0]!r}: a domain names a folder of a run (no / or \\, "
                         f"not . or ..)")
    bad_split = sorted(set(df["split"]) - set(SPLITS))
    if bad_split:
        raise ValueError(f"manifest column 'split' holds {bad_split[0]!r}; allowed: {', '.join(SPLITS)}")

    for col in _NUMPY_DTYPES:
        values = df[col]
        if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
            raise ValueError(f"manifest column {col!r} must be numeric, got dtype {values.dtype}")
        if values.isna().any():
            raise ValueError(f"manifest column {col!r} has null values")
    for col in ("segment", "label"):
        v = df[col].to_numpy(dtype=np.float64)
        if not np.all(v == np.round(v)):
            raise ValueError(f"manifest column {col!r} must hold integers")
    if (df["segment"] < 0).any():
        raise ValueError("manifest column 'segment' must be >= 0 (segments are 0-based)")
    if not df["label"].isin([0, 1]).all():
        raise ValueError("manifest column 'label' must be 0 or 1")
    start = df["start"].to_numpy(dtype=np.float64)
    end = df["end"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(start)) or (start < 0).any():
        raise ValueError("manifest column 'start' must be finite and >= 0 seconds")
    if not np.all(np.isfinite(end)) or not np.all(end > start):
        raise ValueError("manifest column 'end' must be finite and > 'start'")

    for s in df["scores"]:
        if _is_null(s):
            continue
        try:
            arr = np.asarray(s, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"manifest column 'scores' must hold lists of numbers, found {s!r}") from None
        if arr.ndim != 1 or not np.all(np.isfinite(arr)):
            raise ValueError(f"manifest column 'scores' must hold flat lists of finite numbers, found {s!r}")

    if df.duplicated(["video_id", "segment"]).any():
        vid, seg = df.loc[df.duplicated(["video_id", "segment"]), ["video_id", "segment"]].iloc[0]
        raise ValueError(f"manifest column 'segment' repeats segment {seg} of video {vid!r}")
    for col in ("dataset", "domain", "split"):
        per_video = df.groupby("video_id", sort=False)[col].nunique()
        if (per_video > 1).any():
            raise ValueError(f"manifest column {col!r} differs between rows of video {per_video.idxmax()!r}")


def to_table(df: pd.DataFrame) -> pa.Table:
    """The manifest as a pyarrow Table with exactly :data:`SCHEMA` (extra columns follow, as inferred)."""
    df = conform(df)
    arrays = [
        pa.array([None if s is None else s.tolist() for s in df[c]], type=SCHEMA.field(c).type)
        if c == "scores"
        else pa.array(df[c].to_numpy(), type=SCHEMA.field(c).type)
        for c in COLUMNS
    ]
    table = pa.Table.from_arrays(arrays, schema=SCHEMA)
    for c in df.columns:
        if c not in COLUMNS:
            table = table.append_column(c, pa.array(df[c].tolist()))
    return table


def write_manifest(df: pd.DataFrame, path: str | Path) -> Path:
    """Validate and write the manifest to one Parquet file (parent folders are created)."""
    path = Path(path)
    table = to_table(df)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest` (or any Parquet file with the schema's columns)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"manifest file not found: {path}")
    table = pq.read_table(path)
    df = pd.DataFrame({name: table.column(name).to_pylist() for name in table.column_names})
    if len(df) == 0:
        return empty_manifest()
    return conform(df)


def video_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per video, in first-appearance order: video_id, dataset, domain, split, num_segments,
    num_positive, duration (the last segment end, seconds)."""
    validate(df)
    grouped = df.groupby("video_id", sort=False)
    out = grouped.agg(
        dataset=("dataset", "first"),
        domain=("domain", "first"),
        split=("split", "first"),
        num_segments=("segment", "size"),
        num_positive=("label", "sum"),
        duration=("end", "max"),
    ).reset_index()
    out["video_id"] = out["video_id"].astype(str)
    out["num_segments"] = out["num_segments"].astype(np.int64)
    out["num_positive"] = out["num_positive"].astype(np.int64)
    out["duration"] = out["duration"].astype(np.float64)
    return out


def _is_null(value) -> bool:
    if value is None:
        return True
    return isinstance(value, float) and bool(np.isnan(value))
