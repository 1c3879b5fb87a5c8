"""The fast extraction path: prefetching, per-frame uint8 resizes, stored low-precision weights, precision choice."""
import threading

import numpy as np
import pytest
import torch

from hl.common import HLError
from hl.data_manifests.synthetic import write_video
from hl.extract import extractors as ex
from hl.extract import segments as seg
from hl.extract.backbones import create, get_spec, list_backbones
from hl.extract.decode import VideoSource


@pytest.fixture(autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "v.mp4", seconds=4.5, fps=12, size=(176, 132),
                       highlights=((1.0, 3.0),), seed=3)


def _extract(path, names, segment_seconds=2.0, **settings):
    source = VideoSource(path)
    segments = seg.fixed_segments(source.info.duration, segment_seconds)
    return ex.extract_video(source, segments, [(ex.get_extractor(n), None) for n in names],
                            ex.RunSettings(**settings))


def test_prefetching_gives_the_sequential_features_exactly(video):
    names = ["stats", "stats_audio", "motion_saliency"]
    # 1-s segments and chunks: five chunks, the last one short, so the producer runs ahead across chunks
    common = dict(segment_seconds=1.0, precision="fp32", chunk_seconds=1.0, batch_size=3)
    sequential = _extract(video, names, prefetch=0, **common)
    for depth in (1, 2):
        prefetched = _extract(video, names, prefetch=depth, **common)
        for name in names:
            assert sequential.arrays[name].keys() == prefetched.arrays[name].keys()
            for key, arr in sequential.arrays[name].items():
                np.testing.assert_array_equal(arr, prefetched.arrays[name][key], err_msg=f"{name}/{key}")
    arrays = sequential.arrays
    assert arrays["stats"]["features"].shape == (5, 59)
    assert arrays["motion_saliency"]["maps"].shape == (9, 224, 384)  # 2 targets per second over 4.5 s
    assert arrays["stats_audio"]["features"].shape == (5, 66)
    np.testing.assert_allclose(arrays["motion_saliency"]["times"], np.arange(9) / 2 + 0.25)
    assert arrays["stats_audio"]["valid"].all()
    assert sequential.wait_s > 0 and sequential.decode_s > 0


def test_chunk_size_does_not_change_features(video):
    one = _extract(video, ["stats", "motion_saliency"], precision="fp32", chunk_seconds=16.0)
    many = _extract(video, ["stats", "motion_saliency"], precision="fp32", chunk_seconds=2.0)
    # batches of other sizes may round a reduction differently, by float32 rounding at most
    np.testing.assert_allclose(one.arrays["stats"]["features"], many.arrays["stats"]["features"], rtol=1e-4,
                               atol=1e-6)
    diff = one.arrays["motion_saliency"]["maps"].astype(int) - many.arrays["motion_saliency"]["maps"]
    assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 1e-3


def _items_then_failure():
    yield 1
    yield 2
    raise HLError("x.mp4: cannot decode frame 7")


def test_prefetcher_raises_the_producers_error_in_the_consumer():
    got = []
    with pytest.raises(HLError, match="cannot decode frame 7"):
        for item in ex.Prefetcher(_items_then_failure(), depth=1):
            got.append(item)
    assert got == [1, 2]


def test_prefetcher_close_stops_a_producer_that_is_ahead():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    p = ex.Prefetcher(endless(), depth=2)
    first = next(iter(p))
    p.close()
    assert first == 0 and len(produced) <= 4  # at most depth items waiting, one in hand, one being made
    assert threading.active_count() == before


# What one grey level of input changes in each backbone's preprocessed values.
_LEVEL = {"c3d": 1.0, "c3d_maps": 1.0, "c3d_maps_static": 1.0, "r3d34": 1.0, "i3d": 2 / 255, "tased": 2 / 255,
          "tased_maps": 2 / 255, "tased_maps_static": 2 / 255,
          "stats": 1 / 255, "motion_saliency": 1 / 255, "i3d_flow_frames": 1 / 255, "i3d_flow_tvl1_frames": 1 / 255,
          "i3d_flow_raft_frames": 1.0, "i3d_flow_raft_small_frames": 1.0,
          "i3d_flow_raft_vf_frames": 1.0}  # RAFT's frames stay uint8


@pytest.mark.parametrize("backbone", sorted(b for b in list_backbones() if get_spec(b).frame_size is not None))
@pytest.mark.parametrize("hw", [(240, 320), (320, 180)])
def test_uint8_resize_first_matches_the_backbones_own_preprocessing(backbone, hw):
    spec = get_spec(backbone)
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, (1, 2, *hw, 3), dtype=np.uint8))
    frames = torch.nn.functional.avg_pool2d(frames[0].permute(0, 3, 1, 2).float(), 3, 1, 1).round()
    frames = frames.to(torch.uint8).permute(0, 2, 3, 1)[None]  # smooth images, as video frames are
    size, antialias = ex.frame_resize(backbone, *hw)
    small = ex.resize_frames(frames[0], size, antialias)
    assert small.dtype == torch.uint8 and tuple(small.shape) == (2, *size, 3)
    direct = spec.preprocess(frames)
    via_uint8 = spec.preprocess(small[None])
    assert via_uint8.shape == direct.shape  # the backbone's own resize had nothing left to do
    diff = (via_uint8.float() - direct.float()).abs()
    assert diff.max() <= 1.02 * _LEVEL[backbone]  # rounding to whole grey levels, no more
    assert diff.mean() <= 0.35 * _LEVEL[backbone]  # |rounding error| averages a quarter level


def test_resize_frames_rejects_float_frames():
    with pytest.raises(ValueError, match="uint8 RGB frames"):
        ex.resize_frames(torch.zeros(1, 8, 8, 3), (4, 4))


# bf16 compute runs only where the CPU has it natively: emulated, it is very slow (AMD AVX2 CPUs)
needs_native_bf16 = pytest.mark.skipif(ex.default_precision("cpu") != "bf16",
                                       reason="this CPU has no native bf16 (AVX512-BF16 or AMX)")


@needs_native_bf16
@pytest.mark.parametrize("backbone, x", [
    ("c3d_maps", torch.randn(2, 3, 8, 32, 32) * 50),
    ("pann", torch.randn(2, 12000) * 0.1),
])
def test_stored_bf16_weights_give_exactly_autocasts_output(backbone, x, monkeypatch):
    monkeypatch.setattr(ex, "_MODELS", {})
    fmt = torch.channels_last_3d if x.ndim == 5 else torch.channels_last
    torch.manual_seed(0)
    plain = create(backbone).to(memory_format=fmt)
    torch.manual_seed(0)
    fast = ex.load_model(backbone, None, "cpu", "bf16")
    assert fast is ex.load_model(backbone, None, "cpu", "bf16")  # loaded once per process
    convs = [m for m in fast.modules() if isinstance(m, ex._LOW_PRECISION_MODULES)]
    assert convs and all(m.weight.dtype == torch.bfloat16 for m in convs)
    if x.ndim == 5:
        x = x.contiguous(memory_format=fmt)
    with torch.inference_mode(), ex.autocast("cpu", "bf16"):
        a, b = plain(x).float(), fast(x).float()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with torch.inference_mode():
        ref = plain(x).float()
    cos = torch.nn.functional.cosine_similarity(ref.flatten(1), b.flatten(1), dim=1)
    assert cos.min() > 0.999


def test_precision_auto_and_weight_free_extractors(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert ex.default_precision("cpu") == "bf16" == ex.RunSettings().precision
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert ex.default_precision("cpu") == "fp32" == ex.RunSettings(precision="auto").precision
    assert ex.RunSettings(precision="fp16").precision == "fp16"
    bf16 = ex.RunSettings(precision="bf16")
    c3d, stats = ex.get_extractor("c3d"), ex.get_extractor("stats")
    assert ex.extractor_config(c3d, bf16, "fixed:2")["precision"] == "bf16"
    # weight-free extractors run in fp32 whatever the setting: their cached features do not depend on it
    assert ex.extractor_config(stats, bf16, "fixed:2") == ex.extractor_config(stats, ex.RunSettings("cpu", "fp32"),
                                                                             "fixed:2")


def test_precision_notice_warns_of_slow_cpu_precisions(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    for precision in ("bf16", "fp16"):
        notice = ex.precision_notice("cpu", precision)
        assert precision in notice and "slow" in notice and "fp32" in notice and "auto" in notice
        assert "\n" not in notice
    assert "AVX512-BF16 or AMX" in ex.precision_notice("cpu", "bf16")
    for precision in ("fp32", "auto"):
        assert ex.precision_notice("cpu", precision) is None
    for precision in ("fp32", "bf16", "fp16", "auto"):
        assert ex.precision_notice("cuda", precision) is None
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)  # native bf16
    assert ex.precision_notice("cpu", "bf16") is None
    assert ex.precision_notice("cpu:0", "bf16") is None
    assert ex.precision_notice("cpu", "fp16") is not None


def test_sorted_distinct_frames_come_back_without_reordering(video):
    src = VideoSource(video)
    idx = np.array([0, 3, 7, 20])
    a = src.frames(idx)
    b = src.frames(idx[::-1])
    np.testing.assert_array_equal(a, b[::-1])
    assert a.flags.writeable and a.shape == (4, 132, 176, 3)


def _requests(num_frames: int) -> list[np.ndarray]:
    """Chunk-like requests: sparse clip frames, windows reaching back into the previous chunk, a repeat."""
    reqs = [np.array([0, 2, 4, 9, 9]), np.array([3, 10, 11, 12, 20]), np.array([], dtype=np.int64),
            np.array([18, 19, 25, 31]), np.array([num_frames - 1, 30, 31])]
    return [np.clip(r, 0, num_frames - 1) for r in reqs]


def test_stream_frames_equals_random_access(video):
    src = VideoSource(video)
    reqs = _requests(src.info.num_frames)
    streamed = list(src.stream_frames(reqs))
    assert len(streamed) == len(reqs)
    for req, got in zip(reqs, streamed, strict=True):
        assert got.shape == (len(req), *src.frame_size, 3) and got.dtype == np.uint8
        np.testing.assert_array_equal(got, src.frames(req) if len(req) else got)


def test_stream_frames_falls_back_to_decord_when_out_of_step(video, monkeypatch, caplog):
    src = VideoSource(video)
    real = VideoSource._decode_in_order

    def skips_a_frame(self, threads):
        for k, item in enumerate(real(self, threads)):
            if k != 5:  # a frame the decoder lost: every later one is one index early
                yield item

    monkeypatch.setattr(VideoSource, "_decode_in_order", skips_a_frame)
    reqs = _requests(src.info.num_frames)
    streamed = list(src.stream_frames(reqs))
    assert "out of step" in caplog.text
    for req, got in zip(reqs, streamed, strict=True):
        if len(req):
            np.testing.assert_array_equal(got, src.frames(req))
