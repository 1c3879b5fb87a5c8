"""The pixel-level distinction (PLD) head: pseudo labels, decoders, training from the cache, prediction, pictures.

The end-to-end test generates videos whose highlight segments show a moving (textured) object, extracts
random-init C3D conv5b maps and the weight-free motion saliency, trains the decoder from the cache and checks
it on held-out videos: segment mAP and how well its maps cover the object.
"""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pixel_synthetic import object_overlap, textured_dataset

from hl.common import HLError
from hl.data_manifests.schema import write_manifest
from hl.heads.metrics import average_precision
from hl.heads.pixel_decoder import (
    C3DDecoder,
    PixelDistinction,
    TasedDecoder,
    load_pixel_head,
    load_tased_decoder,
    pixel_bce,
    save_pixel_head,
)
from hl.heads.pixel_labels import (
    beta_for,
    box_mask,
    fit_to_output,
    frame_segments,
    normalise_saliency,
    pseudo_labels,
    segment_scores,
)
from hl.pipelines.cache import FeatureStore
from hl.pipelines.run import Run

# -- pseudo labels ------------------------------------------------------------------------------------------------


def test_beta_defaults_follow_the_paper():
    assert beta_for("surfing") == 0.0005 and beta_for("BK") == 0.0005
    assert beta_for("dog") == beta_for("gymnastics") == beta_for("skiing") == 0.001
    assert beta_for("dog", 0.002) == 0.002  # an explicit number applies to every domain
    assert beta_for("dog", {"surfing": 0.01}) == 0.001 and beta_for("surfing", {"surfing": 0.01}) == 0.01
    with pytest.raises(ValueError, match="beta"):
        beta_for("dog", -1.0)


maps_strategy = st.integers(0, 2**32 - 1).map(
    lambda s: np.random.default_rng(s).integers(0, 256, size=(3, 6, 9)).astype(np.uint8))


@settings(max_examples=40, deadline=None)
@given(sal=maps_strategy)
def test_normalisations(sal):
    sal[1] = 0  # an all-zero frame
    s = normalise_saliency(sal, "sum")
    nonzero = sal.reshape(3, -1).sum(1) > 0
    np.testing.assert_allclose(s.reshape(3, -1).sum(1)[nonzero], 1.0, rtol=1e-5)
    assert not s[1].any()
    m = normalise_saliency(sal, "max")
    np.testing.assert_allclose(m.reshape(3, -1).max(1)[nonzero], 1.0)
    np.testing.assert_allclose(normalise_saliency(sal, "none"), sal / 255.0, rtol=1e-6)
    # sum normalisation does not care about the map's scale
    np.testing.assert_allclose(normalise_saliency(sal.astype(np.float32) * 3.0, "sum"), s, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(sal=maps_strategy, flags=st.lists(st.booleans(), min_size=3, max_size=3),
       b1=st.floats(0, 0.05), b2=st.floats(0, 0.05))
def test_pseudo_labels_rules(sal, flags, b1, b2):
    flags = np.array(flags)
    lo, hi = min(b1, b2), max(b1, b2)
    a, b = pseudo_labels(sal, flags, lo), pseudo_labels(sal, flags, hi)
    assert a.dtype == np.uint8 and set(np.unique(a)) <= {0, 1}
    assert not a[~flags].any()  # non-highlight frames are 0 everywhere
    assert np.all(b <= a)  # a larger beta labels a subset
    expected = (normalise_saliency(sal, "sum") > lo) & flags[:, None, None]
    np.testing.assert_array_equal(a, expected)
    whole = pseudo_labels(sal, flags, lo, spatial=False)  # w/o spatial: the whole highlight frame
    np.testing.assert_array_equal(whole, np.broadcast_to(flags[:, None, None], sal.shape))


def test_pseudo_labels_errors():
    with pytest.raises(ValueError, match="norm"):
        normalise_saliency(np.zeros((1, 2, 2)), "l2")
    with pytest.raises(ValueError, match="highlight"):
        pseudo_labels(np.zeros((2, 4, 4), np.uint8), np.zeros(3), 0.1)


def test_labels_fit_the_decoder_view():
    lab = np.zeros((1, 128, 171), np.uint8)
    lab[0, 8:64, 29:85] = 1  # the top-left quarter of C3D's 112 x 112 centre crop
    view = (8 / 128, 120 / 128, 29 / 171, 141 / 171)
    out = fit_to_output(lab, view, (112, 112))
    assert out.shape == (1, 112, 112) and out[0, :56, :56].all() and not out[0, 56:].any() and not out[0, :, 56:].any()
    half = fit_to_output(np.kron(lab, np.ones((1, 2, 2), np.uint8)), view, (56, 56))  # area resize keeps it
    assert half[0, :28, :28].all() and half.sum() == 28 * 28
    np.testing.assert_array_equal(fit_to_output(lab, (0, 1, 0, 1), (128, 171)), lab)
    mask = box_mask((29, 8, 85, 64), (171, 128), view, (112, 112))
    np.testing.assert_array_equal(mask, out[0].astype(bool))


# -- frames and segments ------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(n_seg=st.integers(1, 6), rate=st.sampled_from([1.0, 2.0, 4.0]), length=st.sampled_from([0.5, 1.0, 2.0]),
       seed=st.integers(0, 1000))
def test_segment_score_is_mean_of_its_frames(n_seg, rate, length, seed):
    segments = np.stack([np.arange(n_seg) * length, (np.arange(n_seg) + 1) * length], 1)
    times = (np.arange(int(n_seg * length * rate)) + 0.5) / rate
    if len(times) == 0:
        times = np.array([0.1])
    frame = np.random.default_rng(seed).random(len(times))
    got = segment_scores(frame, times, segments)
    owner = frame_segments(times, segments)
    for s in range(n_seg):
        inside = owner == s
        want = frame[inside].mean() if inside.any() else frame[np.argmin(np.abs(times - segments[s].mean()))]
        assert got[s] == pytest.approx(want, rel=1e-5)


def test_overlapping_windows():
    segments = np.array([[0.0, 2.0], [1.0, 3.0], [2.0, 4.0]])  # 50% overlap (YouTube Highlights)
    times = np.array([0.5, 1.25, 1.75, 2.5, 3.5, 4.0])
    np.testing.assert_array_equal(frame_segments(times, segments), [0, 0, 1, 1, 2, 2])
    scores = segment_scores(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), times, segments)
    np.testing.assert_allclose(scores, [2.0, 3.0, 5.0])  # every frame counts for each window it lies in
    assert frame_segments(np.array([5.0]), segments)[0] == -1


# -- decoders -----------------------------------------------------------------------------------------------------
def test_c3d_decoder_maps_conv5b_to_112():
    torch.manual_seed(0)
    model = PixelDistinction("c3d", (512, 2, 7, 7), widths=(32, 16, 8))
    assert model(torch.randn(2, 512, 2, 7, 7)).shape == (2, 112, 112) and model.out_size == (112, 112)
    ups = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose3d | torch.nn.ConvTranspose2d)]
    assert len(ups) == 4  # four transposed convolutions
    model.set_label_prior(0.1)
    assert torch.sigmoid(model.decoder.up4.bias).item() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="encoder maps"):
        model(torch.randn(1, 512, 4, 7, 7))
    assert C3DDecoder(512, 2)(torch.randn(1, 512, 2, 3, 5)).shape == (1, 48, 80)


def test_tased_decoder_keeps_tased_names():
    from hl.extract.backbones.tased import TasedNet

    decoder = TasedDecoder()
    assert decoder(torch.randn(1, 1024, 4, 1, 2)).shape == (1, 32, 64)  # 224 x 384 from the maps' 7 x 12
    assert PixelDistinction("tased", (1024, 4, 7, 12)).out_size == (224, 384)
    torch.manual_seed(1)
    tased = {k: v for k, v in TasedNet().state_dict().items() if k.startswith("convtsp")}
    copied = load_tased_decoder(decoder, {f"module.{k}": v for k, v in tased.items()})
    assert set(copied) == set(tased)
    for k, v in tased.items():
        assert torch.equal(decoder.state_dict()[k], v)


def test_pixel_bce_and_files(tmp_path):
    logits, labels = torch.randn(2, 5, 7), (torch.rand(2, 5, 7) > 0.7).to(torch.uint8)
    p = torch.sigmoid(logits)
    manual = -(labels * p.log() + (1 - labels) * (1 - p).log()).mean()
    assert pixel_bce(logits, labels).item() == pytest.approx(manual.item(), rel=1e-5)
    model = PixelDistinction("c3d", (512, 2, 7, 7), widths=(16, 8, 4))
    model.set_input_stats(torch.rand(512), torch.rand(512) + 0.5)
    save_pixel_head(model, tmp_path / "m.pt", {"beta": 0.1})
    again, cfg = load_pixel_head(tmp_path / "m.pt")
    x = torch.randn(1, 512, 2, 7, 7)
    assert cfg == {"beta": 0.1} and torch.allclose(again(x), model.eval()(x))


def test_static_clip_repeats_the_target_frame():
    from hl.extract.backbones import create, get_spec, static_clip  # noqa: F401  (registers the *_static specs)

    spec = get_spec("c3d_maps_static")
    assert spec.clip_frames == 1 and spec.feature_shape == get_spec("c3d_maps").feature_shape
    torch.manual_seed(0)
    static = create("c3d_maps_static")
    plain = create("c3d_maps")
    plain.load_state_dict(static.state_dict())  # same parameter names and shapes: one checkpoint serves both
    frame = torch.randn(1, 3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(static(frame), plain(frame.expand(-1, -1, 16, -1, -1)))
        torch.testing.assert_close(static(torch.cat([torch.randn(1, 3, 3, 32, 32), frame], 2)), static(frame))
    assert get_spec("tased_maps_static").clip_frames == 1


# -- end to end: cache -> train -> predict ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def pld_run(tmp_path_factory):
    from hl.extract.extractors import RunSettings
    from hl.pipelines.stages.extract import run_extraction
    from hl.pipelines.stages.train_pixel import PixelTrainSpec, train_pixel

    root = tmp_path_factory.mktemp("pld")
    # 5 videos of 2.5 s (5 segments, 5 target frames each): 3 train, 2 held out
    videos, manifest = textured_dataset(root / "videos", n_videos=5, seconds=2.5, fps=60.0, segment_seconds=0.5,
                                        test_fraction=0.4, seed=0)
    cache = root / "cache"
    # one worker: every video sees the same randomly initialised C3D
    report = run_extraction(root / "videos", cache, ["c3d_maps", "motion_saliency"], segment_seconds=0.5, workers=1,
                            allow_random_weights=True, settings=RunSettings())  # the CPU's own precision
    assert not report.failed
    write_manifest(manifest, cache / "manifest.parquet")
    spec = PixelTrainSpec(cache=str(cache), backbone="c3d", beta=3e-5, saliency_norm="sum", seeds=(0,), epochs=12,
                          batch_size=4, optimizer="adam", lr=2e-3, widths=(64, 32, 16))
    metrics = train_pixel(spec, root / "run")
    return root, videos, manifest, cache, metrics


def test_pld_learns_highlights_and_where_they_are(pld_run):
    from hl.pipelines.stages.predict_pixel import predict_pixel

    root, videos, manifest, cache, metrics = pld_run
    test_ids = sorted(manifest.loc[manifest["split"] == "test", "video_id"].unique())
    assert len(metrics) == 1 and metrics["metric"].iloc[0] == "mAP"
    assert metrics["value"].iloc[0] >= 0.9
    preds = predict_pixel(root / "run", cache, test_ids)
    for vid in test_ids:
        p = preds[vid]
        labels = manifest[manifest["video_id"] == vid].sort_values("segment")["label"].to_numpy()
        assert p["maps"].dtype == np.uint8 and p["maps"].shape[1:] == (112, 112) and len(p["times"]) == len(p["maps"])
        assert average_precision(p["scores"], labels) >= 0.9
    config = Run.open(root / "run").config
    cover = object_overlap(preds, videos, config.head["decoder"]["view"])
    assert len(cover["iou"]) >= 4
    assert np.mean(cover["iou"]) >= 0.5, cover
    assert np.mean(cover["mass"]) >= 0.5, cover


def test_run_directory_and_eval(pld_run):
    from hl.pipelines.stages.evaluate import evaluate_run

    root, _, manifest, cache, metrics = pld_run
    run = root / "run"
    config = Run.open(run).config
    assert config.kind == "pixel" and config.visual == ["c3d_maps"] and config.audio == []
    labels = config.head["labels"]
    assert labels["saliency"] == "motion_saliency" and labels["beta"] == {"synth0": 3e-5}
    assert (run / "models" / "synth0" / "seed0.pt").exists()
    history = json.loads((run / "history" / "synth0-seed0.json").read_text())
    assert len(history) == 12 and history[-1]["loss"] < history[0]["loss"]
    pd.testing.assert_frame_equal(evaluate_run(run), pd.read_parquet(run / "metrics.parquet"))
    scores = pd.read_parquet(run / "scores.parquet")
    assert set(scores["video_id"]) == set(manifest.loc[manifest["split"] == "test", "video_id"])


def test_prediction_scores_are_frame_map_means_and_pictures(pld_run, tmp_path):
    from hl.pipelines.stages.predict import write_predictions
    from hl.pipelines.stages.predict_pixel import predict_pixel, write_map_pictures

    root, _, _, cache, _ = pld_run
    preds = predict_pixel(root / "run", cache)
    assert len(preds) == 5
    for p in preds.values():
        frames = p["maps"].reshape(len(p["maps"]), -1).mean(1) / 255.0
        np.testing.assert_allclose(p["scores"], segment_scores(frames, p["times"], p["segments"]), atol=2e-3)
    js, _ = write_predictions(preds, tmp_path / "pred.json")
    assert set(json.loads(js.read_text())) == set(preds)
    one = dict(list(preds.items())[:1])
    pictures = write_map_pictures(one, root / "run", cache, tmp_path / "maps", frames=4)
    assert len(pictures) == 1 and pictures[0].stat().st_size > 5000
    from PIL import Image

    assert Image.open(pictures[0]).size[0] >= 400


def test_ablations_read_what_they_need(pld_run):
    from hl.pipelines.stages.train_pixel import FrameBank, PixelTrainSpec, load_pixel_videos, train_pixel

    root, _, manifest, cache, _ = pld_run
    spec = PixelTrainSpec(cache=str(cache), ablate="spatial", seeds=(0,))
    videos, missing, saliency = load_pixel_videos(FeatureStore(cache), manifest, spec, (112, 112))
    assert saliency is None and not missing and all(v.labels is None for v in videos)
    bank = FrameBank(FeatureStore(cache), videos, "c3d_maps", (512, 2, 7, 7), (112, 112), batch_size=64)
    maps, labels = next(bank.batches(np.random.default_rng(0)))
    assert maps.dtype == torch.float16 and labels.shape[1:] == (112, 112)
    per_frame = labels.reshape(len(labels), -1)
    assert set(per_frame.min(1).values.tolist()) == set(per_frame.max(1).values.tolist())  # whole frames 0 or 1
    assert bank.positive_rate() == pytest.approx(sum(v.highlight.sum() for v in videos) / bank.frames)
    with pytest.raises(HLError, match="c3d_maps_static"):
        train_pixel(PixelTrainSpec(cache=str(cache), ablate="temporal", seeds=(0,)), root / "run_temporal")
    with pytest.raises(HLError, match="backbone"):
        PixelTrainSpec(cache=str(cache), backbone="i3d")
    with pytest.raises(HLError, match="norm"):
        PixelTrainSpec(cache=str(cache), saliency_norm="l1")


def test_streaming_bank_serves_the_same_frames(pld_run):
    from hl.pipelines.stages.train_pixel import FrameBank, PixelTrainSpec, load_pixel_videos

    _, _, manifest, cache, _ = pld_run
    store = FeatureStore(cache)
    spec = PixelTrainSpec(cache=str(cache), beta=3e-5, seeds=(0,))
    videos, _, _ = load_pixel_videos(store, manifest, spec, (112, 112))
    frame = 512 * 2 * 7 * 7 * 2
    memory = FrameBank(store, videos, "c3d_maps", (512, 2, 7, 7), (112, 112), 3)
    stream = FrameBank(store, videos, "c3d_maps", (512, 2, 7, 7), (112, 112), 3, memory_bytes=6 * frame)
    assert memory.in_memory and not stream.in_memory

    def epoch(bank):
        pairs = [(m, y) for m, y in bank.batches(np.random.default_rng(1))]
        maps = torch.cat([m for m, _ in pairs]).float()
        labels = torch.cat([y for _, y in pairs]).float()
        order = torch.argsort(maps.flatten(1).sum(1) + 1e-3 * labels.flatten(1).sum(1))
        return maps[order], labels[order]

    (a, la), (b, lb) = epoch(memory), epoch(stream)
    assert len(a) == memory.frames and torch.equal(a, b) and torch.equal(la, lb)
    torch.testing.assert_close(memory.channel_stats()[0], stream.channel_stats()[0])


def test_highlights_of_a_pixel_run_from_the_command_line(pld_run, tmp_path):
    """`hl highlights` with the trained PLD run on new videos: the run's own maps extractor is run again (the same
    random-init C3D: its origin says so), every moment gets a map overlay drawn where the decoder's map is hot,
    and the best moment of each video lies in one of its highlights."""
    from click.testing import CliRunner
    from highlight_run import Page
    from PIL import Image

    from hl.pipelines.cli import main
    from hl.pipelines.stages.predict import predict

    root = pld_run[0]
    videos, _ = textured_dataset(tmp_path / "new", n_videos=2, seconds=2.5, fps=60.0, segment_seconds=0.5, seed=7)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["highlights", str(tmp_path / "new"), "--run", str(root / "run"), "--out", str(out),
                                  "--top", "2", "--min-gap", "0", "--weights-dir", str(tmp_path / "no-weights"),
                                  "--random-weights", "--workers", "1", "--quiet"])  # its c3d_maps: random weights
    assert r.exit_code == 0, r.output
    rows = json.loads((out / "highlights.json").read_text())["videos"]
    assert sorted(rows) == [v.video_id for v in videos]
    preds = predict(root / "run", out / "cache")
    assert Run.open(root / "run").config.segments == {"rule": "fixed", "seconds": 0.5}
    for v in videos:
        moments = rows[v.video_id]["moments"]
        assert moments and all("map" in m and (out / m["map"]).is_file() for m in moments)
        best = moments[0]
        assert any(min(best["end"], b) - max(best["start"], a) > 0 for a, b in v.highlights), (best, v.highlights)
        p = preds[v.video_id]
        for m in moments:
            overlay = np.asarray(Image.open(out / m["map"]), np.float32)
            thumb = np.asarray(Image.open(out / m["thumbnail"]), np.float32)
            prob = p["maps"][np.abs(p["times"] - m["peak_time"]).argmin()].astype(np.float32)
            prob = (prob - prob.min()) / max(prob.max() - prob.min(), 1e-6)
            # where the decoder sees the frame (C3D: the centre crop), at the thumbnail's size
            top, bottom, left, right = Run.open(root / "run").config.head["decoder"]["view"]
            h, w = thumb.shape[:2]
            view = np.s_[round(top * h):round(bottom * h), round(left * w):round(right * w)]
            heat = np.asarray(Image.fromarray((prob * 255).astype(np.uint8)).resize(
                (view[1].stop - view[1].start, view[0].stop - view[0].start)), np.float32) / 255
            diff = np.abs(overlay - thumb)[view].mean(axis=2)
            assert diff[heat > 0.7].mean() > diff[heat < 0.1].mean() + 20  # the map is drawn where it is hot
    page = Page.parse(out / "report.html")
    assert page.maps == page.cards == sum(len(v["moments"]) for v in rows.values())


def test_default_beta_follows_the_saliency_and_gives_non_empty_maps(pld_run):
    from hl.heads.pixel_labels import MOTION_BETA_UNIFORM, default_beta
    from hl.pipelines.stages.predict_pixel import predict_pixel
    from hl.pipelines.stages.train_pixel import PixelTrainSpec, train_pixel

    root, videos, manifest, cache, _ = pld_run
    assert default_beta("tased", "dog", (224, 384))[0] == 0.001
    assert default_beta("tased", "BK", (224, 384))[0] == 0.0005
    calibrated = MOTION_BETA_UNIFORM / (224 * 384)
    assert default_beta("motion_saliency", "dog", (224, 384))[0] == pytest.approx(calibrated)
    # no beta, no backbone: maps and saliency come from the cache, beta from the saliency at hand
    spec = PixelTrainSpec(cache=str(cache), seeds=(0,), epochs=12, batch_size=4, optimizer="adam", lr=2e-3,
                          widths=(64, 32, 16))
    train_pixel(spec, root / "run_defaults")
    labels = Run.open(root / "run_defaults").config.head["labels"]
    assert labels["saliency"] == "motion_saliency"
    assert labels["beta"]["synth0"] == pytest.approx(calibrated) and "calibrated" in labels["beta_rule"]
    test_ids = sorted(manifest.loc[manifest["split"] == "test", "video_id"].unique())
    preds = predict_pixel(root / "run_defaults", cache, test_ids)
    cover = object_overlap(preds, videos, Run.open(root / "run_defaults").config.head["decoder"]["view"])
    assert len(cover["iou"]) >= 4 and np.mean(cover["iou"]) >= 0.3, cover  # maps > 0.5 on the object
    # the paper's beta on motion saliency labels (nearly) nothing: training stops instead of learning zeros
    with pytest.raises(HLError, match="pseudo labels are empty"):
        train_pixel(PixelTrainSpec(cache=str(cache), beta=0.0005, seeds=(0,), epochs=1), root / "run_paper_beta")
