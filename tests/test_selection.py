"""Model selection on the training videos only: folds, the choice by the dataset's metric, the refit reproducing
the chosen epoch, fold-averaged heads, and a choice that no test label can move."""
import copy

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hl.data_manifests.schema import conform, read_manifest, write_manifest
from hl.heads.fit import HeadConfig, Video, fit
from hl.heads.selection import SelectionConfig, choose, chosen_config, fold_curve, folds_for
from hl.pipelines.cache import FeatureStore
from hl.pipelines.run import Run
from hl.pipelines.stages.predict import predict
from hl.pipelines.stages.train_segment import TrainSpec, train_heads

TINY = HeadConfig.from_dict({**HeadConfig().to_dict(), "arch": {**HeadConfig().to_dict()["arch"], "d_model": 16,
                                                                 "n_heads": 2, "ffn_dim": 32}})
SMALL_HEAD = {"arch": {"d_model": 16, "n_heads": 2, "ffn_dim": 32}}
SMALL_SELECT = {"max_epochs": 4, "epoch_step": 2, "grid": [{}, {"lr": 1e-3}]}


def _videos(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        x = rng.normal(size=(12, 6)).astype(np.float32)
        out.append(Video(f"v{k}", x, rng.normal(size=(12, 3)).astype(np.float32), (x[:, 0] > 0).astype(np.float32)))
    return out


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3), min_size=1, max_size=4),
       st.integers(1, 3))
def test_choose_takes_the_best_mean_over_folds(values, candidates):
    """curves[c][fold] = {2: v, 4: v', 6: v''}; the choice is the (candidate, epochs) of the highest fold mean."""
    config = SelectionConfig(max_epochs=6, epoch_step=2, grid=[{"lr": 10.0 ** -k} for k in range(candidates)])
    curves = {c: [{2 * (i + 1): v[i] + 0.01 * c for i in range(3)} for v in values] for c in range(candidates)}
    setting, epochs, record = choose(curves, TINY, config)
    means = {(c, e): np.mean([fc[e] for fc in curves[c]]) for c in curves for e in (2, 4, 6)}
    best = max(means.values())
    assert record["chosen"]["validation"] == pytest.approx(best)
    assert means[(config.grid.index(setting), epochs)] == pytest.approx(best)
    assert len(record["table"]) == 3 * candidates


def test_folds_adapt_to_the_number_of_videos():
    config = SelectionConfig(folds=4)
    assert folds_for(1, config) == []
    assert sorted(map(len, folds_for(4, config))) == [1, 1, 1, 1]  # TVSum: leave-one-video-out
    assert sorted(map(len, folds_for(12, config))) == [3, 3, 3, 3]
    assert [len(f) for f in folds_for(40, config)] == [10]  # many videos: one held-out quarter
    assert len(set(folds_for(40, config)[0])) == 10 and max(folds_for(40, config)[0]) < 40


def test_the_refit_reproduces_the_chosen_epoch():
    """A head stopped at epoch e of a longer schedule equals the state at epoch e of the full run."""
    videos = _videos(4)
    config = SelectionConfig(max_epochs=6, epoch_step=2)
    states = {}

    def keep(epoch, model):
        states[epoch + 1] = copy.deepcopy(model.state_dict())

    full = chosen_config(TINY, {"lr": 1e-3}, 6, config)
    fit(videos, full, seed=3, watch=keep)
    short, _ = fit(videos, chosen_config(TINY, {"lr": 1e-3}, 4, config), seed=3)
    assert short.config.lr == 1e-3 and short.config.schedule_epochs == 6
    for k, v in short.state_dict().items():
        torch.testing.assert_close(v, states[4][k])
    assert any(not torch.equal(states[4][k], states[6][k]) for k in states[4])


def test_fold_curve_scores_only_the_held_out_videos():
    videos = _videos(5)
    seen = []

    def metric(idx, scores):
        seen.append(list(idx))
        assert [len(s) for s in scores] == [videos[i].num_segments for i in idx]
        return float(len(seen))

    curve = fold_curve(videos, [1, 3], TINY, {}, SelectionConfig(max_epochs=4, epoch_step=2), metric)
    assert curve == {2: 1.0, 4: 2.0} and seen == [[1, 3], [1, 3]]


def _cache(root, n_train=6, segments=12):
    """A small cache: `n_train` train videos and 2 test videos of one domain, 8-d visual and 4-d audio features,
    label 1 where the first visual feature is positive."""
    store = FeatureStore(root)
    rng = np.random.default_rng(0)
    rows = []
    for k in range(n_train + 2):
        vid = f"v{k}"
        seg = np.stack([np.arange(segments) * 2.0, np.arange(segments) * 2.0 + 2.0], axis=1)
        x = rng.normal(size=(segments, 8)).astype(np.float32)
        for name, arr in (("vis", x), ("aud", rng.normal(size=(segments, 4)).astype(np.float32))):
            path = store.write_unit(vid, name, {"features": arr, "segments": seg},
                                    {"config": {"source": "test", "extractor": name}, "weights_hash": "w",
                                     "config_hash": "c"})
            store.write_index_row({"video_id": vid, "extractor": name, "status": "ok", "segments": segments,
                                   "dim": arr.shape[1], "file": path.relative_to(store.root).as_posix(),
                                   "fingerprint": "f", "config_hash": "c", "weights_hash": "w"})
        rows += [{"video_id": vid, "dataset": "user", "domain": "d", "split": "train" if k < n_train else "test",
                  "segment": i, "start": seg[i, 0], "end": seg[i, 1], "label": int(x[i, 0] > 0), "scores": None}
                 for i in range(segments)]
    write_manifest(conform(pd.DataFrame(rows)), store.manifest_path)
    return store.root


def _spec(cache, **kw):
    return TrainSpec(cache=str(cache), visual=("vis",), audio=("aud",), seeds=(0,), head=SMALL_HEAD, **kw)


def test_selection_in_a_run_is_recorded_and_blind_to_test_labels(tmp_path, local_scheduler):
    cache = _cache(tmp_path / "cache")
    train_heads(_spec(cache, select=SMALL_SELECT), tmp_path / "a", scheduler=local_scheduler)
    run = Run.open(tmp_path / "a")
    rec = run.selection("d")
    assert rec["train_videos"] == 6 and rec["folds"] == 4 and rec["final"] == "refit"
    assert rec["chosen"]["setting"] in SMALL_SELECT["grid"] and rec["chosen"]["epochs"] in (2, 4)
    assert len(rec["table"]) == 4 and "validation" in rec["reason"]
    assert run.tasks().epochs.item() == rec["chosen"]["epochs"]  # the refit ran the chosen number of epochs
    recipe = run.config.training["recipe"]
    assert recipe["source"] == "select" and "RUN/selection/" in recipe["why"]
    # the test videos' labels changed: the same choice, to the last figure
    manifest = read_manifest(cache / "manifest.parquet")
    test = manifest.split == "test"
    manifest.loc[test, "label"] = 1 - manifest.loc[test, "label"]
    write_manifest(manifest, tmp_path / "flipped.parquet")
    train_heads(_spec(cache, select=SMALL_SELECT, manifest=str(tmp_path / "flipped.parquet")), tmp_path / "b",
                scheduler=local_scheduler)
    assert Run.open(tmp_path / "b").selection("d") == rec


def test_fold_heads_are_averaged(tmp_path, local_scheduler):
    cache = _cache(tmp_path / "cache")
    train_heads(_spec(cache, select={**SMALL_SELECT, "grid": [{}], "final": "folds"}), tmp_path / "f",
                scheduler=local_scheduler)
    run = Run.open(tmp_path / "f")
    assert [p.name for p in run.models["d"]] == [f"seed0-fold{j}.pt" for j in range(4)]
    scored = run.scores().query("video_id == 'v6'").sort_values("segment").score.to_numpy()
    preds = predict(run, cache, ["v6"])["v6"]["scores"]
    np.testing.assert_allclose(preds, scored, rtol=1e-5, atol=1e-6)  # inference averages them too


def test_cli_select_options(tmp_path):
    from click.testing import CliRunner

    from hl.pipelines.cli import main

    cache = _cache(tmp_path / "cache")
    r = CliRunner().invoke(main, ["train-head", "--cache", str(cache), "--out", str(tmp_path / "r"),
                                  "--select-final", "folds"])
    assert r.exit_code == 2 and "--select-final: only with --select" in r.output
    r = CliRunner().invoke(main, ["train-head", "--head", "pixel", "--cache", str(cache), "--out",
                                  str(tmp_path / "r"), "--select"])
    assert r.exit_code == 2 and "--select: not an option of --head pixel" in r.output
