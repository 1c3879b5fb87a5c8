"""Pixel-level distinction (PLD) decoders: frozen-encoder maps of a clip -> a distinction map of its target frame.

PLD (Wei et al., CVPR 2022) predicts, for the last frame I_t of a clip C_t, a map d_t of the frame's size whose
pixels say "this belongs to a highlight"; the clip's highlight score is the map's mean. The encoder is frozen
and its maps are read from the feature cache, so only these decoders train.

``C3DDecoder`` (the paper's "Ours (C3D)", 112 x 112): four transposed convolutions from C3D conv5b.

    conv5b       [B, 512, 2, 7, 7]
    up1  3D      [B, 256, 1, 14, 14]   kernel (T, 4, 4), stride (1, 2, 2): folds time, doubles space
    up2  2D      [B, 128, 28, 28]
    up3  2D      [B,  64, 56, 56]
    up4  2D      [B,   1, 112, 112]    logits of d_t over the clip's 112 x 112 centre crop

``TasedDecoder`` (the paper's TASED-Net variant, 224 x 384): TASED-Net v2's decoder fed only by the S3D
encoder's deepest map (Mixed_5c), which is what the cache holds. The original decoder also max-unpools three
times with the argmax indices of the encoder's pooling layers (and their skip maps' sizes); those are not
cached (they are several times the bottleneck's size), so each max-unpooling is replaced by nearest-neighbour
upsampling x2 - the value is spread over the 2 x 2 window instead of placed at the encoder's argmax. Every
layer with parameters keeps TASED-Net's name and shape (convtsp1..4, without the final sigmoid: the decoder
returns logits), so a TASED-Net checkpoint can initialise it (:func:`load_tased_decoder`).

    Mixed_5c     [B, 1024, 4, 7, 12]
    convtsp1     [B,  832, 4, 7, 12]    1x1x1 conv, then 1x3x3 transposed conv
    up x2        [B,  832, 4, 14, 24]   (TASED: unpool with the indices of maxp4)
    convtsp2     [B,  480, 4, 14, 24]
    up x2        [B,  480, 4, 28, 48]   (TASED: unpool with the indices of maxt3)
    convtsp3     [B,  192, 4, 28, 48]
    up x2        [B,  192, 4, 56, 96]   (TASED: unpool with the indices of maxt2)
    convtsp4     [B,    1, 1, 224, 384] x2 space, time 4 -> 2 -> 1, x2 space, one channel

Both standardise their input per channel with statistics of the training maps (``set_input_stats``; stored
in the state dict), which makes randomly initialised or rescaled encoders usable as they are.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hl.common.seeding import seeded

from .checkpoint import load_checkpoint, save_checkpoint

FORMAT = "hl.heads.pixel/1"
BACKBONES = ("c3d", "tased")


def _bn_relu(channels: int, dims: int) -> list[nn.Module]:
    bn = nn.BatchNorm3d(channels) if dims == 3 else nn.BatchNorm2d(channels)
    return [bn, nn.ReLU()]


class _Standardise(nn.Module):
    """x -> (x - mean_c) / std_c per input channel; identity until :meth:`set` is called."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def set(self, mean: Tensor, std: Tensor) -> None:
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ValueError(f"need {self.mean.numel()} channel means and stds, got {mean.numel()} and {std.numel()}")
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-6))

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)


class C3DDecoder(nn.Module):
    """C3D conv5b maps [B, C, T, h, w] -> distinction logits [B, 16h, 16w] (112 x 112 for 7 x 7 maps)."""

    def __init__(self, in_channels: int = 512, time_steps: int = 2, widths: tuple[int, int, int] = (256, 128, 64)):
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"C3DDecoder takes three hidden widths, got {tuple(widths)}")
        c1, c2, c3 = widths
        self.time_steps = time_steps
        self.standardise = _Standardise(in_channels)
        # kernel T along time with padding T-1 leaves one output step: a learned fold of the clip's time axis
        self.up1 = nn.Sequential(
            nn.ConvTranspose3d(in_channels, c1, (time_steps, 4, 4), stride=(1, 2, 2), padding=(time_steps - 1, 1, 1)),
            *_bn_relu(c1, 3),
        )
        self.up2 = nn.Sequential(nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1), *_bn_relu(c2, 2))
        self.up3 = nn.Sequential(nn.ConvTranspose2d(c2, c3, 4, stride=2, padding=1), *_bn_relu(c3, 2))
        self.up4 = nn.ConvTranspose2d(c3, 1, 4, stride=2, padding=1)

    def forward(self, maps: Tensor) -> Tensor:
        if maps.dim() != 5 or maps.shape[2] != self.time_steps:
            raise ValueError(f"C3DDecoder expects maps [B, C, {self.time_steps}, h, w], got {list(maps.shape)}")
        x = self.up1(self.standardise(maps))[:, :, 0]  # [B, 256, 2h, 2w]
        x = self.up3(self.up2(x))  # [B, 64, 8h, 8w]
        return self.up4(x)[:, 0]  # [B, 16h, 16w]


def _tased_bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=1e-3, momentum=0.001, affine=True)


def _conv_bn_relu(conv: nn.Module) -> list[nn.Module]:
    return [conv, _tased_bn(conv.out_channels), nn.ReLU()]


class TasedDecoder(nn.Module):
    """S3D Mixed_5c maps [B, 1024, 4, h, w] -> distinction logits [B, 32h, 32w] (224 x 384 for 7 x 12)."""

    def __init__(self, in_channels: int = 1024):
        super().__init__()
        self.standardise = _Standardise(in_channels)
        self.convtsp1 = nn.Sequential(
            *_conv_bn_relu(nn.Conv3d(in_channels, 1024, 1, bias=False)),
            *_conv_bn_relu(nn.ConvTranspose3d(1024, 832, (1, 3, 3), padding=(0, 1, 1), bias=False)),
        )
        self.convtsp2 = nn.Sequential(
            *_conv_bn_relu(nn.ConvTranspose3d(832, 480, (1, 3, 3), padding=(0, 1, 1), bias=False)),
        )
        self.convtsp3 = nn.Sequential(
            *_conv_bn_relu(nn.ConvTranspose3d(480, 192, (1, 3, 3), padding=(0, 1, 1), bias=False)),
        )
        self.convtsp4 = nn.Sequential(
            *_conv_bn_relu(nn.ConvTranspose3d(192, 64, (1, 4, 4), (1, 2, 2), (0, 1, 1), bias=False)),  # x2 space
            *_conv_bn_relu(nn.Conv3d(64, 64, (2, 1, 1), stride=(2, 1, 1), bias=False)),  # time 4 -> 2
            *_conv_bn_relu(nn.ConvTranspose3d(64, 4, 1, bias=False)),
            *_conv_bn_relu(nn.Conv3d(4, 4, (2, 1, 1), stride=(2, 1, 1), bias=False)),  # time 2 -> 1
            nn.ConvTranspose3d(4, 4, (1, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),  # x2 space
            nn.Conv3d(4, 1, 1, bias=True),  # logits; TASED-Net follows this with a sigmoid
        )

    @staticmethod
    def up(x: Tensor) -> Tensor:
        """Stands in for TASED-Net's max-unpooling: nearest-neighbour x2 in space."""
        return F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")

    def forward(self, maps: Tensor) -> Tensor:
        if maps.dim() != 5 or maps.shape[2] != 4:
            raise ValueError(f"TasedDecoder expects Mixed_5c maps [B, C, 4, h, w], got {list(maps.shape)}")
        z = self.convtsp1(self.standardise(maps))  # [B, 832, 4, h, w]
        z = self.convtsp2(self.up(z))  # [B, 480, 4, 2h, 2w]
        z = self.convtsp3(self.up(z))  # [B, 192, 4, 4h, 4w]
        z = self.convtsp4(self.up(z))  # [B, 1, 1, 32h, 32w]
        return z[:, 0, 0]


class PixelDistinction(nn.Module):
    """The trainable part of PLD: cached encoder maps [B, ...] -> distinction logits [B, H, W].

    ``probability`` gives d_t in (0, 1); a clip's highlight score is the mean of d_t."""

    def __init__(self, backbone: str, in_shape: tuple[int, ...], widths: tuple[int, ...] | None = None):
        """`widths`: the C3D decoder's three hidden widths (default 256, 128, 64); TASED's are fixed."""
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown PLD backbone {backbone!r}; known: {', '.join(BACKBONES)}")
        if len(in_shape) != 4:
            raise ValueError(f"encoder maps must be [C, T, h, w] per frame, got {tuple(in_shape)}")
        self.backbone = backbone
        self.in_shape = tuple(int(s) for s in in_shape)
        c, t, h, w = self.in_shape
        if widths is not None and backbone != "c3d":
            raise ValueError("decoder widths can only be set for the C3D decoder")
        self.widths = tuple(int(x) for x in widths) if widths is not None else None
        self.decoder = C3DDecoder(c, t, *([self.widths] if widths else [])) if backbone == "c3d" else TasedDecoder(c)
        self.out_size = self.output_size(backbone, self.in_shape)

    @staticmethod
    def output_size(backbone: str, in_shape: tuple[int, ...]) -> tuple[int, int]:
        """(H, W) of the map decoded from encoder maps of per-frame shape `in_shape` = (C, T, h, w)."""
        scale = 16 if backbone == "c3d" else 32
        return int(in_shape[-2]) * scale, int(in_shape[-1]) * scale

    def set_input_stats(self, mean: Tensor, std: Tensor) -> None:
        self.decoder.standardise.set(mean, std)

    def set_label_prior(self, rate: float) -> None:
        """Start the output at the training labels' share of 1-pixels: the last layer's bias = logit(rate).
        (Most pixels are 0; starting from sigmoid(0) = 0.5 everywhere spends the first epochs on the bias.)"""
        rate = float(np.clip(rate, 1e-4, 1 - 1e-4))
        last = self.decoder.up4 if self.backbone == "c3d" else self.decoder.convtsp4[-1]
        with torch.no_grad():
            last.bias.fill_(float(np.log(rate / (1 - rate))))

    def forward(self, maps: Tensor) -> Tensor:
        if tuple(maps.shape[1:]) != self.in_shape:
            raise ValueError(f"expected encoder maps [B, {', '.join(map(str, self.in_shape))}], "
                             f"got {list(maps.shape)}")
        return self.decoder(maps.float())

    def probability(self, maps: Tensor) -> Tensor:
        return torch.sigmoid(self(maps))


def pixel_bce(logits: Tensor, labels: Tensor, pos_weight: float | None = None) -> Tensor:
    """Per-pixel binary cross-entropy between distinction logits [B, H, W] and pseudo labels [B, H, W] in
    {0, 1}, averaged over pixels and frames. `pos_weight` > 1 weighs the label-1 pixels up."""
    if logits.shape != labels.shape:
        raise ValueError(f"logits {list(logits.shape)} and labels {list(labels.shape)} differ in shape")
    weight = None if pos_weight is None else torch.tensor(float(pos_weight), device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), pos_weight=weight)


# -- training and scoring ---------------------------------------------------------------------------------------
OPTIMIZERS = ("sgd", "adam")


@dataclass
class PixelFitConfig:
    """How a decoder trains: a fixed number of epochs (nothing is picked on a test split)."""

    epochs: int = 30
    batch_size: int = 16
    optimizer: str = "sgd"  # the paper's; "adam" converges in fewer epochs on small sets
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    pos_weight: float | None = None  # BCE weight of label-1 pixels (None: plain BCE, as in the paper)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict:
        return asdict(self)


Batches = Callable[[np.random.Generator], Iterable[tuple[Tensor, Tensor]]]


def fit_decoder(model: PixelDistinction, batches: Batches, config: PixelFitConfig, seed: int = 0,
                device: str = "cpu", on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
    """Train `model` for ``config.epochs`` epochs. ``batches(rng)`` yields one epoch of (encoder maps
    [B, C, T, h, w], pixel labels [B, H, W]) in an order drawn from `rng`. Returns the per-epoch history
    (mean loss, frames, seconds). The same seed and batches give the same weights, also when several threads of
    one process train at once (they take turns: :mod:`hl.common.seeding`)."""
    with seeded(seed):
        return _fit_epochs(model, batches, config, np.random.default_rng(seed), device, on_epoch)


def _fit_epochs(model: PixelDistinction, batches: Batches, config: PixelFitConfig, rng: np.random.Generator,
                device: str, on_epoch: Callable[[dict], None] | None) -> list[dict]:
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    history = []
    for epoch in range(config.epochs):
        t0, total, frames = time.perf_counter(), 0.0, 0
        for maps, labels in batches(rng):
            maps, labels = maps.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            loss = pixel_bce(model(maps), labels, config.pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(maps)
            frames += len(maps)
        if frames == 0:
            raise ValueError("no training frames: the batches of an epoch were empty")
        history.append({"epoch": epoch, "loss": total / frames, "frames": frames,
                        "seconds": time.perf_counter() - t0})
        if on_epoch is not None:
            on_epoch(history[-1])
    return history


@torch.no_grad()
def predict_probability(model: PixelDistinction, maps: np.ndarray | Tensor, batch_size: int = 32,
                        device: str = "cpu") -> np.ndarray:
    """Distinction maps d_t in [0, 1], float32 [N, H, W], for encoder maps [N, C, T, h, w]."""
    model.to(device).eval()
    maps = torch.as_tensor(maps)
    out = [model.probability(maps[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(maps), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, *model.out_size), dtype=np.float32)


# -- files -------------------------------------------------------------------------------------------------------
def save_pixel_head(model: PixelDistinction, path: str | Path, config: Mapping[str, Any] | None = None) -> Path:
    """Write the decoder with what rebuilds it (backbone, input shape) and any training config
    (see :mod:`hl.heads.checkpoint`)."""
    return save_checkpoint({"format": FORMAT, "backbone": model.backbone, "in_shape": list(model.in_shape),
                            "widths": list(model.widths) if model.widths else None, "config": dict(config or {}),
                            "state_dict": model.state_dict()}, path)


def load_pixel_head(path: str | Path) -> tuple[PixelDistinction, dict]:
    """(model in eval mode, its training config) from a file written by :func:`save_pixel_head`."""
    obj = load_checkpoint(path, FORMAT, "PLD decoder")
    model = PixelDistinction(obj["backbone"], tuple(obj["in_shape"]), obj.get("widths"))
    model.load_state_dict(obj["state_dict"])
    return model.eval(), dict(obj.get("config", {}))


def load_tased_decoder(decoder: TasedDecoder, checkpoint: str | Path | Mapping[str, Tensor]) -> list[str]:
    """Initialise `decoder` from a TASED-Net v2 checkpoint (TASED_updated.pt, ``module.``-prefixed or not):
    every convtsp* tensor is copied. Returns the names copied; raises if a shape differs."""
    if not isinstance(checkpoint, Mapping):
        checkpoint = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    state = checkpoint
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items() if k.removeprefix("module.").startswith("convtsp")}
    own = decoder.state_dict()
    missing = [k for k in own if k.startswith("convtsp") and k not in state]
    if missing:
        raise ValueError(f"the checkpoint lacks TASED decoder tensors, e.g. {missing[0]}")
    for k, v in state.items():
        if k in own and own[k].shape != v.shape:
            raise ValueError(f"{k}: checkpoint shape {tuple(v.shape)} != decoder shape {tuple(own[k].shape)}")
    decoder.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return sorted(k for k in state if k in own)
