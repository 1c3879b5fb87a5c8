"""`hl highlights` end to end: a run trained on generated videos finds the known highlights of new ones."""
import csv
import io
import json
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from highlight_run import Page, found_highlights

from hl.common import HLError
from hl.pipelines.cli import highlights_command
from hl.pipelines.highlights import find_highlights
from hl.pipelines.highlights.clips import clip_suffix, cut_clip


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    return found_highlights(tmp_path_factory)


def overlap(a, b) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def test_finds_the_known_highlights(found):
    result, truth = found.result, found.trained.highlights
    assert list(result.videos) == ["alpha", "beta", "long", "sub/gamma"] and set(result.videos) == set(truth)
    for vid, intervals in truth.items():
        moments = result.videos[vid].moments
        assert 1 <= len(moments) <= 5
        best = moments[: len(intervals)]  # as many top moments as true highlights: each hits one of them
        assert all(any(overlap((m.start, m.end), h) >= 2.0 for h in intervals) for m in best), (vid, best)
        assert {max(intervals, key=lambda h: overlap((m.start, m.end), h)) for m in best} == set(intervals)
        for a in moments:
            assert 0.0 <= a.start < a.end <= result.videos[vid].duration + 1e-6
            for b in moments:
                assert a is b or max(a.start - b.end, b.start - a.end) >= 4.0
    assert result.videos["long"].duration == pytest.approx(180.0)


def test_json_csv_and_report_files(found):
    result = found.result
    doc = json.loads(result.json.read_text())
    assert doc["format"] == "hl-highlights/2" and doc["settings"]["top"] == 5 and doc["settings"]["relative"] == 0.55
    assert doc["settings"]["min_score"] is None and doc["settings"]["run"] == str(found.trained.run)
    data = {vid: v["moments"] for vid, v in doc["videos"].items()}
    assert set(data) == set(result.videos)
    for vid, rows in data.items():
        v, vh = doc["videos"][vid], result.videos[vid]
        assert v["floor"] == pytest.approx(v["median"] + 0.55 * (v["best"] - v["median"]), abs=1e-5)
        assert v["floor"] == pytest.approx(vh.floor, abs=1e-6) and v["segments"] == len(vh.scores)
        assert all(r["score"] >= v["floor"] - 1e-6 for r in rows) and rows[0]["score_rank"] == 1
        for r in rows:
            assert r["score_rank"] == 1 + int((vh.scores > vh.scores[vh.moments[r["rank"] - 1].peak]).sum())
            assert 0 < r["percentile"] <= 100
        moments = result.videos[vid].moments
        assert [(r["start"], r["end"], r["segments"]) for r in rows] == [
            (round(m.start, 3), round(m.end, 3), list(m.segments)) for m in moments]
        assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        for r in rows:
            assert (result.out / r["thumbnail"]).read_bytes()[:2] == b"\xff\xd8"  # a JPEG
            clip = r["clip"]
            assert (result.out / clip["path"]).stat().st_size > 0 and clip["mode"] == "copy"
            assert clip["start"] <= r["start"] + 1e-3 and clip["end"] >= r["end"] - 0.2 - 1e-3  # 0.2 s: a frame
    with open(result.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(v.moments) for v in result.videos.values())
    assert {r["video_id"] for r in rows} == set(result.videos)
    assert all(float(r["start"]) < float(r["end"]) and r["clip"].startswith("clips/") for r in rows)

    page = Page.parse(result.report)
    assert page.sections == list(result.videos)
    assert page.curves == len(result.videos) and page.polylines == len(result.videos)
    assert page.moment_rects == page.cards == len(rows)
    for src in page.images + page.clips:
        assert (result.out / src).is_file(), src  # every link is relative and resolves
    assert len(page.images) == len(rows) and len(page.clips) == len(rows)
    assert not page.external, page.external  # nothing loads from elsewhere


def test_second_call_does_no_extraction(found, tmp_path, monkeypatch):
    result = found.result
    assert sorted(found.events) == sorted([("failed", "broken")] + [("ok", vid) for vid in found.trained.highlights])
    h5 = sorted((result.cache / "features").rglob("*.h5"))
    stamps = [p.stat().st_mtime_ns for p in h5]
    import distributed

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started although every video is cached")

    monkeypatch.setattr(distributed, "LocalCluster", no_cluster)
    again = find_highlights(found.trained.new_videos, found.trained.run, tmp_path / "again", cache=result.cache,
                            top=3, min_gap=2.0)
    assert not again.extraction.computed and len(again.extraction.skipped) == len(result.videos) + 1
    assert list(again.failed) == ["broken"]  # a failed video is not tried again either
    assert [p.stat().st_mtime_ns for p in h5] == stamps
    assert not (tmp_path / "again" / "cache").exists() and not (tmp_path / "again" / "clips").exists()
    for vid, vh in again.videos.items():
        assert len(vh.moments) <= 3
        np.testing.assert_array_equal(vh.scores, result.videos[vid].scores)


def test_highlights_command_progress_and_summary(found, tmp_path):
    stream, lines = io.StringIO(), []
    out = tmp_path / "cmd"
    code = highlights_command(found.trained.new_videos, found.trained.run, top=2, out=out, clips=True,
                              cache=found.result.cache, stream=stream, echo=lines.append)
    assert code == 1  # one video could not be scored
    drawn = stream.getvalue()  # not a terminal: plain lines, one per video and stage
    assert "extract [5/5] skipped" in drawn and "highlights: 4/4 videos done, 0 failed" in drawn
    assert "\r" not in drawn and sum(line.startswith("highlights [") for line in drawn.splitlines()) == 4
    assert [line.split(":")[0] for line in lines[:4]] == ["alpha", "beta", "long", "sub/gamma"]
    assert all(line.count("#") <= 2 for line in lines[:4])  # --top 2
    assert lines[4].startswith("4 videos scored (0 extracted, 5 from the cache), 1 failed")
    assert lines[5].startswith("  failed: broken: ")
    assert lines[-1].startswith("  note: copied clips start up to")  # keyframes 50 s apart in the long video
    assert (out / "report.html").is_file() and (out / "highlights.csv").is_file()
    assert len(list((out / "clips").iterdir())) == len(list((out / "assets").iterdir())) > 4

    # again into the same folder, fewer moments, no clips: nothing stale stays behind
    assert highlights_command(found.trained.new_videos, found.trained.run, top=1, out=out, cache=found.result.cache,
                              quiet=True, echo=lines.append) == 1
    assert sorted(p.name for p in (out / "assets").iterdir()) == [
        "alpha-01.jpg", "beta-01.jpg", "long-01.jpg", "sub_gamma-adfc1afa-01.jpg"]
    assert not list((out / "clips").iterdir())


def test_failed_video_is_reported_not_fatal(found):
    result = found.result
    assert list(result.failed) == ["broken"] and "broken.mp4" in result.failed["broken"]
    assert ("failed", "broken") in found.events
    assert "broken.mp4" in result.report.read_text()
    assert "broken" not in json.loads(result.json.read_text())["videos"]


def test_bad_requests(found, tmp_path):
    run = found.trained.run
    with pytest.raises(HLError, match="not a run directory"):
        find_highlights(found.trained.new_videos, tmp_path, tmp_path / "o")
    with pytest.raises(HLError, match="no video files"):
        find_highlights(tmp_path, run, tmp_path / "o")
    with pytest.raises(HLError, match="no such folder"):
        find_highlights(tmp_path / "nowhere", run, tmp_path / "o")
    with pytest.raises(HLError, match="--top"):
        find_highlights(found.trained.new_videos, run, tmp_path / "o", top=0)
    with pytest.raises(HLError, match="--min-gap"):
        find_highlights(found.trained.new_videos, run, tmp_path / "o", min_gap=-1)
    with pytest.raises(HLError, match="--relative"):
        find_highlights(found.trained.new_videos, run, tmp_path / "o", relative=2.0)


def test_floor_options_through_the_cli(found, tmp_path):
    """--min-score 0 lists the top moments whatever they score; the default floor never lists one below it."""
    from click.testing import CliRunner

    from hl.pipelines.cli import main
    base = [str(found.trained.new_videos), "--run", str(found.trained.run), "--cache", str(found.result.cache),
            "--top", "8", "--min-gap", "0", "--quiet"]
    docs = {}
    for name, extra in {"default": [], "none": ["--min-score", "0"], "strict": ["--relative", "0.95"]}.items():
        r = CliRunner().invoke(main, ["highlights", *base, "--out", str(tmp_path / name), *extra])
        assert r.exit_code == 1, r.output  # the broken video
        docs[name] = json.loads((tmp_path / name / "highlights.json").read_text())
    assert docs["none"]["settings"]["min_score"] == 0 and docs["none"]["settings"]["relative"] is None
    assert docs["strict"]["settings"]["relative"] == 0.95
    for vid, v in docs["default"]["videos"].items():
        everything = docs["none"]["videos"][vid]
        assert everything["floor"] == 0 and len(everything["moments"]) >= len(v["moments"])
        assert all(m["score"] >= v["floor"] for m in v["moments"])
        assert len(v["moments"]) == sum(m["score"] >= v["floor"] for m in everything["moments"])
        strict = docs["strict"]["videos"][vid]
        assert 1 <= len(strict["moments"]) <= len(v["moments"]) and strict["floor"] >= v["floor"]
    r = CliRunner().invoke(main, ["highlights", *base, "--out", str(tmp_path / "x"), "--relative", "0.2",
                                  "--min-score", "0.1"])
    assert r.exit_code == 2 and "not both" in r.output


# -- clips and long videos ------------------------------------------------------------------------------
def _write_bframes(path: Path, seconds: float = 8.0, fps: int = 10) -> Path:
    """H.264 with B-frames and a keyframe every 2 s, AAC audio; frames differ so they can be told apart."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = 128, 96, "yuv420p"
        v.options = {"g": str(2 * fps), "bf": "3", "preset": "ultrafast", "crf": "20", "sc_threshold": "0"}
        a = c.add_stream("aac", rate=22050, layout="mono")
        for i in range(int(seconds * fps)):
            img = np.zeros((96, 128, 3), np.uint8)
            img[:, (i * 3) % 128:(i * 3) % 128 + 8] = 255
            img[: 8 + i % 80, :4] = 200
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        t = np.arange(int(seconds * 22050)) / 22050
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, len(wave), 1024):
            f = av.AudioFrame.from_ndarray(wave[None, k:k + 1024], format="flt", layout="mono")
            f.sample_rate, f.pts = 22050, k
            for p in a.encode(f):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    return path


def _decode(path: Path) -> tuple[list[float], np.ndarray, float]:
    with av.open(str(path)) as c:
        frames = [(float(f.time), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].rate if c.streams.audio else 0.0
    return [t for t, _ in frames], np.stack([x for _, x in frames]), audio


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_copy_is_lossless_and_keyframe_aligned(tmp_path, suffix):
    src = tmp_path / f"bframes{suffix}"
    if suffix == ".mkv":
        mp4 = _write_bframes(tmp_path / "tmp.mp4")
        with av.open(str(mp4)) as inp, av.open(str(src), "w") as out:
            streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
            for p in inp.demux():
                if p.dts is not None:
                    p.stream = streams[p.stream.index]
                    out.mux(p)
    else:
        _write_bframes(src)
    _, source, _ = _decode(src)
    clip = cut_clip(src, 3.05, 5.0, tmp_path / f"clip{clip_suffix(src)}")
    assert clip.mode == "copy" and clip.path.suffix == suffix
    assert clip.start == pytest.approx(2.0) and clip.asked == (3.05, 5.0)  # the keyframe before 3.05 s
    assert 5.0 - 1e-6 <= clip.end <= 5.0 + 0.4  # B-frames may add a few frames decoded before the end
    times, frames, audio = _decode(clip.path)
    index = np.rint((np.asarray(times) - times[0] + clip.start) * 10).astype(int)
    assert index[0] == 20 and set(range(20, 50)) <= set(index) and index[-1] == int(round(clip.end * 10)) - 1
    np.testing.assert_array_equal(frames, source[index])  # bit-exact: copied packets
    assert times[0] == pytest.approx(0.0, abs=0.21)
    assert audio == pytest.approx(clip.end - clip.start, abs=0.1)


def test_reencode_cuts_exactly(tmp_path):
    src = _write_bframes(tmp_path / "bframes.mp4")
    _, source, _ = _decode(src)
    clip = cut_clip(src, 3.05, 5.0, tmp_path / "exact.mkv", mode="reencode")
    assert clip.mode == "reencode" and clip.path.suffix == ".mp4"
    assert clip.start == pytest.approx(3.0) and clip.end == pytest.approx(5.0)  # the frames covering [3.05, 5)
    times, frames, audio = _decode(clip.path)
    assert len(frames) == 20 and times[0] == pytest.approx(0.0, abs=1e-3)
    assert np.abs(frames.astype(int) - source[30:50]).mean() < 6  # the same pictures, re-encoded
    assert audio == pytest.approx(1.95, abs=0.05)  # audio samples from 3.05 s to 5.0 s


_MEMORY_PROBE = """
import resource, sys
from hl.pipelines.highlights.clips import cut_clip
from hl.pipelines.highlights.report import grab_frames

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

long_video, warm, out = sys.argv[1:4]
grab_frames(warm, [1.0])  # libraries loaded and decoders initialised before the baseline
cut_clip(warm, 1.0, 2.0, out + "/w1.mp4")
cut_clip(warm, 1.0, 2.0, out + "/w2.mp4", mode="reencode")
base = peak_mb()
frames = grab_frames(long_video, [10.0, 90.0, 170.0])
copied = cut_clip(long_video, 2.0, 178.0, out + "/copied.mp4")
exact = cut_clip(long_video, 100.5, 160.0, out + "/exact.mp4", mode="reencode")
print(peak_mb() - base, frames.shape[0], copied.start, copied.end, exact.start, exact.end)
"""


def test_long_video_is_streamed(found, tmp_path):
    """Thumbnails and clips of a 3-minute video read a few frames / its packets, never the whole video: the
    process's peak memory grows by less than half of what the decoded video takes (41 MB here; decoding it
    whole in the same probe adds ~44 MB)."""
    import subprocess

    long_video, warm = found.trained.long_video, found.trained.new_videos / "alpha.mp4"
    full_mb = 180 * 5 * 96 * 128 * 3 / 2**20
    run = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(long_video), str(warm), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    grown, n, c0, c1, e0, e1 = map(float, run.stdout.split()[-6:])
    assert n == 3 and c0 == 0.0 and c1 == pytest.approx(178.0) and (e0, e1) == pytest.approx((100.4, 160.0))
    assert grown < full_mb / 2, f"peak memory grew by {grown:.1f} MB (the decoded video: {full_mb:.0f} MB)"


def test_csv_cells_never_run_as_formulas():
    from hl.pipelines.highlights.find import csv_cell

    for text in ("=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("clip_01") == "clip_01" and csv_cell(-0.5) == -0.5  # numbers stay numbers
