"""Hashing weights files: sha256 of a file, cached per process for the cache's weights hash."""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from hl.common import HLError

CHUNK = 1 << 20  # 1 MiB: read/hash/stream granularity


def _file_digest(path: str | os.PathLike, algorithm: str, chunk_size: int = CHUNK) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike, chunk_size: int = CHUNK) -> str:
    """Hex sha256 of a file, read in chunks."""
    return _file_digest(path, "sha256", chunk_size)


def file_md5(path: str | os.PathLike, chunk_size: int = CHUNK) -> str:
    """Hex md5 of a file (what some hosts, e.g. Zenodo, publish), read in chunks."""
    return _file_digest(path, "md5", chunk_size)


_HASHES: dict[tuple[str, int, int], str] = {}
_HASHES_LOCK = threading.Lock()


def weights_hash(path: str | os.PathLike | tuple[str | os.PathLike, ...] | None) -> str:
    """sha256 of a weights file, or "none" without weights (random initialisation). The weights of a backbone
    with parts (a tuple of files: its own, then its parts') hash to their sha256s joined by "+", in that order.

    Cached per process by (path, size, mtime): a 300 MB checkpoint is hashed once, and a file
    replaced in place is hashed again.
    """
    if path is None:
        return "none"
    if isinstance(path, (tuple, list)):
        return "+".join(weights_hash(p) for p in path)
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


def remember_hash(path: Path, digest: str) -> None:
    """Record the sha256 of a file just written, so that weights_hash does not read it again."""
    st = path.stat()
    with _HASHES_LOCK:
        _HASHES[(str(path.resolve()), st.st_size, st.st_mtime_ns)] = digest
