"""Training speed of the co-occurrence heads from the cache (TVSum, released I3D rgb+flow + PANN features).

    python benchmarks/train_heads.py [--cache CACHE] [--seeds 0,1,2,3,4] [--workers 2] [--select]

Prints: wall time of one domain for the shipped number of epochs (in-process, one seed), segments per
second, the wall time of all 10 domains x 5 seeds as Dask tasks (target < 300 s on 2 cores), with
``--select`` the same with model selection on the training videos (``hl train-head --select``) and the ratio
of the two, the joint model, and peak memory. Uses ../shared/data/tvsum/umt, imported into a temporary cache
if none is given.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UMT = REPO.parent / "shared" / "data" / "tvsum" / "umt"


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-joint", action="store_true")
    ap.add_argument("--select", action="store_true", help="also time the 50 heads with model selection")
    args = ap.parse_args()

    from hl.heads.fit import HeadConfig, fit
    from hl.pipelines.cache import FeatureStore
    from hl.pipelines.cache.umt_import import import_umt
    from hl.pipelines.stages.evaluate import summary_table
    from hl.pipelines.stages.train_segment import TrainSpec, load_videos, train_heads

    tmp = tempfile.TemporaryDirectory()
    cache = args.cache
    if cache is None:
        cache = Path(tmp.name) / "cache"
        t0 = time.perf_counter()
        import_umt(UMT, cache)
        print(f"imported the UMT release into a cache in {time.perf_counter() - t0:.1f} s")
    seeds = tuple(int(s) for s in args.seeds.split(","))
    config = HeadConfig()
    print(f"shipped head: {config.arch.model}, d={config.arch.d_model}, {config.epochs} epochs, "
          f"batch {config.batch_size}, lr {config.lr}")

    import torch

    torch.set_num_threads(1)
    store = FeatureStore(cache)
    manifest = store.manifest()
    videos, _ = load_videos(store, manifest[manifest.domain == "BK"], ("i3d", "i3d_flow"), ("pann",))
    train = [v.video for v in videos if v.split == "train"]
    segments = sum(v.num_segments for v in train)
    t0 = time.perf_counter()
    fit(train, config, seed=0)
    one = time.perf_counter() - t0
    print(f"one domain (BK, {len(train)} videos, {segments} segments), 1 seed, 1 thread: {one:.1f} s; "
          f"{segments * config.epochs / one:,.0f} segments/s")

    spec = TrainSpec(cache=str(cache), seeds=seeds)
    t0 = time.perf_counter()
    metrics = train_heads(spec, Path(tmp.name) / "run", workers=args.workers)
    total = time.perf_counter() - t0
    n = metrics.domain.nunique() * len(seeds)
    print(f"all {metrics.domain.nunique()} domains x {len(seeds)} seeds = {n} heads on {args.workers} workers: "
          f"{total:.1f} s ({total / 300:.2f} of the 300-s target)")
    table = summary_table(metrics)
    print(f"  mean top-5 mAP {table.iloc[-1]['mean']:.4f} +- {table.iloc[-1]['std']:.4f} over seeds")
    if args.select:
        t0 = time.perf_counter()
        chosen = train_heads(TrainSpec(cache=str(cache), seeds=seeds, select={}), Path(tmp.name) / "select",
                             workers=args.workers)
        st = time.perf_counter() - t0
        stab = summary_table(chosen)
        print(f"the same {n} heads with model selection on the training videos: {st:.1f} s ({st / total:.2f}x "
              f"without; {st / 300:.2f} of the 300-s target); mean top-5 mAP {stab.iloc[-1]['mean']:.4f} +- "
              f"{stab.iloc[-1]['std']:.4f}")
    if not args.skip_joint:
        t0 = time.perf_counter()
        joint = train_heads(TrainSpec(cache=str(cache), seeds=seeds, joint=True), Path(tmp.name) / "joint",
                            workers=args.workers)
        jt = time.perf_counter() - t0
        jtab = summary_table(joint)
        print(f"joint model over all domains x {len(seeds)} seeds: {jt:.1f} s; mean top-5 mAP "
              f"{jtab.iloc[-1]['mean']:.4f} +- {jtab.iloc[-1]['std']:.4f}")
    own, children = peak_rss_mb()
    print(f"peak RSS: driver {own:.0f} MB, largest worker process {children:.0f} MB")
    tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
