"""Downloading a registry entry: resumable (HTTP Range), verified (size, sha256, names and shapes) before one
rename puts it in place."""
from __future__ import annotations

import contextlib
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from hl.common import HLError, one_line

from . import directory
from .checking import check_checkpoint
from .hashing import CHUNK, file_md5, file_sha256, remember_hash
from .registry import REGISTRY


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
                    while block := resp.read(CHUNK):
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
    root = directory.weights_dir(weights_dir)
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
        elif entry.sha256_prefix is not None and not digest.startswith(entry.sha256_prefix):
            problem = f"its sha256 is {digest}, expected one starting with {entry.sha256_prefix}"
        elif entry.md5 is not None and (md5 := file_md5(part)) != entry.md5:
            problem = f"its md5 is {md5}, expected {entry.md5}"
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
    directory.record(root, entry.name, entry.backbone, entry.file_name, digest, size, src)
    remember_hash(dest, digest)
    return dest
