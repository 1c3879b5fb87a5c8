"""The storage fails: a full disk, a read-only cache, a cache on a path with spaces and non-ASCII characters.

The full disk is a real one: a 1 MiB tmpfs mounted for the test, filled but for room for about two videos' files
(skipped, with the reason, where this process may not mount). The read-only cache is a read-only bind mount of
a real cache (root), or a folder without write permission (anyone else). `hl extract` runs as the user runs it,
in its own process: it must stop with one line naming the path, leave no half file, and a re-run after the fix
must complete without redoing what was finished.
"""
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from hl.data_manifests.synthetic import write_video
from hl.pipelines.cache import FeatureStore


def hl(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hl.pipelines.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@contextlib.contextmanager
def small_disk(path: Path, size: str = "1m"):
    path.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)) if os.geteuid() == 0 else None
    if done is None or done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() if done else 'not root'}): the full "
                    f"disk is not checked")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _videos(folder: Path, n: int) -> Path:
    for i in range(n):
        write_video(folder / f"v{i}.mp4", seconds=3, fps=10, seed=i)
    return folder


def _assert_whole(cache: Path) -> None:
    """Every file under the cache is complete and readable, no temporary file is left, and every ok index row
    points at a present feature file."""
    assert not [p for p in cache.rglob("*") if ".tmp-" in p.name]
    for h5 in cache.rglob("*.h5"):
        with h5py.File(h5, "r") as f:
            assert f["features"].shape[0] == f["segments"].shape[0] > 0
    idx = FeatureStore(cache).index()
    for f in idx.loc[idx.status == "ok", "file"]:
        assert (cache / f).is_file()


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_one_line_and_a_rerun_completes(tmp_path):
    videos = _videos(tmp_path / "videos", 6)
    with small_disk(tmp_path / "disk") as disk:
        cache = disk / "cache"
        filler = disk / "filler"
        st = os.statvfs(disk)
        filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 40 * 1024))  # room for about two videos' files
        run = hl("extract", "--videos", str(videos), "--out", str(cache), "--extractors", "stats", "--workers", "1",
                 "--quiet")
        assert run.returncode == 2, run.stdout + run.stderr
        err = run.stderr.strip().splitlines()[-1]
        assert "Traceback" not in run.stderr and "ERROR" not in run.stderr, run.stderr
        assert err.startswith(f"hl: error: {cache}/") and err.endswith(": cannot write (No space left on device, "
                                                                       "ENOSPC)"), err
        _assert_whole(cache)
        done_before = {r["video_id"]: r["created"] for r in FeatureStore(cache).index().to_dict("records")
                       if r["status"] == "ok"}
        assert len(done_before) < 6
        filler.unlink()  # the fix
        rerun = hl("extract", "--videos", str(videos), "--out", str(cache), "--extractors", "stats", "--workers",
                   "1", "--quiet")
        assert rerun.returncode == 0, rerun.stderr
        _assert_whole(cache)
        idx = FeatureStore(cache).index()
        assert sorted(idx.loc[idx.status == "ok", "video_id"]) == [f"v{i}" for i in range(6)]
        for vid, created in done_before.items():
            assert FeatureStore(cache).row(vid, "stats")["created"] == created  # not redone


@contextlib.contextmanager
def read_only(path: Path):
    """`path` read-only for this process: a read-only bind mount as root, else no write permission."""
    if os.geteuid() == 0:
        if _mount("--bind", str(path), str(path)).returncode != 0:
            pytest.skip("cannot bind-mount here: a read-only cache is not checked as root")
        try:
            if _mount("-o", "remount,ro,bind", str(path)).returncode != 0:
                pytest.skip("cannot remount read-only here")
            yield "Read-only file system"
        finally:
            subprocess.run(["umount", "-l", str(path)], check=False)
        return
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")] if p.is_dir()}
    for p in modes:
        p.chmod(0o555)
    try:
        yield "Permission denied"
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


@pytest.mark.slow
def test_a_read_only_cache_is_read_and_refused_for_writing_in_one_line(tmp_path):
    videos = _videos(tmp_path / "videos", 2)
    cache = tmp_path / "cache"
    assert hl("extract", "--videos", str(videos), "--out", str(cache), "--extractors", "stats", "--workers", "1",
              "--quiet").returncode == 0
    before = sorted((p.relative_to(cache), p.stat().st_mtime_ns) for p in cache.rglob("*"))
    write_video(videos / "new.mp4", seconds=3, fps=10, seed=9)
    with read_only(cache) as cause:
        run = hl("extract", "--videos", str(videos), "--out", str(cache), "--extractors", "stats", "--workers", "1",
                 "--quiet")
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.strip().splitlines()[-1] == f"hl: error: {cache}/features: cannot write ({cause}, " \
                                     f"{'EROFS' if 'Read-only' in cause else 'EACCES'})"
        info = hl("cache", "info", str(cache))  # reading needs no write
        assert info.returncode == 0 and "2 ok" in info.stdout, info.stderr
        (videos / "new.mp4").unlink()  # nothing to do: a read-only cache serves a re-run
        assert hl("extract", "--videos", str(videos), "--out", str(cache), "--extractors", "stats", "--quiet"
                  ).returncode == 0
        write_video(videos / "new.mp4", seconds=3, fps=10, seed=9)
    assert sorted((p.relative_to(cache), p.stat().st_mtime_ns) for p in cache.rglob("*")) == before
    rerun = hl("extract", "--videos", str(videos), "--out", str(cache), "--extractors", "stats", "--workers", "1",
               "--quiet")
    assert rerun.returncode == 0, rerun.stderr
    idx = FeatureStore(cache).index()
    assert sorted(idx.loc[idx.status == "ok", "video_id"]) == ["new", "v0", "v1"]


@pytest.mark.slow
def test_a_cache_on_a_path_with_spaces_and_non_ascii_characters(tmp_path):
    odd = tmp_path / "my cache é ü 中文 'q'"
    videos = odd / "vidéos été"
    write_video(videos / "clip 1 ñ.mp4", seconds=3, fps=10, seed=1)
    write_video(videos / "sub dir" / "日本 2.mp4", seconds=3, fps=10, seed=2)
    cache = odd / "cache ø"
    run = hl("extract", "--videos", str(videos), "--out", str(cache), "--extractors", "stats", "--workers", "1",
             "--quiet")
    assert run.returncode == 0, run.stderr
    store = FeatureStore(cache)
    assert store.videos("stats") == ["clip 1 ñ", "sub dir/日本 2"]
    assert store.features("sub dir/日本 2", "stats").shape[0] == 2
    assert store.row("clip 1 ñ", "stats")["source_path"] == str(videos / "clip 1 ñ.mp4")
    info = hl("cache", "info", str(cache))
    assert info.returncode == 0 and f"cache {cache}: 2 videos" in info.stdout
    again = hl("extract", "--videos", str(videos), "--out", str(cache), "--extractors", "stats", "--quiet")
    assert again.returncode == 0 and FeatureStore(cache).row("clip 1 ñ", "stats")["created"] == \
        store.row("clip 1 ñ", "stats")["created"]
    bad = hl("extract", "--videos", str(odd / "nowhere ü"), "--out", str(cache))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == f"hl: error: {odd / 'nowhere ü'}: no such folder"
