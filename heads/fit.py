"""Training and scoring of the co-occurrence head on in-memory videos.

    model, history = fit(train_videos, HeadConfig(), seed=0)
    scores = score(model, test_videos)          # one [T] array of highlight scores per video
    save(model, model.config, "head.pt"); model = load("head.pt")

A :class:`Video` holds one video's per-segment features and labels (binary, or soft targets in [0, 1]). All
training videos are fed in padded, masked batches (``batch_size`` videos each, shuffled per epoch); the loss is
Eq. 6 of the paper, w_ce * CE + w_hpcl * HPCL + w_rank * rank. Training runs a fixed number of epochs; with
``val`` videos (carved out of the training videos by the caller) and ``patience`` set, it stops early on the
validation loss and keeps the best weights. The same seed gives the same weights.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from hl.common.seeding import seeded

from .checkpoint import load_checkpoint, save_checkpoint
from .cooccurrence import CooccurrenceConfig, CooccurrenceHead
from .losses import ce_loss, hpcl_loss, rank_loss

STANDARDIZE = ("video", "dataset", "none")
OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("cosine", "constant")
REDUCTIONS = ("mean", "sum")
FORMAT = "hl.heads.cooccurrence/1"


@dataclass
class Video:
    """One video: ``visual`` [T, Dv] and ``audio`` [Ta, Da] per-segment features (audio None when the video
    has no track; a Ta != T audio is cropped, or padded and masked), ``labels`` [T] in [0, 1] (None to score):
    binary, or soft targets, which the CE term takes as they are and HPCL and the rank term split at 0.5."""

    video_id: str
    visual: np.ndarray
    audio: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.visual = np.asarray(self.visual, dtype=np.float32)
        if self.visual.ndim != 2 or self.visual.shape[0] == 0:
            raise ValueError(f"{self.video_id}: visual must be a non-empty [T, D] array, got {self.visual.shape}")
        if not np.isfinite(self.visual).all():
            raise ValueError(f"{self.video_id}: visual features hold NaN or inf")
        if self.audio is not None:
            self.audio = np.asarray(self.audio, dtype=np.float32)
            if self.audio.ndim != 2:
                raise ValueError(f"{self.video_id}: audio must be a [T, D] array, got {self.audio.shape}")
            if not np.isfinite(self.audio).all():
                raise ValueError(f"{self.video_id}: audio features hold NaN or inf")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.float32).reshape(-1)
            if self.labels.shape[0] != self.num_segments:
                raise ValueError(
                    f"{self.video_id}: {self.labels.shape[0]} labels for {self.num_segments} visual segments"
                )
            if not ((self.labels >= 0.0) & (self.labels <= 1.0)).all():
                raise ValueError(f"{self.video_id}: labels must lie in [0, 1]")

    @property
    def num_segments(self) -> int:
        return int(self.visual.shape[0])


@dataclass
class HeadConfig:
    """Everything that defines a trained head: the architecture (``arch``) and the training recipe.

    standardize: "video" z-scores each video's features over its own segments (per dimension), "dataset"
    with the training set's mean and std (stored in the model), "none" leaves them.
    batch_size: videos per optimisation step. patience: early-stopping patience in epochs, used only when
    ``fit`` is given ``val`` videos (None: always the fixed ``epochs``).
    optimizer: "adamw" (decoupled weight decay) or "adam" (weight decay as an L2 term in the gradient).
    schedule: after ``warmup_epochs`` of linear warm-up, "cosine" decay to 0 or a "constant" learning rate.
    rank_reduction: the hard-pairs term over its pairs, "mean" or "sum" (Eq. 4 of the paper sums).
    Named settings (the paper's, among others) are in :mod:`hl.heads.presets`.
    """

    arch: CooccurrenceConfig = field(default_factory=CooccurrenceConfig)
    epochs: int = 30  # = optimisation steps when batch_size covers all training videos
    lr: float = 3e-4
    weight_decay: float = 1e-2
    batch_size: int = 4
    warmup_epochs: int = 5
    grad_clip: float = 1.0
    standardize: str = "video"
    w_ce: float = 1.0
    w_hpcl: float = 0.3
    w_rank: float = 0.1
    tau: float = 0.1
    rank_k: int = 3
    rank_margin: float = 0.7
    label_smoothing: float = 0.0
    patience: int | None = None
    schedule_epochs: int | None = None  # the learning-rate schedule's length (None: ``epochs``); longer than
    # ``epochs`` stops a run part way through its schedule, as the epoch chosen by validation was seen
    optimizer: str = "adamw"
    schedule: str = "cosine"
    rank_reduction: str = "mean"

    def __post_init__(self) -> None:
        if isinstance(self.arch, dict):
            self.arch = CooccurrenceConfig(**self.arch)
        if self.standardize not in STANDARDIZE:
            raise ValueError(f"standardize must be one of {STANDARDIZE}, got {self.standardize!r}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("rank_reduction", REDUCTIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if min(self.w_ce, self.w_hpcl, self.w_rank) < 0:
            raise ValueError("loss weights must be >= 0")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["arch"]["fusion_weights"] = list(d["arch"]["fusion_weights"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> HeadConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown HeadConfig fields: {sorted(unknown)}")
        return cls(**d)


class HeadModel(nn.Module):
    """A trained head: the network, its :class:`HeadConfig`, and the input standardisation statistics."""

    def __init__(self, config: HeadConfig, visual_dim: int, audio_dim: int) -> None:
        super().__init__()
        self.config = config
        self.net = CooccurrenceHead(visual_dim, audio_dim, config.arch)
        self.register_buffer("visual_mean", torch.zeros(visual_dim))
        self.register_buffer("visual_std", torch.ones(visual_dim))
        self.register_buffer("audio_mean", torch.zeros(audio_dim))
        self.register_buffer("audio_std", torch.ones(audio_dim))

    @property
    def visual_dim(self) -> int:
        return self.net.visual_dim

    @property
    def audio_dim(self) -> int:
        return self.net.audio_dim


@dataclass
class _Batch:
    visual: Tensor  # [B, T, Dv]
    audio: Tensor  # [B, T, Da]
    mask: Tensor  # [B, T]
    audio_mask: Tensor  # [B, T]
    labels: Tensor  # [B, T]


def _standardize(x: np.ndarray, mode: str, mean: Tensor, std: Tensor) -> np.ndarray:
    if mode == "video":
        return (x - x.mean(0)) / (x.std(0) + 1e-6)
    if mode == "dataset":
        return (x - mean.numpy()) / std.numpy()
    return x


def _collate(model: HeadModel, videos: Sequence[Video]) -> _Batch:
    """Pad ``videos`` to the longest into one batch, standardised as the model's config says."""
    mode = model.config.standardize
    t = max(v.num_segments for v in videos)
    b, dv, da = len(videos), model.visual_dim, model.audio_dim
    visual = np.zeros((b, t, dv), np.float32)
    audio = np.zeros((b, t, max(da, 0)), np.float32)
    mask = np.zeros((b, t), bool)
    audio_mask = np.zeros((b, t), bool)
    labels = np.zeros((b, t), np.float32)
    for i, v in enumerate(videos):
        n = v.num_segments
        if v.visual.shape[1] != dv:
            raise ValueError(f"{v.video_id}: visual dim {v.visual.shape[1]} != the model's {dv}")
        visual[i, :n] = _standardize(v.visual, mode, model.visual_mean, model.visual_std)
        mask[i, :n] = True
        if v.audio is not None and da > 0:
            if v.audio.shape[1] != da:
                raise ValueError(f"{v.video_id}: audio dim {v.audio.shape[1]} != the model's {da}")
            na = min(n, v.audio.shape[0])
            if na > 0:
                audio[i, :na] = _standardize(v.audio[:na], mode, model.audio_mean, model.audio_std)
                audio_mask[i, :na] = True
        if v.labels is not None:
            labels[i, :n] = v.labels
    return _Batch(*(torch.from_numpy(a) for a in (visual, audio, mask, audio_mask, labels)))


def _losses(model: HeadModel, batch: _Batch) -> dict[str, Tensor]:
    cfg = model.config
    out = model.net(batch.visual, batch.mask, batch.audio, batch.audio_mask)
    terms = {
        "ce": ce_loss(
            list(out.stream_logits.values()),
            batch.labels,
            list(out.stream_masks.values()),
            label_smoothing=cfg.label_smoothing,
        )
    }
    zero = terms["ce"].new_zeros(())
    terms["hpcl"] = hpcl_loss(out.embedding, batch.labels, batch.mask, cfg.tau) if cfg.w_hpcl else zero
    terms["rank"] = (
        rank_loss(out.embedding, batch.labels, batch.mask, cfg.rank_k, cfg.rank_margin, reduction=cfg.rank_reduction)
        if cfg.w_rank
        else zero
    )
    terms["loss"] = cfg.w_ce * terms["ce"] + cfg.w_hpcl * terms["hpcl"] + cfg.w_rank * terms["rank"]
    return terms


def _input_dims(videos: Sequence[Video]) -> tuple[int, int]:
    dv = {v.visual.shape[1] for v in videos}
    da = {v.audio.shape[1] for v in videos if v.audio is not None}
    if len(dv) != 1 or len(da) > 1:
        raise ValueError(f"videos disagree on feature sizes: visual {sorted(dv)}, audio {sorted(da)}")
    return dv.pop(), (da.pop() if da else 0)


def fit(
    train: Sequence[Video],
    config: HeadConfig | None = None,
    seed: int = 0,
    val: Sequence[Video] | None = None,
    progress: Callable[[int, dict], None] | None = None,
    watch: Callable[[int, HeadModel], None] | None = None,
) -> tuple[HeadModel, list[dict]]:
    """Train a head on ``train`` (labelled videos). Returns the model (in eval mode) and the history: one dict
    per epoch with the mean training ``loss``, ``ce``, ``hpcl``, ``rank`` (and ``val_loss`` with ``val``).
    ``progress(epoch, record)`` is called after every epoch, and ``watch(epoch, model)`` too, to score videos
    with the model as it stands (:func:`score` leaves the training untouched: same seed, same weights).
    Global RNG state is left untouched, and fits running in several threads of one process give the weights each
    gives alone (they take turns)."""
    config = config or HeadConfig()
    train = list(train)
    if not train:
        raise ValueError("fit needs at least one training video")
    for v in [*train, *(val or [])]:
        if v.labels is None:
            raise ValueError(f"{v.video_id}: training and validation videos need labels")
    visual_dim, audio_dim = _input_dims([*train, *(val or [])])
    if config.arch.uses_audio and audio_dim == 0:
        raise ValueError(f"model {config.arch.model!r} needs audio, but no training video has any")
    if not config.arch.uses_audio:
        audio_dim = 0
    with seeded(seed):  # one fit at a time per process: see hl.common.seeding
        rng = np.random.default_rng(seed)
        model = HeadModel(config, visual_dim, audio_dim)
        _fit_standardisation(model, train)
        history = _train(model, train, val, rng, progress, watch)
    model.eval()
    return model, history


def _fit_standardisation(model: HeadModel, train: Sequence[Video]) -> None:
    if model.config.standardize != "dataset":
        return
    v = np.concatenate([x.visual for x in train])
    model.visual_mean.copy_(torch.from_numpy(v.mean(0)))
    model.visual_std.copy_(torch.from_numpy(v.std(0) + 1e-6))
    audios = [x.audio for x in train if x.audio is not None]
    if model.audio_dim and audios:
        a = np.concatenate(audios)
        model.audio_mean.copy_(torch.from_numpy(a.mean(0)))
        model.audio_std.copy_(torch.from_numpy(a.std(0) + 1e-6))


def lr_schedule(cfg: HeadConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """step -> the factor of ``cfg.lr`` at that optimisation step: ``warmup_epochs`` of linear warm-up, then a
    cosine decay to 0 over the rest of ``max(epochs, schedule_epochs)``, or a constant rate."""
    total = max(cfg.epochs, cfg.schedule_epochs or 0) * steps_per_epoch
    warmup = cfg.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return factor


def _train(
    model: HeadModel,
    train: list[Video],
    val: Sequence[Video] | None,
    rng: np.random.Generator,
    progress: Callable[[int, dict], None] | None,
    watch: Callable[[int, HeadModel], None] | None = None,
) -> list[dict]:
    cfg = model.config
    adam = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(cfg, steps_per_epoch))
    single_batch = _collate(model, train) if cfg.batch_size >= len(train) else None
    val_batch = _collate(model, val) if val else None
    best = (math.inf, -1, None)  # (val loss, epoch, state dict)
    history: list[dict] = []
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(len(train))
        sums: dict[str, float] = {}
        for start in range(0, len(train), cfg.batch_size):
            if single_batch is not None:
                batch = single_batch
            else:
                batch = _collate(model, [train[i] for i in order[start : start + cfg.batch_size]])
            terms = _losses(model, batch)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
        record = {"epoch": epoch, **{k: v / steps_per_epoch for k, v in sums.items()}}
        if val_batch is not None:
            model.eval()
            with torch.no_grad():
                record["val_loss"] = float(_losses(model, val_batch)["loss"])
            if record["val_loss"] < best[0]:
                best = (record["val_loss"], epoch, copy.deepcopy(model.state_dict()))
        history.append(record)
        if progress is not None:
            progress(epoch, record)
        if watch is not None:
            watch(epoch, model)
        if val_batch is not None and cfg.patience is not None and epoch - best[1] >= cfg.patience:
            break
    if val_batch is not None and cfg.patience is not None and best[2] is not None:
        model.load_state_dict(best[2])
    return history


@torch.no_grad()
def score(model: HeadModel, videos: Sequence[Video], batch_size: int = 16) -> list[np.ndarray]:
    """Per-segment highlight scores in [0, 1] (sigmoid of the fused logits), one float32 [T] array per video.
    Labels, if present, are ignored."""
    was_training = model.training
    model.eval()
    scores: list[np.ndarray] = []
    videos = list(videos)
    try:
        for start in range(0, len(videos), batch_size):
            chunk = videos[start : start + batch_size]
            batch = _collate(model, chunk)
            logits = model.net(batch.visual, batch.mask, batch.audio, batch.audio_mask).logits
            probs = torch.sigmoid(logits).numpy()
            scores.extend(probs[i, : v.num_segments].copy() for i, v in enumerate(chunk))
    finally:
        model.train(was_training)
    return scores


def save(model: HeadModel, config: HeadConfig, path: str | Path) -> None:
    """Write ``model`` and its ``config`` to ``path`` (see :mod:`hl.heads.checkpoint`)."""
    save_checkpoint({
        "format": FORMAT,
        "config": config.to_dict(),
        "visual_dim": model.visual_dim,
        "audio_dim": model.audio_dim,
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }, path)


def load(path: str | Path) -> HeadModel:
    """Read a head written by :func:`save`; returned in eval mode."""
    payload = load_checkpoint(path, FORMAT, "co-occurrence head")
    config = HeadConfig.from_dict(payload["config"])
    model = HeadModel(config, payload["visual_dim"], payload["audio_dim"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model
