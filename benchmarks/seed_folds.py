"""Many heads of the shipped recipe, for benchmarks that read their scores several ways (``ensembles.py``,
``epoch_averaging.py``): the jobs (pooled validation folds of the training videos x ``group`` seeds, then
``test_seeds`` seeds on all training videos), a process pool whose workers load the videos once, and the command
line both share.

    header, test, folds_of, results = heads_on_folds(task, data, root, folds, group, test_seeds, workers)
    for fold, seed, result in results: ...        # fold None: the test videos

A task is ``task(domain, fold, held, seed)``: fold None trains on all the domain's training videos and reads the
test videos, fold j trains outside ``held`` (the domain's held-out video ids) and reads them; ``split_for`` gives
both lists.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from selection_power import load, pooled_folds

VIDEOS: list = []  # a worker's videos, loaded once by _init


def _init(data: str, root: str) -> None:
    import torch

    torch.set_num_threads(1)
    VIDEOS.extend(load(data, Path(root)))


def split_for(domain: str, fold: int | None, held: frozenset[str]) -> tuple[list, list]:
    """(the videos to train on, the videos to read) of one task, from the worker's videos."""
    train = [v for v in VIDEOS if v.domain == domain and v.split == "train"]
    if fold is None:
        return train, [v for v in VIDEOS if v.domain == domain and v.split == "test"]
    return [v for v in train if v.video.video_id not in held], [v for v in train if v.video.video_id in held]


def head_jobs(videos: list, folds_of: list[list], group: int, test_seeds: int) -> list[tuple]:
    """(domain, fold, held-out video ids, seed) for every fold x domain x seed, then every test seed x domain."""
    domains = sorted({v.domain for v in videos})
    jobs = [(d, f, frozenset(v.video.video_id for v in held if v.domain == d), s)
            for f, held in enumerate(folds_of) for d in domains for s in range(group)
            if any(v.domain == d for v in held)]
    return jobs + [(d, None, frozenset(), s) for s in range(test_seeds) for d in domains]


def train_many(task: Callable, jobs: list[tuple], data: str, root: Path, workers: int) -> Iterator:
    """Run `task` over `jobs` in `workers` processes; yields each task's result in order, with progress."""
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(data, str(root))) as pool:
        futures = [pool.submit(task, *j) for j in jobs]
        for n, fut in enumerate(futures, 1):
            yield fut.result()
            if n % 25 == 0 or n == len(futures):
                print(f"  {n}/{len(futures)} heads, {time.perf_counter() - t0:.0f} s", flush=True)


def heads_on_folds(task: Callable, data: str, root: Path, folds: int, group: int, test_seeds: int, workers: int
                   ) -> tuple[dict, list, list[list], list[tuple]]:
    """Every head of :func:`head_jobs` trained by `task`. Returns the result's header (data, video counts, seeds,
    folds, seconds), the test videos, the held-out training videos of each fold, and the tasks' results."""
    videos = load(data, root)
    train = [v for v in videos if v.split == "train"]
    test = [v for v in videos if v.split == "test"]
    folds_of = [[train[i] for i in f] for f in pooled_folds(train, folds)]
    t0 = time.perf_counter()
    results = list(train_many(task, head_jobs(videos, folds_of, group, test_seeds), data, root, workers))
    header = {"data": data, "train_videos": len(train), "test_videos": len(test), "group": group,
              "test_seeds": test_seeds, "folds": len(folds_of), "seconds": time.perf_counter() - t0}
    return header, test, folds_of, results


def arguments(doc: str, test_seeds: int, argv: list[str] | None) -> argparse.Namespace:
    """The shared command line; the cache is imported once, before the workers read it."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=["tvsum", "youtube_dev"], default="tvsum")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--group", type=int, default=5, help="seeds per fold; seeds averaged into one model")
    ap.add_argument("--test-seeds", type=int, default=test_seeds, help="seeds trained on all training videos")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hl-ensembles"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    load(args.data, args.work)
    return args


def main(doc: str, test_seeds: int, argv: list[str] | None, measure: Callable[..., dict],
         table: Callable[[dict, argparse.Namespace], list[str]]) -> int:
    """A benchmark's command: parse the shared arguments, ``measure``, print a header line and ``table``'s lines,
    keep the result in ``--json``."""
    args = arguments(doc, test_seeds, argv)
    result = measure(args.data, args.work, args.folds, args.group, args.test_seeds, args.workers)
    print(f"{args.data}: {result['train_videos']} train / {result['test_videos']} test videos, "
          f"{result['folds']} validation folds, {args.test_seeds} test seeds, {result['seconds']:.0f} s")
    print("\n".join(table(result, args)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0
