"""Bring released features into a cache, so heads train on them exactly as on features hl extracted.

``import_umt(root, cache)`` copies the UMT release (I3D RGB -> ``i3d``, I3D flow -> ``i3d_flow``,
PANN -> ``pann``) into CACHE/features and CACHE/index, and its labels and splits into CACHE/manifest.parquet.
Features are cropped to the manifest's segments (one row per segment).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from hl.data_manifests.schema import write_manifest
from hl.data_manifests.umt import umt_features, umt_manifest

from .store import FeatureStore, config_hash, fingerprint

SOURCE = "umt-release"


def import_umt(root: str | Path, cache: str | Path, splits: dict | None = None,
               progress: Callable[[str, int, int], None] | None = None) -> tuple[int, Path]:
    """Import the UMT release at `root` into `cache`. Returns (videos imported, manifest path)."""
    root = Path(root)
    store = FeatureStore(cache)
    manifest = umt_manifest(root, splits=splits)
    ids = sorted(manifest["video_id"].unique())
    for k, vid in enumerate(ids):
        rows = manifest[manifest["video_id"] == vid].sort_values("segment")
        segments = rows[["start", "end"]].to_numpy(dtype=np.float64)
        features = umt_features(root, vid)
        for name, arr in features.items():
            n = min(len(arr), len(segments))
            src = root / ("audio_features" if name == "pann" else "video_features")
            attrs = {"source_path": str(src), "fingerprint": SOURCE, "config_hash": config_hash({"src": SOURCE}),
                     "config": {"source": SOURCE, "extractor": name}, "weights_hash": SOURCE,
                     "notes": f"imported from the UMT feature release ({name})"}
            path = store.write_unit(vid, name, {"features": arr[:n].astype(np.float32), "segments": segments[:n]},
                                    attrs)
            store.write_index_row({
                "video_id": vid, "source_path": str(src), "fingerprint": _file_fp(root, vid, name),
                "extractor": name, "config_hash": attrs["config_hash"], "weights_hash": SOURCE, "status": "ok",
                "notes": attrs["notes"], "segments": n, "dim": arr.shape[1],
                "file": path.relative_to(store.root).as_posix(), "duration_s": float(segments[n - 1, 1]),
            })
        if progress is not None:
            progress(vid, k + 1, len(ids))
    path = write_manifest(manifest, store.manifest_path)
    return len(ids), path


def _file_fp(root: Path, vid: str, name: str) -> str:
    rel = {"i3d": f"video_features/{vid}_rgb.npy", "i3d_flow": f"video_features/{vid}_opt.npy",
           "pann": f"audio_features/{vid}.npy"}[name]
    return fingerprint(root / rel)
