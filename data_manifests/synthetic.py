"""A generated dataset with known highlights: for demos, tests and benchmarks, no downloads needed.

Each video is a textured, slowly drifting background. During highlight intervals a bright object moves
across the frame and a tone sounds; elsewhere the scene is calm and the audio is faint noise. The object's
position is known per frame (:func:`object_box`), so pixel-level maps can be scored against it. With
``texture=True`` the object carries a checkerboard that moves with it, so motion-based saliency covers its
whole area rather than only its edges (as real, textured objects do).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

AUDIO_RATE = 44100


@dataclass(frozen=True)
class SyntheticVideo:
    video_id: str
    path: str
    seconds: float
    fps: float
    size: tuple[int, int]  # (width, height)
    highlights: tuple[tuple[float, float], ...]
    domain: str
    seed: int


def object_box(t: float, seconds: float, size: tuple[int, int], highlights) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the moving object at time t, or None outside highlights."""
    w, h = size
    for a, b in highlights:
        if a <= t < b:
            r = max(4, min(w, h) // 6)
            phase = (t - a) / max(b - a, 1e-6)
            cx = int(r + phase * (w - 2 * r))
            cy = int(h / 2 + (h / 4) * np.sin(2 * np.pi * phase))
            return max(0, cx - r), max(0, cy - r), min(w, cx + r), min(h, cy + r)
    return None


def _background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack(
        [
            80 + 40 * np.sin(xx / (7 + rng.uniform(0, 5))),
            90 + 30 * np.cos(yy / (9 + rng.uniform(0, 5))),
            100 + 20 * np.sin((xx + yy) / 13.0),
        ],
        axis=-1,
    )
    return np.clip(base + rng.normal(0, 6, size=base.shape), 0, 255).astype(np.uint8)


def write_video(
    path: str | Path,
    seconds: float = 10.0,
    fps: float = 10.0,
    size: tuple[int, int] = (160, 120),
    highlights=((4.0, 6.0),),
    audio: bool = True,
    seed: int = 0,
    codec: str = "libx264",
    texture: bool = False,
) -> Path:
    """Write one synthetic video (h264 + AAC by default) and return its path."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bg = _background(size, rng)
    w, h = size
    n_frames = int(round(seconds * fps))
    with av.open(str(path), "w") as container:
        vstream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        vstream.width, vstream.height, vstream.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            vstream.options = {"preset": "ultrafast", "crf": "23"}
        astream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
        for i in range(n_frames):
            t = i / fps
            shift = int(3 * np.sin(t))
            img = np.roll(bg, shift, axis=1).copy()
            box = object_box(t, seconds, size, highlights)
            if box is not None:
                x0, y0, x1, y1 = box
                img[y0:y1, x0:x1] = _object_pixels(y1 - y0, x1 - x0, texture)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            samples = _soundtrack(seconds, highlights, rng)
            step = 1024
            for k in range(0, len(samples), step):
                frame = av.AudioFrame.from_ndarray(samples[None, k : k + step], format="flt", layout="mono")
                frame.sample_rate = AUDIO_RATE
                frame.pts = k
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path


CHECKER_CELL = 5  # pixels


def _object_pixels(h: int, w: int, texture: bool) -> np.ndarray:
    """The object's colour; with `texture`, a checkerboard fixed to the object (it moves with it)."""
    colour = np.array([250, 230, 40], dtype=np.float64)
    if not texture:
        return np.broadcast_to(colour.astype(np.uint8), (h, w, 3))
    oy, ox = np.mgrid[0:h, 0:w]
    checker = ((oy // CHECKER_CELL + ox // CHECKER_CELL) % 2).astype(np.float64)[..., None]
    return (colour * (0.45 + 0.55 * checker)).astype(np.uint8)


def _soundtrack(seconds: float, highlights, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(round(seconds * AUDIO_RATE))) / AUDIO_RATE
    wave = 0.01 * rng.standard_normal(len(t))
    for a, b in highlights:
        on = (t >= a) & (t < b)
        wave[on] += 0.4 * np.sin(2 * np.pi * 660 * t[on]) * np.sin(2 * np.pi * 3 * t[on]) ** 2
    return wave.astype(np.float32)


def make_dataset(
    root: str | Path,
    n_videos: int = 8,
    seconds: float = 20.0,
    fps: float = 10.0,
    size: tuple[int, int] = (160, 120),
    segment_seconds: float = 2.0,
    domains: int = 1,
    test_fraction: float = 0.25,
    seed: int = 0,
    texture: bool = False,
) -> tuple[list[SyntheticVideo], pd.DataFrame]:
    """Write `n_videos` synthetic videos under `root` and return them with their manifest (fixed
    `segment_seconds` windows labelled 1 where at least half the window lies in a highlight)."""
    from .schema import conform, validate

    root = Path(root)
    rng = np.random.default_rng(seed)
    videos, rows = [], []
    n_seg = int(np.ceil(seconds / segment_seconds))
    n_test = max(1, int(round(n_videos * test_fraction))) if n_videos > 1 else 0
    for v in range(n_videos):
        domain = f"synth{v % domains}"
        places = max(1, n_seg - 1)  # a highlight covers two segments from its start
        k = min(int(rng.integers(1, 3)), places)
        starts = np.sort(rng.choice(np.arange(places), size=k, replace=False))
        highlights = tuple((float(s * segment_seconds), float(min((s + 2) * segment_seconds, seconds))) for s in starts)
        vid = f"synthetic_{v:03d}"
        path = write_video(root / f"{vid}.mp4", seconds, fps, size, highlights, seed=seed * 1000 + v, texture=texture)
        videos.append(SyntheticVideo(vid, str(path), seconds, fps, size, highlights, domain, seed * 1000 + v))
        split = "test" if v >= n_videos - n_test else "train"
        for s in range(n_seg):
            a, b = s * segment_seconds, min((s + 1) * segment_seconds, seconds)
            overlap = sum(max(0.0, min(b, hb) - max(a, ha)) for ha, hb in highlights)
            rows.append(
                {
                    "video_id": vid,
                    "dataset": "synthetic",
                    "domain": domain,
                    "split": split,
                    "segment": s,
                    "start": a,
                    "end": b,
                    "label": int(overlap >= 0.5 * (b - a)),
                    "scores": None,
                }
            )
    manifest = pd.DataFrame(rows)
    manifest = conform(manifest)
    validate(manifest)
    return videos, manifest
