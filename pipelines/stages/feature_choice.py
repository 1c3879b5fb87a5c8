"""Which cached features a head trains on when the user names none: the papers' first, else what the cache holds.

The segment head prefers the features both papers use, I3D rgb + flow with PANN audio, then the other
pretrained backbones, down to the weight-free ones ``hl extract`` writes without weights. The pixel head prefers
TASED-Net's encoder maps and saliency (the paper's), then C3D's maps and the weight-free ``motion_saliency``.

A candidate is usable when it is cached for the videos in question; among the candidates, the first (most
preferred) one that covers as many of those videos as any candidate does is chosen, so a cache in which only
a few videos have the papers' features is not silently cut down to those few.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hl.common import HLError

from ..cache import FeatureStore

# I3D's flow streams, preferred first: TV-L1 (the checkpoints' own recipe), RAFT large (hl's recipe, then
# video_features'), RAFT small, the weight-free Horn-Schunck
FLOW_PREFERENCE = ("i3d_flow_tvl1", "i3d_flow_raft", "i3d_flow_raft_vf", "i3d_flow_raft_small", "i3d_flow")
# preferred first; a tuple of extractors is concatenated (visual) or stacked (audio) side by side
VISUAL_PREFERENCE: tuple[tuple[str, ...], ...] = (
    *(("i3d", flow) for flow in FLOW_PREFERENCE), ("i3d",), *((flow,) for flow in FLOW_PREFERENCE), ("c3d",),
    ("r3d34",), ("stats",))
AUDIO_PREFERENCE: tuple[tuple[str, ...], ...] = (("pann",), ("stats_audio",))
# the pixel head: the backbone whose encoder maps it decodes (-> extractor), and the saliency it labels with
PIXEL_MAPS_PREFERENCE: tuple[tuple[str, str], ...] = (("tased", "tased_maps"), ("c3d", "c3d_maps"))
SALIENCY_PREFERENCE: tuple[str, ...] = ("tased", "motion_saliency")


@dataclass(frozen=True)
class Choice:
    """What was chosen, and the line that tells the user."""

    names: tuple[str, ...]
    covered: int  # videos that have every chosen extractor cached
    of: int  # videos considered

    def describe(self, what: str) -> str:
        return f"{what} {'+'.join(self.names) or '-'} ({self.covered}/{self.of} videos)"


def coverage(store: FeatureStore, video_ids: Sequence[str]) -> dict[str, set[str]]:
    """extractor -> the ids among `video_ids` whose features it has cached (status ok, file present)."""
    idx = store.index()
    wanted = set(video_ids)
    ok = idx[(idx["status"] == "ok") & idx["video_id"].isin(wanted)]
    out: dict[str, set[str]] = {}
    for name, rows in ok.groupby("extractor"):
        out[str(name)] = {v for v in rows["video_id"] if store.has(v, str(name))}
    return out


def choose(store: FeatureStore, video_ids: Sequence[str], preference: Sequence[tuple[str, ...]],
           cover: dict[str, set[str]] | None = None) -> Choice | None:
    """The most preferred candidate among those covering the most of `video_ids`; None when none is cached."""
    cover = coverage(store, video_ids) if cover is None else cover
    counts = [len(set.intersection(*(cover.get(n, set()) for n in names))) for names in preference]
    best = max(counts, default=0)
    if best == 0:
        return None
    k = counts.index(best)
    return Choice(tuple(preference[k]), best, len(set(video_ids)))


def segment_features(store: FeatureStore, video_ids: Sequence[str]) -> tuple[Choice, Choice]:
    """(visual, audio) extractors for the segment head, from what the cache holds for `video_ids`. The audio
    choice may be empty (no audio features cached: the head trains on the visual stream)."""
    cover = coverage(store, video_ids)
    visual = choose(store, video_ids, VISUAL_PREFERENCE, cover)
    if visual is None:
        held = ", ".join(sorted(cover)) or "nothing"
        raise HLError(f"{store.root}: no visual features cached for the manifest's videos (it holds {held}); "
                      f"run hl extract, or name them with --visual")
    audio = choose(store, video_ids, AUDIO_PREFERENCE, cover) or Choice((), 0, len(set(video_ids)))
    return visual, audio


def pixel_sources(store: FeatureStore, video_ids: Sequence[str], need_saliency: bool = True, suffix: str = ""
                  ) -> tuple[str, str | None]:
    """(backbone, saliency extractor) for the pixel head from what the cache holds for `video_ids`: the first
    backbone whose maps (named with `suffix`, e.g. "_static") are cached (TASED before C3D, among equally covered
    ones), and the saliency whose maps cover those same videos (TASED-Net's before the weight-free motion
    saliency); None when no saliency is cached (or none is needed)."""
    cover = coverage(store, video_ids)
    options = [(b, m + suffix) for b, m in PIXEL_MAPS_PREFERENCE]
    maps = choose(store, video_ids, [(m,) for _, m in options], cover)
    if maps is None:
        wanted = " or ".join(m for _, m in options)
        raise HLError(f"{store.root}: no encoder maps cached for the manifest's videos ({wanted}); "
                      f"run hl extract --extractors {wanted.replace(' or ', ',')}")
    backbone = next(b for b, m in options if m == maps.names[0])
    if not need_saliency:
        return backbone, None
    with_maps = cover[maps.names[0]]
    for name in SALIENCY_PREFERENCE:
        if with_maps and with_maps <= cover.get(name, set()):
            return backbone, name
    sal = choose(store, sorted(with_maps), [(s,) for s in SALIENCY_PREFERENCE], cover)
    return backbone, sal.names[0] if sal is not None else None
