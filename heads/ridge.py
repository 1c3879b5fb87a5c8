"""A ridge-regression head: the simplest honest baseline, trained and evaluated like every other head.

    model, record = fit_ridge(train_videos, RidgeConfig(), seed=0, metric=my_metric)
    scores = model.score(test_videos)           # one [T] array per video, in (0, 1)

Inputs: each video's visual (and audio) features z-scored over its own segments, per dimension, then
concatenated. Target: the video's labels z-scored the same way (a video whose labels are all equal adds
nothing). The regularisation strength is chosen by validation on the training videos only: k folds of whole
videos (``folds``; leave-one-video-out when there are fewer videos), every ``alpha`` scored on the held-out
videos with ``metric`` (the dataset's protocol; mean AP of the labels by default), the best mean over folds
wins, and the model is refit on all training videos. One eigendecomposition per fit serves every alpha.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .checkpoint import load_checkpoint, save_checkpoint
from .fit import Video
from .metrics import average_precision

FORMAT = "hl.heads.ridge/1"
ALPHAS = (1e1, 1e2, 1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6)

# metric(held-out indices into the training list, their scores) -> the validation figure (higher is better)
Metric = Callable[[Sequence[int], Sequence[np.ndarray]], float]


@dataclass
class RidgeConfig:
    alphas: tuple[float, ...] = ALPHAS
    folds: int = 4  # validation folds of whole training videos (leave-one-video-out when fewer videos)
    audio: bool = True  # use the audio features when the videos have them

    def __post_init__(self) -> None:
        self.alphas = tuple(float(a) for a in self.alphas)
        if not self.alphas or min(self.alphas) <= 0:
            raise ValueError(f"alphas must be positive, got {self.alphas}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["alphas"] = list(d["alphas"])
        return {"model": "ridge", **d}

    @classmethod
    def from_dict(cls, d: dict) -> RidgeConfig:
        return cls(**{k: v for k, v in d.items() if k != "model"})


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / (x.std(0) + 1e-6)


class RidgeHead:
    """A fitted ridge head: ``weights`` over the z-scored [visual, audio] inputs, its ``alpha``."""

    def __init__(self, weights: np.ndarray, alpha: float, visual_dim: int, audio_dim: int):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.alpha = float(alpha)
        self.visual_dim = int(visual_dim)
        self.audio_dim = int(audio_dim)

    def inputs(self, video: Video) -> np.ndarray:
        return _inputs(video, self.visual_dim, self.audio_dim)

    def score(self, videos: Sequence[Video]) -> list[np.ndarray]:
        """Per-segment scores in (0, 1): the sigmoid of the regression output."""
        return [(1.0 / (1.0 + np.exp(-(self.inputs(v) @ self.weights)))).astype(np.float32) for v in videos]


def _inputs(video: Video, visual_dim: int, audio_dim: int) -> np.ndarray:
    if video.visual.shape[1] != visual_dim:
        raise ValueError(f"{video.video_id}: visual dim {video.visual.shape[1]} != the model's {visual_dim}")
    parts = [_zscore(video.visual.astype(np.float64))]
    if audio_dim:
        audio = np.zeros((video.num_segments, audio_dim))
        if video.audio is not None:
            if video.audio.shape[1] != audio_dim:
                raise ValueError(f"{video.video_id}: audio dim {video.audio.shape[1]} != the model's {audio_dim}")
            n = min(video.num_segments, len(video.audio))
            audio[:n] = _zscore(video.audio[:n].astype(np.float64))
        parts.append(audio)
    return np.concatenate(parts, axis=1)


def _target(video: Video) -> np.ndarray:
    y = video.labels.astype(np.float64)
    return (y - y.mean()) / y.std() if y.std() > 0 else np.zeros_like(y)


def ridge_path(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> dict[float, np.ndarray]:
    """Ridge weights for every alpha from one eigendecomposition: the dual form
    w = X^T U diag(1 / (l + alpha)) U^T y (X X^T = U diag(l) U^T) when there are fewer rows than columns,
    else the primal w = V diag(1 / (l + alpha)) V^T X^T y (X^T X = V diag(l) V^T)."""
    if len(x) < x.shape[1]:
        lam, u = np.linalg.eigh(x @ x.T)
        uty = u.T @ y
        return {a: x.T @ (u @ (uty / (lam + a))) for a in alphas}
    lam, v = np.linalg.eigh(x.T @ x)
    vtb = v.T @ (x.T @ y)
    return {a: v @ (vtb / (lam + a)) for a in alphas}


def video_folds(n: int, k: int, seed: int) -> list[list[int]]:
    """k folds of video indices 0..n-1 (shuffled with ``seed``; sizes differ by at most one); n folds of one
    video each when n <= k."""
    order = np.random.default_rng(seed).permutation(n)
    k = min(k, n)
    return [sorted(order[i::k].tolist()) for i in range(k)]


def mean_ap(held_out: Sequence[Video], scores: Sequence[np.ndarray]) -> float:
    return float(np.mean([average_precision(s, v.labels) for v, s in zip(held_out, scores)]))


def fit_ridge(train: Sequence[Video], config: RidgeConfig | None = None, seed: int = 0,
              metric: Metric | None = None) -> tuple[RidgeHead, dict]:
    """Fit on ``train``; alpha chosen by k-fold validation over its videos (see the module docstring).
    Returns the head and the record of the choice: ``{"alpha", "folds", "validation": {alpha: figure}}``."""
    config = config or RidgeConfig()
    train = list(train)
    if not train or any(v.labels is None for v in train):
        raise ValueError("fit_ridge needs labelled training videos")
    visual_dim = train[0].visual.shape[1]
    audio_dims = {v.audio.shape[1] for v in train if v.audio is not None}
    if len(audio_dims) > 1 or len({v.visual.shape[1] for v in train}) > 1:
        raise ValueError("videos disagree on feature sizes")
    audio_dim = audio_dims.pop() if audio_dims and config.audio else 0
    if metric is None:
        def metric(idx, scores):
            return mean_ap([train[i] for i in idx], scores)
    x = [_inputs(v, visual_dim, audio_dim) for v in train]
    y = [_target(v) for v in train]
    record: dict = {"alphas": list(config.alphas)}
    if len(train) < 2:
        alpha = float(np.median(config.alphas))
        record.update(alpha=alpha, folds=0, reason="one training video: no validation, the middle alpha")
    else:
        folds = video_folds(len(train), config.folds, seed)
        per_alpha: dict[float, list[float]] = {a: [] for a in config.alphas}
        for held in folds:
            keep = [i for i in range(len(train)) if i not in held]
            path = ridge_path(np.concatenate([x[i] for i in keep]), np.concatenate([y[i] for i in keep]),
                              config.alphas)
            for a, w in path.items():
                per_alpha[a].append(metric(held, [x[i] @ w for i in held]))
        validation = {a: float(np.mean(v)) for a, v in per_alpha.items()}
        alpha = max(config.alphas, key=lambda a: (validation[a], a))  # ties: the stronger regularisation
        record.update(alpha=alpha, folds=len(folds), validation={str(a): v for a, v in validation.items()},
                      reason=f"best mean validation figure over {len(folds)} folds of the training videos")
    w = ridge_path(np.concatenate(x), np.concatenate(y), [alpha])[alpha]
    return RidgeHead(w, alpha, visual_dim, audio_dim), record


def save_ridge(model: RidgeHead, config: RidgeConfig, path: str | Path) -> None:
    import torch

    save_checkpoint({"format": FORMAT, "config": config.to_dict(), "alpha": model.alpha,
                     "visual_dim": model.visual_dim, "audio_dim": model.audio_dim,
                     "weights": torch.from_numpy(model.weights)}, path)


def load_ridge(path: str | Path) -> RidgeHead:
    payload = load_checkpoint(path, FORMAT, "ridge head")
    return RidgeHead(payload["weights"].numpy(), payload["alpha"], payload["visual_dim"], payload["audio_dim"])
