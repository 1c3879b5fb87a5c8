"""TVSum benchmark of the co-occurrence head on the released UMT features (I3D rgb + flow, PANN audio).

One model per domain, trained on the domain's 4 lighthouse train videos with the shipped defaults
(``HeadConfig()``), scored on its test video (lighthouse "val") with the TVSum top-5 mAP, for several seeds:

    python benchmarks/tvsum_heads.py                      # test table: per domain mean +- std over seeds
    python benchmarks/tvsum_heads.py --ablations          # + architecture / loss ablations (test videos)
    python benchmarks/tvsum_heads.py --cv                 # leave-one-video-out CV over the train videos only
    python benchmarks/tvsum_heads.py --cv --set epochs=40 --set arch.d_model=64     # a tuning candidate
    python benchmarks/tvsum_heads.py --joint              # one model over all domains' train videos
    python benchmarks/tvsum_heads.py --cv --targets median,vote,mean,top30    # training-target variants

Hyper-parameters are chosen with ``--cv`` (each domain's train videos, one held out at a time); the test
videos are only scored with a fixed configuration. Runs on ``--workers`` processes of one torch thread each.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from hl.data_manifests.lighthouse import lighthouse_splits  # noqa: E402
from hl.data_manifests.schema import above_median_labels  # noqa: E402
from hl.data_manifests.umt import load_umt_anno, umt_features  # noqa: E402
from hl.heads.fit import HeadConfig, Video, fit, score  # noqa: E402
from hl.heads.metrics import tvsum_top5_map  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tvsum"
SEEDS = (0, 1, 2, 3, 4)

ABLATIONS = {
    "CO-AV (default)": {},
    "CR-AV": {"arch.model": "cr-av"},
    "AV concat": {"arch.model": "av"},
    "V only": {"arch.model": "v"},
    "A only": {"arch.model": "a"},
    "CE only": {"w_hpcl": 0.0, "w_rank": 0.0},
    "CE + HPCL": {"w_rank": 0.0},
    "CE + HPCL + rank": {},
    "G random": {"arch.global_query": "random"},
    "no G": {"arch.global_query": "none"},
    "early fusion": {"arch.fusion": "early"},
}


def annotator_vote(anno: np.ndarray) -> np.ndarray:
    """Soft: the share of annotators who score the clip above the median of their own column (the evaluation's
    per-annotator label, averaged)."""
    return (anno > np.median(anno, axis=0, keepdims=True)).mean(axis=1).astype(np.float32)


def scaled_mean(anno: np.ndarray) -> np.ndarray:
    """Soft: the clip's mean score, min-max scaled to [0, 1] within the video."""
    means = anno.mean(axis=1)
    return ((means - means.min()) / max(float(np.ptp(means)), 1e-9)).astype(np.float32)


def top30(anno: np.ndarray) -> np.ndarray:
    """Binary: the 30 % of clips with the highest mean score."""
    means = anno.mean(axis=1)
    return (means > np.quantile(means, 0.7)).astype(np.float32)


# Training targets from a video's [T, 20] annotator scores; "median" is the manifest's label (shipped).
TARGETS = {"median": above_median_labels, "vote": annotator_vote, "mean": scaled_mean, "top30": top30}


def with_target(domains: dict, name: str) -> dict:
    """A copy of ``domains`` whose videos carry the training target ``name`` (evaluation uses the raw scores)."""
    return {
        d: {part: [(dataclasses.replace(v, labels=TARGETS[name](a)), a) for v, a in items]
            for part, items in parts.items()}
        for d, parts in domains.items()
    }


def load_domains(data: Path, visual: str) -> dict[str, dict[str, list[tuple[Video, np.ndarray]]]]:
    """{domain: {"train": [(video, anno [T, 20])], "test": [...]}} from the UMT release + lighthouse split."""
    root = data / "umt"
    anno = load_umt_anno(root, "tvsum")
    out: dict[str, dict[str, list]] = {}
    for domain, split in sorted(lighthouse_splits(data / "lighthouse").items()):
        out[domain] = {}
        for name in ("train", "test"):
            items = []
            for vid in split[name]:
                feats = umt_features(root, vid)
                scores = np.asarray(anno[vid]["anno"], dtype=np.float32)
                n = min(len(scores), feats["i3d"].shape[0])
                vis = {"rgb": feats["i3d"], "flow": feats["i3d_flow"]}
                vis["rgb+flow"] = np.concatenate([vis["rgb"], vis["flow"]], axis=1)
                items.append(
                    (Video(vid, vis[visual][:n], feats["pann"][:n], above_median_labels(scores[:n])), scores[:n])
                )
            out[domain][name] = items
    return out


def make_config(overrides: dict[str, object]) -> HeadConfig:
    top: dict[str, object] = {}
    arch: dict[str, object] = {}
    for key, value in overrides.items():
        if key.startswith("arch."):
            arch[key[5:]] = value
        else:
            top[key] = value
    base = HeadConfig()
    return dataclasses.replace(base, arch=dataclasses.replace(base.arch, **arch), **top)


def _parse_value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _run(job: tuple) -> tuple:
    """Train on ``train``, return (tag, seed, [(domain, top-5 mAP)] of the eval videos, seconds)."""
    tag, seed, config, train, evals = job
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model, _ = fit([v for v, _, _ in train], config, seed=seed)
    scores = score(model, [v for v, _, _ in evals])
    maps = [(d, tvsum_top5_map(s, a)) for s, (_, a, d) in zip(scores, evals)]
    return tag, seed, maps, time.perf_counter() - t0


def run_jobs(jobs: list[tuple], workers: int) -> tuple[dict, float, float]:
    """{key: {seed: [maps]}}, wall seconds, summed training seconds."""
    t0 = time.perf_counter()
    results: dict = {}
    busy = 0.0
    if workers <= 1:
        outs = map(_run, jobs)
    else:
        pool = ProcessPoolExecutor(workers)
        outs = pool.map(_run, jobs, chunksize=1)
    for tag, seed, maps, secs in outs:
        for domain, m in maps:
            results.setdefault((tag, domain), {}).setdefault(seed, []).append(m)
        busy += secs
    if workers > 1:
        pool.shutdown()
    return results, time.perf_counter() - t0, busy


def _items(domains: dict, part: str, only: str | None = None) -> list[tuple]:
    """[(video, anno, domain)] of one part of every domain (or of domain ``only``)."""
    return [(v, a, d) for d, parts in domains.items() if only in (None, d) for v, a in parts[part]]


def test_jobs(domains: dict, config: HeadConfig, seeds, tag: str = "", joint: bool = False) -> list[tuple]:
    """One model per (domain, seed) scored on the domain's test videos; ``joint``: one model per seed trained
    on every domain's train videos, scored on every test video."""
    if joint:
        return [(tag, seed, config, _items(domains, "train"), _items(domains, "test")) for seed in seeds]
    return [(tag, seed, config, _items(domains, "train", d), _items(domains, "test", d))
            for d in domains for seed in seeds]


def cv_jobs(domains: dict, config: HeadConfig, seeds, tag: str = "", joint: bool = False) -> list[tuple]:
    """Cross-validation on the train videos only. Per domain: leave one train video out, train on the rest of
    its domain's. ``joint``: fold k holds out the k-th train video of every domain and trains one model on
    all the others (each held-out video's domain still has the same 3 training videos)."""
    jobs = []
    if joint:
        everything = _items(domains, "train")
        for k in range(max(len(parts["train"]) for parts in domains.values())):
            held = [_items(domains, "train", d)[k] for d in domains if len(domains[d]["train"]) > k]
            rest = [x for x in everything if not any(x[0] is h[0] for h in held)]
            jobs += [(tag, seed, config, rest, held) for seed in seeds]
        return jobs
    for d in domains:
        own = _items(domains, "train", d)
        for held in own:
            rest = [x for x in own if x[0] is not held[0]]
            jobs += [(tag, seed, config, rest, [held]) for seed in seeds]
    return jobs


def per_seed_means(results: dict, tag: str, domains) -> np.ndarray:
    """[seeds] overall mean top-5 mAP (mean over domains of the domain's mean over its eval videos)."""
    seeds = sorted(results[(tag, next(iter(domains)))])
    return np.array([np.mean([np.mean(results[(tag, d)][s]) for d in domains]) for s in seeds])


def print_table(results: dict, tag: str, domains, title: str) -> None:
    print(f"\n{title}")
    print(f"{'domain':8s} {'mean':>6s} {'std':>6s}   per seed")
    for d in domains:
        per_seed = [np.mean(v) for _, v in sorted(results[(tag, d)].items())]
        cells = " ".join(f"{x:.3f}" for x in per_seed)
        print(f"{d:8s} {np.mean(per_seed):6.3f} {np.std(per_seed):6.3f}   {cells}")
    overall = per_seed_means(results, tag, domains)
    print(f"{'overall':8s} {overall.mean():6.3f} {overall.std():6.3f}   " + " ".join(f"{x:.3f}" for x in overall))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding umt/ and lighthouse/")
    parser.add_argument("--cv", action="store_true", help="leave-one-video-out CV on the train videos only")
    parser.add_argument("--ablations", action="store_true", help="also run the ablation table")
    parser.add_argument("--seeds", type=int, default=len(SEEDS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--visual", default="rgb+flow", choices=("rgb", "flow", "rgb+flow"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a HeadConfig field (arch.* for the architecture); JSON values")
    parser.add_argument("--domains", default="", help="comma-separated subset of domains")
    parser.add_argument("--joint", action="store_true", help="one model over all domains' train videos")
    parser.add_argument("--variants", default="", help="comma-separated subset of the ablation rows")
    parser.add_argument("--targets", default="median",
                        help=f"comma-separated training targets, each a table row: {', '.join(TARGETS)}")
    args = parser.parse_args(argv)

    overrides = dict(kv.split("=", 1) for kv in args.set)
    overrides = {k: _parse_value(v) for k, v in overrides.items()}
    config = make_config(overrides)
    domains = load_domains(args.data, args.visual)
    if args.domains:
        domains = {d: domains[d] for d in args.domains.split(",")}
    seeds = list(range(args.seeds))
    make_jobs = cv_jobs if args.cv else test_jobs
    what = "leave-one-video-out CV on train videos" if args.cv else "test videos"
    what += ", one joint model over all domains" if args.joint else ", one model per domain"
    print(f"config: {config.to_dict()}  visual={args.visual}")

    variants = {"": {}} if not args.ablations else dict(ABLATIONS)
    if args.ablations and args.variants:
        variants = {name: ABLATIONS[name] for name in args.variants.split(",")}
    targets = args.targets.split(",")
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown --targets {unknown}; choose from {list(TARGETS)}")
    rows = {}  # tag -> (target, config overrides)
    for target in targets:
        for name, o in variants.items():
            rows[name if target == "median" and name else f"{name} target={target}".strip()] = (target, o)
    jobs = []
    for tag, (target, o) in rows.items():
        jobs += make_jobs(with_target(domains, target), make_config({**overrides, **o}), seeds, tag=tag,
                          joint=args.joint)
    results, wall, busy = run_jobs(jobs, args.workers)
    n_models = len(jobs)

    print_table(results, next(iter(rows)), domains, f"top-5 mAP, {what}, {len(seeds)} seeds")
    if len(rows) > 1:
        print(f"\n{'ablations' if args.ablations else 'training targets'} ({what}): overall mean +- std over "
              f"{len(seeds)} seeds")
        for tag in rows:
            m = per_seed_means(results, tag, domains)
            print(f"  {tag:28s} {m.mean():.3f} +- {m.std():.3f}")
    print(f"\n{n_models} models in {wall:.1f} s wall ({busy:.1f} s of training, {args.workers} workers, "
          f"{busy / n_models:.2f} s per model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
