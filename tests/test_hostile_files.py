"""Files that attack: names that are HTML or formulas, ids that point out of the cache, decoder bombs.

Each attack is injected for real (a video file with that name, a file whose headers lie, a manifest with that
field) and the test asserts what it could have done did not happen. Checkpoints that run code on load are
refused in tests/test_weights.py and tests/test_run.py.
"""
import csv
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hl.common import HLError
from hl.data_manifests.synthetic import write_video
from hl.extract.decode import VideoSource
from hl.pipelines.cache import FeatureStore

HTML_NAME = "<img src=x onerror=alert(1)>"
QUOTE_NAME = "it's \"quoted\" onmouseover=alert(2) '><svg onload=alert(3)>"
FORMULA_NAME = "=HYPERLINK(\"http:x\",\"y\")"


# -- decoder bombs ------------------------------------------------------------------------------------------
def _mjpeg_avi(path: Path, n: int = 5, size: tuple[int, int] = (64, 48)) -> bytearray:
    import av

    w, h = size
    with av.open(str(path), "w", format="avi") as c:
        s = c.add_stream("mjpeg", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuvj420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), 40 * i, np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return bytearray(path.read_bytes())


def huge_frames_bomb(path: Path, side: int = 16000) -> Path:
    """A 9 kB MJPEG AVI whose headers and JPEG frames claim side x side pixels (768 MB per RGB frame)."""
    b = _mjpeg_avi(path)
    i = 0
    while (i := b.find(b"\xff\xc0", i)) >= 0:  # every JPEG's start-of-frame: height, width
        struct.pack_into(">HH", b, i + 5, side, side)
        i += 2
    struct.pack_into("<ii", b, b.find(b"strf") + 12, side, side)  # BITMAPINFOHEADER width, height
    struct.pack_into("<II", b, b.find(b"avih") + 8 + 32, side, side)  # main header width, height
    path.write_bytes(bytes(b))
    return path


def long_claim_bomb(path: Path, hours: float = 10, fps: int = 1000) -> Path:
    """A 9 kB AVI whose headers claim `hours` at `fps` (36 million frames)."""
    b = _mjpeg_avi(path)
    frames = int(hours * 3600 * fps)
    avih = b.find(b"avih") + 8
    struct.pack_into("<I", b, avih, 1_000_000 // fps)  # microseconds per frame
    struct.pack_into("<I", b, avih + 16, frames)  # total frames
    strh = b.find(b"strh") + 8
    struct.pack_into("<II", b, strh + 20, 1, fps)  # scale, rate
    struct.pack_into("<I", b, strh + 32, frames)  # length
    path.write_bytes(bytes(b))
    return path


OPEN_AND_MEASURE = """
import json, resource, sys
from hl.common import HLError
from hl.extract.decode import VideoSource
out = {}
for path in sys.argv[1:]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        VideoSource(path).frames([0])
        out[path] = ["opened", 0]
    except HLError as exc:
        out[path] = [str(exc), 0]
    out[path][1] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps(out))
"""


def test_decoder_bombs_fail_with_a_reason_in_bounded_memory(tmp_path):
    huge = huge_frames_bomb(tmp_path / "huge.mp4")
    long = long_claim_bomb(tmp_path / "long.avi")
    assert huge.stat().st_size < 20_000 and long.stat().st_size < 20_000
    run = subprocess.run([sys.executable, "-c", OPEN_AND_MEASURE, str(huge), str(long)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    msg, grown_mb = seen[str(huge)]
    assert msg == (f"{huge}: claims 16000x16000 frames, more than the 8192x8192 pixels hl decodes "
                   f"(a damaged or hostile file?)")
    assert grown_mb < 100  # one decoded frame of that size alone is 768 MB
    msg, grown_mb = seen[str(long)]
    assert msg.startswith(f"{long}: claims 36000000 frames (36000 s at 1000 fps) in a ")
    assert grown_mb < 100


def test_the_honest_original_of_a_bomb_still_decodes(tmp_path):
    path = tmp_path / "honest.avi"
    path.write_bytes(bytes(_mjpeg_avi(tmp_path / "x.avi")))
    src = VideoSource(path)
    assert src.info.num_frames == 5 and src.frames(np.arange(5)).shape[0] == 5


def test_one_bomb_fails_one_video_and_the_batch_goes_on(tmp_path):
    from hl.pipelines.stages.extract import run_extraction

    videos = tmp_path / "videos"
    write_video(videos / "good.mp4", seconds=3, fps=10, seed=1)
    huge_frames_bomb(videos / "huge.mp4")
    long_claim_bomb(videos / "long.avi")
    report = run_extraction(videos, tmp_path / "cache", ["stats"], workers=1)
    status = {o.video_id: o for o in report.outcomes}
    assert status["good"].status == "ok"
    assert status["huge"].status == "failed" and "claims 16000x16000 frames" in status["huge"].error
    assert status["long"].status == "failed" and "claims 36000000 frames" in status["long"].error
    idx = FeatureStore(tmp_path / "cache").index()
    assert set(idx.loc[idx.status == "failed", "video_id"]) == {"huge", "long"}


# -- ids and manifest fields that point elsewhere ------------------------------------------------------------
HOSTILE_IDS = ["../../escaped", "/tmp/escaped-abs", "..", ".", "a/../../b", "~/x", "C:\\x\\..\\y"]


def test_hostile_video_ids_stay_inside_the_cache(tmp_path):
    root = tmp_path / "deep" / "cache"
    store = FeatureStore(root)
    for vid in HOSTILE_IDS:
        path = store.write_unit(vid, "stats", {"features": np.ones((2, 3), np.float32),
                                               "segments": np.zeros((2, 2))}, {"fingerprint": "f"})
        row = store.write_index_row({"video_id": vid, "extractor": "stats", "status": "ok",
                                     "file": path.relative_to(root).as_posix()})
        for written in (path, row):
            assert written.resolve().is_relative_to(root.resolve())
        assert store.attrs(vid, "stats")["video_id"] == vid  # the id itself is kept as it is
    assert sorted(store.index()["video_id"]) == sorted(HOSTILE_IDS)
    outside = [p for p in tmp_path.rglob("*") if not p.resolve().is_relative_to(root.resolve())]
    assert all(p in (tmp_path / "deep", root) for p in outside)
    assert not Path("/tmp/escaped-abs").exists()
    for bad in ["a\x00b"]:
        with pytest.raises(HLError, match="holds a NUL character"):
            store.write_unit(bad, "stats", {"features": np.ones((1, 1), np.float32)}, {})
    for bad_extractor in ["../stats", "/abs", "..", "a\x00"]:
        with pytest.raises(HLError, match="cannot name an extractor's folder"):
            store.feature_path("v", bad_extractor)


def _manifest(domain: str = "dog", video_id: str = "v1") -> pd.DataFrame:
    from hl.data_manifests.schema import clip_rows

    return clip_rows(video_id, "test", domain, "train", np.array([[1.0, 2], [5, 4], [1, 1]]), 2.0)


@pytest.mark.parametrize("domain", ["../../escaped", "/abs", "a/b", "..", "x\x00y", "a\\b"])
def test_a_domain_that_would_name_a_folder_elsewhere_is_refused(domain, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hl.data_manifests.schema import validate
    from hl.pipelines.run import Run
    from hl.pipelines.stages.train_segment import read_manifest_at

    with pytest.raises(ValueError, match="domain"):
        validate(_manifest(domain))
    # a manifest file written by other means than hl's: refused on reading, naming the file
    df = _manifest(domain)
    path = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pandas(df.assign(scores=[None] * len(df))), path)
    with pytest.raises(HLError) as err:
        read_manifest_at(path)
    assert str(err.value).startswith(f"{path}: manifest column") and "\n" not in str(err.value)
    # and the run's own paths refuse it too
    run = Run.__new__(Run)
    run.path = tmp_path / "run"
    for call in (lambda: run.model_path(domain, 0), lambda: run.write_history(domain, 0, [])):
        with pytest.raises(HLError, match="cannot name a folder of the run"):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.parquet"]


def test_nul_in_a_manifest_video_id_is_refused():
    from hl.data_manifests.schema import validate

    with pytest.raises(ValueError, match="video_id.*NUL"):
        validate(_manifest(video_id="v\x00../x"))
    validate(_manifest(video_id="sub/clip"))  # sub-folder ids stay legal


def test_release_ids_that_point_out_of_the_release_are_refused(tmp_path):
    from hl.data_manifests.umt import feature_paths

    for vid in ["../../etc/x", "/etc/x", "a\x00b"]:
        with pytest.raises(ValueError, match="cannot name a feature file"):
            feature_paths(tmp_path, vid)
    assert feature_paths(tmp_path, "AwmHb44_ouw")["pann"] == tmp_path / "audio_features" / "AwmHb44_ouw.npy"


# -- spreadsheet formulas in highlights.csv --------------------------------------------------------------------
def test_csv_cells_never_start_a_formula(tmp_path):
    from hl.pipelines.highlights.find import VideoHighlights, write_tables
    from hl.pipelines.highlights.moments import Moment

    results = {}
    names = [FORMULA_NAME, "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tTAB", "plain", HTML_NAME]
    for k, name in enumerate(names):
        moment = Moment(start=0.0, end=2.0, score=-0.5 if k == 0 else 0.9, mean_score=-0.25, peak=0,
                        peak_time=1.0, segments=(0,))
        results[name] = VideoHighlights(name, f"{name}.mp4", 2.0, np.array([0.9]), np.array([[0.0, 2.0]]), "h",
                                        [moment], thumbnails=[f"assets/{k}.jpg"], maps=[None])
    json_path, csv_path = write_tables(results, tmp_path)
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    for row, name in zip(rows, names):
        for col in ("video_id", "source"):
            cell = row[col]
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (col, cell)
            assert cell.lstrip("'") == (name if col == "video_id" else f"{name}.mp4")
    assert rows[-1]["video_id"] == HTML_NAME and rows[-2]["video_id"] == "plain"  # others untouched
    assert float(rows[0]["score"]) == -0.5 and float(rows[0]["mean_score"]) == -0.25  # numbers stay numbers
    assert list(json.loads(json_path.read_text())["videos"]) == names  # the JSON keeps the names exactly


# -- names shown in the report ---------------------------------------------------------------------------------
ALERT_TRAP = """<script>
window.__calls = [];
for (const f of ["alert", "confirm", "prompt", "print"]) window[f] = (...a) => { window.__calls.push([f, ...a]); };
window.addEventListener("load", () => setTimeout(() => {
  const out = document.createElement("pre");
  out.id = "trap";
  out.textContent = JSON.stringify({calls: window.__calls,
    titles: [...document.querySelectorAll("section.video h2")].map((h) => h.textContent),
    ids: [...document.querySelectorAll("section.video")].map((s) => s.dataset.videoId),
    failed: [...document.querySelectorAll("section.failed li")].map((li) => li.textContent),
    injected: document.querySelectorAll("img[src=x], svg[onload], [onmouseover]").length});
  document.body.appendChild(out);
}, 200));
</script></head>"""


def _open_in_chromium(page: Path) -> dict:
    from test_report_browser import headless

    trapped = page.with_name("trap-" + page.name)
    trapped.write_text(page.read_text(encoding="utf-8").replace("</head>", ALERT_TRAP, 1), encoding="utf-8")
    run = headless("--window-size=1000,800", "--dump-dom", trapped.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    match = re.search(r'<pre id="trap">(.*?)</pre>', run.stdout, re.S)
    assert match, "the trap did not run: " + run.stdout[-500:]
    import html

    return json.loads(html.unescape(match.group(1)))


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    from test_report_browser import browser

    from hl.pipelines.highlights.report import Card, VideoEntry, grab_frames, save_jpeg, write_report

    browser()
    root = tmp_path_factory.mktemp("hostile report")
    out = root / "out"
    entries = []
    for k, name in enumerate([HTML_NAME, QUOTE_NAME]):
        video = write_video(root / "videos" / f"{name}.mp4", seconds=4, fps=10, seed=k)
        thumb = save_jpeg(grab_frames(video, [1.0])[0], out / "assets" / f"t{k}.jpg")
        card = Card(1, 0.0, 2.0, 0.9, 0.8, thumbnail=thumb.relative_to(out).as_posix(), clip=f"clips/{name}.mp4")
        entries.append(VideoEntry(name, str(video), 4.0, np.array([0.9, 0.1]), np.array([[0, 2], [2, 4.0]]),
                                  [card], heads=name))
    failed = {f"{HTML_NAME}2": f"{root}/{HTML_NAME}2.mp4: not a decodable video"}
    report = write_report(entries, out, title=f"Highlights — {QUOTE_NAME}", details={"run": HTML_NAME},
                          failed=failed)
    return report, entries, failed


def test_hostile_names_show_as_text_and_run_no_script(hostile_report):
    report, entries, failed = hostile_report
    seen = _open_in_chromium(report)
    assert seen["calls"] == []
    assert seen["injected"] == 0
    assert seen["titles"] == seen["ids"] == [e.video_id for e in entries]  # shown exactly, as text
    assert seen["failed"] == [f"{k}: {v}" for k, v in failed.items()]


def test_the_trap_catches_a_page_that_does_not_escape(tmp_path):
    """The check above can fail: the same names pasted into a page raw do run their script."""
    from test_report_browser import browser

    browser()
    page = tmp_path / "raw.html"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'></head><body><h2>{HTML_NAME}</h2>"
                    f"<div title='{QUOTE_NAME}'>x</div></body></html>", encoding="utf-8")
    seen = _open_in_chromium(page)
    assert ["alert", 1] in seen["calls"] and ["alert", 3] in seen["calls"]
    assert seen["injected"] >= 1
