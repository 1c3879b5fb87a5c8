"""C3D: c3d-pytorch compatible names/shapes, c3d.pickle round trip, outputs and Sports-1M preprocessing."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hl.extract.backbones import create, get_spec
from hl.extract.backbones.c3d import C3D, SPORTS1M_MEAN_BGR, preprocess

# The parameters of c3d-pytorch's C3D_model.py, i.e. the keys of c3d.pickle.
C3D_PICKLE_SHAPES = {
    "conv1.weight": (64, 3, 3, 3, 3), "conv1.bias": (64,),
    "conv2.weight": (128, 64, 3, 3, 3), "conv2.bias": (128,),
    "conv3a.weight": (256, 128, 3, 3, 3), "conv3a.bias": (256,),
    "conv3b.weight": (256, 256, 3, 3, 3), "conv3b.bias": (256,),
    "conv4a.weight": (512, 256, 3, 3, 3), "conv4a.bias": (512,),
    "conv4b.weight": (512, 512, 3, 3, 3), "conv4b.bias": (512,),
    "conv5a.weight": (512, 512, 3, 3, 3), "conv5a.bias": (512,),
    "conv5b.weight": (512, 512, 3, 3, 3), "conv5b.bias": (512,),
    "fc6.weight": (4096, 8192), "fc6.bias": (4096,),
    "fc7.weight": (4096, 4096), "fc7.bias": (4096,),
    "fc8.weight": (487, 4096), "fc8.bias": (487,),
}


@pytest.fixture(scope="module")
def source_and_pickle(tmp_path_factory):
    """A randomly initialised C3D and its weights saved the way c3d.pickle is (a bare state dict)."""
    torch.manual_seed(0)
    model = C3D().eval()
    path = tmp_path_factory.mktemp("c3d") / "c3d.pickle"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(1)
    frames = torch.randint(0, 256, (1, 16, 90, 160, 3), dtype=torch.uint8)
    return preprocess(frames)


def test_parameter_names_and_shapes_match_c3d_pickle():
    state = C3D().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == C3D_PICKLE_SHAPES


def test_pickle_round_trip_gives_identical_fc6_and_maps(source_and_pickle, clip):
    source, path = source_and_pickle
    with torch.no_grad():
        maps = source.conv_maps(clip)
        fc6 = source.fc6_from_maps(maps)
        loaded_fc6 = create("c3d", weights=path)(clip)
        loaded_maps = create("c3d_maps", weights=path)(clip)
    assert fc6.shape == (1, 4096)
    assert maps.shape == (1, 512, 2, 7, 7)
    torch.testing.assert_close(loaded_fc6, fc6, rtol=0, atol=0)
    torch.testing.assert_close(loaded_maps, maps, rtol=0, atol=0)
    # fc6 and conv5b come after ReLU; random weights still give a non-trivial feature
    assert fc6.min() >= 0 and maps.min() >= 0
    assert (fc6 > 0).any() and (maps > 0).any()


def test_created_model_is_in_eval_mode_and_loading_is_strict(source_and_pickle, tmp_path):
    _, path = source_and_pickle
    assert not create("c3d", weights=path).training
    state = torch.load(path)
    del state["fc8.bias"]
    torch.save(state, tmp_path / "broken.pickle")
    with pytest.raises(RuntimeError, match="fc8.bias"):
        create("c3d", weights=tmp_path / "broken.pickle")


def test_logits_have_sports1m_classes(source_and_pickle, clip):
    source, _ = source_and_pickle
    with torch.no_grad():
        assert source.logits(clip).shape == (1, 487)


def test_fc6_needs_a_16x112x112_clip():
    model = C3D()
    with pytest.raises(ValueError, match="16x112x112"), torch.no_grad():
        model(torch.zeros(1, 3, 16, 32, 32))
    with pytest.raises(ValueError, match=r"\[B, 3, T, H, W\]"):
        model(torch.zeros(3, 16, 112, 112))


def test_specs():
    fc6, maps = get_spec("c3d"), get_spec("c3d_maps")
    for spec in (fc6, maps):
        assert spec.modality == "video"
        assert spec.clip_frames == 16 and spec.fps == 8.0 and spec.input_size == (112, 112)
        assert spec.preprocess is preprocess
    assert fc6.feature_dim == 4096
    assert maps.feature_dim == 512 and maps.feature_shape == (512, 2, 7, 7)


def test_sports1m_mean_is_bgr_order():
    # blue < green < red in the Sports-1M mean, stored B, G, R
    assert SPORTS1M_MEAN_BGR == (90.25, 97.66, 101.41)


@settings(max_examples=25, deadline=None)
@given(
    rgb=st.tuples(*[st.integers(0, 255)] * 3),
    height=st.integers(16, 300),
    width=st.integers(16, 300),
)
def test_constant_frames_give_bgr_minus_mean(rgb, height, width):
    frames = np.empty((2, 3, height, width, 3), dtype=np.uint8)
    frames[...] = rgb
    x = preprocess(frames)
    assert x.shape == (2, 3, 3, 112, 112) and x.dtype == torch.float32
    r, g, b = rgb
    expected = torch.tensor([b, g, r], dtype=torch.float32) - torch.tensor(SPORTS1M_MEAN_BGR)
    torch.testing.assert_close(x.amin(dim=(0, 2, 3, 4)), expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(x.amax(dim=(0, 2, 3, 4)), expected, atol=1e-3, rtol=0)


def test_frames_at_128x171_are_centre_cropped_without_resampling():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (1, 2, 128, 171, 3), dtype=np.uint8)
    x = preprocess(frames)
    crop = frames[0, :, 8:120, 29:141, ::-1].astype(np.float32) - np.array(SPORTS1M_MEAN_BGR, np.float32)
    np.testing.assert_allclose(x[0].permute(1, 2, 3, 0).numpy(), crop, atol=1e-4)


def test_preprocess_range():
    x = preprocess(np.full((1, 1, 50, 60, 3), 255, np.uint8))
    assert x.max() <= 255 - min(SPORTS1M_MEAN_BGR)
    x = preprocess(np.zeros((1, 1, 50, 60, 3), np.uint8))
    assert x.min() >= -max(SPORTS1M_MEAN_BGR)


def test_preprocess_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[N, T, H, W, 3\]"):
        preprocess(np.zeros((16, 112, 112, 3), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        preprocess(np.zeros((1, 16, 112, 112, 3), np.float32))


def test_random_init_is_the_same_in_every_process():
    import subprocess
    import sys

    code = "from hl.extract.backbones import create; print(float(create('c3d').fc6.weight[:4, :4].sum()))"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(runs) == 1
