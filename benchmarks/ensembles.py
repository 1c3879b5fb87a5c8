"""Do averaged seeds and smoothed score curves help, and does validation on the training videos say so? The
shipped head (``HeadConfig()``) trained with many seeds, its scores read four ways - one seed, the mean of
``--group`` seeds (what ``hl highlights`` scores with: the mean over a run's heads), each with or without a
Gaussian smoothing of the score curve over segments - and every reading scored twice: pooled validation on folds
of the training videos, and the test videos.

    python benchmarks/ensembles.py --data tvsum --test-seeds 25          # 10 domains, 4 training videos each
    python benchmarks/ensembles.py --data youtube_dev --test-seeds 15    # dog 40 / parkour 19 training videos

Validation: fold j holds out, in every domain, the j-th of ``--folds`` folds of its training videos; ``--group``
seeds are trained on the rest and scored on the held-out videos with the dataset's metric; a reading's figure is
the mean over folds of the mean over domains (one seed: also the mean over the seeds). Test: ``--test-seeds``
seeds trained on all training videos; one seed: mean +- std over the seeds; the mean of ``--group`` seeds:
mean +- std over the disjoint groups (seeds 0-4, 5-9, ...). The decision rule is validation's: a reading is worth
shipping only if it validates higher on both datasets; the test figures are printed beside it, never used to pick.
Heads train in ``--workers`` processes with one torch thread each. ``--json`` keeps every figure.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed_folds import heads_on_folds, main, split_for  # noqa: E402
from selection_power import figure  # noqa: E402

SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)  # Gaussian smoothing of a score curve, in segments (0: none)


def _task(domain: str, fold: int | None, held: frozenset[str], seed: int) -> tuple[int | None, int, dict]:
    """One head of `domain`: trained on its training videos outside `held`, scored on the held-out videos (fold
    None: trained on all of them, scored on the test videos). Returns (fold, seed, {video_id: scores})."""
    from hl.heads.fit import HeadConfig, fit, score

    fit_on, out = split_for(domain, fold, held)
    model, _ = fit([v.video for v in fit_on], HeadConfig(), seed=seed)
    scores = score(model, [v.video for v in out])
    return fold, seed, {v.video.video_id: s.astype(np.float64) for v, s in zip(out, scores)}


def smooth(s: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter1d(s, sigma, mode="nearest") if sigma > 0 else s


def reading(videos: list, per_seed: list[dict], sigma: float) -> float:
    """The dataset's figure of the mean of `per_seed` ({video_id: scores} per seed), smoothed by `sigma`."""
    scores = [smooth(np.mean([p[v.video.video_id] for p in per_seed], axis=0), sigma) for v in videos]
    return figure(videos, scores)


def measure(data: str, root: Path, folds: int, group: int, test_seeds: int, workers: int) -> dict:
    out, test, folds_of, results = heads_on_folds(_task, data, root, folds, group, test_seeds, workers)
    got: dict[tuple[int | None, int], dict] = {}  # (fold, or None for the test videos; seed) -> {video_id: scores}
    for fold, seed, scores in results:
        got.setdefault((fold, seed), {}).update(scores)
    out["readings"] = {}
    for sigma in SIGMAS:
        for k in (1, group):
            val = []
            for f, held in enumerate(folds_of):
                if k == 1:
                    val.append(np.mean([reading(held, [got[(f, s)]], sigma) for s in range(group)]))
                else:
                    val.append(reading(held, [got[(f, s)] for s in range(group)], sigma))
            sets = [[s] for s in range(test_seeds)] if k == 1 else [
                list(range(g, g + group)) for g in range(0, test_seeds - group + 1, group)]
            tests = [reading(test, [got[(None, s)] for s in ss], sigma) for ss in sets]
            out["readings"][f"seeds{k}-sigma{sigma:g}"] = {
                "seeds": k, "sigma": sigma, "validation": float(np.mean(val)), "validation_folds": val,
                "test_mean": float(np.mean(tests)), "test_std": float(np.std(tests)), "test": tests}
    return out


def table(r: dict, args) -> list[str]:
    return [f"  {'reading':22s} {'validation':>10s}   test (mean +- std)",
            *(f"  {name:22s} {x['validation']:10.4f}   {x['test_mean']:.4f} +- {x['test_std']:.4f} (n={len(x['test'])})"
              for name, x in r["readings"].items())]


if __name__ == "__main__":
    sys.exit(main(__doc__, 25, None, measure, table))
