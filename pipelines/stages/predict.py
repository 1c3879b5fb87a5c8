"""Score cached videos with a trained run: ``{video_id: {"scores": [S], "segments": [S, 2], "heads": ...}}``.

    preds = predict("RUN", "CACHE")          # either kind of run (pixel runs: maps and times too)
    write_predictions(preds, "PRED.json")    # {video_id: [scores]} + PRED.parquet with segment times

Which heads score a video: those of its domain (from the manifest) when the run has them, else the joint model,
else every head of the run (:meth:`hl.pipelines.run.Run.heads_for`); the score is the mean over the chosen
heads. Every video's features are checked against the run's training features first
(:meth:`~hl.pipelines.run.Run.check_features`): other extractor settings or weights are refused.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from hl.common import HLError, atomic_path, write_text
from hl.heads.fit import Video
from hl.heads.segment_heads import load_head, score_head

from ..cache import FeatureStore
from ..run import Run

_LOADED: dict[tuple[Path, int], object] = {}


def _model(path: Path):
    key = (path, path.stat().st_mtime_ns)
    if key not in _LOADED:
        _LOADED[key] = load_head(path)
    return _LOADED[key]


def predict(run: Run | str | Path, cache: str | Path, video_ids: list[str] | None = None) -> dict[str, dict]:
    """Scores of every cached video (or `video_ids`) under `run`, for either kind of run."""
    run = run if isinstance(run, Run) else Run.open(run)
    if run.kind == "pixel":
        from .predict_pixel import predict_pixel

        return predict_pixel(run, cache, video_ids)
    return predict_segments(run, cache, video_ids)


def _video_ids(run: Run, store: FeatureStore, video_ids: list[str] | None) -> list[str]:
    first = run.config.inputs[0]
    ids = video_ids if video_ids is not None else store.videos(first)
    if not ids:
        raise HLError(f"{store.root}: no cached {first} features to score")
    return ids


def predict_segments(run: Run | str | Path, cache: str | Path, video_ids: list[str] | None = None
                     ) -> dict[str, dict]:
    """A segment (co-occurrence) run's scores: {video_id: {"scores": [S] float32, "segments": [S, 2] seconds,
    "heads": which heads scored it}}."""
    run = run if isinstance(run, Run) else Run.open(run)
    store = FeatureStore(cache)
    visual, audio = run.config.visual, run.config.audio
    domains = run.video_domains(store)
    out = {}
    for vid in _video_ids(run, store, video_ids):
        v = store.stack(vid, visual)
        if v is None:
            raise HLError(f"{cache}: video {vid!r} lacks cached {'+'.join(visual)} features")
        run.check_features(store, vid)
        a = store.stack(vid, audio) if audio else None
        n = len(v[0])
        audio_x = None
        if a is not None and a[1].any():
            n = min(n, len(a[0]))
            audio_x = np.where(a[1][:n, None], a[0][:n], 0.0).astype(np.float32)
        which, heads = run.heads_for(domains.get(vid))
        video = Video(vid, v[0][:n], audio_x)
        scores = np.mean([score_head(_model(h), [video])[0] for h in heads], axis=0).astype(np.float32)
        out[vid] = {"scores": scores, "segments": store.segments(vid, visual[0])[:n], "heads": which}
    return out


def write_predictions(preds: dict[str, dict], out: str | Path) -> tuple[Path, Path]:
    """PRED.json ({video_id: [scores]}) and PRED.parquet (video_id, segment, start, end, score, heads)."""
    out = Path(out)
    write_text(out, json.dumps({vid: [round(float(s), 6) for s in p["scores"]] for vid, p in preds.items()}))
    rows = [{"video_id": vid, "segment": i, "start": float(p["segments"][i, 0]), "end": float(p["segments"][i, 1]),
             "score": float(s), "heads": p["heads"]} for vid, p in preds.items() for i, s in enumerate(p["scores"])]
    table = out.with_suffix(".parquet")
    with atomic_path(table) as tmp:
        pd.DataFrame(rows, columns=["video_id", "segment", "start", "end", "score", "heads"]).to_parquet(
            tmp, index=False)
    return out, table
