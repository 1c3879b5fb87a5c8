"""How much can validation on the training videos tell? A family of honest candidates, each scored twice:
pooled validation on folds of the training videos, and the test videos. If validation ranked the candidates
as the test videos do, selection could adapt the model to the data; this measures whether it does.

    python benchmarks/selection_power.py --data tvsum           # 10 domains, 4 training videos each
    python benchmarks/selection_power.py --data youtube_dev     # dog 40 / parkour 19 training videos

Candidates (the same for every dataset), all on the released I3D rgb+flow + PANN features:
* ``head``: the shipped co-occurrence head (``HeadConfig()``), one per domain; ``head-joint``: one over all domains;
* ``ridge-<target>-<dom|joint>-<alpha>``: ridge on per-video z-scored features (:mod:`hl.heads.ridge`), one model
  per domain or one over all domains, the target the binary labels (``bin``) or the soft one (``soft``: the mean
  annotator score on TVSum, the match value on YouTube Highlights), each alpha of ALPHAS;
* ``blend:<ridge>``: the mean of the per-video z-scored head and ridge scores.

Validation: fold j holds out, in every domain, the j-th of ``--folds`` folds of its training videos (one video
each on TVSum: leave-one-video-out), every candidate is fit on the rest (seed 0) and scored on the held-out
videos with the dataset's metric; a candidate's figure is the mean over folds of the mean over domains (pooled:
one choice for the dataset). Test: fit on all training videos, score the test videos (UMT's ``val`` list on
youtube_dev), the same metric. Printed: the Spearman rank correlation of the two figures over the candidates,
what pooled selection picks (highest validation) and its test figure beside the fixed head's, and the best test
figure among the candidates (picked on the test videos: optimistic, for scale only). ``--json`` keeps all.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from selection import import_cache, rotations  # noqa: E402

from hl.heads.fit import HeadConfig, fit, score  # noqa: E402
from hl.heads.ridge import _inputs, ridge_path, video_folds  # noqa: E402
from hl.pipelines.cache import FeatureStore  # noqa: E402
from hl.pipelines.stages.evaluate import protocol_metric  # noqa: E402
from hl.pipelines.stages.train_segment import load_videos, read_manifest_at  # noqa: E402

ALPHAS = (1e2, 1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6)


def load(data: str, root: Path, manifest: Path | None = None) -> list:
    cache = import_cache(data, root)
    m = read_manifest_at(manifest or cache / "manifest.parquet")
    videos, _ = load_videos(FeatureStore(str(cache)), m, ("i3d", "i3d_flow"), ("pann",))
    return videos


def _standard(y: np.ndarray) -> np.ndarray:
    y = y.astype(np.float64)
    return (y - y.mean()) / y.std() if y.std() > 0 else np.zeros_like(y)


def soft_target(lv) -> np.ndarray:
    s = lv.labels.scores
    y = s.mean(1) if s is not None else lv.labels.labels
    return _standard(y[: lv.video.num_segments])


def binary_target(lv) -> np.ndarray:
    return _standard(lv.video.labels)


TARGETS = {"soft": soft_target, "bin": binary_target}


def inputs(lv) -> np.ndarray:
    v = lv.video
    return _inputs(v, v.visual.shape[1], 0 if v.audio is None else v.audio.shape[1])


def groups(train: list, joint: bool) -> list[list[str]]:
    domains = sorted({v.domain for v in train})
    return [domains] if joint else [[d] for d in domains]


def ridge_scores(train: list, test: list, target, joint: bool) -> dict[float, list[np.ndarray]]:
    out: dict[float, list] = {a: [None] * len(test) for a in ALPHAS}
    for g in groups(train, joint):
        fit_on = [v for v in train if v.domain in g]
        path = ridge_path(np.concatenate([inputs(v) for v in fit_on]),
                          np.concatenate([target(v) for v in fit_on]), ALPHAS)
        for i, v in enumerate(test):
            if v.domain in g:
                x = inputs(v)
                for a, w in path.items():
                    out[a][i] = x @ w
    return out


def head_scores(train: list, test: list, seed: int, joint: bool) -> list[np.ndarray]:
    out: list = [None] * len(test)
    for g in groups(train, joint):
        model, _ = fit([v.video for v in train if v.domain in g], HeadConfig(), seed=seed)
        idx = [i for i, v in enumerate(test) if v.domain in g]
        for i, s in zip(idx, score(model, [test[i].video for i in idx])):
            out[i] = s
    return out


def _z(s) -> np.ndarray:
    s = np.asarray(s, dtype=np.float64)
    return (s - s.mean()) / (s.std() + 1e-9)


def candidates(train: list, test: list, seed: int, joint_head: bool) -> dict[str, list[np.ndarray]]:
    out: dict[str, list] = {}
    for tname, target in TARGETS.items():
        for joint in (False, True):
            for a, s in ridge_scores(train, test, target, joint).items():
                out[f"ridge-{tname}-{'joint' if joint else 'dom'}-{a:g}"] = s
    out["head"] = head_scores(train, test, seed, joint=False)
    if joint_head:
        out["head-joint"] = head_scores(train, test, seed, joint=True)
    for name in [n for n in out if n.startswith("ridge")]:
        out["blend:" + name] = [0.5 * _z(r) + 0.5 * _z(h) for r, h in zip(out[name], out["head"])]
    return out


def figure(videos: list, scores: list) -> float:
    """The dataset's metric: per domain its protocol figure, then the mean over domains."""
    by: dict[str, list] = {}
    for lv, s in zip(videos, scores):
        by.setdefault(lv.domain, []).append((lv.labels, np.asarray(s)))
    return float(np.mean([protocol_metric(p)[1] for p in by.values()]))


def pooled_folds(train: list, k: int) -> list[list[int]]:
    """Fold j: the j-th of k folds of every domain's training videos (indices into ``train``)."""
    by: dict[str, list[int]] = {}
    for i, v in enumerate(train):
        by.setdefault(v.domain, []).append(i)
    folds: list[list[int]] = [[] for _ in range(k)]
    for idx in by.values():
        for j, f in enumerate(video_folds(len(idx), k, 0)):
            folds[j] += [idx[i] for i in f]
    return [f for f in folds if f]


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def measure(videos: list, seeds: tuple[int, ...], folds: int, joint_head: bool) -> dict:
    train = [v for v in videos if v.split == "train"]
    test = [v for v in videos if v.split == "test"]
    t0 = time.perf_counter()
    val: dict[str, list[float]] = {}
    for held in pooled_folds(train, folds):
        keep = [v for i, v in enumerate(train) if i not in set(held)]
        out = [train[i] for i in held]
        for name, s in candidates(keep, out, 0, joint_head).items():
            val.setdefault(name, []).append(figure(out, s))
    seconds = time.perf_counter() - t0
    tests: dict[str, list[float]] = {}
    for seed in seeds:
        for name, s in candidates(train, test, seed, joint_head).items():
            tests.setdefault(name, []).append(figure(test, s))
    names = sorted(val)
    validation = {n: float(np.mean(val[n])) for n in names}
    test_mean = {n: float(np.mean(tests[n])) for n in names}
    picked = max(names, key=lambda n: validation[n])
    best = max(names, key=lambda n: test_mean[n])
    return {"validation": validation, "test": test_mean, "test_per_seed": tests,
            "spearman": spearman([validation[n] for n in names], [test_mean[n] for n in names]),
            "picked": picked, "best_on_test": best, "selection_seconds": seconds,
            "train_videos": len(train), "test_videos": len(test)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=["tvsum", "tvsum-rotated", "youtube_dev"], default="tvsum")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--no-joint-head", action="store_true", help="leave out the head trained over all domains")
    ap.add_argument("--work", type=Path, default=Path("/tmp/hl-selection-power"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    if args.data == "tvsum-rotated":
        cache = import_cache("tvsum", args.work)
        runs = [load("tvsum", args.work, m) for m in rotations(cache, args.work)]
    else:
        runs = [load(args.data, args.work)]
    results = [measure(v, seeds, args.folds, not args.no_joint_head) for v in runs]
    for k, r in enumerate(results):
        v, t = r["validation"], r["test"]
        print(f"{args.data} run {k}: {r['train_videos']} train / {r['test_videos']} test videos, "
              f"{len(v)} candidates, validation in {r['selection_seconds']:.0f} s")
        print(f"  Spearman(validation, test) over the candidates: {r['spearman']:+.3f}")
        for label, name in (("fixed head", "head"), ("picked by validation", r["picked"]),
                            ("best on the test videos (optimistic)", r["best_on_test"])):
            print(f"  {label:38s} {name:36s} validation {v[name]:.4f}  test {t[name]:.4f}")
        for name in sorted(v, key=lambda n: -v[n])[:10]:
            print(f"    {name:36s} validation {v[name]:.4f}  test {t[name]:.4f}")
    if args.json:
        args.json.write_text(json.dumps({"data": args.data, "seeds": list(seeds), "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
