"""The Python API: one function per ``hl`` command, with the command's defaults; the command line is a thin layer
over these functions (:mod:`hl.pipelines.cli`).

=================================  =====================================================================
``hl extract --videos V --out C``  ``hl.extract(V, C)`` -> :class:`~hl.pipelines.stages.extract.ExtractReport`
``hl train-head --cache C --out R`` ``hl.train_head(C, R)`` -> :class:`Trained` (run path, metrics, summary)
``hl eval --run R``                ``hl.evaluate(R)`` -> :class:`Evaluation` (metrics, summary, about)
``hl predict --run R --cache C``   ``hl.predict(R, C, out)`` -> :class:`Predictions` (scores, file paths)
``hl highlights V --run R``        ``hl.highlights(V, R)`` -> :class:`~hl.pipelines.highlights.HighlightsResult`
=================================  =====================================================================

Nothing is printed unless asked: ``progress=True`` (or a log format: ``"bar"``, ``"plain"``, ``"json"``) shows
the long stages on stderr as the command does. Bad requests raise :class:`hl.common.HLError` (one line).
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_RELATIVE = 0.55  # = hl.pipelines.highlights.moments.RELATIVE (checked by the tests)


def _console(progress):
    """A :class:`hl.pipelines.cli.progress.Console` for `progress` (True: auto; a log format; a Console, used as it
    is and left open), or None when nothing is shown."""
    if not progress:
        return contextlib.nullcontext(None)
    from hl.pipelines.cli.progress import Console

    if isinstance(progress, Console):
        return contextlib.nullcontext(progress)
    return Console("auto" if progress is True else str(progress))


def _manifest(segments):
    if segments is None or not isinstance(segments, (str, Path)):
        return segments  # None or a manifest DataFrame
    from hl.data_manifests.schema import read_manifest

    return read_manifest(segments)


# -- hl extract -----------------------------------------------------------------------------------------
def extract(
    videos: str | Path,
    out: str | Path,
    extractors: Sequence[str] | None = None,
    *,
    segment_seconds: float = 2.0,
    segments=None,
    weights_dir: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    device: str = "cpu",
    precision: str = "auto",
    batch_size: int = 8,
    random_weights: bool = False,
    retry_failed: bool = False,
    progress: bool | str = False,
):
    """``hl extract``: decode every video of `videos` (a folder, searched recursively, or one file) once and cache
    its features in `out`. `segments`: a manifest (path or DataFrame) whose windows replace the fixed ones for its
    videos. Returns the :class:`~hl.pipelines.stages.extract.ExtractReport` (``.computed``, ``.skipped``,
    ``.failed``, ``.wall_s``); a video that fails is in ``.failed`` and never stops the others."""
    from hl.extract.extractors import RunSettings
    from hl.pipelines.stages.extract import run_extraction

    settings = RunSettings(device=device, precision=precision, batch_size=batch_size)
    with _console(progress) as console:
        return run_extraction(
            videos, out, list(extractors) if extractors else None, segment_seconds=segment_seconds,
            manifest=_manifest(segments), weights_dir=weights_dir, scheduler=scheduler, workers=workers,
            settings=settings, allow_random_weights=random_weights, retry_failed=retry_failed,
            reporter=console.extract_reporter() if console else None, notice=console.notice if console else None,
        )


# -- hl train-head ---------------------------------------------------------------------------------------
@dataclass
class Trained:
    run: Path  # the run directory (read it with hl.pipelines.run.Run.open)
    metrics: Any  # pandas DataFrame: one row per (domain, seed) of the test metric
    summary: Any  # pandas DataFrame: per domain mean +- std over seeds, and the MEAN row
    seed_mean: Any = None  # several seeds: per domain the metric of the mean of the seeds' scores (hl eval's)


SEGMENT_ONLY = ("visual", "audio", "model", "val_fraction", "no_hpcl", "no_rank", "global_query", "fusion",
                "track_test", "select", "select_final", "preset")
PIXEL_ONLY = ("backbone", "beta", "ablate")
RIDGE_IGNORES = ("epochs", "no_hpcl", "no_rank", "global_query", "fusion", "track_test", "val_fraction", "preset")


def train_head(
    cache: str | Path,
    out: str | Path,
    *,
    manifest: str | Path | None = None,
    domains: Sequence[str] | None = None,
    head: str = "segment",
    epochs: int | None = None,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    joint: bool = False,
    visual: Sequence[str] | None = None,
    audio: Sequence[str] | None = None,
    model: str | None = None,
    preset: str | None = None,
    val_fraction: float = 0.0,
    track_test: bool = False,
    select: bool = False,
    select_final: str = "refit",
    no_hpcl: bool = False,
    no_rank: bool = False,
    global_query: str | None = None,
    fusion: str | None = None,
    backbone: str | None = None,
    beta: float | None = None,
    saliency_norm: str = "sum",
    ablate: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool | str = False,
) -> Trained:
    """``hl train-head``: train heads from `cache` into the run directory `out`, one per domain (or `joint`) and
    seed. ``head="segment"``: the co-occurrence head (HPCL) on clip features (`visual`, `audio`: extractor names,
    default chosen from the cache; ``model="ridge"``: the linear baseline); ``head="pixel"``: the pixel-level
    decoder (PLD) on cached encoder maps (`backbone`). `preset`: a named setting of the segment head in place of the
    shipped one (:mod:`hl.heads.presets`, e.g. ``"hpcl-paper-tvsum"``: the paper's), the other options on top of
    it. `select`: choose the setting and epoch count per domain by
    validation on folds of the training videos (`select_final`: "refit" or "folds"). Options of the other head
    are refused."""
    from hl.common import HLError
    from hl.pipelines.stages.evaluate import summary_table

    given = {"visual": visual is not None, "audio": audio is not None, "model": model is not None,
             "val_fraction": val_fraction != 0.0, "no_hpcl": no_hpcl, "no_rank": no_rank,
             "global_query": global_query is not None, "fusion": fusion is not None, "track_test": track_test,
             "select": select, "select_final": select_final != "refit",
             "backbone": backbone is not None, "beta": beta is not None, "ablate": ablate is not None,
             "epochs": epochs is not None, "preset": preset is not None}
    if head not in ("segment", "pixel"):
        raise HLError(f"unknown head {head!r} (segment, pixel)")
    wrong = [n for n in (SEGMENT_ONLY if head == "pixel" else PIXEL_ONLY) if given[n]]
    if wrong:
        raise HLError(f"{', '.join(wrong)}: not an option of the {head} head")
    common = {"cache": str(cache), "manifest": str(manifest) if manifest else None,
              "domains": tuple(domains) if domains else None, "seeds": tuple(seeds), "joint": joint}
    if head == "pixel":
        from hl.pipelines.stages.train_pixel import PixelTrainSpec, train_pixel

        spec = PixelTrainSpec(backbone=backbone, beta=beta, saliency_norm=saliency_norm, ablate=ablate, **common,
                              **({"epochs": epochs} if epochs else {}))
        train = train_pixel
    else:
        from hl.pipelines.stages.train_segment import TrainSpec, train_heads

        config: dict = {}
        if model == "ridge":
            wrong = [n for n in RIDGE_IGNORES if given[n]]
            if wrong:
                raise HLError(f"{', '.join(wrong)}: not an option of the ridge model")
            config, model = {"model": "ridge"}, None
        arch = {k: v for k, v in {"model": model, "global_query": global_query, "fusion": fusion}.items() if v}
        if arch:
            config["arch"] = arch
        if epochs is not None:
            config["epochs"] = epochs
        if no_hpcl:
            config["w_hpcl"] = 0.0
        if no_rank:
            config["w_rank"] = 0.0
        if select_final not in ("refit", "folds"):
            raise HLError(f"unknown select_final {select_final!r} (refit, folds)")
        if select_final != "refit" and not select:
            raise HLError("select_final: only with select")
        if preset is not None:
            from hl.heads.presets import preset_names

            if preset not in preset_names():
                raise HLError(f"unknown preset {preset!r} ({', '.join(preset_names())})")
        spec = TrainSpec(preset=preset, visual=tuple(visual) if visual is not None else None,
                         audio=tuple(audio) if audio is not None else None, val_fraction=val_fraction,
                         track_test=track_test, head=config, select={"final": select_final} if select else None,
                         **common)
        train = train_heads
    with _console(progress) as console:
        metrics = train(spec, out, scheduler=scheduler, workers=workers,
                        progress=console.train_progress() if console else None,
                        notice=console.say if console else None)
    seed_mean = None
    if len(metrics) and metrics["seed"].nunique() > 1:
        from hl.pipelines.stages.evaluate import evaluate_run_seed_mean

        seed_mean = evaluate_run_seed_mean(out)
    return Trained(Path(out), metrics, summary_table(metrics) if len(metrics) else metrics, seed_mean)


# -- hl eval ---------------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    metrics: Any  # pandas DataFrame: one row per (domain, seed)
    summary: Any  # pandas DataFrame: per domain mean +- std over seeds, and the MEAN row
    about: str  # what was evaluated, in one line
    protocol: str = "final"
    heading: str | None = None  # set for the best-epoch protocol: it must be shown with the figures
    best_epochs: dict = field(default_factory=dict)  # best-epoch protocol: {domain: {seed: epoch}}
    # final protocol, several seeds: one row per domain, the metric of the mean of the seeds' scores (the model
    # `hl highlights` scores with); None otherwise
    seed_mean: Any = None


def evaluate(run: str | Path, *, tvsum_protocol: str = "umt", protocol: str = "final") -> Evaluation:
    """``hl eval``: the run's test metrics per (domain, seed) and their summary. ``protocol="best-epoch"``: the
    papers' protocol (the best tracked epoch, picked on the test videos: optimistic), for runs trained with
    ``track_test``."""
    from hl.common import HLError
    from hl.pipelines.run import Run
    from hl.pipelines.stages.evaluate import (
        BEST_EPOCH_HEADING,
        evaluate_best_epoch,
        evaluate_scores,
        evaluate_seed_mean,
        run_test_scores,
        summary_table,
    )

    if protocol not in ("final", "best-epoch"):
        raise HLError(f"unknown protocol {protocol!r} (final, best-epoch)")
    r = Run.open(run)
    best = protocol == "best-epoch"
    if best and r.kind != "segment":
        raise HLError(f"{run}: --protocol best-epoch needs a segment run trained with --track-test")
    seed_mean = None
    if best:
        metrics = evaluate_best_epoch(r, tvsum_protocol=tvsum_protocol)
    else:
        scores, labels = run_test_scores(r)  # read once for both readings
        metrics = evaluate_scores(scores, labels, tvsum_protocol)
        if scores["seed"].nunique() > 1:
            seed_mean = evaluate_seed_mean(scores, labels, tvsum_protocol)
    c = r.config
    if r.kind == "pixel":
        about = f"pixel-level head on {c.visual[0]} maps, {c.head['fit']['epochs']} epochs (fixed)"
    elif c.head.get("model") == "ridge":
        about = (f"features: visual {'+'.join(c.visual)}, audio {'+'.join(c.audio) or '-'};"
                 f" model ridge, alpha chosen by validation on the training videos")
    elif (c.training.get("spec") or {}).get("select") is not None:
        about = (f"features: visual {'+'.join(c.visual)}, audio {'+'.join(c.audio) or '-'};"
                 f" model {c.head['arch']['model']}, setting and epochs chosen per domain by validation on the "
                 f"training videos ({run}/selection/)")
    else:
        preset = (c.training.get("spec") or {}).get("preset")
        about = (f"features: visual {'+'.join(c.visual)}, audio {'+'.join(c.audio) or '-'};"
                 f" model {c.head['arch']['model']}{f' (preset {preset})' if preset else ''}, {c.head['epochs']} epochs"
                 f"{' tracked, best picked on the test videos' if best else ''}")
    epochs = {}
    if best:
        epochs = {d: {int(s): int(e) for s, e in zip(g["seed"], g["epoch"])} for d, g in metrics.groupby("domain")}
    return Evaluation(metrics, summary_table(metrics) if len(metrics) else metrics, about, protocol,
                      BEST_EPOCH_HEADING if best else None, epochs, seed_mean)


# -- hl predict ------------------------------------------------------------------------------------------
@dataclass
class Predictions:
    scores: dict  # {video_id: {"scores": [S], "segments": [S, 2], "heads": ..., (pixel runs) "maps", "times"}}
    json: Path | None = None  # {video_id: [score per segment]}
    parquet: Path | None = None  # video_id, segment, start, end, score, heads
    jsonl: Path | None = None  # qid/vid/pred_saliency_scores per 2-s clip (moment-DETR / lighthouse evaluators)
    maps: list[Path] = field(default_factory=list)  # pixel runs with maps=: one picture per video


def predict(run: str | Path, cache: str | Path, out: str | Path | None = None, *,
            videos: Sequence[str] | None = None, maps: str | Path | None = None) -> Predictions:
    """``hl predict``: score the cached videos (or `videos`) with the run. With `out` (PRED.json) the scores are
    also written as PRED.json, PRED.parquet and PRED.jsonl; `maps` (pixel-level runs): a folder for one picture
    per video of its maps over the frames."""
    from hl.common import HLError
    from hl.pipelines.run import Run
    from hl.pipelines.stages.jsonl_export import write_jsonl
    from hl.pipelines.stages.predict import predict as predict_run
    from hl.pipelines.stages.predict import write_predictions

    r = Run.open(run)
    if maps is not None and r.kind != "pixel":
        raise HLError(f"{run}: --maps needs a pixel-level run (hl train-head --head pixel)")
    preds = predict_run(r, cache, list(videos) if videos else None)
    result = Predictions(preds)
    if out is not None:
        result.json, result.parquet = write_predictions(preds, out)
        result.jsonl = write_jsonl(preds, Path(out).with_suffix(".jsonl"))
    if maps is not None:
        from hl.pipelines.stages.predict_pixel import write_map_pictures

        result.maps = list(write_map_pictures(preds, r, cache, maps))
    return result


# -- hl highlights ---------------------------------------------------------------------------------------
def highlights(
    videos: str | Path,
    run: str | Path,
    out: str | Path = Path("highlights"),
    *,
    top: int = 5,
    min_gap: float = 4.0,
    relative: float | None = DEFAULT_RELATIVE,
    min_score: float | None = None,
    clips: bool = False,
    reencode: bool = False,
    cache: str | Path | None = None,
    extractors: Sequence[str] | None = None,
    segment_seconds: float | None = None,
    segments=None,
    weights_dir: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    device: str = "cpu",
    precision: str = "auto",
    batch_size: int = 8,
    random_weights: bool = False,
    retry_failed: bool = False,
    progress: bool | str = False,
    on_video=None,
):
    """``hl highlights``: the best moments of new videos with a trained run, written to `out` (highlights.json,
    highlights.csv, report.html, clips with `clips`). A moment below the video's floor is not listed (`relative`:
    median + r x (best - median) of its scores; an absolute `min_score` instead). The extraction options are
    ``hl extract``'s; they default to the run's and may not differ from what its features were made with.
    Returns the :class:`~hl.pipelines.highlights.HighlightsResult`."""
    from hl.extract.extractors import RunSettings
    from hl.pipelines.highlights import find_highlights

    with _console(progress) as console:
        stage: list = []

        def scored(video_id: str, done: int, total: int) -> None:
            if console is not None:
                if not stage:
                    stage.append(console.stage("highlights", total, "video"))
                stage[0].item(video_id, "ok", "scored")
            if on_video is not None:
                on_video(video_id, done, total)

        return find_highlights(
            videos, run, out, cache=cache, top=top, min_gap=min_gap, relative=relative, min_score=min_score,
            clips=clips, clip_mode="reencode" if reencode else "copy", weights_dir=weights_dir, scheduler=scheduler,
            workers=workers, settings=RunSettings(device=device, batch_size=batch_size),
            extractors=list(extractors) if extractors is not None else None, segment_seconds=segment_seconds,
            precision=precision, allow_random_weights=random_weights, retry_failed=retry_failed,
            manifest=_manifest(segments), reporter=console.extract_reporter() if console else None,
            notice=console.notice if console else None, on_video=scored,
        )
