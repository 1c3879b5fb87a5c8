"""I3D's optical-flow stream fed from decoded frames: the ``i3d_flow`` extractor.

The recipe is kinetics-i3d's (deepmind/kinetics-i3d README, "For the Flow stream"): frames resized like the RGB
stream's (short side 256, bilinear), converted to greyscale, optical flow between consecutive frames, "pixel
values are truncated to the range [-20, 20], then rescaled between -1 and 1. We only use the first two output
dimensions, and apply the same cropping as for RGB" (the centre 224 x 224). pytorch-i3d's flow checkpoints
(flow_imagenet.pt, flow_charades.pt) take that [B, 2, T, 224, 224] input, channel 0 = x, 1 = y.

Here a clip is ``clip_frames`` = 33 frames sampled over the segment (one more than the RGB stream's 32, so that
it gives 32 flow fields between consecutive sampled frames: the flow at the clip's own frame rate). The flow is
computed on the resized frames whole and cropped afterwards, as the recipe crops flow, not frames. The rgb and
flow extractors of a run read the same decoded frames (one decoding pass; hl.extract.extractors).

:class:`I3DFlowFromFrames` is pytorch-i3d's ``InceptionI3d(in_channels=2)`` (the same parameter names and
shapes: the public flow checkpoints load unchanged) with a flow model in front:

* ``i3d_flow`` (default): the weight-free ``horn_schunck`` on grey frames (hl.extract.backbones.flow). It has no
  parameters, so the state dict is exactly the I3D flow checkpoint's; it always runs in float32 (autocast off).
* ``i3d_flow_tvl1``: OpenCV's TV-L1 on grey frames (optional, slow; also weight-free).
* ``i3d_flow_raft`` / ``i3d_flow_raft_small``: RAFT (hl.extract.backbones.raft) on the RGB frames. RAFT has
  weights: it is the submodule ``flow_model``, a part with a weights file of its own (``BackboneSpec.parts``),
  so the extractor reads two files: the I3D flow checkpoint, unchanged, and a RAFT file (torchvision's or
  princeton-vl's). An explicit --precision applies to RAFT as to I3D; under "auto" RAFT runs in bf16 where the
  machine's choice is bf16 (measured accurate enough: BENCHMARKS.md) while I3D keeps fp32. RAFT's correlation
  pyramid stays float32 in every precision.
  The frames are kept as uint8 until the flow model takes them (the rgb stream's decoded frames are shared, not
  copied: one decoding pass), and each frame is encoded once for the two pairs it belongs to.

The I3D part follows the run's precision.
"""
from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._registry import BackboneSpec, ExtractorDef, as_uint8_video, register
from .flow import create_flow, to_i3d_flow, to_i3d_flow_uint8
from .i3d import _COMMON, CROP, FLOW_CHARADES, FLOW_IMAGENET, InceptionI3d, resized_size
from .raft import VIDEO_ITERATIONS, to_raft_input

CLIP_FRAMES = 33  # 32 flow fields
FLOW_PAIRS_PER_PASS = 32  # frame pairs the flow model solves at once (bounds its intermediates)


class I3DFlowFromFrames(InceptionI3d):
    """Frames [B, C, T + 1, H, W] -> flow between consecutive frames -> I3D flow feature [B, 1024].

    C = 1: grey in [0, 1] (weight-free flow models); C = 3: uint8 RGB (RAFT)."""

    def __init__(self, flow: str = "horn_schunck", crop: int = CROP, crop_padded: bool = False,
                 flow_uint8: bool = False):
        super().__init__(in_channels=2)
        self.flow_name, self.crop = flow, crop
        self.flow_precision: str | None = None  # see flow_autocast
        # video_features' recipe: the crop centred on RAFT's output padded to sides divisible by 8 (one pixel
        # off the RGB crop when a side's padding is odd), the flow stored as 8 bits (to_i3d_flow_uint8)
        self.crop_padded, self.flow_uint8 = crop_padded, flow_uint8
        flow_model = create_flow(flow)
        self.has_flow_weights = any(True for _ in flow_model.parameters()) or any(True for _ in flow_model.buffers())
        if self.has_flow_weights:
            self.flow_model = flow_model  # a part: its state dict comes from a weights file of its own
        else:
            object.__setattr__(self, "flow_model", flow_model)  # not a submodule: nothing of it in the state dict

    def flow(self, frames: Tensor) -> Tensor:
        """[B, C, T + 1, H, W] -> I3D's flow input [B, 2, T, crop, crop] in [-1, 1] (float32)."""
        b, c, t1, h, w = frames.shape
        if t1 < 2:
            raise ValueError(f"the flow stream needs at least 2 frames per clip, got {t1}")
        if c != self.flow_model.in_channels:
            raise ValueError(f"flow model {self.flow_name!r} takes {self.flow_model.in_channels}-channel frames, "
                             f"got {c}")
        top, left = self.crop_origin(h, w)
        encode = to_i3d_flow_uint8 if self.flow_uint8 else to_i3d_flow
        out = torch.empty(b, t1 - 1, 2, min(h, self.crop), min(w, self.crop), dtype=torch.float32,
                          device=frames.device)
        if c == 3:  # RAFT: each clip's frames encoded once, its pairs in one pass (up to FLOW_PAIRS_PER_PASS)
            for i in range(b):
                x = to_raft_input(frames[i].transpose(0, 1))  # [T + 1, 3, H, W] in [-1, 1]
                # 32 pairs a pass rather than 8: 11 % less CPU for RAFT large on this CPU (benchmarks/flow.py)
                field = self.flow_model.consecutive(x, FLOW_PAIRS_PER_PASS)
                out[i] = encode(field[:, :, top:top + self.crop, left:left + self.crop].float())
            return out.permute(0, 2, 1, 3, 4)
        x = frames[:, 0].float()
        prev = x[:, :-1].reshape(-1, 1, h, w)
        nxt = x[:, 1:].reshape(-1, 1, h, w)
        flat = out.view(-1, *out.shape[2:])
        for i in range(0, prev.shape[0], FLOW_PAIRS_PER_PASS):
            j = i + FLOW_PAIRS_PER_PASS
            field = self.flow_model(prev[i:j], nxt[i:j])
            flat[i:j] = encode(field[:, :, top:top + self.crop, left:left + self.crop])
        return out.permute(0, 2, 1, 3, 4)

    def flow_autocast(self, device_type: str):
        """The precision the flow model runs in: float32 for a weight-free one; for RAFT `flow_precision`
        ("fp32", "bf16", "fp16"; set by extraction, hl.extract.extractors.load_model), or when None the
        surrounding autocast, as the I3D part."""
        if not self.has_flow_weights or self.flow_precision == "fp32":
            return torch.autocast(device_type, enabled=False)
        if self.flow_precision is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=torch.bfloat16 if self.flow_precision == "bf16" else torch.float16)

    def crop_origin(self, h: int, w: int) -> tuple[int, int]:
        """(top, left) of the centre crop of an h x w flow field."""
        if not self.crop_padded:
            return max(0, (h - self.crop) // 2), max(0, (w - self.crop) // 2)
        ph, pw = -h % 8, -w % 8  # RAFT's padding to /8, split as pad_to_8 splits it
        return max(0, (h + ph - self.crop) // 2 - ph // 2), max(0, (w + pw - self.crop) // 2 - pw // 2)

    def forward(self, frames: Tensor) -> Tensor:
        with self.flow_autocast(frames.device.type):
            flow = self.flow(frames)
        if frames.device.type == "cpu":
            flow = flow.contiguous(memory_format=torch.channels_last_3d)
        return super().forward(flow)


def preprocess_grey(frames: Any, *, chunk: int = 8) -> Tensor:
    """uint8 RGB frames [N, T, H, W, 3] -> grey [N, 1, T, H', W'] float32 in [0, 1], resized as the RGB stream's
    frames (short side 256, bilinear, antialiased; not cropped: the flow is cropped)."""
    frames = as_uint8_video(frames)
    n, t, h, w, _ = frames.shape
    if min(h, w) == 0:
        raise ValueError(f"frames have an empty side: {h}x{w}")
    size = resized_size(h, w)
    flat = frames.reshape(n * t, h, w, 3)
    out = torch.empty(n * t, 1, *size, dtype=torch.float32)
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1) / 255.0  # ITU-R BT.601 luma, as OpenCV
    for start in range(0, n * t, chunk):
        x = flat[start:start + chunk].permute(0, 3, 1, 2).float()
        if tuple(size) != (h, w):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        out[start:start + chunk] = (x * weights).sum(1, keepdim=True).clamp_(0.0, 1.0)
    return out.reshape(n, t, 1, *size).permute(0, 2, 1, 3, 4).contiguous()


def preprocess_rgb_frames(frames: Any, *, chunk: int = 8) -> Tensor:
    """uint8 RGB frames [N, T, H, W, 3] -> uint8 RGB [N, 3, T, H', W'], resized as the RGB stream's frames (short
    side 256, bilinear, antialiased, rounded; not cropped: the flow is cropped). RAFT converts them to its input
    range itself; uint8 keeps the chunk's frames small."""
    frames = as_uint8_video(frames)
    n, t, h, w, _ = frames.shape
    if min(h, w) == 0:
        raise ValueError(f"frames have an empty side: {h}x{w}")
    size = resized_size(h, w)
    flat = frames.reshape(n * t, h, w, 3).permute(0, 3, 1, 2)
    if tuple(size) != (h, w):
        out = torch.empty(n * t, 3, *size, dtype=torch.uint8)
        for start in range(0, n * t, chunk):
            x = F.interpolate(flat[start:start + chunk].float(), size=size, mode="bilinear", align_corners=False,
                              antialias=True)
            out[start:start + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
        flat = out
    return flat.reshape(n, t, 3, *size).permute(0, 2, 1, 3, 4).contiguous()


def _flow_spec(name: str, extractor: str, flow: str, description: str, default: bool,
               auto_precision: str = "fp32", recipe: str = "") -> BackboneSpec:
    rgb = flow.startswith("raft")
    extra = {**_COMMON["extra"], "flow": flow, "auto_precision": auto_precision}
    if rgb:
        extra["flow_iterations"] = VIDEO_ITERATIONS
        # RAFT in bf16 (I3D in fp32) against all fp32, random weights, a 2-s segment of the videos in
        # ../shared/data/videos (benchmarks/raft_precision.py, bf16 convolutions with float32 accumulation; see
        # BENCHMARKS.md): cosine of the I3D flow feature 0.9999997 (RAFT with 1 iteration); with the 20
        # iterations the flow's relative error stays 0.6 % (cosine 0.99998, 4 pairs per video). "auto" runs RAFT
        # in bf16 where that is the machine's choice, and in fp32 elsewhere (fp16 is not measured)
        extra["flow_auto_precision"] = "bf16"
    options = {}
    if recipe == "video_features":
        # the RGB clip's 32 frames and the next one: 32 flow fields at the clip's rate (hl.extract.segments)
        extra["clip_steps"] = CLIP_FRAMES - 1
        options = {"crop_padded": True, "flow_uint8": True}
    return BackboneSpec(
        name=name,
        build=partial(I3DFlowFromFrames, flow=flow, **options),
        preprocess=preprocess_rgb_frames if rgb else preprocess_grey,
        frame_size=resized_size,
        weights=(FLOW_IMAGENET, FLOW_CHARADES),
        parts=(("flow_model", flow),) if rgb else (),
        extractors=(ExtractorDef(extractor, name, "segment", description=description, default=default),),
        notes=f"I3D flow stream from frames: {'RGB' if rgb else 'grey'}, {flow} flow between consecutive sampled "
        "frames, truncated to [-20, 20] px, /20, centre 224 crop. 33 frames per 2-s segment."
        + (f" Two weights files: the I3D flow checkpoint and a {flow} file." if rgb else ""),
        # 33 frames over a 2-s segment; the flow model is part of what the feature depends on (its config)
        **{**_COMMON, "clip_frames": CLIP_FRAMES, "fps": extra.get("clip_steps", CLIP_FRAMES) / 2.0,
           "extra": extra},
    )


# bf16 I3D on flow input: cosine 0.991 against fp32 (BENCHMARKS.md): "auto" keeps fp32
register(_flow_spec("i3d_flow_frames", "i3d_flow", "horn_schunck",
                    "I3D optical-flow stream on flow computed from the frames (Horn-Schunck), 1024-d", True))
# the original recipe's TV-L1 (OpenCV contrib, optional): faithful, slow; never picked by default
register(_flow_spec("i3d_flow_tvl1_frames", "i3d_flow_tvl1", "tvl1",
                    "I3D optical-flow stream on TV-L1 flow (OpenCV contrib), 1024-d", False))
# RAFT (weights of its own, besides I3D's): not picked by default
register(_flow_spec("i3d_flow_raft_frames", "i3d_flow_raft", "raft_large",
                    "I3D optical-flow stream on RAFT (large) flow from the RGB frames, 1024-d", False))
register(_flow_spec("i3d_flow_raft_small_frames", "i3d_flow_raft_small", "raft_small",
                    "I3D optical-flow stream on RAFT (small) flow from the RGB frames, 1024-d", False))
# v-iashin/video_features' I3D flow recipe (its models/i3d/extract_i3d.py, stack_size 32 at 16 fps): RAFT large,
# 20 iterations, on the 32 frames of the RGB clip and the next one; the flow cropped on RAFT's /8-padded output
# and stored as 8 bits. Features equal to that tool's on the same frames (benchmarks/flow.py measures it).
register(_flow_spec("i3d_flow_raft_vf_frames", "i3d_flow_raft_vf", "raft_large",
                    "I3D optical-flow stream on RAFT (large), v-iashin/video_features' recipe, 1024-d", False,
                    recipe="video_features"))
