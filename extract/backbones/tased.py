"""TASED-Net v2: video saliency (Min & Corso, "TASED-Net: Temporally-Aggregating Spatial Encoder-Decoder
Network for Video Saliency Detection", ICCV 2019).

An S3D encoder (separable 3D Inception, Xie et al. ECCV 2018) reads 32 consecutive frames; the decoder
aggregates time while it upsamples, by max-unpooling with the pooling indices of the encoder's skip
maps, and ends in one per-pixel sigmoid map for the clip's last frame.

Names and shapes follow MichiganCOG/TASED-Net ``TASED_v2`` (model.py); its released weight file
(TASED_updated.pt, a state dict saved from DataParallel, keys prefixed ``module.``) loads with
``strict=True`` once the prefix is stripped (:func:`checkpoint_filter`).

Registered specs:
    "tased"       forward -> saliency map of the last frame [B, 224, 384], values in (0, 1)
    "tased_maps"  forward -> the deepest encoder map (Mixed_5c) [B, 1024, 4, 7, 12], for caching
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import BackboneSpec, ExtractorDef, WeightsEntry, as_uint8_video, register

CLIP_FRAMES = 32
INPUT_SIZE = (224, 384)  # (height, width)


def _bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=1e-3, momentum=0.001, affine=True)


class BasicConv3d(nn.Module):
    """Conv3d (no bias) -> BatchNorm3d -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, bias=False)
        self.bn = _bn(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class SepConv3d(nn.Module):
    """S3D's separable k x k x k convolution: a 1 x k x k spatial conv, then a k x 1 x 1 temporal conv,
    each followed by BatchNorm3d and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, k: int, s: int = 1, p: int = 0):
        """k: kernel size, s: stride, p: padding (the same along time and space)."""
        super().__init__()
        self.conv_s = nn.Conv3d(in_channels, out_channels, (1, k, k), (1, s, s), (0, p, p), bias=False)
        self.bn_s = _bn(out_channels)
        self.conv_t = nn.Conv3d(out_channels, out_channels, (k, 1, 1), (s, 1, 1), (p, 0, 0), bias=False)
        self.bn_t = _bn(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn_s(self.conv_s(x)))
        return F.relu(self.bn_t(self.conv_t(x)))


class MixedBlock(nn.Module):
    """S3D Inception block (Mixed_3b .. Mixed_5c), four branches concatenated along channels:

    branch0: 1x1x1 | branch1: 1x1x1 -> sep 3x3x3 | branch2: 1x1x1 -> sep 3x3x3 | branch3: 3x3x3 max -> 1x1x1
    """

    def __init__(self, in_channels: int, b0: int, b1a: int, b1b: int, b2a: int, b2b: int, b3: int):
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv3d(in_channels, b0, 1))
        self.branch1 = nn.Sequential(BasicConv3d(in_channels, b1a, 1), SepConv3d(b1a, b1b, k=3, p=1))
        self.branch2 = nn.Sequential(BasicConv3d(in_channels, b2a, 1), SepConv3d(b2a, b2b, k=3, p=1))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), BasicConv3d(in_channels, b3, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


def _conv_bn_relu(conv: nn.Conv3d | nn.ConvTranspose3d) -> list[nn.Module]:
    return [conv, _bn(conv.out_channels), nn.ReLU()]


class TasedEncoding(NamedTuple):
    """What the encoder hands the decoder, for input [B, 3, 32, 224, 384] (H, W scale with the input).

    skip1       [B,  192, 4, 56, 96]  base1 (stem) output, max over groups of 4 time steps (maxm2)
    skip2       [B,  480, 4, 28, 48]  base2 (Mixed_3b, 3c) output, max over groups of 4 steps (maxm3)
    skip3       [B,  832, 4, 14, 24]  base3 (Mixed_4b .. 4f) output, max over pairs of steps (maxt4)
    bottleneck  [B, 1024, 4,  7, 12]  base4 (Mixed_5b, 5c) output, the deepest encoder map
    idx1        [B,  192, 4, 28, 48]  argmax of the 3x3 stride-2 spatial max pool of skip1 (maxt2)
    idx2        [B,  480, 4, 14, 24]  argmax of the 3x3 stride-2 spatial max pool of skip2 (maxt3)
    idx3        [B,  832, 4,  7, 12]  argmax of the 2x2 stride-2 spatial max pool of skip3 (maxp4)

    The indices (int64) are flat positions in their skip map's T*H*W volume, as MaxPool3d returns them.

    The decoder reads the bottleneck, unpools with idx3, idx2, idx1 and takes the unpooled sizes from
    skip3, skip2, skip1.
    """

    skip1: Tensor
    skip2: Tensor
    skip3: Tensor
    bottleneck: Tensor
    idx1: Tensor
    idx2: Tensor
    idx3: Tensor


class TasedNet(nn.Module):
    """TASED-Net v2. ``output="saliency"``: forward -> [B, H, W] map in (0, 1) for the clip's last frame;
    ``output="bottleneck"``: forward -> the encoder's Mixed_5c map [B, 1024, 4, H/32, W/32].

    Input: [B, 3, 32, H, W] RGB scaled as (x * 2 - 255) / 255, H and W multiples of 32 (224 x 384 trained).
    """

    OUTPUTS = ("saliency", "bottleneck")

    def __init__(self, output: str = "saliency"):
        super().__init__()
        if output not in self.OUTPUTS:
            raise ValueError(f"output must be one of {self.OUTPUTS}, got {output!r}")
        self.output = output

        # Encoder (S3D). maxp*: pooling into the next stage; maxm*: temporal max for a skip map;
        # maxt*/maxp4: spatial pooling whose argmax indices the decoder unpools with.
        self.base1 = nn.Sequential(  # [B, 3, 32, H, W] -> [B, 192, 16, H/4, W/4]
            SepConv3d(3, 64, k=7, s=2, p=3),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            BasicConv3d(64, 64, 1),
            SepConv3d(64, 192, k=3, p=1),
        )
        self.maxp2 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.maxm2 = nn.MaxPool3d((4, 1, 1), stride=(4, 1, 1))
        self.maxt2 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), return_indices=True)
        self.base2 = nn.Sequential(  # in_channels, then b0, b1a, b1b, b2a, b2b, b3 (Inception-v1 widths)
            MixedBlock(192, 64, 96, 128, 16, 32, 32),  # Mixed_3b -> 256
            MixedBlock(256, 128, 128, 192, 32, 96, 64),  # Mixed_3c -> 480
        )
        self.maxp3 = nn.MaxPool3d(3, stride=2, padding=1)
        self.maxm3 = nn.MaxPool3d((4, 1, 1), stride=(4, 1, 1))
        self.maxt3 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), return_indices=True)
        self.base3 = nn.Sequential(
            MixedBlock(480, 192, 96, 208, 16, 48, 64),  # Mixed_4b -> 512
            MixedBlock(512, 160, 112, 224, 24, 64, 64),  # Mixed_4c -> 512
            MixedBlock(512, 128, 128, 256, 24, 64, 64),  # Mixed_4d -> 512
            MixedBlock(512, 112, 144, 288, 32, 64, 64),  # Mixed_4e -> 528
            MixedBlock(528, 256, 160, 320, 32, 128, 128),  # Mixed_4f -> 832
        )
        self.maxt4 = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1))
        self.maxp4 = nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2), return_indices=True)
        self.base4 = nn.Sequential(
            MixedBlock(832, 256, 160, 320, 32, 128, 128),  # Mixed_5b -> 832
            MixedBlock(832, 384, 192, 384, 48, 128, 128),  # Mixed_5c -> 1024
        )

        # Decoder: transposed convs, max-unpooling with the encoder's indices, and two temporal
        # stride-2 convs that fold the 4 remaining time steps into one map.
        self.convtsp1 = nn.Sequential(
            *_conv_bn_relu(nn.Conv3d(1024, 1024, 1, bias=False)),
            *_conv_bn_relu(nn.ConvTranspose3d(1024, 832, (1, 3, 3), padding=(0, 1, 1), bias=False)),
        )
        self.unpool1 = nn.MaxUnpool3d((1, 2, 2), stride=(1, 2, 2))
        self.convtsp2 = nn.Sequential(
            *_conv_bn_relu(nn.ConvTranspose3d(832, 480, (1, 3, 3), padding=(0, 1, 1), bias=False)),
        )
        self.unpool2 = nn.MaxUnpool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.convtsp3 = nn.Sequential(
            *_conv_bn_relu(nn.ConvTranspose3d(480, 192, (1, 3, 3), padding=(0, 1, 1), bias=False)),
        )
        self.unpool3 = nn.MaxUnpool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.convtsp4 = nn.Sequential(
            # 0-2: upsample x2 in space                               [B, 64, 4, H/2, W/2]
            *_conv_bn_relu(nn.ConvTranspose3d(192, 64, (1, 4, 4), (1, 2, 2), (0, 1, 1), bias=False)),
            # 3-5: time 4 -> 2
            *_conv_bn_relu(nn.Conv3d(64, 64, (2, 1, 1), stride=(2, 1, 1), bias=False)),
            # 6-8: 64 -> 4 channels
            *_conv_bn_relu(nn.ConvTranspose3d(64, 4, 1, bias=False)),
            # 9-11: time 2 -> 1
            *_conv_bn_relu(nn.Conv3d(4, 4, (2, 1, 1), stride=(2, 1, 1), bias=False)),
            # 12: upsample x2 in space                                 [B, 4, 1, H, W]
            nn.ConvTranspose3d(4, 4, (1, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
            # 13-14: one channel, per-pixel sigmoid                    [B, 1, 1, H, W]
            nn.Conv3d(4, 1, 1, bias=True),
            nn.Sigmoid(),
        )

    @staticmethod
    def check_input(x: Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != 3 or x.shape[2] != CLIP_FRAMES:
            raise ValueError(f"TASED-Net expects input [B, 3, {CLIP_FRAMES}, H, W], got {list(x.shape)}")
        h, w = x.shape[3:]
        if h % 32 or w % 32 or min(h, w) == 0:
            raise ValueError(f"TASED-Net needs H and W that are multiples of 32 (224 x 384), got {h} x {w}")

    def encode(self, x: Tensor) -> TasedEncoding:
        """[B, 3, 32, H, W] -> the encoder maps and pooling indices the decoder consumes (TasedEncoding)."""
        y = self.base1(x)  # [B, 192, 16, H/4, W/4]
        skip1 = self.maxm2(y)  # [B, 192, 4, H/4, W/4]
        _, idx1 = self.maxt2(skip1)
        y2 = self.base2(self.maxp2(y))  # [B, 480, 16, H/8, W/8]
        skip2 = self.maxm3(y2)  # [B, 480, 4, H/8, W/8]
        _, idx2 = self.maxt3(skip2)
        y1 = self.base3(self.maxp3(y2))  # [B, 832, 8, H/16, W/16]
        skip3 = self.maxt4(y1)  # [B, 832, 4, H/16, W/16]
        y, idx3 = self.maxp4(skip3)  # [B, 832, 4, H/32, W/32]
        bottleneck = self.base4(y)  # [B, 1024, 4, H/32, W/32]
        return TasedEncoding(skip1, skip2, skip3, bottleneck, idx1, idx2, idx3)

    def decode(self, enc: TasedEncoding) -> Tensor:
        """Encoder maps -> saliency map of the clip's last frame [B, H, W], values in (0, 1)."""
        z = self.convtsp1(enc.bottleneck)  # [B, 832, 4, H/32, W/32]
        z = self.unpool1(z, enc.idx3, output_size=enc.skip3.shape)  # [B, 832, 4, H/16, W/16]
        z = self.convtsp2(z)  # [B, 480, 4, H/16, W/16]
        z = self.unpool2(z, enc.idx2, output_size=enc.skip2.shape)  # [B, 480, 4, H/8, W/8]
        z = self.convtsp3(z)  # [B, 192, 4, H/8, W/8]
        z = self.unpool3(z, enc.idx1, output_size=enc.skip1.shape)  # [B, 192, 4, H/4, W/4]
        z = self.convtsp4(z)  # [B, 1, 1, H, W]
        return z[:, 0, 0]

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        if self.output == "bottleneck":
            return self.encode(x).bottleneck
        return self.decode(self.encode(x))


def checkpoint_filter(obj: Any) -> dict[str, Tensor]:
    """TASED_updated.pt -> our state dict: strip the leading "module." (DataParallel) from every key.
    A state dict nested under "state_dict" is accepted too."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a TASED-Net state dict (names -> tensors), got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def preprocess(
    frames: Any, *, size: tuple[int, int] = INPUT_SIZE, antialias: bool = False, chunk: int = 8
) -> Tensor:
    """uint8 RGB frames [N, T, H, W, 3] -> TASED input [N, 3, T, 224, 384] float32, (x * 2 - 255) / 255.

    Frames are resized to `size` (height, width) without keeping the aspect ratio, bilinear like the
    reference's cv2.resize (no antialiasing unless asked), `chunk` frames at a time to bound memory.
    """
    frames = as_uint8_video(frames)
    n, t, h, w, _ = frames.shape
    if min(h, w) == 0:
        raise ValueError(f"frames have an empty side: {h}x{w}")
    flat = frames.reshape(n * t, h, w, 3)
    out = torch.empty(n * t, 3, *size, dtype=torch.float32)
    for start in range(0, n * t, chunk):
        x = flat[start : start + chunk].permute(0, 3, 1, 2).float()  # [k, 3, H, W], 0..255
        if (h, w) != tuple(size):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)
        out[start : start + chunk] = x
    out = out.mul_(2.0).sub_(255.0).div_(255.0).clamp_(-1.0, 1.0)
    return out.reshape(n, t, 3, *size).permute(0, 2, 1, 3, 4).contiguous()


DHF1K = WeightsEntry(
    "tased_dhf1k", "tased", "TASED_updated.pt",
    "https://drive.google.com/file/d/1y4KSTm-e7kP84k0IyVI-rRtmYZkrC-wL/view?usp=sharing",
    description="TASED-Net (updated release) trained on DHF1K video saliency (MichiganCOG/TASED-Net); "
    "a Google Drive page",
    # MichiganCOG/TASED-Net README: "download [this weight file](https://drive.google.com/file/d/
    # 1y4KSTm-e7kP84k0IyVI-rRtmYZkrC-wL/view?usp=sharing)"; its LICENSE file: "MIT License, Copyright (c) 2019
    # Kyle Min". No checksum is published.
    license="MIT (MichiganCOG/TASED-Net LICENSE, Copyright (c) 2019 Kyle Min)",
    direct=False,
)

_COMMON = dict(
    modality="video",
    preprocess=preprocess,
    frame_size=lambda h, w: INPUT_SIZE,  # every frame to 224x384, not antialiased (as preprocess)
    frame_antialias=False,
    clip_frames=CLIP_FRAMES,
    input_size=INPUT_SIZE,
    fps=0.0,
    checkpoint_filter=checkpoint_filter,
    weights=(DHF1K,),
)
_CLIP_NOTE = (
    "fps=0: a clip is 32 consecutive frames at the video's native rate, ending at the target frame "
    "(the frame the map is for); frames are resized to 224 x 384 without cropping."
)

register(
    BackboneSpec(
        name="tased",
        build=partial(TasedNet, output="saliency"),
        feature_dim=1,
        feature_shape=INPUT_SIZE,
        feature_layer="saliency map of the last frame (sigmoid)",
        notes="Per-pixel sigmoid in (0, 1), not normalised: divide by the map's sum for a distribution "
        "over the frame. " + _CLIP_NOTE,
        extractors=(ExtractorDef("tased", "tased", "window", output="saliency", fallback="motion_saliency",
                                 description="TASED-Net saliency map per target frame, uint8 224x384"),),
        **_COMMON,
    )
)
register(
    BackboneSpec(
        name="tased_maps",
        build=partial(TasedNet, output="bottleneck"),
        feature_dim=1024,
        feature_shape=(1024, 4, 7, 12),
        feature_layer="S3D encoder Mixed_5c (base4) map [1024, 4, 7, 12]",
        notes="The deepest encoder map the TASED decoder starts from (loads the same checkpoint as "
        "'tased'). " + _CLIP_NOTE,
        extractors=(ExtractorDef("tased_maps", "tased_maps", "window", output="maps",
                                 description="TASED-Net (S3D) encoder maps per target frame, float16"),),
        **_COMMON,
    )
)
