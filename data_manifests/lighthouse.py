"""TVSum labels as released by lighthouse (line-corporation/lighthouse, data/tvsum): JSON lines.

Files: ``tvsum_train_release.jsonl`` and ``tvsum_val_release.jsonl``, one video per line with ``vid``,
``domain`` (TVSum category code, e.g. "BK"), ``query`` (the title), ``duration`` (the number of 2-s clips) and
``label`` (one row of 20 annotator scores, 1-5, per 2-s clip).

Split convention: lighthouse's split holds 4 "train" and 1 "val" video per domain. The literature evaluates
TVSum on those held-out videos and trains on the other 4, and no separate validation video exists, so this
importer maps lighthouse "val" to manifest split **"test"** ("train" stays "train").

Labels: ``scores`` keeps the 20 raw scores of each clip; ``label`` = 1 when the clip's mean score is above the
median (over the video) of the clip means (:func:`hl.data_manifests.schema.above_median_labels`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .schema import clip_rows, conform, empty_manifest

CLIP_SECONDS = 2.0
SPLIT_FILES = {"train": "tvsum_train_release.jsonl", "test": "tvsum_val_release.jsonl"}


def read_lighthouse_tvsum(directory: str | Path) -> list[tuple[str, dict]]:
    """(manifest split, record) for every line of the lighthouse TVSum files found in ``directory``."""
    directory = Path(directory)
    found = [(split, directory / name) for split, name in SPLIT_FILES.items() if (directory / name).exists()]
    if not found:
        names = " or ".join(SPLIT_FILES.values())
        raise ValueError(f"no lighthouse TVSum file ({names}) in {directory}")
    out = []
    for split, path in found:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                for key in ("vid", "domain", "label"):
                    if key not in record:
                        raise ValueError(f"{path}:{lineno}: missing field {key!r}")
                out.append((split, record))
    return out


def lighthouse_splits(directory: str | Path) -> dict[str, dict[str, list[str]]]:
    """``{domain: {"train": [ids], "test": [ids]}}`` from the lighthouse TVSum files
    (lighthouse "val" -> "test"), ids in file order."""
    splits: dict[str, dict[str, list[str]]] = {}
    for split, record in read_lighthouse_tvsum(directory):
        per_domain = splits.setdefault(str(record["domain"]), {"train": [], "test": []})
        per_domain[split].append(str(record["vid"]))
    return splits


def lighthouse_manifest(directory: str | Path) -> pd.DataFrame:
    """Manifest rows (dataset "tvsum", 2-s segments, 20 raw scores, above-median label) for every video of the
    lighthouse TVSum files in ``directory``."""
    frames = []
    for split, record in read_lighthouse_tvsum(directory):
        scores = np.asarray(record["label"], dtype=np.float32)
        if scores.ndim != 2 or scores.shape[0] == 0:
            raise ValueError(f"lighthouse video {record['vid']!r}: 'label' must be a non-empty list of rows")
        frames.append(clip_rows(str(record["vid"]), "tvsum", str(record["domain"]), split, scores, CLIP_SECONDS))
    return conform(pd.concat(frames, ignore_index=True)) if frames else empty_manifest()
