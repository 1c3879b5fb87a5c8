"""RAFT: Recurrent All-Pairs Field Transforms for optical flow (Teed & Deng, ECCV 2020), large and small.

The module carries torchvision's parameter names and shapes (``torchvision.models.optical_flow.raft_large`` /
``raft_small``), so torchvision's published files load unchanged; the original files of princeton-vl/RAFT
(raft-things.pth, raft-sintel.pth, raft-small.pth, ...: DataParallel ``module.`` keys, names fnet / cnet /
update_block) load through :func:`checkpoint_filter`, which renames their keys onto these.

    flow = RAFT.large()(image1, image2)   # [P, 3, H, W] in [-1, 1] each -> [P, 2, H, W] pixels

Per the paper (section 3):

1. a feature encoder maps both images to features at 1/8 resolution; a context encoder maps image1 to the
   initial hidden state (tanh) and the context (relu) of the update operator;
2. the correlation volume holds the dot product of every pair of feature vectors, divided by sqrt(channels);
   its last two dimensions are average-pooled 4 times into a pyramid;
3. starting from zero flow, the update operator looks up the correlations around the current correspondence
   (radius r on each level; bilinear, align_corners=True), encodes them with the flow, runs a (separable)
   convolutional GRU and predicts a flow increment, ``num_flow_updates`` times;
4. the 1/8-resolution flow is brought to full resolution by a convex combination of its 3x3 neighbours with
   weights predicted from the hidden state (the mask is scaled by 0.25, as published); RAFT small upsamples
   bilinearly instead.

Both public definitions compute the same thing; they differ around it, and both ways are served here:

* input range: torchvision takes images in [-1, 1] (its ``OpticalFlow`` transform); the original takes
  [0, 255] and computes ``2 * (img / 255) - 1`` itself. ``forward`` takes [-1, 1]; :func:`to_raft_input` does
  the original's conversion.
* sides not divisible by 8: torchvision refuses them; the original's users pad with ``InputPadder`` (replicated
  borders, the padding split evenly, "sintel" mode) and crop the flow back. ``forward`` does the latter, and
  leaves inputs whose sides divide by 8 as they are (equal to both).
* iterations: torchvision's default is 12, the original's demo 20 (and v-iashin/video_features' 20).

Only the last flow estimate is upsampled and returned (both references upsample every intermediate estimate for
training; the last one is the same). Under autocast the correlation pyramid and its look-ups stay in float32, as
the original's mixed-precision mode keeps them; the encoders and the update operator follow the autocast.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import BackboneSpec, WeightsEntry, as_uint8_video, register
from .flow import register_flow


def conv_norm_relu(cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1, norm: str | None = None,
                   relu: bool = True) -> nn.Sequential:
    """Conv2d (with bias, "same" padding) -> optional norm -> optional ReLU, indexed 0, 1, 2 like torchvision's
    ``Conv2dNormActivation`` (so the state-dict names agree)."""
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride=stride, padding=((k[0] - 1) // 2, (k[1] - 1) // 2))]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(cout))
    elif norm == "instance":
        layers.append(nn.InstanceNorm2d(cout))  # no affine terms, no running statistics
    elif norm is not None:
        raise ValueError(f"unknown norm {norm!r}")
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- feature and context encoders

class ResidualBlock(nn.Module):
    """RAFT large's residual block: two 3x3 conv-norm-relu, a projected shortcut where it strides, a final relu."""

    def __init__(self, cin: int, cout: int, norm: str | None, stride: int = 1):
        super().__init__()
        self.convnormrelu1 = conv_norm_relu(cin, cout, 3, stride, norm)
        self.convnormrelu2 = conv_norm_relu(cout, cout, 3, 1, norm)
        self.downsample = nn.Identity() if stride == 1 else conv_norm_relu(cin, cout, 1, stride, norm, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.downsample(x) + self.convnormrelu2(self.convnormrelu1(x)))


class BottleneckBlock(nn.Module):
    """RAFT small's bottleneck block: 1x1 (cout/4) -> 3x3 (cout/4, strided) -> 1x1 (cout), shortcut, relu."""

    def __init__(self, cin: int, cout: int, norm: str | None, stride: int = 1):
        super().__init__()
        self.convnormrelu1 = conv_norm_relu(cin, cout // 4, 1, 1, norm)
        self.convnormrelu2 = conv_norm_relu(cout // 4, cout // 4, 3, stride, norm)
        self.convnormrelu3 = conv_norm_relu(cout // 4, cout, 1, 1, norm)
        self.downsample = nn.Identity() if stride == 1 else conv_norm_relu(cin, cout, 1, stride, norm, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.convnormrelu3(self.convnormrelu2(self.convnormrelu1(x)))
        return self.relu(self.downsample(x) + y)


class FeatureEncoder(nn.Module):
    """[P, 3, H, W] -> [P, widths[4], H/8, W/8]: a 7x7 stride-2 stem, three stages of two blocks (strides 1, 2,
    2), a 1x1 output convolution. Serves as the feature encoder and as the context encoder."""

    def __init__(self, block: type[nn.Module], widths: tuple[int, int, int, int, int], norm: str | None):
        super().__init__()
        self.convnormrelu = conv_norm_relu(3, widths[0], 7, 2, norm)  # [P, w0, H/2, W/2]
        self.layer1 = nn.Sequential(block(widths[0], widths[1], norm, 1), block(widths[1], widths[1], norm))
        self.layer2 = nn.Sequential(block(widths[1], widths[2], norm, 2), block(widths[2], widths[2], norm))
        self.layer3 = nn.Sequential(block(widths[2], widths[3], norm, 2), block(widths[3], widths[3], norm))
        self.conv = nn.Conv2d(widths[3], widths[4], 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.convnormrelu(x)  # [P, w0, H/2, W/2]
        x = self.layer3(self.layer2(self.layer1(x)))  # [P, w3, H/8, W/8]
        return self.conv(x)  # [P, w4, H/8, W/8]


# ----------------------------------------------------------------------------- correlation pyramid

def correlation_pyramid(fmap1: Tensor, fmap2: Tensor, levels: int) -> list[Tensor]:
    """All-pairs correlation <f1(i, j), f2(k, l)> / sqrt(C) of [P, C, h, w] features, as `levels` volumes
    [P*h*w, 1, h / 2^l, w / 2^l] (the last two dimensions average-pooled by 2 per level)."""
    p, c, h, w = fmap1.shape
    corr = torch.matmul(fmap1.reshape(p, c, h * w).transpose(1, 2), fmap2.reshape(p, c, h * w))  # [P, hw, hw]
    corr = corr.reshape(p * h * w, 1, h, w) / torch.sqrt(torch.tensor(float(c)))
    pyramid = [corr]
    for _ in range(levels - 1):
        corr = F.avg_pool2d(corr, 2, stride=2)
        pyramid.append(corr)
    return pyramid


def lookup(pyramid: list[Tensor], coords: Tensor, radius: int) -> Tensor:
    """Correlations around `coords` [P, 2, h, w] (x, y in 1/8-resolution pixels): on each level the
    (2r + 1)^2 values at coords / 2^l + (dx, dy), |dx|, |dy| <= r, bilinear with zeros outside ->
    [P, levels * (2r + 1)^2, h, w]. The neighbourhood is ordered with dx outer and dy inner, as published."""
    p, _, h, w = coords.shape
    side = 2 * radius + 1
    d = torch.linspace(-radius, radius, side, device=coords.device, dtype=coords.dtype)
    delta = torch.stack(torch.meshgrid(d, d, indexing="ij"), dim=-1).view(1, side, side, 2)  # (dx, dy)
    centre = coords.permute(0, 2, 3, 1).reshape(p * h * w, 1, 1, 2)
    out = []
    for level, corr in enumerate(pyramid):
        xy = centre / 2**level + delta  # [P*h*w, side, side, 2] absolute pixel coordinates on this level
        ch, cw = corr.shape[-2:]
        grid = torch.cat([2 * xy[..., :1] / (cw - 1) - 1, 2 * xy[..., 1:] / (ch - 1) - 1], dim=-1)
        out.append(F.grid_sample(corr, grid, mode="bilinear", align_corners=True).view(p, h, w, -1))
    return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()  # [P, levels * side^2, h, w]


# ----------------------------------------------------------------------------- update operator

class MotionEncoder(nn.Module):
    """Correlation features and the current flow -> motion features [P, out, h, w] (the flow appended last)."""

    def __init__(self, corr_channels: int, corr_layers: tuple[int, ...], flow_layers: tuple[int, int], out: int):
        super().__init__()
        self.convcorr1 = conv_norm_relu(corr_channels, corr_layers[0], 1)
        self.convcorr2 = conv_norm_relu(corr_layers[0], corr_layers[1], 3) if len(corr_layers) == 2 else nn.Identity()
        self.convflow1 = conv_norm_relu(2, flow_layers[0], 7)
        self.convflow2 = conv_norm_relu(flow_layers[0], flow_layers[1], 3)
        self.conv = conv_norm_relu(corr_layers[-1] + flow_layers[-1], out - 2, 3)
        self.out_channels = out

    def forward(self, flow: Tensor, corr: Tensor) -> Tensor:
        c = self.convcorr2(self.convcorr1(corr))
        f = self.convflow2(self.convflow1(flow))
        return torch.cat([self.conv(torch.cat([c, f], dim=1)), flow], dim=1)


class ConvGRU(nn.Module):
    """h' = (1 - z) h + z q with z = sigmoid(conv[h, x]), r = sigmoid(conv[h, x]), q = tanh(conv[r h, x])."""

    def __init__(self, input_size: int, hidden_size: int, kernel: tuple[int, int]):
        super().__init__()
        pad = ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
        self.convz = nn.Conv2d(hidden_size + input_size, hidden_size, kernel, padding=pad)
        self.convr = nn.Conv2d(hidden_size + input_size, hidden_size, kernel, padding=pad)
        self.convq = nn.Conv2d(hidden_size + input_size, hidden_size, kernel, padding=pad)

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(self.convz(hx))
        r = torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


class RecurrentBlock(nn.Module):
    """RAFT large: a separable GRU (1x5, then 5x1); RAFT small: one 3x3 GRU."""

    def __init__(self, input_size: int, hidden_size: int, kernels: tuple[tuple[int, int], ...]):
        super().__init__()
        self.convgru1 = ConvGRU(input_size, hidden_size, kernels[0])
        self.convgru2 = ConvGRU(input_size, hidden_size, kernels[1]) if len(kernels) == 2 else None
        self.hidden_size = hidden_size

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        h = self.convgru1(h, x)
        return self.convgru2(h, x) if self.convgru2 is not None else h


class FlowHead(nn.Module):
    """Hidden state -> flow increment [P, 2, h, w]."""

    def __init__(self, in_channels: int, hidden_size: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden_size, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_size, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class UpdateBlock(nn.Module):
    """One update: motion features, GRU step on [context, motion], flow increment."""

    def __init__(self, motion_encoder: MotionEncoder, recurrent_block: RecurrentBlock, flow_head: FlowHead):
        super().__init__()
        self.motion_encoder, self.recurrent_block, self.flow_head = motion_encoder, recurrent_block, flow_head

    def forward(self, hidden: Tensor, context: Tensor, corr: Tensor, flow: Tensor) -> tuple[Tensor, Tensor]:
        motion = self.motion_encoder(flow, corr)
        hidden = self.recurrent_block(hidden, torch.cat([context, motion], dim=1))
        return hidden, self.flow_head(hidden)


class MaskPredictor(nn.Module):
    """Hidden state -> the convex-upsampling weights [P, 8*8*9, h, w], scaled by 0.25 (as published)."""

    def __init__(self, in_channels: int, hidden_size: int = 256, multiplier: float = 0.25):
        super().__init__()
        self.convrelu = conv_norm_relu(in_channels, hidden_size, 3)
        self.conv = nn.Conv2d(hidden_size, 8 * 8 * 9, 1)
        self.multiplier = multiplier

    def forward(self, x: Tensor) -> Tensor:
        return self.multiplier * self.conv(self.convrelu(x))


def upsample_flow(flow: Tensor, mask: Tensor | None, factor: int = 8) -> Tensor:
    """[P, 2, h, w] flow at 1/8 resolution -> [P, 2, 8h, 8w] pixels: each fine pixel a convex combination
    (softmax of `mask` [P, 9*8*8, h, w]) of the 3x3 coarse neighbours; bilinear (align_corners) without a mask."""
    p, c, h, w = flow.shape
    if mask is None:
        return factor * F.interpolate(flow, size=(h * factor, w * factor), mode="bilinear", align_corners=True)
    weights = torch.softmax(mask.view(p, 1, 9, factor, factor, h, w), dim=2)
    neighbours = F.unfold(factor * flow, kernel_size=3, padding=1).view(p, c, 9, 1, 1, h, w)
    up = (weights * neighbours).sum(dim=2)  # [P, 2, 8, 8, h, w]
    return up.permute(0, 1, 4, 2, 5, 3).reshape(p, c, h * factor, w * factor)


# ----------------------------------------------------------------------------- RAFT

MIN_SIZE = 128  # pixels: 1/8 resolution pooled 3 times must keep 2 values per side (torchvision's limit)


class RAFT(nn.Module):
    """RAFT large or small; ``forward(image1, image2)`` -> the flow from image1 to image2 in pixels, channel 0
    x (columns) and 1 y (rows): image2(y + flow_y, x + flow_x) ~ image1(y, x)."""

    in_channels = 3  # RGB frames (hl.extract.backbones.flow: the flow models' input)

    def __init__(self, *, small: bool = False, num_flow_updates: int = 12):
        super().__init__()
        self.small, self.num_flow_updates = small, num_flow_updates
        if small:
            self.radius, hidden, context = 3, 96, 64
            self.feature_encoder = FeatureEncoder(BottleneckBlock, (32, 32, 64, 96, 128), "instance")
            self.context_encoder = FeatureEncoder(BottleneckBlock, (32, 32, 64, 96, hidden + context), None)
            motion = MotionEncoder(4 * (2 * self.radius + 1) ** 2, (96,), (64, 32), 82)
            gru = RecurrentBlock(motion.out_channels + context, hidden, ((3, 3),))
            self.update_block = UpdateBlock(motion, gru, FlowHead(hidden, 128))
            self.mask_predictor = None
        else:
            self.radius, hidden, context = 4, 128, 128
            self.feature_encoder = FeatureEncoder(ResidualBlock, (64, 64, 96, 128, 256), "instance")
            self.context_encoder = FeatureEncoder(ResidualBlock, (64, 64, 96, 128, hidden + context), "batch")
            motion = MotionEncoder(4 * (2 * self.radius + 1) ** 2, (256, 192), (128, 64), 128)
            gru = RecurrentBlock(motion.out_channels + context, hidden, ((1, 5), (5, 1)))
            self.update_block = UpdateBlock(motion, gru, FlowHead(hidden, 256))
            self.mask_predictor = MaskPredictor(hidden)
        self.hidden_size, self.levels = hidden, 4

    def forward(self, image1: Tensor, image2: Tensor, num_flow_updates: int | None = None) -> Tensor:
        """[P, 3, H, W] and [P, 3, H, W] in [-1, 1] -> flow [P, 2, H, W]. Sides not divisible by 8 are padded
        (replicated borders, split evenly) and the flow cropped back, as the original's InputPadder does."""
        if image1.shape != image2.shape or image1.dim() != 4 or image1.shape[1] != 3:
            raise ValueError(f"RAFT expects two RGB images [P, 3, H, W], got {list(image1.shape)} and "
                             f"{list(image2.shape)}")
        p = image1.shape[0]
        x, crop = self.pad(torch.cat([image1, image2]))
        fmaps = self.feature_encoder(x)  # [2P, C, H/8, W/8]: both images in one pass
        flow = self.refine(fmaps[:p], fmaps[p:], x[:p], num_flow_updates)
        return flow[..., crop[0]:crop[1], crop[2]:crop[3]]

    def consecutive(self, frames: Tensor, pairs_per_pass: int = 8, num_flow_updates: int | None = None) -> Tensor:
        """The flow between consecutive frames [T + 1, 3, H, W] in [-1, 1] -> [T, 2, H, W], each frame encoded
        once (a frame is image2 of one pair and image1 of the next); `pairs_per_pass` pairs at a time."""
        x, crop = self.pad(frames)
        fmaps = torch.cat([self.feature_encoder(x[i:i + pairs_per_pass]) for i in range(0, len(x), pairs_per_pass)])
        flows = [self.refine(fmaps[i:j], fmaps[i + 1:j + 1], x[i:j], num_flow_updates)
                 for i in range(0, len(x) - 1, pairs_per_pass) for j in [min(i + pairs_per_pass, len(x) - 1)]]
        return torch.cat(flows)[..., crop[0]:crop[1], crop[2]:crop[3]]

    def pad(self, x: Tensor) -> tuple[Tensor, tuple[int, int, int, int]]:
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(f"RAFT needs images of at least {MIN_SIZE} x {MIN_SIZE} pixels (its correlation pyramid "
                             f"pools 1/8-resolution features 3 times), got {x.shape[-2]} x {x.shape[-1]}")
        return pad_to_8(x)

    def refine(self, fmap1: Tensor, fmap2: Tensor, image1: Tensor, num_flow_updates: int | None = None) -> Tensor:
        """The iterations on encoded features: fmap1, fmap2 [P, C, h, w] of image1, image2 (image1 [P, 3, 8h, 8w]
        in [-1, 1], sides divisible by 8, for the context) -> flow [P, 2, 8h, 8w]."""
        iterations = self.num_flow_updates if num_flow_updates is None else num_flow_updates
        p, _, h, w = fmap1.shape
        dev = fmap1.device.type
        with torch.autocast(device_type=dev, enabled=False):
            pyramid = correlation_pyramid(fmap1.float(), fmap2.float(), self.levels)  # float32, as published

        net = self.context_encoder(image1)  # [P, hidden + context, h, w]
        hidden, context = torch.split(net, [self.hidden_size, net.shape[1] - self.hidden_size], dim=1)
        hidden, context = torch.tanh(hidden), torch.relu(context)  # [P, hidden, h, w], [P, context, h, w]

        ys, xs = torch.meshgrid(torch.arange(h, device=fmap1.device), torch.arange(w, device=fmap1.device),
                                indexing="ij")
        coords0 = torch.stack([xs, ys]).float()[None].expand(p, 2, h, w)  # (x, y) of each 1/8 pixel
        coords1 = coords0.clone()
        for _ in range(iterations):
            with torch.autocast(device_type=dev, enabled=False):
                corr = lookup(pyramid, coords1, self.radius)  # [P, 4 (2r+1)^2, h, w] float32
            hidden, delta = self.update_block(hidden, context, corr, coords1 - coords0)
            coords1 = coords1 + delta.float()  # F(k+1) = F(k) + delta
        mask = self.mask_predictor(hidden) if self.mask_predictor is not None else None
        return upsample_flow(coords1 - coords0, None if mask is None else mask.float())


def raft_large(num_flow_updates: int = 12) -> RAFT:
    """torchvision's raft_large: 5.26 M parameters (5,257,536 without the BatchNorm statistics)."""
    return RAFT(small=False, num_flow_updates=num_flow_updates)


def raft_small(num_flow_updates: int = 12) -> RAFT:
    """torchvision's raft_small: 990,162 parameters."""
    return RAFT(small=True, num_flow_updates=num_flow_updates)


def pad_to_8(x: Tensor) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Pad [P, C, H, W] to sides divisible by 8, replicating the borders, the padding split evenly (the odd pixel
    after): the original's InputPadder("sintel"). Returns the padded images and the crop (top, bottom, left,
    right) that takes a result of the padded size back to H x W."""
    h, w = x.shape[-2:]
    ph, pw = -h % 8, -w % 8
    if ph == 0 and pw == 0:
        return x, (0, h, 0, w)
    top, left = ph // 2, pw // 2
    return F.pad(x, (left, pw - left, top, ph - top), mode="replicate"), (top, top + h, left, left + w)


def to_raft_input(images: Tensor) -> Tensor:
    """Images with values in [0, 255] (uint8 or float) -> RAFT's input range [-1, 1]: 2 * (x / 255) - 1, the
    original's own conversion (torchvision's transform, x / 255 normalised by mean 0.5 and std 0.5, is the same)."""
    return 2 * (images.float() / 255.0) - 1.0


# ----------------------------------------------------------------------------- princeton-vl checkpoints

_ENCODERS = {"fnet": "feature_encoder", "cnet": "context_encoder"}
_MOTION = {"convc1": "convcorr1.0", "convc2": "convcorr2.0", "convf1": "convflow1.0", "convf2": "convflow2.0",
           "conv": "conv.0"}
_BLOCK = re.compile(r"(layer\d\.\d)\.(conv|norm)(\d)\.(.+)")


def _original_name(key: str, keys: set[str]) -> str | None:
    """One princeton-vl RAFT key (without "module.") -> torchvision's name; None for the duplicate entries of a
    block's shortcut norm (the original registers it twice: as normN and as downsample.1)."""
    head, _, rest = key.partition(".")
    if head in _ENCODERS:
        enc = _ENCODERS[head]
        if rest.startswith(("conv1.", "norm1.")):
            return f"{enc}.convnormrelu.{0 if rest.startswith('conv') else 1}.{rest[6:]}"
        if rest.startswith("conv2."):
            return f"{enc}.conv.{rest[6:]}"
        m = _BLOCK.fullmatch(rest)
        if m:
            block, kind, n, tail = m.groups()
            if kind == "norm" and f"{head}.{block}.conv{n}.weight" not in keys:
                return None  # normN without a convN: the shortcut's norm, also stored as downsample.1
            return f"{enc}.{block}.convnormrelu{n}.{0 if kind == 'conv' else 1}.{tail}"
        return f"{enc}.{rest}"  # layerK.i.downsample.{0,1}.*
    if head == "update_block":
        part, _, tail = rest.partition(".")
        if part == "encoder":
            name, _, leaf = tail.partition(".")
            return f"update_block.motion_encoder.{_MOTION.get(name, name)}.{leaf}"
        if part == "gru":
            name, _, leaf = tail.partition(".")  # convz1 / convz2 (separable) or convz (small)
            gru = "convgru2" if name.endswith("2") else "convgru1"
            return f"update_block.recurrent_block.{gru}.{name[:5]}.{leaf}"
        if part == "mask":
            idx, _, leaf = tail.partition(".")
            return f"mask_predictor.{'convrelu.0' if idx == '0' else 'conv'}.{leaf}"
        return f"update_block.{rest}"  # flow_head.*
    return key


def checkpoint_filter(obj: Any) -> dict[str, Tensor]:
    """A RAFT checkpoint in either public format -> our (torchvision's) state dict.

    torchvision's files (raft_large_C_T_SKHT_V2-ff5fadd5.pth, ...) are plain state dicts in our names and pass
    unchanged. princeton-vl's files (raft-things.pth, raft-sintel.pth, raft-small.pth, ...) hold the
    DataParallel state dict of the original code: "module." is stripped and the names are mapped (fnet ->
    feature_encoder, cnet -> context_encoder, update_block.encoder -> update_block.motion_encoder, gru ->
    recurrent_block, mask -> mask_predictor, convN/normN -> convnormreluN.0/.1)."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a RAFT state dict (names -> tensors), got {type(obj).__name__}")
    state = {str(k).removeprefix("module."): v for k, v in obj.items()}
    if not any(k.startswith(("fnet.", "cnet.")) for k in state):
        return state  # torchvision's names already
    keys = set(state)
    out = {}
    for k, v in state.items():
        name = _original_name(k, keys)
        if name is not None:
            out[name] = v
    return out


# ----------------------------------------------------------------------------- registry

# Iterations of the update operator for video frames: the original demo's and v-iashin/video_features' 20 (its
# I3D flow stream runs princeton-vl's raft-sintel.pth with iters=20); torchvision's default is 12.
VIDEO_ITERATIONS = 20

register_flow("raft_large")(partial(raft_large, num_flow_updates=VIDEO_ITERATIONS))
register_flow("raft_small")(partial(raft_small, num_flow_updates=VIDEO_ITERATIONS))


def preprocess_frames(frames: Any) -> Tensor:
    """uint8 RGB frames [N, T, H, W, 3] -> RAFT's input [N, 3, T, H, W] float32 in [-1, 1] (flow is computed
    between consecutive frames along T)."""
    x = as_uint8_video(frames).permute(0, 4, 1, 2, 3)
    return to_raft_input(x).contiguous()


# torchvision's files: the sha256 of each starts with the 8 hex digits its name ends in (torch.hub checks them)
_TV_URL = "https://download.pytorch.org/models/"
_TV_LICENSE = "BSD-3-Clause (pytorch/vision)"
# princeton-vl/RAFT's README: "Pretrained models can be downloaded by running ./download_models.sh or downloaded
# from [google drive](https://drive.google.com/drive/folders/1sWDsfuZ3Up38EUQt7-JDTT1HcGHuJgvT?usp=sharing)";
# download_models.sh: "wget https://dl.dropboxusercontent.com/s/4j4z58wuv8o0mfz/models.zip" (the .pth files inside).
# No checksum is published. The Drive folder hands out each file, to a browser.
_ORIGINAL_URL = "https://drive.google.com/drive/folders/1sWDsfuZ3Up38EUQt7-JDTT1HcGHuJgvT"
_ORIGINAL_LICENSE = "BSD-3-Clause (princeton-vl/RAFT)"
_IN_ZIP = (" (also inside https://dl.dropboxusercontent.com/s/4j4z58wuv8o0mfz/models.zip, princeton-vl's "
           "download_models.sh: unzip it, then `hl weights add` the file)")


def _torchvision(name: str, backbone: str, file_name: str, description: str) -> WeightsEntry:
    # e.g. Raft_Large_Weights.C_T_SKHT_V2: url="https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth"
    return WeightsEntry(name, backbone, file_name, _TV_URL + file_name, sha256_prefix=file_name[-12:-4],
                        description=description, license=_TV_LICENSE)


def _original(name: str, backbone: str, file_name: str, description: str) -> WeightsEntry:
    return WeightsEntry(name, backbone, file_name, _ORIGINAL_URL, description=description + _IN_ZIP,
                        license=_ORIGINAL_LICENSE, direct=False)


RAFT_LARGE_WEIGHTS = (
    _torchvision("raft_large_c_t_skht_v2", "raft_large", "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
                 "RAFT large (torchvision's default): FlyingChairs + FlyingThings3D, fine-tuned on Sintel + KITTI + "
                 "HD1K + Things"),
    _torchvision("raft_large_c_t_skht_v1", "raft_large", "raft_large_C_T_SKHT_V1-0b8c9e55.pth",
                 "RAFT large, princeton-vl's raft-sintel.pth ported by torchvision"),
    _torchvision("raft_large_c_t_v2", "raft_large", "raft_large_C_T_V2-1bb1363a.pth",
                 "RAFT large: FlyingChairs + FlyingThings3D (torchvision's training)"),
    _original("raft_large_sintel", "raft_large", "raft-sintel.pth",
              "RAFT large, princeton-vl's Sintel model (the one v-iashin/video_features uses)"),
    _original("raft_large_things", "raft_large", "raft-things.pth", "RAFT large, princeton-vl's Things model"),
)
RAFT_SMALL_WEIGHTS = (
    _torchvision("raft_small_c_t_v2", "raft_small", "raft_small_C_T_V2-01064c6d.pth",
                 "RAFT small (torchvision's default): FlyingChairs + FlyingThings3D"),
    _torchvision("raft_small_c_t_v1", "raft_small", "raft_small_C_T_V1-ad48884c.pth",
                 "RAFT small, princeton-vl's raft-small.pth ported by torchvision"),
    _original("raft_small_things", "raft_small", "raft-small.pth", "RAFT small, princeton-vl's model"),
)


def _spec(name: str, build, weights: tuple[WeightsEntry, ...]) -> BackboneSpec:
    return BackboneSpec(
        name=name,
        build=build,
        modality="flow",
        feature_dim=2,
        feature_layer=f"flow in pixels: the last of {VIDEO_ITERATIONS} estimates, upsampled to the input size",
        preprocess=preprocess_frames,
        checkpoint_filter=checkpoint_filter,
        weights=weights,
        notes="An optical-flow network (torchvision's parameter names; princeton-vl's files load through the "
        "checkpoint filter); it runs in front of I3D's flow stream (hl.extract.backbones.i3d_flow).",
        extra={"flow_iterations": VIDEO_ITERATIONS},
    )


register(_spec("raft_large", partial(raft_large, num_flow_updates=VIDEO_ITERATIONS), RAFT_LARGE_WEIGHTS))
register(_spec("raft_small", partial(raft_small, num_flow_updates=VIDEO_ITERATIONS), RAFT_SMALL_WEIGHTS))
