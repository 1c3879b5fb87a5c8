"""Backbones: readable model files that load the public checkpoints unchanged.

    create(name, weights=PATH_OR_NONE) -> eval-mode nn.Module
    get_spec(name) -> BackboneSpec (input spec, preprocessing, feature layer, checkpoint filter)
"""
from . import c3d, i3d, pann, r3d, static_clip, stats, tased  # noqa: F401  (each registers its specs)
from ._registry import BackboneSpec, create, get_spec, list_backbones, load_state_dict, register

__all__ = ["BackboneSpec", "create", "get_spec", "list_backbones", "load_state_dict", "register"]
