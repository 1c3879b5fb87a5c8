"""CPU time of one head's training with late against early fusion (the HPCL paper's Table 6), everything else
the TVSum preset as written, interleaved in one process so that the ratio holds on a shared machine:

    python benchmarks/fusion_speed.py [--domain BK] [--epochs 40] [--reps 3]

Prints each fit's CPU seconds (one torch thread) and the ratio of the medians, early / late.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from selection_power import load  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    import torch

    from hl.heads.fit import fit
    from hl.heads.presets import preset_config

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domain", default="BK")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hl-fusion-speed"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    train = [v.video for v in load("tvsum", args.work) if v.domain == args.domain and v.split == "train"]
    cpu: dict[str, list[float]] = {"late": [], "early": []}
    for rep in range(args.reps):
        for fusion in cpu:
            cfg = preset_config("hpcl-paper-tvsum", epochs=args.epochs, arch={"fusion": fusion})
            t0 = time.process_time()
            fit(train, cfg, seed=rep)
            cpu[fusion].append(time.process_time() - t0)
    for fusion, t in cpu.items():
        print(f"{fusion:5s} fusion, {args.epochs} epochs of {args.domain}: CPU s {', '.join(f'{x:.2f}' for x in t)}")
    print(f"early / late CPU time (medians): {np.median(cpu['early']) / np.median(cpu['late']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
