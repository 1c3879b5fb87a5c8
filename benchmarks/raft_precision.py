"""How much the I3D flow feature with RAFT in front loses in bf16 / fp16, against float32 (decides the
``auto_precision`` of the i3d_flow_raft extractors).

One 2-s segment of each of the videos in ../shared/data/videos (decoded once, through hl's extraction path: the
i3d_flow_raft clips of 33 RGB frames at short side 256); RAFT large with 20 iterations (the extractor's), filled
with tests/backbone_weights.seeded_state (random, but giving flows of several pixels); I3D's flow network with
the registry's seeded random initialisation. Per segment it reports the cosine of the 1024-d feature against
the all-float32 one, and the flow's own relative error, for

* ``raft-bf16``  / ``raft-fp16``: RAFT under autocast in that precision, I3D in float32;
* ``all-bf16``  / ``all-fp16``: both under autocast (what an explicit ``--precision bf16`` runs).

Low precision is emulated where this CPU has no fast kernels for it: every convolution takes its input, weight
and bias rounded to the low precision, accumulates in float32 and rounds its output (what AMX / AVX512-BF16 and
GPU tensor cores compute; the CPU's own bf16 fallback convolution is ~30x slower than float32). Every other
operation runs in the low precision for real, under torch.autocast (the correlation pyramid and its look-ups stay
float32, as in RAFT's own mixed-precision mode).

    nice -n 5 .venv/bin/python benchmarks/raft_precision.py --threads 2
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hl.extract import extractors as ex
from hl.extract import segments as seg
from hl.extract.backbones import create
from hl.extract.backbones.i3d import InceptionI3d
from hl.extract.decode import VideoSource
from hl.extract.extractors import RunSettings, chunk_inputs, get_extractor

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
sys.path.insert(0, str(ROOT / "tests"))
from backbone_weights import seeded_state  # noqa: E402

CL = torch.channels_last_3d  # as extraction feeds I3D on CPU (its bf16 pooling kernels are channels-last)
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@contextlib.contextmanager
def low_precision_convolutions(model: nn.Module, dtype: torch.dtype):
    """Inside: every Conv2d / Conv3d of `model` rounds input, weight and bias to `dtype`, accumulates in float32 and
    returns its output in `dtype` (under autocast, the output dtype autocast would give)."""
    saved = {}

    def emulated(module, x, weight, bias):
        def r(t):
            return None if t is None else t.to(dtype).float()

        conv = F.conv2d if isinstance(module, nn.Conv2d) else F.conv3d
        with torch.autocast("cpu", enabled=False):
            if module.padding_mode != "zeros":
                raise NotImplementedError(module.padding_mode)
            out = conv(r(x), r(weight), r(bias), module.stride, module.padding, module.dilation, module.groups)
        out = out.to(dtype)  # channels-last for the 3-D network, as its low-precision kernels give it
        return out.contiguous(memory_format=CL) if out.dim() == 5 else out

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            saved[m] = m._conv_forward
            m._conv_forward = lambda x, w, b, m=m: emulated(m, x, w, b)
    try:
        yield
    finally:
        for m, f in saved.items():
            m._conv_forward = f


def segment_clips(path: Path, index: int) -> torch.Tensor:
    """The i3d_flow_raft clip [1, 3, 33, H, W] (uint8) of segment `index` of a video."""
    source = VideoSource(str(path))
    segments = seg.fixed_segments(source.info.duration, 2.0)
    index = min(index, len(segments) - 1)
    (chunk,) = chunk_inputs(source, segments[index:index + 1], [get_extractor("i3d_flow_raft")],
                            RunSettings(chunk_seconds=2.0))
    return chunk.video["i3d_flow_raft"].clips(0, 1)


def flow_only(model: nn.Module, clip: torch.Tensor, name: str, precisions: list[str]) -> None:
    """The relative error of RAFT's flow (in I3D's input scale, before the crop is taken) per low precision."""
    with torch.inference_mode():
        t0 = time.process_time()
        flow32 = model.flow(clip)
        line = f"{name}: {clip.shape[2] - 1} pairs, mean |flow| {float(flow32.abs().mean() * 20):.2f} px, fp32 " \
               f"{time.process_time() - t0:.1f} CPU s"
        for p in precisions:
            with low_precision_convolutions(model.flow_model, DTYPES[p]), torch.autocast("cpu", dtype=DTYPES[p]):
                flow = model.flow(clip).float()
            line += f"; {p}: flow relative error {float((flow - flow32).norm() / flow32.norm()):.4f}, cosine " \
                    f"{cosine(flow, flow32):.6f}"
    print(line, flush=True)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--segment", type=int, default=1, help="which 2-s segment of each video (0-based)")
    ap.add_argument("--precisions", default="bf16,fp16")
    ap.add_argument("--iterations", type=int, default=20, help="RAFT's iterations (the extractor's: 20)")
    ap.add_argument("--videos", default="", help="comma-separated file names (default: every video there)")
    ap.add_argument("--step-scale", type=float, default=0.1,
                    help="scale of the seeded flow head's last layer (the size of each flow increment)")
    ap.add_argument("--pairs", type=int, default=0,
                    help="only the flow of the first N frame pairs of each segment (no I3D feature): a quicker check")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = create("i3d_flow_raft_frames")
    model.flow_model.load_state_dict(seeded_state(model.flow_model), strict=True)
    with torch.no_grad():  # smaller flow increments: 20 iterations stay within I3D's [-20, 20] px, not saturated
        model.flow_model.update_block.flow_head.conv2.weight.mul_(a.step_scale)
        model.flow_model.update_block.flow_head.conv2.bias.mul_(a.step_scale)
    model.flow_model.num_flow_updates = a.iterations
    model = model._apply(ex._channels_last)  # channels-last memory, as extraction loads models on CPU
    rows = []
    wanted = set(filter(None, a.videos.split(",")))
    for path in sorted(p for p in VIDEOS.glob("*.mp4") if not wanted or p.name in wanted):
        clip = segment_clips(path, a.segment)
        if a.pairs:
            flow_only(model, clip[:, :, :a.pairs + 1], path.name, a.precisions.split(","))
            continue
        t0 = time.process_time()
        with torch.inference_mode():
            flow32 = model.flow(clip)  # [1, 2, 32, 224, 224], I3D's input
            feat32 = InceptionI3d.forward(model, flow32.contiguous(memory_format=CL))
        row = {"video": path.name, "size": f"{clip.shape[-2]}x{clip.shape[-1]}",
               "flow_px": float(flow32.abs().mean() * 20), "fp32_cpu_s": time.process_time() - t0}
        for name in a.precisions.split(","):
            dtype = DTYPES[name]
            with torch.inference_mode():
                with low_precision_convolutions(model.flow_model, dtype), torch.autocast("cpu", dtype=dtype):
                    flow = model.flow(clip).float()
                feat_raft = InceptionI3d.forward(model, flow.contiguous(memory_format=CL))  # I3D in float32
                with low_precision_convolutions(model, dtype), torch.autocast("cpu", dtype=dtype):
                    feat_all = InceptionI3d.forward(model, flow.contiguous(memory_format=CL)).float()
            row[f"flow_rel_err_{name}"] = float((flow - flow32).norm() / flow32.norm())
            row[f"raft-{name}"] = cosine(feat_raft, feat32)
            row[f"all-{name}"] = cosine(feat_all, feat32)
        rows.append(row)
        print(row, flush=True)
    if not rows:
        return
    print("\n| video | frames | mean flow px | " + " | ".join(
        f"flow rel. err. {p} | cos raft-{p} | cos all-{p}" for p in a.precisions.split(",")) + " |")
    print("|---|---|---|" + "---|---|---|" * len(a.precisions.split(",")))
    for r in rows:
        cells = [r["video"], r["size"], f"{r['flow_px']:.2f}"]
        for p in a.precisions.split(","):
            cells += [f"{r[f'flow_rel_err_{p}']:.4f}", f"{r[f'raft-{p}']:.6f}", f"{r[f'all-{p}']:.6f}"]
        print("| " + " | ".join(cells) + " |")
    for p in a.precisions.split(",") if rows else ():
        for k in (f"raft-{p}", f"all-{p}"):
            v = np.array([r[k] for r in rows])
            print(f"{k}: cosine min {v.min():.6f} mean {v.mean():.6f}")


if __name__ == "__main__":
    main()
