"""Progress as a batch job's log reads it: the real `hl` command with stdout and stderr sent to files."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hl.common import HLError
from hl.data_manifests.synthetic import write_video
from hl.pipelines.cli.progress import Console, resolve_format
from hl.pipelines.cluster import dashboard_lines


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_bars_on_a_terminal_and_plain_otherwise():
    assert resolve_format("auto", Terminal()) == "bar"
    assert resolve_format("auto", io.StringIO()) == "plain"
    assert resolve_format(None, io.StringIO()) == "plain"
    assert resolve_format("JSON", Terminal()) == "json"
    with pytest.raises(HLError, match="unknown log format 'fancy'"):
        resolve_format("fancy", io.StringIO())


def test_plain_lines_and_periodic_summaries():
    stream, clock = io.StringIO(), Clock()
    with Console("plain", stream=stream, summary_every=30, clock=clock) as console:
        stage = console.stage("extract", total=4, unit="video")
        clock.t = 10
        stage.item("a", "ok", "2 segments")
        clock.t = 20
        stage.running("b", 0.5)  # a clock tick: no line yet
        clock.t = 40
        stage.item("b", "failed", "b.mp4: not a video")  # 40 s since the start: a summary follows
        stage.item("c", "skipped", "already cached")
        clock.t = 50
        stage.item("d", "ok", "3 segments")
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines == [
        "extract: 4 videos",
        "extract [1/4] ok      a: 2 segments",
        "extract [2/4] failed  b: b.mp4: not a video",
        "extract: 2/4 videos done, 1 failed, 3.0 videos/min, about 40 s left",
        "extract [3/4] skipped c: already cached",
        "extract [4/4] ok      d: 3 segments",
        "extract: 4/4 videos done, 1 failed, in 50 s",
    ]


def test_json_lines_parse_one_by_one():
    stream, out, clock = io.StringIO(), io.StringIO(), Clock()
    with Console("json", stream=stream, out=out, summary_every=5, clock=clock) as console:
        console.notice("no pretrained weights")
        stage = console.stage("train", total=2, unit="head")
        clock.t = 6
        stage.item("TV seed 0", "ok", "1.0 s", seed=0)
        stage.item("TV seed 1", "ok", "1.0 s", seed=1)
        console.result("run written to r", run="r")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["notice", "start", "item", "summary", "item", "end"]
    assert events[2] == {"event": "item", "stage": "train", "id": "TV seed 0", "status": "ok", "done": 1, "total": 2,
                         "detail": "1.0 s", "seed": 0}
    assert events[3]["left_s"] == pytest.approx(6.0) and events[5]["failed"] == 0
    assert json.loads(out.getvalue()) == {"event": "result", "message": "run written to r", "run": "r"}


def test_a_stage_ends_with_its_last_item_and_each_phase_of_training_is_its_own():
    stream, clock = io.StringIO(), Clock()
    with Console("plain", stream=stream, clock=clock) as console:
        progress = console.train_progress()
        clock.t = 3
        progress({"domain": "BK", "label": "selection: setting 0, fold 0", "seconds": 1.0}, 1, 1)
        clock.t = 5
        console.say("chosen: setting 0")
        for k in range(2):
            clock.t = 7 + k
            progress({"domain": "BK", "seed": k, "seconds": 1.0}, k + 1, 2)
        clock.t = 60
        console.say("after training")
    assert stream.getvalue().splitlines() == [
        "train: 1 heads",
        "train [1/1] ok      BK selection: setting 0, fold 0: 1.0 s",
        "train: 1/1 heads done, 0 failed, in 1 s",
        "chosen: setting 0",
        "train: 2 heads",
        "train [1/2] ok      BK seed 0: 1.0 s",
        "train [2/2] ok      BK seed 1: 1.0 s",
        "train: 2/2 heads done, 0 failed, in 2 s",
        "after training",
    ]


def test_quiet_hides_the_stage_but_not_notices():
    stream = io.StringIO()
    with Console("plain", stream=stream, quiet=True) as console:
        console.stage("extract", total=1).item("a", "ok")
        console.notice("careful")
    assert stream.getvalue() == "NOTICE: careful\n"


def test_dashboard_lines_name_the_tunnel():
    first, tunnel = dashboard_lines("http://127.0.0.1:8790/status", host="node7", user="ann")
    assert first == "Dask dashboard: http://127.0.0.1:8790/status (this machine only)"
    assert "ssh -N -L 8790:127.0.0.1:8790 ann@node7" in tunnel and "http://localhost:8790/status" in tunnel


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("logvideos")
    for i in range(3):
        write_video(root / f"clip{i}.mp4", seconds=3, fps=8, size=(64, 48), seed=i)
    return root


def _hl(args: list[str], tmp: Path, env: dict | None = None) -> tuple[int, str, str]:
    """Runs `hl ARGS` as a batch job does: stdout and stderr to files, no terminal."""
    out, err = tmp / "stdout.log", tmp / "stderr.log"
    with open(out, "wb") as o, open(err, "wb") as e:
        code = subprocess.call([sys.executable, "-m", "hl.pipelines.cli", *args], stdout=o, stderr=e,
                               stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, timeout=300)
    return code, out.read_text(), err.read_text()


def test_cli_log_to_files_is_line_per_video(videos, tmp_path):
    (tmp_path / "v").mkdir()
    for p in videos.iterdir():
        (tmp_path / "v" / p.name).symlink_to(p)
    (tmp_path / "v" / "broken.mp4").write_text("not a video\n" * 20)
    code, out, err = _hl(["extract", "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "c"),
                          "--extractors", "stats", "--workers", "1"], tmp_path)
    assert code == 1, err  # one video failed
    assert "\r" not in out + err
    lines = err.splitlines()
    for vid in ("clip0", "clip1", "clip2", "broken"):
        mine = [line for line in lines if line.startswith("extract [") and f" {vid}: " in line]
        assert len(mine) == 1, (vid, err)
    assert any(line.startswith("extract [") and "failed  broken: " in line for line in lines)
    assert "extract: 4/4 videos done, 1 failed, in " in err
    dash = next(line for line in lines if line.startswith("Dask dashboard: http://127.0.0.1:"))
    port = dash.split("127.0.0.1:")[1].split("/")[0]
    assert f"ssh -N -L {port}:127.0.0.1:{port} " in err
    assert out.startswith("3 extracted, 0 already cached, 1 failed")


def test_cli_json_log_from_the_environment(videos, tmp_path):
    code, out, err = _hl(["extract", "--videos", str(videos), "--out", str(tmp_path / "c"), "--extractors", "stats",
                          "--workers", "1"], tmp_path, env={"HL_LOG_FORMAT": "json"})
    assert code == 0, err
    events = [json.loads(line) for line in err.splitlines()]  # every line is one JSON object
    items = [e for e in events if e["event"] == "item"]
    assert sorted(e["id"] for e in items) == ["clip0", "clip1", "clip2"] and {e["status"] for e in items} == {"ok"}
    assert events[-1]["event"] == "end" and events[-1]["done"] == 3
    assert any(e["event"] == "dashboard" and e["address"].startswith("http://127.0.0.1:") for e in events)
    result = json.loads(out)
    assert result["event"] == "result" and result["extracted"] == 3

    # the option wins over the environment; a re-run skips every video, one line each
    code, out, err = _hl(["extract", "--videos", str(videos), "--out", str(tmp_path / "c"), "--extractors", "stats",
                          "--log-format", "plain"], tmp_path, env={"HL_LOG_FORMAT": "json"})
    assert code == 0 and "\r" not in err
    assert sum(" skipped clip" in line for line in err.splitlines()) == 3
    assert out.startswith("0 extracted, 3 already cached")
