"""The cache at scale: index load, `hl cache info` and a re-run's planning at 10k, 100k and 1M units; feature files
one per unit against many units packed per HDF5 file.

    python benchmarks/cache_scale.py                       # 10k, 100k, 1M units (a few minutes, ~1 GB of disk)
    python benchmarks/cache_scale.py --units 10000         # one size
    python benchmarks/cache_scale.py --skip-packing

A simulated cache (no videos): 4 extractors (i3d, c3d, pann, stats), units = videos x 4, index rows as hl
writes them (real config and weights hashes, 0.1% failures) and an empty feature file per successful unit. The
index is as an extraction run leaves it: one compacted file per extractor, plus 1,000 unit files written since
(a run appending). At 10k units the same index is also measured as 10k unit files, before and after
`hl cache compact`. Each measurement runs in a fresh process; its wall time and peak RSS are reported:

  index table     FeatureStore(CACHE).index_table() -> pyarrow (the call, after the imports)
  index load      FeatureStore(CACHE).index() -> pandas, one Python string per cell
  cache info      the `hl cache info CACHE` command, process start to exit
  re-run plan     plan_videos(): every video of the cache, all 4 extractors, every unit found done (the
                  videos' content fingerprints are given: hashing each video's first and last MiB is I/O per
                  video, outside the index's cost)

Packing (``--pack-units``, default 2000 units of [30, 512] float32): reads per second of a whole unit's array in
a random order, one HDF5 file per unit against all units as datasets of one file, warm (page cache) and cold
(each file's pages dropped with posix_fadvise before the pass).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

EXTRACTORS = ("i3d", "c3d", "pann", "stats")
HL = str(Path(sys.executable).parent / "hl")


def plans_and_settings():
    from hl.extract.extractors import RunSettings
    from hl.pipelines.stages.extract import plan_extractors

    settings = RunSettings(precision="fp32")
    plans, _ = plan_extractors(list(EXTRACTORS), None, settings, allow_random=True)
    return plans, settings


def build(root: Path, units: int, recent: int = 1000, as_unit_files: bool = False) -> dict:
    """The simulated cache; returns what the measurements need. A cache this function built before (kept with
    ``--keep``) is reused."""
    if (root / "sim.json").exists() and not as_unit_files:
        spec = json.loads((root / "sim.json").read_text())
        if len(spec["ids"]) * len(EXTRACTORS) == units:
            return {**spec, "build_s": 0.0}
    from hl.extract.extractors import extractor_config
    from hl.pipelines.cache import INDEX_SCHEMA, config_hash, video_key
    from hl.pipelines.cache.index import COMPACTED

    plans, settings = plans_and_settings()
    videos = units // len(EXTRACTORS)
    ids = [f"domain{i % 50:02d}/video_{i:07d}" for i in range(videos)]
    keys = [video_key(v) for v in ids]
    fps = [f"{i:020x}" for i in range(videos)]
    t0 = time.perf_counter()
    for p in plans:
        name = p.extractor.name
        chash = config_hash(extractor_config(p.extractor, settings, "fixed:2"))
        failed = np.zeros(videos, bool)
        failed[::1000] = True
        files = [None if f else f"features/{name}/{k}.h5" for k, f in zip(keys, failed)]
        cols = {
            "video_id": ids, "source_path": [f"/data/videos/{v}.mp4" for v in ids], "fingerprint": fps,
            "extractor": [name] * videos, "config_hash": [chash] * videos, "weights_hash": [p.weights_hash] * videos,
            "status": np.where(failed, "failed", "ok").tolist(),
            "error": [f"/data/videos/{v}.mp4: not a decodable video" if f else None for v, f in zip(ids, failed)],
            "notes": [None] * videos, "segments": np.full(videos, 90, np.int32),
            "dim": np.full(videos, 1024, np.int32),
            "file": files, "duration_s": np.full(videos, 180.0), "decode_s": np.full(videos, 1.5),
            "model_s": np.full(videos, 3.0), "total_s": np.full(videos, 5.0),
            "created": ["2026-01-01T00:00:00+00:00"] * videos,
        }
        table = pa.Table.from_pydict(cols, schema=INDEX_SCHEMA)
        folder = root / "index" / name
        if as_unit_files:
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(videos):
                pq.write_table(table.slice(i, 1), folder / f"{keys[i]}.parquet")
        else:
            n_old = max(0, videos - recent // len(EXTRACTORS))
            (folder / COMPACTED).mkdir(parents=True, exist_ok=True)
            pq.write_table(table.slice(0, n_old).sort_by("video_id"),
                           folder / COMPACTED / "00000000000000000001-sim.parquet", row_group_size=1 << 16)
            for i in range(n_old, videos):  # written by a run since
                pq.write_table(table.slice(i, 1), folder / f"{keys[i]}.parquet")
        feat = root / "features" / name
        feat.mkdir(parents=True, exist_ok=True)
        for f in files:
            if f is not None:
                os.close(os.open(root / f, os.O_CREAT | os.O_WRONLY, 0o644))
    spec = {"root": str(root), "ids": ids, "fps": fps, "build_s": time.perf_counter() - t0}
    (root / "sim.json").write_text(json.dumps(spec))
    return spec


# -- measurements, each in a fresh process ------------------------------------------------------------------------
def _measure_index(root: str) -> dict:
    from hl.pipelines.cache import FeatureStore

    t, c = time.perf_counter(), time.process_time()
    idx = FeatureStore(root).index()
    return {"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "rows": len(idx)}


def _measure_table(root: str) -> dict:
    from hl.pipelines.cache import FeatureStore

    t, c = time.perf_counter(), time.process_time()
    table = FeatureStore(root).index_table()
    return {"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "rows": table.num_rows}


def _measure_plan(root: str) -> dict:
    from hl.pipelines.cache import FeatureStore
    from hl.pipelines.stages.extract import VideoItem, plan_videos

    spec = json.loads((Path(root) / "sim.json").read_text())
    plans, settings = plans_and_settings()
    items = [VideoItem(v, f"/data/videos/{v}.mp4") for v in spec["ids"]]
    fps = {i.path: fp for i, fp in zip(items, spec["fps"])}
    t, c = time.perf_counter(), time.process_time()
    todo, cached = plan_videos(FeatureStore(root), items, plans, settings, 2.0, fingerprints=fps)
    return {"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "todo": len(todo),
            "cached": len(cached)}


def _measure_compact(root: str) -> dict:
    from hl.pipelines.cache import FeatureStore

    t = time.perf_counter()
    r = FeatureStore(root).compact()
    return {"seconds": time.perf_counter() - t, "rows": r.rows, "unit_files": r.unit_files}


def child_with_rss(cmd: list[str]) -> dict:
    """Run `cmd`, return its wall time and its own peak RSS (os.wait4's rusage of that child)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]}...: {err.decode()[-2000:]}")
    return {"stdout": out.decode(), "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "peak_mib": usage.ru_maxrss / 1024}


def measure(what: str, root: Path) -> dict:
    if what == "info":
        r = child_with_rss([HL, "cache", "info", str(root)])
        return {"seconds": r["wall"], "cpu": r["cpu"], "peak_mib": r["peak_mib"],
                "lines": len(r["stdout"].splitlines())}
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import cache_scale as c; "
            f"print(json.dumps(c._measure_{what}({str(root)!r})))")
    r = child_with_rss([sys.executable, "-c", code])
    result = json.loads(r["stdout"].strip().splitlines()[-1])
    result["peak_mib"] = r["peak_mib"]
    return result


# -- packing ------------------------------------------------------------------------------------------------------
def _drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def packing(root: Path, units: int, shape=(30, 512)) -> dict:
    import h5py

    rng = np.random.default_rng(0)
    data = rng.standard_normal((units, *shape)).astype(np.float32)
    single, packed = root / "one_per_unit", root / "packed.h5"
    shutil.rmtree(root, ignore_errors=True)
    single.mkdir(parents=True)
    for i in range(units):
        with h5py.File(single / f"u{i:05d}.h5", "w") as f:
            f.create_dataset("features", data=data[i])
    with h5py.File(packed, "w") as f:
        for i in range(units):
            f.create_dataset(f"u{i:05d}/features", data=data[i])
    order = list(range(units))
    random.Random(1).shuffle(order)
    out = {"units": units, "unit_kib": data[0].nbytes / 1024}
    for mode in ("cold", "warm"):
        if mode == "cold":
            for p in single.iterdir():
                _drop_cache(p)
        t = time.perf_counter()
        for i in order:
            with h5py.File(single / f"u{i:05d}.h5", "r") as f:
                x = f["features"][()]
        out[f"one_per_unit_{mode}"] = units / (time.perf_counter() - t)
        if mode == "cold":
            _drop_cache(packed)
        t = time.perf_counter()
        with h5py.File(packed, "r") as f:
            for i in order:
                x = f[f"u{i:05d}/features"][()]
        out[f"packed_{mode}"] = units / (time.perf_counter() - t)
        del x
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--skip-packing", action="store_true")
    ap.add_argument("--pack-units", type=int, default=2000)
    ap.add_argument("--tmp", default=None, help="where to build the simulated caches (default: the system's)")
    ap.add_argument("--keep", default=None, help="build the caches here and keep them (reused by the next run)")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hl-cache-scale-", dir=args.tmp))
    rows = []
    try:
        for units in args.units:
            root = base / f"cache-{units}"
            if units <= 20_000:  # as unit files, then compacted: what compaction buys
                spec = build(root, units, as_unit_files=True)
                raw = measure("index", root)
                comp = measure("compact", root)
                print(f"{units:>9,} units as unit files: index load {raw['seconds']:.2f} s; compaction "
                      f"{comp['seconds']:.2f} s ({comp['unit_files']:,} files folded)", flush=True)
                rows.append({"units": units, "layout": "unit files", "index_s": raw["seconds"],
                             "index_mib": raw["peak_mib"], "compact_s": comp["seconds"]})
                shutil.rmtree(root / "index")  # the compacted layout is built next
                (root / "sim.json").unlink()
            spec = build(root, units)
            res = {"units": units, "layout": "compacted + 1,000 unit files", "build_s": spec["build_s"]}
            for what in ("table", "index", "info", "plan"):
                r = measure(what, root)
                res[f"{what}_s"], res[f"{what}_cpu"], res[f"{what}_mib"] = r["seconds"], r["cpu"], r["peak_mib"]
                if what == "plan":
                    assert r["todo"] == 0 and r["cached"] == units // len(EXTRACTORS), r
            rows.append(res)
            if not args.keep:
                shutil.rmtree(root)
            print(f"{units:>9,} units (wall s / CPU s / peak MiB): " + ", ".join(
                f"{label} {res[k + '_s']:.2f} / {res[k + '_cpu']:.2f} / {res[k + '_mib']:.0f}"
                for k, label in [("table", "index table"), ("index", "index load"), ("info", "cache info"),
                                 ("plan", "re-run plan")]) + f" (built in {spec['build_s']:.0f} s)",
                  flush=True)
        if not args.skip_packing:
            p = packing(base / "pack", args.pack_units)
            print(f"packing {p['units']} units of {p['unit_kib']:.0f} KiB: reads/s one file per unit "
                  f"{p['one_per_unit_cold']:.0f} cold, {p['one_per_unit_warm']:.0f} warm; packed in one file "
                  f"{p['packed_cold']:.0f} cold, {p['packed_warm']:.0f} warm; packed/one-per-unit "
                  f"{p['packed_cold'] / p['one_per_unit_cold']:.2f}x cold, "
                  f"{p['packed_warm'] / p['one_per_unit_warm']:.2f}x warm", flush=True)
            rows.append(p)
        print(json.dumps(rows))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
