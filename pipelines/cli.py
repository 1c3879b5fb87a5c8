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
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
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
    from hl.extract.weights import WeightsError, add_weights

    try:
        dest = add_weights(name, file, weights_dir)
    except WeightsError as exc:
        _fail(str(exc))
    click.echo(f"added {file} as {name}: {dest}")


@weights.command("download")
@click.argument("name")
@click.option("--url", default=None, help="A mirror address to use instead of the public one.")
@click.option("--force", is_flag=True, help="Download again even if the file is present.")
@_weights_dir_option
def weights_download(name, url, force, weights_dir):
    """Download checkpoint NAME (resumable, verified)."""
    from hl.extract.weights import WeightsError, download_weights

    try:
        dest = download_weights(name, weights_dir, url=url, force=force)
    except WeightsError as exc:
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


if __name__ == "__main__":
    main()
