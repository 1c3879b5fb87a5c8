"""The HPCL paper's settings and its ablation tables (Tables 3-5, and 6), under both protocols, side by side.

    python benchmarks/ablations.py --data tvsum --variants full --seeds 0,1,2,3,4
    python benchmarks/ablations.py --data youtube_dev --variants all --seeds 0
    python benchmarks/ablations.py --data tvsum --variants all --seeds 0 --json out.json
    python benchmarks/ablations.py --data tvsum --variants full --from-run RUN --upto 10   # a run's first 10 epochs
    python benchmarks/ablations.py --markdown out.json           # the JSON lines as a markdown table

Every run goes through `hl train-head`'s library API (cache + manifest, ``TrainSpec(preset=...)``) with the
preset ``hpcl-paper-tvsum`` / ``hpcl-paper-youtube`` (:mod:`hl.heads.presets`) and ``track_test``: the test
videos are scored after every epoch and kept apart. Two figures per variant, from the same runs:

* **last epoch** (honest): the heads as trained, nothing chosen on a test video;
* **best epoch picked on the test videos (the papers' protocol; optimistic)**: per (domain, seed) the epoch
  whose test figure is highest (``hl eval --protocol best-epoch``).

Each variant changes one thing of the preset, as the paper's tables do; the paper's own figures stand beside
them (its YouTube Highlights figures average six domains, of which youtube_dev holds two). Prints per variant the
mean +- std over seeds of both figures, per domain, the median best epoch, the test figure along the epochs, and
the CPU time of the worker processes.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from selection import import_cache  # noqa: E402

BEST = "best epoch picked on the test videos (the papers' protocol; optimistic)"
PRESET = {"tvsum": "hpcl-paper-tvsum", "youtube_dev": "hpcl-paper-youtube"}

# name -> (paper table, HeadConfig overrides of the preset, the paper's figure: YouTube Highlights, TVSum)
VARIANTS: dict[str, tuple[str, dict, tuple[float, float]]] = {
    "full": ("3-6", {}, (0.747, 0.801)),
    "v": ("3", {"arch": {"model": "v"}}, (0.659, 0.763)),
    "a": ("3", {"arch": {"model": "a"}}, (0.651, 0.752)),
    "av": ("3", {"arch": {"model": "av"}}, (0.675, 0.784)),
    "cr-av": ("3", {"arch": {"model": "cr-av"}}, (0.697, 0.789)),
    "ce": ("4", {"w_hpcl": 0.0, "w_rank": 0.0}, (0.702, 0.766)),
    "ce+hpcl": ("4", {"w_rank": 0.0}, (0.733, 0.792)),
    "no-g": ("5", {"arch": {"global_query": "none"}}, (0.710, 0.789)),
    "g-random": ("5", {"arch": {"global_query": "random"}}, (0.744, 0.803)),
    "early": ("6", {"arch": {"fusion": "early"}}, (0.741, 0.796)),
}
LABELS = {"full": "CO-AV, CE + HPCL + rank, G mean, late fusion (the paper's model)", "v": "V only",
          "a": "A only", "av": "AV (concatenated)", "cr-av": "CR-AV (cross-attention)", "ce": "L_ce only",
          "ce+hpcl": "L_ce + L_HPCL", "no-g": "w/o G", "g-random": "w/ G, random init", "early": "early fusion"}
TABLES_3_5 = ["full", "v", "a", "av", "cr-av", "ce", "ce+hpcl", "no-g", "g-random"]


def per_epoch(run_dir: Path | list[Path]):
    """The test metric of every tracked epoch: a table of (domain, seed, epoch, value). Several runs (the same
    setting, other seeds) are read together."""
    import pandas as pd

    if isinstance(run_dir, list):
        return pd.concat([per_epoch(r) for r in run_dir], ignore_index=True)

    from hl.data_manifests.schema import read_manifest
    from hl.pipelines.run import Run
    from hl.pipelines.stages.evaluate import evaluate_scores, manifest_labels

    run = Run.open(run_dir)
    tracked = run.epoch_scores()
    manifest = read_manifest(run.manifest_path)
    labels = manifest_labels(manifest[manifest["video_id"].isin(tracked["video_id"].unique())])
    rows = [evaluate_scores(g.drop(columns="epoch"), labels).assign(epoch=int(e)) for e, g in tracked.groupby("epoch")]
    return pd.concat(rows, ignore_index=True)


def overall(metrics) -> tuple[float, float]:
    """Per seed the mean over domains, then mean +- std over seeds."""
    per_seed = metrics.groupby("seed")["value"].mean()
    return float(per_seed.mean()), float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0


def measure(data: str, cache: Path, variant: str, seeds: tuple[int, ...], workers: int, root: Path,
            epochs: int | None) -> dict:
    from hl.pipelines.stages.train_segment import TrainSpec, train_heads

    head = dict(VARIANTS[variant][1])
    if epochs is not None:
        head["epochs"] = epochs
    spec = TrainSpec(cache=str(cache), seeds=seeds, preset=PRESET[data], head=head, track_test=True)
    run_dir = root / f"run-{variant}"
    t0, cpu0 = time.perf_counter(), _children_cpu()
    train_heads(spec, run_dir, workers=workers)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    return {**summarize(run_dir, variant), "seconds": wall, "cpu_seconds": cpu}


def summarize(run_dir: Path | list[Path], variant: str, upto: int | None = None) -> dict:
    """Both figures of a run trained with ``track_test``. ``upto`` N: as if it had been trained for N epochs: the
    last epoch is epoch N and the best is picked among the first N. Exact for a constant learning rate (the
    paper presets'): the first N epochs of a longer run are the same steps as an N-epoch run."""
    curve = per_epoch(run_dir)
    if upto is not None:
        curve = curve[curve["epoch"] < upto]
    n_epochs = int(curve["epoch"].max()) + 1
    final = curve[curve["epoch"] == n_epochs - 1]
    best = curve.sort_values(["value", "epoch"], ascending=[False, True]).drop_duplicates(["domain", "seed"])
    by_epoch = curve.groupby(["epoch", "seed"])["value"].mean().groupby("epoch").mean()  # mean over domains, seeds
    marks = sorted({m - 1 for m in (1, 2, 3, 5, 10, 20, 50, 100, 200, 300, 400, 500) if m <= n_epochs} | {n_epochs - 1})
    seeds = sorted(int(s) for s in curve["seed"].unique())
    return {
        "variant": variant, "table": VARIANTS[variant][0], "label": LABELS[variant], "seeds": seeds,
        "epochs": n_epochs, "paper": dict(zip(("youtube", "tvsum"), VARIANTS[variant][2])),
        "last": overall(final), "best": overall(best),
        "last_seeds": _per_seed(final), "best_seeds": _per_seed(best),
        "last_domains": {d: float(g.value.mean()) for d, g in final.groupby("domain")},
        "best_domains": {d: float(g.value.mean()) for d, g in best.groupby("domain")},
        "best_epoch_median": float(np.median(best["epoch"])) + 1,
        "curve": {int(e) + 1: float(by_epoch.loc[e]) for e in marks},
        "curve_max": [int(by_epoch.idxmax()) + 1, float(by_epoch.max())],
        # the papers' protocol picking among the first k epochs only: how its optimism grows with k
        "best_of_first": {int(e) + 1: overall(curve[curve["epoch"] <= e].groupby(["domain", "seed"], as_index=False)
                                              ["value"].max())[0] for e in marks},
    }


def _per_seed(metrics) -> dict[int, float]:
    return {int(s): float(v) for s, v in metrics.groupby("seed")["value"].mean().items()}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the worker processes, reaped when the cluster closes
    return usage.ru_utime + usage.ru_stime


def report(data: str, res: dict) -> str:
    paper = res["paper"]["tvsum" if data == "tvsum" else "youtube"]
    (lm, ls), (bm, bs) = res["last"], res["best"]
    doms = "  ".join(f"{d} {res['last_domains'][d]:.3f}/{res['best_domains'][d]:.3f}" for d in res["last_domains"])
    curve = " ".join(f"{e}:{v:.3f}" for e, v in res["curve"].items())
    return (f"{data} {res['variant']:9s} (Table {res['table']}) last epoch {lm:.4f} +- {ls:.4f} | {BEST}: "
            f"{bm:.4f} +- {bs:.4f} | paper {paper:.3f} | n={len(res['seeds'])} | median best epoch "
            f"{res['best_epoch_median']:.0f} of {res['epochs']} | "
            + (f"{res['seconds']:.0f} s wall, {res['cpu_seconds']:.0f} s worker CPU" if "seconds" in res else "")
            + "\n"
            f"    per domain last/best: {doms}\n    test mean along the epochs: {curve} "
            f"(highest: epoch {res['curve_max'][0]}, {res['curve_max'][1]:.4f})"
            + ("\n    best epoch among the first k: "
               + " ".join(f"{k}:{v:.3f}" for k, v in res["best_of_first"].items()) if "best_of_first" in res else ""))


def markdown(lines: list[dict]) -> str:
    """A markdown table of JSON lines written by --json: per data set and variant, both figures and the paper's
    (YouTube Highlights / TVSum averages)."""
    head = (f"| data | table | variant | seeds | epochs | last epoch (honest) | {BEST} | paper: YouTube / TVSum |\n"
            "|---|---|---|---|---|---|---|---|")

    def fig(m: float, s: float, n: int) -> str:
        return f"{m:.3f} +- {s:.3f}" if n > 1 else f"{m:.3f}"

    rows = []
    for r in lines:
        n = len(r["seeds"])
        seeds = ",".join(str(s) for s in r["seeds"])
        rows.append(f"| {r['data']} | {r['table']} | {r['label']} | {seeds} | {r['epochs']} | {fig(*r['last'], n)} | "
                    f"{fig(*r['best'], n)} | {r['paper']['youtube']:.3f} / {r['paper']['tvsum']:.3f} |")
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=sorted(PRESET), default="tvsum")
    ap.add_argument("--variants", default="full", help=f"comma-separated, or 'all' (Tables 3-5: "
                    f"{','.join(TABLES_3_5)}); also: early (Table 6)")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--epochs", type=int, default=None, help="override the preset's epochs (say so when reporting)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="keep the cache and runs here (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="append one JSON line per variant to this file")
    ap.add_argument("--from-run", type=Path, nargs="+", default=None,
                    help="report runs already trained (with track_test; one setting, other seeds) as VARIANT")
    ap.add_argument("--upto", type=int, default=None, help="with --from-run: report its first N epochs only")
    ap.add_argument("--markdown", type=Path, default=None, help="print the JSON lines of FILE as a table, and stop")
    args = ap.parse_args(argv)
    if args.markdown is not None:
        print(markdown([json.loads(x) for x in args.markdown.read_text().splitlines() if x.strip()]))
        return 0
    if args.from_run is not None:
        res = summarize(args.from_run, args.variants, args.upto)
        print(report(args.data, res), flush=True)
        if args.json:
            with args.json.open("a") as f:
                f.write(json.dumps({"data": args.data, "from_run": [str(r) for r in args.from_run], **res}) + "\n")
        return 0
    variants = TABLES_3_5 if args.variants == "all" else args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown} (known: {', '.join(VARIANTS)})")
    tmp = tempfile.TemporaryDirectory()
    root = args.work or Path(tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    cache = import_cache(args.data, root)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    for variant in variants:
        res = measure(args.data, cache, variant, seeds, args.workers, root / f"{args.data}-{args.seeds}",
                      args.epochs)
        print(report(args.data, res), flush=True)
        if args.json:
            with args.json.open("a") as f:
                f.write(json.dumps({"data": args.data, "epochs_override": args.epochs, **res}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
