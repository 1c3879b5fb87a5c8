"""Standard formats out: predictions as the query-based tools' JSON lines (round trip through an evaluator written
to that format's description), `hl cache info --json`, and click's shell completion."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from jsonl_evaluator import evaluate_tvsum, read_jsonl, tvsum_video_map

from hl.heads.metrics import tvsum_top5_map
from hl.pipelines.cache.umt_import import import_umt
from hl.pipelines.cli import main
from hl.pipelines.stages.evaluate import evaluate_run
from hl.pipelines.stages.jsonl_export import clip_scores
from hl.pipelines.stages.train_segment import TrainSpec, train_heads

SMALL = {"epochs": 2, "arch": {"d_model": 32, "n_heads": 2, "ffn_dim": 64}}


def test_clip_scores_on_two_second_clips():
    fixed = np.array([[0, 2], [2, 4], [4, 5]], float)
    np.testing.assert_array_equal(clip_scores([0.1, 0.9, 0.3], fixed), [0.1, 0.9, 0.3])  # as they are
    one_s = np.array([[0, 1], [1, 2], [2, 3], [3, 4]], float)
    np.testing.assert_array_equal(clip_scores([0.1, 0.2, 0.3, 0.4], one_s), [0.2, 0.4])  # the clip centre's segment
    overlapping = np.array([[0, 4], [2, 6]], float)  # centres 1, 3, 5
    np.testing.assert_array_equal(clip_scores([0.5, 0.7], overlapping), [0.5, 0.7, 0.7])


def test_evaluator_follows_the_protocol_on_a_worked_example():
    label = [[1, 5], [5, 1], [2, 2], [1, 1], [3, 3], [1, 2]]  # annotator medians 1.5 and 2.0
    # ranked clips 1, 0, 4, 2, 5 (top 5 of 6): annotator 0 highlights 1, 4, 2 -> hits 1 0 1 1 0
    pred = [0.8, 0.9, 0.5, 0.0, 0.6, 0.1]
    ap0 = (1 / 3) * (1 + 1) / 2 + (1 / 3) * (2 / 3 + 1 / 2) / 2 + (1 / 3) * (3 / 4 + 2 / 3) / 2
    # annotator 1 highlights 0, 4 -> hits 0 1 1 0 0
    ap1 = 0.5 * (1 / 2 + 0) / 2 + 0.5 * (2 / 3 + 1 / 2) / 2
    assert tvsum_video_map(pred, label) == pytest.approx((ap0 + ap1) / 2)
    assert tvsum_video_map(pred, label) == pytest.approx(tvsum_top5_map(pred, np.array(label, float)))


@pytest.fixture(scope="module")
def tvsum_run(shared_data, tmp_path_factory, local_scheduler):
    root = tmp_path_factory.mktemp("formats")
    import_umt(shared_data / "tvsum" / "umt", root / "cache")
    spec = TrainSpec(cache=str(root / "cache"), domains=("BK", "VT"), seeds=(0,), head=SMALL)
    metrics = train_heads(spec, root / "run", scheduler=local_scheduler)
    return root, metrics


def test_jsonl_predictions_round_trip_through_the_evaluator(tvsum_run, shared_data, tmp_path):
    root, _ = tvsum_run
    gt_all = read_jsonl(shared_data / "tvsum" / "lighthouse" / "tvsum_val_release.jsonl")
    gt = [r for r in gt_all if r["domain"] in ("BK", "VT")]  # the test videos of the two trained domains
    assert len(gt) == 2
    (tmp_path / "gt.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gt))
    args = ["predict", "--run", str(root / "run"), "--cache", str(root / "cache"), "--out", str(tmp_path / "p.json")]
    for r in gt:
        args += ["--video", r["vid"]]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    lines = read_jsonl(tmp_path / "p.jsonl")
    assert all(set(line) == {"qid", "vid", "pred_saliency_scores"} for line in lines)
    per_segment = json.loads((tmp_path / "p.json").read_text())
    for line in lines:  # 2-s segments: the clip scores are the segment scores, in order (PRED.json: 6 decimals)
        assert line["qid"] == line["vid"]
        assert line["pred_saliency_scores"] == pytest.approx(per_segment[line["vid"]], abs=1e-6)

    scored = evaluate_tvsum(tmp_path / "p.jsonl", tmp_path / "gt.jsonl")
    table = evaluate_run(root / "run")  # hl's own figures for the same heads on the same test videos
    for r in gt:  # one test video per domain: the domain's figure is that video's
        ours = table[(table["domain"] == r["domain"]) & (table["seed"] == 0)]["value"].iloc[0]
        assert scored[r["qid"]] == pytest.approx(float(ours), abs=1e-6), r["domain"]
    assert scored["mean"] == pytest.approx(table["value"].mean(), abs=1e-6)


def test_cache_info_json(tvsum_run):
    root, _ = tvsum_run
    res = CliRunner().invoke(main, ["cache", "info", str(root / "cache"), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["videos"] == info["videos_with_features"] == 50 and not info["failures"]
    assert set(info["extractors"]) == {"i3d", "i3d_flow", "pann"}
    assert info["extractors"]["i3d"]["ok"] == 50 and info["extractors"]["i3d"]["dim"] == 1024
    assert info["manifest"]["domains"] == 10 and sum(info["manifest"]["splits"].values()) == 50
    text = CliRunner().invoke(main, ["cache", "info", str(root / "cache")]).output
    assert "50 videos, 50 with features" in text and "i3d_flow" in text


def test_shell_completion_is_clicks_own():
    hl = Path(sys.executable).parent / "hl"
    if not hl.exists():
        pytest.skip(f"no hl script beside {sys.executable}")
    env = {**os.environ, "_HL_COMPLETE": "bash_source"}
    script = subprocess.run([str(hl)], env=env, capture_output=True, text=True, timeout=60).stdout
    assert "_hl_completion" in script and "complete " in script
    env = {**os.environ, "_HL_COMPLETE": "bash_complete", "COMP_WORDS": "hl high", "COMP_CWORD": "1"}
    words = subprocess.run([str(hl)], env=env, capture_output=True, text=True, timeout=60).stdout
    assert "highlights" in words
    env.update(COMP_WORDS="hl highlights --log-f", COMP_CWORD="2")
    assert "--log-format" in subprocess.run([str(hl)], env=env, capture_output=True, text=True, timeout=60).stdout
