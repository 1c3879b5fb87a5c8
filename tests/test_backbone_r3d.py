"""3D-ResNet-34 (Hara et al., Kinetics): checkpoint format, shortcut "A", output and preprocessing."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hl.extract.backbones import create, get_spec
from hl.extract.backbones.r3d import MEAN_RGB, ResNet3D34, ZeroPadShortcut, checkpoint_filter, preprocess


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Parameter and buffer shapes of resnet34(shortcut_type='A') in 3D-ResNets-PyTorch models/resnet.py."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix, c):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (64, 3, 7, 7, 7)
    bn("bn1", 64)
    c_in = 64
    for i, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for j in range(blocks):
            shapes[f"layer{i}.{j}.conv1.weight"] = (width, c_in, 3, 3, 3)
            bn(f"layer{i}.{j}.bn1", width)
            shapes[f"layer{i}.{j}.conv2.weight"] = (width, width, 3, 3, 3)
            bn(f"layer{i}.{j}.bn2", width)
            c_in = width
    shapes["fc.weight"] = (400, 512)
    shapes["fc.bias"] = (400,)
    return shapes


def randomised_model(seed: int) -> ResNet3D34:
    """Random weights and BatchNorm statistics, so that every loaded tensor matters."""
    torch.manual_seed(seed)
    model = ResNet3D34()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def save_official(model: ResNet3D34, path, with_num_batches_tracked: bool = True) -> None:
    """The layout of resnet-34-kinetics.pth: DataParallel keys inside a training checkpoint."""
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    if not with_num_batches_tracked:  # saved by PyTorch < 0.4.1, as the 2017 release was
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"epoch": 200, "arch": "resnet-34", "state_dict": state, "optimizer": {"state": {}}}, path)


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(2)
    return preprocess(torch.randint(0, 256, (1, 16, 120, 160, 3), dtype=torch.uint8))


def test_parameter_names_and_shapes_match_the_release():
    state = ResNet3D34().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected_shapes()
    assert tuple(state["layer4.2.conv2.weight"].shape) == (512, 512, 3, 3, 3)
    assert not any("downsample" in k or "shortcut" in k for k in state)  # shortcut "A" has no weights


@pytest.mark.parametrize("with_num_batches_tracked", [True, False])
def test_official_checkpoint_round_trip(tmp_path, clip, with_num_batches_tracked):
    source = randomised_model(seed=3)
    path = tmp_path / "resnet-34-kinetics.pth"
    save_official(source, path, with_num_batches_tracked)
    loaded = create("r3d34", weights=path)
    assert not loaded.training
    with torch.no_grad():
        expected = source(clip)
        got = loaded(clip)
    assert got.shape == (1, 512)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_feature_is_the_global_average_of_layer4_as_the_release_pools_it(clip):
    model = randomised_model(seed=4)
    with torch.no_grad():
        maps = model.features(clip)
        feature = model(clip)
        logits = model.logits(clip)
    assert maps.shape == (1, 512, 1, 4, 4)
    release_pool = torch.nn.AvgPool3d((1, 4, 4), stride=1)(maps).flatten(1)  # ceil(16/16), ceil(112/32)
    torch.testing.assert_close(feature, release_pool)
    assert feature.min() >= 0 and (feature > 0).any()  # mean of post-ReLU maps
    torch.testing.assert_close(logits, model.fc(feature))
    assert logits.shape == (1, 400)


@settings(max_examples=30, deadline=None)
@given(
    c_in=st.integers(1, 8),
    extra=st.integers(0, 8),
    size=st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 7)),
    stride=st.sampled_from([1, 2]),
)
def test_shortcut_a_matches_the_reference_formula(c_in, extra, size, stride):
    x = torch.randn(2, c_in, *size)
    out = ZeroPadShortcut(c_in + extra, stride)(x)
    # 3D-ResNets-PyTorch: avg_pool3d(kernel_size=1, stride) then zero channels appended
    sub = F.avg_pool3d(x, kernel_size=1, stride=stride)
    reference = torch.cat([sub, torch.zeros(2, extra, *sub.shape[2:])], dim=1)
    torch.testing.assert_close(out, reference, rtol=0, atol=0)


def test_checkpoint_filter_strips_the_dataparallel_prefix():
    w = torch.ones(1)
    assert checkpoint_filter({"state_dict": {"module.fc.bias": w}, "epoch": 1}) == {"fc.bias": w}
    assert checkpoint_filter({"fc.bias": w}) == {"fc.bias": w}
    with pytest.raises(ValueError, match="checkpoint"):
        checkpoint_filter([w])


def test_spec():
    spec = get_spec("r3d34")
    assert spec.feature_dim == 512 and spec.modality == "video"
    assert spec.clip_frames == 16 and spec.fps == 8.0 and spec.input_size == (112, 112)
    assert spec.checkpoint_filter is checkpoint_filter and spec.preprocess is preprocess


@settings(max_examples=25, deadline=None)
@given(
    rgb=st.tuples(*[st.integers(0, 255)] * 3),
    height=st.integers(20, 300),
    width=st.integers(20, 300),
)
def test_constant_frames_give_rgb_minus_mean(rgb, height, width):
    frames = np.empty((1, 2, height, width, 3), dtype=np.uint8)
    frames[...] = rgb
    x = preprocess(frames)
    assert x.shape == (1, 3, 2, 112, 112) and x.dtype == torch.float32
    expected = torch.tensor(rgb, dtype=torch.float32) - torch.tensor(MEAN_RGB)
    torch.testing.assert_close(x.amin(dim=(0, 2, 3, 4)), expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(x.amax(dim=(0, 2, 3, 4)), expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize("landscape", [True, False])
def test_shorter_side_112_is_centre_cropped_without_resampling(landscape):
    rng = np.random.default_rng(0)
    shape = (1, 2, 112, 150, 3) if landscape else (1, 2, 150, 112, 3)
    frames = rng.integers(0, 256, shape, dtype=np.uint8)
    x = preprocess(frames)[0].permute(1, 2, 3, 0).numpy()  # [T, 112, 112, 3]
    crop = frames[0, :, :, 19:131] if landscape else frames[0, :, 19:131, :]  # round(38 / 2) = 19
    np.testing.assert_allclose(x, crop.astype(np.float32) - np.array(MEAN_RGB, np.float32), atol=1e-4)


def test_preprocess_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[N, T, H, W, 3\]"):
        preprocess(np.zeros((1, 16, 112, 112), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        preprocess(np.zeros((1, 16, 112, 112, 3), np.int64))
