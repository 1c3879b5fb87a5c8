"""Model selection on the training videos only: validation folds carved from them, each candidate setting of a
small grid trained on the other folds, scored on the held-out fold after every ``epoch_step`` epochs with the
dataset's own metric (never the loss), the best (setting, epoch count) by the mean over folds.

    folds = video_folds(len(train), config.folds, config.seed)
    curve = fold_curve(train, folds[j], base, candidate, config, metric)     # one fold of one candidate
    chosen, record = choose(curves, base, config)                           # every candidate's curves

A domain's size decides the folds: with few training videos (up to ``few``) k folds of whole videos,
leave-one-video-out when it has k videos or fewer (TVSum: 4 training videos per domain, 4 folds of one video);
with more, one validation fold of a ``holdout`` share of them (YouTube Highlights: 19-70 videos per domain), as
one fold already holds enough videos and every fold costs a training run; none with a single training video
(the base setting is kept). The chosen head is then trained on all training videos for the chosen number of epochs
(``final="refit"``) or, per seed, one head per fold whose scores are averaged (``final="folds"``). Every candidate
runs the same learning-rate schedule (``max_epochs`` long) so an epoch count chosen part way through it is
reproduced exactly by the refit (:attr:`hl.heads.fit.HeadConfig.schedule_epochs`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .fit import HeadConfig, Video, fit, score
from .ridge import video_folds

# metric(held-out indices into the training list, their scores) -> the validation figure (higher is better)
Metric = Callable[[Sequence[int], Sequence[np.ndarray]], float]

# One change at a time from the base setting: width, learning rate, dropout, the loss weights.
GRID: tuple[dict, ...] = (
    {},
    {"arch.d_model": 128, "arch.ffn_dim": 256},
    {"lr": 1e-3},
    {"arch.dropout": 0.1},
    {"w_hpcl": 0.0, "w_rank": 0.0},
)
FINALS = ("refit", "folds")


@dataclass
class SelectionConfig:
    folds: int = 4  # validation folds of whole training videos (leave-one-video-out with fewer videos)
    few: int = 12  # more training videos than this: one held-out fold of `holdout` of them instead of k folds
    holdout: float = 0.25
    max_epochs: int = 40  # every candidate's schedule; epoch counts epoch_step, 2 * epoch_step, ... are compared
    epoch_step: int = 5
    grid: tuple[dict, ...] = GRID  # overrides of the base HeadConfig ("arch.x" for architecture fields)
    final: str = "refit"  # "refit" on all training videos, or "folds": the average of the fold heads
    seed: int = 0  # the seed of the selection's own training runs: one choice serves every seed

    def __post_init__(self) -> None:
        if self.final not in FINALS:
            raise ValueError(f"final must be one of {FINALS}, got {self.final!r}")
        if self.folds < 2 or self.epoch_step < 1 or self.max_epochs < self.epoch_step:
            raise ValueError("folds >= 2, epoch_step >= 1 and max_epochs >= epoch_step are required")
        self.grid = tuple(dict(g) for g in self.grid) or ({},)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["grid"] = [dict(g) for g in self.grid]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SelectionConfig:
        d = dict(d)
        d["grid"] = tuple(d.get("grid", GRID))
        return cls(**d)


def with_overrides(base: HeadConfig, overrides: dict) -> HeadConfig:
    """``base`` with ``overrides`` applied ("arch.d_model": 128 sets an architecture field)."""
    d = base.to_dict()
    for key, value in overrides.items():
        if key.startswith("arch."):
            d["arch"][key[5:]] = value
        else:
            d[key] = value
    return HeadConfig.from_dict(d)


def candidate_config(base: HeadConfig, overrides: dict, config: SelectionConfig) -> HeadConfig:
    """A candidate as the selection trains it: the full ``max_epochs`` schedule."""
    cfg = with_overrides(base, overrides)
    cfg.epochs, cfg.schedule_epochs, cfg.patience = config.max_epochs, config.max_epochs, None
    return cfg


def chosen_config(base: HeadConfig, overrides: dict, epochs: int, config: SelectionConfig) -> HeadConfig:
    """The chosen candidate stopped at the chosen epoch count of the same schedule."""
    cfg = candidate_config(base, overrides, config)
    cfg.epochs = int(epochs)
    return cfg


def folds_for(n: int, config: SelectionConfig) -> list[list[int]]:
    """The validation folds of ``n`` training videos (none with fewer than two; one above ``config.few``)."""
    if n < 2:
        return []
    if n <= config.few:
        return video_folds(n, config.folds, config.seed)
    k = min(n - 1, max(1, round(config.holdout * n)))
    return [sorted(np.random.default_rng(config.seed).permutation(n)[:k].tolist())]


def fold_curve(train: Sequence[Video], held_out: Sequence[int], base: HeadConfig, overrides: dict,
               config: SelectionConfig, metric: Metric) -> dict[int, float]:
    """Train one candidate on the training videos outside ``held_out``; {epoch count: metric on held_out}."""
    held = set(held_out)
    fit_on = [v for i, v in enumerate(train) if i not in held]
    val = [train[i] for i in held_out]
    curve: dict[int, float] = {}

    def watch(epoch: int, model) -> None:
        if (epoch + 1) % config.epoch_step == 0:
            curve[epoch + 1] = float(metric(list(held_out), score(model, val)))

    fit(fit_on, candidate_config(base, overrides, config), seed=config.seed, watch=watch)
    return curve


def choose(curves: dict[int, list[dict[int, float]]], base: HeadConfig, config: SelectionConfig
           ) -> tuple[dict, int, dict]:
    """From {candidate index: [its curve on each fold]}: (the chosen overrides, epochs, the record).
    The figure of (candidate, epochs) is the mean over folds; ties go to the earlier candidate and the
    fewer epochs."""
    table = []
    for c, fold_curves in sorted(curves.items()):
        epochs = sorted(set.intersection(*(set(fc) for fc in fold_curves)))
        for e in epochs:
            table.append({"candidate": c, "setting": config.grid[c], "epochs": e,
                          "validation": float(np.mean([fc[e] for fc in fold_curves]))})
    best = max(table, key=lambda r: (r["validation"], -r["candidate"], -r["epochs"]))
    base_rows = [r for r in table if r["candidate"] == 0]
    record = {
        "chosen": {"setting": best["setting"], "epochs": best["epochs"], "validation": best["validation"]},
        "reason": (f"highest mean validation figure (the dataset's metric) over {len(next(iter(curves.values())))} "
                   f"folds of the training videos, among {len(config.grid)} settings x "
                   f"{config.max_epochs // config.epoch_step} epoch counts"),
        "base_best": max(base_rows, key=lambda r: r["validation"]) if base_rows else None,
        "table": table,
    }
    return best["setting"], best["epochs"], record
