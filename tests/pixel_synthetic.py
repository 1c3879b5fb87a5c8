"""Generated videos for the PLD tests and benchmark: make_dataset's videos with a textured object.

make_dataset (hl.data_manifests.synthetic) draws a uniformly coloured object. Motion energy, the weight-free
saliency, sees only the parts of a uniform object whose pixels change - its leading and trailing edges - so its
pseudo labels are a ring around the object plus its trail (IoU with the object's box <= 0.4). Real objects
carry texture; so does this one: a checkerboard that moves with it, so its whole area changes as it moves.
Geometry (object_box), highlights, sound and manifest are make_dataset's own.
"""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from unittest import mock

import numpy as np

from hl.data_manifests import synthetic
from hl.data_manifests.synthetic import AUDIO_RATE, object_box
from hl.heads.pixel_labels import box_mask, mask_iou, mass_inside

CELL = 5  # checker cell, pixels


def write_textured_video(path, seconds: float = 10.0, fps: float = 10.0, size=(160, 120), highlights=((4.0, 6.0),),
                         audio: bool = True, seed: int = 0, codec: str = "libx264") -> Path:
    """write_video's video with a checkered object (same signature)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([80 + 40 * np.sin(xx / (7 + rng.uniform(0, 5))), 90 + 30 * np.cos(yy / (9 + rng.uniform(0, 5))),
                   100 + 20 * np.sin((xx + yy) / 13.0)], axis=-1)
    bg = np.clip(bg + rng.normal(0, 6, size=bg.shape), 0, 255).astype(np.uint8)
    with av.open(str(path), "w") as container:
        vstream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        vstream.width, vstream.height, vstream.pix_fmt = w, h, "yuv420p"
        vstream.options = {"preset": "ultrafast", "crf": "20"}
        astream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
        for i in range(int(round(seconds * fps))):
            t = i / fps
            img = np.roll(bg, int(3 * np.sin(t)), axis=1).copy()
            box = object_box(t, seconds, size, highlights)
            if box is not None:
                x0, y0, x1, y1 = box
                oy, ox = np.mgrid[0:y1 - y0, 0:x1 - x0]
                checker = ((oy // CELL + ox // CELL) % 2).astype(np.float64)[..., None]  # moves with the object
                img[y0:y1, x0:x1] = (np.array([250, 230, 40]) * (0.45 + 0.55 * checker)).astype(np.uint8)
            for packet in vstream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            t = np.arange(int(round(seconds * AUDIO_RATE))) / AUDIO_RATE
            wave = 0.01 * rng.standard_normal(len(t))
            for a, b in highlights:
                on = (t >= a) & (t < b)
                wave[on] += 0.4 * np.sin(2 * np.pi * 660 * t[on])
            wave = wave.astype(np.float32)
            for k in range(0, len(wave), 1024):
                frame = av.AudioFrame.from_ndarray(wave[None, k:k + 1024], format="flt", layout="mono")
                frame.sample_rate, frame.pts = AUDIO_RATE, k
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path


def textured_dataset(root, **kwargs):
    """make_dataset(root, **kwargs) with textured objects: (videos, manifest)."""
    with mock.patch.object(synthetic, "write_video", write_textured_video):
        return synthetic.make_dataset(root, **kwargs)


def object_overlap(preds: dict, videos, view, threshold: float = 0.5, min_visible: float = 0.5) -> dict:
    """How well predicted maps cover the object on highlight frames. For every predicted frame showing the
    object (at least `min_visible` of its box inside the decoder's `view`): IoU of (map > threshold) with the
    box mask, and the share of the map's mass inside the box. Returns {"iou": [...], "mass": [...]}."""
    by_id = {v.video_id: v for v in videos}
    out = {"iou": [], "mass": []}
    top, bottom, left, right = view
    for vid, p in preds.items():
        v = by_id[vid]
        fw, fh = v.size
        for i, t in enumerate(p["times"]):
            frame_time = math.floor(t * v.fps + 1e-9) / v.fps  # the frame on screen at the target time
            box = object_box(frame_time, v.seconds, v.size, v.highlights)
            if box is None:
                continue
            x0, y0, x1, y1 = box
            seen = (max(0.0, min(x1, right * fw) - max(x0, left * fw))
                    * max(0.0, min(y1, bottom * fh) - max(y0, top * fh)))
            if seen < min_visible * (x1 - x0) * (y1 - y0):
                continue
            prob = p["maps"][i].astype(np.float64) / 255.0
            mask = box_mask(box, v.size, view, prob.shape)
            out["iou"].append(mask_iou(prob > threshold, mask))
            out["mass"].append(mass_inside(prob, mask))
    return out
