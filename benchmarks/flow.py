"""I3D rgb + flow extraction on this CPU, side by side with v-iashin/video_features: seconds per video-minute.

    python benchmarks/flow.py --peer-root PEER_DIR --peer-python PEER_VENV/bin/python
    HL_PEER_ROOT=PEER_DIR HL_PEER_PYTHON=PEER_VENV/bin/python python benchmarks/flow.py   # the same
    python benchmarks/flow.py --segments 2 --configs raft_large,raft_small,horn_schunck --peer-root ...
    python benchmarks/flow.py --no-peer                  # hl's configurations only

One run, on one video, in this order:

1. **Frames.** The first ``--segments`` x 2 s of ``--video`` (and one more frame), resampled to 16 fps (the frame
   on screen at each 1/16 s, hl's rule) and stored losslessly as RGB (H.264 4:4:4 lossless, libx264rgb, in a
   scratch .mkv). Every decoder involved (the peer's OpenCV, hl's decord and PyAV) reads bit-identical frames
   from it, so both sides see the same frames at the same rate, with nothing to resample.
2. **Weights**, random and seeded, written once to a scratch directory and read by both sides: I3D rgb and flow
   in pytorch-i3d's format (hl reads them as they are); the same tensors in the peer's I3D format (it runs
   hassony2's kinetics_i3d_pytorch port: other parameter names and BatchNorm eps 1e-5 instead of 1e-3, so its
   copy carries running_var + 1e-3 - 1e-5 and computes the same function); RAFT large in princeton-vl's format
   (a ``module.``-prefixed state dict, written by the peer's own RAFT class), which hl reads through its RAFT
   checkpoint filter.
3. **hl**, for each configuration (``--configs``): ``i3d`` + one flow extractor over the segments through
   ``hl.extract.extractors.extract_video`` (one decoding pass for both; segments [2k, 2k + 2]), timed (wall and
   this process's CPU seconds), in fp32 and, where the CPU computes bf16 natively (AVX512-BF16 or AMX), bf16.
   ``raft_large`` runs ``i3d_flow_raft_vf``: RAFT large, 20 iterations, the recipe of the peer (below).
   ``raft_small``: ``i3d_flow_raft_small`` (random weights in torchvision's format; the peer has no small RAFT).
   ``tvl1``: ``i3d_flow_tvl1`` where OpenCV's contrib modules import (else reported as not installed).
   ``horn_schunck``: the default ``i3d_flow``.
4. **The peer**: benchmarks/flow_peer.py in ``--peer-python`` (the peer's own environment), its ``ExtractI3D``
   built from its configs/i3d.yml with ``device=cpu stack_size=32 step_size=32 extraction_fps=null
   flow_type=raft streams=null`` (both streams) on the same file, ``extract()`` timed (model loading excluded on
   both sides), the same number of torch threads.
5. **Comparison** per 2-s clip (the peer's stack k is hl's segment k): cosine of hl's rgb and flow features
   against the peer's, min and mean, and the speed ratio peer / hl in wall and in CPU seconds.

The peer's recipe (models/i3d/extract_i3d.py at the fetched snapshot), and how hl is configured to match it:

* frames at the video's own rate (16 fps here), BGR -> RGB, resized with PIL bilinear so the short side is 256
  (the long side ``int(256 * w / h)``): hl resizes with torch's antialiased uint8 bilinear to the same size,
  which differs from PIL's by one grey level in about 0.02 % of the values (measured on this video);
* a stack is ``stack_size + 1`` = 33 consecutive frames, the next stack starting at its last frame; rgb: the
  first 32 frames, centre crop 224 (``(side - 224) // 2``), x / 255 * 2 - 1; hl's ``i3d`` takes the segment's
  32 frames at 16 fps, the same frames, and crops at ``round((side - 224) / 2)``: the same for 4:3 video (a
  pixel apart where ``side - 224`` is odd and its half rounds up, e.g. 455: a remaining difference, not met
  here);
* flow: RAFT (princeton-vl's, large) between the 32 consecutive pairs, in one batch, on the frames padded to
  sides divisible by 8 (replicated borders, split evenly), 20 iterations, the last upsampled estimate,
  cropped 224 at the centre of the *padded* field (column 59 of a 341-wide frame, where the rgb crop starts at
  58), truncated to [-20, 20], stored as 8 bits (round(128 + 255 / 40 * flow)) and mapped by x / 255 * 2 - 1.
  ``i3d_flow_raft_vf`` does the same (the RGB clip's 32 frames and the next one; crop_padded; flow_uint8);
* the features: I3D up to Mixed_5c, AvgPool3d([2, 7, 7], 1), the mean over time: the same in both.

Where hl does less work than the peer it is by structure, never by computing less of the recipe: one decoding
pass for rgb and flow, each frame's RAFT feature map encoded once (the peer encodes every inner frame twice,
as image2 of one pair and image1 of the next), RAFT's upsampling mask computed for the last iteration only (the
peer computes and upsamples every iteration's estimate and keeps the last).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hl.extract import segments as seg
from hl.extract.backbones import create
from hl.extract.backbones.raft import RAFT
from hl.extract.decode import VideoSource
from hl.extract.extractors import (
    RunSettings,
    default_precision,
    effective_flow_precision,
    effective_precision,
    extract_video,
    get_extractor,
    load_model,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "videos" / "v_GGSY1Qvo990.mp4"
FPS = 16  # frames per second of the clips: 32 frames per 2-s segment
STACK = 32
FLOW_EXTRACTORS = {"raft_large": "i3d_flow_raft_vf", "raft_small": "i3d_flow_raft_small", "tvl1": "i3d_flow_tvl1",
                   "horn_schunck": "i3d_flow"}

# pytorch-i3d (hl) -> hassony2's kinetics_i3d_pytorch (the peer): module names
_BRANCH = {"b0": "branch_0", "b1a": "branch_1.0", "b1b": "branch_1.1", "b2a": "branch_2.0", "b2b": "branch_2.1",
           "b3b": "branch_3.1"}
HL_BN_EPS, PEER_BN_EPS = 1e-3, 1e-5


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def make_video(src: Path, out: Path, frames: int) -> tuple[int, int]:
    """`frames` frames of `src` at FPS (the frame on screen at each 1/FPS s), stored losslessly as RGB."""
    import av

    source = VideoSource(src)
    info = source.info
    if info.duration < (frames - 1) / FPS:
        raise SystemExit(f"{src}: {info.duration:.1f} s is shorter than the {(frames - 1) / FPS:.1f} s asked for")
    # decoded at the video's own size (VideoSource may decode large videos smaller): the peer reads the file whole
    source = VideoSource(src, short_side=min(info.width, info.height))
    rgb = source.frames(seg.time_to_frame(np.arange(frames) / FPS, info.fps, info.num_frames))
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264rgb", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = rgb.shape[2], rgb.shape[1], "rgb24"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        for frame in rgb:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    check = VideoSource(out).frames(np.arange(frames))
    if not np.array_equal(check, rgb):
        raise SystemExit(f"{out}: the lossless copy does not decode to the frames written")
    return rgb.shape[1], rgb.shape[2]


def randomise_batch_norms(model: torch.nn.Module, seed: int) -> None:
    """Running statistics and shifts away from the identity, so the models' BatchNorms matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*model.named_buffers(), *model.named_parameters()]:
            if name.endswith("running_mean"):
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
            elif name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif ".bn." in name and name.endswith("bias"):
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))


def to_peer_i3d(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """pytorch-i3d's names -> hassony2's (Conv3d_1a_7x7.bn.weight -> conv3d_1a_7x7.batch3d.weight, Mixed_3b.b1a ->
    mixed_3b.branch_1.0, logits -> conv3d_0c_1x1); running_var shifted for its BatchNorm eps."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "logits":
            parts[0] = "conv3d_0c_1x1"
        else:
            parts[0] = parts[0][0].lower() + parts[0][1:]
            if parts[0].startswith("mixed"):
                parts[1] = _BRANCH[parts[1]]
        parts = ["batch3d" if p == "bn" else p for p in parts]
        if parts[-1] == "running_var":
            value = value + (HL_BN_EPS - PEER_BN_EPS)
        out[".".join(parts)] = value
    return out


def write_weights(folder: Path, args) -> dict[str, Path]:
    paths = {}
    for name, peer_name, seed in (("i3d", "i3d_rgb.pt", 1), ("i3d_flow", "i3d_flow.pt", 2)):
        model = create(name)
        randomise_batch_norms(model, seed)
        paths[name] = folder / f"{name}_pytorch_i3d.pt"
        torch.save(model.state_dict(), paths[name])
        torch.save(to_peer_i3d(model.state_dict()), folder / peer_name)
    small = create("raft_small")  # torchvision's format (hl's parameter names)
    paths["raft_small"] = folder / "raft_small_torchvision.pth"
    torch.save(small.state_dict(), paths["raft_small"])
    paths["raft_large"] = folder / "raft-sintel.pth"
    if args.peer_python:
        run_peer(args, "raft-weights", "--out", str(paths["raft_large"]))
    else:  # princeton-vl's format from hl's own random RAFT large: the filter's inverse is not needed, torchvision's
        paths["raft_large"] = folder / "raft_large_torchvision.pth"  # format loads as it is
        torch.save(create("raft_large").state_dict(), paths["raft_large"])
    return paths


def run_peer(args, *argv: str) -> dict:
    cmd = [str(args.peer_python), str(ROOT / "benchmarks" / "flow_peer.py"), argv[0], "--peer-root",
           str(args.peer_root), *argv[1:]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the peer failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_hl(video: Path, segments: np.ndarray, flow: str, weights: dict[str, Path], precision: str,
           batch: int, device: str = "cpu") -> dict:
    name = FLOW_EXTRACTORS[flow]
    flow_weights = {"raft_large": (weights["i3d_flow"], weights["raft_large"]),
                    "raft_small": (weights["i3d_flow"], weights["raft_small"])}.get(flow, weights["i3d_flow"])
    extractors = [(get_extractor("i3d"), str(weights["i3d"])),
                  (get_extractor(name), tuple(map(str, flow_weights)) if isinstance(flow_weights, tuple)
                   else str(flow_weights))]
    settings = RunSettings(device=device, precision=precision, batch_size=batch, prefetch=0)
    # the models extract_video will use (loaded once per process, then cached): CPU seconds per part
    rgb_model, flow_model = (load_model(d.backbone, w, device, effective_precision(d, settings),
                                        effective_flow_precision(d, settings)) for d, w in extractors)
    parts = {"i3d rgb": rgb_model}
    raft = getattr(flow_model, "flow_model", None)
    if isinstance(raft, RAFT):
        parts |= {"feature encoder": raft.feature_encoder, "context encoder": raft.context_encoder,
                  "updates": raft.update_block}
        if raft.mask_predictor is not None:
            parts["mask"] = raft.mask_predictor
    spent, hooks = time_parts(parts)
    c0, t0 = time.process_time(), time.perf_counter()
    result = extract_video(VideoSource(video), segments, extractors, settings)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    for h in hooks:
        h.remove()
    return {"wall_s": wall, "cpu_s": cpu, "model_s": result.model_s, "decode_s": result.decode_s, "parts_cpu_s": spent,
            "rgb": result.arrays["i3d"]["features"], "flow": result.arrays[name]["features"], "extractor": name}


def time_parts(modules: dict) -> tuple[dict[str, float], list]:
    """CPU seconds (this process, all threads) spent in each module's forward, filled in as they run."""
    spent, hooks = dict.fromkeys(modules, 0.0), []
    for key, module in modules.items():
        def pre(_module, _inputs, key=key):
            spent[key] -= time.process_time()

        def post(_module, _inputs, _output, key=key):
            spent[key] += time.process_time()

        hooks += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return spent, hooks


def parts_line(parts: dict[str, float], minutes: float) -> str:
    return ", ".join(f"{k} {v / minutes:.0f}" for k, v in parts.items()) + " s/min CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=SHARED)
    ap.add_argument("--segments", type=int, default=1, help="2-s segments (the peer's stacks of 32 frames)")
    ap.add_argument("--configs", default="raft_large,raft_small,tvl1",
                    help=f"flow models for hl, from {', '.join(FLOW_EXTRACTORS)}")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (hl) / cuda:0 (the peer) on a GPU machine")
    ap.add_argument("--batch", type=int, default=4, help="hl's clips per forward pass")
    ap.add_argument("--peer-root", type=Path, default=os.environ.get("HL_PEER_ROOT"),
                    help="an extracted snapshot of v-iashin/video_features (default: $HL_PEER_ROOT)")
    ap.add_argument("--peer-python", type=Path, default=os.environ.get("HL_PEER_PYTHON"),
                    help="the python of the peer's own environment (default: $HL_PEER_PYTHON)")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--keep", type=Path, help="keep the scratch files (video, weights, features) here")
    args = ap.parse_args()
    if args.no_peer:
        args.peer_python = None
    elif not (args.peer_root and args.peer_python):
        raise SystemExit("give --peer-root and --peer-python (or $HL_PEER_ROOT and $HL_PEER_PYTHON), or --no-peer")
    torch.set_num_threads(args.threads)
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in FLOW_EXTRACTORS]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; known: {', '.join(FLOW_EXTRACTORS)}")
    if args.peer_python and "raft_large" not in configs:
        configs.insert(0, "raft_large")
    scratch = Path(tempfile.mkdtemp(prefix="hl-flowbench-"))
    load = os.getloadavg()
    try:
        video = scratch / "clip16.mkv"
        frames = args.segments * STACK + 1
        h, w = make_video(args.video, video, frames)
        segments = np.stack([np.arange(args.segments) * 2.0, np.arange(args.segments) * 2.0 + 2.0], axis=1)
        minutes = args.segments * 2.0 / 60.0
        weights = write_weights(scratch, args)
        print(f"{args.video.name}: {args.segments} x 2 s at {FPS} fps ({frames} frames, {w}x{h}), random weights, "
              f"{args.threads} torch threads, load average {load[0]:.1f} at the start")
        precisions = ["fp32"] + (["bf16"] if default_precision(args.device) == "bf16" else [])
        if len(precisions) == 1:
            print("  bf16: not measured (this CPU has no native bf16: no AVX512-BF16 or AMX)")
        print(f"  device: {args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device != "cpu" else ""))
        hl_runs = {}
        for flow in configs:
            if flow == "tvl1":
                try:
                    import cv2

                    ok = hasattr(cv2, "optflow")
                except ImportError:
                    ok = False
                if not ok:
                    print("  tvl1: not measured (OpenCV's contrib modules are not installed in this environment)")
                    continue
            for precision in precisions:
                r = run_hl(video, segments, flow, weights, precision, args.batch, args.device)
                hl_runs[flow, precision] = r
                print(f"  hl {r['extractor']:20s} {precision}: {r['wall_s'] / minutes:8.0f} s/min wall, "
                      f"{r['cpu_s'] / minutes:8.0f} s/min CPU (models: "
                      + ", ".join(f"{k} {v / minutes:.0f}" for k, v in r["model_s"].items()) + " s/min wall)",
                      flush=True)
                print(f"      parts: {parts_line(r['parts_cpu_s'], minutes)}")
        if args.peer_python:
            out = scratch / "peer.npz"
            p = run_peer(args, "extract", "--video", str(video), "--weights", str(scratch), "--stack", str(STACK),
                         "--threads", str(args.threads), "--device",
                         "cuda:0" if args.device.startswith("cuda") else "cpu", "--out", str(out))
            feats = np.load(out)
            if len(feats["rgb"]) != args.segments:
                raise SystemExit(f"the peer made {len(feats['rgb'])} stacks for {args.segments} segments")
            print(f"  peer video_features i3d (RAFT large) fp32: {p['wall_s'] / minutes:8.0f} s/min wall, "
                  f"{p['cpu_s'] / minutes:8.0f} s/min CPU (torch {p['torch']}, {p['threads']} threads)")
            print(f"      parts: {parts_line(p['parts_cpu_s'], minutes)}")
            for precision in precisions:
                r = hl_runs["raft_large", precision]
                c_rgb, c_flow = cosine(r["rgb"], feats["rgb"]), cosine(r["flow"], feats["flow"])
                print(f"  peer / hl, RAFT large {precision}: {p['wall_s'] / r['wall_s']:.2f}x wall, "
                      f"{p['cpu_s'] / r['cpu_s']:.2f}x CPU; cosine per clip rgb min {c_rgb.min():.6f} "
                      f"(mean {c_rgb.mean():.6f}), flow min {c_flow.min():.6f} (mean {c_flow.mean():.6f})")
            if args.keep:
                np.savez(scratch / "hl.npz", **{f"{k[0]}_{k[1]}_{s}": v[s] for k, v in hl_runs.items()
                                                 for s in ("rgb", "flow")})
        print(f"  load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        if args.keep:
            shutil.copytree(scratch, args.keep, dirs_exist_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
