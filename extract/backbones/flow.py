"""Optical flow models for I3D's flow stream, in a small registry of their own (timm style).

    create_flow("horn_schunck") -> nn.Module: (prev, next) [P, 1, H, W] grey in [0, 1] -> flow [P, 2, H, W]
    create_flow("raft_large")   -> nn.Module: (prev, next) [P, 3, H, W] RGB in [-1, 1] -> flow [P, 2, H, W]

A flow model says what it takes in ``in_channels``: 1 (grey in [0, 1]) or 3 (RGB in [-1, 1]: RAFT, registered
by hl.extract.backbones.raft, which has weights of its own).

The flow is in pixels, channel 0 the x (column) and channel 1 the y (row) displacement, such that
``next(y + flow_y, x + flow_x) ~ prev(y, x)``: the convention of OpenCV's TV-L1 (``calcOpticalFlow*``), whose first
two output dimensions I3D's flow stream was trained on.

``horn_schunck`` needs no weights: Horn & Schunck's (1981) global smoothness method, solved coarse to fine on an
image pyramid with warping (Brox et al.'s incremental scheme), batched over frame pairs in plain torch. It is far
from TV-L1's accuracy at motion boundaries; it exists so that the flow stream runs, and is tested, without
weights (and for the demo).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_FLOWS: dict[str, Callable[[], nn.Module]] = {}


def register_flow(name: str):
    """Class decorator: register a flow model under `name`."""

    def wrap(cls):
        if name in _FLOWS:
            raise ValueError(f"flow model {name!r} is registered twice")
        _FLOWS[name] = cls
        return cls

    return wrap


def create_flow(name: str) -> nn.Module:
    try:
        return _FLOWS[name]().eval()
    except KeyError:
        raise KeyError(f"unknown flow model {name!r}; known: {', '.join(sorted(_FLOWS))}") from None


def list_flows() -> list[str]:
    return sorted(_FLOWS)


_BLUR = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # binomial pre-smoothing against aliasing and noise


def _conv(x: Tensor, kernel: Tensor) -> Tensor:
    """Depthwise 2-D filter of [P, C, H, W] with replicated borders."""
    c = x.shape[1]
    k = kernel.to(x)[None, None].expand(c, 1, *kernel.shape)
    pad = (kernel.shape[1] // 2, kernel.shape[1] // 2, kernel.shape[0] // 2, kernel.shape[0] // 2)
    return F.conv2d(F.pad(x, pad, mode="replicate"), k, groups=c)


def _smooth(x: Tensor) -> Tensor:
    return _conv(_conv(x, _BLUR[None]), _BLUR[:, None])


def _neighbour_mean(x: Tensor) -> Tensor:
    """Mean of the 4 neighbours (the 5-point Laplacian's stencil without its centre), borders replicated."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return 0.25 * (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:])


def _gradients(x: Tensor) -> tuple[Tensor, Tensor]:
    """Central differences along x (columns) and y (rows)."""
    gx = _conv(x, torch.tensor([[-0.5, 0.0, 0.5]]))
    gy = _conv(x, torch.tensor([[-0.5], [0.0], [0.5]]))
    return gx, gy


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """image(y + flow_y, x + flow_x), bilinear, borders replicated: [P, C, H, W] and [P, 2, H, W]."""
    p, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=image.device, dtype=image.dtype),
                            torch.arange(w, device=image.device, dtype=image.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return F.grid_sample(image, torch.stack([gx, gy], dim=-1), mode="bilinear", padding_mode="border",
                         align_corners=True)


@register_flow("horn_schunck")
class HornSchunck(nn.Module):
    """Coarse-to-fine Horn-Schunck flow. No parameters: nothing enters a state dict."""

    in_channels = 1  # grey frames in [0, 1]

    def __init__(self, levels: int = 4, warps: int = 2, iterations: int = 20, alpha: float = 0.1,
                 scale: float = 0.5):
        super().__init__()
        self.levels, self.warps, self.iterations, self.alpha = levels, warps, iterations, alpha
        self.scale = scale  # the flow is solved at this fraction of the input size, then brought back up

    def forward(self, prev: Tensor, next_: Tensor) -> Tensor:
        if prev.shape != next_.shape or prev.dim() != 4 or prev.shape[1] != 1:
            raise ValueError(f"expected two grey images [P, 1, H, W], got {list(prev.shape)} and {list(next_.shape)}")
        size = prev.shape[-2:]
        a, b = _smooth(prev.float()), _smooth(next_.float())
        if self.scale != 1.0:
            work = (max(8, round(size[0] * self.scale)), max(8, round(size[1] * self.scale)))
            a = F.interpolate(a, size=work, mode="area")
            b = F.interpolate(b, size=work, mode="area")
        flow = self._solve(a, b)
        if tuple(flow.shape[-2:]) != tuple(size):
            flow = _resize_flow(flow, size)
        return flow

    def _solve(self, prev: Tensor, next_: Tensor) -> Tensor:
        pyramid = [(prev, next_)]
        for _ in range(self.levels - 1):
            a, b = pyramid[-1]
            if min(a.shape[-2:]) < 16:
                break
            pyramid.append((F.avg_pool2d(a, 2, ceil_mode=True), F.avg_pool2d(b, 2, ceil_mode=True)))
        flow = torch.zeros(prev.shape[0], 2, *pyramid[-1][0].shape[-2:], dtype=torch.float32, device=prev.device)
        for a, b in reversed(pyramid):
            if flow.shape[-2:] != a.shape[-2:]:
                flow = _resize_flow(flow, a.shape[-2:])
            for _ in range(self.warps):
                flow = self._refine(a, b, flow)
        return flow

    def _refine(self, a: Tensor, b: Tensor, flow: Tensor) -> Tensor:
        """One linearisation around `flow`: Jacobi iterations of Horn-Schunck's equations for the new flow."""
        bw = warp(b, flow)
        gx, gy = _gradients(0.5 * (a + bw))
        gt = bw - a
        denom = self.alpha**2 + gx * gx + gy * gy
        u0, v0 = flow[:, :1], flow[:, 1:]
        u, v = u0, v0
        for _ in range(self.iterations):
            ub, vb = _neighbour_mean(u), _neighbour_mean(v)
            t = (gx * (ub - u0) + gy * (vb - v0) + gt) / denom
            u, v = ub - gx * t, vb - gy * t
        return torch.cat([u, v], dim=1)


@register_flow("tvl1")
class TVL1(nn.Module):
    """TV-L1 flow (Zach et al. 2007; the original I3D recipe's algorithm) through OpenCV's contrib module
    ``cv2.optflow.DualTVL1OpticalFlow`` with its default parameters, one frame pair at a time on the CPU, on the
    grey frames quantised to uint8 as OpenCV takes them. Optional: needs ``opencv-contrib-python-headless``
    (``pip install "hl[tvl1]"``); faithful but slow (seconds per frame pair)."""

    in_channels = 1  # grey frames in [0, 1]

    def forward(self, prev: Tensor, next_: Tensor) -> Tensor:
        try:
            import cv2
        except ImportError:
            cv2 = None
        if cv2 is None or not hasattr(cv2, "optflow"):
            from hl.common import HLError

            raise HLError("the tvl1 flow needs OpenCV's contrib modules: pip install opencv-contrib-python-headless")
        solver = cv2.optflow.DualTVL1OpticalFlow_create()
        a = (prev[:, 0].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        b = (next_[:, 0].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        out = [torch.from_numpy(solver.calc(x, y, None)).permute(2, 0, 1) for x, y in zip(a, b)]
        return torch.stack(out).to(prev.device) if out else prev.new_zeros(0, 2, *prev.shape[-2:])


def _resize_flow(flow: Tensor, size) -> Tensor:
    """Flow [P, 2, h, w] -> [P, 2, *size], displacements rescaled with the image."""
    scale = torch.tensor([size[1] / flow.shape[-1], size[0] / flow.shape[-2]], device=flow.device).view(1, 2, 1, 1)
    return F.interpolate(flow, size=tuple(size), mode="bilinear", align_corners=False) * scale


# ----------------------------------------------------------------------------- I3D's flow convention

FLOW_BOUND = 20.0  # pixels: I3D's flow input is the flow truncated to [-20, 20], divided by 20


def to_i3d_flow(flow: Tensor, bound: float = FLOW_BOUND) -> Tensor:
    """Flow in pixels -> I3D's flow input: truncated to [-bound, bound] and scaled to [-1, 1]."""
    return flow.clamp(-bound, bound) / bound


def to_i3d_flow_uint8(flow: Tensor, bound: float = FLOW_BOUND) -> Tensor:
    """Flow in pixels -> I3D's flow input through 8-bit storage, as kinetics-i3d's flow images were kept (and as
    v-iashin/video_features computes it): truncated to [-bound, bound], mapped to 128 + 255 / (2 bound) * flow and
    rounded (half to even; +bound gives 256, not clipped), then x / 127.5 - 1. The same scale as
    :func:`to_i3d_flow`, offset by 1/255 and quantised to steps of 2/255."""
    level = torch.round(128.0 + (255.0 / (2 * bound)) * flow.clamp(-bound, bound))
    return 2.0 * level / 255.0 - 1.0
