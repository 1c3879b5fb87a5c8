"""A run directory: what ``hl train-head`` leaves behind, and the one module that reads and writes it.

    RUN/config.json                     the run's :class:`RunConfig`: its kind, the features it reads and where
                                        they came from, its segment windows, manifest, domains, seeds and heads,
                                        and (segment runs) training["recipe"]: what set the head, and why
    RUN/models/<domain>/seed<k>.pt      one head per (domain, seed); domain "joint" for a joint model
    RUN/scores.parquet                  test-split scores: video_id, domain, seed, segment, score
    RUN/tasks.parquet                   one row per training task (videos, epochs, seconds, ...)
    RUN/metrics.parquet                 one row per (domain, seed): the dataset's protocol metric
    RUN/history/<domain>-seed<k>.json   per-epoch training record
    RUN/selection/<domain>[-seed<k>].json  what validation on the training videos chose, and why
    RUN/epoch_scores.parquet            with ``--track-test`` only: the test scores after every epoch (video_id,
                                        domain, seed, epoch, segment, score), for the papers' best-epoch
                                        protocol; never read by the default evaluation

A run records the *origin* of its features (:class:`hl.pipelines.cache.FeatureOrigin`: the extractor's settings
and the weights' sha256). Whatever scores new videos with it reads their origin from the cache and refuses
features made otherwise (:meth:`Run.check_features`), so a run trained on ImageNet I3D never scores Charades
I3D features, nor features imported from a release, without a word.

    run = Run.open("RUN")
    run.kind, run.config.inputs, run.segment_seconds
    which, files = run.heads_for("BK")     # the heads that score a video of domain BK
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hl.common import HLError, is_plain_name, write_text

from .cache import FeatureOrigin, FeatureStore

FORMAT = 2
JOINT = "joint"  # the domain name of a model trained over all domains
KINDS = ("segment", "pixel")
SCORE_COLUMNS = ["video_id", "domain", "seed", "segment", "score"]
EPOCH_SCORE_COLUMNS = ["video_id", "domain", "seed", "epoch", "segment", "score"]


@dataclass
class RunConfig:
    """What a run is. ``visual`` + ``audio`` are the extractors it reads at inference (a pixel run: its encoder
    maps as ``visual``); ``features`` holds, for each of them, the origins of its training features (most
    common first); ``segments`` how its segment windows were made (``{"rule": "fixed" | "manifest" |
    "imported", "seconds": window length}``)."""

    kind: str
    visual: list[str]
    audio: list[str]
    features: dict[str, list[FeatureOrigin]]
    segments: dict
    cache: str
    manifest: str
    domains: list[str]
    seeds: list[int]
    joint: bool
    head: dict  # the head's settings: HeadConfig fields (segment) or decoder, labels and fit settings (pixel)
    training: dict = field(default_factory=dict)  # the request as given, and facts such as missing videos
    format: int = FORMAT

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise HLError(f"unknown run kind {self.kind!r} ({', '.join(KINDS)})")

    @property
    def inputs(self) -> list[str]:
        """The extractors the run reads for every video it scores, without repeats."""
        return list(dict.fromkeys([*self.visual, *self.audio]))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["features"] = {k: [o.to_dict() for o in v] for k, v in self.features.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        d = dict(d)
        d["features"] = {k: [FeatureOrigin.from_dict(o) for o in v] for k, v in d["features"].items()}
        return cls(**d)


class Run:
    """One run directory (see the module docstring)."""

    def __init__(self, path: str | Path, config: RunConfig):
        self.path = Path(path)
        self.config = config

    # -- opening and creating --------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: RunConfig) -> Run:
        run = cls(path, config)
        run.path.mkdir(parents=True, exist_ok=True)
        write_text(run.path / "config.json", json.dumps(config.to_dict(), indent=2, default=_plain))
        return run

    @classmethod
    def open(cls, path: str | Path) -> Run:
        path = Path(path)
        cfg = path / "config.json"
        if not cfg.is_file():
            raise HLError(f"{path}: not a run directory (no config.json); train one with `hl train-head`")
        try:
            data = json.loads(cfg.read_text())
        except (OSError, ValueError) as exc:
            raise HLError(f"{cfg}: unreadable ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise HLError(f"{path}: a run written by an older hl (config format {data.get('format', 1)}, "
                          f"this hl reads {FORMAT}); train it again with `hl train-head`")
        try:
            return cls(path, RunConfig.from_dict(data))
        except (KeyError, TypeError, ValueError) as exc:
            raise HLError(f"{cfg}: not a valid run config ({exc})") from None

    # -- what it is ------------------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def segment_seconds(self) -> float:
        return float(self.config.segments["seconds"])

    @property
    def manifest_path(self) -> Path:
        return Path(self.config.manifest)

    # -- heads -----------------------------------------------------------------------------------------------
    def model_path(self, domain: str, seed: int) -> Path:
        return self.path / "models" / _folder(self.path, domain) / f"seed{int(seed)}.pt"

    @property
    def models(self) -> dict[str, list[Path]]:
        """{domain: the head files of its seeds}, for the domains that have any."""
        base = self.path / "models"
        found = {d.name: sorted(d.glob("seed*.pt")) for d in sorted(base.glob("*")) if d.is_dir()}
        return {d: files for d, files in found.items() if files}

    def heads_for(self, domain: str | None) -> tuple[str, list[Path]]:
        """The heads that score a video of `domain`: its own when the run has them, else the joint model, else
        every head of the run. Returns (which, files)."""
        models = self.models
        if not models:
            raise HLError(f"{self.path}: the run has no trained models")
        if domain is not None and domain in models:
            return domain, models[domain]
        if JOINT in models:
            return JOINT, models[JOINT]
        return "all", [p for files in models.values() for p in files]

    def video_domains(self, store: FeatureStore | None = None) -> dict[str, str]:
        """The domain of each video the run's manifest (or the cache's) knows."""
        out: dict[str, str] = {}
        for p in [self.manifest_path, store.manifest_path if store is not None else None]:
            if p is not None and p.is_file():
                m = pd.read_parquet(p, columns=["video_id", "domain"]).drop_duplicates("video_id")
                out.update({v: d for v, d in zip(m["video_id"], m["domain"]) if v not in out})
        return out

    # -- features --------------------------------------------------------------------------------------------
    def check_features(self, store: FeatureStore, video_id: str) -> None:
        """Raise a one-line HLError unless every input of `video_id` in `store` was made the way the run's
        training features were (same extractor settings, same weights)."""
        for name in self.config.inputs:
            accepted = self.config.features.get(name) or []
            try:
                origin = store.origin(video_id, name)
            except KeyError:
                raise HLError(f"{store.root}: video {video_id!r} lacks cached {name} features") from None
            if not any(_same(origin, a) for a in accepted):
                raise HLError(
                    f"{store.root}: video {video_id!r}: its {origin.describe()} features differ from the "
                    f"run's training features, {accepted[0].describe() if accepted else 'unrecorded'}; "
                    f"extract them with the run's settings and weights (`hl highlights` does) or use another run")

    # -- outputs ---------------------------------------------------------------------------------------------
    def write_history(self, domain: str, seed: int, history: list[dict]) -> None:
        write_text(self.path / "history" / f"{_folder(self.path, domain)}-seed{int(seed)}.json",
                   json.dumps(history, default=_plain))

    def write_selection(self, domain: str, seed: int | None, record: dict) -> None:
        """What validation on the training videos chose for this head (``seed`` None: for every seed of the
        domain), and why."""
        write_text(self._selection_path(domain, seed), json.dumps(record, indent=1, default=_plain))

    def selection(self, domain: str, seed: int | None = None) -> dict:
        return json.loads(self._selection_path(domain, seed).read_text())

    def _selection_path(self, domain: str, seed: int | None) -> Path:
        return self.path / "selection" / (f"{domain}.json" if seed is None else f"{domain}-seed{int(seed)}.json")

    def history(self, domain: str, seed: int) -> list[dict]:
        return json.loads((self.path / "history" / f"{_folder(self.path, domain)}-seed{int(seed)}.json").read_text())

    def write_results(self, results: Sequence[dict]) -> pd.DataFrame:
        """RUN/scores.parquet (every test segment's score) and RUN/tasks.parquet (one row per task, all but its
        scores) from the training tasks' results; returns the scores."""
        scores = pd.DataFrame([r for res in results for r in res["scores"]], columns=SCORE_COLUMNS)
        scores = scores.sort_values(["domain", "seed", "video_id", "segment"]).reset_index(drop=True)
        scores.to_parquet(self.path / "scores.parquet", index=False)
        tracked = [r for res in results for r in res.get("epoch_scores", [])]
        if tracked:
            epochs = pd.DataFrame(tracked, columns=EPOCH_SCORE_COLUMNS)
            epochs.sort_values(["domain", "seed", "epoch", "video_id", "segment"]).to_parquet(
                self.path / "epoch_scores.parquet", index=False)
        tasks = pd.DataFrame([{k: v for k, v in r.items() if k not in ("scores", "epoch_scores")} for r in results])
        tasks.sort_values(["domain", "seed"]).to_parquet(self.path / "tasks.parquet", index=False)
        return scores

    def write_metrics(self, metrics: pd.DataFrame) -> None:
        metrics.to_parquet(self.path / "metrics.parquet", index=False)

    def scores(self) -> pd.DataFrame:
        path = self.path / "scores.parquet"
        if not path.exists():
            raise HLError(f"{self.path}: no scores.parquet (the run has no test videos?)")
        return pd.read_parquet(path)

    def epoch_scores(self) -> pd.DataFrame:
        """The test scores after every epoch (runs trained with ``track_test``); a one-line HLError otherwise."""
        path = self.path / "epoch_scores.parquet"
        if not path.exists():
            raise HLError(f"{self.path}: no per-epoch test scores: the best-epoch protocol needs a run trained "
                          f"with `hl train-head --track-test`")
        return pd.read_parquet(path)

    def metrics(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "metrics.parquet")

    def tasks(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "tasks.parquet")


def _same(a: FeatureOrigin, b: FeatureOrigin) -> bool:
    return (a.config_hash, a.weights_hash) == (b.config_hash, b.weights_hash)


def _plain(value: Any) -> Any:
    """JSON for the numpy scalars and paths a config may hold."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# -- what a run records about its training features --------------------------------------------------------------
def feature_origins(store: FeatureStore, video_ids: Iterable[str], names: Sequence[str]
                    ) -> dict[str, list[FeatureOrigin]]:
    """For each extractor, the distinct origins of the training videos' features, the most common first."""
    out: dict[str, list[FeatureOrigin]] = {}
    ids = list(video_ids)
    for name in dict.fromkeys(names):
        counts: Counter = Counter()
        first: dict[tuple[str, str], FeatureOrigin] = {}
        for vid in ids:
            if not store.has(vid, name):
                continue
            o = store.origin(vid, name)
            key = (o.config_hash, o.weights_hash)
            counts[key] += 1
            first.setdefault(key, o)
        out[name] = [first[k] for k, _ in counts.most_common()]
    return out


def segment_windows(store: FeatureStore, video_ids: Iterable[str], name: str, manifest: pd.DataFrame) -> dict:
    """How the training videos' segments were made: fixed windows of one length (``{"rule": "fixed",
    "seconds": L}``), else the manifest's windows (``"manifest"``) or a release's (``"imported"``) with their
    median length as ``seconds`` (what new videos get)."""
    rules = {store.segment_rule(v, name) for v in video_ids if store.has(v, name)}
    if len(rules) == 1 and all(r and r.startswith("fixed:") for r in rules):
        return {"rule": "fixed", "seconds": float(rules.pop().split(":", 1)[1])}
    lengths = (manifest["end"] - manifest["start"]).to_numpy(dtype=np.float64)
    seconds = float(np.round(np.median(lengths), 3)) if len(lengths) else 2.0
    return {"rule": "imported" if rules == {None} else "manifest", "seconds": seconds}


def _folder(run: Path, domain: str) -> str:
    """`domain` as the name of a file or folder inside the run; a one-line HLError for a name that would lead
    elsewhere (a path separator, NUL, ``..``)."""
    if not is_plain_name(str(domain)):
        raise HLError(f"{run}: domain {domain!r} cannot name a folder of the run (no / or \\, not . or ..)")
    return str(domain)
