"""Encoders fed the target frame alone: the clip is that frame repeated (PLD's "w/o temporal" ablation).

Registered specs (importing this module registers them):

    "c3d_maps_static"    C3D conv5b of the target frame repeated 16 times      [512, 2, 7, 7]
    "tased_maps_static"  S3D Mixed_5c of the target frame repeated 32 times    [1024, 4, 7, 12]

Same modules, checkpoints and output shapes as ``c3d_maps`` / ``tased_maps``; only the input differs. A
window extractor samples ``clip_frames`` consecutive frames ending at the target frame: these specs ask for
one (``clip_frames=1``, so only the target frame is decoded) and their preprocessing repeats it to the clip
length the encoder takes (``extra["repeat"]``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from ._registry import BackboneSpec, get_spec, register


def repeat_target(preprocess: Callable[..., torch.Tensor], length: int) -> Callable[..., torch.Tensor]:
    """A preprocessing that keeps each clip's last frame and repeats it `length` times:
    uint8 [N, T, H, W, 3] -> the encoder's input [N, 3, length, h, w]."""

    def run(frames) -> torch.Tensor:
        frames = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames
        if not isinstance(frames, torch.Tensor) or frames.dim() != 5 or frames.shape[1] == 0:
            shape = tuple(frames.shape) if hasattr(frames, "shape") else type(frames).__name__
            raise ValueError(f"expected uint8 RGB clips [N, T, H, W, 3] with T >= 1, got {shape}")
        x = preprocess(frames[:, -1:])  # [N, 3, 1, h, w]
        return x.expand(-1, -1, length, -1, -1).contiguous()

    return run


def _static(base: str, name: str) -> BackboneSpec:
    spec = get_spec(base)
    return dataclasses.replace(
        spec, name=name, clip_frames=1, preprocess=repeat_target(spec.preprocess, spec.clip_frames), fps=0.0,
        feature_layer=f"{spec.feature_layer}, of the target frame repeated {spec.clip_frames} times",
        notes=f"The target frame alone, repeated to a {spec.clip_frames}-frame clip (PLD w/o temporal); "
        f"loads the same checkpoint as {base!r}.",
        extra={**spec.extra, "repeat": spec.clip_frames, "base": base},
    )


register(_static("c3d_maps", "c3d_maps_static"))
register(_static("tased_maps", "tased_maps_static"))
