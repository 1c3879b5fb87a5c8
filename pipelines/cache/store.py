"""The feature cache: HDF5 arrays per (video, extractor) and a Parquet index. The one contract between stages.

Layout of a cache directory (readable without hl: h5py for arrays, pyarrow/pandas for tables)::

    CACHE/
      features/<extractor>/<key>.h5     one file per video x extractor
          features   float32 [S, D]     one row per segment (clip extractors)
          maps       uint8   [N, H, W]  saliency maps, chunked per frame, gzip (map extractors)
          times      float64 [N]        time (s) of each map's target frame
          segments   float64 [S, 2]     start/end seconds of each segment
          valid      bool    [S]        False where the input was missing (e.g. no audio track)
          attrs: video_id, source_path, fingerprint, extractor, config_hash, weights_hash, ...
      index/<extractor>/<key>.parquet   one row per unit (INDEX_SCHEMA); read the folder as one table
      manifest.parquet                  labels and splits, when imported (hl.data_manifests schema)

Every file is written under a temporary name and renamed into place, so a killed run never leaves a half
file and concurrent workers never share one. ``key`` is the video id made file-name safe.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hl.common import HLError, atomic_path, clean_stale_temps, is_plain_name, storage_error
from hl.common.files import temp_name

from . import index as index_files

FORMAT_VERSION = 1

INDEX_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("source_path", pa.string()),
        ("fingerprint", pa.string()),
        ("extractor", pa.string()),
        ("config_hash", pa.string()),
        ("weights_hash", pa.string()),
        ("status", pa.string()),  # "ok" or "failed"
        ("error", pa.string()),  # one line, for failures
        ("notes", pa.string()),  # e.g. "no audio track: zeros, valid=False"
        ("segments", pa.int32()),
        ("dim", pa.int32()),
        ("file", pa.string()),  # relative to the cache root
        ("duration_s", pa.float64()),
        ("decode_s", pa.float64()),
        ("model_s", pa.float64()),
        ("total_s", pa.float64()),
        ("created", pa.string()),
    ]
)


def video_key(video_id: str) -> str:
    """A file-name-safe key for a video id; ids that needed changing get a short hash so keys stay unique."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", video_id).strip(".") or "video"
    if safe != video_id:
        safe = f"{safe[:80]}-{hashlib.sha1(video_id.encode()).hexdigest()[:8]}"
    return safe


def fingerprint(path: str | Path, block: int = 1 << 20) -> str:
    """Content fingerprint: size plus SHA-1 of the first and last MiB (cheap for long videos)."""
    size = os.path.getsize(path)
    h = hashlib.sha1(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(block))
        if size > block:
            f.seek(max(block, size - block))
            h.update(f.read(block))
    return h.hexdigest()[:20]


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FeatureOrigin:
    """What made one unit's features, apart from the segment windows: the extractor's settings (its config
    without ``segments``), their hash, and the weights' hash. Two units with equal origins hold features of
    the same model, computed the same way; a trained run records the origins of its training features."""

    extractor: str
    config: dict
    config_hash: str
    weights_hash: str

    @property
    def made_by_hl(self) -> bool:
        """False for features imported from a release (hl cannot compute them for new videos)."""
        return "backbone" in self.config

    def describe(self) -> str:
        if not self.made_by_hl:
            return f"{self.extractor} features imported from {self.config.get('source', 'elsewhere')}"
        weights = "random weights" if self.weights_hash == "none" else f"weights sha256 {self.weights_hash[:12]}"
        return (f"{self.extractor} ({weights}, {self.config.get('precision', '?')}, "
                f"settings {self.config_hash})")

    def to_dict(self) -> dict:
        return {"extractor": self.extractor, "config": self.config, "config_hash": self.config_hash,
                "weights_hash": self.weights_hash}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureOrigin:
        return cls(str(d["extractor"]), dict(d["config"]), str(d["config_hash"]), str(d["weights_hash"]))

    @classmethod
    def from_config(cls, extractor: str, config: dict, weights_hash: str) -> FeatureOrigin:
        settings = {k: v for k, v in config.items() if k != "segments"}
        return cls(extractor, settings, config_hash(settings), weights_hash)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class FeatureStore:
    """Read and write one cache directory. Training, prediction and users' own jobs all go through here.

    >>> store = FeatureStore("cache")
    >>> store.index()                       # pandas DataFrame, one row per (video, extractor)
    >>> x = store.features("v1", "i3d")     # float32 [S, 1024]
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- paths -------------------------------------------------------------------------------------------
    def feature_path(self, video_id: str, extractor: str) -> Path:
        return self.root / "features" / self._name(extractor) / f"{video_key(self._id(video_id))}.h5"

    def index_path(self, video_id: str, extractor: str) -> Path:
        return self.root / "index" / self._name(extractor) / f"{video_key(self._id(video_id))}.parquet"

    def _id(self, video_id: str) -> str:
        if "\x00" in video_id:
            raise HLError(f"{self.root}: video id {video_id!r} holds a NUL character")
        return video_id

    def _name(self, extractor: str) -> str:
        if not is_plain_name(extractor):
            raise HLError(f"{self.root}: {extractor!r} cannot name an extractor's folder of the cache")
        return extractor

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.parquet"

    # -- writing -----------------------------------------------------------------------------------------
    def write_unit(
        self,
        video_id: str,
        extractor: str,
        arrays: dict[str, np.ndarray],
        attrs: dict[str, Any],
        map_datasets: Iterable[str] = ("maps",),
    ) -> Path:
        """Write one (video, extractor) HDF5 file atomically. Arrays named in `map_datasets` are stored
        uint8, chunked one frame per chunk and gzip-compressed; others as given (float32 for features)."""
        path = self.feature_path(video_id, extractor)
        try:
            self._write_h5(path, video_id, extractor, arrays, attrs, map_datasets)
        except OSError as exc:
            raise storage_error(path, exc) from None
        return path

    @staticmethod
    def _write_h5(path: Path, video_id: str, extractor: str, arrays: dict[str, np.ndarray], attrs: dict[str, Any],
                  map_datasets: Iterable[str]) -> None:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            for name, arr in arrays.items():
                arr = np.asarray(arr)
                if name in map_datasets and arr.ndim == 3:
                    f.create_dataset(
                        name, data=arr.astype(np.uint8), chunks=(1, *arr.shape[1:]),
                        compression="gzip", compression_opts=4, shuffle=True,
                    )
                else:
                    f.create_dataset(name, data=arr)
            f.attrs["hl_format"] = FORMAT_VERSION
            f.attrs["video_id"] = video_id
            f.attrs["extractor"] = extractor
            f.attrs["created"] = _now()
            for k, v in attrs.items():
                f.attrs[k] = v if not isinstance(v, dict | list) else json.dumps(v)

    def write_index_row(self, row: dict[str, Any]) -> Path:
        """Write (replace) the index row of one unit atomically."""
        full = {name: row.get(name) for name in INDEX_SCHEMA.names}
        full["created"] = full["created"] or _now()
        path = self.index_path(full["video_id"], full["extractor"])
        try:
            with atomic_path(path) as tmp:
                pq.write_table(pa.Table.from_pylist([full], schema=INDEX_SCHEMA), tmp)
        except OSError as exc:
            raise storage_error(path, exc) from None
        return path

    def check_writable(self) -> None:
        """Create the cache folder if needed and write (then remove) a file in it; a one-line StorageError
        naming the folder when the cache is read-only, unwritable or full."""
        for folder in (self.root / "features", self.root / "index"):
            probe = temp_name(folder / "writable")
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe.write_bytes(b"\0" * 4096)
            except OSError as exc:
                raise storage_error(folder, exc) from None
            finally:
                with contextlib.suppress(OSError):
                    probe.unlink()

    def clean_stale(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files left by killed writers (see :func:`hl.common.clean_stale_temps`)."""
        return sum(clean_stale_temps(self.root / sub, older_than_s) for sub in ("features", "index"))

    # -- reading -----------------------------------------------------------------------------------------
    def index(self, extractor: str | None = None) -> pd.DataFrame:
        """All index rows (or one extractor's) as a DataFrame with INDEX_SCHEMA's columns, one per unit."""
        return self.index_table(extractor).to_pandas()

    def index_table(self, extractor: str | None = None) -> pa.Table:
        """:meth:`index` as a pyarrow Table (cheaper for a million rows)."""
        return index_files.read_index(self.root, INDEX_SCHEMA, extractor and self._name(extractor))

    def row(self, video_id: str, extractor: str) -> dict[str, Any] | None:
        return index_files.read_row(self.root / "index" / self._name(extractor), video_key(self._id(video_id)),
                                    video_id, INDEX_SCHEMA)

    def compact(self, stale_lock_s: float = 3600.0) -> index_files.CompactReport:
        """Fold the per-unit index files into one file per extractor, atomically (see :mod:`.index`); a
        one-line HLError when another compaction is running."""
        return index_files.compact(self.root, INDEX_SCHEMA, stale_lock_s)

    def is_done(self, video_id: str, extractor: str, fingerprint: str, config: str, weights: str,
                include_failed: bool = True) -> bool:
        """True when the unit was already computed (or already failed, if `include_failed`) from the same
        content, config and weights, and its file is present."""
        row = self.row(video_id, extractor)
        if row is None or (row["fingerprint"], row["config_hash"], row["weights_hash"]) != (
            fingerprint, config, weights
        ):
            return False
        if row["status"] == "ok":
            return (self.root / row["file"]).exists()
        return include_failed

    def done_units(self, extractor: str, video_ids: Sequence[str], fingerprints: Sequence[str],
                   config_hashes: Sequence[str] | str, weights_hash: str, include_failed: bool = True) -> np.ndarray:
        """:meth:`is_done` for many videos of one extractor at once (bool [N]), from one read of the index and
        one listing of the feature folder: what planning a re-run of a million units needs. `config_hashes`
        may be one hash for every video."""
        import pyarrow.compute as pc

        name = self._name(extractor)
        idx = self.index_table(name).select(["video_id", "fingerprint", "config_hash", "weights_hash", "status",
                                             "file"])
        if idx.num_rows == 0 or len(video_ids) == 0:
            return np.zeros(len(video_ids), dtype=bool)
        pos = pc.index_in(pa.array(video_ids, pa.string()), value_set=idx["video_id"].combine_chunks())
        j = idx.take(pc.fill_null(pos, 0))  # row of each video (row 0 where it has none: masked below)
        same = pc.and_(pc.and_(pc.equal(j["fingerprint"], pa.array(fingerprints, pa.string())),
                               pc.equal(j["config_hash"], config_hashes if isinstance(config_hashes, str)
                                        else pa.array(config_hashes, pa.string()))),
                       pc.and_(pc.equal(j["weights_hash"], weights_hash), pc.is_valid(pos)))
        prefix = f"features/{name}/"
        try:
            present = pa.array(os.listdir(self.root / "features" / name), pa.string())
        except FileNotFoundError:
            present = pa.array([], pa.string())
        files = pc.fill_null(j["file"], "")
        here = pc.and_(pc.starts_with(files, prefix),
                       pc.is_in(pc.utf8_slice_codeunits(files, len(prefix)), value_set=present))
        is_ok = pc.equal(j["status"], "ok")
        kept = pc.and_(same, pc.if_else(is_ok, here, pa.scalar(bool(include_failed))))
        return pc.fill_null(kept, False).to_numpy(zero_copy_only=False)

    def videos(self, extractor: str | None = None) -> list[str]:
        """Ids of videos with at least one successful unit (of `extractor`, if given)."""
        import pyarrow.compute as pc

        idx = self.index_table(extractor).select(["video_id", "status"])
        return sorted(pc.unique(idx.filter(pc.equal(idx["status"], "ok"))["video_id"]).to_pylist())

    def extractors(self) -> list[str]:
        base = self.root / "features"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []

    def has(self, video_id: str, extractor: str) -> bool:
        """True when the unit's feature file is present."""
        return self.feature_path(video_id, extractor).exists()

    def _open(self, video_id: str, extractor: str) -> h5py.File:
        path = self.feature_path(video_id, extractor)
        if not path.exists():
            raise KeyError(f"{self.root}: no {extractor!r} features for video {video_id!r}")
        return h5py.File(path, "r")

    def features(self, video_id: str, extractor: str) -> np.ndarray:
        with self._open(video_id, extractor) as f:
            return f["features"][()]

    def segments(self, video_id: str, extractor: str) -> np.ndarray:
        with self._open(video_id, extractor) as f:
            return f["segments"][()]

    def valid(self, video_id: str, extractor: str) -> np.ndarray:
        with self._open(video_id, extractor) as f:
            if "valid" in f:
                return f["valid"][()]
            return np.ones(len(f["segments"]), dtype=bool)

    def maps(self, video_id: str, extractor: str, select: slice | np.ndarray = slice(None)) -> np.ndarray:
        with self._open(video_id, extractor) as f:
            return f["maps"][select]

    def array(self, video_id: str, extractor: str, name: str) -> np.ndarray:
        with self._open(video_id, extractor) as f:
            return f[name][()]

    def attrs(self, video_id: str, extractor: str) -> dict[str, Any]:
        with self._open(video_id, extractor) as f:
            return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}

    def origin(self, video_id: str, extractor: str) -> FeatureOrigin:
        """What made this unit's features (see :class:`FeatureOrigin`)."""
        attrs = self.attrs(video_id, extractor)
        config = attrs.get("config")
        if isinstance(config, str) and config:
            config = json.loads(config)
        if not isinstance(config, dict):  # a unit written without its config: only its hashes are known
            config = {"source": attrs.get("fingerprint", "unknown"), "config_hash": attrs.get("config_hash", "")}
        return FeatureOrigin.from_config(extractor, config, str(attrs.get("weights_hash", "")))

    def segment_rule(self, video_id: str, extractor: str) -> str | None:
        """How the unit's segments were made: ``"fixed:<seconds>"``, ``"manifest:<hash>"``, or None (imported)."""
        config = self.attrs(video_id, extractor).get("config")
        rule = json.loads(config).get("segments") if isinstance(config, str) and config else None
        return rule if isinstance(rule, str) else None

    def stack(self, video_id: str, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """The features of `names` for one video side by side -> ([T, D], valid [T]), cropped to the shortest;
        None when any of them is not cached."""
        parts, valid = [], []
        for name in names:
            try:
                parts.append(self.features(video_id, name))
                valid.append(self.valid(video_id, name))
            except KeyError:
                return None
        n = min(len(p) for p in parts)
        return (np.concatenate([p[:n] for p in parts], axis=1),
                np.logical_and.reduce([v[:n] for v in valid]))

    # -- manifest ----------------------------------------------------------------------------------------
    def manifest(self) -> pd.DataFrame:
        if not self.manifest_path.exists():
            raise HLError(f"{self.root}: no manifest.parquet (import one, or pass --manifest)")
        return pd.read_parquet(self.manifest_path)

