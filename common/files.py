"""Atomic writes: every file hl writes appears whole under its name, or not at all.

    with atomic_path(path) as tmp:      # write tmp any way you like (h5py, pyarrow, torch.save, PyAV, ...)
        h5py.File(tmp, "w") ...
    write_text(path, text)              # the same for a string / bytes

The temporary file lies beside the target (same file system, so the final rename is atomic) under the name
``.<name>.tmp-<host>-<pid>-<random><suffix>``: the target's suffix is kept so that writers that pick a format
from it (PIL, PyAV) still can, and :func:`clean_stale_temps` can tell which temporary files belong to a
process that is gone. A failure (or a kill) never leaves a half-written file under the target's name.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".tmp-"
_OWNER = re.compile(r"\.tmp-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}")


def temp_name(path: Path) -> Path:
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return path.with_name(f".{path.name}{TMP_MARK}{owner}{path.suffix}")


def is_plain_name(name: str) -> bool:
    """True for a string usable as one file or folder name, that cannot lead out of the folder it is joined
    to: not empty, no path separator, no NUL, not ``.`` or ``..``."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\x00")


def is_temp(path: str | os.PathLike) -> bool:
    """True for a temporary file of :func:`atomic_path` (skip these when listing a folder)."""
    name = Path(path).name
    return name.startswith(".") and TMP_MARK in name


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mkdir: bool = True) -> Iterator[Path]:
    """A temporary path to write; renamed onto `path` when the block ends without an exception, removed
    otherwise."""
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    return write_bytes(path, text.encode(encoding))


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this host still runs (a lock holder's liveness)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(root: str | os.PathLike, older_than_s: float = 3600.0) -> int:
    """Remove the temporary files under `root` left by killed writers: those of dead processes on this host,
    and any older than `older_than_s` (a writer on another host). Returns how many were removed."""
    root = Path(root)
    if not root.exists():
        return 0
    removed, host, now = 0, socket.gethostname(), time.time()
    for p in root.rglob(f"*{TMP_MARK}*"):
        if not is_temp(p):
            continue
        owner = _OWNER.search(p.name)
        dead = owner is not None and owner["host"] == host and not pid_alive(int(owner["pid"]))
        try:
            if dead or now - p.lstat().st_mtime > older_than_s:
                p.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
