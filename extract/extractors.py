"""Extractors: run every backbone of a run over one video from a single decoding pass.

An extractor is a backbone plus how its inputs are sampled:

* ``segment``: one clip of ``clip_frames`` frames spanning each segment -> features [S, D] float32
* ``window``: one clip of ``clip_frames`` consecutive native frames ending at each target frame (at
  ``target_rate`` per second) -> maps [N, ...] (uint8 saliency maps, or float16 encoder maps)
* ``audio``: the segment's samples at 32 kHz mono -> features [S, D] float32

:func:`extract_video` walks the video in chunks of segments; for each chunk it decodes the union of the
frames all extractors need once, then feeds each extractor from that buffer. Memory is bounded by the
chunk, not the video.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import segments as seg
from .backbones import BackboneSpec, create, get_spec
from .decode import AUDIO_RATE, AudioCursor, VideoSource

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class ExtractorDef:
    """How one named extractor samples its input from a video."""

    name: str
    backbone: str
    sampling: str  # "segment" | "window" | "audio"
    output: str = "features"  # "features" (float32 rows), "saliency" (uint8 maps), "maps" (float16 tensors)
    target_rate: float = 2.0  # window extractors: target frames per second
    needs_weights: bool = True
    description: str = ""


EXTRACTORS: dict[str, ExtractorDef] = {
    d.name: d
    for d in [
        ExtractorDef("i3d", "i3d", "segment", description="I3D RGB, Mixed_5c pooled, 1024-d"),
        ExtractorDef("c3d", "c3d", "segment", description="C3D Sports-1M fc6, 4096-d"),
        ExtractorDef("r3d34", "r3d34", "segment", description="3D-ResNet-34 Kinetics, pooled, 512-d"),
        ExtractorDef("pann", "pann", "audio", description="PANNs Cnn14 embedding, 2048-d"),
        ExtractorDef("tased", "tased", "window", output="saliency",
                     description="TASED-Net saliency map per target frame, uint8 224x384"),
        ExtractorDef("tased_maps", "tased_maps", "window", output="maps",
                     description="TASED-Net (S3D) encoder maps per target frame, float16"),
        ExtractorDef("c3d_maps", "c3d_maps", "window", output="maps",
                     description="C3D conv5b maps of the 16 frames ending at each target frame, float16"),
        ExtractorDef("stats", "stats", "segment", needs_weights=False,
                     description="colour/motion statistics (no weights), 59-d"),
        ExtractorDef("stats_audio", "stats_audio", "audio", needs_weights=False,
                     description="log-mel band energies (no weights), 66-d"),
        ExtractorDef("motion_saliency", "motion_saliency", "window", output="saliency", needs_weights=False,
                     description="motion-energy saliency per target frame (no weights), uint8 224x384"),
    ]
}

# Extractors that stand in for pretrained ones when their weights are absent.
FALLBACKS = {"tased": "motion_saliency"}
WEIGHT_FREE = ("stats", "stats_audio")


def get_extractor(name: str) -> ExtractorDef:
    try:
        return EXTRACTORS[name]
    except KeyError:
        raise ValueError(f"unknown extractor {name!r}; known: {', '.join(sorted(EXTRACTORS))}") from None


@dataclass
class RunSettings:
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 8  # clips per forward pass
    chunk_seconds: float = 16.0  # video processed this many seconds at a time (bounds memory)
    short_side: int = 256  # decoding resolution (short side); every backbone resizes from here


def extractor_config(d: ExtractorDef, settings: RunSettings, segment_spec: str) -> dict:
    """What determines an extractor's output (hashed into the cache's config_hash)."""
    spec = get_spec(d.backbone)
    cfg = {
        "extractor": d.name, "backbone": d.backbone, "sampling": d.sampling, "output": d.output,
        "clip_frames": spec.clip_frames, "input_size": list(spec.input_size), "fps": spec.fps,
        "sample_rate": spec.sample_rate, "segments": segment_spec, "precision": settings.precision,
        "short_side": settings.short_side, "feature_layer": spec.feature_layer, "format": 1,
    }
    if d.sampling == "window":
        cfg["target_rate"] = d.target_rate
    return cfg


# -- models, loaded once per process (one Dask worker = one process) ------------------------------------
_MODELS: dict[tuple, torch.nn.Module] = {}


def load_model(backbone: str, weights: str | None, device: str, precision: str) -> torch.nn.Module:
    key = (backbone, weights, device, precision)
    if key not in _MODELS:
        model = create(backbone, weights=weights).to(device)
        if get_spec(backbone).modality == "video" and device == "cpu":
            model = model.to(memory_format=torch.channels_last_3d)
        _MODELS[key] = model
    return _MODELS[key]


def autocast(device: str, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


@dataclass
class ExtractorState:
    """Accumulates one extractor's outputs over the chunks of a video."""

    d: ExtractorDef
    spec: BackboneSpec
    model: torch.nn.Module
    outputs: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    model_s: float = 0.0


@dataclass
class VideoResult:
    """Everything one video produced, per extractor: arrays to cache and timings."""

    info: object
    segments: np.ndarray
    arrays: dict[str, dict[str, np.ndarray]]
    notes: dict[str, str]
    model_s: dict[str, float]
    decode_s: float


def _forward(state: ExtractorState, inputs: torch.Tensor, settings: RunSettings) -> np.ndarray:
    """Run the model over `inputs` (already preprocessed) in batches; returns float32 numpy."""
    outs = []
    t0 = time.perf_counter()
    with torch.inference_mode(), autocast(settings.device, settings.precision):
        for i in range(0, len(inputs), settings.batch_size):
            x = inputs[i:i + settings.batch_size].to(settings.device)
            if x.ndim == 5 and settings.device == "cpu":
                x = x.contiguous(memory_format=torch.channels_last_3d)
            outs.append(state.model(x).float().cpu())
    state.model_s += time.perf_counter() - t0
    return torch.cat(outs).numpy()


def extract_video(
    source: VideoSource,
    segments: np.ndarray,
    extractors: list[tuple[ExtractorDef, str | None]],
    settings: RunSettings,
    progress: Callable[[float], None] | None = None,
) -> VideoResult:
    """Run `extractors` ([(definition, weights path or None)]) over one video from one decoding pass."""
    info = source.info
    states = []
    for d, weights in extractors:
        spec = get_spec(d.backbone)
        states.append(ExtractorState(d, spec, load_model(d.backbone, weights, settings.device, settings.precision)))
    video_states = [s for s in states if s.d.sampling != "audio"]
    audio_states = [s for s in states if s.d.sampling == "audio"]
    notes: dict[str, str] = {}

    cursor = AudioCursor(source.audio_chunks(sample_rate=AUDIO_RATE)) if info.has_audio else None
    if audio_states and not info.has_audio:
        for s in audio_states:
            notes[s.d.name] = "no audio track: features are zeros and valid=False"
    targets = {s.d.name: seg.target_times(info.duration, s.d.target_rate)
               for s in video_states if s.d.sampling == "window"}

    decode_s = 0.0
    chunk_bounds = _chunks(segments, settings.chunk_seconds)
    for c, (lo, hi) in enumerate(chunk_bounds):
        chunk = segments[lo:hi]
        # 1. which frames each video extractor needs in this chunk
        plans: dict[str, list[np.ndarray]] = {}
        for s in video_states:
            if s.d.sampling == "segment":
                plans[s.d.name] = [
                    seg.clip_frame_indices(a, b, s.spec.clip_frames, info.fps, info.num_frames) for a, b in chunk
                ]
            else:
                t = targets[s.d.name]
                end = chunk[-1, 1] if hi < len(segments) else np.inf
                mine = t[(t >= chunk[0, 0]) & (t < end)]
                s.times.extend(mine.tolist())
                last = seg.time_to_frame(mine, info.fps, info.num_frames)
                plans[s.d.name] = [seg.window_frame_indices(int(f), s.spec.clip_frames) for f in last]
        # 2. decode their union once
        wanted = [idx for p in plans.values() for idx in p]
        if wanted:
            t0 = time.perf_counter()
            union = np.unique(np.concatenate(wanted))
            frames = source.frames(union)
            decode_s += time.perf_counter() - t0
            lookup = {int(f): i for i, f in enumerate(union)}
        # 3. feed every extractor from the buffer
        for s in video_states:
            plan = plans[s.d.name]
            if not plan:
                continue
            clips = np.stack([frames[[lookup[int(f)] for f in idx]] for idx in plan])  # [N, T, H, W, 3]
            x = s.spec.preprocess(torch.from_numpy(clips))
            s.outputs.append(_forward(s, x, settings))
        for s in audio_states:
            s.outputs.append(_audio_chunk(s, chunk, cursor, settings))
            s.valid.extend([cursor is not None] * len(chunk))
        if cursor is not None and hi < len(segments):  # keep only audio a later segment still needs
            cursor.release(seg.sample_range(segments[hi:, 0].min(), 0, AUDIO_RATE)[0])
        if progress is not None:
            progress((c + 1) / len(chunk_bounds))

    arrays: dict[str, dict[str, np.ndarray]] = {}
    for s in states:
        out = np.concatenate(s.outputs) if s.outputs else np.zeros((0, s.spec.feature_dim), np.float32)
        if s.d.output == "saliency":
            arrays[s.d.name] = {"maps": np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8),
                                "times": np.asarray(s.times), "segments": segments}
        elif s.d.output == "maps":
            arrays[s.d.name] = {"features": out.astype(np.float16), "times": np.asarray(s.times),
                                "segments": segments}
        else:
            arrays[s.d.name] = {"features": out.astype(np.float32), "segments": segments}
            if s.d.sampling == "audio":
                arrays[s.d.name]["valid"] = np.asarray(s.valid, dtype=bool)
    return VideoResult(info, segments, arrays, notes, {s.d.name: s.model_s for s in states}, decode_s)


def _chunks(segments: np.ndarray, seconds: float) -> list[tuple[int, int]]:
    """Consecutive [lo, hi) runs of segments spanning about `seconds` each (at least one segment)."""
    bounds, lo = [], 0
    while lo < len(segments):
        hi = lo + 1
        while hi < len(segments) and segments[hi, 1] - segments[lo, 0] <= seconds:
            hi += 1
        bounds.append((lo, hi))
        lo = hi
    return bounds


def _audio_chunk(s: ExtractorState, chunk: np.ndarray, cursor: AudioCursor | None,
                 settings: RunSettings) -> np.ndarray:
    if cursor is None:
        return np.zeros((len(chunk), s.spec.feature_dim), dtype=np.float32)
    waves = [cursor.take(*seg.sample_range(a, b, AUDIO_RATE)) for a, b in chunk]
    out = np.zeros((len(chunk), s.spec.feature_dim), dtype=np.float32)
    # segments of equal length are batched together; a shorter one (the last) runs on its own
    lengths = np.array([len(w) for w in waves])
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        x = s.spec.preprocess(torch.from_numpy(np.stack([waves[i] for i in rows])))
        out[rows] = _forward(s, x, settings)
    return out


def weights_for(d: ExtractorDef, weights_dir: str | Path | None) -> str | None:
    """The weights file to use for an extractor, or None when it has none (or needs none)."""
    if not d.needs_weights:
        return None
    from .weights import find_weights

    path = find_weights(d.backbone, weights_dir)
    return str(path) if path is not None else None
