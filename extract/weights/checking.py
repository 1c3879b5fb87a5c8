"""Checking a checkpoint file against a backbone: every parameter name and shape, read the way ``create`` reads it.

Every check loads a file with the backbone's own checkpoint filter, exactly as ``create`` does, so a file that
passes here loads there.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hl.common import HLError, one_line

from ..backbones import get_spec, load_state_dict


def _spec(backbone: str):
    try:
        return get_spec(backbone)
    except KeyError as e:
        raise HLError(str(e.args[0]) if e.args else f"unknown backbone {backbone!r}") from None


def _shape(shape) -> str:
    return "[" + ",".join(str(int(s)) for s in shape) + "]"


def check_checkpoint(backbone: str, path: str | os.PathLike) -> list[str]:
    """Differences between the checkpoint at `path` and `backbone`; [] when every name and shape fits.

    The file is read with the backbone's checkpoint filter (as ``create`` reads it) and compared with
    ``get_spec(backbone).build().state_dict()``: "missing: NAME", "unexpected: NAME",
    "shape of NAME: file [a,b] != model [c,d]". A file that cannot be read raises HLError.
    """
    import torch

    spec = _spec(backbone)
    path = Path(path)
    if not path.is_file():
        raise HLError(f"{path}: no such file")
    try:
        state = load_state_dict(spec, path)
    except HLError:
        raise
    except Exception as e:  # any failure to read it means "not this format"
        raise HLError(f"{path}: cannot read it as a {backbone} checkpoint ({one_line(e)})") from None
    if not isinstance(state, Mapping):
        raise HLError(f"{path}: holds a {type(state).__name__}, not a {backbone} state dict")

    layout = model_layout(spec)
    metadata = getattr(state, "_metadata", None)
    diffs = []
    # classifier layers whose class count may differ (e.g. I3D Charades: 157 classes); the model adapts on load
    free_rows = set(spec.extra.get("class_count_keys", ()))
    for key, (want, _dtype) in layout.tensors.items():
        if key not in state:
            if not _filled_by_load(key, layout, metadata):
                diffs.append(f"missing: {key}")
            continue
        got = state[key]
        if not isinstance(got, torch.Tensor):
            diffs.append(f"not a tensor: {key} ({type(got).__name__})")
        elif key in free_rows and tuple(got.shape[1:]) == want[1:]:
            continue
        elif tuple(got.shape) != want:
            diffs.append(f"shape of {key}: file {_shape(got.shape)} != model {_shape(want)}")
    diffs += [f"unexpected: {key}" for key in state if key not in layout.tensors]
    return diffs


@dataclass(frozen=True)
class ModelLayout:
    tensors: dict[str, tuple[tuple[int, ...], Any]]  # state-dict name -> (shape, dtype)
    bn_counters: frozenset[str]  # the `num_batches_tracked` buffers of BatchNorm layers


_LAYOUTS: dict[tuple[str, int], ModelLayout] = {}


def model_layout(spec) -> ModelLayout:
    """Names, shapes and dtypes of the backbone's parameters and buffers, built once per process (without those
    of its parts, which have weights files of their own).

    The module is built on the meta device when it builds there (no memory, no init time), else on CPU.
    """
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    key = (spec.name, id(spec.build))
    if key not in _LAYOUTS:
        try:
            with torch.device("meta"):
                model = spec.build()
        except Exception:
            model = spec.build()
        # a part (BackboneSpec.parts) loads from its own file and is checked against its own backbone
        parts = tuple(f"{attr}." for attr, _ in spec.parts)
        tensors = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items() if not k.startswith(parts)}
        counters = frozenset(
            f"{name}.num_batches_tracked" if name else "num_batches_tracked"
            for name, m in model.named_modules() if isinstance(m, _BatchNorm) and m.track_running_stats
        )
        _LAYOUTS[key] = ModelLayout(tensors, counters & tensors.keys())
    return _LAYOUTS[key]


def _filled_by_load(key: str, layout: ModelLayout, metadata) -> bool:
    """True for a BatchNorm `num_batches_tracked` that load_state_dict fills in itself.

    Checkpoints saved before PyTorch 0.4.1 (pytorch-i3d's, c3d.pickle) lack these buffers; BatchNorm
    accepts that when the state dict carries no version metadata saying otherwise.
    """
    if key not in layout.bn_counters:
        return False
    prefix = key.rpartition(".")[0]
    version = (metadata or {}).get(prefix, {}).get("version")
    return version is None or version < 2


def differences_error(path: Path, backbone: str, diffs: list[str]) -> HLError:
    """The error for a file that does not fit: one line, then every difference on its own indented line."""
    lines = "\n".join(f"  {d}" for d in diffs)
    n = len(diffs)
    return HLError(f"{path} does not fit backbone {backbone} ({n} difference{'s' * (n != 1)}):\n{lines}")
