"""A small trained run and one `find_highlights` over new videos, built once per test session and shared by the
highlights test modules (each imports :func:`found_highlights` and wraps it in a fixture)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from hl.data_manifests.schema import write_manifest
from hl.data_manifests.synthetic import make_dataset, write_video
from hl.pipelines.stages.extract import Reporter, run_extraction
from hl.pipelines.stages.train_segment import TrainSpec, train_heads


@dataclass(frozen=True)
class TrainedRun:
    run: Path  # the run directory
    train_cache: Path
    new_videos: Path  # videos the run has not seen: 3 short ones with known highlights, a long one, a broken one
    highlights: dict[str, tuple[tuple[float, float], ...]]  # their highlight intervals
    long_video: Path


@dataclass(frozen=True)
class Found:
    trained: TrainedRun
    result: object  # hl.pipelines.highlights.HighlightsResult
    events: list  # (status, video_id) per video, from the extraction's Reporter


def build_run(root: Path, scheduler: str | None = None) -> TrainedRun:
    """make_dataset -> run_extraction(stats, stats_audio) -> manifest -> train_heads (one seed, 30 epochs)."""
    _, manifest = make_dataset(root / "train_videos", n_videos=4, seconds=20.0, seed=3)
    cache = root / "train_cache"
    run_extraction(root / "train_videos", cache, ["stats", "stats_audio"], scheduler=scheduler, workers=1)
    write_manifest(manifest, cache / "manifest.parquet")
    spec = TrainSpec(cache=str(cache), visual=("stats",), audio=("stats_audio",), seeds=(0,), head={"epochs": 30})
    train_heads(spec, root / "run", scheduler=scheduler, workers=1)
    new = root / "new_videos"
    highlights = {"alpha": ((6.0, 10.0),), "beta": ((2.0, 6.0), (14.0, 18.0)), "sub/gamma": ((10.0, 14.0),)}
    for k, (vid, hl) in enumerate(highlights.items()):
        write_video(new / f"{vid}.mp4", seconds=20.0, fps=10, highlights=hl, seed=100 + k)
    long_hl = ((40.0, 44.0), (150.0, 154.0))
    long_video = write_video(new / "long.mp4", seconds=180.0, fps=5, size=(128, 96), highlights=long_hl, seed=200)
    highlights["long"] = long_hl
    (new / "broken.mp4").write_text("not a video\n" * 50)  # reported as failed, never fatal
    return TrainedRun(root / "run", cache, new, highlights, long_video)


_FOUND: dict[Path, Found] = {}


def found_highlights(tmp_path_factory) -> Found:
    """The session's trained run and `find_highlights` over its new videos (top 5, min gap 4 s, clips), built on
    first use. One local Dask worker serves all three stages: two task slots, so torch runs one thread per task
    (two threads per task on two busy cores cost several times more than one)."""
    from distributed import LocalCluster

    from hl.pipelines.highlights import find_highlights

    root = tmp_path_factory.getbasetemp() / "highlights"
    if root not in _FOUND:
        root.mkdir(exist_ok=True)
        events: list = []
        reporter = Reporter(video_done=lambda o, done, total: events.append((o.status, o.video_id)))
        with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None,
                          silence_logs=logging.ERROR) as cluster:
            trained = build_run(root, cluster.scheduler_address)
            result = find_highlights(trained.new_videos, trained.run, root / "out", top=5, min_gap=4.0, clips=True,
                                     scheduler=cluster.scheduler_address, reporter=reporter)
        _FOUND[root] = Found(trained, result, events)
    return _FOUND[root]


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.images, self.clips, self.external = [], [], [], []
        self.curves = self.polylines = self.moment_rects = self.cards = self.maps = 0

    @classmethod
    def parse(cls, path: Path) -> Page:
        page = cls()
        page.feed(path.read_text(encoding="utf-8"))
        return page

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "section" and "video" in classes:
            self.sections.append(a["data-video-id"])
        self.curves += tag == "svg" and "curve" in classes
        self.polylines += tag == "polyline" and "score" in classes
        self.moment_rects += tag == "rect" and "moment" in classes
        self.cards += tag == "figure" and "card" in classes
        self.maps += tag == "img" and "map" in classes
        if tag == "img" and "thumb" in classes:
            self.images.append(a["src"])
        if tag == "a" and "clip" in classes:
            self.clips.append(a["href"])
        for key in ("src", "href"):
            if key in a and (a[key].startswith(("http:", "https:", "//")) or tag in ("link", "script")):
                self.external.append(a[key])
