"""Extractors: run every backbone of a run over one video from a single decoding pass.

An extractor is a backbone plus how its inputs are sampled:

* ``segment``: one clip of ``clip_frames`` frames spanning each segment -> features [S, D] float32
* ``window``: one clip of ``clip_frames`` consecutive native frames ending at each target frame (at
  ``target_rate`` per second) -> maps [N, ...] (uint8 saliency maps, or float16 encoder maps)
* ``audio``: the segment's samples at 32 kHz mono -> features [S, D] float32

:func:`extract_video` walks the video in chunks of segments. For each chunk a producer takes the union of the
frames all extractors need from one sequential decoding pass over the video (``VideoSource.stream_frames``);
brings each distinct frame, once per extractor, to the size that extractor's preprocessing resizes to (a
uint8 resize, so the backbone's own resize has nothing left to do); runs the backbone's preprocessing on those
distinct frames only; and takes the chunk's audio. The model side gathers clips from the prepared frames batch
by batch and runs the forward passes. With ``RunSettings.prefetch`` > 0 the producer runs in a background
thread, that many chunks ahead, so decoding and preprocessing overlap the models (the decoders and torch
release the GIL). Memory is bounded by a few chunks, not the video.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import segments as seg
from .backbones import BackboneSpec, ExtractorDef, create, get_spec, registered_specs
from .decode import AUDIO_RATE, AudioCursor, VideoSource

log = logging.getLogger(__name__)


# Every extractor, as the backbone modules declare them (hl.extract.backbones), in registration order.
EXTRACTORS: dict[str, ExtractorDef] = {d.name: d for spec in registered_specs() for d in spec.extractors}
# Extractors that stand in for pretrained ones when their weights are absent (tased -> motion_saliency).
FALLBACKS: dict[str, str] = {d.name: d.fallback for d in EXTRACTORS.values() if d.fallback is not None}
# What `hl extract` runs by default when no pretrained weights are present: the weight-free extractors of
# segments and audio (the default never picks window extractors).
WEIGHT_FREE: tuple[str, ...] = tuple(d.name for d in EXTRACTORS.values()
                                     if not d.needs_weights and d.sampling != "window")


def get_extractor(name: str) -> ExtractorDef:
    try:
        return EXTRACTORS[name]
    except KeyError:
        raise ValueError(f"unknown extractor {name!r}; known: {', '.join(sorted(EXTRACTORS))}") from None


def default_precision(device: str = "cpu") -> str:
    """The precision ``"auto"`` stands for: bf16 where the hardware computes it natively (CPUs with AVX512-BF16
    or AMX, GPUs with bf16 support; fp16 on older GPUs), else fp32."""
    if torch.device(device).type == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp16"
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return "bf16" if any(p is not None and p() for p in probes) else "fp32"


def precision_notice(device: str, precision: str) -> str | None:
    """A one-line warning for a precision asked for explicitly that this machine computes slowly: bf16 on a CPU
    without native bf16 (AVX512-BF16 or AMX; e.g. AMD AVX2 CPUs emulate it), or fp16 on any CPU. None otherwise
    ("auto" never picks a precision the hardware lacks)."""
    if torch.device(device).type != "cpu":
        return None
    if precision == "bf16" and default_precision("cpu") != "bf16":
        return ("precision bf16 on this CPU (no AVX512-BF16 or AMX) is emulated and very slow: "
                "use fp32, or auto to let hl choose")
    if precision == "fp16":
        return "precision fp16 on a CPU is very slow: use fp32, or auto to let hl choose"
    return None


@dataclass
class RunSettings:
    device: str = "cpu"
    precision: str = "auto"  # fp32 | bf16 | fp16 | auto (resolved at construction: see default_precision)
    batch_size: int = 8  # clips per forward pass
    chunk_seconds: float = 16.0  # video processed this many seconds at a time (bounds memory)
    short_side: int = 256  # decoding resolution (short side); every backbone resizes from here
    prefetch: int = 1  # chunks decoded and preprocessed ahead of the models, in a background thread (0: none)
    auto: bool = False  # the precision was chosen by hl ("auto"), not by the user

    def __post_init__(self):
        if self.precision == "auto":
            self.precision = default_precision(self.device)
            self.auto = True


def effective_precision(d: ExtractorDef, settings: RunSettings) -> str:
    """Weight-free extractors always run in fp32: they cost little and low precision only adds noise. A backbone
    whose features lose too much in low precision says so (``extra["auto_precision"]``): "auto" gives it that
    precision; an explicit --precision still applies."""
    if not d.needs_weights:
        return "fp32"
    if settings.auto:
        return get_spec(d.backbone).extra.get("auto_precision", settings.precision)
    return settings.precision


def effective_flow_precision(d: ExtractorDef, settings: RunSettings) -> str | None:
    """The precision of the flow model of a backbone that has one with weights of its own (a part: RAFT in front
    of I3D's flow stream); None for every other backbone. An explicit --precision applies to it as to the rest.
    Under "auto" it follows ``extra["flow_auto_precision"]``, the low precision measured accurate enough for it,
    which it gets where that is the machine's choice (else fp32); without one, the extractor's own."""
    spec = get_spec(d.backbone)
    if not spec.parts or not d.needs_weights:
        return None
    if not settings.auto:
        return settings.precision
    allowed = spec.extra.get("flow_auto_precision")
    if allowed is None:
        return effective_precision(d, settings)
    return allowed if settings.precision == allowed else "fp32"


def extractor_config(d: ExtractorDef, settings: RunSettings, segment_spec: str) -> dict:
    """What determines an extractor's output (hashed into the cache's config_hash)."""
    spec = get_spec(d.backbone)
    cfg = {
        "extractor": d.name, "backbone": d.backbone, "sampling": d.sampling, "output": d.output,
        "clip_frames": spec.clip_frames, "input_size": list(spec.input_size), "fps": spec.fps,
        "sample_rate": spec.sample_rate, "segments": segment_spec, "precision": effective_precision(d, settings),
        "short_side": settings.short_side, "feature_layer": spec.feature_layer, "format": 2,
    }
    if d.sampling == "window":
        cfg["target_rate"] = d.target_rate
    if spec.extra.get("flow"):
        cfg["flow"] = spec.extra["flow"]
    if spec.extra.get("flow_iterations"):
        cfg["flow_iterations"] = spec.extra["flow_iterations"]
    if (flow_precision := effective_flow_precision(d, settings)) is not None:
        cfg["flow_precision"] = flow_precision
    if spec.extra.get("clip_steps"):
        cfg["clip_steps"] = spec.extra["clip_steps"]
    if d.sampling != "audio" and spec.frame_size is not None:
        cfg["frame_resize"] = "uint8"
    return cfg


# -- frame sizes ----------------------------------------------------------------------------------------
def frame_resize(backbone: str, h: int, w: int) -> tuple[tuple[int, int], bool] | None:
    """The (height, width) `backbone`'s preprocessing resizes a decoded H x W frame to, and whether it antialiases
    (its spec's ``frame_size`` rule); None for a backbone without one (given the decoded frames as they are).

    Frames are brought to that size once, in uint8, before the backbone's preprocessing, which then resizes
    nothing (a same-size bilinear resize is the identity). A rule that no longer matched its preprocessing
    would resize twice, still correctly."""
    spec = get_spec(backbone)
    if spec.frame_size is None:
        return None
    return tuple(spec.frame_size(h, w)), spec.frame_antialias


PREPROCESS_FRAMES = 64  # distinct frames preprocessed at a time (bounds the float intermediates)


def resize_frames(frames: torch.Tensor, size: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """uint8 RGB frames [N, H, W, 3] -> uint8 [N, size[0], size[1], 3]: bilinear with half-pixel centres
    (optionally antialiased), rounded to the nearest integer: torch's vectorised uint8 path."""
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB frames [N, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    if tuple(frames.shape[1:3]) == tuple(size) or len(frames) == 0:
        return frames
    x = frames.permute(0, 3, 1, 2)  # [N, 3, H, W] in channels-last memory: no copy
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False,
                         antialias=antialias).permute(0, 2, 3, 1)


# -- models, loaded once per process (one Dask worker = one process) ------------------------------------
_MODELS: dict[tuple, torch.nn.Module] = {}
_LOW_PRECISION_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                          nn.ConvTranspose3d, nn.Linear)


def load_model(backbone: str, weights: str | tuple[str, ...] | None, device: str, precision: str,
               flow_precision: str | None = None) -> torch.nn.Module:
    """The backbone ready for inference: channels-last memory on CPU, and for bf16/fp16 the weights of the
    layers autocast runs in that precision (convolutions, linear layers) stored in it already, so autocast
    does not convert them again at every call. Outputs equal plain autocast's. `flow_precision` is that of a
    flow model with weights of its own (see :func:`effective_flow_precision`)."""
    key = (backbone, weights, device, precision, flow_precision)
    if key not in _MODELS:
        model = create(backbone, weights=weights).to(device)
        if device == "cpu":  # channels-last memory: 3-D for 5-D weights, 2-D for 4-D ones (a 2-D part, RAFT)
            model = model._apply(_channels_last)
        parts = tuple(f"{attr}." for attr, _ in get_spec(backbone).parts)
        if flow_precision is not None:
            model.flow_precision = flow_precision
        for name, module in model.named_modules():
            own = flow_precision if flow_precision is not None and f"{name}.".startswith(parts) else precision
            if own != "fp32" and isinstance(module, _LOW_PRECISION_MODULES):
                module.to(torch.bfloat16 if own == "bf16" else torch.float16)
        _MODELS[key] = model
    return _MODELS[key]


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 5:
        return t.contiguous(memory_format=torch.channels_last_3d)
    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t


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
    precision: str = "fp32"
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
    wait_s: float = 0.0  # time the models waited for decoded, preprocessed input


# -- what a chunk feeds the models ----------------------------------------------------------------------
@dataclass
class ClipSet:
    """Clips as rows of distinct preprocessed frames: clip i is ``frames[positions[i]]``."""

    frames: torch.Tensor  # [U, h, w, C] the backbone's preprocessed distinct frames
    positions: np.ndarray  # [N, T] int, rows of `frames`

    def __len__(self) -> int:
        return len(self.positions)

    def clips(self, lo: int, hi: int) -> torch.Tensor:
        """Clips lo..hi as the model input [n, C, T, h, w] (channels-last memory)."""
        x = self.frames[torch.from_numpy(self.positions[lo:hi])]  # [n, T, h, w, C]
        return x.permute(0, 4, 1, 2, 3)


@dataclass
class ChunkInputs:
    """One chunk of segments, ready for the models."""

    segments: int
    video: dict[str, ClipSet]
    audio: dict[str, list[tuple[np.ndarray, torch.Tensor]] | None]  # (rows, waveforms); None: no audio
    times: dict[str, list[float]]
    decode_s: float


def prepare_clips(spec: BackboneSpec, backbone: str, frames: torch.Tensor, union: np.ndarray,
                  plan: np.ndarray) -> ClipSet:
    """Clips `plan` ([N, T] frame indices) from `frames` (uint8 [U, H, W, 3], the decoded frames `union`):
    each distinct frame is resized and preprocessed once."""
    own = np.unique(plan)
    if len(own) != len(union):
        frames = frames[torch.from_numpy(np.searchsorted(union, own))]
    out = None
    for a in range(0, len(own), PREPROCESS_FRAMES):
        f = frames[a:a + PREPROCESS_FRAMES]
        rule = frame_resize(backbone, f.shape[1], f.shape[2])
        if rule is not None:
            f = resize_frames(f, *rule)
        x = spec.preprocess(f[None])[0].permute(1, 2, 3, 0)  # [1, C, k, h, w] -> [k, h, w, C]
        if out is None:
            out = torch.empty((len(own), *x.shape[1:]), dtype=x.dtype)
        out[a:a + len(x)] = x
    return ClipSet(out, np.searchsorted(own, plan))


def _prepare_audio(spec: BackboneSpec, waves: list[np.ndarray]) -> list[tuple[np.ndarray, torch.Tensor]]:
    """Segments of equal length are batched together; a shorter one (the last) runs on its own."""
    lengths = np.array([len(w) for w in waves])
    return [(rows, spec.preprocess(torch.from_numpy(np.stack([waves[i] for i in rows]))))
            for rows in (np.flatnonzero(lengths == n) for n in np.unique(lengths))]


def _plan(info, segments: np.ndarray, bounds: list[tuple[int, int]], video_states: list[ExtractorState]
          ) -> list[tuple[dict[str, np.ndarray], dict[str, list[float]]]]:
    """Per chunk: the [N, T] frame indices of each video extractor's clips, and the window extractors' target
    times."""
    targets = {s.d.name: seg.target_times(info.duration, s.d.target_rate)
               for s in video_states if s.d.sampling == "window"}
    out = []
    for lo, hi in bounds:
        chunk = segments[lo:hi]
        plans: dict[str, np.ndarray] = {}
        times: dict[str, list[float]] = {}
        for s in video_states:
            t_frames = s.spec.clip_frames
            if s.d.sampling == "segment":
                steps = s.spec.extra.get("clip_steps")
                rows = [seg.clip_frame_indices(a, b, t_frames, info.fps, info.num_frames, steps) for a, b in chunk]
            else:
                t = targets[s.d.name]
                end = chunk[-1, 1] if hi < len(segments) else np.inf
                mine = t[(t >= chunk[0, 0]) & (t < end)]
                times[s.d.name] = mine.tolist()
                last = seg.time_to_frame(mine, info.fps, info.num_frames)
                rows = [seg.window_frame_indices(int(f), t_frames) for f in last]
            plans[s.d.name] = np.stack(rows) if rows else np.zeros((0, t_frames), dtype=np.int64)
        out.append((plans, times))
    return out


def _produce(source: VideoSource, segments: np.ndarray, bounds: list[tuple[int, int]],
             video_states: list[ExtractorState], audio_states: list[ExtractorState],
             cursor: AudioCursor | None) -> Iterator[ChunkInputs]:
    """Decode and preprocess the chunks `bounds` of the video, one after another: the frames of every chunk
    come from one sequential decoding pass over the video."""
    plans = _plan(source.info, segments, bounds, video_states)
    unions = [np.unique(np.concatenate([p.ravel() for p in chunk_plans.values()] or [np.zeros(0, np.int64)]))
              for chunk_plans, _ in plans]
    frame_stream = source.stream_frames(unions)
    try:
        for (lo, hi), (chunk_plans, times), union in zip(bounds, plans, unions, strict=True):
            chunk = segments[lo:hi]
            # 1. the union of the frames all video extractors need in this chunk, decoded once
            t0 = time.perf_counter()
            frames = torch.from_numpy(next(frame_stream))
            decode_s = time.perf_counter() - t0
            # 2. every extractor's clips from it
            video = {s.d.name: prepare_clips(s.spec, s.d.backbone, frames, union, chunk_plans[s.d.name])
                     for s in video_states if chunk_plans[s.d.name].size}
            del frames
            # 3. the chunk's audio, shared by the audio extractors
            audio: dict[str, list | None] = {s.d.name: None for s in audio_states}
            if cursor is not None:
                waves = [cursor.take(*seg.sample_range(a, b, AUDIO_RATE)) for a, b in chunk]
                audio = {s.d.name: _prepare_audio(s.spec, waves) for s in audio_states}
                if hi < len(segments):  # keep only audio a later segment still needs
                    cursor.release(seg.sample_range(segments[hi:, 0].min(), 0, AUDIO_RATE)[0])
            yield ChunkInputs(len(chunk), video, audio, times, decode_s)
    finally:
        frame_stream.close()


def chunk_inputs(source: VideoSource, segments: np.ndarray, extractors: list[ExtractorDef],
                 settings: RunSettings) -> Iterator[ChunkInputs]:
    """The inputs :func:`extract_video` feeds the models, chunk by chunk, computed in the calling thread
    (no models are loaded): for benchmarks and for inspecting what a model sees."""
    states = [ExtractorState(d, get_spec(d.backbone), None) for d in extractors]
    video_states = [s for s in states if s.d.sampling != "audio"]
    audio_states = [s for s in states if s.d.sampling == "audio"]
    has_audio = source.info.has_audio and audio_states
    cursor = AudioCursor(source.audio_chunks(sample_rate=AUDIO_RATE)) if has_audio else None
    return _produce(source, segments, _chunks(segments, settings.chunk_seconds), video_states, audio_states, cursor)


class _Raised:
    def __init__(self, exc: BaseException):
        self.exc = exc


class Prefetcher:
    """Iterate `source` in a background thread, at most `depth` items ahead of the consumer.

    Exceptions raised by `source` are raised again in the consumer; :meth:`close` stops the thread early.
    With `single_thread_ops`, torch ops in the background thread use one thread (the models own the rest).
    """

    _END = object()

    def __init__(self, source: Iterator, depth: int = 1, single_thread_ops: bool = True):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source, single_thread_ops),
                                        name="hl-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterator, single_thread_ops: bool) -> None:
        if single_thread_ops:
            torch.set_num_threads(1)  # this thread's OpenMP team; the models' threads keep their own setting
        try:
            for item in source:
                if not self._put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(_Raised(exc))
            return
        self._put(self._END)

    def __iter__(self) -> Iterator:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


# -- the model side -------------------------------------------------------------------------------------
def _forward(state: ExtractorState, inputs: torch.Tensor | ClipSet, settings: RunSettings) -> np.ndarray:
    """Run the model over `inputs` (already preprocessed) in batches; returns float32 numpy."""
    outs = []
    t0 = time.perf_counter()
    with torch.inference_mode(), autocast(settings.device, state.precision):
        for i in range(0, len(inputs), settings.batch_size):
            j = i + settings.batch_size
            x = inputs.clips(i, j) if isinstance(inputs, ClipSet) else inputs[i:j]
            x = x.to(settings.device)
            if x.ndim == 5 and settings.device == "cpu":
                x = x.contiguous(memory_format=torch.channels_last_3d)
            outs.append(state.model(x).float().cpu())
    state.model_s += time.perf_counter() - t0
    return torch.cat(outs).numpy()


def _stored(d: ExtractorDef, out: np.ndarray) -> np.ndarray:
    """Model outputs in the dtype the cache keeps (converted chunk by chunk: memory stays small)."""
    if d.output == "saliency":
        return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    if d.output == "maps":
        return out.astype(np.float16)
    return out.astype(np.float32, copy=False)


def _audio_forward(s: ExtractorState, inputs: list[tuple[np.ndarray, torch.Tensor]] | None, segments: int,
                   settings: RunSettings) -> np.ndarray:
    out = np.zeros((segments, s.spec.feature_dim), dtype=np.float32)
    for rows, x in inputs or ():
        out[rows] = _forward(s, x, settings)
    return out


def extract_video(
    source: VideoSource,
    segments: np.ndarray,
    extractors: list[tuple[ExtractorDef, str | tuple[str, ...] | None]],
    settings: RunSettings,
    progress: Callable[[float], None] | None = None,
) -> VideoResult:
    """Run `extractors` ([(definition, weights path or None)]) over one video from one decoding pass."""
    info = source.info
    states = []
    for d, weights in extractors:
        precision = effective_precision(d, settings)
        model = load_model(d.backbone, weights, settings.device, precision, effective_flow_precision(d, settings))
        states.append(ExtractorState(d, get_spec(d.backbone), model, precision))
    video_states = [s for s in states if s.d.sampling != "audio"]
    audio_states = [s for s in states if s.d.sampling == "audio"]
    notes: dict[str, str] = {}
    if audio_states and not info.has_audio:
        for s in audio_states:
            notes[s.d.name] = "no audio track: features are zeros and valid=False"
    cursor = (AudioCursor(source.audio_chunks(sample_rate=AUDIO_RATE))
              if info.has_audio and audio_states else None)

    bounds = _chunks(segments, settings.chunk_seconds)
    chunks = _produce(source, segments, bounds, video_states, audio_states, cursor)
    prefetcher = Prefetcher(chunks, settings.prefetch, settings.device == "cpu") if settings.prefetch > 0 else None
    stream = iter(prefetcher) if prefetcher is not None else chunks
    decode_s = wait_s = 0.0
    try:
        for c in range(len(bounds)):
            t0 = time.perf_counter()
            item = next(stream)
            wait_s += time.perf_counter() - t0
            decode_s += item.decode_s
            for s in video_states:
                s.times.extend(item.times.get(s.d.name, ()))
                if s.d.name in item.video:
                    s.outputs.append(_stored(s.d, _forward(s, item.video[s.d.name], settings)))
            for s in audio_states:
                s.outputs.append(_audio_forward(s, item.audio[s.d.name], item.segments, settings))
                s.valid.extend([item.audio[s.d.name] is not None] * item.segments)
            del item
            if progress is not None:
                progress((c + 1) / len(bounds))
    finally:
        if prefetcher is not None:
            prefetcher.close()

    arrays: dict[str, dict[str, np.ndarray]] = {}
    for s in states:
        if s.outputs:
            out = np.concatenate(s.outputs)
        else:
            out = _stored(s.d, np.zeros((0, *(s.spec.feature_shape or (s.spec.feature_dim,))), np.float32))
        if s.d.output in ("saliency", "maps"):
            key = "maps" if s.d.output == "saliency" else "features"
            arrays[s.d.name] = {key: out, "times": np.asarray(s.times), "segments": segments}
        else:
            arrays[s.d.name] = {"features": out, "segments": segments}
            if s.d.sampling == "audio":
                arrays[s.d.name]["valid"] = np.asarray(s.valid, dtype=bool)
    return VideoResult(info, segments, arrays, notes, {s.d.name: s.model_s for s in states}, decode_s, wait_s)


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


def _weights_found(d: ExtractorDef, weights_dir: str | Path | None) -> dict[str, Path | None]:
    """{backbone: its weights file or None} for an extractor's backbone and the parts it has (in that order)."""
    from .weights import find_weights

    spec = get_spec(d.backbone)
    return {b: find_weights(b, weights_dir) for b in (d.backbone, *(b for _, b in spec.parts))}


def weights_for(d: ExtractorDef, weights_dir: str | Path | None) -> str | tuple[str, ...] | None:
    """The weights file to use for an extractor, or None when it has none (or needs none). A backbone with parts
    (``BackboneSpec.parts``: I3D flow with RAFT) gets a tuple, its own file then one per part, or None unless
    every one of them is present (:func:`missing_weights` names what is absent)."""
    if not d.needs_weights:
        return None
    paths = list(_weights_found(d, weights_dir).values())
    if any(p is None for p in paths):
        return None
    return tuple(str(p) for p in paths) if len(paths) > 1 else str(paths[0])


def missing_weights(d: ExtractorDef, weights_dir: str | Path | None) -> list[str]:
    """The backbones whose weights an extractor lacks in the weights directory (its own, then its parts')."""
    if not d.needs_weights:
        return []
    return [b for b, p in _weights_found(d, weights_dir).items() if p is None]
