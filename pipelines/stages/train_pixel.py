"""Stage 2b from the cache: train pixel-level distinction (PLD) decoders on frozen encoder maps.

For every target frame the cache holds (window extractors, 2 per second by default) a training example is
its encoder maps (``c3d_maps`` [512, 2, 7, 7] or ``tased_maps`` [1024, 4, 7, 12]), its saliency map
(``tased``, or the weight-free ``motion_saliency``) and the label of the manifest segment it lies in. The
pseudo label of the frame (:mod:`hl.heads.pixel_labels`) is computed on the full saliency map, then cropped to
what the decoder's output covers (C3D: the 112 x 112 centre crop of the frame resized to 128 x 171; TASED:
the whole frame) and resized to the output.

Ablations: ``"spatial"`` labels whole highlight frames 1 (no saliency needed); ``"temporal"`` reads the maps
of an encoder fed the target frame repeated (extractors ``c3d_maps_static`` / ``tased_maps_static``).

The run directory (:mod:`hl.pipelines.run`) has kind ``"pixel"``; it reads its encoder maps at inference (as
its ``visual`` feature) and records in ``head`` the decoder geometry, the labelling (saliency extractor,
normalisation, betas, ablation) and the optimisation settings.

A segment's score is the mean over its target frames of the frame's map mean. Training runs a fixed number
of epochs; every seed is reported.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hl.common import HLError
from hl.common.seeding import seeded
from hl.heads.pixel_decoder import PixelDistinction, PixelFitConfig, fit_decoder, save_pixel_head
from hl.heads.pixel_labels import (
    MIN_LABELLED_FRAMES,
    NORMS,
    beta_for,
    default_beta,
    fit_to_output,
    frame_segments,
    pseudo_labels,
)

from ..cache import FeatureStore
from ..cluster import run_tasks
from ..run import JOINT, Run, RunConfig, feature_origins, segment_windows
from .evaluate import VideoLabels, evaluate_scores, manifest_labels
from .feature_choice import pixel_sources
from .predict_pixel import score_video
from .train_segment import absolute_paths, domain_manifest, read_manifest_at, resolve_domains

log = logging.getLogger(__name__)

MAPS_EXTRACTORS = {"c3d": "c3d_maps", "tased": "tased_maps"}
STATIC = "_static"  # suffix of the extractors whose clip is the target frame repeated
SALIENCY_EXTRACTORS = ("tased", "motion_saliency")  # preferred first
ABLATIONS = ("spatial", "temporal")
TIME_TOLERANCE = 1e-3  # seconds: a saliency map belongs to the encoder map of the same target time


def map_view(backbone: str) -> tuple[float, float, float, float]:
    """(top, bottom, left, right), as fractions of the frame, of the region the decoder's output covers."""
    if backbone == "c3d":
        from hl.extract.backbones.c3d import CROP, RESIZE

        top, left = (RESIZE[0] - CROP) // 2, (RESIZE[1] - CROP) // 2
        return top / RESIZE[0], (top + CROP) / RESIZE[0], left / RESIZE[1], (left + CROP) / RESIZE[1]
    return 0.0, 1.0, 0.0, 1.0


@dataclass
class PixelTrainSpec:
    cache: str
    manifest: str | None = None  # default: CACHE/manifest.parquet
    backbone: str | None = None  # "c3d" (112 x 112 maps) or "tased" (224 x 384); None: chosen from the cache
    saliency: str | None = None  # cached saliency extractor; None: tased where cached, else motion_saliency
    beta: float | None = None  # None: the paper's per-domain thresholds (see hl.heads.pixel_labels)
    saliency_norm: str = "sum"  # "sum" | "max" | "none": what beta is compared with
    ablate: str | None = None  # None | "spatial" | "temporal"
    domains: tuple[str, ...] | None = None  # None: every domain in the manifest
    seeds: tuple[int, ...] = (0, 1, 2)
    joint: bool = False
    epochs: int = 30
    batch_size: int = 16
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    pos_weight: float | None = None
    device: str = "cpu"
    memory_gb: float = 4.0  # training maps up to this size stay in memory; beyond, they stream from the cache
    widths: tuple[int, ...] | None = None  # C3D decoder hidden widths (default 256, 128, 64)
    maps_extractor: str | None = None  # overrides the backbone's default (e.g. maps cached under another name)

    def __post_init__(self) -> None:
        if self.backbone is not None and self.backbone not in MAPS_EXTRACTORS:
            raise HLError(f"unknown PLD backbone {self.backbone!r}; choose {' or '.join(MAPS_EXTRACTORS)}")
        if self.saliency_norm not in NORMS:
            raise HLError(f"saliency norm must be one of {', '.join(NORMS)}, got {self.saliency_norm!r}")
        if self.ablate is not None and self.ablate not in ABLATIONS:
            raise HLError(f"unknown ablation {self.ablate!r}; choose {' or '.join(ABLATIONS)}")
        if self.beta is not None and not (np.isfinite(self.beta) and self.beta >= 0):
            raise HLError(f"beta must be a number >= 0, got {self.beta}")
        if not self.seeds:
            raise HLError("no seeds given")
        self.seeds = tuple(int(s) for s in self.seeds)
        self.domains = tuple(self.domains) if self.domains else None
        self.widths = tuple(int(w) for w in self.widths) if self.widths else None
        if self.widths and (self.backbone not in ("c3d", None) or len(self.widths) != 3):
            raise HLError("widths are three hidden widths of the C3D decoder")
        self.fit_config()  # validates the optimisation fields

    @property
    def maps_name(self) -> str:
        if self.maps_extractor:
            return self.maps_extractor
        if self.backbone is None:
            raise HLError("the pixel head's backbone is not chosen yet (see with_cached_sources)")
        return MAPS_EXTRACTORS[self.backbone] + (STATIC if self.ablate == "temporal" else "")

    @property
    def spatial(self) -> bool:
        return self.ablate != "spatial"

    @property
    def manifest_path(self) -> Path:
        return Path(self.manifest) if self.manifest else Path(self.cache) / "manifest.parquet"

    def fit_config(self) -> PixelFitConfig:
        try:
            return PixelFitConfig(epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer,
                                  lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                                  pos_weight=self.pos_weight)
        except ValueError as exc:
            raise HLError(str(exc)) from None


# -- reading the cache -------------------------------------------------------------------------------------------
@dataclass
class PixelVideo:
    """One manifest video as PLD sees it: which cached target frames it trains on and their labels."""

    labelled: VideoLabels  # segment labels and protocol scores, from the manifest
    segments: np.ndarray  # [S, 2] manifest segments, in segment order
    rows: np.ndarray  # [N] indices of the frames in the cached maps that lie in a segment (and have saliency)
    times: np.ndarray  # [N] their target times, seconds
    highlight: np.ndarray  # [N] bool: the frame's segment is a highlight
    labels: np.ndarray | None  # [N_highlight, H, W] uint8 pixel labels of the highlight frames (None: all 1)

    @property
    def video_id(self) -> str:
        return self.labelled.video_id


def choose_saliency(store: FeatureStore, video_ids: list[str], requested: str | None) -> str:
    """The saliency extractor to label with: `requested`, else tased when every video has it cached, else
    motion_saliency (with a warning: a weight-free stand-in)."""
    if requested:
        return requested
    for name in SALIENCY_EXTRACTORS:
        if video_ids and all(store.has(v, name) for v in video_ids):
            if name != SALIENCY_EXTRACTORS[0]:
                log.warning("no cached TASED-Net saliency for these videos: labelling with the weight-free %s", name)
            return name
    raise HLError(f"{store.root}: no cached saliency maps ({' or '.join(SALIENCY_EXTRACTORS)}) for the "
                     "training videos; extract one, or train the 'spatial' ablation")


def match_times(reference: np.ndarray, times: np.ndarray, tolerance: float = TIME_TOLERANCE
                ) -> tuple[np.ndarray, np.ndarray]:
    """For each time, the index of the nearest `reference` time (sorted) and whether it is within `tolerance`."""
    ref = np.asarray(reference, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if len(ref) == 0:
        return np.zeros(len(t), dtype=np.int64), np.zeros(len(t), dtype=bool)
    j = np.clip(np.searchsorted(ref, t), 0, len(ref) - 1)
    left = np.clip(j - 1, 0, None)
    j = np.where(np.abs(ref[left] - t) <= np.abs(ref[j] - t), left, j)
    return j.astype(np.int64), np.abs(ref[j] - t) <= tolerance


def load_pixel_video(store: FeatureStore, labelled: VideoLabels, segments: np.ndarray, maps_name: str,
                     saliency: str | None, beta: float, norm: str, view: tuple[float, float, float, float],
                     out_size: tuple[int, int]) -> PixelVideo:
    """Match one video's cached target frames with its saliency maps and manifest segments; build the pixel
    labels of its highlight frames (``saliency=None``: whole-frame labels, the w/o spatial ablation)."""
    vid = labelled.video_id
    times = store.array(vid, maps_name, "times")
    keep = frame_segments(times, segments) >= 0
    sal_rows = np.zeros(len(times), dtype=np.int64)
    if saliency is not None:
        sal_rows, matched = match_times(store.array(vid, saliency, "times"), times)
        keep &= matched
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        raise HLError(f"{vid}: no cached target frame of {maps_name!r} lies in a manifest segment"
                         + (f" and has a {saliency!r} map" if saliency else ""))
    highlight = labelled.labels[frame_segments(times[rows], segments)].astype(bool)
    labels = None
    if saliency is not None and highlight.any():
        wanted, inverse = np.unique(sal_rows[rows[highlight]], return_inverse=True)  # h5py reads increasing rows
        sal = store.maps(vid, saliency, wanted)[inverse]
        full = pseudo_labels(sal, np.ones(len(sal), dtype=bool), beta, norm, spatial=True)
        labels = fit_to_output(full, view, out_size)
    return PixelVideo(labelled, segments, rows, times[rows], highlight, labels)


def load_pixel_videos(store: FeatureStore, manifest: pd.DataFrame, spec: PixelTrainSpec, out_size: tuple[int, int],
                      splits: tuple[str, ...] = ("train",)) -> tuple[list[PixelVideo], list[str], str | None]:
    """PixelVideos of the manifest's videos in `splits` whose maps are cached. Returns (videos, missing ids,
    the saliency extractor used)."""
    labelled = [v for v in manifest_labels(manifest) if v.split in splits]
    spec, _ = with_cached_sources(spec, store, sorted({v.video_id for v in labelled}))
    present = [v for v in labelled if store.has(v.video_id, spec.maps_name)]
    missing = sorted({v.video_id for v in labelled} - {v.video_id for v in present})
    saliency = choose_saliency(store, [v.video_id for v in present], spec.saliency) \
        if spec.spatial and present else None
    if saliency is not None:
        lacking = [v.video_id for v in present if not store.has(v.video_id, saliency)]
        missing += lacking
        present = [v for v in present if v.video_id not in lacking]
    segs = {vid: rows.sort_values("segment")[["start", "end"]].to_numpy(np.float64)
            for vid, rows in manifest.groupby("video_id")}
    view = map_view(spec.backbone)
    size = saliency_size(store, present[0].video_id, saliency) if saliency is not None and present else None
    videos = [load_pixel_video(store, v, segs[v.video_id], spec.maps_name, saliency,
                               label_beta(spec, saliency, v.domain, size)[0], spec.saliency_norm, view, out_size)
              for v in present]
    return videos, missing, saliency


def saliency_size(store: FeatureStore, video_id: str, saliency: str) -> tuple[int, int]:
    """(H, W) of a video's cached saliency maps."""
    import h5py

    with h5py.File(store.feature_path(video_id, saliency), "r") as f:
        return tuple(int(x) for x in f["maps"].shape[1:3])


def label_beta(spec: PixelTrainSpec, saliency: str | None, domain: str, map_size: tuple[int, int] | None
               ) -> tuple[float, str]:
    """The threshold labelling `domain`'s frames and where it comes from: the spec's, else the default for the
    saliency at hand (:func:`hl.heads.pixel_labels.default_beta`)."""
    if spec.beta is not None:
        return beta_for(domain, spec.beta), "given"
    if saliency is None or map_size is None:
        return beta_for(domain), "paper"
    return default_beta(saliency, domain, map_size, spec.saliency_norm)


def check_labels(videos: list[PixelVideo], saliency: str | None, beta_rule: str) -> None:
    """Stop with an HLError when (nearly) every highlight frame's pseudo label is all zero: the threshold does
    not suit these saliency maps and the decoder would learn nothing but zeros."""
    labelled = [v.labels.reshape(len(v.labels), -1).any(axis=1) for v in videos if v.labels is not None]
    frames = sum(len(x) for x in labelled)
    if saliency is None or frames == 0:
        return
    share = sum(int(x.sum()) for x in labelled) / frames
    if share < MIN_LABELLED_FRAMES:
        raise HLError(f"pseudo labels are empty on {1 - share:.0%} of the {frames} highlight frames ({saliency} "
                      f"saliency, beta {beta_rule}): the threshold does not suit these maps; give a lower --beta "
                      "(or --saliency-norm max with a beta in [0, 1])")


def maps_shape(store: FeatureStore, video_id: str, maps_name: str) -> tuple[int, ...]:
    """Per-frame shape of a video's cached encoder maps, e.g. (512, 2, 7, 7)."""
    import h5py

    with h5py.File(store.feature_path(video_id, maps_name), "r") as f:
        return tuple(int(s) for s in f["features"].shape[1:])


# -- the frames of one training task ------------------------------------------------------------------------------
class FrameBank:
    """The training frames of one task: their encoder maps and pixel labels, served as shuffled batches.

    Maps stay in memory (float16, as cached) when they fit in `memory_bytes`; otherwise each epoch reads them
    from the cache a group of videos at a time (each group fits the budget, or is one video), shuffling inside
    a group. Pixel labels are kept for highlight frames only; other frames' labels are made per batch."""

    ZEROS, ONES = -1, -2  # label references of frames labelled 0 (or 1) everywhere

    def __init__(self, store: FeatureStore, videos: list[PixelVideo], maps_name: str, in_shape: tuple[int, ...],
                 out_size: tuple[int, int], batch_size: int, memory_bytes: float = 4 * 2**30):
        if not videos or sum(len(v.rows) for v in videos) == 0:
            raise HLError("no training frames")
        self.store, self.videos, self.maps_name = store, videos, maps_name
        self.in_shape, self.out_size, self.batch_size = tuple(in_shape), tuple(out_size), batch_size
        self.frame_bytes = int(np.prod(in_shape)) * 2
        self.memory_bytes = memory_bytes
        self.in_memory = self.frames * self.frame_bytes <= memory_bytes
        # per video, each frame's label: an index into self._pixel, or ZEROS / ONES
        self._refs, pixel, k = [], [], 0
        for v in videos:
            ref = np.full(len(v.rows), self.ZEROS, dtype=np.int64)
            if v.labels is None:
                ref[v.highlight] = self.ONES
            else:
                ref[v.highlight] = np.arange(k, k + len(v.labels))
                pixel.append(v.labels)
                k += len(v.labels)
            self._refs.append(ref)
        self._pixel = np.concatenate(pixel) if pixel else np.zeros((0, *self.out_size), dtype=np.uint8)
        self._maps = np.concatenate([self._read(v) for v in videos]) if self.in_memory else None

    @property
    def frames(self) -> int:
        return sum(len(v.rows) for v in self.videos)

    def _read(self, v: PixelVideo) -> np.ndarray:
        maps = self.store.features(v.video_id, self.maps_name)
        if tuple(maps.shape[1:]) != self.in_shape:
            raise HLError(f"{v.video_id}: cached {self.maps_name} maps are {tuple(maps.shape[1:])}, "
                             f"expected {self.in_shape}")
        return np.ascontiguousarray(maps[v.rows], dtype=np.float16)

    def labels(self, refs: np.ndarray) -> np.ndarray:
        """uint8 [B, H, W] pixel labels of the frames with label references `refs`."""
        out = np.zeros((len(refs), *self.out_size), dtype=np.uint8)
        out[refs == self.ONES] = 1
        stored = refs >= 0
        out[stored] = self._pixel[refs[stored]]
        return out

    def positive_rate(self) -> float:
        """Share of label-1 pixels over all training frames."""
        refs = np.concatenate(self._refs)
        ones = int(self._pixel.sum(dtype=np.int64)) + int((refs == self.ONES).sum()) * int(np.prod(self.out_size))
        return ones / (self.frames * float(np.prod(self.out_size)))

    def _chunks(self) -> Iterator[np.ndarray]:
        if self.in_memory:
            yield from (self._maps[i:i + 256] for i in range(0, len(self._maps), 256))
        else:
            yield from (self._read(v) for v in self.videos)

    def channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std of the training maps (over frames, time and space)."""
        c = self.in_shape[0]
        s1, s2, n = np.zeros(c), np.zeros(c), 0
        for maps in self._chunks():
            x = maps.astype(np.float64).reshape(len(maps), c, -1)
            s1 += x.sum(axis=(0, 2))
            s2 += (x**2).sum(axis=(0, 2))
            n += x.shape[0] * x.shape[2]
        mean = s1 / n
        std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
        return torch.from_numpy(mean).float(), torch.from_numpy(std).float()

    def _groups(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(maps, label refs) of the frames one shuffle runs over: everything, or a group of videos."""
        if self.in_memory:
            yield self._maps, np.concatenate(self._refs)
            return
        group: list[int] = []
        for i in rng.permutation(len(self.videos)).tolist():
            if group and (sum(len(self.videos[j].rows) for j in group) + len(self.videos[i].rows)) \
                    * self.frame_bytes > self.memory_bytes:
                yield np.concatenate([self._read(self.videos[j]) for j in group]), \
                    np.concatenate([self._refs[j] for j in group])
                group = []
            group.append(i)
        if group:
            yield np.concatenate([self._read(self.videos[j]) for j in group]), \
                np.concatenate([self._refs[j] for j in group])

    def batches(self, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of (maps [B, C, T, h, w] float16, labels [B, H, W] uint8) batches."""
        for maps, refs in self._groups(rng):
            order = rng.permutation(len(maps))
            for i in range(0, len(order), self.batch_size):
                idx = np.sort(order[i:i + self.batch_size])
                yield torch.from_numpy(maps[idx]), torch.from_numpy(self.labels(refs[idx]))


# -- training -----------------------------------------------------------------------------------------------------
def train_pixel_task(spec: PixelTrainSpec, run_dir: str, domain: str, seed: int, threads: int = 1) -> dict:
    """Train one decoder (one domain, or the joint model) for one seed; score its test videos. Runs on a worker."""
    torch.set_num_threads(max(1, threads))
    t0 = time.perf_counter()
    run = Run.open(run_dir)
    store = FeatureStore(spec.cache)
    manifest = domain_manifest(read_manifest_at(spec.manifest_path), domain, spec.domains)
    vids = sorted(manifest["video_id"].unique())
    first = next((v for v in vids if store.has(v, spec.maps_name)), None)
    if first is None:
        raise HLError(f"domain {domain!r}: no cached {spec.maps_name!r} maps for the manifest's videos")
    in_shape = maps_shape(store, first, spec.maps_name)
    out_size = PixelDistinction.output_size(spec.backbone, in_shape)
    train, _, saliency = load_pixel_videos(store, manifest, spec, out_size, splits=("train",))
    if not train:
        raise HLError(f"domain {domain!r}: no training videos with cached {spec.maps_name!r} maps")
    if spec.spatial and saliency is not None:
        size = saliency_size(store, train[0].video_id, saliency)
        beta, rule = label_beta(spec, saliency, domain, size)
        check_labels(train, saliency, f"{beta:.3g}, {rule}")
    fit = spec.fit_config()
    t_load = time.perf_counter()
    bank = FrameBank(store, train, spec.maps_name, in_shape, out_size, fit.batch_size,
                     memory_bytes=spec.memory_gb * 2**30)
    with seeded(seed):  # one training at a time per worker process (hl.common.seeding)
        model = PixelDistinction(spec.backbone, in_shape, spec.widths)  # initialised from the seed
        model.set_input_stats(*bank.channel_stats())
        model.set_label_prior(bank.positive_rate())
        load_s = time.perf_counter() - t_load
        history = fit_decoder(model, bank.batches, fit, seed=seed, device=spec.device)
    save_pixel_head(model.cpu(), run.model_path(domain, seed),
                    {"maps_extractor": spec.maps_name, "saliency": saliency, "spec": asdict(spec)})
    run.write_history(domain, seed, history)

    rows = []
    for v in manifest_labels(manifest):
        if v.split != "test" or not store.has(v.video_id, spec.maps_name):
            continue
        segs = manifest[manifest["video_id"] == v.video_id].sort_values("segment")[["start", "end"]]
        scores, _ = score_video(model, store, v.video_id, spec.maps_name, segs.to_numpy(np.float64),
                                device=spec.device)
        rows.extend({"video_id": v.video_id, "domain": v.domain, "seed": seed, "segment": i, "score": float(s)}
                    for i, s in enumerate(scores))
    return {"domain": domain, "seed": seed, "scores": rows, "train_videos": len(train),
            "train_frames": bank.frames, "test_videos": len({r["video_id"] for r in rows}),
            "epochs": len(history), "in_memory": bank.in_memory, "load_s": load_s,
            "epoch_s": float(np.mean([h["seconds"] for h in history])), "seconds": time.perf_counter() - t0}


def with_cached_sources(spec: PixelTrainSpec, store: FeatureStore, video_ids: list[str]
                        ) -> tuple[PixelTrainSpec, dict | None]:
    """`spec` with the encoder maps (backbone) and saliency it leaves open (None) chosen from what the cache holds
    for `video_ids` (hl.pipelines.stages.feature_choice), and a record of the choice (None when both were named)."""
    open_backbone = spec.backbone is None and not spec.maps_extractor
    open_saliency = spec.saliency is None and spec.spatial
    if not open_backbone and not open_saliency:
        return spec, None
    suffix = STATIC if spec.ablate == "temporal" else ""
    backbone, saliency = pixel_sources(store, video_ids, need_saliency=open_saliency, suffix=suffix)
    changes: dict = {}
    if open_backbone:
        changes["backbone"] = backbone
    if open_saliency and saliency is not None:
        changes["saliency"] = saliency
    chosen = replace(spec, **changes)
    parts = ([f"maps {chosen.maps_name}"] if open_backbone else []) + \
        ([f"saliency {saliency}"] if open_saliency and saliency is not None else [])
    return chosen, {"from_cache": sorted(changes), **changes, "line": ", ".join(parts)}


def train_pixel(spec: PixelTrainSpec, run_dir: str | Path, scheduler: str | None = None, workers: int | None = None,
                progress: Callable[[dict, int, int], None] | None = None,
                notice: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Train a PLD decoder for every (domain, seed) and score the test videos; write the run directory.
    The encoder maps and saliency the spec leaves open are chosen from the cache (`notice` receives the line
    saying which). Tasks run on a local cluster of `workers` processes (default one: one copy of the maps in
    memory) or on `scheduler`. Returns the metrics table (also RUN/metrics.parquet)."""
    spec, run_dir = absolute_paths(spec), os.path.abspath(run_dir)  # workers may run in another directory
    manifest = read_manifest_at(spec.manifest_path)
    store = FeatureStore(spec.cache)
    domains = resolve_domains(manifest, spec.domains)
    manifest = manifest[manifest["domain"].isin(domains)]
    ids = sorted(manifest["video_id"].unique())
    spec, chosen = with_cached_sources(spec, store, ids)
    if chosen is not None and chosen["line"] and notice is not None:
        notice(f"pixel head inputs chosen from the cache: {chosen['line']}")
    missing = [v for v in ids if not store.has(v, spec.maps_name)]
    if len(missing) == len(ids):
        hint = " (the temporal ablation needs the *_static extractors)" if spec.ablate == "temporal" else ""
        raise HLError(f"{spec.cache}: no cached {spec.maps_name!r} maps for the manifest's videos{hint}")
    if missing:
        log.warning("%d manifest videos have no cached %s maps and are left out: %s", len(missing), spec.maps_name,
                    ", ".join(missing[:5]))
    present = [v for v in ids if v not in missing]
    saliency = choose_saliency(store, present, spec.saliency) if spec.spatial else None
    with_saliency = [v for v in present if saliency is not None and store.has(v, saliency)]
    size = saliency_size(store, with_saliency[0], saliency) if with_saliency else None
    if spec.spatial and spec.beta is None and saliency is not None and notice is not None:
        beta, rule = label_beta(spec, saliency, domains[0], size)
        notice(f"pseudo-label threshold: beta {beta:.3g} ({rule})")
    in_shape = maps_shape(store, present[0], spec.maps_name)
    out_size = PixelDistinction.output_size(spec.backbone, in_shape)
    trained_on = sorted(set(manifest.loc[manifest["split"] == "train", "video_id"]) & set(present))
    run = Run.create(run_dir, RunConfig(
        kind="pixel", visual=[spec.maps_name], audio=[],
        features=feature_origins(store, trained_on, [spec.maps_name]),
        segments=segment_windows(store, trained_on, spec.maps_name, manifest),
        cache=str(spec.cache), manifest=str(spec.manifest_path), domains=domains, seeds=list(spec.seeds),
        joint=spec.joint,
        head={"decoder": {"backbone": spec.backbone, "in_shape": list(in_shape), "out_size": list(out_size),
                          "view": list(map_view(spec.backbone)), "widths": list(spec.widths or ())},
              "labels": {"saliency": saliency, "saliency_norm": spec.saliency_norm, "ablate": spec.ablate,
                         "beta": {d: label_beta(spec, saliency, d, size)[0] for d in domains} if spec.spatial
                         else None,
                         "beta_rule": label_beta(spec, saliency, domains[0], size)[1] if spec.spatial else None},
              "fit": spec.fit_config().to_dict()},
        training={"spec": asdict(spec), "missing_videos": missing, "inputs_chosen": chosen},
    ))
    if spec.saliency is None and saliency is not None:
        spec = PixelTrainSpec(**{**asdict(spec), "saliency": saliency})  # every task labels with the same maps
    jobs = [(spec, str(run.path), d, s) for d in ([JOINT] if spec.joint else domains) for s in spec.seeds]
    results = run_tasks(train_pixel_task, jobs, scheduler, workers or 1, "hl-train-pixel", progress)
    scores = run.write_results(results)
    labels = manifest_labels(manifest[manifest["video_id"].isin(scores["video_id"].unique())])
    metrics = evaluate_scores(scores, labels)
    run.write_metrics(metrics)
    return metrics
