"""UMT's split files as they are, `hl eval --json`, and the papers' best-epoch protocol kept apart from the
honest figures."""
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from hl.common import HLError
from hl.data_manifests.umt import umt_manifest, umt_split_names
from hl.pipelines.cli import main
from hl.pipelines.stages.evaluate import evaluate_run

SMALL = ["--epochs", "3", "--seeds", "0"]


@pytest.fixture
def small(local_scheduler) -> list[str]:
    """A small run's options, on the session's local cluster."""
    return [*SMALL, "--scheduler", local_scheduler]


def _umt_style_splits(shared_data, per_domain=(3, 2)):
    """A few videos of UMT's own youtube_dev split file, kept in UMT's naming (train / val; val = the test set)."""
    full = json.loads((shared_data / "youtube_dev" / "splits.json").read_text())
    return {d: {"train": s["train"][: per_domain[0]], "val": s["val"][: per_domain[1]]} for d, s in full.items()}


@pytest.fixture(scope="module")
def youtube_cache(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("ytdev")
    splits = root / "splits.json"
    splits.write_text(json.dumps(_umt_style_splits(shared_data)))
    r = CliRunner().invoke(main, ["import", "umt", "--root", str(shared_data / "youtube_dev" / "umt"),
                                  "--out", str(root / "cache"), "--splits", str(splits)])
    assert r.exit_code == 0, r.output
    assert "test 4" in r.output and "train 6" in r.output
    return root / "cache"


def test_umt_split_names():
    assert umt_split_names({"dog": {"train": ["a"], "val": ["b"]}}) == {"dog": {"train": ["a"], "test": ["b"]}}
    both = {"BK": {"train": ["a"], "val": ["b"], "test": ["c"]}}
    assert umt_split_names(both) == both  # hl's naming: kept


def test_umt_val_list_is_the_test_set(shared_data):
    splits = _umt_style_splits(shared_data, (2, 1))
    df = umt_manifest(shared_data / "youtube_dev" / "umt", splits=splits)
    split = df.drop_duplicates("video_id").set_index("video_id")["split"]
    for s in splits.values():
        assert (split[s["val"]] == "test").all() and (split[s["train"]] == "train").all()
    assert "val" not in set(split)


def test_a_run_from_umt_splits_is_evaluated(youtube_cache, tmp_path, small):
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train-head", "--cache", str(youtube_cache), "--out", str(run), *small])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["eval", "--run", str(run)])
    assert r.exit_code == 0, r.output
    assert "nan" not in r.output and "(n=0)" not in r.output
    r = CliRunner().invoke(main, ["eval", "--run", str(run), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["metric"] == "mAP" and out["protocol"] == "final" and set(out["domains"]) == {"dog", "parkour"}
    assert 0 <= out["mean"] <= 1 and out["seeds"] == 1
    metrics = evaluate_run(run)
    assert out["domains"]["dog"]["seeds"]["0"] == pytest.approx(metrics.set_index("domain").value["dog"])
    assert out["mean"] == pytest.approx(metrics.value.mean())
    assert set(metrics.videos) == {2}  # the two `val` videos of each domain are its test videos


def test_a_run_without_test_videos_says_so(youtube_cache, tmp_path, small):
    manifest = pd.read_parquet(youtube_cache / "manifest.parquet")
    manifest["split"] = "train"
    path = tmp_path / "all_train.parquet"
    manifest.to_parquet(path)
    r = CliRunner().invoke(main, ["train-head", "--cache", str(youtube_cache), "--manifest", str(path),
                                  "--out", str(tmp_path / "run"), *small])
    assert r.exit_code == 0, r.output
    with pytest.raises(HLError, match="no test videos"):
        evaluate_run(tmp_path / "run")
    r = CliRunner().invoke(main, ["eval", "--run", str(tmp_path / "run")])
    assert r.exit_code == 2 and "no test videos" in r.output and "Traceback" not in r.output


def test_best_epoch_protocol_is_labelled_and_apart(youtube_cache, tmp_path, small):
    run = tmp_path / "tracked"
    r = CliRunner().invoke(main, ["train-head", "--cache", str(youtube_cache), "--out", str(run), "--track-test",
                                  *small])
    assert r.exit_code == 0, r.output
    plain = tmp_path / "plain"
    assert CliRunner().invoke(main, ["train-head", "--cache", str(youtube_cache), "--out", str(plain),
                                     *small]).exit_code == 0
    # tracking scores the test videos without changing the training: the final scores are the same
    pd.testing.assert_frame_equal(pd.read_parquet(run / "scores.parquet"), pd.read_parquet(plain / "scores.parquet"))
    tracked = pd.read_parquet(run / "epoch_scores.parquet")
    assert sorted(tracked.epoch.unique()) == [0, 1, 2]
    last = tracked[tracked.epoch == 2].drop(columns="epoch").reset_index(drop=True)
    final = pd.read_parquet(run / "scores.parquet")[last.columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(last, final)
    # best-epoch = the maximum over the tracked epochs of the per-epoch metric, per domain and seed
    from hl.pipelines.stages.evaluate import evaluate_best_epoch, evaluate_scores, manifest_labels

    best = evaluate_best_epoch(run).set_index("domain")
    labels = manifest_labels(pd.read_parquet(youtube_cache / "manifest.parquet"))
    per_epoch = {e: evaluate_scores(g.drop(columns="epoch"), labels).set_index("domain").value
                 for e, g in tracked.groupby("epoch")}
    for d in ("dog", "parkour"):
        values = [per_epoch[e][d] for e in sorted(per_epoch)]
        assert best.value[d] == pytest.approx(max(values))
        assert values[best.epoch[d]] == pytest.approx(max(values))
        assert best.value[d] >= evaluate_run(run).set_index("domain").value[d] - 1e-12
    r = CliRunner().invoke(main, ["eval", "--run", str(run), "--protocol", "best-epoch"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == "== best epoch picked on the test videos (the papers' protocol; optimistic) =="
    r = CliRunner().invoke(main, ["eval", "--run", str(run), "--protocol", "best-epoch", "--json"])
    out = json.loads(r.output)
    assert out["protocol"] == "best-epoch" and "optimistic" in out["heading"]
    assert out["mean"] == pytest.approx(best.value.mean()) and set(out["best_epochs"]) == {"dog", "parkour"}
    # the default evaluation never shows it, and a run without tracked epochs is refused with one line
    r = CliRunner().invoke(main, ["eval", "--run", str(run)])
    assert "papers' protocol" not in r.output and json.loads(
        CliRunner().invoke(main, ["eval", "--run", str(run), "--json"]).output)["protocol"] == "final"
    r = CliRunner().invoke(main, ["eval", "--run", str(plain), "--protocol", "best-epoch"])
    assert r.exit_code == 2 and "--track-test" in r.output and len(r.output.strip().splitlines()) == 1
