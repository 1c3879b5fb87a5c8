"""Named settings of the segment head (hl.heads.presets): the HPCL paper's values, overrides on top, the options
they need (Adam, a constant rate, the summed hard-pairs term), and `hl train-head --preset` end to end."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hl import api
from hl.common import HLError
from hl.heads.fit import HeadConfig, HeadModel, Video, _collate, _losses, fit, lr_schedule
from hl.heads.losses import boundary_pairs
from hl.heads.presets import PRESETS, preset_config, preset_names
from hl.pipelines.cli import main
from hl.pipelines.run import Run
from hl.pipelines.stages.train_segment import TrainSpec


def test_the_paper_preset_holds_the_papers_values():
    for name, (epochs, batch) in {"hpcl-paper-tvsum": (500, 1), "hpcl-paper-youtube": (100, 4)}.items():
        c = preset_config(name)
        a = c.arch
        assert (a.model, a.d_model, a.global_query, a.fusion, a.fusion_weights) == (
            "co-av", 256, "mean", "late", (1.0, 1.0, 1.0))  # Sec. 3.1-3.3, Tables 5-6
        assert (c.w_ce, c.w_hpcl, c.w_rank) == (1.0, 0.3, 0.1)  # Eq. 6
        assert (c.rank_k, c.rank_margin, c.rank_reduction) == (3, 0.7, "sum")  # Eq. 4
        assert (c.optimizer, c.lr, c.weight_decay, c.schedule, c.warmup_epochs) == ("adam", 1e-3, 1e-4, "constant", 0)
        assert (c.epochs, c.batch_size, c.standardize, a.input_dropout) == (epochs, batch, "none", 0.5)
    shipped = HeadConfig()
    assert shipped.arch.d_model == 64 and shipped.optimizer == "adamw" and shipped.schedule == "cosine"
    assert shipped.rank_reduction == "mean"  # a preset is never the default


def test_overrides_go_on_top_of_a_preset():
    c = preset_config("hpcl-paper-tvsum", epochs=7, w_rank=0.0, arch={"model": "cr-av"})
    assert (c.epochs, c.w_rank, c.arch.model, c.arch.d_model, c.w_hpcl) == (7, 0.0, "cr-av", 256, 0.3)
    spec = TrainSpec(cache="C", preset="hpcl-paper-youtube", head={"arch": {"global_query": "none"}})
    c = spec.head_config()
    assert (c.arch.global_query, c.arch.d_model, c.epochs) == ("none", 256, 100)
    assert PRESETS["hpcl-paper-tvsum"]["arch"]["model"] == "co-av"  # the registry itself is left untouched
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("hpcl")
    with pytest.raises(HLError, match="unknown preset"):
        TrainSpec(cache="C", preset="hpcl").head_config()
    with pytest.raises(HLError, match="ridge model takes no preset"):
        TrainSpec(cache="C", preset="hpcl-paper-tvsum", head={"model": "ridge"}).head_config()


def test_the_command_offers_every_preset():
    option = next(p for p in main.commands["train-head"].params if p.name == "preset")
    assert sorted(option.type.choices) == preset_names()


def test_constant_and_cosine_schedules():
    constant = lr_schedule(HeadConfig(schedule="constant", warmup_epochs=0, epochs=10), steps_per_epoch=4)
    assert [constant(s) for s in (0, 17, 39)] == [1.0, 1.0, 1.0]
    warm = lr_schedule(HeadConfig(schedule="constant", warmup_epochs=2, epochs=10), steps_per_epoch=4)
    assert warm(0) == pytest.approx(1 / 8) and warm(7) == 1.0 and warm(39) == 1.0
    cosine = lr_schedule(HeadConfig(warmup_epochs=0, epochs=10), steps_per_epoch=4)
    assert cosine(0) == 1.0 and cosine(20) == pytest.approx(0.5) and cosine(39) < 0.01
    with pytest.raises(ValueError, match="schedule"):
        HeadConfig(schedule="step")
    with pytest.raises(ValueError, match="optimizer"):
        HeadConfig(optimizer="sgd")


def _videos(n=3, t=24, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        labels = np.zeros(t, np.float32)
        labels[5 + i : 12 + i] = 1.0
        visual = rng.normal(size=(t, 12)) + 2.0 * labels[:, None]
        out.append(Video(f"v{i}", visual, rng.normal(size=(t, 6)), labels))
    return out


def test_the_summed_hard_pairs_term_is_the_mean_times_the_pairs():
    videos = _videos()
    terms = {}
    for reduction in ("mean", "sum"):
        cfg = preset_config("hpcl-paper-youtube", rank_reduction=reduction, rank_margin=2.5,
                            arch={"d_model": 16, "n_heads": 2, "ffn_dim": 32})
        torch.manual_seed(0)
        model = HeadModel(cfg, 12, 6).eval()
        batch = _collate(model, videos)
        with torch.no_grad():
            terms[reduction] = float(_losses(model, batch)["rank"])
    n_pairs = boundary_pairs(batch.labels, batch.mask, k=3).shape[0]
    assert n_pairs > 0 and terms["mean"] > 0
    assert terms["sum"] == pytest.approx(terms["mean"] * n_pairs, rel=1e-5)


def test_the_ablation_switches_change_what_trains():
    videos = _videos()
    small = {"epochs": 2, "arch": {"d_model": 16, "n_heads": 2, "ffn_dim": 32}}
    _, full = fit(videos, preset_config("hpcl-paper-youtube", **small), seed=0)
    _, ce = fit(videos, preset_config("hpcl-paper-youtube", w_hpcl=0.0, w_rank=0.0, **small), seed=0)
    assert full[-1]["hpcl"] > 0 and ce[-1]["hpcl"] == 0 and ce[-1]["rank"] == 0
    assert ce[-1]["loss"] == pytest.approx(ce[-1]["ce"])
    v_only, _ = fit(videos, preset_config("hpcl-paper-youtube", **{**small, "arch": {**small["arch"], "model": "v"}}))
    assert not any("audio" in n for n, _ in v_only.named_parameters())
    adamw, _ = fit(videos, preset_config("hpcl-paper-youtube", optimizer="adamw", **small), seed=0)
    adam, _ = fit(videos, preset_config("hpcl-paper-youtube", **small), seed=0)
    assert not torch.equal(adam.net.cooc_classifier.weight, adamw.net.cooc_classifier.weight)


@pytest.fixture(scope="module")
def youtube_cache(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("ytpreset")
    full = json.loads((shared_data / "youtube_dev" / "splits.json").read_text())
    splits = {"dog": {"train": full["dog"]["train"][:3], "val": full["dog"]["val"][:2]}}
    (root / "splits.json").write_text(json.dumps(splits))
    r = CliRunner().invoke(main, ["import", "umt", "--root", str(shared_data / "youtube_dev" / "umt"),
                                  "--out", str(root / "cache"), "--splits", str(root / "splits.json")])
    assert r.exit_code == 0, r.output
    return root / "cache"


def test_train_head_with_the_paper_preset(youtube_cache, tmp_path):
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train-head", "--cache", str(youtube_cache), "--out", str(run), "--preset",
                                  "hpcl-paper-youtube", "--epochs", "2", "--seeds", "0", "--workers", "1",
                                  "--track-test"])
    assert r.exit_code == 0, r.output
    head = Run.open(run).config.head
    assert head["arch"]["d_model"] == 256 and head["optimizer"] == "adam" and head["epochs"] == 2
    assert head["rank_reduction"] == "sum" and head["batch_size"] == 4
    recipe = Run.open(run).config.training["recipe"]
    assert recipe["source"] == "preset" and "hpcl-paper-youtube" in recipe["why"]
    assert recipe["overrides"] == {"epochs": 2}
    r = CliRunner().invoke(main, ["eval", "--run", str(run), "--protocol", "best-epoch"])
    assert r.exit_code == 0, r.output
    assert "best epoch picked on the test videos (the papers' protocol; optimistic)" in r.output
    assert "preset hpcl-paper-youtube" in r.output
    r = CliRunner().invoke(main, ["train-head", "--cache", str(youtube_cache), "--out", str(tmp_path / "x"),
                                  "--preset", "hpcl-paper-tvsum", "--model", "ridge"])
    assert r.exit_code == 2 and "--preset" in r.output and "Traceback" not in r.output
    with pytest.raises(HLError, match="unknown preset"):
        api.train_head(youtube_cache, tmp_path / "y", preset="hpcl")
    with pytest.raises(HLError, match="preset: not an option of the pixel head"):
        api.train_head(youtube_cache, tmp_path / "z", head="pixel", preset="hpcl-paper-tvsum")


def test_under_a_constant_rate_the_first_epochs_of_a_longer_run_are_the_shorter_run():
    """What lets benchmarks/ablations.py read an N-epoch run off the first N epochs of a longer one."""
    from hl.heads.fit import score

    videos = _videos()
    small = {"arch": {"d_model": 16, "n_heads": 2, "ffn_dim": 32}}
    tracked = {}
    fit(videos, preset_config("hpcl-paper-tvsum", epochs=4, **small), seed=3,
        watch=lambda epoch, m: tracked.setdefault(epoch, score(m, videos)))
    short, _ = fit(videos, preset_config("hpcl-paper-tvsum", epochs=2, **small), seed=3)
    for a, b in zip(tracked[1], score(short, videos)):
        np.testing.assert_array_equal(a, b)
    cosine = {**small, "schedule": "cosine"}  # not so under a decaying rate
    tracked.clear()
    fit(videos, preset_config("hpcl-paper-tvsum", epochs=4, **cosine), seed=3,
        watch=lambda epoch, m: tracked.setdefault(epoch, score(m, videos)))
    short, _ = fit(videos, preset_config("hpcl-paper-tvsum", epochs=2, **cosine), seed=3)
    assert not all(np.array_equal(a, b) for a, b in zip(tracked[1], score(short, videos)))
