"""Reference points for the TVSum top-5 mAP on the released UMT features: what chance, the annotators
themselves, one unsupervised cue and a linear model reach under the same protocol as the heads.

    python benchmarks/tvsum_baselines.py

Rows, each scored on the 10 test videos (lighthouse "val") and on the 40 train videos:
* random scores: the mean over 200 random rankings per video;
* the annotators: each annotator scored with the mean of the other 19 (leave-one-annotator-out), and, as an
  upper bound that sees the annotator it is scored against, the mean of all 20;
* the L2 norm of a clip's I3D rgb feature, higher first (no training at all);
* ridge regression from per-video z-scored I3D rgb+flow and PANN features to the per-video z-scored mean
  annotator score, one model per domain or one over all domains. Its regularisation strength is chosen by
  leave-one-video-out cross-validation on the train videos (the "CV" column; the same folds as
  ``tvsum_heads.py --cv``), then refit on all train videos of the domain(s) and scored on the test videos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tvsum_heads import DATA, load_domains  # noqa: E402

from hl.heads.metrics import tvsum_annotator_aps, tvsum_top5_map  # noqa: E402
from hl.heads.ridge import ridge_path as solve_ridge_path  # noqa: E402

ALPHAS = (1e2, 1e3, 3e3, 1e4, 3e4, 1e5, 3e5)


def zscore(x: np.ndarray, axis: int = 0) -> np.ndarray:
    return (x - x.mean(axis, keepdims=True)) / (x.std(axis, keepdims=True) + 1e-6)


def domain_mean(maps: dict[str, list[float]]) -> float:
    """The benchmark's overall figure: the mean over domains of the mean over the domain's videos."""
    return float(np.mean([np.mean(v) for v in maps.values()]))


def score_rows(domains: dict, part: str, scorer) -> float:
    maps: dict[str, list[float]] = {}
    for d, parts in domains.items():
        for video, anno in parts[part]:
            maps.setdefault(d, []).append(scorer(video, anno))
    return domain_mean(maps)


def random_map(video, anno, draws: int = 200) -> float:
    rng = np.random.default_rng(len(anno))
    return float(np.mean([tvsum_top5_map(rng.permutation(len(anno)).astype(float), anno) for _ in range(draws)]))


def leave_one_annotator_out(video, anno) -> float:
    n = anno.shape[1]
    others = (anno.sum(1, keepdims=True) - anno) / (n - 1)  # [T, A]: column j = mean of the other annotators
    return float(np.mean([tvsum_annotator_aps(others[:, j], anno)[j] for j in range(n)]))


def rgb_norm(video, anno) -> float:
    return tvsum_top5_map(np.linalg.norm(video.visual[:, :1024], axis=1), anno)  # rgb = the first 1024 dims


def inputs(video) -> np.ndarray:
    return np.concatenate([zscore(video.visual), zscore(video.audio)], axis=1)


def ridge_path(train: list[tuple]) -> dict[float, np.ndarray]:
    """Ridge weights for every alpha in ALPHAS (hl.heads.ridge's closed form), targets = the per-video z-scored
    mean annotator score."""
    x = np.concatenate([inputs(v) for v, _ in train])
    y = np.concatenate([zscore(a.mean(1)) for _, a in train])
    return solve_ridge_path(x, y, ALPHAS)


def groups(domains: dict, joint: bool) -> list[list[str]]:
    """The domains that share one ridge model: all of them when ``joint``, else each on its own."""
    return [list(domains)] if joint else [[d] for d in domains]


def ridge_cv(domains: dict, joint: bool) -> dict[float, float]:
    """{alpha: CV figure}. Leave-one-video-out on the train videos: fold k holds out the k-th train video of
    every domain in a group and fits on the group's other train videos."""
    maps: dict[float, dict[str, list[float]]] = {alpha: {} for alpha in ALPHAS}
    for group in groups(domains, joint):
        for k in range(max(len(domains[d]["train"]) for d in group)):
            path = ridge_path([x for d in group for kk, x in enumerate(domains[d]["train"]) if kk != k])
            for d in group:
                if len(domains[d]["train"]) <= k:
                    continue
                video, anno = domains[d]["train"][k]
                for alpha, w in path.items():
                    maps[alpha].setdefault(d, []).append(tvsum_top5_map(inputs(video) @ w, anno))
    return {alpha: domain_mean(m) for alpha, m in maps.items()}


def ridge_test(domains: dict, alpha: float, joint: bool) -> float:
    """Fit on all train videos of each group, score the group's test videos."""
    maps: dict[str, list[float]] = {}
    for group in groups(domains, joint):
        w = ridge_path([x for d in group for x in domains[d]["train"]])[alpha]
        for d in group:
            maps[d] = [tvsum_top5_map(inputs(v) @ w, a) for v, a in domains[d]["test"]]
    return domain_mean(maps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding umt/ and lighthouse/")
    args = parser.parse_args(argv)
    domains = load_domains(args.data, "rgb+flow")

    rows = {
        "random scores": random_map,
        "annotators: mean of the other 19": leave_one_annotator_out,
        "annotators: mean of all 20 (sees the scored one)": lambda v, a: tvsum_top5_map(a.mean(1), a),
        "I3D rgb feature norm (no training)": rgb_norm,
    }
    print(f"{'reference':52s} {'test':>6s} {'train':>6s}")
    for name, scorer in rows.items():
        print(f"{name:52s} {score_rows(domains, 'test', scorer):6.3f} {score_rows(domains, 'train', scorer):6.3f}")

    print(f"\n{'ridge, alpha chosen by CV on train videos':52s} {'test':>6s} {'CV':>6s}  alpha")
    for joint in (False, True):
        cv = ridge_cv(domains, joint)
        best = max(cv, key=cv.get)
        name = "ridge, one model over all domains" if joint else "ridge, one model per domain"
        print(f"{name:52s} {ridge_test(domains, best, joint):6.3f} {cv[best]:6.3f}  {best:g}")
        print("    CV per alpha: " + ", ".join(f"{a:g}: {m:.3f}" for a, m in cv.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
