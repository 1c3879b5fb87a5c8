"""A real cluster that fails: `dask scheduler` and three `dask worker --no-nanny` processes on 127.0.0.1, `hl` in its
own process as the user runs it.

* a worker SIGKILLed while it extracts: the run finishes on the others, every unit written once, exit 0;
* the scheduler killed mid-run: `hl extract` stops within bounded time with one line, and a re-run resumes;
* two `hl extract` runs over overlapping folders into one cache at once, and an extract beside a train-head:
  no corrupt file, the index consistent;
* the batch job: one process extracts on the scheduler, another (another working directory, the videos gone)
  trains from the same cache and predicts: nothing is decoded.
"""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import pytest

from hl.common import is_temp
from hl.data_manifests.synthetic import write_video
from hl.pipelines.cache import FeatureStore

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
DASK = shutil.which("dask") or str(Path(sys.executable).parent / "dask")
ENV = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "error", "OMP_NUM_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A scheduler and `n` workers (no nanny: a killed worker stays dead) as separate processes."""

    def __init__(self, n: int = 3):
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler = self._start([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--no-dashboard"])
        self.workers = [self._start([DASK, "worker", self.address, "--nthreads", "1", "--host", "127.0.0.1",
                                     "--no-dashboard", "--no-nanny", "--name", f"w{i}"]) for i in range(n)]
        from distributed import Client

        with Client(self.address, timeout="60s") as client:
            client.wait_for_workers(n, timeout=90)

    @staticmethod
    def _start(cmd: list[str]) -> subprocess.Popen:
        return subprocess.Popen(cmd, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def busy_worker_pid(self, timeout: float = 120) -> int:
        """The pid of a worker that is running a task now."""
        from distributed import Client

        deadline = time.time() + timeout
        with Client(self.address, timeout="30s") as client:
            while time.time() < deadline:
                busy = [addr for addr, keys in client.processing().items() if keys]
                pids = client.run(os.getpid, workers=busy) if busy else {}
                if pids:
                    return next(iter(pids.values()))
                time.sleep(0.05)
        raise AssertionError("no worker became busy")

    def close(self) -> None:
        for p in [*self.workers, self.scheduler]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.time() + 5  # one grace period for all: a worker busy in a task may not stop in time
        for p in [*self.workers, self.scheduler]:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture
def cluster():
    c = Cluster(3)
    try:
        yield c
    finally:
        c.close()


def hl(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hl.pipelines.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=cwd)


def _videos(folder: Path, names, seconds: float = 12.0) -> Path:
    for i, name in enumerate(names):
        write_video(folder / f"{name}.mp4", seconds=seconds, fps=10, seed=i)
    return folder


class Writes:
    """Watches the cache's feature folder: every (file name -> inodes seen). Files are renamed into place, so a
    unit written twice shows two inodes."""

    def __init__(self, cache: Path):
        self.folder, self.seen, self._stop = cache / "features", {}, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for p in self.folder.rglob("*.h5") if self.folder.exists() else []:
                if is_temp(p):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    self.seen.setdefault(p.relative_to(self.folder).as_posix(), set()).add(p.stat().st_ino)
            time.sleep(0.01)

    def stop(self) -> dict[str, set]:
        self._stop.set()
        self._thread.join()
        return self.seen


def _assert_consistent(cache: Path, ids: list[str], extractors: list[str]) -> None:
    store = FeatureStore(cache)
    idx = store.index()
    assert not idx.duplicated(["video_id", "extractor"]).any()
    ok = idx[idx.status == "ok"]
    assert sorted(zip(ok.video_id, ok.extractor)) == sorted((v, e) for v in ids for e in extractors)
    for f in ok.file:
        with h5py.File(cache / f, "r") as h5:
            assert h5["features"].shape[0] == h5["segments"].shape[0] > 0
    assert not [p for p in cache.rglob("*") if ".tmp-" in p.name]


def test_a_worker_killed_mid_extract_changes_nothing_but_the_time(cluster, tmp_path):
    ids = [f"v{i}" for i in range(9)]
    videos = _videos(tmp_path / "videos", ids)
    cache = tmp_path / "cache"
    writes = Writes(cache)
    run = hl("extract", "--videos", str(videos), "--out", str(cache), "--extractors", "stats,stats_audio",
             "--scheduler", cluster.address, "--quiet")
    victim = cluster.busy_worker_pid()
    os.kill(victim, signal.SIGKILL)
    out, err = run.communicate(timeout=300)
    seen = writes.stop()
    assert run.returncode == 0, err
    assert any(w.pid == victim and w.poll() is not None for w in cluster.workers)  # it did die
    _assert_consistent(cache, ids, ["stats", "stats_audio"])
    assert len(seen) == 18 and all(len(inodes) == 1 for inodes in seen.values()), seen  # each written once


def test_the_scheduler_killed_mid_extract_ends_it_in_one_line_and_a_rerun_resumes(cluster, tmp_path):
    ids = [f"v{i}" for i in range(9)]
    videos = _videos(tmp_path / "videos", ids)
    cache = tmp_path / "cache"
    run = hl("extract", "--videos", str(videos), "--out", str(cache), "--extractors", "stats",
             "--scheduler", cluster.address, "--quiet")
    cluster.busy_worker_pid()
    os.killpg(cluster.scheduler.pid, signal.SIGKILL)
    killed = time.time()
    out, err = run.communicate(timeout=180)
    waited = time.time() - killed
    assert run.returncode == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"hl: error: lost the Dask scheduler at {cluster.address}"), err
    assert "Traceback" not in err and waited < 60, (waited, err)
    done_before = {r["video_id"]: r["created"] for r in FeatureStore(cache).index().to_dict("records")}
    rerun = hl("extract", "--videos", str(videos), "--out", str(cache), "--extractors", "stats", "--workers", "1",
               "--quiet")
    assert rerun.communicate(timeout=300) and rerun.returncode == 0
    _assert_consistent(cache, ids, ["stats"])
    store = FeatureStore(cache)
    for vid, created in done_before.items():
        assert store.row(vid, "stats")["created"] == created  # finished units were not redone


def test_two_runs_over_overlapping_folders_share_one_cache(tmp_path):
    """Two `hl extract` processes at once (each its own local cluster) over folders that share three videos:
    both succeed, no file is corrupt, the index holds each unit once."""
    both = [f"s{i}" for i in range(3)]
    a = _videos(tmp_path / "a", [*both, "a0", "a1"], seconds=8)
    b = tmp_path / "b"
    b.mkdir()
    for name in both:  # the same files (same content fingerprint) under the same ids
        shutil.copy(a / f"{name}.mp4", b / f"{name}.mp4")
    _videos(b, ["b0", "b1"], seconds=8)
    cache = tmp_path / "cache"
    writes = Writes(cache)
    runs = [hl("extract", "--videos", str(folder), "--out", str(cache), "--extractors", "stats", "--workers", "1",
               "--quiet") for folder in (a, b)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    seen = writes.stop()
    ids = [*both, "a0", "a1", "b0", "b1"]
    _assert_consistent(cache, ids, ["stats"])
    assert sorted(Path(k).stem for k in seen) == sorted(ids)
    assert sum(len(v) for v in seen.values()) <= len(ids) + len(both)  # only shared units in flight at once
    FeatureStore(cache).compact()  # whichever run compacted last, one more leaves one file
    assert len(list((cache / "index" / "stats").glob("*.parquet"))) == 0


def test_the_batch_job_trains_and_predicts_from_a_cache_another_process_made(cluster, tmp_path):
    """One process extracts on the cluster; another, in another working directory and with the videos gone,
    trains heads on the cluster from that cache and predicts: it decodes nothing."""
    from hl.data_manifests.schema import write_manifest
    from hl.data_manifests.synthetic import make_dataset

    videos = tmp_path / "shared" / "videos"
    _, manifest = make_dataset(videos, n_videos=4, seconds=12.0, seed=5)
    cache = tmp_path / "shared" / "cache"
    run = hl("extract", "--videos", str(videos), "--out", str(cache), "--extractors", "stats,stats_audio",
             "--scheduler", cluster.address, "--quiet", cwd=tmp_path)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    write_manifest(manifest, cache / "manifest.parquet")
    shutil.move(videos, tmp_path / "elsewhere")  # nothing can be decoded now
    features = sorted((p, p.stat().st_mtime_ns) for p in (cache / "features").rglob("*"))
    job = tmp_path / "job"
    job.mkdir()
    train = hl("train-head", "--cache", str(cache), "--out", "run", "--visual", "stats", "--audio", "stats_audio",
               "--epochs", "5", "--seeds", "0", "--scheduler", cluster.address, cwd=job)
    _, err = train.communicate(timeout=300)
    assert train.returncode == 0, err
    predict = hl("predict", "--run", "run", "--cache", str(cache), "--out", "pred.json", cwd=job)
    _, err = predict.communicate(timeout=300)
    assert predict.returncode == 0, err
    import json

    scores = json.loads((job / "pred.json").read_text())
    assert sorted(scores) == sorted(manifest["video_id"].unique())
    assert all(len(s) == 6 for s in scores.values())  # 12 s in 2-s segments
    assert sorted((p, p.stat().st_mtime_ns) for p in (cache / "features").rglob("*")) == features


def test_the_scheduler_killed_mid_train_head_ends_it_in_one_line(cluster, tmp_path):
    from hl.data_manifests.schema import write_manifest
    from hl.data_manifests.synthetic import make_dataset
    from hl.pipelines.stages.extract import run_extraction

    _, manifest = make_dataset(tmp_path / "videos", n_videos=4, seconds=10.0, seed=7)
    cache = tmp_path / "cache"
    run_extraction(tmp_path / "videos", cache, ["stats", "stats_audio"], workers=1)
    write_manifest(manifest, cache / "manifest.parquet")
    args = ["train-head", "--cache", str(cache), "--out", str(tmp_path / "run"), "--visual", "stats", "--audio",
            "stats_audio", "--seeds", "0,1,2"]
    train = hl(*args, "--epochs", "5000", "--scheduler", cluster.address)
    cluster.busy_worker_pid()
    os.killpg(cluster.scheduler.pid, signal.SIGKILL)
    killed = time.time()
    _, err = train.communicate(timeout=180)
    assert train.returncode == 2 and time.time() - killed < 60, err
    assert err.strip().splitlines()[-1].startswith(f"hl: error: lost the Dask scheduler at {cluster.address} "
                                                   f"after 0 of 3 tasks"), err
    assert "Traceback" not in err
    again = hl(*args, "--epochs", "3", "--workers", "1")
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert sorted(p.name for p in (tmp_path / "run" / "models").rglob("*.pt")) == ["seed0.pt", "seed1.pt",
                                                                                   "seed2.pt"]


def test_an_extract_beside_a_train_head_on_one_cache(tmp_path):
    """`hl train-head` reads a cache while `hl extract` adds other videos to it (and compacts its index at the
    end): both succeed, the trained run is complete, nothing it read was rewritten, the index holds every unit
    once."""
    from hl.data_manifests.schema import write_manifest
    from hl.data_manifests.synthetic import make_dataset
    from hl.pipelines.stages.extract import run_extraction

    _, manifest = make_dataset(tmp_path / "a", n_videos=4, seconds=10.0, seed=3)
    cache = tmp_path / "cache"
    run_extraction(tmp_path / "a", cache, ["stats", "stats_audio"], workers=1)
    write_manifest(manifest, cache / "manifest.parquet")
    trained_on = sorted((p, p.stat().st_mtime_ns) for p in (cache / "features").rglob("*.h5"))
    new = [f"n{i}" for i in range(4)]
    extract = hl("extract", "--videos", str(_videos(tmp_path / "b", new, seconds=8)), "--out", str(cache),
                 "--extractors", "stats,stats_audio", "--workers", "1", "--quiet")
    train = hl("train-head", "--cache", str(cache), "--out", str(tmp_path / "run"), "--visual", "stats", "--audio",
               "stats_audio", "--epochs", "5", "--seeds", "0,1", "--workers", "1", "--quiet")
    for proc in (extract, train):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert sorted(p.name for p in (tmp_path / "run" / "models").rglob("*.pt")) == ["seed0.pt", "seed1.pt"]
    _assert_consistent(cache, [*manifest["video_id"].unique(), *new], ["stats", "stats_audio"])
    after = dict((p, p.stat().st_mtime_ns) for p in (cache / "features").rglob("*.h5"))
    assert all(after[p] == t for p, t in trained_on)  # what training read was left as it was
