"""Score cached videos with a trained run: ``{video_id: [score per segment]}``.

Which heads score a video: those of its domain (from the manifest) when the run has them, else the joint
model, else every head of the run; the score is the mean over the chosen heads (seeds, and domains when
the domain is unknown). Predictions are written as JSON (``{video_id: [scores]}``) and as Parquet with
segment times.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hl.heads.fit import HeadModel, Video, load, score

from .cache import FeatureStore
from .train import JOINT, _stack


class PredictError(RuntimeError):
    """A problem with the request (no run, no features, ...): one line for the user."""


@dataclass
class Run:
    path: Path
    config: dict
    models: dict[str, list[Path]]  # domain -> one file per seed

    @property
    def visual(self) -> list[str]:
        return list(self.config["spec"]["visual"])

    @property
    def audio(self) -> list[str]:
        return list(self.config["spec"]["audio"])


def open_run(path: str | Path) -> Run:
    path = Path(path)
    cfg = path / "config.json"
    if not cfg.exists():
        raise PredictError(f"{path}: not a run directory (no config.json); train one with `hl train-head`")
    models = {d.name: sorted(d.glob("seed*.pt")) for d in sorted((path / "models").glob("*")) if d.is_dir()}
    models = {d: files for d, files in models.items() if files}
    if not models:
        raise PredictError(f"{path}: the run has no trained models")
    return Run(path, json.loads(cfg.read_text()), models)


_LOADED: dict[Path, HeadModel] = {}


def _model(path: Path) -> HeadModel:
    if path not in _LOADED:
        _LOADED[path] = load(path)
    return _LOADED[path]


def video_domains(run: Run, cache: FeatureStore) -> dict[str, str]:
    """Domain of each video known to the run's manifest or the cache's manifest."""
    out: dict[str, str] = {}
    for p in [Path(run.config.get("manifest", "")), cache.manifest_path]:
        if p.is_file():
            m = pd.read_parquet(p, columns=["video_id", "domain"]).drop_duplicates("video_id")
            out.update({v: d for v, d in zip(m["video_id"], m["domain"]) if v not in out})
    return out


def heads_for(run: Run, domain: str | None) -> tuple[str, list[Path]]:
    if domain is not None and domain in run.models:
        return domain, run.models[domain]
    if JOINT in run.models:
        return JOINT, run.models[JOINT]
    return "all", [p for files in run.models.values() for p in files]


def predict_scores(run: Run | str | Path, cache: str | Path, video_ids: list[str] | None = None
                   ) -> dict[str, dict]:
    """{video_id: {"scores": [S] float32, "segments": [S, 2] seconds, "heads": which heads scored it}}."""
    run = run if isinstance(run, Run) else open_run(run)
    store = FeatureStore(cache)
    ids = video_ids if video_ids is not None else store.videos(run.visual[0])
    if not ids:
        raise PredictError(f"{cache}: no cached {run.visual[0]} features to score")
    domains = video_domains(run, store)
    out = {}
    for vid in ids:
        v = _stack(store, vid, run.visual)
        if v is None:
            raise PredictError(f"{cache}: video {vid!r} lacks cached {'+'.join(run.visual)} features")
        a = _stack(store, vid, run.audio) if run.audio else None
        n = len(v[0])
        audio = None
        if a is not None and a[1].any():
            n = min(n, len(a[0]))
            audio = np.where(a[1][:n, None], a[0][:n], 0.0).astype(np.float32)
        which, heads = heads_for(run, domains.get(vid))
        video = Video(vid, v[0][:n], audio)
        scores = np.mean([score(_model(h), [video])[0] for h in heads], axis=0).astype(np.float32)
        out[vid] = {"scores": scores, "segments": store.segments(vid, run.visual[0])[:n], "heads": which}
    return out


def write_predictions(preds: dict[str, dict], out: str | Path) -> tuple[Path, Path]:
    """PRED.json ({video_id: [scores]}) and PRED.parquet (video_id, segment, start, end, score, heads)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({vid: [round(float(s), 6) for s in p["scores"]] for vid, p in preds.items()}))
    rows = [{"video_id": vid, "segment": i, "start": float(p["segments"][i, 0]), "end": float(p["segments"][i, 1]),
             "score": float(s), "heads": p["heads"]} for vid, p in preds.items() for i, s in enumerate(p["scores"])]
    table = out.with_suffix(".parquet")
    pd.DataFrame(rows).to_parquet(table, index=False)
    return out, table
