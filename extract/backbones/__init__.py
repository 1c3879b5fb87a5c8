"""Backbones: readable model files that load the public checkpoints unchanged.

    create(name, weights=PATH_OR_NONE) -> eval-mode nn.Module
    get_spec(name) -> BackboneSpec (input spec, preprocessing, feature layer, checkpoint filter, weights files,
                      extractors)
"""
# Each module registers its specs on import; the order here is the order in which weights entries and
# extractors are listed (hl weights list, the extractors `hl extract` picks by default).
# isort: off
from . import i3d, raft, i3d_flow, c3d, r3d, pann, tased, static_clip, stats  # noqa: F401
# isort: on
from ._registry import (
    BackboneSpec,
    ExtractorDef,
    WeightsEntry,
    create,
    get_spec,
    list_backbones,
    load_state_dict,
    register,
    registered_specs,
)

__all__ = [
    "BackboneSpec", "ExtractorDef", "WeightsEntry", "create", "get_spec", "list_backbones", "load_state_dict",
    "register", "registered_specs",
]
