"""`hl weights` commands over the library: list, add (names and shapes checked), download errors."""
import os

import torch
from checkpoint_files import code_running_checkpoints
from click.testing import CliRunner

from hl.extract.backbones import create
from hl.pipelines.cli import main


def test_weights_list_add_and_extract_picks_them_up(tmp_path):
    wdir = tmp_path / "weights"
    r = CliRunner().invoke(main, ["weights", "list", "--weights-dir", str(wdir)])
    assert r.exit_code == 0 and "c3d_sports1m" in r.output and "absent" in r.output

    good = tmp_path / "c3d.pickle"
    torch.save(create("c3d").state_dict(), good)  # the official format: a plain state dict
    r = CliRunner().invoke(main, ["weights", "add", "c3d_sports1m", str(good), "--weights-dir", str(wdir)])
    assert r.exit_code == 0, r.output
    assert (wdir / "c3d.pickle").exists()
    r = CliRunner().invoke(main, ["weights", "list", "--weights-dir", str(wdir)])
    assert "present  c3d_sports1m" in r.output

    state = create("c3d").state_dict()
    state["fc6.weight"] = torch.zeros(10, 3)
    state["renamed.weight"] = state.pop("fc7.weight")
    bad = tmp_path / "bad.pickle"
    torch.save(state, bad)
    r = CliRunner().invoke(main, ["weights", "add", "c3d", str(bad), "--weights-dir", str(tmp_path / "w2")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "fc6.weight" in r.output and "fc7.weight" in r.output and "renamed.weight" in r.output

    from hl.extract.extractors import RunSettings
    from hl.pipelines.stages.extract import plan_extractors

    plans, notices = plan_extractors(["c3d"], wdir, RunSettings())
    assert plans[0].weights == str(wdir / "c3d.pickle") and len(plans[0].weights_hash) == 64 and not notices
    plans, notices = plan_extractors(None, wdir, RunSettings())  # default: extractors whose weights exist
    assert [p.extractor.name for p in plans] == ["c3d"]
    plans, notices = plan_extractors(None, tmp_path / "empty", RunSettings())
    assert [p.extractor.name for p in plans] == ["stats", "stats_audio"] and "NO PRETRAINED WEIGHTS" in notices[0]
    plans, notices = plan_extractors(["tased"], tmp_path / "empty", RunSettings())
    assert plans[0].extractor.name == "motion_saliency" and "NO WEIGHTS FOR tased" in notices[0]


def test_weights_add_refuses_a_checkpoint_that_would_run_code(tmp_path):
    marker = tmp_path / "ran"
    hostile, bare = code_running_checkpoints(tmp_path, marker, create("c3d").state_dict())
    for f in (hostile, bare):
        r = CliRunner().invoke(main, ["weights", "add", "c3d_sports1m", str(f), "--weights-dir", str(tmp_path / "w")])
        assert r.exit_code == 2 and "Traceback" not in r.output
        system = f"{os.system.__module__}.system"  # posix.system
        assert r.output.strip() == (f"hl: error: {f}: not a plain checkpoint: it asks to run code on load ({system}); "
                                    "hl loads only tensors, numbers, strings and containers")
    assert not marker.exists() and not (tmp_path / "w" / "c3d.pickle").exists()


def test_download_of_a_page_only_source_says_what_to_do(tmp_path):
    r = CliRunner().invoke(main, ["weights", "download", "tased_dhf1k", "--weights-dir", str(tmp_path)])
    assert r.exit_code == 2 and "hl weights add" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["weights", "download", "nope", "--weights-dir", str(tmp_path)])
    assert r.exit_code == 2 and "unknown weights" in r.output
