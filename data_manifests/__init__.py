"""Dataset manifests: one row per (video, segment) with domain, split, times, label and raw scores.

See :mod:`hl.data_manifests.schema` for the columns; importers return DataFrames in that schema.
"""

from .lighthouse import lighthouse_manifest, lighthouse_splits
from .schema import (
    COLUMNS,
    SCHEMA,
    SPLITS,
    conform,
    read_manifest,
    validate,
    video_table,
    write_manifest,
)
from .umt import umt_features, umt_manifest, umt_video_ids

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "SPLITS",
    "conform",
    "lighthouse_manifest",
    "lighthouse_splits",
    "read_manifest",
    "umt_features",
    "umt_manifest",
    "umt_video_ids",
    "validate",
    "video_table",
    "write_manifest",
]
