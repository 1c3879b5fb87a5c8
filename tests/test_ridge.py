"""The ridge baseline: closed-form weights, folds of whole videos, alpha chosen on training videos only, and
`hl train-head --model ridge` trained, evaluated and used for prediction like any head."""

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from hl.heads.fit import Video
from hl.heads.ridge import RidgeConfig, fit_ridge, load_ridge, ridge_path, save_ridge, video_folds
from hl.heads.segment_heads import load_head, score_head
from hl.pipelines.cache.umt_import import import_umt
from hl.pipelines.cli import main
from hl.pipelines.run import Run
from hl.pipelines.stages.evaluate import evaluate_run
from hl.pipelines.stages.predict import predict


@pytest.mark.parametrize("rows", [5, 40])  # the dual (fewer rows than columns) and the primal form
def test_ridge_path_is_the_closed_form(rows):
    rng = np.random.default_rng(rows)
    x, y = rng.normal(size=(rows, 12)), rng.normal(size=rows)
    for alpha, w in ridge_path(x, y, [0.1, 10.0]).items():
        np.testing.assert_allclose(w, np.linalg.solve(x.T @ x + alpha * np.eye(12), x.T @ y), atol=1e-8)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 50), k=st.integers(2, 10), seed=st.integers(0, 2**31))
def test_video_folds_partition_the_videos(n, k, seed):
    folds = video_folds(n, k, seed)
    assert sorted(i for f in folds for i in f) == list(range(n))
    assert len(folds) == min(n, k) and max(map(len, folds)) - min(map(len, folds)) <= 1


def _videos(n, seed=0, noise=0.3):
    """Videos whose label is 1 where a fixed direction of the visual features is positive."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=16)
    out = []
    for k in range(n):
        x = rng.normal(size=(30, 16)).astype(np.float32)
        labels = ((x @ direction + noise * rng.normal(size=30)) > 0).astype(np.float32)
        out.append(Video(f"v{k}", x, rng.normal(size=(30, 4)).astype(np.float32), labels))
    return out


def test_fit_ridge_learns_and_records_its_choice(tmp_path):
    videos = _videos(11)
    train, test = videos[:8], videos[8:]
    model, record = fit_ridge(train, RidgeConfig(folds=4), seed=0)
    assert record["folds"] == 4 and record["alpha"] in RidgeConfig().alphas
    assert record["validation"][str(record["alpha"])] == max(record["validation"].values())
    from hl.heads.metrics import average_precision

    aps = [average_precision(s, v.labels) for v, s in zip(test, model.score(test))]
    assert np.mean(aps) > 0.8  # chance is about 0.5
    assert all(((s > 0) & (s < 1)).all() for s in model.score(test))
    save_ridge(model, RidgeConfig(), tmp_path / "r.pt")
    again = load_head(tmp_path / "r.pt")
    for a, b in zip(score_head(again, test), model.score(test)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert load_ridge(tmp_path / "r.pt").alpha == model.alpha
    # the metric decides: one that prefers the strongest regularisation gets it
    _, rec = fit_ridge(train, RidgeConfig(), seed=0, metric=lambda idx, s: 0.0)
    assert rec["alpha"] == max(RidgeConfig().alphas)
    _, one = fit_ridge(train[:1], RidgeConfig())
    assert one["folds"] == 0 and "one training video" in one["reason"]


@pytest.fixture(scope="module")
def tvsum_cache(shared_data, tmp_path_factory):
    """Two TVSum domains in UMT's split naming (val = the test set)."""
    splits = {"BK": {"train": ["WxtbjNsCQ8A", "EE-bNr36nyA", "oDXZc0tZe04", "uGu_10sucQo"], "val": ["Se3oxnaPsz0"]},
              "VT": {"train": ["gzDbaEs1Rlg", "XzYM3PfTM4w", "98MoyGZKHXc", "AwmHb44_ouw"], "val": ["J0nA4VgnoCo"]}}
    out = tmp_path_factory.mktemp("tvsum2")
    import_umt(shared_data / "tvsum" / "umt", out, splits=splits)
    return out


def test_train_head_ridge(tvsum_cache, tmp_path):
    run = tmp_path / "ridge"
    r = CliRunner().invoke(main, ["train-head", "--cache", str(tvsum_cache), "--out", str(run), "--model", "ridge",
                                  "--seeds", "0,1", "--workers", "1"])
    assert r.exit_code == 0, r.output
    cfg = Run.open(run).config
    assert cfg.head["model"] == "ridge"
    metrics = evaluate_run(run)
    assert set(metrics.domain) == {"BK", "VT"} and metrics.value.between(0, 1).all() and len(metrics) == 4
    rec = Run.open(run).selection("BK", 0)
    assert rec["folds"] == 4 and rec["alpha"] in RidgeConfig().alphas  # leave-one-video-out on 4 train videos
    r = CliRunner().invoke(main, ["eval", "--run", str(run)])
    assert r.exit_code == 0 and "model ridge" in r.output
    preds = predict(run, tvsum_cache, ["Se3oxnaPsz0"])
    assert preds["Se3oxnaPsz0"]["heads"] == "BK" and len(preds["Se3oxnaPsz0"]["scores"]) > 0
    r = CliRunner().invoke(main, ["train-head", "--cache", str(tvsum_cache), "--out", str(tmp_path / "x"),
                                  "--model", "ridge", "--epochs", "3"])
    assert r.exit_code == 2 and "--epochs: not an option of --model ridge" in r.output
