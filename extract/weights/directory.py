"""The weights directory: checkpoint files under their public names, its manifest, finding, listing and adding.

A *weights directory* holds checkpoint files under their public file names (``rgb_imagenet.pt``,
``c3d.pickle``, ...) plus ``weights.json``, a small manifest of the files that were downloaded or
added with their sha256. Files a user adds for a backbone without a registry entry live under
``user/<backbone>/``.
"""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hl.common import HLError, atomic_path, write_text

from ..backbones import list_backbones
from .checking import check_checkpoint, differences_error
from .hashing import file_sha256, remember_hash
from .registry import REGISTRY, entries_for

ENV_VAR = "HL_WEIGHTS_DIR"
MANIFEST = "weights.json"
USER_DIR = "user"


def weights_dir(override: str | os.PathLike | None = None) -> Path:
    """The weights directory: `override`, else $HL_WEIGHTS_DIR, else <user cache dir>/hl/weights."""
    if override is not None and str(override) != "":
        return Path(override).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_cache_path("hl") / "weights"


def read_manifest(root: Path) -> dict[str, dict[str, Any]]:
    """The files of the weights directory's manifest: name -> record ({} without a manifest)."""
    path = root / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        files = data["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not an object")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HLError(f"{path}: not a readable weights manifest ({e})") from None
    return files


def _write_manifest(root: Path, files: dict[str, dict[str, Any]]) -> None:
    write_text(root / MANIFEST, json.dumps({"version": 1, "files": files}, indent=2, sort_keys=True) + "\n")


def record(root: Path, name: str, backbone: str, rel: str, sha256: str, size: int, source: str) -> None:
    """Note a file that was added or downloaded in the manifest, with its sha256 and where it came from."""
    files = read_manifest(root)
    files[name] = {
        "backbone": backbone,
        "file": rel,
        "sha256": sha256,
        "size": size,
        "source": source,
        "added": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write_manifest(root, files)


def weights_files(backbone: str, weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """Every present checkpoint that fits `backbone`, in preference order: registry entries first (the
    backbone's own order), then the files a user added for it."""
    root = _root(weights_dir)
    found = [root / e.file_name for e in entries_for(backbone) if (root / e.file_name).is_file()]
    found += [root / rec["file"] for rec in read_manifest(root).values()
              if rec.get("backbone") == backbone and (root / rec["file"]).is_file()]
    return list(dict.fromkeys(found))


def find_weights(backbone: str, weights_dir: str | os.PathLike | None = None) -> Path | None:
    """The first present checkpoint for `backbone` (see :func:`weights_files`), or None."""
    return next(iter(weights_files(backbone, weights_dir)), None)


def list_weights(weights_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per registry entry, then per user-added file: where it is, whether it is there, its size."""
    root = _root(weights_dir)
    manifest = read_manifest(root)
    rows = []
    for entry in REGISTRY.values():
        rec = manifest.get(entry.name, {})
        rows.append(_row(root, entry.name, entry.backbone, entry.file_name, "registry", entry.url,
                         entry.sha256 or rec.get("sha256"), entry.size, entry.description, entry.license))
    for name, rec in manifest.items():
        if name not in REGISTRY:
            rows.append(_row(root, name, rec.get("backbone", ""), rec["file"], "user", rec.get("source", ""),
                             rec.get("sha256"), rec.get("size"), "added by the user"))
    return rows


def _row(root: Path, name: str, backbone: str, rel: str, source: str, url: str,
         sha256: str | None, size: int | None, description: str, license: str = "") -> dict[str, Any]:
    path = root / rel
    present = path.is_file()
    return {
        "name": name,
        "backbone": backbone,
        "file": rel,
        "path": str(path),
        "present": present,
        "status": "present" if present else "absent",
        "size": path.stat().st_size if present else size,
        "sha256": sha256,
        "source": source,
        "url": url,
        "description": description,
        "license": license,
    }


def _root(override: str | os.PathLike | None) -> Path:
    return weights_dir(override)


def _resolve_name(name_or_backbone: str, file: Path) -> tuple[str, str, str]:
    """(manifest name, backbone, path relative to the weights dir) for add_weights."""
    if name_or_backbone in REGISTRY:
        e = REGISTRY[name_or_backbone]
        return e.name, e.backbone, e.file_name
    backbone = name_or_backbone
    if backbone not in list_backbones():
        raise HLError(
            f"unknown weights name or backbone {backbone!r}; names: {', '.join(REGISTRY)}; "
            f"backbones: {', '.join(list_backbones())}"
        )
    # the official file dropped in under its own name counts as that entry
    for e in entries_for(backbone):
        if e.backbone == backbone and e.file_name == file.name:
            return e.name, e.backbone, e.file_name
    return f"{backbone}:{file.name}", backbone, f"{USER_DIR}/{backbone}/{file.name}"


def add_weights(name_or_backbone: str, file: str | os.PathLike,
                weights_dir: str | os.PathLike | None = None, copy: bool = True) -> Path:
    """Check `file` against the backbone and put it into the weights directory; returns its new path.

    `name_or_backbone` is a registry entry (the file is stored under the entry's file name) or a
    backbone (a file of the user's own, stored under user/<backbone>/). Any difference in parameter
    names or shapes raises HLError listing all of them. `copy=False` links instead of copying.
    """
    src = Path(file).expanduser()
    if not src.is_file():
        raise HLError(f"{src}: no such file")
    name, backbone, rel = _resolve_name(name_or_backbone, src)
    diffs = check_checkpoint(backbone, src)
    if diffs:
        raise differences_error(src, backbone, diffs)
    digest = file_sha256(src)
    entry = REGISTRY.get(name)
    if entry is not None and entry.sha256 is not None and digest != entry.sha256:
        raise HLError(
            f"{src} has sha256 {digest}, but {name} is the published file with sha256 {entry.sha256}; "
            f"add your own file under the backbone name {backbone!r} instead"
        )
    if entry is not None and entry.sha256_prefix is not None and not digest.startswith(entry.sha256_prefix):
        raise HLError(
            f"{src} has sha256 {digest}, but {name} is the published file whose sha256 starts with "
            f"{entry.sha256_prefix}; add your own file under the backbone name {backbone!r} instead"
        )
    root = _root(weights_dir)
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.resolve() != dest.resolve():
        _place(src, dest, copy)
    record(root, name, backbone, rel, digest, src.stat().st_size, str(src.resolve()))
    remember_hash(dest, digest)
    return dest


def _place(src: Path, dest: Path, copy: bool) -> None:
    """Copy (or symlink) src to dest through a temporary name and one rename."""
    with atomic_path(dest) as tmp:
        if copy:
            shutil.copyfile(src, tmp)
        else:
            try:
                os.symlink(src.resolve(), tmp)
            except OSError:  # no symlinks here (some Windows setups): fall back to a copy
                shutil.copyfile(src, tmp)
