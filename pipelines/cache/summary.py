"""What a cache holds, as plain data (``hl cache info``, ``hl cache info --json``)."""
from __future__ import annotations

from pathlib import Path

from .store import FeatureStore


def cache_summary(path: str | Path) -> dict:
    """``{"cache", "videos", "videos_with_features", "extractors": {name: {"ok", "failed", "segments", "dim",
    "weights"}}, "failures": [{"video_id", "error"}], "manifest": {"videos", "domains", "splits"} | None}``;
    ``weights`` are the sha256 of the weights files the extractor's units were made with ("none": random or
    weight-free), ``failures`` one per failed video (its first reason)."""
    import pyarrow.compute as pc

    store = FeatureStore(path)
    idx = store.index_table().select(["video_id", "extractor", "status", "segments", "dim", "weights_hash",
                                      "error"])
    info: dict = {"cache": str(path), "videos": 0, "videos_with_features": 0, "extractors": {}, "failures": [],
                  "manifest": None}
    if idx.num_rows:
        is_ok = pc.equal(idx["status"], "ok")
        ok = idx.filter(is_ok)
        info["videos"] = pc.count_distinct(idx["video_id"]).as_py()
        info["videos_with_features"] = pc.count_distinct(ok["video_id"]).as_py()
        every = {r["extractor"]: r for r in idx.group_by("extractor").aggregate(
            [("video_id", "count"), ("weights_hash", "distinct")]).to_pylist()}
        good = {r["extractor"]: r for r in ok.group_by("extractor").aggregate(
            [("video_id", "count"), ("segments", "sum"), ("dim", "max")]).to_pylist()}
        for name in sorted(every):
            g, n = good.get(name, {}), every[name]["video_id_count"]
            n_ok = g.get("video_id_count", 0)
            info["extractors"][name] = {
                "ok": n_ok, "failed": n - n_ok, "segments": int(g.get("segments_sum") or 0),
                "dim": int(g.get("dim_max") or 0),
                "weights": sorted({str(w) for w in every[name]["weights_hash_distinct"]}),
            }
        failed = idx.filter(pc.invert(is_ok)).select(["video_id", "error"]).to_pandas().drop_duplicates("video_id")
        info["failures"] = [{"video_id": str(v), "error": None if e is None else str(e)}
                            for v, e in zip(failed["video_id"], failed["error"])]
    if store.manifest_path.exists():
        m = store.manifest()
        splits = m.drop_duplicates("video_id")["split"].value_counts()
        info["manifest"] = {"videos": int(m["video_id"].nunique()), "domains": int(m["domain"].nunique()),
                            "splits": {str(k): int(v) for k, v in splits.items()}}
    return info
