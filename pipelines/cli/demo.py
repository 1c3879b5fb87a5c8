"""`hl demo`: the whole job end to end on generated videos, with no internet and no pretrained weights.

1. generate a small dataset of videos whose highlights are known (a moving object with a sound)
2. extract weight-free features into a cache (one decoding pass per video, on a Dask LocalCluster)
3. train co-occurrence heads from the cache (several seeds), evaluate them on the held-out videos
4. score every video and write the best moments (JSON, CSV) and an HTML report
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hl.data_manifests.schema import write_manifest
from hl.data_manifests.synthetic import make_dataset

from ..highlights import find_highlights
from ..stages.evaluate import summary_table
from ..stages.extract import Reporter, run_extraction
from ..stages.train_segment import TrainSpec, train_heads


def run_demo(out: str | Path, videos: int = 12, seconds: float = 20.0, seeds: tuple[int, ...] = (0, 1, 2),
             epochs: int = 40, workers: int | None = None, reporter: Reporter | None = None,
             progress: Callable[[dict, int, int], None] | None = None, say: Callable[[str], None] = print) -> dict:
    out = Path(out)
    say(f"1/4 generating {videos} videos of {seconds:g} s in {out / 'videos'}")
    _, manifest = make_dataset(out / "videos", n_videos=videos, seconds=seconds, domains=1, seed=0)
    cache = out / "cache"
    say("2/4 extracting weight-free features (stats, stats_audio) into the cache")
    report = run_extraction(out / "videos", cache, ["stats", "stats_audio"], workers=workers, reporter=reporter)
    write_manifest(manifest, cache / "manifest.parquet")
    say(f"    {len(report.computed)} extracted, {len(report.skipped)} cached, {len(report.failed)} failed")
    say(f"3/4 training co-occurrence heads ({len(seeds)} seeds, {epochs} epochs) from the cache")
    spec = TrainSpec(cache=str(cache), visual=("stats",), audio=("stats_audio",), seeds=seeds,
                     head={"epochs": epochs})
    metrics = train_heads(spec, out / "run", workers=workers, progress=progress)
    table = summary_table(metrics)
    for _, r in table.iterrows():
        say(f"    {r['domain']:<8} test mAP {r['mean']:.3f} +- {r['std']:.3f} over {int(r['count'])} seeds")
    say("4/4 predicting highlights")
    result = find_highlights(out / "videos", out / "run", out / "highlights", cache=cache, workers=workers,
                             reporter=reporter)
    say(f"    report: {result.report}")
    return {"metrics": metrics, "table": table, "highlights": result}
