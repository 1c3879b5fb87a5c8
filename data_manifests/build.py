"""One entry point over the importers: ``build_manifest(kind, **kwargs)``."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from .cosum import cosum_manifest
from .lighthouse import lighthouse_manifest
from .tvsum_official import tvsum_official_manifest
from .umt import umt_manifest
from .user_csv import user_csv_manifest

IMPORTERS: dict[str, Callable[..., pd.DataFrame]] = {
    "umt": umt_manifest,
    "lighthouse": lighthouse_manifest,
    "tvsum-official": tvsum_official_manifest,
    "cosum": cosum_manifest,
    "user-csv": user_csv_manifest,
}


def build_manifest(kind: str, *args, **kwargs) -> pd.DataFrame:
    """Run the importer named ``kind`` (umt, lighthouse, tvsum-official, cosum, user-csv; "_" works for
    "-") with the given arguments, e.g. ``build_manifest("umt", "data/tvsum/umt")``."""
    key = kind.strip().lower().replace("_", "-")
    if key not in IMPORTERS:
        raise ValueError(f"unknown manifest kind {kind!r}; expected one of {', '.join(IMPORTERS)}")
    return IMPORTERS[key](*args, **kwargs)
