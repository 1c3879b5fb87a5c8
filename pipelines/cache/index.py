"""The cache's Parquet index: one small file per unit as workers write them, compacted into one file per extractor.

    CACHE/index/<extractor>/<key>.parquet                  one row, written by the worker that made the unit
    CACHE/index/<extractor>/compacted/<generation>.parquet  every row of that extractor, as of a compaction

A worker writes its unit's row alone (atomically, under its own name), so concurrent workers never share a
file. A million videos would leave millions of such files, so :func:`compact` folds them into one file per
extractor at the end of every extraction run (and on ``hl cache compact``):

1. under a lock file (``index/.compact.lock``: one compaction at a time; a dead holder's lock is taken over),
2. the unit files and the current compacted file are read, each unit file's inode noted *before* it is read,
3. the merged rows are written as a new generation (temporary name, then renamed: it appears whole),
4. the older generations are removed, then every unit file read in step 2 whose inode is unchanged (one that a
   run rewrote meanwhile stays, and wins over the compacted row).

Readers merge what they list, a unit's row taken from its own file first, else from the newest generation that
has it, so a reader sees each unit's row as before or after a compaction, never both and never none; a file that
vanishes between listing and reading (removed by a compaction) makes the reader list again. ``pq.read_table``
of the folder, without hl, reads one row per unit whenever no run is writing and no compaction is under way.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hl.common import HLError, atomic_path
from hl.common.files import pid_alive

COMPACTED = "compacted"
LOCK = ".compact.lock"


@dataclass(frozen=True)
class IndexFiles:
    """The index files of one extractor as listed at one moment."""

    compacted: list[Path]  # generations, oldest first
    units: list[Path]  # one row each


@dataclass
class CompactReport:
    extractors: int = 0
    unit_files: int = 0  # folded in and removed
    kept: int = 0  # rewritten by a run during the compaction: left in place
    rows: int = 0
    seconds: float = 0.0


def _parquet_files(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as it:
            return [Path(e.path) for e in it if e.name.endswith(".parquet") and not e.name.startswith(".")
                    and e.is_file()]
    except FileNotFoundError:
        return []


def extractor_folders(root: Path) -> list[Path]:
    base = root / "index"
    try:
        with os.scandir(base) as it:
            return sorted(Path(e.path) for e in it if e.is_dir() and not e.name.startswith("."))
    except FileNotFoundError:
        return []


def list_files(folder: Path) -> IndexFiles:
    return IndexFiles(sorted(_parquet_files(folder / COMPACTED)), _parquet_files(folder))


def _read_one(path: Path, schema: pa.Schema) -> pa.Table:
    # One small file: ParquetFile without threads costs a third of read_table's per-file overhead.
    table = pq.ParquetFile(path).read(use_threads=False)
    return table if table.schema.equals(schema) else table.select(schema.names).cast(schema)


def _read(paths: list[Path], schema: pa.Schema) -> pa.Table:
    if not paths:
        return schema.empty_table()
    return pa.concat_tables([_read_one(p, schema) for p in paths])


def _keys(table: pa.Table) -> pa.Array:
    return table["video_id"].combine_chunks()  # one extractor per folder: the video id names the unit


def _merge(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """The rows of `tables` (given lowest precedence first), each unit's row from the last table that has it."""
    tables = [t for t in tables if t.num_rows]
    if len(tables) <= 1:
        return tables[0] if tables else schema.empty_table()
    kept, seen = [], []
    for t in reversed(tables):
        keys = _keys(t)
        if seen:
            mask = pc.invert(pc.is_in(keys, value_set=pa.concat_arrays(seen)))
            t, keys = t.filter(mask), keys.filter(mask)
        kept.append(t)
        seen.append(keys)
    return pa.concat_tables(kept[::-1])


def read_folder(folder: Path, schema: pa.Schema, attempts: int = 20) -> pa.Table:
    """Every unit's row of one extractor folder (see the module docstring for the precedence)."""
    for _ in range(attempts):
        files = list_files(folder)
        try:
            tables = [pq.read_table(p, schema=schema) for p in files.compacted] + [_read(files.units, schema)]
        except FileNotFoundError:  # a compaction removed a file we listed: list again
            continue
        return _merge(tables, schema)
    raise HLError(f"{folder}: the index kept changing while being read ({attempts} attempts)")


def read_index(root: Path, schema: pa.Schema, extractor: str | None = None) -> pa.Table:
    folders = [root / "index" / extractor] if extractor else extractor_folders(root)
    tables = [read_folder(f, schema) for f in folders]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def read_row(folder: Path, key: str, video_id: str, schema: pa.Schema) -> dict | None:
    """One unit's row: its own file, else the newest compacted generation that holds it."""
    for _ in range(20):
        try:
            own = folder / f"{key}.parquet"
            if own.exists():
                return _read_one(own, schema).to_pylist()[0]
            for gen in sorted(_parquet_files(folder / COMPACTED), reverse=True):
                hit = pq.read_table(gen, schema=schema, filters=[("video_id", "=", video_id)])
                if hit.num_rows:
                    return hit.to_pylist()[-1]
            return None
        except FileNotFoundError:
            continue
    raise HLError(f"{folder}: the index kept changing while being read")


# -- compaction ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def compaction_lock(root: Path, stale_s: float = 3600.0) -> Iterator[None]:
    """Hold ``index/.compact.lock``; a one-line HLError when a live compaction holds it. A lock left by a dead
    process on this host, or older than `stale_s` (a holder on another host), is taken over."""
    path = root / "index" / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    me = f"{socket.gethostname()} {os.getpid()} {uuid.uuid4().hex[:8]}"
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                host, pid, *_ = path.read_text().split()
                age = time.time() - path.stat().st_mtime
            except (FileNotFoundError, ValueError):
                continue
            if (host == socket.gethostname() and not pid_alive(int(pid))) or age > stale_s:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            raise HLError(f"{root}: another compaction of the index is running ({host}, pid {pid})") from None
        with os.fdopen(fd, "w") as f:
            f.write(me)
        break
    else:
        raise HLError(f"{root}: cannot take the index's compaction lock {path}")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            if path.read_text() == me:
                path.unlink()


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def compact_folder(folder: Path, schema: pa.Schema, report: CompactReport) -> None:
    files = list_files(folder)
    if not files.units and len(files.compacted) <= 1:
        return
    seen = {p: _inode(p) for p in files.units}  # noted before reading: a later rewrite shows as a change
    units = [p for p, ino in seen.items() if ino is not None]
    tables = [pq.read_table(p, schema=schema) for p in files.compacted]
    for _ in range(3):
        try:
            tables.append(_read(units, schema))
            break
        except FileNotFoundError:  # another compaction cannot run (lock), but a user may delete files
            units = [p for p in units if p.exists()]
    merged = _merge(tables, schema)
    merged = merged.sort_by([("video_id", "ascending")])
    target = folder / COMPACTED / f"{time.time_ns():020d}-{uuid.uuid4().hex[:6]}.parquet"
    with atomic_path(target) as tmp:
        pq.write_table(merged, tmp, row_group_size=1 << 16)
    for old in files.compacted:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
    for p in units:
        if _inode(p) == seen[p]:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
            report.unit_files += 1
        else:
            report.kept += 1
    report.extractors += 1
    report.rows += merged.num_rows


def compact(root: Path, schema: pa.Schema, stale_lock_s: float = 3600.0) -> CompactReport:
    """Fold every extractor's unit files into one compacted file (see the module docstring)."""
    t0 = time.perf_counter()
    report = CompactReport()
    with compaction_lock(root, stale_lock_s):
        for folder in extractor_folders(root):
            compact_folder(folder, schema, report)
    report.seconds = time.perf_counter() - t0
    return report
