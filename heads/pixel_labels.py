"""Pixel-level pseudo labels of the PLD head, and the frame <-> segment bookkeeping around them.

A target frame I_t of a non-highlight segment is labelled 0 everywhere. A frame of a highlight segment is
labelled 1 where its saliency M_t(i, j) > beta, else 0 (Eq. 2 of the supplementary), or 1 everywhere for the
"w/o spatial" ablation (Eq. 1).

beta only means something for a stated normalisation of M_t (``norm``):

* ``"sum"`` (the paper's): M_t / sum(M_t), a distribution over the frame's pixels. Its uniform value is
  1 / (H * W), so beta depends on the map's size: the paper's 0.0005 (0.001 for dog, gymnastics, skiing) is
  for TASED-Net maps of 224 x 384, about 43x (86x) the uniform value. Labels are always computed on the
  cached saliency map at its own size, before any crop or resize to a decoder's output.
* ``"max"``: M_t / max(M_t), in [0, 1]; beta is a fraction of the frame's peak.
* ``"none"``: M_t as cached, uint8 v -> v / 255 (the saliency model's own per-pixel value in [0, 1]).

A frame whose saliency is all zero has no pixel above any beta >= 0 and is labelled 0.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_BETA = 0.0005
DOMAIN_BETA = {"dog": 0.001, "gymnastics": 0.001, "skiing": 0.001}  # YouTube Highlights domains
NORMS = ("sum", "max", "none")
# The default beta of the weight-free motion saliency (sum-normalised), as a multiple of the uniform value
# 1 / (H * W) of its map. Calibrated by benchmarks/calibrate_motion_beta.py on the highlight frames of generated
# *training* videos (a textured object whose box is known) and checked on the three shared real videos (no
# labels used): label IoU with the object 0.68 / 0.74 / 0.82 / 0.82 / 0.68 / 0.00 at 0.5 / 1 / 4 / 6 / 10 / 43x
# uniform (43x = the paper's 0.0005 at 224x384); the share of real frames with a non-empty label is 1.00 up to
# 4x and falls to 0.99 / 0.51 / 0.02 at 6 / 10 / 43x. 4x keeps every real frame labelled at near the best IoU.
MOTION_BETA_UNIFORM = 4.0
PAPER_SALIENCY = "tased"  # the saliency the paper's thresholds are for
# frames of highlight segments with at least one pixel labelled 1, below which training stops: the threshold
# (beta) does not suit the saliency maps, and the decoder would learn nothing but zeros
MIN_LABELLED_FRAMES = 0.05


def default_beta(saliency: str | None, domain: str, map_size: tuple[int, int], norm: str = "sum") -> tuple[float, str]:
    """The threshold used when none is given, and the rule it comes from: the paper's per-domain betas for
    TASED-Net's maps (or any other norm than "sum"); for another saliency (the weight-free motion_saliency),
    :data:`MOTION_BETA_UNIFORM` times the uniform value of its sum-normalised map of `map_size` (H, W)."""
    if saliency == PAPER_SALIENCY or norm != "sum" or saliency is None:
        return beta_for(domain), "paper (TASED-Net, sum-normalised 224x384 maps)"
    h, w = map_size
    return MOTION_BETA_UNIFORM / (h * w), (f"calibrated for {saliency}: {MOTION_BETA_UNIFORM:g}x the uniform value "
                                           f"1/({h}*{w}) (benchmarks/calibrate_motion_beta.py, training videos)")


def beta_for(domain: str, beta: float | dict[str, float] | None = None) -> float:
    """The threshold for `domain`: `beta` when a number is given; a dict maps domains to thresholds (others
    take the paper's defaults); None gives the paper's defaults (0.001 for dog/gymnastics/skiing, else 0.0005)."""
    if isinstance(beta, int | float):
        value = float(beta)
    elif isinstance(beta, dict) and domain in beta:
        value = float(beta[domain])
    elif beta is None or isinstance(beta, dict):
        value = DOMAIN_BETA.get(str(domain).lower(), DEFAULT_BETA)
    else:
        raise TypeError(f"beta must be a number, a dict of numbers or None, got {type(beta).__name__}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"beta must be a finite number >= 0, got {value}")
    return value


def normalise_saliency(saliency: np.ndarray, norm: str = "sum") -> np.ndarray:
    """Saliency maps [..., H, W] (uint8 as cached, or float in [0, 1]) -> float32 maps normalised per frame."""
    if norm not in NORMS:
        raise ValueError(f"saliency norm must be one of {', '.join(NORMS)}, got {norm!r}")
    sal = np.asarray(saliency)
    if sal.ndim < 2:
        raise ValueError(f"saliency maps must be [..., H, W], got shape {sal.shape}")
    m = sal.astype(np.float32) / 255.0 if sal.dtype == np.uint8 else sal.astype(np.float32)
    if np.any(m < 0) or not np.all(np.isfinite(m)):
        raise ValueError("saliency must be finite and >= 0")
    if norm == "none":
        return m
    total = m.sum(axis=(-2, -1), keepdims=True) if norm == "sum" else m.max(axis=(-2, -1), keepdims=True)
    return np.divide(m, total, out=np.zeros_like(m), where=total > 0)


def pseudo_labels(saliency: np.ndarray, highlight: np.ndarray, beta: float, norm: str = "sum",
                  spatial: bool = True) -> np.ndarray:
    """Pixel labels d_t [N, H, W] uint8 in {0, 1} for frames with saliency [N, H, W] and frame labels
    `highlight` [N]: 0 on non-highlight frames; on highlight frames normalised saliency > beta
    (``spatial=False``: 1 on the whole frame)."""
    sal = np.asarray(saliency)
    flags = np.asarray(highlight).astype(bool).reshape(-1)
    if sal.ndim != 3 or sal.shape[0] != flags.shape[0]:
        raise ValueError(f"need saliency [N, H, W] and highlight [N], got {sal.shape} and {flags.shape}")
    if not spatial:
        return np.broadcast_to(flags[:, None, None], sal.shape).astype(np.uint8)
    above = normalise_saliency(sal, norm) > beta
    return (above & flags[:, None, None]).astype(np.uint8)


def fit_to_output(labels: np.ndarray, view: tuple[float, float, float, float], size: tuple[int, int]) -> np.ndarray:
    """Labels [N, H, W] on the full frame -> [N, h, w] on the decoder's output: crop the region `view`
    = (top, bottom, left, right) as fractions of the frame, resize it to `size` = (h, w) by area averaging
    and keep 1 where at least half the area was 1."""
    lab = np.asarray(labels)
    if lab.ndim != 3:
        raise ValueError(f"labels must be [N, H, W], got shape {lab.shape}")
    top, bottom, left, right = view
    if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
        raise ValueError(f"view must be fractions (top, bottom, left, right) of the frame, got {view}")
    n, h, w = lab.shape
    y0, y1 = int(round(top * h)), max(int(round(top * h)) + 1, int(round(bottom * h)))
    x0, x1 = int(round(left * w)), max(int(round(left * w)) + 1, int(round(right * w)))
    crop = torch.from_numpy(np.ascontiguousarray(lab[:, y0:y1, x0:x1], dtype=np.float32))
    if tuple(crop.shape[1:]) == tuple(size):
        return crop.numpy().astype(np.uint8)
    frac = F.interpolate(crop[:, None], size=tuple(size), mode="area")[:, 0] if n else crop.new_zeros(0, *size)
    return (frac >= 0.5).numpy().astype(np.uint8)


# -- frames and segments ------------------------------------------------------------------------------------
def frame_segments(times: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """For each frame time, the segment it belongs to: among segments with start <= t < end (the last
    segment also takes t == end) the one whose centre is nearest (the earlier on a tie); -1 for none.
    Overlapping windows (YouTube Highlights) thus give each frame one segment."""
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    seg = np.asarray(segments, dtype=np.float64)
    if seg.ndim != 2 or seg.shape[1] != 2:
        raise ValueError(f"segments must be [S, 2], got shape {seg.shape}")
    if len(seg) == 0:
        return np.full(len(t), -1, dtype=np.int64)
    end = seg[:, 1].copy()
    end[np.argmax(end)] = np.nextafter(end.max(), np.inf)  # the video's last instant belongs to it
    inside = (seg[None, :, 0] <= t[:, None]) & (t[:, None] < end[None, :])  # [N, S]
    dist = np.abs(t[:, None] - seg.mean(axis=1)[None, :])
    dist = np.where(inside, dist, np.inf)
    best = np.argmin(dist, axis=1)  # first index among equal distances
    return np.where(inside.any(axis=1), best, -1).astype(np.int64)


def segment_scores(frame_scores: np.ndarray, times: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Segment score = mean of the scores of the frames inside it (start <= t < end; the last segment also
    takes t == end). With overlapping windows a frame counts for every window it lies in. A segment
    without a frame takes the score of the frame nearest its centre. Returns float32 [S]."""
    s = np.asarray(frame_scores, dtype=np.float64).reshape(-1)
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    seg = np.asarray(segments, dtype=np.float64)
    if s.shape != t.shape or len(s) == 0:
        raise ValueError(f"need one time per frame score and at least one frame, got {s.shape} and {t.shape}")
    if seg.ndim != 2 or seg.shape[1] != 2:
        raise ValueError(f"segments must be [S, 2], got shape {seg.shape}")
    end = seg[:, 1].copy()
    if len(end):
        end[np.argmax(end)] = np.nextafter(end.max(), np.inf)
    inside = (seg[None, :, 0] <= t[:, None]) & (t[:, None] < end[None, :])  # [N, S]
    count = inside.sum(axis=0)
    total = (inside * s[:, None]).sum(axis=0)
    nearest = s[np.argmin(np.abs(t[:, None] - seg.mean(axis=1)[None, :]), axis=0)] if len(seg) else total
    return np.where(count > 0, total / np.maximum(count, 1), nearest).astype(np.float32)


# -- map quality against a known object -----------------------------------------------------------------------
def box_mask(box: tuple[float, float, float, float] | None, frame_size: tuple[int, int],
             view: tuple[float, float, float, float], size: tuple[int, int]) -> np.ndarray:
    """Boolean mask [h, w] on a decoder output of `size` = (h, w) covering `view` (fractions of the frame)
    of a box (x0, y0, x1, y1) given in the pixels of a frame of `frame_size` = (width, height)."""
    h, w = size
    mask = np.zeros((h, w), dtype=bool)
    if box is None:
        return mask
    fw, fh = frame_size
    top, bottom, left, right = view
    x0, y0, x1, y1 = box
    # frame pixels -> fractions of the frame -> output pixels of the viewed region
    cols = (np.arange(w) + 0.5) / w * (right - left) + left  # fraction of frame width at each output column
    rows = (np.arange(h) + 0.5) / h * (bottom - top) + top
    in_x = (cols * fw >= x0) & (cols * fw < x1)
    in_y = (rows * fh >= y0) & (rows * fh < y1)
    mask[np.ix_(in_y, in_x)] = True
    return mask


def mask_iou(pred: np.ndarray, mask: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one shape (0.0 when both are empty)."""
    pred, mask = np.asarray(pred, dtype=bool), np.asarray(mask, dtype=bool)
    if pred.shape != mask.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} and {mask.shape}")
    union = np.logical_or(pred, mask).sum()
    return float(np.logical_and(pred, mask).sum() / union) if union else 0.0


def mass_inside(prob: np.ndarray, mask: np.ndarray) -> float:
    """Share of a map's total mass that lies inside `mask` (0.0 for an all-zero map)."""
    prob = np.asarray(prob, dtype=np.float64)
    total = prob.sum()
    return float(prob[np.asarray(mask, dtype=bool)].sum() / total) if total > 0 else 0.0
