"""Encoders fed the target frame alone: the clip is that frame repeated (PLD's "w/o temporal" ablation).

Registered specs (importing this module registers them):

    "c3d_maps_static"    C3D conv5b of the target frame repeated 16 times      [512, 2, 7, 7]
    "tased_maps_static"  S3D Mixed_5c of the target frame repeated 32 times    [1024, 4, 7, 12]

Same parameters (names and shapes), checkpoints, preprocessing and output shapes as ``c3d_maps`` /
``tased_maps``. A window extractor samples ``clip_frames`` consecutive frames ending at the target frame:
these specs ask for one (``clip_frames=1``: only the target frame is decoded and preprocessed) and the model
repeats it along time to the clip length the encoder was built for (``extra["repeat"]``) before its forward.
"""
from __future__ import annotations

import dataclasses
from functools import partial

import torch

from ._registry import BackboneSpec, ExtractorDef, get_spec, register
from .c3d import C3D
from .c3d import CLIP_FRAMES as C3D_FRAMES
from .tased import CLIP_FRAMES as TASED_FRAMES
from .tased import TasedNet


def repeat_last(clip: torch.Tensor, length: int) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, C, length, H, W]: the clip's last frame, `length` times."""
    if clip.dim() != 5 or clip.shape[2] == 0:
        raise ValueError(f"expected a clip [B, C, T, H, W] with T >= 1, got {list(clip.shape)}")
    return clip[:, :, -1:].expand(-1, -1, length, -1, -1).contiguous()


class C3DStatic(C3D):
    """C3D whose clip is its last frame repeated 16 times (same parameters as C3D)."""

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return super().forward(repeat_last(clip, C3D_FRAMES))


class TasedStatic(TasedNet):
    """TASED-Net whose clip is its last frame repeated 32 times (same parameters as TasedNet)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(repeat_last(x, TASED_FRAMES))


def _static(base: str, name: str, build, length: int, description: str) -> BackboneSpec:
    """`base`'s spec (weights, preprocessing, frame size) for the target frame repeated `length` times."""
    spec = get_spec(base)
    return dataclasses.replace(
        spec, name=name, build=build, clip_frames=1,
        feature_layer=f"{spec.feature_layer}, of the target frame repeated {length} times",
        notes=f"The target frame alone, repeated to a {length}-frame clip (PLD w/o temporal); "
        f"loads the same checkpoint as {base!r}.",
        extra={**spec.extra, "repeat": length, "base": base},
        extractors=(ExtractorDef(name, name, "window", output="maps", description=description),),
    )


register(_static("c3d_maps", "c3d_maps_static", partial(C3DStatic, output="conv5b"), C3D_FRAMES,
                 "C3D conv5b maps of the target frame repeated 16 times (PLD w/o temporal), float16"))
register(_static("tased_maps", "tased_maps_static", partial(TasedStatic, output="bottleneck"), TASED_FRAMES,
                 "S3D encoder maps of the target frame repeated 32 times (PLD w/o temporal), float16"))
