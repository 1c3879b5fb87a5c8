"""Dataset manifests: one row per (video, segment) with domain, split, times, label and raw scores.

See :mod:`hl.data_manifests.schema` for the columns; every importer returns a DataFrame in that schema.
"""

from .build import IMPORTERS, build_manifest
from .cosum import cosum_manifest
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
from .tvsum_official import read_tvsum_mat, tvsum_official_manifest
from .umt import umt_features, umt_manifest, umt_video_ids
from .user_csv import user_csv_manifest

__all__ = [
    "COLUMNS",
    "IMPORTERS",
    "SCHEMA",
    "SPLITS",
    "build_manifest",
    "conform",
    "cosum_manifest",
    "lighthouse_manifest",
    "lighthouse_splits",
    "read_manifest",
    "read_tvsum_mat",
    "tvsum_official_manifest",
    "umt_features",
    "umt_manifest",
    "umt_video_ids",
    "user_csv_manifest",
    "validate",
    "video_table",
    "write_manifest",
]
