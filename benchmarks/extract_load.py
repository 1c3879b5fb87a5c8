"""Load: many short generated videos through `run_extraction(..., ["stats"])` on the local cluster.

    python benchmarks/extract_load.py                # 1,000 videos of 2 s
    python benchmarks/extract_load.py --videos 200   # shorter

Measured in one run: the time per video for each hundred videos in completion order (it must stay flat from the
first hundred to the last), the peak RSS of this process, which holds the driver and the LocalCluster's scheduler,
sampled every 0.2 s and reported per tenth of the run (it must stay bounded), and whether progress was right
(one completion event per video, the count rising by one each time, ending at the total).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from hl.data_manifests.synthetic import write_video
    from hl.pipelines.stages.extract import Reporter, run_extraction

    base = Path(tempfile.mkdtemp(prefix="hl-load-"))
    try:
        t = time.perf_counter()
        for i in range(args.videos):
            write_video(base / "videos" / f"{i // 100:02d}" / f"v{i:05d}.mp4", seconds=args.seconds, fps=10,
                        size=(160, 120), audio=False, seed=i)
        print(f"{args.videos} videos written in {time.perf_counter() - t:.0f} s", flush=True)

        proc = psutil.Process()
        samples: list[tuple[float, float]] = []  # (time, RSS MiB)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append((time.perf_counter(), proc.memory_info().rss / 2**20))
                time.sleep(0.2)

        done_at: list[float] = []
        counts: list[tuple[int, int]] = []

        def video_done(outcome, done: int, total: int) -> None:
            done_at.append(time.perf_counter())
            counts.append((done, total))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        report = run_extraction(base / "videos", base / "cache", ["stats"], workers=args.workers,
                                reporter=Reporter(video_done=video_done))
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()

        n = args.videos
        ok = sum(o.status == "ok" for o in report.outcomes)
        per_hundred = [(done_at[min(k + 99, n - 1)] - done_at[k]) / max(1, min(99, n - 1 - k))
                       for k in range(0, n, 100)]
        tenths = []
        for k in range(10):
            lo, hi = t0 + wall * k / 10, t0 + wall * (k + 1) / 10
            tenths.append(max((m for t, m in samples if lo <= t <= hi), default=float("nan")))
        right = [d for d, _ in counts] == list(range(1, n + 1)) and all(tot == n for _, tot in counts)
        print(f"{ok}/{n} ok in {wall:.0f} s ({wall / n:.3f} s per video, {args.workers} workers)")
        print("s per video, per hundred in completion order: " + " ".join(f"{x:.3f}" for x in per_hundred))
        print(f"last hundred / first hundred: {per_hundred[-1] / per_hundred[0]:.2f}")
        print("driver + scheduler peak RSS MiB per tenth of the run: " + " ".join(f"{m:.0f}" for m in tenths))
        print(f"progress right: {right} ({len(counts)} events)")
        print(json.dumps({"videos": n, "ok": ok, "wall_s": wall, "per_hundred_s": per_hundred,
                          "rss_tenths_mib": tenths, "progress_right": right}))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
