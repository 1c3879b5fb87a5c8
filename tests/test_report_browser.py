"""The highlights report as a browser draws it: headless Chromium opens report.html from disk (no server)."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from highlight_run import found_highlights

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser() -> str:
    found = os.environ.get("HL_CHROMIUM") or next((b for b in map(shutil.which, BROWSERS) if b), None)
    if not found:
        pytest.skip("no chromium binary on PATH (apt-get install chromium): the report's rendering is not checked")
    return found


def headless(*args: str) -> subprocess.CompletedProcess:
    cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
           "--allow-file-access-from-files", "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


# Run inside the page once it has loaded: what the browser actually laid out and decoded.
PROBE = """<script>
window.addEventListener("load", () => {
  const box = (e) => { const b = e.getBoundingClientRect(); return [Math.round(b.width), Math.round(b.height)]; };
  const all = (q) => [...document.querySelectorAll(q)];
  const seen = {
    sections: all("section.video").map((s) => s.dataset.videoId),
    curves: all("svg.curve").map(box),
    lines: all("svg.curve polyline.score").map((p) => p.points.numberOfItems),
    moments: all("svg.curve rect.moment").map(box),
    cards: all("section.video").map((s) => s.querySelectorAll("figure.card").length),
    thumbs: all("figure.card img.thumb").map((i) => [i.complete, i.naturalWidth, box(i)[0]]),
    clips: all("figure.card a.clip").map((a) => a.href),
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
});
</script></body>"""


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    browser()  # skip before building anything when there is no browser
    return found_highlights(tmp_path_factory)


def test_report_renders_its_parts(found):
    result = found.result
    report = Path(result.report)
    probe = report.with_name("probe.html")  # beside the report, so its relative links resolve the same way
    page = report.read_text(encoding="utf-8").replace('loading="lazy"', 'loading="eager"')
    probe.write_text(page.replace("</body>", PROBE), encoding="utf-8")
    try:
        run = headless("--window-size=1200,900", "--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    assert run.returncode == 0, run.stderr[-2000:]
    match = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert match, "the page's script did not run: " + run.stdout[-500:]
    seen = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))

    videos = result.videos
    assert seen["sections"] == list(videos)
    assert len(seen["curves"]) == len(videos) and all(w > 600 and h > 80 for w, h in seen["curves"])
    assert seen["lines"] == [len(v.scores) for v in videos.values()]  # one point per segment
    assert len(seen["moments"]) == sum(len(v.moments) for v in videos.values())
    assert all(w >= 1 for w, _ in seen["moments"])
    assert seen["cards"] == [len(v.moments) for v in videos.values()]
    assert len(seen["thumbs"]) == sum(seen["cards"])
    assert all(done and natural > 0 and shown > 100 for done, natural, shown in seen["thumbs"])  # decoded, laid out
    clips = [Path(href.removeprefix("file://")) for href in seen["clips"]]
    assert len(clips) == sum(seen["cards"]) and all(c.is_file() and c.parent == result.out / "clips" for c in clips)


def test_screenshot(found, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    run = headless(f"--screenshot={shot}", "--window-size=1100,900", Path(found.result.report).as_uri())
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape == (900, 1100, 3)
    assert img.std() > 20  # not a blank page
    header = img[:40].reshape(-1, 3).mean(axis=0)
    assert (header < 60).all()  # the dark title bar
    shaded = np.abs(img - np.array([250, 224, 185])).sum(axis=2) < 30  # a moment's orange band on the curve
    assert shaded.sum() > 500
    line = np.abs(img - np.array([37, 99, 235])).sum(axis=2) < 40  # the score line's blue (not the links')
    assert line.sum() > 200
