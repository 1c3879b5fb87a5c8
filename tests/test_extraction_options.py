"""`hl highlights` takes every extraction option of `hl extract`, and refuses those that would make other features
than its run's: a run trained on random-weight features is usable with --random-weights."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hl.common import HLError
from hl.data_manifests.schema import write_manifest
from hl.data_manifests.synthetic import make_dataset, write_video
from hl.pipelines.cli import main
from hl.pipelines.highlights import find_highlights
from hl.pipelines.run import Run
from hl.pipelines.stages.extract import run_extraction
from hl.pipelines.stages.train_segment import TrainSpec, train_heads


def _options(command) -> dict[str, tuple]:
    return {p.name: (tuple(p.opts), type(p.type).__name__, p.is_flag if hasattr(p, "is_flag") else None)
            for p in command.params}


def test_highlights_takes_every_extraction_option_of_extract():
    extract, highlights = _options(main.commands["extract"]), _options(main.commands["highlights"])
    shared = {k: v for k, v in extract.items() if k not in ("videos", "out")}
    assert {"random_weights", "device", "precision", "batch_size", "weights_dir", "scheduler", "workers",
            "extractors", "segment_seconds", "segments_manifest", "retry_failed", "quiet", "log_format"} <= set(shared)
    for name, spec in shared.items():
        assert highlights.get(name) == spec, name


@pytest.fixture(scope="module")
def random_run(tmp_path_factory, local_scheduler) -> Path:
    """A run trained on `stats` + PANN features made with random weights (no PANN checkpoint anywhere)."""
    root = tmp_path_factory.mktemp("random_run")
    _, manifest = make_dataset(root / "videos", n_videos=3, seconds=6.0, seed=5)
    cache = root / "cache"
    report = run_extraction(root / "videos", cache, ["stats", "pann"], weights_dir=root / "no-weights", workers=1,
                            allow_random_weights=True)
    assert not report.failed
    write_manifest(manifest, cache / "manifest.parquet")
    spec = TrainSpec(cache=str(cache), visual=("stats",), audio=("pann",), seeds=(0,), head={"epochs": 3})
    train_heads(spec, root / "run", scheduler=local_scheduler)
    write_video(root / "new" / "fresh.mp4", seconds=6.0, fps=10, highlights=((2.0, 4.0),), seed=42)
    return root


def test_random_weight_run_needs_the_flag(random_run, tmp_path):
    with pytest.raises(HLError, match="random weights.*give --random-weights"):
        find_highlights(random_run / "new", random_run / "run", tmp_path / "o", weights_dir=random_run / "no-weights",
                        workers=1)


def test_random_weight_run_through_the_cli_with_every_extraction_option(random_run, tmp_path):
    run = Run.open(random_run / "run")
    made_in = run.config.features["pann"][0].config["precision"]
    out = tmp_path / "o"
    args = [sys.executable, "-m", "hl.pipelines.cli", "highlights", str(random_run / "new"), "--run",
            str(random_run / "run"), "--out", str(out), "--random-weights", "--device", "cpu", "--precision", made_in,
            "--batch-size", "2", "--extractors", "pann,stats", "--segment-seconds", "2", "--retry-failed",
            "--weights-dir", str(random_run / "no-weights"), "--workers", "1", "--log-format", "plain"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "RANDOM WEIGHTS FOR pann" in done.stderr
    doc = json.loads((out / "highlights.json").read_text())
    assert list(doc["videos"]) == ["fresh"] and doc["videos"]["fresh"]["moments"]


@pytest.mark.parametrize("extra, message", [
    (["--segment-seconds", "3"], "--segment-seconds 3: the run .* was trained on 2-s segments"),
    (["--extractors", "stats"], "--extractors stats: the run .* reads stats,pann features"),
    (["--precision", "OTHER"], "--precision OTHER: the run's pann features were made in"),
])
def test_mismatches_are_refused_with_one_line(random_run, tmp_path, extra, message):
    made_in = Run.open(random_run / "run").config.features["pann"][0].config["precision"]
    other = "fp32" if made_in != "fp32" else "bf16"
    extra = [other if x == "OTHER" else x for x in extra]
    message = message.replace("OTHER", other)
    r = CliRunner().invoke(main, ["highlights", str(random_run / "new"), "--run", str(random_run / "run"), "--out",
                                  str(tmp_path / "o"), "--random-weights", "--quiet", *extra])
    assert r.exit_code == 2, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("hl: error: ")]
    assert len(errors) == 1 and "Traceback" not in r.output
    import re

    assert re.search(message, errors[0]), errors[0]
