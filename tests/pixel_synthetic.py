"""Generated videos for the PLD tests and benchmark: make_dataset's videos with a textured object.

Motion energy, the weight-free saliency, sees only the parts of a uniformly coloured object whose pixels
change - its leading and trailing edges - so its pseudo labels would be a ring around the object plus its trail
(IoU with the object's box <= 0.4). Real objects carry texture; so does this one (``texture=True``): a
checkerboard that moves with it, so its whole area changes as it moves.
"""
from __future__ import annotations

import math

import numpy as np

from hl.data_manifests import synthetic
from hl.data_manifests.synthetic import object_box
from hl.heads.pixel_labels import box_mask, mask_iou, mass_inside


def textured_dataset(root, **kwargs):
    """make_dataset(root, **kwargs) with textured objects: (videos, manifest)."""
    return synthetic.make_dataset(root, texture=True, **kwargs)


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
