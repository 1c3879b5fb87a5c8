"""The Python API mirrors the command line: hl.extract, hl.train_head, hl.evaluate, hl.predict, hl.highlights with
the commands' defaults, plain objects back, nothing printed unless asked."""
import inspect
import json
import subprocess
import sys
from pathlib import Path

import click
import pandas as pd
import pytest

import hl
from hl import api
from hl.common import HLError
from hl.data_manifests.schema import write_manifest
from hl.data_manifests.synthetic import make_dataset, write_video
from hl.pipelines.cli import main


def test_hl_extract_is_the_subpackage_and_callable():
    import hl.extract.decode  # the subpackage still imports

    assert hl.extract is sys.modules["hl.extract"] and callable(hl.extract)
    assert hl.extract.decode is sys.modules["hl.extract.decode"]
    from hl import evaluate, highlights, predict, train_head

    assert (train_head, evaluate, predict, highlights) == (api.train_head, api.evaluate, api.predict, api.highlights)
    assert set(hl.__all__) <= set(dir(hl))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        hl.nope  # noqa: B018
    # importing hl loads nothing heavy: the functions import their stages when called
    probe = "import sys, hl; print(sorted(m for m in sys.modules if m.startswith(('hl.', 'torch', 'dask'))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


CLI_OF = {"extract": "extract", "train_head": "train-head", "evaluate": "eval", "predict": "predict",
          "highlights": "highlights"}
RENAMED = {"head_kind": "head", "run_dir": "run", "segments_manifest": "segments", "video_or_dir": "videos",
           "maps_dir": "maps"}
CLI_NONE_MEANS = {("extract", "segment_seconds"): 2.0, ("highlights", "relative"): api.DEFAULT_RELATIVE}


@pytest.mark.parametrize("name", list(CLI_OF))
def test_defaults_are_the_commands(name):
    fn, command = getattr(api, name), main.commands[CLI_OF[name]]
    params = inspect.signature(fn).parameters
    checked = 0
    for p in command.params:
        key = RENAMED.get(p.name, p.name)
        if key not in params or p.required or params[key].default is inspect.Parameter.empty:
            continue
        default = p.default
        if isinstance(default, str):
            default = p.type_cast_value(click.Context(command), default)  # as the command sees it
        if default is None or type(default).__name__ == "Sentinel" or (isinstance(default, tuple) and not default):
            default = False if getattr(p, "is_flag", False) else None  # click's "not given"
        cli_default = CLI_NONE_MEANS.get((name, key), default) if default is None else default
        ours = params[key].default
        assert (tuple(ours) if isinstance(ours, (list, tuple)) else ours) == cli_default, (name, key)
        checked += 1
    assert checked >= {"extract": 9, "train_head": 10, "evaluate": 2, "predict": 1, "highlights": 15}[name]


def test_default_floor_is_the_moments_one():
    from hl.pipelines.highlights.moments import RELATIVE

    assert api.DEFAULT_RELATIVE == RELATIVE


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("api")
    _, manifest = make_dataset(root / "videos", n_videos=4, seconds=8.0, seed=9)
    (root / "videos" / "broken.mp4").write_text("not a video\n" * 20)
    write_video(root / "new" / "fresh.mp4", seconds=8.0, fps=10, highlights=((2.0, 4.0),), seed=77)
    manifest.to_parquet(root / "labels.parquet")
    return root


@pytest.fixture(scope="module")
def extracted(data):
    report = hl.extract(data / "videos", data / "cache", ["stats", "stats_audio"], workers=1)
    write_manifest(pd.read_parquet(data / "labels.parquet"), data / "cache" / "manifest.parquet")
    return report


@pytest.fixture(scope="module")
def trained(data, extracted):
    return hl.train_head(data / "cache", data / "run", visual=["stats"], audio=["stats_audio"], seeds=(0,), epochs=3,
                         workers=1)


def test_extract(data, extracted, capsys):
    assert len(extracted.computed) == 4 and [o.video_id for o in extracted.failed] == ["broken"]
    again = hl.extract(data / "videos", data / "cache", ["stats", "stats_audio"], workers=1)
    assert len(again.skipped) == 5 and not again.computed  # the failed video is not tried again either
    assert capsys.readouterr() == ("", "")  # nothing printed
    hl.extract(data / "videos", data / "cache", ["stats", "stats_audio"], progress="plain")
    err = capsys.readouterr().err
    assert "extract [5/5] " in err and "\r" not in err


def test_train_head(data, trained, capsys):
    assert trained.run == data / "run" and (trained.run / "config.json").is_file()
    assert isinstance(trained.metrics, pd.DataFrame) and list(trained.metrics["seed"]) == [0]
    assert "MEAN" in list(trained.summary["domain"])
    assert capsys.readouterr() == ("", "")
    with pytest.raises(HLError, match="beta: not an option of the segment head"):
        hl.train_head(data / "cache", data / "x", beta=0.001)
    with pytest.raises(HLError, match="visual: not an option of the pixel head"):
        hl.train_head(data / "cache", data / "x", head="pixel", visual=["stats"])


def test_evaluate(trained):
    result = hl.evaluate(trained.run)
    assert isinstance(result, api.Evaluation) and result.heading is None and "stats" in result.about
    pd.testing.assert_series_equal(result.metrics["value"].reset_index(drop=True),
                                   trained.metrics["value"].reset_index(drop=True), check_names=False)
    with pytest.raises(HLError, match="unknown protocol"):
        hl.evaluate(trained.run, protocol="luckiest")


def test_predict(data, trained, tmp_path):
    in_memory = hl.predict(trained.run, data / "cache")
    assert sorted(in_memory.scores) == [f"synthetic_{i:03d}" for i in range(4)] and in_memory.json is None
    written = hl.predict(trained.run, data / "cache", tmp_path / "p.json", videos=["synthetic_001"])
    assert json.loads(written.json.read_text()).keys() == {"synthetic_001"}
    assert written.parquet.is_file() and json.loads(written.jsonl.read_text())["vid"] == "synthetic_001"
    with pytest.raises(HLError, match="--maps needs a pixel-level run"):
        hl.predict(trained.run, data / "cache", maps=tmp_path / "maps")


def test_highlights(data, trained, tmp_path, capsys):
    result = hl.highlights(data / "new", trained.run, tmp_path / "out", top=3, workers=1)
    assert list(result.videos) == ["fresh"] and not result.failed
    doc = json.loads(result.json.read_text())
    assert doc["settings"]["top"] == 3 and doc["settings"]["relative"] == api.DEFAULT_RELATIVE
    assert 1 <= len(result.videos["fresh"].moments) <= 3 and result.report.is_file()
    assert capsys.readouterr().out == ""
