"""The cache index compacted: per-unit files folded into one file per extractor, atomically, while runs append.

Real Parquet files, real concurrent processes (an appender, a compactor and a reader at once)."""
import contextlib
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from hl.common import HLError
from hl.pipelines.cache import FeatureStore
from hl.pipelines.cache.index import COMPACTED, LOCK, compaction_lock
from hl.pipelines.cli.main import main


def _row(vid: str, extractor: str = "stats", fp: str = "f0", status: str = "ok") -> dict:
    return {"video_id": vid, "extractor": extractor, "fingerprint": fp, "config_hash": "c", "weights_hash": "w",
            "status": status, "segments": 3, "dim": 8, "file": f"features/{extractor}/{vid}.h5"}


def _files(root: Path, extractor: str = "stats") -> tuple[list[Path], list[Path]]:
    folder = root / "index" / extractor
    return sorted((folder / COMPACTED).glob("*.parquet")), sorted(folder.glob("*.parquet"))


def test_compaction_folds_unit_files_and_keeps_every_row(tmp_path):
    store = FeatureStore(tmp_path)
    for i in range(30):
        store.write_index_row(_row(f"v{i:02d}"))
        store.write_index_row(_row(f"v{i:02d}", "stats_audio"))
    before = store.index().sort_values(["extractor", "video_id"]).reset_index(drop=True)
    report = store.compact()
    assert (report.extractors, report.unit_files, report.rows, report.kept) == (2, 60, 60, 0)
    for name in ("stats", "stats_audio"):
        compacted, units = _files(tmp_path, name)
        assert len(compacted) == 1 and units == []
    after = store.index().sort_values(["extractor", "video_id"]).reset_index(drop=True)
    assert after.equals(before)
    assert pq.read_table(tmp_path / "index").num_rows == 60  # the folder is still one table without hl
    assert store.row("v07", "stats")["fingerprint"] == "f0"  # found in the compacted file
    assert store.row("nope", "stats") is None
    assert store.is_done("v07", "stats", "f0", "c", "w", include_failed=True) is False  # its .h5 is absent
    (tmp_path / "features" / "stats").mkdir(parents=True)
    (tmp_path / "features" / "stats" / "v07.h5").touch()
    assert store.is_done("v07", "stats", "f0", "c", "w")
    store.write_index_row(_row("v29", status="failed"))
    done = store.done_units("stats", ["v07", "v08", "v29", "nope"], ["f0", "f0", "f0", "f0"], ["c"] * 4, "w")
    assert done.tolist() == [True, False, True, False]  # v08's .h5 is absent; a failure counts as done
    assert store.done_units("stats", ["v07", "v29"], ["f0", "f0"], ["c", "c"], "w", include_failed=False
                            ).tolist() == [True, False]
    assert store.done_units("stats", ["v07", "v07"], ["f0", "other"], ["other", "c"], "w").tolist() == [False] * 2
    assert not store.done_units("stats", ["v07"], ["f0"], ["c"], "other weights").any()


def test_a_row_written_after_compaction_wins_and_is_folded_next_time(tmp_path):
    store = FeatureStore(tmp_path)
    for i in range(5):
        store.write_index_row(_row(f"v{i}"))
    store.compact()
    store.write_index_row(_row("v3", fp="new"))  # a re-extraction after the compaction
    store.write_index_row(_row("v9"))
    idx = store.index()
    assert len(idx) == 6 and idx.set_index("video_id").loc["v3", "fingerprint"] == "new"
    assert store.row("v3", "stats")["fingerprint"] == "new"
    store.compact()
    compacted, units = _files(tmp_path)
    assert len(compacted) == 1 and units == []  # the old generation is gone
    idx = store.index()
    assert len(idx) == 6 and idx.set_index("video_id").loc["v3", "fingerprint"] == "new"
    assert store.compact().unit_files == 0  # nothing to do


def test_one_compaction_at_a_time_and_a_dead_holders_lock_is_taken_over(tmp_path):
    store = FeatureStore(tmp_path)
    store.write_index_row(_row("v0"))
    with compaction_lock(tmp_path), pytest.raises(HLError, match="another compaction of the index is running"):
        store.compact()
    assert not (tmp_path / "index" / LOCK).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / "index" / LOCK).write_text(f"{os.uname().nodename} {dead} abc")
    assert store.compact().unit_files == 1
    store.write_index_row(_row("v1"))
    res = CliRunner().invoke(main, ["cache", "compact", str(tmp_path)])
    assert res.exit_code == 0 and "2 index rows of 1 extractors compacted, 1 unit files folded in" in res.output


# -- concurrency with real processes --------------------------------------------------------------------------
def _append(root: str, n: int, rewrite_every: int) -> None:
    store = FeatureStore(root)
    for i in range(n):
        store.write_index_row(_row(f"a{i:04d}", fp=f"v{i}"))
        if i % rewrite_every == 0 and i:  # rewrite an older unit: its newest row must survive
            store.write_index_row(_row(f"a{i // 2:04d}", fp=f"rewritten{i}"))


def _compact_loop(root: str, stop_at: float) -> None:
    store = FeatureStore(root)
    while time.time() < stop_at:
        with contextlib.suppress(HLError):
            store.compact()
        time.sleep(0.01)


def _read_loop(root: str, stop, out) -> None:
    store = FeatureStore(root)
    reads, last = 0, 0
    try:
        while not stop.is_set():
            idx = store.index()
            ids = idx["video_id"]
            assert not ids.duplicated().any(), "a unit seen twice"
            assert len(idx) >= last, f"rows went from {last} to {len(idx)}"  # none ever disappears
            last, reads = len(idx), reads + 1
        out.put(("ok", reads))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put(("error", repr(exc)))


def test_readers_and_appenders_beside_compactions_see_no_mix_and_lose_nothing(tmp_path):
    ctx = mp.get_context("spawn")
    root = str(tmp_path)
    n = 400
    store = FeatureStore(root)
    for i in range(50):  # something compacted already
        store.write_index_row(_row(f"b{i:04d}"))
    store.compact()
    out = ctx.Queue()
    appender = ctx.Process(target=_append, args=(root, n, 7))
    appender.start()
    stop_at = time.time() + 600
    compactor = ctx.Process(target=_compact_loop, args=(root, stop_at))
    stop = ctx.Event()
    reader = ctx.Process(target=_read_loop, args=(root, stop, out))
    compactor.start()
    reader.start()
    appender.join(120)
    assert appender.exitcode == 0
    time.sleep(0.3)
    compactor.terminate()  # a compaction killed part-way must lose nothing either
    stop.set()
    status, detail = out.get(timeout=60)
    reader.join()
    compactor.join()
    assert status == "ok" and detail > 5, detail
    idx = FeatureStore(root).index().set_index("video_id")
    assert len(idx) == n + 50 and not idx.index.duplicated().any()
    expected = {f"a{i:04d}": f"v{i}" for i in range(n)}
    for i in range(n):
        if i % 7 == 0 and i:
            expected[f"a{i // 2:04d}"] = f"rewritten{i}"
    assert {k: idx.loc[k, "fingerprint"] for k in expected} == expected
    FeatureStore(root).clean_stale(0)
    FeatureStore(root).compact()
    compacted, units = _files(tmp_path)
    assert len(compacted) == 1 and units == []
    assert len(FeatureStore(root).index()) == n + 50
