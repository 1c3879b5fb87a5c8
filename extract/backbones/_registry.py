"""One registry of backbones and their pretrained configs (timm style).

Each model file registers a :class:`BackboneSpec`: how to build the module, what input it takes, how to
preprocess decoded frames or audio for it (and the frame size that preprocessing resizes to), how to adapt the
keys of its public checkpoint, the public checkpoint files it reads (:class:`WeightsEntry`) and the extractors
that run it (:class:`ExtractorDef`). Everything else is derived from the registered specs, in registration
order: ``hl.extract.weights.REGISTRY``, ``hl.extract.extractors.EXTRACTORS``.
"""
from __future__ import annotations

import pickle
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hl.common import HLError
from hl.common.seeding import seeded

_REGISTRY: dict[str, BackboneSpec] = {}


@dataclass(frozen=True)
class WeightsEntry:
    """A public checkpoint file: where it comes from and which backbone it was made for."""

    name: str  # registry key, e.g. "i3d_rgb_imagenet"
    backbone: str  # registered backbone the file was made for (every spec that reads it lists this entry)
    file_name: str  # the public file name; the file is stored under it in the weights directory
    url: str  # the public source address
    sha256: str | None = None  # None when no checksum of the file is known
    # the leading hex digits of the sha256 where the host publishes only those (torchvision's file names end in
    # the first 8), checked as well when given
    sha256_prefix: str | None = None
    md5: str | None = None  # the md5 the host publishes (Zenodo), checked as well when given
    size: int | None = None  # bytes; None if unknown
    description: str = ""
    license: str = ""
    # False where the address is a web page (Google Drive) that does not hand the file to a script:
    # the user downloads it in a browser and adds it with add_weights.
    direct: bool = True


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
    fallback: str | None = None  # the weight-free extractor that stands in when the weights are absent
    default: bool = True  # picked by `hl extract` without --extractors when its weights are present


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[[], nn.Module]
    modality: str  # "video", "audio", or "flow" (an optical-flow network: a part of a flow-stream backbone)
    feature_dim: int  # size of the cached feature (for map outputs: channels, see feature_shape)
    feature_layer: str  # what the cached output is, in the public model's terms
    preprocess: Callable[..., torch.Tensor]  # decoded input -> the model's documented input
    # video: frames per clip, (height, width) of the model input, and the rate frames are sampled at
    clip_frames: int = 0
    input_size: tuple[int, int] = (0, 0)
    fps: float = 0.0
    # audio: sample rate, and the fewest samples the model accepts (shorter input is zero-padded)
    sample_rate: int = 0
    min_samples: int = 0
    feature_shape: tuple[int, ...] = ()  # the per-clip output shape; () means (feature_dim,)
    checkpoint_filter: Callable[[Any], dict[str, torch.Tensor]] | None = None
    # what the public checkpoint holds besides tensors and plain containers, allowed while it loads (entries of
    # torch.serialization.safe_globals: a class or function, or (it, "the dotted name the file gives it"))
    checkpoint_globals: tuple[Any, ...] = ()
    weights: tuple[WeightsEntry, ...] = ()  # the public checkpoints that load into this backbone, preferred first
    extractors: tuple[ExtractorDef, ...] = ()  # the extractors that run this backbone
    # video: the (height, width) `preprocess` resizes a decoded H x W frame to, and whether it antialiases;
    # extraction brings frames to that size once, in uint8, so that `preprocess` has nothing left to resize
    frame_size: Callable[[int, int], tuple[int, int]] | None = None
    frame_antialias: bool = True
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # sub-networks that load from weights files of their own: (submodule name, registered backbone). The submodule's
    # state dict is that backbone's (its weights entries and checkpoint filter); this spec's own weights fill the
    # rest (e.g. an I3D flow checkpoint, unchanged, beside a RAFT file for the flow model in front of it).
    parts: tuple[tuple[str, str], ...] = ()


def register(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is registered twice")
    for d in spec.extractors:
        if d.backbone != spec.name:
            raise ValueError(f"backbone {spec.name!r} declares extractor {d.name!r} of backbone {d.backbone!r}")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def registered_specs() -> list[BackboneSpec]:
    """Every registered spec, in registration order (the order weights and extractors are listed in)."""
    return list(_REGISTRY.values())


# torch's allow-list of globals is process-wide: loads that extend it take turns
_LOAD_LOCK = threading.Lock()
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def read_checkpoint(path: str | Path, allowed: tuple[Any, ...] = ()) -> Any:
    """torch.load with ``weights_only=True``: tensors, numbers, strings and containers, plus the `allowed`
    globals; a file that asks to run other code on load is refused with an HLError, and nothing of it runs."""
    with _LOAD_LOCK, torch.serialization.safe_globals(list(allowed)):
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            text = str(e)
            code = _GLOBAL.search(text)
            if code is not None:
                raise HLError(f"{path}: not a plain checkpoint: it asks to run code on load ({code[1]}); "
                              "hl loads only tensors, numbers, strings and containers") from None
            # torch's first line is generic advice; the cause follows "WeightsUnpickler error:"
            cause = [line.strip() for line in text.split("WeightsUnpickler error:")[-1].splitlines() if line.strip()]
            raise pickle.UnpicklingError(cause[0] if cause else text) from None


def load_state_dict(spec: BackboneSpec, path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file in its public format and return the state dict our module expects. The file is
    read with ``weights_only=True`` (see :func:`read_checkpoint`): loading it never runs code from it."""
    obj = read_checkpoint(path, spec.checkpoint_globals)
    if spec.checkpoint_filter is not None:
        return spec.checkpoint_filter(obj)
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    return dict(obj)


Weights = str | Path | tuple[str | Path, ...] | None


def create(name: str, weights: Weights = None) -> nn.Module:
    """Build backbone `name` in eval mode; load `weights` (a checkpoint in its public format) if given.

    A backbone with parts (``BackboneSpec.parts``) takes a tuple of files: its own checkpoint first, then one
    per part, in the order of ``parts``; each is read with its own backbone's checkpoint filter and the whole
    state dict loads strictly. With ``weights=None`` the module keeps its random initialisation (seeded, so
    every process builds the same one: for tests and benchmarks).
    """
    spec = get_spec(name)
    # a fixed seed: random-init models (tests, speed runs) are the same in every worker process
    with seeded(0):
        model = spec.build()
    if weights is not None:
        model.load_state_dict(_full_state_dict(spec, weights), strict=True)
    return model.eval()


def _full_state_dict(spec: BackboneSpec, weights: Weights) -> dict[str, torch.Tensor]:
    files = tuple(weights) if isinstance(weights, (tuple, list)) else (weights,)
    if len(files) != 1 + len(spec.parts):
        wanted = " + ".join([spec.name, *(backbone for _, backbone in spec.parts)])
        raise HLError(f"backbone {spec.name!r} takes {1 + len(spec.parts)} weights file(s) ({wanted}), "
                      f"got {len(files)}")
    state = load_state_dict(spec, files[0])
    for (attr, backbone), path in zip(spec.parts, files[1:]):
        state.update({f"{attr}.{k}": v for k, v in load_state_dict(get_spec(backbone), path).items()})
    return state


def as_uint8_video(frames: Any) -> torch.Tensor:
    """Decoded frames as the video backbones take them: a uint8 RGB tensor [N, T, H, W, 3] (numpy accepted).
    Anything else raises a one-line TypeError / ValueError naming what was given."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"expected frames as a torch tensor or numpy array, got {type(frames).__name__}")
    if frames.dtype != torch.uint8 or frames.dim() != 5 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB frames [N, T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    return frames
