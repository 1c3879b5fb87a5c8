"""`hl demo` (the README's first set-up command) end to end, small."""
import json

from click.testing import CliRunner

from hl.pipelines.cli import main


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "--out", str(out), "--videos", "4", "--seconds", "8", "--seeds", "0",
                                  "--epochs", "5", "--workers", "1"])
    assert r.exit_code == 0, r.output
    for step in ("1/4", "2/4", "3/4", "4/4"):
        assert step in r.output
    assert "test mAP" in r.output
    assert (out / "run" / "metrics.parquet").exists()
    videos = json.loads((out / "highlights" / "highlights.json").read_text())["videos"]
    assert len(videos) == 4 and all(len(v["moments"]) >= 1 for v in videos.values())
    html = (out / "highlights" / "report.html").read_text()
    assert "<svg" in html and "synthetic_000" in html
