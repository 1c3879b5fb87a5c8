"""The default relative floor of `hl highlights` (``--relative``), chosen on TVSum's training videos only.

    python benchmarks/moment_threshold.py [--seeds 0,1] [--workers 2]

Scores: the shipped head (``HeadConfig()``) on the released I3D rgb+flow + PANN features, leave-one-video-out
over each domain's 4 lighthouse train videos (train on 3, score the 4th; the same folds as
``tvsum_heads.py --cv``), so every train video gets scores from a head that never saw it. The test videos
(lighthouse "val") are never read.

For each video, the moments of ``hl highlights``' defaults (top 5, min gap 4 s, 2-s segments) are found without
a floor; a moment is *worth showing* when its peak segment is a highlight under the labels the head trains on
(the mean annotator score above the video's median). For every r, the floor ``median + r * (best - median)``
keeps some of them:

* precision: the share of kept moments worth showing;
* retention: the share of the moments worth showing that are kept;
* F1 of the two, pooled over all videos and seeds. The default r is the one with the highest F1 (the smallest
  such r on ties).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tvsum_heads import DATA, load_domains  # noqa: E402

from hl.heads.fit import HeadConfig, fit, score  # noqa: E402
from hl.pipelines.highlights.moments import find_moments, moment_floor  # noqa: E402

GRID = (None, *(float(r) for r in np.round(np.arange(0.0, 1.0001, 0.05), 2)))  # None: no floor
TOP, MIN_GAP, SEGMENT_S = 5, 4.0, 2.0


def _held_out_scores(job: tuple) -> tuple[str, int, np.ndarray, np.ndarray]:
    """Train on `rest`, score `held`: (video id, seed, scores, labels)."""
    import torch

    torch.set_num_threads(1)
    seed, rest, held = job
    model, _ = fit(rest, HeadConfig(), seed=seed)
    return held.video_id, seed, score(model, [held])[0], np.asarray(held.labels)


def cv_scores(data: Path, seeds: tuple[int, ...], workers: int) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    domains = load_domains(data, "rgb+flow")
    jobs = []
    for parts in domains.values():
        own = [v for v, _ in parts["train"]]
        for held in own:
            jobs += [(seed, [v for v in own if v is not held], held) for seed in seeds]
    if workers <= 1:
        return [_held_out_scores(j) for j in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_held_out_scores, jobs, chunksize=1))


def sweep(results) -> dict[float | None, tuple[float, float, float, int]]:
    """{r: (precision, retention, F1, moments kept)} pooled over every (video, seed); r None: no floor."""
    out = {}
    for r in GRID:
        kept = good_kept = good_all = 0
        for _, _, s, labels in results:
            n = len(s)
            seg = np.stack([np.arange(n) * SEGMENT_S, (np.arange(n) + 1) * SEGMENT_S], axis=1)
            moments = find_moments(s, seg, top=TOP, min_gap=MIN_GAP)
            floor = moment_floor(s, relative=r)
            good = [labels[m.peak] > 0.5 for m in moments]
            keep = [floor is None or m.score >= floor for m in moments]
            kept += sum(keep)
            good_kept += sum(g and k for g, k in zip(good, keep))
            good_all += sum(good)
        precision = good_kept / kept if kept else 0.0
        retention = good_kept / good_all if good_all else 0.0
        f1 = 2 * precision * retention / (precision + retention) if precision + retention else 0.0
        out[r] = (precision, retention, f1, kept)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding umt/ and lighthouse/")
    parser.add_argument("--seeds", default="0,1", help="head seeds (comma-separated)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    t0 = time.perf_counter()
    results = cv_scores(args.data, seeds, args.workers)
    table = sweep(results)
    print(f"{len(results)} held-out (train video, seed) score curves, {time.perf_counter() - t0:.0f} s")
    print(f"{'r':>5} {'precision':>9} {'retention':>9} {'F1':>6} {'kept':>5}")
    for r, (p, ret, f1, kept) in table.items():
        print(f"{'none' if r is None else f'{r:.2f}':>5} {p:9.3f} {ret:9.3f} {f1:6.3f} {kept:5d}")
    best = max((r for r in table if r is not None), key=lambda r: (round(table[r][2], 6), -r))
    p, ret, f1, kept = table[best]
    print(f"chosen r = {best:.2f}: F1 {f1:.3f} (precision {p:.3f}, retention {ret:.3f}, {kept} moments kept); "
          f"no floor: precision {table[None][0]:.3f}, {table[None][3]} moments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
