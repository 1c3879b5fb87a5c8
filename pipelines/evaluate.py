"""Re-evaluate a run's stored test scores (e.g. under another TVSum protocol) without training again."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .cache import FeatureStore
from .predict import open_run
from .protocols import evaluate_scores
from .train import load_videos


def evaluate_run(run_dir: str | Path, tvsum_protocol: str = "umt") -> pd.DataFrame:
    """One row per (domain, seed) of the run's test scores under the dataset's protocol."""
    run = open_run(run_dir)
    scores_path = run.path / "scores.parquet"
    if not scores_path.exists():
        raise ValueError(f"{run.path}: no scores.parquet (the run has no test videos?)")
    scores = pd.read_parquet(scores_path)
    spec = run.config["spec"]
    manifest = pd.read_parquet(run.config["manifest"])
    manifest = manifest[manifest["video_id"].isin(scores["video_id"].unique())]
    videos, _ = load_videos(FeatureStore(spec["cache"]), manifest, spec["visual"], spec["audio"])
    return evaluate_scores(scores, videos, tvsum_protocol)
