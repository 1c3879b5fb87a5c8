"""I3D rgb + flow extraction on this CPU: seconds per video-minute, and bf16 against fp32 for the flow feature.

    python benchmarks/flow.py                       # the first 3 segments (6 s) of a shared real video
    python benchmarks/flow.py --video PATH --segments 5

Random weights (the same seeded initialisation in both precisions; no pretrained weights here), one decoding
pass for both extractors (hl.extract.extractors.extract_video). Reported, in one run: seconds per video-minute
of i3d and i3d_flow in fp32 and bf16, the flow model's share of the i3d_flow time, and the cosine similarity
of each segment's i3d_flow (and i3d) feature in bf16 against fp32. The flow model always runs in float32; bf16
applies to the I3D network.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from hl.extract import segments as seg
from hl.extract.backbones import create
from hl.extract.decode import VideoSource
from hl.extract.extractors import RunSettings, extract_video, get_extractor

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "v_GGSY1Qvo990.mp4"


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=SHARED)
    ap.add_argument("--segments", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    source = VideoSource(args.video)
    segments = seg.fixed_segments(source.info.duration, 2.0)[: args.segments]
    minutes = float(segments[-1, 1] - segments[0, 0]) / 60.0
    extractors = [(get_extractor("i3d"), None), (get_extractor("i3d_flow"), None)]
    print(f"{args.video.name}: {len(segments)} segments ({minutes * 60:.0f} s), {args.threads} threads, "
          f"random weights")
    out = {}
    for precision in ("fp32", "bf16"):
        settings = RunSettings(precision=precision, batch_size=4, prefetch=0)
        result = extract_video(VideoSource(args.video), segments, extractors, settings)
        out[precision] = result
        print(f"  {precision}: decode {result.decode_s / minutes:.0f} s/min, "
              + ", ".join(f"{k} {v / minutes:.0f} s/min" for k, v in result.model_s.items()))
    # the flow model's own cost, on the same frames (float32 in both precisions)
    model = create("i3d_flow_frames")
    frames = torch.rand(1, 1, 33, 256, 341)
    with torch.inference_mode():
        t0 = time.perf_counter()
        model.flow(frames)
        flow_s = time.perf_counter() - t0
    print(f"  flow model (horn_schunck, 32 pairs at 256x341): {flow_s:.2f} s per segment = "
          f"{flow_s * 30:.0f} s/min")
    try:  # TV-L1 (OpenCV contrib), a few pairs: its cost per pair against Horn-Schunck's
        import cv2  # noqa: F401

        tvl1 = create("i3d_flow_tvl1_frames")
        pairs = 4
        with torch.inference_mode():
            t0 = time.perf_counter()
            tvl1.flow(frames[:, :, : pairs + 1])
            tvl1_s = (time.perf_counter() - t0) / pairs
        print(f"  flow model tvl1: {tvl1_s:.2f} s per pair ({pairs} pairs) = {tvl1_s * 32 * 30:.0f} s/min, "
              f"{tvl1_s * 32 / flow_s:.1f}x horn_schunck")
    except ImportError:
        print("  flow model tvl1: OpenCV contrib not installed")
    for name in ("i3d", "i3d_flow"):
        c = cosine(out["fp32"].arrays[name]["features"], out["bf16"].arrays[name]["features"])
        print(f"  cosine bf16 vs fp32, {name}: min {c.min():.6f}, mean {c.mean():.6f} over {len(c)} segments")


if __name__ == "__main__":
    main()
