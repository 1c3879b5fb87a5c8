"""Honest figures of the segment heads with and without model selection, and of the ridge baseline, through
`hl train-head`'s library API (cache + manifest), nothing chosen on a test video:

    python benchmarks/selection.py --data tvsum [--variants shipped,select,select-folds,ridge] [--seeds 0,1,2,3,4]
    python benchmarks/selection.py --data tvsum-rotated      # 5 folds, each video a test video once
    python benchmarks/selection.py --data youtube_dev --seeds 0

* ``tvsum``: the lighthouse standard split (4 train / 1 test video per domain), the released UMT features.
* ``tvsum-rotated``: per domain the videos sorted by id; rotation r tests the r-th video and trains on the other
  4; mean +- std over (rotation, seed) of the mean over domains.
* ``youtube_dev``: dog and parkour with UMT's split file as it is (its ``val`` list is the test set).

Variants: ``shipped`` (HeadConfig() and 30 fixed epochs), ``select`` (selection on the training videos, refit on
all of them), ``select-folds`` (the same selection, the fold heads averaged), ``ridge``. Prints per variant the
per-domain and overall mean +- std over seeds, the wall time and the CPU time of the worker processes (on a
shared machine the CPU time / workers is the wall time an idle one would take); ``--json FILE`` keeps them.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
VARIANTS = {
    "shipped": {},
    "select": {"select": {"final": "refit"}},
    "select-folds": {"select": {"final": "folds"}},
    "ridge": {"head": {"model": "ridge"}},
}


def import_cache(data: str, root: Path) -> Path:
    from hl.pipelines.cache.umt_import import import_umt

    cache = root / f"cache-{data}"
    if (cache / "manifest.parquet").exists():
        return cache
    if data.startswith("tvsum"):
        import_umt(DATA / "tvsum" / "umt", cache)
    else:
        splits = json.loads((DATA / "youtube_dev" / "splits.json").read_text())
        import_umt(DATA / "youtube_dev" / "umt", cache, splits=splits)
    return cache


def rotations(cache: Path, root: Path) -> list[Path]:
    """Five manifests: rotation r tests the r-th video (by id) of every domain and trains on the others."""
    from hl.data_manifests.schema import read_manifest, write_manifest

    manifest = read_manifest(cache / "manifest.parquet")
    out = []
    for r in range(5):
        m = manifest.copy()
        for _, g in m.groupby("domain"):
            ids = sorted(g.video_id.unique())
            m.loc[g.index, "split"] = np.where(g.video_id == ids[r], "test", "train")
        path = root / f"rotation{r}.parquet"
        write_manifest(m, path)
        out.append(path)
    return out


def measure(cache: Path, manifests: list[Path | None], variant: str, seeds: tuple[int, ...], workers: int,
            root: Path) -> dict:
    import resource

    from hl.pipelines.stages.train_segment import TrainSpec, train_heads

    kw = VARIANTS[variant]
    per_run = []
    t0 = time.perf_counter()
    cpu0 = _children_cpu(resource)
    for k, manifest in enumerate(manifests):
        spec = TrainSpec(cache=str(cache), manifest=str(manifest) if manifest else None, seeds=seeds,
                         head=kw.get("head", {}), select=kw.get("select"))
        metrics = train_heads(spec, root / f"run-{variant}-{k}", workers=workers)
        per_run.append(metrics.assign(rotation=k))
    wall = time.perf_counter() - t0
    cpu = _children_cpu(resource) - cpu0  # the worker processes' CPU time (reaped when each cluster closes)
    import pandas as pd

    metrics = pd.concat(per_run, ignore_index=True)
    overall = metrics.groupby(["rotation", "seed"]).value.mean()
    return {"variant": variant, "seconds": wall, "cpu_seconds": cpu, "mean": float(overall.mean()),
            "std": float(overall.std(ddof=1)) if len(overall) > 1 else 0.0, "n": int(len(overall)),
            "domains": {d: float(g.value.mean()) for d, g in metrics.groupby("domain")},
            "selection": _choices(root, variant, len(manifests))}


def _children_cpu(resource) -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _choices(root: Path, variant: str, runs: int) -> dict:
    out: dict = {}
    for k in range(runs):
        for f in sorted((root / f"run-{variant}-{k}" / "selection").glob("*.json")):
            rec = json.loads(f.read_text())
            chosen = rec.get("chosen") or rec.get("alpha")
            out.setdefault(f.stem, []).append(chosen if not isinstance(chosen, dict) else
                                              {"setting": chosen.get("setting"), "epochs": chosen.get("epochs")})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=["tvsum", "tvsum-rotated", "youtube_dev"], default="tvsum")
    ap.add_argument("--variants", default="shipped,select,ridge")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="keep caches and runs here (default: a temporary dir)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    root = args.work or Path(tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    cache = import_cache(args.data, root)
    manifests = rotations(cache, root) if args.data == "tvsum-rotated" else [None]
    seeds = tuple(int(s) for s in args.seeds.split(","))
    results = []
    for variant in args.variants.split(","):
        res = measure(cache, manifests, variant, seeds if variant != "ridge" else seeds[:1], args.workers,
                      root / args.data)
        results.append(res)
        print(f"{args.data:12s} {variant:13s} {res['mean']:.4f} +- {res['std']:.4f} (n={res['n']}) "
              f"{res['seconds']:7.1f} s wall, {res['cpu_seconds']:7.1f} s CPU  "
              + "  ".join(f"{d} {v:.3f}" for d, v in res["domains"].items()),
              flush=True)
    if args.json:
        args.json.write_text(json.dumps({"data": args.data, "seeds": list(seeds), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
