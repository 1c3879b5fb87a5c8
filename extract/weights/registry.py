"""The known public checkpoints: a view of the weights entries the backbone specs declare.

Each backbone module lists the public files that load into it (``BackboneSpec.weights``); this module gathers
them, in registration order, into ``REGISTRY`` (name -> :class:`WeightsEntry`).
"""
from __future__ import annotations

from ..backbones import WeightsEntry, get_spec, registered_specs


def _gather() -> dict[str, WeightsEntry]:
    """Every weights entry the registered backbones list, in registration order (a file that several backbones
    read, such as c3d.pickle for c3d and c3d_maps, once)."""
    out: dict[str, WeightsEntry] = {}
    for spec in registered_specs():
        for e in spec.weights:
            if out.setdefault(e.name, e) != e:
                raise ValueError(f"weights entry {e.name!r} is declared twice, differently (backbone {spec.name})")
    return out


# name -> entry, derived from the backbone specs (hl.extract.backbones); tests and plug-ins may add to it
REGISTRY: dict[str, WeightsEntry] = _gather()


def backbones_for(name: str) -> tuple[str, ...]:
    """The backbones that read registry entry `name`: the one it was made for first, then every registered
    backbone whose spec lists it (e.g. c3d_sports1m: c3d, c3d_maps, c3d_maps_static)."""
    e = REGISTRY[name]
    return tuple(dict.fromkeys([e.backbone, *(s.name for s in registered_specs() if e in s.weights)]))


def entries_for(backbone: str) -> list[WeightsEntry]:
    """The entries whose file loads into `backbone`: those its spec lists, in its order of preference, then any
    other registry entry made for it."""
    try:
        entries = list(get_spec(backbone).weights)
    except KeyError:
        entries = []
    entries += [e for e in REGISTRY.values() if e.backbone == backbone and e not in entries]
    return entries
