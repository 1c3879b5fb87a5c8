"""Heads from the cache: UMT import, per-domain and joint training as Dask tasks, eval, predict, CLI."""
import json

import h5py
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from hl.data_manifests.umt import umt_features
from hl.pipelines.cache import FeatureStore
from hl.pipelines.cache.umt_import import import_umt
from hl.pipelines.cli import main
from hl.pipelines.run import Run
from hl.pipelines.stages.evaluate import (
    evaluate_run,
    evaluate_run_seed_mean,
    evaluate_scores,
    manifest_labels,
    summary_table,
)
from hl.pipelines.stages.predict import predict, write_predictions
from hl.pipelines.stages.train_segment import TrainSpec, train_heads

SMALL = {"epochs": 3, "arch": {"d_model": 32, "n_heads": 2, "ffn_dim": 64}}
DOMAINS = ("BK", "VT")


@pytest.fixture(scope="module")
def tvsum_cache(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tvsum_cache")
    n, manifest = import_umt(shared_data / "tvsum" / "umt", out)
    assert n == 50 and manifest.exists()
    return out


@pytest.fixture(scope="module")
def run(tvsum_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    spec = TrainSpec(cache=str(tvsum_cache), domains=DOMAINS, seeds=(0, 1), head=SMALL)
    metrics = train_heads(spec, out, workers=2)
    return out, metrics


def test_import_umt_matches_release_and_manifest(tvsum_cache, shared_data):
    store = FeatureStore(tvsum_cache)
    assert set(store.extractors()) == {"i3d", "i3d_flow", "pann"}
    manifest = store.manifest()
    assert manifest.video_id.nunique() == 50 and manifest.domain.nunique() == 10
    raw = umt_features(shared_data / "tvsum" / "umt", "kLxoNp-UchI")
    for name in ("i3d", "i3d_flow", "pann"):  # cropped to 64 rows, as the labels
        x = store.features("kLxoNp-UchI", name)
        assert x.shape[0] == 64 == (manifest.video_id == "kLxoNp-UchI").sum()
        np.testing.assert_array_equal(x, raw[name][:64])
    with h5py.File(store.feature_path("kLxoNp-UchI", "i3d"), "r") as f:
        np.testing.assert_allclose(f["segments"][:2], [[0, 2], [2, 4]])


def test_training_writes_a_complete_run(run):
    out, metrics = run
    assert sorted(metrics.domain.unique()) == list(DOMAINS)
    assert len(metrics) == 4 and (metrics.metric == "top5_mAP").all()
    assert metrics.value.between(0, 1).all()
    for d in DOMAINS:
        assert sorted(p.name for p in (out / "models" / d).glob("*.pt")) == ["seed0.pt", "seed1.pt"]
    cfg = Run.open(out).config
    assert cfg.kind == "segment" and cfg.head["epochs"] == 3 and cfg.domains == list(DOMAINS)
    recipe = cfg.training["recipe"]  # what set the head, and why
    assert recipe["source"] == "shipped" and recipe["overrides"] == SMALL and "not tuned on this data" in recipe["why"]
    scores = pd.read_parquet(out / "scores.parquet")
    assert set(scores.video_id) == {"Se3oxnaPsz0", "J0nA4VgnoCo"}  # the test video of BK and of VT
    history = json.loads((out / "history" / "BK-seed0.json").read_text())
    assert len(history) == 3 and all(np.isfinite(h["loss"]) for h in history)
    table = summary_table(metrics)
    assert list(table.domain) == [*DOMAINS, "MEAN"]
    per_seed = metrics.groupby("seed").value.mean()
    assert table.iloc[-1]["mean"] == pytest.approx(per_seed.mean())


def test_eval_recomputes_the_stored_metrics(run):
    out, metrics = run
    again = evaluate_run(out)
    pd.testing.assert_frame_equal(again.sort_values(["domain", "seed"]).reset_index(drop=True),
                                  metrics.sort_values(["domain", "seed"]).reset_index(drop=True))
    mini = evaluate_run(out, tvsum_protocol="mini-net")
    assert not np.allclose(mini.value, metrics.value)  # a different protocol, a different number


def test_seed_mean_is_the_figure_of_what_predict_scores(run, tvsum_cache):
    out, metrics = run
    seed_mean = evaluate_run_seed_mean(out)
    assert list(seed_mean.domain) == list(DOMAINS) and (seed_mean.seed == -1).all()
    test_ids = ["Se3oxnaPsz0", "J0nA4VgnoCo"]  # the test videos of BK and VT
    preds = predict(out, tvsum_cache, test_ids)
    manifest = FeatureStore(tvsum_cache).manifest()
    domain = {"Se3oxnaPsz0": "BK", "J0nA4VgnoCo": "VT"}
    rows = pd.DataFrame([{"video_id": v, "domain": domain[v], "seed": -1, "segment": i, "score": float(x)}
                         for v in test_ids for i, x in enumerate(preds[v]["scores"])])
    again = evaluate_scores(rows, manifest_labels(manifest[manifest.video_id.isin(test_ids)]))
    np.testing.assert_allclose(again.value, seed_mean.value, atol=1e-6)
    # not either seed's figure: the two seeds' heads differ, and so does their mean
    assert any(not np.allclose(metrics[metrics.domain == d].value.to_numpy(),
                               seed_mean[seed_mean.domain == d].value.item()) for d in DOMAINS)
    r = CliRunner().invoke(main, ["eval", "--run", str(out)])
    assert r.exit_code == 0 and "mean of the seeds' heads" in r.output
    line = next(x for x in r.output.splitlines() if x.startswith("BK"))
    assert line.split()[-1] == f"{seed_mean[seed_mean.domain == 'BK'].value.item():.4f}"
    r = CliRunner().invoke(main, ["eval", "--run", str(out), "--json"])
    got = json.loads(r.output)["seed_mean"]
    assert got["domains"]["VT"] == pytest.approx(seed_mean[seed_mean.domain == "VT"].value.item())
    assert got["mean"] == pytest.approx(seed_mean.value.mean())


def test_same_seed_same_scores(run, tvsum_cache, tmp_path):
    out, _ = run
    spec = TrainSpec(cache=str(tvsum_cache), domains=("BK",), seeds=(0,), head=SMALL)
    train_heads(spec, tmp_path / "again", workers=1)
    a = pd.read_parquet(out / "scores.parquet").query("domain == 'BK' and seed == 0")
    b = pd.read_parquet(tmp_path / "again" / "scores.parquet")
    np.testing.assert_allclose(a.score.to_numpy(), b.score.to_numpy(), rtol=1e-5, atol=1e-6)


def test_predict_uses_the_domain_heads(run, tvsum_cache, tmp_path):
    out, _ = run
    preds = predict(out, tvsum_cache, ["0tmA_C6XwfM", "98MoyGZKHXc"])
    store = FeatureStore(tvsum_cache)
    for vid, p in preds.items():
        assert len(p["scores"]) == len(store.segments(vid, "i3d")) == len(p["segments"])
        assert np.all((p["scores"] >= 0) & (p["scores"] <= 1))
    assert preds["98MoyGZKHXc"]["heads"] == "VT"  # its domain's heads
    assert preds["0tmA_C6XwfM"]["heads"] == "all"  # GA: the run has no heads for it, so every head
    js, table = write_predictions(preds, tmp_path / "pred.json")
    data = json.loads(js.read_text())
    assert set(data) == set(preds) and len(data["0tmA_C6XwfM"]) == len(preds["0tmA_C6XwfM"]["scores"])
    assert set(pd.read_parquet(table).columns) >= {"video_id", "segment", "start", "end", "score"}


def test_joint_model(tvsum_cache, tmp_path, local_scheduler):
    spec = TrainSpec(cache=str(tvsum_cache), domains=DOMAINS, seeds=(0,), joint=True, head=SMALL)
    metrics = train_heads(spec, tmp_path / "joint", scheduler=local_scheduler)
    assert sorted(metrics.domain) == list(DOMAINS)  # evaluated per domain
    assert [p.name for p in (tmp_path / "joint" / "models").iterdir()] == ["joint"]


def test_validation_split_is_carved_from_training_videos(tvsum_cache, tmp_path, local_scheduler):
    spec = TrainSpec(cache=str(tvsum_cache), domains=("BK",), seeds=(0,), val_fraction=0.25,
                     head={**SMALL, "epochs": 4})
    train_heads(spec, tmp_path / "val", scheduler=local_scheduler)
    tasks = pd.read_parquet(tmp_path / "val" / "tasks.parquet")
    assert tasks.train_videos.item() == 3 and tasks.val_videos.item() == 1 and tasks.test_videos.item() == 1


def test_cli_train_eval_predict(tvsum_cache, tmp_path, local_scheduler):
    r = CliRunner().invoke(main, ["train-head", "--cache", str(tvsum_cache), "--out", str(tmp_path / "r"),
                                  "--domain", "BK", "--seeds", "0", "--epochs", "2", "--model", "v",
                                  "--audio", "", "--scheduler", local_scheduler])
    assert r.exit_code == 0, r.output
    assert "BK" in r.output and "MEAN" in r.output
    cfg = Run.open(tmp_path / "r").config
    assert cfg.head["arch"]["model"] == "v" and cfg.audio == []
    r = CliRunner().invoke(main, ["eval", "--run", str(tmp_path / "r")])
    assert r.exit_code == 0 and "top5_mAP" in r.output
    r = CliRunner().invoke(main, ["predict", "--run", str(tmp_path / "r"), "--cache", str(tvsum_cache),
                                  "--out", str(tmp_path / "p.json"), "--video", "98MoyGZKHXc"])
    assert r.exit_code == 0 and json.loads((tmp_path / "p.json").read_text()).keys() == {"98MoyGZKHXc"}
    # one-line errors, no tracebacks
    r = CliRunner().invoke(main, ["train-head", "--cache", str(tmp_path), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "no manifest" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["train-head", "--cache", str(tvsum_cache), "--out", str(tmp_path / "x"),
                                  "--domain", "nope"])
    assert r.exit_code == 2 and "not in the manifest" in r.output
    r = CliRunner().invoke(main, ["predict", "--run", str(tmp_path), "--cache", str(tvsum_cache),
                                  "--out", str(tmp_path / "q.json")])
    assert r.exit_code == 2 and "not a run directory" in r.output
