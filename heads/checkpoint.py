"""Head files: one convention for every trained head (co-occurrence and pixel-level alike).

A head file is one ``torch.save`` of a plain dict (tensors, numbers, strings, lists) with a ``format`` key,
written atomically. It is read with ``torch.load(weights_only=True)``, which refuses any file that would run
code while loading.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hl.common import HLError, atomic_path, one_line


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write `payload` (which names its ``format``) to `path` atomically."""
    if "format" not in payload:
        raise ValueError("a head file names its format")
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path, fmt: str | tuple[str, ...], what: str) -> dict[str, Any]:
    """The dict saved by :func:`save_checkpoint` with format `fmt` (or one of several); a one-line HLError for
    anything else (a missing or foreign file, or one that asks to run code on loading)."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise HLError(f"{path}: no such {what} file") from None
    except Exception as exc:  # noqa: BLE001 - whatever the unpickler says, the file is not a head of ours
        raise HLError(f"{path}: not a {what} file: it holds more than plain tensors and values "
                      f"({one_line(exc)})") from None
    accepted = (fmt,) if isinstance(fmt, str) else tuple(fmt)
    if not isinstance(payload, dict) or payload.get("format") not in accepted:
        raise HLError(f"{path}: not a {what} file (expected format {' or '.join(map(repr, accepted))})")
    return payload
