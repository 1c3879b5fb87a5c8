"""Segment arithmetic: which seconds, frames and audio samples feed each cached feature.

Rules (documented in the README, tested with hypothesis):

* Fixed windows: a video of duration D split into windows of L seconds gives
  ``S = max(1, ceil(D / L))`` segments ``[k*L, min((k+1)*L, D)]``. The last one may be shorter than L;
  a video shorter than one window yields one (short) segment.
* Clip sampling: a backbone that takes ``T`` frames per clip samples them at the centres of ``T`` equal
  sub-intervals of the segment, each at the frame showing that instant (``floor(t * fps)``), clamped into
  the video. A short segment therefore repeats frames rather than reading past its end. A clip may instead
  divide the segment into ``K < T`` steps and take its ``T - K`` last frames past the end, at the same step
  (an optical-flow clip: ``K`` frames of the segment plus the next one, ``K`` flow fields at the clip's rate).
* Window clips (saliency, encoder maps): ``T`` consecutive native frames ending at the target frame;
  before the first frame the first frame is repeated.
* Audio: a segment ``[s, e]`` covers samples ``[round(s*sr), round(e*sr))``; the track is trimmed or
  zero-padded to the video's duration, so audio and visual segments always line up.
"""
from __future__ import annotations

import math

import numpy as np

_EPS = 1e-9


def fixed_segments(duration: float, seconds: float) -> np.ndarray:
    """[S, 2] start/end seconds of fixed windows of `seconds` covering [0, duration]."""
    if seconds <= 0:
        raise ValueError(f"segment length must be positive, got {seconds}")
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    count = max(1, math.ceil(duration / seconds - _EPS))
    starts = np.arange(count, dtype=np.float64) * seconds
    ends = np.minimum(starts + seconds, duration)
    return np.stack([starts, ends], axis=1)


def validate_segments(segments: np.ndarray, duration: float, tolerance: float = 0.5) -> np.ndarray:
    """Check manifest-given windows: [S,2], start < end, inside the video (ends may exceed it by `tolerance`
    seconds and are clamped). Returns the clamped float64 array."""
    seg = np.asarray(segments, dtype=np.float64)
    if seg.ndim != 2 or seg.shape[1] != 2 or len(seg) == 0:
        raise ValueError(f"segments must be a non-empty [S, 2] array of start/end seconds, got {seg.shape}")
    if np.any(seg[:, 0] < 0) or np.any(seg[:, 1] <= seg[:, 0]):
        raise ValueError("every segment needs 0 <= start < end")
    if np.any(seg[:, 0] >= duration):
        raise ValueError(f"a segment starts after the video ends ({duration:.2f} s)")
    if np.any(seg[:, 1] > duration + tolerance):
        raise ValueError(f"a segment ends after the video ends ({duration:.2f} s)")
    seg[:, 1] = np.minimum(seg[:, 1], duration)
    return seg


def clip_times(start: float, end: float, clip_frames: int, steps: int | None = None) -> np.ndarray:
    """Times (s) of the `clip_frames` samples of a clip spanning [start, end]: the centres of `steps` (default
    `clip_frames`) equal sub-intervals, continued at the same step past `end` when `clip_frames` > `steps`."""
    step = (end - start) / (steps or clip_frames)
    return start + (np.arange(clip_frames) + 0.5) * step


def time_to_frame(times: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """Index of the frame on screen at each time, clamped into [0, num_frames)."""
    idx = np.floor(np.asarray(times, dtype=np.float64) * fps + _EPS).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)


def clip_frame_indices(start: float, end: float, clip_frames: int, fps: float, num_frames: int,
                       steps: int | None = None) -> np.ndarray:
    """Frame indices of one clip of `clip_frames` frames sampled uniformly over [start, end] (see clip_times)."""
    return time_to_frame(clip_times(start, end, clip_frames, steps), fps, num_frames)


def target_times(duration: float, rate: float) -> np.ndarray:
    """Times of target frames at `rate` per second: the centres of 1/rate-long steps, at least one."""
    if rate <= 0:
        raise ValueError(f"target rate must be positive, got {rate}")
    count = max(1, math.floor(duration * rate + _EPS))
    return (np.arange(count) + 0.5) / rate


def window_frame_indices(target: int, clip_frames: int) -> np.ndarray:
    """`clip_frames` consecutive frame indices ending at `target`; frame 0 repeats before the start."""
    return np.clip(np.arange(target - clip_frames + 1, target + 1), 0, None)


def sample_range(start: float, end: float, sample_rate: int) -> tuple[int, int]:
    """Audio samples [a, b) covered by the segment [start, end]."""
    return int(round(start * sample_rate)), int(round(end * sample_rate))


def segment_of_time(times: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Index of the segment containing each time (the last segment whose start <= t); -1 before the first."""
    return np.searchsorted(segments[:, 0], np.asarray(times), side="right") - 1
