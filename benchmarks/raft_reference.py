"""Reference flows of the public RAFT definitions, for tests/test_raft.py (writes tests/data/raft_reference.npz).

Runs outside hl's environment, in one that has torchvision (the public raft_large / raft_small) and a copy of
princeton-vl/RAFT's ``core/`` (the original code, given by --princeton-core or extracted from a git directory
with --princeton-git). Nothing of either is kept: only their outputs on seeded inputs.

Each model is filled with the deterministic weights of tests/backbone_weights.seeded_state (made from our,
i.e. torchvision's, parameter names and shapes; the original's names are mapped with hl's checkpoint filter),
and run on 2 seeded RGB frame pairs:

* torchvision raft_large / raft_small: 128 x 144 frames (sides divisible by 8, as it requires), the
  OpticalFlow transform's [-1, 1] input, num_flow_updates=4; the last flow estimate;
* princeton-vl RAFT large / small: 130 x 150 frames, padded by the original's InputPadder ("sintel" mode) and
  the flow unpadded, input in [0, 255], iters=4, test_mode=True; the upsampled flow.

    TORCHVISION_VENV/bin/python benchmarks/raft_reference.py --princeton-git RAFT_CLONE/.git

The flows are stored at every second pixel (the fixture stays small; the upsampling is still checked), with the
names and shapes of each definition's state dict (what a file saved from it holds).
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "raft_reference.npz"
ITERATIONS = 4
SEED = 0
TV_SIZE = (128, 144)  # divisible by 8
ORIGINAL_SIZE = (130, 150)  # padded by InputPadder to 136 x 152


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hl_raft():
    """hl's RAFT module (for its checkpoint filter's names), importable without installing hl: the repository
    root is the package `hl`, linked into a temporary folder on sys.path."""
    try:
        from hl.extract.backbones import raft
    except ImportError:
        tmp = Path(tempfile.mkdtemp())
        (tmp / "hl").symlink_to(ROOT, target_is_directory=True)
        sys.path.insert(0, str(tmp))
        from hl.extract.backbones import raft
    return raft


ours = _hl_raft()
weights = _load(ROOT / "tests" / "backbone_weights.py", "hl_backbone_weights")


def frames(size: tuple[int, int], seed: int) -> np.ndarray:
    """2 pairs of smooth random RGB frames, uint8 [2, 2, H, W, 3] (image2 = image1 moved by a few pixels)."""
    rng = np.random.default_rng(seed)
    h, w = size
    coarse = torch.from_numpy(rng.random((2, 3, h // 8 + 2, w // 8 + 2), dtype=np.float32))
    big = torch.nn.functional.interpolate(coarse, size=(h + 16, w + 16), mode="bicubic", align_corners=False)
    big = (big - big.min()) / (big.max() - big.min()) * 255.0
    first = big[:, :, 8:8 + h, 8:8 + w]
    second = torch.stack([big[0, :, 5:5 + h, 10:10 + w], big[1, :, 11:11 + h, 6:6 + w]])
    pairs = torch.stack([first, second], dim=1)  # [2 pairs, 2 images, 3, H, W]
    return pairs.round().clamp(0, 255).to(torch.uint8).permute(0, 1, 3, 4, 2).numpy()


def torchvision_flow(small: bool, pairs: np.ndarray) -> np.ndarray:
    from torchvision.models.optical_flow import raft_large, raft_small
    from torchvision.models.optical_flow.raft import Raft_Large_Weights

    model = (raft_small if small else raft_large)().eval()
    model.load_state_dict(weights.seeded_state(model, SEED), strict=True)
    x = torch.from_numpy(pairs).permute(0, 1, 4, 2, 3)  # [P, 2, 3, H, W] uint8
    transform = Raft_Large_Weights.DEFAULT.transforms()  # OpticalFlow: [0, 1] then normalised to [-1, 1]
    image1, image2 = transform(x[:, 0], x[:, 1])
    with torch.no_grad():
        return model(image1, image2, num_flow_updates=ITERATIONS)[-1].numpy()


def layout(state: dict) -> np.ndarray:
    """A state dict's names and shapes, as strings "name [d0, d1, ...]"."""
    return np.array([f"{k} {list(v.shape)}" for k, v in state.items()])


def torchvision_layout(small: bool) -> np.ndarray:
    from torchvision.models.optical_flow import raft_large, raft_small

    return layout((raft_small if small else raft_large)().state_dict())


def original_layout(core: Path, small: bool) -> np.ndarray:
    sys.path.insert(0, str(core))
    from raft import RAFT

    args = argparse.Namespace(small=small, mixed_precision=False, alternate_corr=False, dropout=0)
    return layout(torch.nn.DataParallel(RAFT(args)).state_dict())


def original_flow(core: Path, small: bool, pairs: np.ndarray) -> np.ndarray:
    sys.modules.setdefault("scipy", types.ModuleType("scipy")).interpolate = None  # imported, unused at inference
    sys.path.insert(0, str(core))
    from raft import RAFT
    from utils.utils import InputPadder

    args = argparse.Namespace(small=small, mixed_precision=False, alternate_corr=False, dropout=0)
    model = torch.nn.DataParallel(RAFT(args)).eval()
    # our names -> the original's: every original key maps onto one of ours (the shortcut norms, stored twice
    # by the original, take the values of their downsample.1 twin)
    seeded = weights.seeded_state((ours.raft_small if small else ours.raft_large)(), SEED)
    keys = {k.removeprefix("module.") for k in model.state_dict()}
    state = {}
    for k in model.state_dict():
        name = ours._original_name(k.removeprefix("module."), keys)
        if name is None:  # layerK.0.normN: the shortcut's norm == layerK.0.downsample.1
            block = k.rsplit(".norm", 1)[0]
            leaf = k.rsplit(".", 1)[1]
            name = ours._original_name(f"{block}.downsample.1.{leaf}".removeprefix("module."), keys)
        state[k] = seeded[name]
    model.load_state_dict(state, strict=True)
    x = torch.from_numpy(pairs).permute(0, 1, 4, 2, 3).float()  # [0, 255]
    padder = InputPadder(x.shape[-2:])
    image1, image2 = padder.pad(x[:, 0], x[:, 1])
    with torch.no_grad():
        _, flow_up = model(image1, image2, iters=ITERATIONS, test_mode=True)
    return padder.unpad(flow_up).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--princeton-core", type=Path, help="a folder holding princeton-vl/RAFT's core/ files")
    group.add_argument("--princeton-git", type=Path, help="a git directory of princeton-vl/RAFT")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    torch.set_num_threads(1)
    tv_pairs, original_pairs = frames(TV_SIZE, SEED), frames(ORIGINAL_SIZE, SEED + 1)
    out = {"tv_pairs": tv_pairs, "original_pairs": original_pairs, "iterations": np.int64(ITERATIONS)}
    for small in (False, True):
        out[f"tv_{'small' if small else 'large'}"] = torchvision_flow(small, tv_pairs)[..., ::2, ::2]
        out[f"tv_{'small' if small else 'large'}_layout"] = torchvision_layout(small)
    with tempfile.TemporaryDirectory() as tmp:
        core = a.princeton_core
        if core is None:
            archive = subprocess.run(["git", f"--git-dir={a.princeton_git}", "archive", "HEAD", "core"],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "x", "-C", tmp], input=archive, check=True)
            core = Path(tmp) / "core"
        for small in (False, True):
            name = f"original_{'small' if small else 'large'}"
            out[name] = original_flow(core, small, original_pairs)[..., ::2, ::2]
            out[name + "_layout"] = original_layout(core, small)  # DataParallel's "module." names
    for k, v in out.items():
        if k.startswith(("tv_", "original_")) and v.dtype == np.float32:
            print(f"{k}: {list(v.shape)} |flow| mean {np.abs(v).mean():.3f} max {np.abs(v).max():.3f}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, **out)
    print(f"wrote {a.out} ({a.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
