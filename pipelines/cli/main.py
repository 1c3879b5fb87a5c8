"""The `hl` command line: thin click commands over the library API (tests call the library directly).

A library error (:class:`hl.common.HLError`) reaches the user as one line, ``hl: error: ...``, exit status 2
(:class:`.options.Group`).
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from hl import api

from .options import (
    Group,
    NameList,
    cluster_options,
    explicit,
    extraction_options,
    log_format_option,
    quiet_option,
    seeds_option,
    weights_dir_option,
)
from .progress import Console


@click.group(cls=Group)
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
@extraction_options
@quiet_option
@log_format_option
def extract(videos, out, extractors, segment_seconds, segments_manifest, weights_dir, scheduler, workers, device,
            precision, batch_size, random_weights, retry_failed, quiet, log_format):
    """Decode every video once and cache its features (HDF5 + a Parquet index)."""
    with Console(log_format, quiet=quiet) as console:
        report = api.extract(
            videos, out, extractors or None, segment_seconds=2.0 if segment_seconds is None else segment_seconds,
            segments=segments_manifest, weights_dir=weights_dir, scheduler=scheduler, workers=workers, device=device,
            precision=precision, batch_size=batch_size, random_weights=random_weights, retry_failed=retry_failed,
            progress=console,
        )
    console.result(f"{len(report.computed)} extracted, {len(report.skipped)} already cached, "
                   f"{len(report.failed)} failed, in {report.wall_s:.1f} s -> {out}",
                   extracted=len(report.computed), cached=len(report.skipped), failed=len(report.failed),
                   seconds=round(report.wall_s, 3), cache=str(out))
    for o in report.failed if console.format != "json" else ():  # json: in the item events already
        click.echo(f"  failed: {o.error}", err=True)
    sys.exit(1 if report.failed else 0)


# -- hl weights -----------------------------------------------------------------------------------------
@main.group(cls=Group)
def weights() -> None:
    """Pretrained checkpoints: list, add a file you have, or download."""


@weights.command("list")
@weights_dir_option
def weights_list(weights_dir):
    """Known checkpoints and whether they are present."""
    from hl.extract.weights import list_weights
    from hl.extract.weights import weights_dir as resolve

    click.echo(f"weights directory: {resolve(weights_dir)}")
    for row in list_weights(weights_dir):
        mark = "present" if row["present"] else "absent "
        click.echo(f"  {mark}  {row['name']:<20} {row['backbone']:<10} {row['file']:<28} {row['url']}")
        if row.get("license"):
            click.echo(f"           licence: {row['license']}")


@weights.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path))
@weights_dir_option
def weights_add(name, file, weights_dir):
    """Check FILE against backbone/entry NAME (every parameter name and shape) and put it in place."""
    from hl.extract.weights import add_weights

    dest = add_weights(name, file, weights_dir)
    click.echo(f"added {file} as {name}: {dest}")


@weights.command("download")
@click.argument("name")
@click.option("--url", default=None, help="A mirror address to use instead of the public one.")
@click.option("--force", is_flag=True, help="Download again even if the file is present.")
@weights_dir_option
def weights_download(name, url, force, weights_dir):
    """Download checkpoint NAME (resumable, verified)."""
    from hl.extract.weights import download_weights

    dest = download_weights(name, weights_dir, url=url, force=force)
    click.echo(f"{name}: {dest}")


# -- hl cache -------------------------------------------------------------------------------------------
@main.group(cls=Group)
def cache() -> None:
    """Inspect and maintain a feature cache."""


@cache.command("info")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts) instead of the text.")
def cache_info(path, as_json):
    """Videos, extractors, segments, and failures with their reasons."""
    import json

    from hl.pipelines.cache.summary import cache_summary

    info = cache_summary(path)
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False))
        return
    if info["videos"] == 0:
        click.echo(f"{path}: empty cache")
        return
    click.echo(f"cache {path}: {info['videos']} videos, {info['videos_with_features']} with features")
    for name, e in info["extractors"].items():
        click.echo(f"  {name:<16} {e['ok']:>5} ok  {e['failed']:>4} failed  {e['segments']:>7} "
                   f"segments  dim {e['dim']}  weights {','.join(w[:10] for w in e['weights'])}")
    if info["failures"]:
        click.echo(f"failures ({len(info['failures'])} videos):")
        for f in info["failures"]:
            click.echo(f"  {f['video_id']}: {f['error']}")
    m = info["manifest"]
    if m is not None:
        click.echo(f"manifest: {m['videos']} videos, {m['domains']} domains, splits {m['splits']}")


@cache.command("compact")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
def cache_compact(path):
    """Fold the per-unit index files into one file per extractor (every extraction run does this at its end).
    Safe while runs write to the cache: readers see the index as before or after, never a mix."""
    from hl.pipelines.cache import FeatureStore

    r = FeatureStore(path).compact()
    click.echo(f"{path}: {r.rows} index rows of {r.extractors} extractors compacted, {r.unit_files} unit files "
               f"folded in" + (f", {r.kept} rewritten meanwhile kept" if r.kept else "") + f" ({r.seconds:.1f} s)")


# -- hl import / hl manifest ---------------------------------------------------------------------------------
def _read_splits(path: Path | None) -> dict | None:
    if path is None:
        return None
    import json

    from hl.common import HLError

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise HLError(f"{path}: cannot read the splits JSON ({exc})") from None


splits_option = click.option("--splits", type=click.Path(exists=True, path_type=Path), default=None,
                             help='Splits JSON {domain: {"train": [...], "val": [...], "test": [...]}}.')


@main.group("import", cls=Group)
def import_() -> None:
    """Bring released features and labels into a cache."""


@import_.command("umt")
@click.option("--root", required=True, type=click.Path(exists=True, path_type=Path),
              help="The UMT release folder (video_features/, audio_features/, *_anno.json).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The cache directory.")
@splits_option
def import_umt_cmd(root, out, splits):
    """Released I3D rgb/flow + PANN features -> CACHE (i3d, i3d_flow, pann) + CACHE/manifest.parquet.

    Default split: lighthouse's. UMT's own split files (train/val) work as they are: a domain without a
    'test' list has its 'val' list read as the test set, as UMT evaluates it."""
    import pandas as pd

    from hl.pipelines.cache.umt_import import import_umt

    n, path = import_umt(root, out, splits=_read_splits(splits))
    split = pd.read_parquet(path, columns=["video_id", "split"]).drop_duplicates("video_id")["split"]
    counts = ", ".join(f"{k} {v}" for k, v in sorted(split.value_counts().items()))
    click.echo(f"imported {n} videos into {out} ({counts}); manifest {path}")


def _durations_from(folder: Path) -> dict[str, float]:
    from hl.common import HLError
    from hl.extract.decode import VideoSource
    from hl.pipelines.stages.extract import discover_videos

    out = {}
    for item in discover_videos(folder):
        try:
            out[item.video_id] = VideoSource(item.path).info.duration
        except HLError:
            continue
    return out


def _needs_fps(o: dict) -> dict:
    if o["fps"] is None:
        from hl.common import HLError

        raise HLError("cosum needs --fps (the frame rate the shot boundaries count in)")
    return {"fps": o["fps"], "splits": o["splits"]}


# kind -> (importer in hl.data_manifests.build, its keyword arguments from the command's options)
MANIFEST_KINDS: dict[str, tuple[str, Callable[[dict], dict]]] = {
    "tvsum": ("tvsum-official", lambda o: {"splits": o["splits"], "clip_seconds": o["segment_seconds"]}),
    "youtube": ("umt", lambda o: {"splits": o["splits"], "datasets": ["youtube"]}),
    "umt": ("umt", lambda o: {"splits": o["splits"]}),
    "cosum": ("cosum", _needs_fps),
    "lighthouse": ("lighthouse", lambda o: {}),
    "csv": ("user-csv", lambda o: {
        "segment_seconds": o["segment_seconds"], "domain": o["domain"], "split": o["split"],
        "durations": _durations_from(o["videos"]) if o["videos"] is not None else None}),
}


@main.command()
@click.argument("kind", type=click.Choice(list(MANIFEST_KINDS)))
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="MANIFEST.parquet to write.")
@splits_option
@click.option("--segment-seconds", type=float, default=2.0, show_default=True, help="tvsum/csv windows.")
@click.option("--fps", type=float, default=None, help="cosum: the videos' frame rate.")
@click.option("--videos", type=click.Path(exists=True, path_type=Path), default=None,
              help="csv: folder of the videos, to read durations the CSV does not give.")
@click.option("--domain", default="user", show_default=True, help="csv: domain of rows without one.")
@click.option("--split", default="train", show_default=True, help="csv: split of rows without one.")
def manifest(kind, source, out, **options):
    """Labels from the public formats -> one manifest (Parquet).

    \b
    tvsum SOURCE=ydata-tvsum50.mat   youtube SOURCE=UMT release folder (youtube_anno.json)
    cosum SOURCE=CoSum folder        csv SOURCE=highlights.csv (video,start,end[,domain,split,duration])
    umt SOURCE=UMT release folder    lighthouse SOURCE=folder of tvsum_{train,val}_release.jsonl
    """
    from hl.common import HLError
    from hl.data_manifests import build
    from hl.data_manifests.schema import write_manifest

    options["splits"] = _read_splits(options["splits"])
    importer, kwargs = MANIFEST_KINDS[kind]
    try:
        df = build.build_manifest(importer, source, **kwargs(options))
    except (ValueError, KeyError) as exc:
        raise HLError(str(exc).strip("'\"")) from None
    write_manifest(df, out)
    click.echo(f"{out}: {df['video_id'].nunique()} videos, {len(df)} segments, "
               f"{df['domain'].nunique()} domains, {int(df['label'].sum())} positive segments")


# -- hl train-head / eval / predict -----------------------------------------------------------------------
PIXEL_ONLY = (*api.PIXEL_ONLY, "saliency_norm")  # the command also sees a --saliency-norm given at its default


def refuse_given(ctx: click.Context, names, what: str) -> None:
    """A usage error naming the options among `names` the user gave, which `what` does not take."""
    wrong = explicit(ctx, names)
    if wrong:
        raise click.UsageError(f"{', '.join('--' + n.replace('_', '-') for n in wrong)}: not an option of {what}")


@main.command("train-head")
@click.option("--cache", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--manifest", type=click.Path(exists=True, path_type=Path), default=None,
              help="Default: CACHE/manifest.parquet.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The run directory.")
@click.option("--domain", "domains", multiple=True, help="Train only these domains (repeatable).")
@click.option("--head", "head_kind", type=click.Choice(["segment", "pixel"]), default="segment", show_default=True,
              help="segment: the co-occurrence head (HPCL); pixel: the pixel-level distinction decoder (PLD).")
@click.option("--epochs", type=int, default=None, help="Fixed number of epochs (default: the shipped one).")
@seeds_option("0,1,2,3,4")
@click.option("--joint", is_flag=True, help="One model over all training domains instead of one per domain.")
@click.option("--visual", type=NameList(), default=None,
              help="segment: visual extractors, concatenated. Default: from the cache, the papers' i3d,i3d_flow "
                   "first, else what it holds (c3d, r3d34, down to the weight-free stats).")
@click.option("--audio", type=NameList(), default=None,
              help="segment: audio extractors ('' for none). Default: from the cache, pann first, else stats_audio.")
@click.option("--model", type=click.Choice(["co-av", "cr-av", "av", "v", "a", "ridge"]), default=None,
              help="segment: architecture (default co-av); ridge: the linear baseline (per-video standardised "
                   "features, alpha chosen by validation on the training videos).")
@click.option("--preset", type=click.Choice(["hpcl-paper-tvsum", "hpcl-paper-youtube"]), default=None,
              help="segment: a named setting in place of the shipped one; hpcl-paper-*: the HPCL paper's settings "
                   "(d=256, its losses and weights) with UMT's training regime for TVSum or YouTube Highlights "
                   "(hl.heads.presets). The other options apply on top of it.")
@click.option("--val-fraction", type=float, default=0.0, show_default=True,
              help="segment: carve this share of training videos out for early stopping (never the test split).")
@click.option("--track-test", is_flag=True,
              help="segment: also score the test videos after every epoch, for `hl eval --protocol best-epoch` "
                   "(the papers' protocol); the run's own scores stay those of its last epoch.")
@click.option("--select", is_flag=True,
              help="segment: choose the setting (width, lr, dropout, loss weights) and the epoch count per domain "
                   "by validation mAP on folds of the training videos; recorded in RUN/selection/.")
@click.option("--select-final", type=click.Choice(["refit", "folds"]), default="refit", show_default=True,
              help="with --select: refit the chosen setting on all training videos, or average the fold heads.")
@click.option("--no-hpcl", is_flag=True, help="segment ablation: no contrastive loss.")
@click.option("--no-rank", is_flag=True, help="segment ablation: no hard-pairs rank loss.")
@click.option("--global-query", type=click.Choice(["mean", "random", "none"]), default=None, help="segment ablation.")
@click.option("--fusion", type=click.Choice(["late", "early"]), default=None, help="segment ablation.")
@click.option("--backbone", type=click.Choice(["c3d", "tased"]), default=None,
              help="pixel: whose cached encoder maps (c3d_maps 112x112 or tased_maps 224x384). Default: from the "
                   "cache, tased first; the saliency likewise (tased, else motion_saliency).")
@click.option("--beta", type=float, default=None,
              help="pixel: saliency threshold. Default: the paper's for TASED saliency (0.0005; 0.001 for "
                   "dog/gymnastics/skiing), a calibrated 4x the uniform value for motion_saliency.")
@click.option("--saliency-norm", type=click.Choice(["sum", "max", "none"]), default="sum", show_default=True,
              help="pixel: normalisation of the saliency map before comparing with beta.")
@click.option("--ablate", type=click.Choice(["spatial", "temporal"]), default=None,
              help="pixel: w/o spatial (whole highlight frames 1) or w/o temporal (the target frame repeated).")
@cluster_options
@quiet_option
@log_format_option
@click.pass_context
def train_head(ctx, cache, manifest, out, domains, head_kind, epochs, seeds, joint, visual, audio, model, preset,
               val_fraction, track_test, select, select_final, no_hpcl, no_rank, global_query, fusion, backbone,
               beta, saliency_norm, ablate, scheduler, workers, quiet, log_format):
    """Train heads from the cache: one per domain (default) or joint, for every seed.

    The segment head (co-occurrence encoder + HPCL) trains on clip features; the pixel head (PLD) on the
    cached frozen-encoder maps and saliency maps of `hl extract --extractors tased,c3d_maps`."""
    refuse_given(ctx, api.SEGMENT_ONLY if head_kind == "pixel" else PIXEL_ONLY, f"--head {head_kind}")
    if model == "ridge":
        refuse_given(ctx, api.RIDGE_IGNORES, "--model ridge")
    if select_final != "refit" and not select:
        raise click.UsageError("--select-final: only with --select")
    given = {k: v for k, v in {"visual": visual, "audio": audio, "model": model, "preset": preset,
                               "global_query": global_query,
                               "fusion": fusion, "backbone": backbone, "beta": beta, "ablate": ablate}.items()
             if v is not None}
    with Console(log_format, quiet=quiet) as console:
        trained = api.train_head(cache, out, manifest=manifest, domains=domains, head=head_kind, epochs=epochs,
                                 seeds=seeds, joint=joint, val_fraction=val_fraction, track_test=track_test,
                                 select=select, select_final=select_final, no_hpcl=no_hpcl, no_rank=no_rank,
                                 saliency_norm=saliency_norm, scheduler=scheduler, workers=workers, progress=console,
                                 **given)
    _print_summary(trained.metrics, console, trained.seed_mean)
    console.result(f"run written to {out}", run=str(out))


def _print_summary(metrics, console: Console | None = None, seed_mean=None) -> None:
    """The per-domain table: mean +- std over seeds and, with several seeds, the metric of the seeds' mean score
    (the model `hl highlights` scores with)."""
    from hl.pipelines.stages.evaluate import summary_table

    say = console.result if console is not None else (lambda line, **fields: click.echo(line))
    if metrics.empty:
        say("no test videos scored (the manifest's split 'test' holds none of the trained domains' videos)")
        return

    name = metrics["metric"].iloc[0] if len(metrics) else "metric"
    averaged = {} if seed_mean is None or seed_mean.empty else dict(zip(seed_mean["domain"], seed_mean["value"]))
    if averaged:
        averaged["MEAN"] = sum(averaged.values()) / len(averaged)
    if console is None or console.format != "json":
        say(f"{'domain':<12} {name:>10} (mean +- std over seeds)" + ("   mean of the seeds' heads" if averaged else ""))
    for _, r in summary_table(metrics).iterrows():
        extra = {"seed_mean": averaged[r["domain"]]} if r["domain"] in averaged else {}
        say(f"{r['domain']:<12} {r['mean']:>10.4f} +- {r['std']:.4f}  (n={int(r['count'])})"
            + (f"   {averaged[r['domain']]:.4f}" if extra else ""),
            domain=r["domain"], metric=name, mean=float(r["mean"]), std=float(r["std"]), seeds=int(r["count"]),
            **extra)
    if averaged and (console is None or console.format != "json"):
        say("mean of the seeds' heads: their scores averaged segment by segment, the model `hl highlights` "
            "scores with (one figure per run; its spread needs runs with other seeds)")


@main.command("eval")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--tvsum-protocol", type=click.Choice(["umt", "mini-net"]), default="umt", show_default=True)
@click.option("--protocol", type=click.Choice(["final", "best-epoch"]), default="final", show_default=True,
              help="final: the trained heads as they are (nothing chosen on the test videos). best-epoch: per "
                   "domain the best epoch picked on the test videos, as the papers report; optimistic, needs a "
                   "run trained with --track-test, printed under its own heading.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts) instead of the table.")
def eval_cmd(run_dir, tvsum_protocol, protocol, as_json):
    """Per-domain table of the run's test metrics, mean +- std over seeds."""
    import json

    from hl.pipelines.stages.evaluate import summary_dict

    result = api.evaluate(run_dir, tvsum_protocol=tvsum_protocol, protocol=protocol)
    if as_json:
        out = {"run": str(run_dir), "protocol": protocol, "tvsum_protocol": tvsum_protocol}
        if result.heading:
            out["heading"] = result.heading
            out["best_epochs"] = {d: {str(s): e for s, e in seeds.items()} for d, seeds in result.best_epochs.items()}
        if result.seed_mean is not None and not result.seed_mean.empty:
            sm = result.seed_mean
            out["seed_mean"] = {"about": "the metric of the mean of the seeds' scores (the model `hl highlights` "
                                         "scores with)", "mean": float(sm["value"].mean()),
                                "domains": {str(d): float(v) for d, v in zip(sm["domain"], sm["value"])}}
        click.echo(json.dumps({**out, **summary_dict(result.metrics), "about": result.about}))
        return
    if result.heading:
        click.echo(f"== {result.heading} ==")
    _print_summary(result.metrics, seed_mean=result.seed_mean)
    click.echo(result.about)


@main.command()
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--cache", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PRED.json (+ PRED.parquet).")
@click.option("--video", "videos", multiple=True, help="Only these video ids (repeatable).")
@click.option("--maps", "maps_dir", type=click.Path(path_type=Path), default=None,
              help="Pixel-level runs: write per video a PNG strip of frames with the map overlaid + the score curve.")
def predict(run_dir, cache, out, videos, maps_dir):
    """Score the cache's videos with a trained run: {video_id: [score per segment]}."""
    from hl.common import HLError

    try:
        result = api.predict(run_dir, cache, out, videos=videos, maps=maps_dir)
    except HLError as exc:
        if "--maps needs" in str(exc):
            raise click.UsageError(str(exc)) from None
        raise
    click.echo(f"scored {len(result.scores)} videos -> {result.json}, {result.parquet} and {result.jsonl} "
               f"(qid/vid/pred_saliency_scores per 2-s clip)")
    if maps_dir is not None:
        click.echo(f"{len(result.maps)} map pictures -> {maps_dir}")


# -- hl highlights -------------------------------------------------------------------------------------------
@main.command()
@click.argument("video_or_dir", type=click.Path(path_type=Path))
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path), help="A trained run.")
@click.option("--top", type=int, default=5, show_default=True, help="Most moments kept per video.")
@click.option("--min-gap", type=float, default=4.0, show_default=True,
              help="Least seconds between the end of one moment and the start of the next.")
@click.option("--relative", type=click.FloatRange(0.0, 1.0), default=None,
              help="Drop moments scoring below median + R x (best - median) of the video's scores "
                   "[default: 0.55, chosen on TVSum's training videos].")
@click.option("--min-score", type=float, default=None,
              help="An absolute floor instead of the relative one (0 keeps the top moments whatever they score).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("highlights"), show_default=True)
@click.option("--clips", is_flag=True, help="Cut every moment as its own file (packet copy: fast, lossless).")
@click.option("--reencode", is_flag=True, help="With --clips: cut exactly at the moment (H.264 + AAC).")
@click.option("--cache", type=click.Path(path_type=Path), default=None, help="Feature cache (default OUT/cache).")
@extraction_options
@quiet_option
@log_format_option
def highlights(video_or_dir, run_dir, top, min_gap, relative, min_score, out, clips, reencode, cache, quiet,
               log_format, **extraction):
    """The best moments of new videos: JSON, CSV, an HTML report, and clips with --clips.

    The features are made as the run's were: the extraction options (those of `hl extract`) default to the
    run's, and one that differs from what the run's features were made with is refused."""
    if relative is not None and min_score is not None:
        raise click.UsageError("give --relative or --min-score, not both")

    def echo(line: str) -> None:
        click.echo(line, err=line.lstrip().startswith(("failed:", '{"event": "result", "message": "  failed:')))

    sys.exit(highlights_command(video_or_dir, run_dir, top=top, min_gap=min_gap, out=out, clips=clips, cache=cache,
                                relative=api.DEFAULT_RELATIVE if relative is None else relative, min_score=min_score,
                                reencode=reencode, quiet=quiet, echo=echo, log_format=log_format, **extraction))


def highlights_command(
    video_or_dir: str | Path,
    run: str | Path,
    top: int = 5,
    min_gap: float = 4.0,
    out: str | Path | None = None,
    clips: bool = False,
    cache: str | Path | None = None,
    relative: float | None = api.DEFAULT_RELATIVE,
    min_score: float | None = None,
    reencode: bool = False,
    weights_dir: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
    stream=None,
    log_format: str = "auto",
    extractors: tuple[str, ...] | None = None,
    segment_seconds: float | None = None,
    segments_manifest: str | Path | None = None,
    device: str = "cpu",
    precision: str = "auto",
    batch_size: int = 8,
    random_weights: bool = False,
    retry_failed: bool = False,
) -> int:
    """Everything `hl highlights` does, with progress on `stream` (stderr) as `log_format` says and a summary
    through `echo` (JSON lines with ``log_format="json"``). Returns the exit status: 0, or 1 when some videos
    could not be scored. Raises :class:`hl.common.HLError` (one line) for a bad request."""
    import json

    with Console(log_format, stream=stream, quiet=quiet) as console:
        result = api.highlights(
            video_or_dir, run, out if out is not None else "highlights", top=top, min_gap=min_gap,
            relative=relative, min_score=min_score, clips=clips, reencode=reencode, cache=cache, extractors=extractors,
            segment_seconds=segment_seconds, segments=segments_manifest, weights_dir=weights_dir, scheduler=scheduler,
            workers=workers, device=device, precision=precision, batch_size=batch_size, random_weights=random_weights,
            retry_failed=retry_failed, progress=console)
    if console.format == "json":
        plain_echo = echo

        def echo(line: str) -> None:
            plain_echo(json.dumps({"event": "result", "message": line}, ensure_ascii=False))
    videos = result.videos
    if len(videos) <= 10:
        for vid, vh in videos.items():
            best = ", ".join(f"#{k + 1} {m.start:.1f}-{m.end:.1f} s ({m.score:.2f})" for k, m in enumerate(vh.moments))
            floor = f" (floor {vh.floor:.2f})" if vh.floor is not None else ""
            echo(f"{vid}: {best or 'no moments'}{floor}")
    ext = result.extraction
    echo(f"{len(videos)} videos scored ({len(ext.computed)} extracted, {len(ext.skipped)} from the cache), "
         f"{len(result.failed)} failed -> {result.report}")
    for vid, error in result.failed.items():
        echo(f"  failed: {vid}: {error}")
    for line in result.warnings:
        echo(f"  warning: {line}")
    lead = max((m.start - c.start for vh in videos.values() for m, c in zip(vh.moments, vh.clips)
                if c is not None and c.mode == "copy"), default=0.0)
    if lead > 2.0:
        echo(f"  note: copied clips start up to {lead:.1f} s before their moments (they must start on a keyframe); "
             f"--reencode cuts them exactly")
    return 1 if result.failed else 0


# -- hl demo -------------------------------------------------------------------------------------------------
@main.command()
@click.option("--out", default="hl-demo", show_default=True, type=click.Path(path_type=Path))
@click.option("--videos", type=int, default=12, show_default=True, help="Generated videos.")
@click.option("--seconds", type=float, default=20.0, show_default=True, help="Length of each video.")
@seeds_option("0,1,2")
@click.option("--epochs", type=int, default=40, show_default=True)
@click.option("--workers", type=int, default=None, help="Worker processes of the local cluster.")
@log_format_option
def demo(out, videos, seconds, seeds, epochs, workers, log_format):
    """The whole job on generated videos: extract -> train heads -> evaluate -> highlights + report.

    Needs no internet and no pretrained weights (weight-free features)."""
    from .demo import run_demo

    with Console(log_format) as console:
        run_demo(out, videos=videos, seconds=seconds, seeds=seeds, epochs=epochs, workers=workers,
                 reporter=console.extract_reporter(), progress=console.train_progress(), say=console.result)


if __name__ == "__main__":
    main()
