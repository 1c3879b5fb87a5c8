"""3D-ResNet-34 (Hara, Kataoka & Satoh, 2017/2018) as released with 3D-ResNets-PyTorch for Kinetics-400.

ResNet-34 with every convolution made 3D: a 7x7x7 stem (stride 1 in time, 2 in space), max pooling,
four stages of basic blocks [3, 4, 6, 3] with 64/128/256/512 channels, global average pooling and a
400-way classifier. The released ``resnet-34-kinetics.pth`` uses shortcut type "A": where a stage
changes resolution and width, the identity path is subsampled with the block's stride and padded with
zero channels, so the shortcut has no parameters.

Registered backbone:

    "r3d34"  [B, 3, 16, 112, 112] -> global average pool of layer4 (the input of fc)   [B, 512]

Input: RGB on a 0-255 scale minus the mean of Hara's models ([114.7748, 107.7354, 99.4750], std 1),
frames scaled so the shorter side is 112 and centre-cropped to 112x112, 16 frames per clip.
Checkpoint: ``{'epoch', 'arch', 'state_dict', 'optimizer'}`` with ``module.``-prefixed keys (saved from
``nn.DataParallel``); the filter strips the prefix.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._registry import BackboneSpec, ExtractorDef, WeightsEntry, register

CLIP_FRAMES = 16
SAMPLE_SIZE = 112
MEAN_RGB = (114.7748, 107.7354, 99.4750)  # 3D-ResNets-PyTorch get_mean(norm_value=1), 0-255 scale
STAGE_BLOCKS = (3, 4, 6, 3)
STAGE_WIDTHS = (64, 128, 256, 512)


def _conv3x3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """Shortcut type "A": subsample x with `stride` in (T, H, W) and pad the channels with zeros."""

    def __init__(self, out_channels: int, stride: int):
        super().__init__()
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        x = x[:, :, ::s, ::s, ::s]
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.out_channels - x.shape[1]))


class BasicBlock(nn.Module):
    """out = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm3d(c_out)
        self.conv2 = _conv3x3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm3d(c_out)
        changes_shape = stride != 1 or c_in != c_out
        self.shortcut = ZeroPadShortcut(c_out, stride) if changes_shape else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet3D34(nn.Module):
    """3D-ResNet-34 with the parameter names of 3D-ResNets-PyTorch ``models/resnet.py`` (shortcut "A").

    :meth:`forward` returns the 512-d global average of layer4; :meth:`logits` adds the Kinetics classifier.
    """

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, kernel_size=7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        c_in = 64
        for i, (blocks, width) in enumerate(zip(STAGE_BLOCKS, STAGE_WIDTHS), start=1):
            stride = 1 if i == 1 else 2
            layers = [BasicBlock(c_in, width, stride)] + [BasicBlock(width, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*layers))
            c_in = width
        self.fc = nn.Linear(512, num_classes)

    def features(self, clip: torch.Tensor) -> torch.Tensor:
        """[B, 3, T, H, W] -> layer4 output [B, 512, T/16, H/32, W/32] (rounded up)."""
        if clip.ndim != 5 or clip.shape[1] != 3:
            raise ValueError(f"3D-ResNet expects a clip [B, 3, T, H, W], got shape {tuple(clip.shape)}")
        x = self.maxpool(F.relu(self.bn1(self.conv1(clip))))  # [B, 64, T/2, H/4, W/4]
        x = self.layer1(x)
        x = self.layer2(x)  # [B, 128, T/4, H/8, W/8]
        x = self.layer3(x)  # [B, 256, T/8, H/16, W/16]
        return self.layer4(x)  # [B, 512, 1, 4, 4] for 16x112x112

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        # The released model pools with AvgPool3d over the whole [1, 4, 4] map of a 16x112x112 clip:
        # the same as the global mean taken here.
        return self.features(clip).mean(dim=(2, 3, 4))

    def logits(self, clip: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward(clip))


def checkpoint_filter(obj: Any) -> dict[str, torch.Tensor]:
    """``{'state_dict': {'module.conv1.weight': ...}, ...}`` (or a bare state dict) -> our keys."""
    state = obj["state_dict"] if isinstance(obj, dict) and "state_dict" in obj else obj
    if not isinstance(state, dict):
        raise ValueError(f"expected a 3D-ResNet checkpoint dict, got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def resized_size(h: int, w: int) -> tuple[int, int]:
    """(height, width) an H x W frame is resized to before the crop: the short side to 112."""
    n = SAMPLE_SIZE
    return (int(n * h / w), n) if w < h else (n, int(n * w / h))


def preprocess(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB clips [N, T, H, W, 3] -> 3D-ResNet input [N, 3, T, 112, 112], float32.

    The shorter side is scaled to 112 (bilinear, antialiased), the centre 112x112 is cropped, and the
    mean is subtracted from the 0-255 RGB values (std 1).
    """
    frames = torch.as_tensor(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"expected RGB frames [N, T, H, W, 3], got shape {tuple(frames.shape)}")
    if frames.dtype != torch.uint8:
        raise TypeError(f"expected uint8 frames, got {frames.dtype}")
    size = resized_size(*frames.shape[2:4])
    top = int(round((size[0] - SAMPLE_SIZE) / 2))
    left = int(round((size[1] - SAMPLE_SIZE) / 2))
    mean = torch.tensor(MEAN_RGB, dtype=torch.float32).view(3, 1, 1, 1)
    clips = []
    for clip in frames:  # one clip at a time bounds memory for high-resolution video
        x = clip.permute(0, 3, 1, 2).float()  # [T, 3, H, W]
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = x[:, :, top : top + SAMPLE_SIZE, left : left + SAMPLE_SIZE].permute(1, 0, 2, 3)
        clips.append(x - mean)  # [3, T, 112, 112]
    if not clips:
        return torch.empty(0, 3, frames.shape[1], SAMPLE_SIZE, SAMPLE_SIZE)
    return torch.stack(clips)


KINETICS = WeightsEntry(
    "r3d34_kinetics", "r3d34", "resnet-34-kinetics.pth",
    # kenshohara/3D-ResNets-PyTorch README (540a0ea): "Old pretrained models are still available
    # [here](https://drive.google.com/drive/folders/1zvl89AgFAApbH0At-gMuZSeQB_LpNP-M?usp=sharing)", the folder of
    # resnet-34-kinetics.pth ("--model resnet --model_depth 34 --resnet_shortcut A"). The folder the entry used
    # to name was removed in 2018 (kenshohara/3D-ResNets-PyTorch#94). No checksum is published: the sha256 of
    # the file the user adds is recorded in the weights directory.
    "https://drive.google.com/drive/folders/1zvl89AgFAApbH0At-gMuZSeQB_LpNP-M?usp=sharing",
    description="3D-ResNet-34 (shortcut A) trained on Kinetics-400, Hara et al. "
    "(kenshohara/3D-ResNets-PyTorch); a Google Drive folder: download resnet-34-kinetics.pth",
    license="MIT (kenshohara/3D-ResNets-PyTorch)",
    direct=False,
)

register(
    BackboneSpec(
        name="r3d34",
        build=ResNet3D34,
        modality="video",
        feature_dim=512,
        feature_layer="global average pool of layer4 (input of fc)",
        preprocess=preprocess,
        frame_size=resized_size,
        clip_frames=CLIP_FRAMES,
        input_size=(SAMPLE_SIZE, SAMPLE_SIZE),
        fps=8.0,  # 16 frames span a 2-s segment
        checkpoint_filter=checkpoint_filter,
        weights=(KINETICS,),
        extractors=(ExtractorDef("r3d34", "r3d34", "segment", description="3D-ResNet-34 Kinetics, pooled, 512-d"),),
        notes="Hara et al. 3D-ResNet-34, Kinetics-400 (resnet-34-kinetics.pth, shortcut A); "
        "RGB 0-255 minus [114.7748, 107.7354, 99.4750].",
    )
)
