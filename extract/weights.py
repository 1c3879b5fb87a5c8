"""Pretrained weights: the known public checkpoints, a weights directory, download, add and check.

A *weights directory* holds checkpoint files under their public file names (``rgb_imagenet.pt``,
``c3d.pickle``, ...) plus ``weights.json``, a small manifest of the files that were downloaded or
added with their sha256. Files a user adds for a backbone without a registry entry live under
``user/<backbone>/``.

    weights_dir()                       where the files live (override > $HL_WEIGHTS_DIR > user cache)
    find_weights("i3d")                 the first present checkpoint for a backbone, or None
    download_weights("c3d_sports1m")    resumable, verified download into the weights directory
    add_weights("c3d", "my/c3d.pickle") check names and shapes against the backbone, then copy in
    check_checkpoint("c3d", path)       the differences between a file and the backbone, [] if it fits
    weights_hash(path)                  sha256 of a weights file ("none" without weights), cached

Every check loads a file with the backbone's own checkpoint filter, exactly as ``create`` does, so a
file that passes here loads there.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hl.common import HLError, one_line

from .backbones import WeightsEntry, registered_specs

ENV_VAR = "HL_WEIGHTS_DIR"
MANIFEST = "weights.json"
USER_DIR = "user"
_CHUNK = 1 << 20  # 1 MiB: read/hash/stream granularity


def _registry() -> dict[str, WeightsEntry]:
    """Every weights entry the registered backbones list, in registration order (a file that several backbones
    read, such as c3d.pickle for c3d and c3d_maps, once)."""
    out: dict[str, WeightsEntry] = {}
    for spec in registered_specs():
        for e in spec.weights:
            if out.setdefault(e.name, e) != e:
                raise ValueError(f"weights entry {e.name!r} is declared twice, differently (backbone {spec.name})")
    return out


# name -> entry, derived from the backbone specs (hl.extract.backbones); tests and plug-ins may add to it
REGISTRY: dict[str, WeightsEntry] = _registry()


def backbones_for(name: str) -> tuple[str, ...]:
    """The backbones that read registry entry `name`: the one it was made for first, then every registered
    backbone whose spec lists it (e.g. c3d_sports1m: c3d, c3d_maps, c3d_maps_static)."""
    e = REGISTRY[name]
    return tuple(dict.fromkeys([e.backbone, *(s.name for s in registered_specs() if e in s.weights)]))


# ----------------------------------------------------------------------------------------------
# the weights directory and its manifest


def weights_dir(override: str | os.PathLike | None = None) -> Path:
    """The weights directory: `override`, else $HL_WEIGHTS_DIR, else <user cache dir>/hl/weights."""
    if override is not None and str(override) != "":
        return Path(override).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_cache_path("hl") / "weights"


def _read_manifest(root: Path) -> dict[str, dict[str, Any]]:
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
    root.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"version": 1, "files": files}, indent=2, sort_keys=True) + "\n"
    tmp = root / f".{MANIFEST}.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(text)
    os.replace(tmp, root / MANIFEST)


def _record(root: Path, name: str, backbone: str, rel: str, sha256: str, size: int, source: str) -> None:
    files = _read_manifest(root)
    files[name] = {
        "backbone": backbone,
        "file": rel,
        "sha256": sha256,
        "size": size,
        "source": source,
        "added": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write_manifest(root, files)


def _entries_for(backbone: str) -> list[WeightsEntry]:
    """The entries whose file loads into `backbone`: those its spec lists, in its order of preference, then any
    other registry entry made for it."""
    from .backbones import get_spec

    try:
        entries = list(get_spec(backbone).weights)
    except KeyError:
        entries = []
    entries += [e for e in REGISTRY.values() if e.backbone == backbone and e not in entries]
    return entries


def find_weights(backbone: str, weights_dir: str | os.PathLike | None = None) -> Path | None:
    """The first present checkpoint for `backbone`: registry entries first, then files a user added."""
    root = _root(weights_dir)
    for entry in _entries_for(backbone):
        path = root / entry.file_name
        if path.is_file():
            return path
    for rec in _read_manifest(root).values():
        if rec.get("backbone") == backbone and (root / rec["file"]).is_file():
            return root / rec["file"]
    return None


def list_weights(weights_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per registry entry, then per user-added file: where it is, whether it is there, its size."""
    root = _root(weights_dir)
    manifest = _read_manifest(root)
    rows = []
    for entry in REGISTRY.values():
        rec = manifest.get(entry.name, {})
        rows.append(_row(root, entry.name, entry.backbone, entry.file_name, "registry", entry.url,
                         entry.sha256 or rec.get("sha256"), entry.size, entry.description))
    for name, rec in manifest.items():
        if name not in REGISTRY:
            rows.append(_row(root, name, rec.get("backbone", ""), rec["file"], "user", rec.get("source", ""),
                             rec.get("sha256"), rec.get("size"), "added by the user"))
    return rows


def _row(root: Path, name: str, backbone: str, rel: str, source: str, url: str,
         sha256: str | None, size: int | None, description: str) -> dict[str, Any]:
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
    }


def _root(override: str | os.PathLike | None) -> Path:
    return weights_dir(override)


# ----------------------------------------------------------------------------------------------
# hashing


def file_sha256(path: str | os.PathLike, chunk_size: int = _CHUNK) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            h.update(block)
    return h.hexdigest()


_HASHES: dict[tuple[str, int, int], str] = {}
_HASHES_LOCK = threading.Lock()


def weights_hash(path: str | os.PathLike | None) -> str:
    """sha256 of a weights file, or "none" without weights (random initialisation).

    Cached per process by (path, size, mtime): a 300 MB checkpoint is hashed once, and a file
    replaced in place is hashed again.
    """
    if path is None:
        return "none"
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError as e:
        raise HLError(f"weights file {path}: {e.strerror or e}") from None
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _HASHES_LOCK:
        if key in _HASHES:
            return _HASHES[key]
    digest = file_sha256(p)
    with _HASHES_LOCK:
        _HASHES[key] = digest
    return digest


def _remember_hash(path: Path, digest: str) -> None:
    st = path.stat()
    with _HASHES_LOCK:
        _HASHES[(str(path.resolve()), st.st_size, st.st_mtime_ns)] = digest


# ----------------------------------------------------------------------------------------------
# checking a file against a backbone


def _spec(backbone: str):
    from .backbones import get_spec

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

    from .backbones import load_state_dict

    spec = _spec(backbone)
    path = Path(path)
    if not path.is_file():
        raise HLError(f"{path}: no such file")
    try:
        state = load_state_dict(spec, path)
    except Exception as e:  # unpickling runs arbitrary code paths: any failure means "not this format"
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
    """Names, shapes and dtypes of the backbone's parameters and buffers, built once per process.

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
        tensors = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
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


def _differences_error(path: Path, backbone: str, diffs: list[str]) -> HLError:
    lines = "\n".join(f"  {d}" for d in diffs)
    n = len(diffs)
    return HLError(f"{path} does not fit backbone {backbone} ({n} difference{'s' * (n != 1)}):\n{lines}")


# ----------------------------------------------------------------------------------------------
# adding a local file


def _resolve_name(name_or_backbone: str, file: Path) -> tuple[str, str, str]:
    """(manifest name, backbone, path relative to the weights dir) for add_weights."""
    if name_or_backbone in REGISTRY:
        e = REGISTRY[name_or_backbone]
        return e.name, e.backbone, e.file_name
    from .backbones import list_backbones

    backbone = name_or_backbone
    if backbone not in list_backbones():
        raise HLError(
            f"unknown weights name or backbone {backbone!r}; names: {', '.join(REGISTRY)}; "
            f"backbones: {', '.join(list_backbones())}"
        )
    # the official file dropped in under its own name counts as that entry
    for e in _entries_for(backbone):
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
        raise _differences_error(src, backbone, diffs)
    digest = file_sha256(src)
    entry = REGISTRY.get(name)
    if entry is not None and entry.sha256 is not None and digest != entry.sha256:
        raise HLError(
            f"{src} has sha256 {digest}, but {name} is the published file with sha256 {entry.sha256}; "
            f"add your own file under the backbone name {backbone!r} instead"
        )
    root = _root(weights_dir)
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.resolve() != dest.resolve():
        _place(src, dest, copy)
    _record(root, name, backbone, rel, digest, src.stat().st_size, str(src.resolve()))
    _remember_hash(dest, digest)
    return dest


def _place(src: Path, dest: Path, copy: bool) -> None:
    """Copy (or symlink) src to dest through a temporary name and one rename."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        if copy:
            shutil.copyfile(src, tmp)
        else:
            try:
                os.symlink(src.resolve(), tmp)
            except OSError:  # no symlinks here (some Windows setups): fall back to a copy
                shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()


# ----------------------------------------------------------------------------------------------
# downloading


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on lock_path for the block (released by the OS if the process dies)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent downloads of one file are the user's call
        yield
        return
    with open(lock_path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            target = lock_path.with_name(lock_path.name[1:].removesuffix(".lock"))
            raise HLError(f"another process is downloading {target}") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a Content-Range header like 'bytes 100-199/200' or 'bytes */200'."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", header or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _network_error(url: str, e: BaseException) -> HLError:
    if isinstance(e, urllib.error.HTTPError):
        return HLError(f"cannot download {url}: HTTP {e.code} {e.reason}")
    reason = e.reason if isinstance(e, urllib.error.URLError) else e
    text = str(reason).strip().splitlines()
    return HLError(f"cannot download {url}: {text[0] if text else type(reason).__name__}")


def _fetch(url: str, part: Path, timeout: float, progress: bool, label: str,
           expected_size: int | None) -> None:
    """Bring `part` up to the whole file at `url`, resuming from the bytes it already holds."""
    from tqdm import tqdm

    for _attempt in range(2):
        offset = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": "hl-weights/1", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and offset:  # nothing after `offset`: complete already, or a stale .part
                _, total = _content_range(e.headers.get("Content-Range"))
                e.close()
                if total == offset or (total is None and expected_size == offset):
                    return
                part.unlink()
                continue
            raise _network_error(url, e) from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise _network_error(url, e) from None

        with resp:
            if resp.status == 206:
                start, total = _content_range(resp.headers.get("Content-Range"))
                if start != offset:  # the server answered a different range: start over
                    part.unlink()
                    continue
                mode = "ab"
            elif resp.status == 200:  # no range support (or no .part yet): the whole file from byte 0
                offset, mode, total = 0, "wb", None
            else:
                raise HLError(f"cannot download {url}: unexpected HTTP status {resp.status}")
            length = resp.headers.get("Content-Length")
            length = int(length) if length is not None and length.isdigit() else None
            if total is None:
                total = offset + length if length is not None else expected_size
            received = 0
            with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                             unit_divisor=1024, desc=label, file=sys.stderr,
                                             disable=not progress, leave=False) as bar:
                try:
                    while block := resp.read(_CHUNK):
                        f.write(block)
                        received += len(block)
                        bar.update(len(block))
                except (OSError, ValueError) as e:  # reset, timeout, IncompleteRead, ...
                    f.flush()
                    raise HLError(
                        f"download of {url} stopped at {offset + received} bytes ({one_line(e)}); "
                        "run it again to resume"
                    ) from None
                f.flush()
                os.fsync(f.fileno())
            if length is not None and received < length:
                raise HLError(
                    f"download of {url} stopped at {offset + received} of {offset + length} bytes "
                    "(connection closed); run it again to resume"
                )
            return
    raise HLError(f"cannot download {url}: the server does not answer range requests consistently")


def download_weights(name: str, weights_dir: str | os.PathLike | None = None, url: str | None = None,
                     progress: bool = True, timeout: float = 30, force: bool = False) -> Path:
    """Download registry entry `name` into the weights directory and return the file's path.

    Resumable: bytes arrive in ``<file>.part``; a later call asks only for the rest (HTTP Range) and
    starts over if the server sends the whole file. The finished file is checked (size and sha256
    where the entry knows them, then names and shapes against the backbone) before one rename puts it
    in place; a file that fails is deleted. `url` replaces the entry's address (a mirror); an existing
    file is returned as is unless `force`.
    """
    if name not in REGISTRY:
        raise HLError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}")
    entry = REGISTRY[name]
    if url is None and not entry.direct:
        raise HLError(
            f"{name} is published at {entry.url}, a page that does not hand the file to scripts: "
            f"download {entry.file_name} in a browser, then add it with `hl weights add {name} FILE`"
        )
    src = url or entry.url
    if urllib.parse.urlsplit(src).scheme not in ("http", "https"):
        raise HLError(f"cannot download {src}: only http:// and https:// addresses are supported")
    root = _root(weights_dir)
    dest = root / entry.file_name
    if dest.is_file() and not force:
        return dest
    root.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")

    with _exclusive(dest.with_name(f".{dest.name}.lock")):
        _fetch(src, part, timeout, progress, entry.file_name, entry.size)
        size = part.stat().st_size
        digest = file_sha256(part)
        problem = None
        if entry.size is not None and size != entry.size:
            problem = f"it has {size} bytes, expected {entry.size}"
        elif entry.sha256 is not None and digest != entry.sha256:
            problem = f"its sha256 is {digest}, expected {entry.sha256}"
        else:
            try:
                diffs = check_checkpoint(entry.backbone, part)
            except HLError as e:
                diffs = [str(e)]
            if diffs:
                problem = "it does not fit backbone " + entry.backbone + ": " + "; ".join(diffs)
        if problem is not None:
            part.unlink()
            raise HLError(f"downloaded {entry.file_name} from {src} was removed: {problem}")
        os.replace(part, dest)
    _record(root, entry.name, entry.backbone, entry.file_name, digest, size, src)
    _remember_hash(dest, digest)
    return dest
