"""The i3d_flow extractor: flow from decoded frames fed to I3D's flow stream with its conventions."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from hl.extract.backbones import create, get_spec
from hl.extract.backbones.flow import FLOW_BOUND, create_flow, list_flows, to_i3d_flow, to_i3d_flow_uint8, warp
from hl.extract.backbones.i3d import InceptionI3d
from hl.extract.backbones.i3d_flow import CLIP_FRAMES, I3DFlowFromFrames, preprocess_grey
from hl.pipelines.cache import FeatureStore
from hl.pipelines.cli import main


def _texture(h=120, w=160, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(1, 1, h // 4, w // 4, generator=g), size=(h, w), mode="bicubic", align_corners=False)
    return (x - x.min()) / (x.max() - x.min())


@pytest.mark.parametrize("dx, dy", [(2.0, -1.0), (6.0, 3.0), (-4.5, 0.0), (0.5, 0.25)])
def test_horn_schunck_recovers_a_known_shift(dx, dy):
    base = _texture()
    shift = torch.zeros(1, 2, *base.shape[-2:])
    shift[:, 0], shift[:, 1] = -dx, -dy
    moved = warp(base, shift)  # the content moves by (dx, dy)
    with torch.no_grad():
        flow = create_flow("horn_schunck")(base, moved)
    inner = flow[0, :, 24:-24, 24:-24]  # away from the replicated borders
    assert inner[0].median().item() == pytest.approx(dx, abs=0.35)
    assert inner[1].median().item() == pytest.approx(dy, abs=0.35)
    # no motion, no flow
    with torch.no_grad():
        assert create_flow("horn_schunck")(base, base).abs().max().item() < 1e-3


def test_tvl1_through_opencv_recovers_a_known_shift():
    pytest.importorskip("cv2.optflow", reason="TV-L1 needs opencv-contrib-python-headless (pip install hl[tvl1])")
    base = _texture()
    shift = torch.zeros(1, 2, *base.shape[-2:])
    shift[:, 0], shift[:, 1] = -3.0, -1.5
    moved = warp(base, shift)
    flow = create_flow("tvl1")(base, moved)
    inner = flow[0, :, 24:-24, 24:-24]
    assert inner[0].median().item() == pytest.approx(3.0, abs=0.35)
    assert inner[1].median().item() == pytest.approx(1.5, abs=0.35)
    # the extractor on TV-L1 flow shares the flow checkpoint's state dict; it is never picked by default
    from hl.extract.extractors import get_extractor

    d = get_extractor("i3d_flow_tvl1")
    assert d.backbone == "i3d_flow_tvl1_frames" and not d.default
    assert list(create("i3d_flow_tvl1_frames").state_dict()) == list(InceptionI3d(in_channels=2).state_dict())


def test_flow_convention_of_i3d():
    assert "horn_schunck" in list_flows() and FLOW_BOUND == 20.0
    f = torch.tensor([-45.0, -20.0, -10.0, 0.0, 10.0, 20.0, 33.0])
    assert to_i3d_flow(f).tolist() == [-1.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0]
    with pytest.raises(KeyError, match="unknown flow model"):
        create_flow("nope")


def test_flow_through_8_bits_as_video_features_stores_it():
    f = torch.tensor([-45.0, -20.0, 0.0, 10.0, 20.0, 33.0])
    # 128 + 6.375 f, rounded half to even (255.5 -> 256), then / 127.5 - 1
    expected = 2 * torch.tensor([0.0, 0.0, 128.0, 192.0, 256.0, 256.0]) / 255 - 1
    assert torch.equal(to_i3d_flow_uint8(f), expected)


@given(st.lists(st.floats(-60, 60, allow_nan=False, width=32), min_size=1, max_size=64))
def test_flow_through_8_bits_is_the_float_convention_offset_and_quantised(values):
    f = torch.tensor(values, dtype=torch.float32)
    q, exact = to_i3d_flow_uint8(f), to_i3d_flow(f)
    # the same scale, offset by one level (1/255), within half a step (1/255) of it
    assert torch.all((q - exact - 1 / 255).abs() <= 1 / 255 + 1e-6)
    levels = (q + 1.0) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4)


def test_the_crop_of_raft_padded_flow():
    # a 256 x 341 field: 341 pads to 344 (1 left, 2 right); the padded field's centre crop starts at column 60,
    # column 59 of the unpadded one; the plain centre crop starts at 58, like the RGB stream's
    assert I3DFlowFromFrames("horn_schunck").crop_origin(256, 341) == (16, 58)
    assert I3DFlowFromFrames("horn_schunck", crop_padded=True).crop_origin(256, 341) == (16, 59)
    assert I3DFlowFromFrames("horn_schunck", crop_padded=True).crop_origin(256, 344) == (16, 60)
    assert I3DFlowFromFrames("horn_schunck", crop_padded=True).crop_origin(224, 225) == (0, 1)


def test_grey_frames_are_resized_like_the_rgb_stream():
    frames = torch.full((1, 3, 240, 320, 3), 255, dtype=torch.uint8)
    frames[..., 1:] = 0  # pure red
    x = preprocess_grey(frames)
    assert x.shape == (1, 1, 3, 256, 341)  # short side 256, not cropped
    assert torch.allclose(x, torch.full_like(x, 0.299), atol=1e-5)


def test_the_flow_checkpoint_loads_unchanged_and_the_stream_is_i3d_on_clipped_flow(tmp_path):
    spec = get_spec("i3d_flow_frames")
    assert spec.clip_frames == CLIP_FRAMES == 33 and spec.extractors[0].name == "i3d_flow"
    assert tuple(e.name for e in spec.weights) == ("i3d_flow_imagenet", "i3d_flow_charades")
    torch.manual_seed(3)
    reference = InceptionI3d(in_channels=2).eval()
    for p in reference.parameters():  # not the seed-0 init the registry builds: loading must change something
        p.data.normal_(0, 0.05)
    path = tmp_path / "flow_imagenet.pt"
    torch.save(reference.state_dict(), path)  # as pytorch-i3d ships it: a plain state dict
    model = create("i3d_flow_frames", weights=path)
    assert list(model.state_dict()) == list(reference.state_dict())
    # 11 frames of a texture drifting 30 px per frame (truncated to 20): 10 flow fields, 200 x 200 (the crop
    # keeps what fits)
    base = _texture(200, 200)
    frames = torch.stack([warp(base, torch.full((1, 2, 200, 200), -3.0 * k)) for k in range(11)], dim=2)
    with torch.no_grad():
        flow = model.flow(frames)
        assert flow.shape == (1, 2, 10, 200, 200) and flow.abs().max().item() <= 1.0
        assert flow[0, :, :, 30:-30, 30:-30].median().item() == pytest.approx(3.0 / FLOW_BOUND, abs=0.03)
        torch.testing.assert_close(model(frames), reference(flow), rtol=1e-4, atol=1e-5)
    # the weight-free flow model is no submodule: the state dict is exactly the I3D flow checkpoint's
    assert "flow_model" not in dict(model.named_children())


@pytest.mark.slow  # one segment through both I3D streams
def test_hl_extract_writes_i3d_and_i3d_flow_with_the_flow_checkpoint(tmp_path):
    import av

    videos = tmp_path / "videos"
    videos.mkdir()
    container = av.open(str(videos / "drift.mp4"), "w")
    stream = container.add_stream("libx264", rate=16)
    stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
    base = (_texture(120, 400)[0, 0].numpy() * 255).astype(np.uint8)
    for k in range(32):  # 2 s: one segment; the texture pans 2 px per frame
        grey = base[:, 2 * k:2 * k + 160]
        frame = av.VideoFrame.from_ndarray(np.repeat(grey[..., None], 3, axis=2), format="rgb24")
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
    container.close()
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(0)
    torch.save(InceptionI3d(in_channels=2).state_dict(), weights / "flow_imagenet.pt")
    r = CliRunner().invoke(main, ["extract", "--videos", str(videos), "--out", str(tmp_path / "cache"),
                                  "--extractors", "i3d,i3d_flow", "--random-weights", "--weights-dir", str(weights),
                                  "--workers", "1", "--precision", "fp32", "--quiet"])
    assert r.exit_code == 0, r.output
    store = FeatureStore(tmp_path / "cache")
    rgb, flow = store.features("drift", "i3d"), store.features("drift", "i3d_flow")
    assert rgb.shape == flow.shape == (1, 1024) and np.isfinite(flow).all()
    assert not np.allclose(rgb, flow)
    origin = store.origin("drift", "i3d_flow")
    assert origin.config["flow"] == "horn_schunck" and origin.config["clip_frames"] == 33
    assert origin.weights_hash != "none"  # the flow checkpoint in the weights directory, not random weights


def test_rgb_and_flow_clips_come_from_the_same_decoded_frames(tmp_path):
    """One decoding pass feeds both streams: every chunk of the video, decoded once, carries the clips of both
    (the rgb stream's 32 frames and the flow stream's 33 per segment)."""
    from hl.data_manifests.synthetic import make_dataset
    from hl.extract import segments as seg
    from hl.extract.decode import VideoSource
    from hl.extract.extractors import RunSettings, chunk_inputs, get_extractor

    videos, _ = make_dataset(tmp_path, n_videos=1, seconds=4, fps=25)
    source = VideoSource(videos[0].path)
    segments = seg.fixed_segments(source.info.duration, 2.0)
    chunks = list(chunk_inputs(source, segments, [get_extractor("i3d"), get_extractor("i3d_flow")], RunSettings()))
    assert len(chunks) == 1 and set(chunks[0].video) == {"i3d", "i3d_flow"}
    rgb, flow = chunks[0].video["i3d"], chunks[0].video["i3d_flow"]
    assert rgb.positions.shape == (2, 32) and flow.positions.shape == (2, 33)
    assert rgb.clips(0, 2).shape == (2, 3, 32, 224, 224) and flow.clips(0, 2).shape == (2, 1, 33, 256, 341)


def test_auto_precision_keeps_the_flow_stream_in_fp32():
    from hl.extract.extractors import RunSettings, effective_precision, get_extractor

    auto = RunSettings(precision="auto")
    flow, rgb = get_extractor("i3d_flow"), get_extractor("i3d")
    assert effective_precision(flow, auto) == "fp32"
    assert effective_precision(rgb, auto) == auto.precision  # the machine's choice
    assert effective_precision(flow, RunSettings(precision="bf16")) == "bf16"  # asked for explicitly


@pytest.mark.parametrize("made", [{"i3d": "bf16", "i3d_flow": "fp32", "pann": "bf16"},
                                  {"i3d_flow": "fp32", "pann": "bf16"},
                                  {"i3d": "bf16", "i3d_flow": "bf16", "pann": "bf16"},
                                  {"i3d": "fp32", "i3d_flow": "fp32"}])
def test_highlights_remake_each_feature_in_its_own_precision(made):
    from hl.extract.extractors import RunSettings, effective_precision, extractor_config, get_extractor
    from hl.pipelines.cache.store import FeatureOrigin
    from hl.pipelines.highlights.find import run_settings

    features = {}
    for name, precision in made.items():
        d = get_extractor(name)
        config = extractor_config(d, RunSettings(precision=precision), "fixed:2")
        features[name] = FeatureOrigin.from_config(name, config, "w")
    settings = run_settings(features, RunSettings(precision="auto"))
    assert {n: effective_precision(get_extractor(n), settings) for n in made} == made


def test_the_video_features_recipe_takes_the_rgb_clip_and_the_next_frame(tmp_path):
    """i3d_flow_raft_vf's clips: the 32 frames of the rgb stream's clip and the next one (32 flow fields at the
    clip's rate, as v-iashin/video_features' stacks); the video's last frame repeats past its end."""
    from hl.data_manifests.synthetic import make_dataset
    from hl.extract import segments as seg
    from hl.extract.decode import VideoSource
    from hl.extract.extractors import RunSettings, chunk_inputs, get_extractor

    videos, _ = make_dataset(tmp_path, n_videos=1, seconds=4, fps=16)
    source = VideoSource(videos[0].path)
    assert source.info.num_frames == 64
    segments = seg.fixed_segments(source.info.duration, 2.0)
    names = ["i3d", "i3d_flow_raft_vf"]
    (chunk,) = chunk_inputs(source, segments, [get_extractor(n) for n in names], RunSettings())
    rgb, flow = chunk.video["i3d"], chunk.video["i3d_flow_raft_vf"]
    # both use every frame once: positions are frame indices
    np.testing.assert_array_equal(rgb.positions, np.arange(64).reshape(2, 32))
    np.testing.assert_array_equal(flow.positions, np.concatenate([np.arange(33), np.r_[32:64, 63]]).reshape(2, 33))
    assert flow.clips(0, 2).shape == (2, 3, 33, 256, 341) and flow.frames.dtype == torch.uint8
