"""Calibrate the pseudo-label threshold beta of the weight-free ``motion_saliency`` (the PLD head's default).

    python benchmarks/calibrate_motion_beta.py            # 8 generated training videos x 6 s + the shared videos

The paper's beta (0.0005 on sum-normalised 224x384 maps, 43x the uniform value 1/(224*384)) is for TASED-Net's
peaked maps; motion-energy maps are broad blobs that almost never exceed it. This script labels the highlight
frames of generated *training* videos (make_dataset's textured object: its box is known) with beta at
multiples of the uniform value and reports, per beta, the IoU of the labels with the object's box and the share
of labelled pixels; on the shared real videos (no labels: every frame counted as a highlight) it reports the
share of frames whose labels are not empty. No test split is involved: the generated videos are training
videos made for this script, and the real ones are only checked for empty labels.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pixel_synthetic import textured_dataset  # noqa: E402

from hl.data_manifests.synthetic import object_box  # noqa: E402
from hl.heads.pixel_labels import box_mask, mask_iou, pseudo_labels  # noqa: E402
from hl.pipelines.cache import FeatureStore  # noqa: E402
from hl.pipelines.stages.extract import run_extraction  # noqa: E402

UNIFORM = 1.0 / (224 * 384)
MULTIPLES = (0.5, 1.0, 1.5, 2.0, 2.6, 3.0, 4.0, 6.0, 10.0, 43.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "videos")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        videos, _ = textured_dataset(root / "videos", n_videos=args.videos, seconds=args.seconds, fps=30,
                                     test_fraction=0.0, seed=7)
        run_extraction(root / "videos", root / "cache", ["motion_saliency"], workers=1)
        store = FeatureStore(root / "cache")
        sal, masks = [], []
        for v in videos:
            times = store.array(v.video_id, "motion_saliency", "times")
            maps = store.maps(v.video_id, "motion_saliency")
            for t, m in zip(times, maps):
                box = object_box(math.floor(t * v.fps + 1e-9) / v.fps, v.seconds, v.size, v.highlights)
                if box is not None:
                    sal.append(m)
                    masks.append(box_mask(box, v.size, (0.0, 1.0, 0.0, 1.0), m.shape))
        sal = np.stack(sal)
        real = []
        if args.shared.exists():
            run_extraction(args.shared, root / "real", ["motion_saliency"], workers=1)
            rstore = FeatureStore(root / "real")
            real = [rstore.maps(v, "motion_saliency") for v in rstore.videos("motion_saliency")]
        print(f"{len(sal)} highlight frames of {len(videos)} generated training videos; "
              f"{sum(len(r) for r in real)} frames of {len(real)} shared videos")
        print("| beta (x uniform) | beta | label IoU with the object | labelled share | shared frames non-empty |")
        print("|---|---|---|---|---|")
        for k in MULTIPLES:
            beta = k * UNIFORM
            lab = pseudo_labels(sal, np.ones(len(sal), bool), beta, "sum")
            iou = np.mean([mask_iou(a, b) for a, b in zip(lab, masks)])
            nonempty = (np.mean(np.concatenate([pseudo_labels(r, np.ones(len(r), bool), beta, "sum")
                                                .reshape(len(r), -1).any(1) for r in real]))
                        if real else float("nan"))
            print(f"| {k:g} | {beta:.3g} | {iou:.3f} | {lab.mean():.3f} | {nonempty:.3f} |")
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
