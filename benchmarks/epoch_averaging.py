"""Does averaging over the training trajectory help the shipped head, and does validation on the training videos
say so? The shipped head (``HeadConfig()``, 30 epochs) is read five ways: its last epoch (shipped); the mean of
the scores of the models after each of the last epochs (a snapshot ensemble); and one model whose weights are the
mean of those epochs' weights (stochastic weight averaging, SWA). Both averages run over the second half of the
schedule (epochs 16-30) or over everything after the warm-up (epochs 6-30). Each reading is scored twice: pooled
validation on folds of the training videos, and the test videos.

    python benchmarks/epoch_averaging.py --data tvsum --test-seeds 10
    python benchmarks/epoch_averaging.py --data youtube_dev --test-seeds 10

Validation as in ``ensembles.py``: fold j holds out, in every domain, the j-th of ``--folds`` folds of its training
videos; ``--group`` seeds are trained on the rest and scored on the held-out videos; a reading's figure is the mean
over folds of the mean over domains and seeds. Test: ``--test-seeds`` seeds trained on all training videos, mean
+- std over the seeds; and the mean of ``--group`` seeds' scores (what ``hl highlights`` scores with), mean +- std
over disjoint groups. The rule, fixed before the first run: a reading is worth shipping only if it validates higher
than the last epoch on both datasets; the test figures are printed beside it, never used to pick.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ensembles import reading  # noqa: E402
from seed_folds import heads_on_folds, main, split_for  # noqa: E402

WINDOWS = {"6-30": (6, 30), "16-30": (16, 30)}  # epochs averaged, 1-based and inclusive
READINGS = ("last", *(f"{kind}{w}" for kind in ("scores", "swa") for w in WINDOWS))


def _task(domain: str, fold: int | None, held: frozenset[str], seed: int) -> tuple[int | None, int, dict]:
    """One head of `domain`, trained on its training videos outside `held` and read every way on the held-out
    videos (fold None: trained on all of them, read on the test videos). Returns (fold, seed,
    {reading: {video_id: scores}})."""
    from hl.heads.fit import HeadConfig, fit, score

    fit_on, out = split_for(domain, fold, held)
    videos = [v.video for v in out]
    config = HeadConfig()
    per_epoch: dict[int, list[np.ndarray]] = {}
    weight_sums: dict[str, dict] = {}  # window -> {state dict key: the sum of its epochs' tensors}

    def watch(epoch: int, model) -> None:
        e = epoch + 1
        per_epoch[e] = score(model, videos)
        for name, (lo, hi) in WINDOWS.items():
            if lo <= e <= hi:
                sums = weight_sums.setdefault(name, {})
                for k, t in model.state_dict().items():
                    sums[k] = sums.get(k, 0) + t.detach().double()

    model, _ = fit([v.video for v in fit_on], config, seed=seed, watch=watch)
    read: dict[str, list[np.ndarray]] = {"last": score(model, videos)}
    for name, (lo, hi) in WINDOWS.items():
        epochs = range(lo, min(hi, config.epochs) + 1)
        read[f"scores{name}"] = [np.mean([per_epoch[e][i] for e in epochs], axis=0) for i in range(len(videos))]
        state = model.state_dict()
        swa = copy.deepcopy(model)
        swa.load_state_dict({k: (s / len(epochs)).to(state[k].dtype) for k, s in weight_sums[name].items()})
        read[f"swa{name}"] = score(swa, videos)
    return fold, seed, {r: {v.video.video_id: s.astype(np.float64) for v, s in zip(out, read[r])} for r in READINGS}


def measure(data: str, root: Path, folds: int, group: int, test_seeds: int, workers: int) -> dict:
    out, test, folds_of, results = heads_on_folds(_task, data, root, folds, group, test_seeds, workers)
    got: dict[tuple[str, int | None, int], dict] = {}  # (reading, fold or None, seed) -> {video_id: scores}
    for fold, seed, reads in results:
        for r, scores in reads.items():
            got.setdefault((r, fold, seed), {}).update(scores)
    out["readings"] = {}
    groups = [list(range(g, g + group)) for g in range(0, test_seeds - group + 1, group)]
    for r in READINGS:
        val = [float(np.mean([reading(held, [got[(r, f, s)]], 0.0) for s in range(group)]))
               for f, held in enumerate(folds_of)]
        one = [reading(test, [got[(r, None, s)]], 0.0) for s in range(test_seeds)]
        mean_k = [reading(test, [got[(r, None, s)] for s in g], 0.0) for g in groups]
        out["readings"][r] = {"validation": float(np.mean(val)), "validation_folds": val,
                              "test_mean": float(np.mean(one)), "test_std": float(np.std(one)), "test": one,
                              "group_test_mean": float(np.mean(mean_k)), "group_test_std": float(np.std(mean_k)),
                              "group_test": mean_k}
    return out


def table(r: dict, args) -> list[str]:
    head = f"  {'reading':12s} {'validation':>10s}   {'test, one seed':>22s}   test, mean of {args.group} seeds"
    return [head, *(f"  {name:12s} {x['validation']:10.4f}   {x['test_mean']:.4f} +- {x['test_std']:.4f} "
                    f"(n={len(x['test'])})   {x['group_test_mean']:.4f} +- {x['group_test_std']:.4f} "
                    f"(n={len(x['group_test'])})" for name, x in r["readings"].items())]


if __name__ == "__main__":
    sys.exit(main(__doc__, 10, None, measure, table))
