"""The peer side of benchmarks/flow.py: v-iashin/video_features' I3D extraction, run in the peer's own environment.

This script does not import hl. It runs under an interpreter that has the peer's requirements (torch,
torchvision, omegaconf, opencv-python-headless, scipy, pillow) and a copy of the peer's repository
(``--peer-root``); benchmarks/flow.py starts it as a subprocess:

    PEER_PYTHON benchmarks/flow_peer.py raft-weights --peer-root DIR --out FILE
        random weights of the peer's RAFT (princeton-vl's RAFT, the large model), seeded, saved in the
        princeton-vl format: a DataParallel state dict, every key prefixed with ``module.``
    PEER_PYTHON benchmarks/flow_peer.py extract --peer-root DIR --video V --weights DIR --stack 32 --out F.npz
            [--device cuda:0]
        the peer's ExtractI3D (models/i3d/extract_i3d.py) built from its own config (configs/i3d.yml, the
        keys main.py merges from the command line overridden), its models loaded from DIR, then
        ``ExtractI3D.extract(video)`` timed: wall and CPU seconds, the rgb and flow features.

The peer loads its checkpoints from fixed paths relative to the working directory
(./models/i3d/checkpoints/i3d_{rgb,flow}.pt, ./models/raft/checkpoints/raft-sintel.pth): the extraction runs
in a scratch directory holding those files, never in the peer's repository.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path


def _import_peer(root: Path) -> None:
    sys.path.insert(0, str(root))
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.cuda.amp.autocast in the peer's RAFT


def time_parts(modules: dict) -> dict[str, float]:
    """CPU seconds (this process, all threads) spent in each module's forward, filled in as they run."""
    spent = dict.fromkeys(modules, 0.0)
    for name, module in modules.items():
        def pre(_module, _inputs, name=name):
            spent[name] -= time.process_time()

        def post(_module, _inputs, _output, name=name):
            spent[name] += time.process_time()

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)
    return spent


def raft_weights(args) -> None:
    import torch

    _import_peer(args.peer_root)
    from models.raft.raft_src.raft import RAFT

    torch.manual_seed(args.seed)
    model = RAFT()  # the peer's RAFT: the large model (its constructor takes no options)
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        for name, buf in model.named_buffers():  # the context encoder's batch norms: not the identity
            if name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=gen))
            elif name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=gen))
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, args.out)
    print(json.dumps({"raft": str(args.out), "tensors": len(model.state_dict())}))


def extract(args) -> None:
    import numpy as np
    import torch
    from omegaconf import OmegaConf

    _import_peer(args.peer_root)
    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="hl-peer-"))
    try:
        for src, dst in (("i3d_rgb.pt", "models/i3d/checkpoints/i3d_rgb.pt"),
                         ("i3d_flow.pt", "models/i3d/checkpoints/i3d_flow.pt"),
                         ("raft-sintel.pth", "models/raft/checkpoints/raft-sintel.pth")):
            (scratch / dst).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(args.weights / src, scratch / dst)
        os.chdir(scratch)
        # main.py: OmegaConf.merge(configs/<feature_type>.yml, the command line)
        cfg = OmegaConf.merge(OmegaConf.load(args.peer_root / "configs" / "i3d.yml"), OmegaConf.create({
            "feature_type": "i3d", "device": args.device, "stack_size": args.stack, "step_size": args.stack,
            "extraction_fps": None, "streams": None, "flow_type": "raft", "on_extraction": "print",
            "tmp_path": str(scratch / "tmp"), "output_path": str(scratch / "out"),
            "video_paths": [str(args.video)],
        }))
        from models.i3d.extract_i3d import ExtractI3D

        t0 = time.perf_counter()
        extractor = ExtractI3D(cfg)
        load_s = time.perf_counter() - t0
        raft = extractor.name2module["flow_xtr_model"]
        parts = time_parts({"feature encoder": raft.fnet, "context encoder": raft.cnet,
                            "updates (mask included)": raft.update_block,
                            "i3d rgb": extractor.name2module["model"]["rgb"],
                            "i3d flow": extractor.name2module["model"]["flow"]})
        c0, t0 = time.process_time(), time.perf_counter()
        feats = extractor.extract(str(args.video))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        os.chdir("/")
        shutil.rmtree(scratch, ignore_errors=True)
    np.savez(args.out, rgb=feats["rgb"].astype(np.float32), flow=feats["flow"].astype(np.float32),
             timestamps_ms=feats["timestamps_ms"], fps=feats["fps"])
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "load_s": load_s, "stacks": int(len(feats["rgb"])),
                      "parts_cpu_s": parts,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    w = sub.add_parser("raft-weights")
    w.add_argument("--peer-root", type=Path, required=True)
    w.add_argument("--out", type=Path, required=True)
    w.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("extract")
    e.add_argument("--peer-root", type=Path, required=True)
    e.add_argument("--video", type=Path, required=True)
    e.add_argument("--weights", type=Path, required=True)
    e.add_argument("--stack", type=int, default=32)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--device", default="cpu", help="cpu, or cuda:0")
    e.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    {"raft-weights": raft_weights, "extract": extract}[args.command](args)


if __name__ == "__main__":
    main()
