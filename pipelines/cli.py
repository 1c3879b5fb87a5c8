"""The `hl` command line: thin click commands over the library API (tests call the library directly)."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click


def _fail(message: str) -> None:
    """One clear line on stderr and exit status 2, instead of a traceback."""
    click.echo(f"hl: error: {message}", err=True)
    sys.exit(2)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
def main(verbose: bool) -> None:
    """hl: video highlight detection. Extract features once into a cache, then train fast heads from it."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not verbose:  # Dask's scheduler runs in this process and logs at INFO by default
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")


# -- hl extract -----------------------------------------------------------------------------------------
@main.command()
@click.option("--videos", required=True, type=click.Path(path_type=Path),
              help="A folder of videos (searched recursively) or one video file.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The cache directory.")
@click.option("--extractors", default=None,
              help="Comma-separated, e.g. i3d,pann,tased. Default: every pretrained extractor whose weights "
                   "are present, else the weight-free stats,stats_audio.")
@click.option("--segment-seconds", default=2.0, show_default=True, type=float, help="Fixed window length.")
@click.option("--segments", "segments_manifest", type=click.Path(exists=True, path_type=Path), default=None,
              help="A manifest (Parquet) whose start/end windows replace the fixed windows for its videos.")
@click.option("--weights-dir", type=click.Path(path_type=Path), default=None, envvar="HL_WEIGHTS_DIR",
              help="Where checkpoints live (default: the user cache dir; env HL_WEIGHTS_DIR).")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler (tcp://host:port).")
@click.option("--workers", type=int, default=None, help="Worker processes of the local cluster.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (GPU tasks carry a GPU resource).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="auto: bf16 where the CPU/GPU computes it natively, else fp32.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Clips per forward pass.")
@click.option("--random-weights", is_flag=True,
              help="Run pretrained extractors with random weights when theirs are absent (speed tests only).")
@click.option("--retry-failed", is_flag=True, help="Try again the videos that failed before.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def extract(videos, out, extractors, segment_seconds, segments_manifest, weights_dir, scheduler, workers, device,
            precision, batch_size, random_weights, retry_failed, quiet):
    """Decode every video once and cache its features (HDF5 + a Parquet index)."""
    from hl.extract.extractors import RunSettings
    from hl.pipelines.extract_stage import ExtractError, run_extraction

    from .progress import ExtractProgress

    manifest = None
    if segments_manifest is not None:
        from hl.data_manifests.schema import read_manifest

        manifest = read_manifest(segments_manifest)
    names = [e.strip() for e in extractors.split(",") if e.strip()] if extractors else None
    settings = RunSettings(device=device, precision=precision, batch_size=batch_size)
    progress = ExtractProgress(enabled=not quiet)
    try:
        report = run_extraction(
            videos, out, names, segment_seconds=segment_seconds, manifest=manifest, weights_dir=weights_dir,
            scheduler=scheduler, workers=workers, settings=settings, allow_random_weights=random_weights,
            retry_failed=retry_failed, reporter=progress.reporter(), notice=progress.notice,
        )
    except (ExtractError, ValueError, OSError) as exc:
        _fail(str(exc))
    finally:
        progress.close()
    click.echo(f"{len(report.computed)} extracted, {len(report.skipped)} already cached, "
               f"{len(report.failed)} failed, in {report.wall_s:.1f} s -> {out}")
    for o in report.failed:
        click.echo(f"  failed: {o.error}", err=True)
    sys.exit(1 if report.failed else 0)


# -- hl weights -----------------------------------------------------------------------------------------
@main.group()
def weights() -> None:
    """Pretrained checkpoints: list, add a file you have, or download."""


_weights_dir_option = click.option("--weights-dir", type=click.Path(path_type=Path), default=None,
                                   envvar="HL_WEIGHTS_DIR", help="The weights directory.")


@weights.command("list")
@_weights_dir_option
def weights_list(weights_dir):
    """Known checkpoints and whether they are present."""
    from hl.extract.weights import list_weights
    from hl.extract.weights import weights_dir as resolve

    click.echo(f"weights directory: {resolve(weights_dir)}")
    for row in list_weights(weights_dir):
        mark = "present" if row["present"] else "absent "
        click.echo(f"  {mark}  {row['name']:<20} {row['backbone']:<10} {row['file']:<28} {row['url']}")


@weights.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path))
@_weights_dir_option
def weights_add(name, file, weights_dir):
    """Check FILE against backbone/entry NAME (every parameter name and shape) and put it in place."""
    from hl.common import HLError
    from hl.extract.weights import add_weights

    try:
        dest = add_weights(name, file, weights_dir)
    except HLError as exc:
        _fail(str(exc))
    click.echo(f"added {file} as {name}: {dest}")


@weights.command("download")
@click.argument("name")
@click.option("--url", default=None, help="A mirror address to use instead of the public one.")
@click.option("--force", is_flag=True, help="Download again even if the file is present.")
@_weights_dir_option
def weights_download(name, url, force, weights_dir):
    """Download checkpoint NAME (resumable, verified)."""
    from hl.common import HLError
    from hl.extract.weights import download_weights

    try:
        dest = download_weights(name, weights_dir, url=url, force=force)
    except HLError as exc:
        _fail(str(exc))
    click.echo(f"{name}: {dest}")


# -- hl cache -------------------------------------------------------------------------------------------
@main.group()
def cache() -> None:
    """Inspect a feature cache."""


@cache.command("info")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def cache_info(path):
    """Videos, extractors, segments, and failures with their reasons."""
    from hl.pipelines.cache import FeatureStore

    store = FeatureStore(path)
    idx = store.index()
    if idx.empty:
        click.echo(f"{path}: empty cache")
        return
    ok = idx[idx["status"] == "ok"]
    click.echo(f"cache {path}: {idx['video_id'].nunique()} videos, {ok['video_id'].nunique()} with features")
    for name, g in idx.groupby("extractor"):
        good = g[g["status"] == "ok"]
        click.echo(f"  {name:<16} {len(good):>5} ok  {len(g) - len(good):>4} failed  "
                   f"{int(good['segments'].sum()):>7} segments  dim {int(good['dim'].max()) if len(good) else 0}"
                   f"  weights {','.join(sorted(set(g['weights_hash'].astype(str).str[:10])))}")
    failed = idx[idx["status"] == "failed"].drop_duplicates("video_id")
    if len(failed):
        click.echo(f"failures ({len(failed)} videos):")
        for _, r in failed.iterrows():
            click.echo(f"  {r['video_id']}: {r['error']}")
    if store.manifest_path.exists():
        m = store.manifest()
        click.echo(f"manifest: {m['video_id'].nunique()} videos, {m['domain'].nunique()} domains, "
                   f"splits {dict(m.drop_duplicates('video_id')['split'].value_counts())}")


# -- hl import / hl manifest ---------------------------------------------------------------------------------
@main.group("import")
def import_() -> None:
    """Bring released features and labels into a cache."""


def _read_splits(path):
    if path is None:
        return None
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        _fail(f"{path}: cannot read the splits JSON ({exc})")


@import_.command("umt")
@click.option("--root", required=True, type=click.Path(exists=True, path_type=Path),
              help="The UMT release folder (video_features/, audio_features/, *_anno.json).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The cache directory.")
@click.option("--splits", type=click.Path(exists=True, path_type=Path), default=None,
              help='JSON {domain: {"train": [...], "val": [...], "test": [...]}}; default: the lighthouse split.')
def import_umt_cmd(root, out, splits):
    """Released I3D rgb/flow + PANN features -> CACHE (i3d, i3d_flow, pann) + CACHE/manifest.parquet."""
    from hl.pipelines.cache_import import import_umt

    try:
        n, path = import_umt(root, out, splits=_read_splits(splits))
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    click.echo(f"imported {n} videos into {out}; manifest {path}")


@main.command()
@click.argument("kind", type=click.Choice(["tvsum", "youtube", "cosum", "csv", "umt", "lighthouse"]))
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="MANIFEST.parquet to write.")
@click.option("--splits", type=click.Path(exists=True, path_type=Path), default=None, help="Splits JSON.")
@click.option("--segment-seconds", type=float, default=2.0, show_default=True, help="tvsum/csv windows.")
@click.option("--fps", type=float, default=None, help="cosum: the videos' frame rate.")
@click.option("--videos", type=click.Path(exists=True, path_type=Path), default=None,
              help="csv: folder of the videos, to read durations the CSV does not give.")
@click.option("--domain", default="user", show_default=True, help="csv: domain of rows without one.")
@click.option("--split", default="train", show_default=True, help="csv: split of rows without one.")
def manifest(kind, source, out, splits, segment_seconds, fps, videos, domain, split):
    """Labels from the public formats -> one manifest (Parquet).

    \b
    tvsum SOURCE=ydata-tvsum50.mat   youtube SOURCE=UMT release folder (youtube_anno.json)
    cosum SOURCE=CoSum folder        csv SOURCE=highlights.csv (video,start,end[,domain,split,duration])
    umt SOURCE=UMT release folder    lighthouse SOURCE=folder of tvsum_{train,val}_release.jsonl
    """
    from hl.data_manifests import build
    from hl.data_manifests.schema import write_manifest

    sp = _read_splits(splits)
    try:
        if kind == "tvsum":
            df = build.build_manifest("tvsum-official", source, splits=sp, clip_seconds=segment_seconds)
        elif kind in ("youtube", "umt"):
            df = build.build_manifest("umt", source, splits=sp, datasets=["youtube"] if kind == "youtube" else None)
        elif kind == "cosum":
            if fps is None:
                _fail("cosum needs --fps (the frame rate the shot boundaries count in)")
            df = build.build_manifest("cosum", source, fps=fps, splits=sp)
        elif kind == "lighthouse":
            df = build.build_manifest("lighthouse", source)
        else:
            durations = _durations_from(videos) if videos is not None else None
            df = build.build_manifest("user-csv", source, segment_seconds=segment_seconds, durations=durations,
                                      domain=domain, split=split)
    except (ValueError, OSError, KeyError) as exc:
        _fail(str(exc))
    write_manifest(df, out)
    click.echo(f"{out}: {df['video_id'].nunique()} videos, {len(df)} segments, "
               f"{df['domain'].nunique()} domains, {int(df['label'].sum())} positive segments")


def _durations_from(folder: Path) -> dict[str, float]:
    from hl.common import HLError
    from hl.extract.decode import VideoSource
    from hl.pipelines.extract_stage import discover_videos

    out = {}
    for item in discover_videos(folder):
        try:
            out[item.video_id] = VideoSource(item.path).info.duration
        except HLError:
            continue
    return out


# -- hl train-head / eval / predict -----------------------------------------------------------------------
def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


@main.command("train-head")
@click.option("--cache", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--manifest", type=click.Path(exists=True, path_type=Path), default=None,
              help="Default: CACHE/manifest.parquet.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The run directory.")
@click.option("--domain", "domains", multiple=True, help="Train only these domains (repeatable).")
@click.option("--visual", default="i3d,i3d_flow", show_default=True, help="Visual extractors, concatenated.")
@click.option("--audio", default="pann", show_default=True, help="Audio extractors ('' for none).")
@click.option("--model", type=click.Choice(["co-av", "cr-av", "av", "v", "a"]), default=None,
              help="Architecture (default co-av).")
@click.option("--epochs", type=int, default=None, help="Fixed number of epochs (default: the shipped one).")
@click.option("--seeds", default="0,1,2,3,4", show_default=True)
@click.option("--joint", is_flag=True, help="One model over all training domains instead of one per domain.")
@click.option("--val-fraction", type=float, default=0.0, show_default=True,
              help="Carve this share of training videos out for early stopping (never the test split).")
@click.option("--no-hpcl", is_flag=True, help="Ablation: no contrastive loss.")
@click.option("--no-rank", is_flag=True, help="Ablation: no hard-pairs rank loss.")
@click.option("--global-query", type=click.Choice(["mean", "random", "none"]), default=None)
@click.option("--fusion", type=click.Choice(["late", "early"]), default=None)
@click.option("--head", "head_kind", type=click.Choice(["segment", "pixel"]), default="segment", show_default=True,
              help="segment: the co-occurrence head (HPCL); pixel: the pixel-level distinction decoder (PLD).")
@click.option("--backbone", type=click.Choice(["c3d", "tased"]), default="c3d", show_default=True,
              help="pixel: whose cached encoder maps (c3d_maps 112x112 or tased_maps 224x384).")
@click.option("--beta", type=float, default=None,
              help="pixel: saliency threshold (default 0.0005; 0.001 for dog/gymnastics/skiing).")
@click.option("--saliency-norm", type=click.Choice(["sum", "max", "none"]), default="sum", show_default=True,
              help="pixel: normalisation of the saliency map before comparing with beta.")
@click.option("--ablate", type=click.Choice(["spatial", "temporal"]), default=None,
              help="pixel: w/o spatial (whole highlight frames 1) or w/o temporal (the target frame repeated).")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler.")
@click.option("--workers", type=int, default=None, help="Worker processes of the local cluster.")
def train_head(cache, manifest, out, domains, visual, audio, model, epochs, seeds, joint, val_fraction, no_hpcl,
               no_rank, global_query, fusion, head_kind, backbone, beta, saliency_norm, ablate, scheduler, workers):
    """Train heads from the cache: one per domain (default) or joint, for every seed.

    The segment head (co-occurrence encoder + HPCL) trains on clip features; the pixel head (PLD) on the
    cached frozen-encoder maps and saliency maps of `hl extract --extractors tased,c3d_maps`."""
    from hl.pipelines.train import TrainError, TrainSpec, summary_table, train_heads

    if head_kind == "pixel":
        return _train_pixel(cache, manifest, out, domains, seeds, joint, epochs, backbone, beta, saliency_norm,
                            ablate, scheduler, workers)

    head: dict = {}
    arch = {k: v for k, v in {"model": model, "global_query": global_query, "fusion": fusion}.items() if v}
    if arch:
        head["arch"] = arch
    if epochs is not None:
        head["epochs"] = epochs
    if no_hpcl:
        head["w_hpcl"] = 0.0
    if no_rank:
        head["w_rank"] = 0.0
    try:
        seed_list = tuple(int(s) for s in _csv(seeds))
    except ValueError:
        _fail(f"--seeds must be comma-separated integers, got {seeds!r}")
    spec = TrainSpec(cache=str(cache), manifest=str(manifest) if manifest else None, visual=_csv(visual),
                     audio=_csv(audio), domains=tuple(domains) or None, seeds=seed_list, joint=joint,
                     val_fraction=val_fraction, head=head)
    bar, progress = _train_progress()
    try:
        metrics = train_heads(spec, out, scheduler=scheduler, workers=workers, progress=progress)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    except TrainError as exc:
        _fail(str(exc))
    finally:
        bar.close()
    _print_summary(summary_table(metrics), metrics)
    click.echo(f"run written to {out}")


def _train_progress():
    from tqdm import tqdm

    bar = tqdm(total=None, unit="head", desc="train", file=sys.stderr, dynamic_ncols=True)

    def progress(res, done, total):
        bar.total = total
        detail = f", {res['epochs']} epochs, {res['train_videos']} train / {res['test_videos']} test videos" \
            if "epochs" in res and "train_videos" in res else ""
        bar.write(f"[{done}/{total}] {res['domain']} seed {res['seed']}{detail}, {res.get('seconds', 0):.1f} s",
                  file=sys.stderr)
        bar.update(1)

    return bar, progress


def _train_pixel(cache, manifest, out, domains, seeds, joint, epochs, backbone, beta, saliency_norm, ablate,
                 scheduler, workers):
    from hl.pipelines.train import TrainError, summary_table
    from hl.pipelines.train_pixel import PixelTrainSpec, train_pixel

    try:
        spec = PixelTrainSpec(cache=str(cache), manifest=str(manifest) if manifest else None, backbone=backbone,
                              beta=beta, saliency_norm=saliency_norm, ablate=ablate,
                              domains=tuple(domains) or None, seeds=tuple(int(x) for x in _csv(seeds)),
                              joint=joint, **({"epochs": epochs} if epochs else {}))
    except ValueError as exc:
        _fail(str(exc))
    except TrainError as exc:
        _fail(str(exc))
    bar, progress = _train_progress()
    try:
        metrics = train_pixel(spec, out, scheduler=scheduler, workers=workers or 0, progress=progress)
    except (TrainError, ValueError, OSError) as exc:
        _fail(str(exc))
    finally:
        bar.close()
    _print_summary(summary_table(metrics), metrics)
    click.echo(f"run written to {out}")


def _print_summary(table, metrics) -> None:
    name = metrics["metric"].iloc[0] if len(metrics) else "metric"
    click.echo(f"{'domain':<12} {name:>10} (mean +- std over seeds)")
    for _, r in table.iterrows():
        click.echo(f"{r['domain']:<12} {r['mean']:>10.4f} +- {r['std']:.4f}  (n={int(r['count'])})")


@main.command("eval")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--tvsum-protocol", type=click.Choice(["umt", "mini-net"]), default="umt", show_default=True)
def eval_cmd(run_dir, tvsum_protocol):
    """Per-domain table of the run's test metrics, mean +- std over seeds."""
    import json

    from hl.pipelines.evaluate import evaluate_run
    from hl.pipelines.train import summary_table
    from hl.pipelines.train_pixel import evaluate_pixel_run

    config_path = Path(run_dir) / "config.json"
    if not config_path.exists():
        _fail(f"{run_dir}: not a run directory (no config.json)")
    cfg = json.loads(config_path.read_text())
    pixel = cfg.get("head") == "pixel"
    try:
        metrics = (evaluate_pixel_run if pixel else evaluate_run)(run_dir, tvsum_protocol=tvsum_protocol)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    _print_summary(summary_table(metrics), metrics)
    if pixel:
        click.echo(f"pixel-level head on {cfg['maps_extractor']} maps")
        return
    click.echo(f"features: visual {'+'.join(cfg['spec']['visual'])}, audio {'+'.join(cfg['spec']['audio']) or '-'};"
               f" model {cfg['head']['arch']['model']}, {cfg['head']['epochs']} epochs (fixed)")


@main.command()
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--cache", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PRED.json (+ PRED.parquet).")
@click.option("--video", "videos", multiple=True, help="Only these video ids (repeatable).")
@click.option("--maps", "maps_dir", type=click.Path(path_type=Path), default=None,
              help="Pixel-level runs: write per video a PNG strip of frames with the map overlaid + the score curve.")
def predict(run_dir, cache, out, videos, maps_dir):
    """Score the cache's videos with a trained run: {video_id: [score per segment]}."""
    import json

    from hl.pipelines.predict import PredictError, predict_scores, write_predictions

    config_path = Path(run_dir) / "config.json"
    pixel = config_path.exists() and json.loads(config_path.read_text()).get("head") == "pixel"
    if maps_dir is not None and not pixel:
        _fail(f"{run_dir}: --maps needs a pixel-level run (hl train-head --head pixel)")
    try:
        if pixel:
            from hl.pipelines.predict_pixel import predict_pixel, write_map_pictures

            preds = predict_pixel(run_dir, cache, list(videos) or None)
        else:
            preds = predict_scores(run_dir, cache, list(videos) or None)
    except (PredictError, ValueError, OSError, KeyError) as exc:
        _fail(str(exc).strip("'\""))
    js, table = write_predictions(preds, out)
    click.echo(f"scored {len(preds)} videos -> {js} and {table}")
    if maps_dir is not None:
        pictures = write_map_pictures(preds, run_dir, cache, maps_dir)
        click.echo(f"{len(pictures)} map pictures -> {maps_dir}")


# -- hl highlights -------------------------------------------------------------------------------------------
@main.command()
@click.argument("video_or_dir", type=click.Path(path_type=Path))
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path), help="A trained run.")
@click.option("--top", type=int, default=5, show_default=True, help="Most moments kept per video.")
@click.option("--min-gap", type=float, default=4.0, show_default=True,
              help="Least seconds between the end of one moment and the start of the next.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("highlights"), show_default=True)
@click.option("--clips", is_flag=True, help="Cut every moment as its own file (packet copy: fast, lossless).")
@click.option("--reencode", is_flag=True, help="With --clips: cut exactly at the moment (H.264 + AAC).")
@click.option("--cache", type=click.Path(path_type=Path), default=None, help="Feature cache (default OUT/cache).")
@click.option("--weights-dir", type=click.Path(path_type=Path), default=None, envvar="HL_WEIGHTS_DIR")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler.")
@click.option("--workers", type=int, default=None, help="Worker processes of the local cluster.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def highlights(video_or_dir, run_dir, top, min_gap, out, clips, reencode, cache, weights_dir, scheduler, workers,
               quiet):
    """The best moments of new videos: JSON, CSV, an HTML report, and clips with --clips."""
    from hl.pipelines.highlights import HighlightsError, highlights_command

    def echo(line: str) -> None:
        click.echo(line, err=line.lstrip().startswith("failed:"))

    try:
        code = highlights_command(video_or_dir, run_dir, top=top, min_gap=min_gap, out=out, clips=clips,
                                  cache=cache, reencode=reencode, weights_dir=weights_dir, scheduler=scheduler,
                                  workers=workers, quiet=quiet, echo=echo)
    except HighlightsError as exc:
        _fail(str(exc))
    sys.exit(code)


# -- hl demo -------------------------------------------------------------------------------------------------
@main.command()
@click.option("--out", default="hl-demo", show_default=True, type=click.Path(path_type=Path))
@click.option("--videos", type=int, default=12, show_default=True, help="Generated videos.")
@click.option("--seconds", type=float, default=20.0, show_default=True, help="Length of each video.")
@click.option("--seeds", default="0,1,2", show_default=True, help="Seeds to train and report.")
@click.option("--epochs", type=int, default=40, show_default=True)
@click.option("--workers", type=int, default=None, help="Worker processes of the local cluster.")
def demo(out, videos, seconds, seeds, epochs, workers):
    """The whole job on generated videos: extract -> train heads -> evaluate -> highlights + report.

    Needs no internet and no pretrained weights (weight-free features)."""
    from .demo import run_demo
    from .progress import ExtractProgress

    progress = ExtractProgress()
    try:
        run_demo(out, videos=videos, seconds=seconds, seeds=tuple(int(x) for x in _csv(seeds)), epochs=epochs,
                 workers=workers, reporter=progress.reporter(),
                 say=lambda line: click.echo(line, err=False))
    finally:
        progress.close()


if __name__ == "__main__":
    main()
