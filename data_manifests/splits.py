"""Split assignments shared by the importers: ``{domain: {split: [ids]}}`` -> per-video (domain, split)."""

from __future__ import annotations

from pathlib import Path

from .lighthouse import SPLIT_FILES, lighthouse_splits
from .schema import SPLITS

SplitSpec = dict[str, dict[str, list[str]]]


def split_lookup(splits: SplitSpec) -> dict[str, tuple[str, str]]:
    """``{video_id: (domain, split)}`` from ``{domain: {split: [video ids]}}``; a video listed twice, or a
    split name other than train/val/test, is an error."""
    if not isinstance(splits, dict):
        raise ValueError("splits must be {domain: {split: [video ids]}}")
    assigned: dict[str, tuple[str, str]] = {}
    for domain, per_split in splits.items():
        if not isinstance(per_split, dict):
            raise ValueError(f"splits[{domain!r}] must be {{split: [video ids]}}")
        for split, ids in per_split.items():
            if split not in SPLITS:
                raise ValueError(f"splits[{domain!r}] has split {split!r}; allowed: {', '.join(SPLITS)}")
            if isinstance(ids, str):
                raise ValueError(f"splits[{domain!r}][{split!r}] must be a list of video ids, not a string")
            for vid in ids:
                vid = str(vid)
                if vid in assigned and assigned[vid] != (str(domain), split):
                    raise ValueError(f"video {vid!r} is listed twice in splits ({domain!r}/{split!r})")
                assigned[vid] = (str(domain), split)
    return assigned


def lighthouse_beside(*folders: str | Path) -> dict[str, tuple[str, str]] | None:
    """The lighthouse TVSum split lookup from the first folder holding lighthouse files, or None."""
    for folder in folders:
        folder = Path(folder)
        if any((folder / name).exists() for name in SPLIT_FILES.values()):
            return split_lookup(lighthouse_splits(folder))
    return None
