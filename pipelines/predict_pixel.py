"""Score cached videos with a trained PLD run, and draw its distinction maps.

    preds = predict_pixel("RUN", "CACHE")     # {video_id: {"scores", "segments", "maps", "times", "heads"}}
    write_predictions(preds, "PRED.json")     # hl.pipelines.predict: JSON scores + Parquet table
    write_map_pictures(preds, "RUN", "CACHE", "MAPS/")   # one PNG per video

Which decoders score a video: those of its domain when the run has them, else the joint model, else every
decoder of the run (:func:`hl.pipelines.predict.heads_for`); their maps are averaged. A frame's score is its
map's mean, a segment's score the mean of its frames' scores (:func:`hl.heads.pixel_labels.segment_scores`);
segments are the cache's (the windows extraction used).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hl.heads.pixel_decoder import PixelDistinction, load_pixel_head, predict_probability
from hl.heads.pixel_labels import segment_scores

from .cache import FeatureStore, video_key
from .predict import PredictError, Run, heads_for, open_run, video_domains

log = logging.getLogger(__name__)

_LOADED: dict[Path, PixelDistinction] = {}


def _decoder(path: Path) -> PixelDistinction:
    if path not in _LOADED:
        _LOADED[path] = load_pixel_head(path)[0]
    return _LOADED[path]


def open_pixel_run(run: Run | str | Path) -> Run:
    run = run if isinstance(run, Run) else open_run(run)
    if run.config.get("head") != "pixel":
        raise PredictError(f"{run.path}: not a pixel-level (PLD) run; use hl.pipelines.predict.predict_scores")
    return run


def predict_pixel(run: Run | str | Path, cache: str | Path, video_ids: list[str] | None = None,
                  device: str = "cpu", batch_size: int = 32) -> dict[str, dict]:
    """{video_id: {"scores": [S] float32, "segments": [S, 2] seconds, "maps": [N, H, W] uint8 (255 * d_t),
    "times": [N] seconds of the target frames, "heads": which decoders scored it}}."""
    run = open_pixel_run(run)
    store = FeatureStore(cache)
    maps_name = run.config["maps_extractor"]
    ids = video_ids if video_ids is not None else store.videos(maps_name)
    if not ids:
        raise PredictError(f"{cache}: no cached {maps_name} maps to score")
    domains = video_domains(run, store)
    out = {}
    for vid in ids:
        if not store.feature_path(vid, maps_name).exists():
            raise PredictError(f"{cache}: video {vid!r} lacks cached {maps_name} maps")
        maps = store.features(vid, maps_name)
        times = store.array(vid, maps_name, "times")
        segments = store.segments(vid, maps_name)
        which, heads = heads_for(run, domains.get(vid))
        prob = np.mean([predict_probability(_decoder(h), maps, batch_size, device) for h in heads], axis=0)
        out[vid] = {
            "scores": segment_scores(prob.mean(axis=(1, 2)), times, segments) if len(prob) else
            np.zeros(len(segments), np.float32),
            "segments": segments, "maps": np.clip(np.rint(prob * 255.0), 0, 255).astype(np.uint8),
            "times": np.asarray(times, dtype=np.float64), "heads": which,
        }
    return out


def write_map_pictures(preds: dict[str, dict], run: Run | str | Path, cache: str | Path, out_dir: str | Path,
                       frames: int = 8) -> list[Path]:
    """One PNG per video: a strip of up to `frames` target frames (evenly spread over the video) with the
    distinction map overlaid where the decoder sees the frame, and below it the score curve (per frame and
    per segment) with the shown frames marked. Frames are read from the cached source video; when it cannot
    be read the maps are drawn alone."""
    from matplotlib.figure import Figure

    from hl.common import HLError
    from hl.extract.decode import VideoSource
    from hl.extract.segments import time_to_frame

    run = open_pixel_run(run)
    store = FeatureStore(cache)
    maps_name = run.config["maps_extractor"]
    top, bottom, left, right = run.config["decoder"]["view"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for vid, p in preds.items():
        maps, times = p["maps"], p["times"]
        if len(maps) == 0:
            continue
        pick = np.unique(np.linspace(0, len(maps) - 1, min(frames, len(maps))).round().astype(int))
        images = None
        try:
            source = VideoSource(store.attrs(vid, maps_name)["source_path"])
            idx = time_to_frame(times[pick], source.info.fps, source.info.num_frames)
            images = source.frames(idx)
        except (HLError, KeyError, OSError) as exc:
            log.warning("%s: drawing maps without frames (%s)", vid, exc)
        fig = Figure(figsize=(2.2 * len(pick), 4.6), dpi=100)
        grid = fig.add_gridspec(2, len(pick), height_ratios=[1.0, 0.9])
        for k, i in enumerate(pick):
            ax = fig.add_subplot(grid[0, k])
            if images is not None:
                h, w = images[k].shape[:2]
                ax.imshow(images[k])
                extent = (left * w, right * w, bottom * h, top * h)
            else:
                extent = None
            ax.imshow(maps[i], cmap="jet", alpha=0.45 if images is not None else 1.0, vmin=0, vmax=255,
                      extent=extent, interpolation="bilinear")
            if images is not None:
                ax.set_xlim(0, w)
                ax.set_ylim(h, 0)
            frame_score = maps[i].mean() / 255.0
            ax.set_title(f"{times[i]:.1f} s  {frame_score:.2f}", fontsize=8)
            ax.set_axis_off()
        ax = fig.add_subplot(grid[1, :])
        ax.plot(times, maps.reshape(len(maps), -1).mean(axis=1) / 255.0, lw=1, color="0.5", label="frame")
        segs = np.asarray(p["segments"])
        for s, (a, b) in zip(p["scores"], segs):
            ax.hlines(s, a, b, colors="tab:red", lw=2)
        ax.plot([], [], color="tab:red", lw=2, label="segment")
        for i in pick:
            ax.axvline(times[i], color="tab:blue", lw=0.6, ls=":")
        ax.set_xlim(0, float(max(segs[:, 1].max() if len(segs) else 0, times.max())))
        ax.set_xlabel("time (s)")
        ax.set_ylabel("highlight score")
        ax.legend(loc="upper right", fontsize=7)
        fig.suptitle(f"{vid}  ({p['heads']})", fontsize=9)
        path = out_dir / f"{video_key(vid)}.png"
        fig.savefig(path)
        written.append(path)
    return written
