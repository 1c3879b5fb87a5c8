import dataclasses

import numpy as np
import pytest
import torch

from hl.heads.cooccurrence import CooccurrenceConfig
from hl.heads.fit import HeadConfig, Video, fit, load, save, score
from hl.heads.metrics import average_precision

DV, DA = 8, 4
W_V = np.linspace(-1.0, 1.0, DV)
W_A = np.array([1.0, -1.0, 0.5, 0.0])


def synthetic(n, seed, t_range=(20, 40), audio=True):
    """Videos whose label is 1 where the features point along a fixed direction (visual and audio)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = int(rng.integers(*t_range))
        v = rng.normal(size=(t, DV))
        a = rng.normal(size=(t, DA))
        y = (v @ W_V + 0.5 * a @ W_A > 0).astype(np.float32)
        out.append(Video(f"s{seed}_{i}", v, a if audio else None, y))
    return out


def small(**kw) -> HeadConfig:
    arch = dict(d_model=16, n_heads=2, ffn_dim=32, dropout=0.1)
    arch.update(kw.pop("arch", {}))
    base = dict(epochs=40, lr=3e-3, batch_size=4, warmup_epochs=2)
    base.update(kw)
    return HeadConfig(arch=CooccurrenceConfig(**arch), **base)


def mean_ap(model, videos):
    return np.mean([average_precision(s, v.labels) for s, v in zip(score(model, videos), videos)])


@pytest.fixture(scope="module")
def trained():
    train = synthetic(8, seed=1)
    model, history = fit(train, small(), seed=0)
    return model, history


def test_learns_a_feature_direction(trained):
    model, history = trained
    assert len(history) == 40
    assert history[-1]["loss"] < history[0]["loss"]
    assert mean_ap(model, synthetic(6, seed=2)) > 0.9


def test_scores_are_per_segment_probabilities_independent_of_batch_mates(trained):
    model, _ = trained
    short, long = synthetic(2, seed=3, t_range=(10, 11))[0], synthetic(1, seed=4, t_range=(60, 61))[0]
    alone = score(model, [short])[0]
    together = score(model, [long, short, long])
    assert alone.shape == (short.num_segments,) and alone.dtype == np.float32
    assert ((alone >= 0) & (alone <= 1)).all()
    np.testing.assert_allclose(together[1], alone, atol=1e-5)
    assert together[0].shape == (60,)


def test_same_seed_same_weights_and_global_rng_untouched():
    train = synthetic(4, seed=5)
    cfg = small(epochs=3)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a, ha = fit(train, cfg, seed=7)
    after = torch.rand(3)
    np.testing.assert_array_equal(before.numpy(), after.numpy())
    b, hb = fit(train, cfg, seed=7)
    c, _ = fit(train, cfg, seed=8)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert ha == hb
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.state_dict().values(), c.state_dict().values()))



def test_fits_in_several_threads_of_one_process_give_the_weights_each_gives_alone():
    """A Dask worker with several threads runs fits side by side: each must still be its seed's model."""
    from concurrent.futures import ThreadPoolExecutor

    train = synthetic(4, seed=5)
    cfg = small(epochs=6)  # dropout 0.1: every step draws from torch's generator
    alone = {seed: fit(train, cfg, seed=seed)[0].state_dict() for seed in (1, 2, 3, 4)}
    with ThreadPoolExecutor(4) as pool:
        side_by_side = dict(zip((1, 2, 3, 4), pool.map(lambda s: fit(train, cfg, seed=s)[0].state_dict(),
                                                       (1, 2, 3, 4))))
    for seed, weights in alone.items():
        for name, p in weights.items():
            assert torch.equal(p, side_by_side[seed][name]), (seed, name)

def test_videos_without_audio_train_and_score():
    train = synthetic(4, seed=6) + synthetic(2, seed=7, audio=False)
    model, history = fit(train, small(epochs=5), seed=0)
    assert all(np.isfinite(r["loss"]) for r in history)
    scores = score(model, synthetic(2, seed=8, audio=False) + synthetic(1, seed=9))
    assert all(np.isfinite(s).all() for s in scores)
    # a visual-only model needs no audio anywhere
    vis_only, _ = fit(synthetic(3, seed=10, audio=False), small(epochs=2, arch={"model": "v"}), seed=0)
    assert vis_only.audio_dim == 0
    assert np.isfinite(score(vis_only, synthetic(1, seed=11))[0]).all()
    with pytest.raises(ValueError, match="needs audio"):
        fit(synthetic(2, seed=12, audio=False), small(epochs=1), seed=0)


def test_audio_of_another_length_is_cropped_or_masked():
    v = synthetic(1, seed=13)[0]
    longer = Video("l", v.visual, np.concatenate([v.audio, v.audio[:3]]), v.labels)
    shorter = Video("s", v.visual, v.audio[:-4], v.labels)
    model, _ = fit([v, longer, shorter], small(epochs=2), seed=0)
    s_v, s_long, s_short = score(model, [v, longer, shorter])
    np.testing.assert_allclose(s_long, s_v, atol=1e-6)
    assert s_short.shape == s_v.shape and np.isfinite(s_short).all()


@pytest.mark.parametrize("standardize", ["video", "dataset", "none"])
def test_save_load_round_trip(tmp_path, standardize):
    train = synthetic(3, seed=14)
    cfg = small(epochs=2, standardize=standardize, arch={"global_query": "random", "fusion_weights": (1, 0, 2)})
    model, _ = fit(train, cfg, seed=0)
    path = tmp_path / "head.pt"
    save(model, cfg, path)
    loaded = load(path)
    assert loaded.config == cfg
    assert not loaded.training
    test = synthetic(2, seed=15)
    for a, b in zip(score(model, test), score(loaded, test)):
        np.testing.assert_array_equal(a, b)
    if standardize == "dataset":
        assert not torch.equal(loaded.visual_mean, torch.zeros(DV))


def test_early_stopping_keeps_the_best_validation_epoch():
    train, val = synthetic(4, seed=16), synthetic(2, seed=17)
    seen = []
    model, history = fit(train, small(epochs=12, patience=2), seed=0, val=val,
                         progress=lambda epoch, rec: seen.append(epoch))
    assert seen == [r["epoch"] for r in history]
    losses = [r["val_loss"] for r in history]
    best = int(np.argmin(losses))
    assert len(history) == 12 or len(history) == best + 3
    # the returned weights are those of the best epoch: the validation loss comes out the same again
    from hl.heads.fit import _collate, _losses

    with torch.no_grad():
        again = float(_losses(model, _collate(model, val))["loss"])
    assert again == pytest.approx(losses[best], rel=1e-5)


def test_config_round_trips_through_a_dict_and_rejects_typos():
    cfg = small(arch={"model": "cr-av", "fusion": "early"}, tau=0.2)
    assert HeadConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown HeadConfig fields"):
        HeadConfig.from_dict({**cfg.to_dict(), "epoch": 3})
    with pytest.raises(ValueError, match="standardize"):
        dataclasses.replace(cfg, standardize="global")


def test_bad_videos_raise_clear_errors():
    with pytest.raises(ValueError, match="labels for"):
        Video("x", np.zeros((5, 2)), None, np.zeros(4))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        Video("x", np.zeros((3, 2)), None, np.array([0, 1.5, 1]))
    with pytest.raises(ValueError, match="NaN"):
        Video("x", np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="need labels"):
        fit([Video("x", np.zeros((3, DV)), np.zeros((3, DA)))], small(epochs=1))
    with pytest.raises(ValueError, match="feature sizes"):
        fit(synthetic(1, seed=0) + [Video("y", np.zeros((3, DV + 1)), np.zeros((3, DA)), np.zeros(3))], small())


def test_soft_labels_train_and_rank_like_their_binary_split():
    """Soft targets in [0, 1] (e.g. the share of annotators who rate a segment highly) train the head: the CE term
    takes them as given, HPCL and the rank term split them at 0.5."""
    rng = np.random.default_rng(3)
    soft = []
    for v in synthetic(8, seed=4):
        s = np.clip(v.labels * 0.8 + 0.1 + rng.uniform(-0.05, 0.05, v.num_segments), 0.0, 1.0)
        soft.append(Video(v.video_id, v.visual, v.audio, s))
    assert not np.isin(soft[0].labels, (0.0, 1.0)).any()
    model, history = fit(soft[:6], small(), seed=0)
    assert history[-1]["ce"] < history[0]["ce"]
    assert history[0]["hpcl"] > 0
    held = synthetic(8, seed=4)[6:]
    assert mean_ap(model, held) > 0.85
