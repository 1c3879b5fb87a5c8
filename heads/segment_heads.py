"""Any trained segment head, by its file: the co-occurrence head (:mod:`hl.heads.fit`) or the ridge baseline
(:mod:`hl.heads.ridge`). Inference reads heads only through here.

    model = load_head("RUN/models/BK/seed0.pt")
    scores = score_head(model, videos)          # one [T] array in [0, 1] per video
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import fit, ridge
from .checkpoint import load_checkpoint

FORMATS = (fit.FORMAT, ridge.FORMAT)


def load_head(path: str | Path):
    """The head in ``path``, whichever kind it is; a one-line HLError for anything else."""
    fmt = load_checkpoint(path, FORMATS, "segment head")["format"]
    return ridge.load_ridge(path) if fmt == ridge.FORMAT else fit.load(path)


def score_head(model, videos: Sequence[fit.Video]) -> list[np.ndarray]:
    if isinstance(model, ridge.RidgeHead):
        return model.score(videos)
    return fit.score(model, videos)
