"""PLD (pixel-level distinction) head on generated videos: accuracy, ablations, cache size, and why the cache.

    python benchmarks/pixel_head.py                    # 10 videos x 6 s, 3 seeds, full model + ablations
    python benchmarks/pixel_head.py --videos 6 --seconds 4 --seeds 0   # a quicker run
    python benchmarks/pixel_head.py --tased            # + TASED encoder maps: bytes and encoder vs decoder time

No pretrained weights: the encoder is a randomly initialised C3D saved once in c3d-pytorch's format, so every
worker and both encoder extractors (``c3d_maps``, and ``c3d_maps_static`` for the w/o temporal ablation) use
the same encoder; the saliency is the weight-free ``motion_saliency``. The videos are make_dataset's with a
textured object (tests/pixel_synthetic.py): highlight segments show it moving, the others do not.

Reported:
  * segment mAP on held-out videos, and on their highlight frames the IoU of (map > 0.5) with the object's box
    and the share of the map's mass inside it; mean +- std over seeds, for the full model and the ablations
    (w/o spatial, w/o temporal) and for the paper's beta = 0.0005;
  * cache bytes per video-minute of the encoder maps and the saliency maps;
  * decoder training time per epoch from the cache, against recomputing the encoder every epoch (decode +
    C3D forward for every training frame, then the same decoder epoch).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pixel_synthetic import object_overlap, textured_dataset  # noqa: E402

from hl.data_manifests.schema import write_manifest  # noqa: E402
from hl.extract import segments as seg  # noqa: E402
from hl.extract.backbones import create, static_clip  # noqa: E402, F401  (registers the *_static specs)
from hl.extract.decode import VideoSource  # noqa: E402
from hl.extract.extractors import ExtractorDef, RunSettings, extract_video, load_model  # noqa: E402
from hl.extract.weights import weights_hash  # noqa: E402
from hl.heads.pixel_decoder import load_pixel_head, predict_probability  # noqa: E402
from hl.pipelines.cache import FeatureStore  # noqa: E402
from hl.pipelines.run import Run  # noqa: E402
from hl.pipelines.stages.extract import UnitPlan, VideoItem, process_video, run_extraction  # noqa: E402
from hl.pipelines.stages.train_pixel import FrameBank, PixelTrainSpec, load_pixel_videos, train_pixel  # noqa: E402
from hl.pipelines.stages.train_segment import read_manifest_at  # noqa: E402

C3D_STATIC = ExtractorDef("c3d_maps_static", "c3d_maps_static", "window", output="maps",
                          description="C3D conv5b of the target frame repeated 16 times")
TASED_MAPS = ExtractorDef("tased_maps", "tased_maps", "window", output="maps")


def random_c3d(weights_dir: Path) -> Path:
    """A randomly initialised C3D saved as c3d-pytorch's c3d.pickle (a state dict), found by extraction."""
    path = weights_dir / "c3d.pickle"
    if not path.exists():
        weights_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save(create("c3d_maps").state_dict(), path)
    return path


def extract(root: Path, args, weights: Path) -> tuple[Path, dict]:
    cache = root / "cache"
    timings = {}
    t0 = time.perf_counter()
    report = run_extraction(root / "videos", cache, ["c3d_maps", "motion_saliency"], segment_seconds=args.segment,
                            weights_dir=weights.parent, workers=args.workers, settings=RunSettings(precision="bf16"))
    if report.failed:
        raise SystemExit(f"extraction failed: {report.failed[0].error}")
    timings["c3d_maps+motion_saliency"] = time.perf_counter() - t0
    t0 = time.perf_counter()  # the static variant is not in EXTRACTORS: run its units in this process
    plan = UnitPlan(C3D_STATIC, str(weights), weights_hash(weights))
    for path in sorted((root / "videos").glob("*.mp4")):
        process_video(VideoItem(path.stem, str(path)), [plan], str(cache), RunSettings(precision="bf16"),
                      args.segment, torch_threads=torch.get_num_threads())
    timings["c3d_maps_static"] = time.perf_counter() - t0
    return cache, timings


def variants(args, cache: Path) -> dict[str, PixelTrainSpec]:
    common = dict(cache=str(cache), backbone="c3d", seeds=tuple(args.seeds), epochs=args.epochs,
                  batch_size=args.batch_size, widths=tuple(args.widths), saliency_norm="sum")
    return {
        f"full (beta {args.beta:g})": PixelTrainSpec(beta=args.beta, **common),
        "w/o spatial": PixelTrainSpec(ablate="spatial", **common),
        "w/o temporal": PixelTrainSpec(beta=args.beta, ablate="temporal", **common),
        "full, paper beta 0.0005": PixelTrainSpec(beta=0.0005, **common),
    }


def accuracy(args, root: Path, cache: Path, videos, manifest) -> list[dict]:
    rows = []
    test_ids = sorted(manifest.loc[manifest["split"] == "test", "video_id"].unique())
    for name, spec in variants(args, cache).items():
        run = root / "runs" / name.replace(" ", "_").replace("/", "")
        metrics = train_pixel(spec, run)
        view = Run.open(run).config.head["decoder"]["view"]
        per_seed = []
        for s in spec.seeds:  # object coverage of each seed's own decoder
            cover = object_overlap(seed_maps(run / "models" / "synth0" / f"seed{s}.pt", cache, spec.maps_name,
                                             test_ids), videos, view)
            per_seed.append((float(np.mean(cover["iou"])), float(np.mean(cover["mass"]))))
        iou, mass = np.array(per_seed).T
        rows.append({"variant": name, "mAP": metrics["value"].to_numpy(), "iou": iou, "mass": mass})
        print(f"  {name:<26} mAP {_pm(metrics['value'])}  IoU {_pm(iou)}  mass {_pm(mass)}", flush=True)
    return rows


def seed_maps(model_file: Path, cache: Path, maps_name: str, video_ids: list[str]) -> dict[str, dict]:
    """{video_id: {"maps": uint8 [N, H, W], "times": [N]}} from one decoder file."""
    model, _ = load_pixel_head(model_file)
    store = FeatureStore(cache)
    out = {}
    for vid in video_ids:
        prob = predict_probability(model, store.features(vid, maps_name))
        out[vid] = {"maps": np.rint(prob * 255).astype(np.uint8), "times": store.array(vid, maps_name, "times")}
    return out


def _pm(x) -> str:
    x = np.asarray(x, dtype=np.float64)
    return f"{x.mean():.3f} +- {x.std(ddof=1) if len(x) > 1 else 0.0:.3f}"


def cache_bytes(cache: Path, minutes: float, extractors: list[str]) -> dict[str, float]:
    return {ex: sum(p.stat().st_size for p in (cache / "features" / ex).glob("*.h5")) / minutes for ex in extractors
            if (cache / "features" / ex).exists()}


def epoch_times(args, cache: Path, weights: Path) -> dict[str, float]:
    """Seconds per epoch of decoder training: from the cache (in memory / streamed), and recomputing the
    encoder each epoch (decode + C3D forward of every training frame, then the same decoder epoch)."""
    from hl.heads.pixel_decoder import PixelDistinction, PixelFitConfig, fit_decoder

    store = FeatureStore(cache)
    spec = PixelTrainSpec(cache=str(cache), beta=args.beta, seeds=(0,), batch_size=args.batch_size)
    manifest = read_manifest_at(spec.manifest_path)
    train, _, _ = load_pixel_videos(store, manifest, spec, (112, 112))
    frames = sum(len(v.rows) for v in train)
    out = {"train_frames": frames}
    for widths in [tuple(args.widths), (256, 128, 64)]:
        bank = FrameBank(store, train, "c3d_maps", (512, 2, 7, 7), (112, 112), args.batch_size)
        model = PixelDistinction("c3d", (512, 2, 7, 7), widths)
        model.set_input_stats(*bank.channel_stats())
        hist = fit_decoder(model, bank.batches, PixelFitConfig(epochs=3, batch_size=args.batch_size), seed=0)
        out[f"decoder epoch {widths}"] = float(np.median([h["seconds"] for h in hist]))
    stream = FrameBank(store, train, "c3d_maps", (512, 2, 7, 7), (112, 112), args.batch_size,
                       memory_bytes=1)  # nothing kept: every epoch reads each video's maps from the cache
    t0 = time.perf_counter()
    for _ in stream.batches(np.random.default_rng(0)):
        pass
    out["streamed read per epoch"] = time.perf_counter() - t0
    c3d = ExtractorDef("c3d_maps", "c3d_maps", "window", output="maps")
    load_model("c3d_maps", str(weights), "cpu", "bf16")  # loaded once, as a worker would
    t0 = time.perf_counter()
    for v in train:  # what each epoch would cost without the cache: the encoder over every training frame
        source = VideoSource(store.attrs(v.video_id, "c3d_maps")["source_path"])
        segments = seg.fixed_segments(source.info.duration, args.segment)
        extract_video(source, segments, [(c3d, str(weights))], RunSettings(precision="bf16"))
    out["encoder per epoch (bf16)"] = time.perf_counter() - t0
    return out


def tased_figures(root: Path, seconds: float = 4.0) -> dict[str, float]:
    """TASED encoder maps of one short video (random S3D): bytes per video-minute, encoder seconds per frame,
    and the TASED-style decoder's training step per frame."""
    from hl.data_manifests.synthetic import write_video
    from hl.heads.pixel_decoder import PixelDistinction, pixel_bce

    path = write_video(root / "tased" / "clip.mp4", seconds=seconds, fps=30.0, highlights=((1.0, 3.0),), texture=True)
    torch.manual_seed(0)
    source = VideoSource(path)
    segments = seg.fixed_segments(source.info.duration, 2.0)
    t0 = time.perf_counter()
    res = extract_video(source, segments, [(TASED_MAPS, None)], RunSettings(precision="bf16", batch_size=2))
    enc = time.perf_counter() - t0
    maps = res.arrays["tased_maps"]["features"]
    store = FeatureStore(root / "tased" / "cache")
    f = store.write_unit("clip", "tased_maps", res.arrays["tased_maps"], {})
    model = PixelDistinction("tased", tuple(maps.shape[1:]))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.from_numpy(maps[:4]).float()
    y = torch.zeros(len(x), *model.out_size)
    times = []
    for _ in range(3):
        t1 = time.perf_counter()
        loss = pixel_bce(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append((time.perf_counter() - t1) / len(x))
    return {"frames": len(maps), "MiB per video-minute": f.stat().st_size / 2**20 / (source.info.duration / 60.0),
            "encoder s/frame (bf16)": enc / len(maps), "decoder train s/frame (fp32)": float(np.median(times))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "hl-bench-pixel")
    ap.add_argument("--videos", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--segment", type=float, default=1.0)
    ap.add_argument("--test-fraction", type=float, default=0.3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--widths", type=int, nargs=3, default=[64, 32, 16])
    ap.add_argument("--beta", type=float, default=3e-5, help="sum-normalised threshold for the full model")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tased", action="store_true", help="also measure TASED encoder maps (slow on CPU)")
    args = ap.parse_args()

    root = args.root
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores", flush=True)
    t0 = time.perf_counter()
    videos, manifest = textured_dataset(root / "videos", n_videos=args.videos, seconds=args.seconds, fps=args.fps,
                                        segment_seconds=args.segment, test_fraction=args.test_fraction, seed=0)
    weights = random_c3d(root / "weights")
    cache, ext = extract(root, args, weights)
    write_manifest(manifest, cache / "manifest.parquet")
    minutes = args.videos * args.seconds / 60.0
    n_test = manifest.loc[manifest["split"] == "test", "video_id"].nunique()
    print(f"{args.videos} videos x {args.seconds:g} s ({n_test} held out), extraction: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in ext.items()), flush=True)
    print("accuracy on held-out videos (mean +- std over seeds):", flush=True)
    accuracy(args, root, cache, videos, manifest)
    print("cache bytes per video-minute:", flush=True)
    for ex, b in cache_bytes(cache, minutes, ["c3d_maps", "c3d_maps_static", "motion_saliency"]).items():
        print(f"  {ex:<18} {b / 2**20:8.2f} MiB", flush=True)
    print("decoder training, seconds per epoch:", flush=True)
    for k, v in epoch_times(args, cache, weights).items():
        print(f"  {k:<34} {v:.2f}", flush=True)
    if args.tased:
        print("TASED encoder maps:", flush=True)
        for k, v in tased_figures(root).items():
            print(f"  {k:<34} {v:,.3f}" if isinstance(v, float) else f"  {k:<34} {v}", flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
