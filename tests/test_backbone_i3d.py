import math

import numpy as np
import pytest
import torch
from backbone_weights import closed_form_clip, closed_form_init, randomised
from hypothesis import given, settings
from hypothesis import strategies as st

from hl.extract.backbones import create, get_spec, load_state_dict
from hl.extract.backbones.i3d import (
    InceptionI3d,
    Unit3D,
    checkpoint_filter,
    preprocess_flow,
    preprocess_rgb,
    same_padding,
)

CHANNELS = {"i3d": 3, "i3d_flow": 2}


@pytest.fixture(scope="module", params=["i3d", "i3d_flow"])
def source(request, tmp_path_factory):
    """(name, random-init source module, path of its state dict saved as pytorch-i3d ships it)."""
    name = request.param
    torch.manual_seed(1)
    model = randomised(get_spec(name).build())
    path = tmp_path_factory.mktemp("ckpt") / f"{name}.pt"
    torch.save(model.state_dict(), path)  # pytorch-i3d's files are plain state dicts
    return name, model, path


# ----------------------------------------------------------------------------- registry


def test_specs_describe_the_documented_inputs_and_feature():
    rgb, flow = get_spec("i3d"), get_spec("i3d_flow")
    for spec in (rgb, flow):
        assert spec.modality == "video"
        assert (spec.clip_frames, spec.fps, spec.input_size) == (32, 16.0, (224, 224))
        assert spec.clip_frames / spec.fps == 2.0  # one 2-s segment per clip
        assert spec.feature_dim == 1024
        assert spec.feature_layer == "Mixed_5c -> AvgPool3d([2,7,7],1) -> mean over time"
        assert spec.checkpoint_filter is checkpoint_filter
    assert rgb.preprocess is preprocess_rgb and flow.preprocess is preprocess_flow
    assert tuple(e.name for e in rgb.weights) == ("i3d_rgb_imagenet", "i3d_rgb_charades")
    assert tuple(e.name for e in flow.weights) == ("i3d_flow_imagenet", "i3d_flow_charades")
    assert rgb.build().in_channels == 3 and flow.build().in_channels == 2
    state = rgb.build().state_dict()
    assert [state[k].shape[0] for k in rgb.extra["class_count_keys"]] == [400, 400]


# ----------------------------------------------------------------------------- public layout


@pytest.mark.parametrize(("name", "n_params"), [("i3d", 12_697_264), ("i3d_flow", 12_675_312)])
def test_parameter_names_and_shapes_match_pytorch_i3d(name, n_params):
    c = CHANNELS[name]
    model = get_spec(name).build()
    state = model.state_dict()
    expected = {
        "Conv3d_1a_7x7.conv3d.weight": (64, c, 7, 7, 7),
        "Conv3d_1a_7x7.bn.running_var": (64,),
        "Conv3d_2b_1x1.conv3d.weight": (64, 64, 1, 1, 1),
        "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
        "Mixed_3b.b0.conv3d.weight": (64, 192, 1, 1, 1),
        "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3),
        "Mixed_4f.b3b.conv3d.weight": (128, 528, 1, 1, 1),
        "Mixed_5c.b0.conv3d.weight": (384, 832, 1, 1, 1),
        "Mixed_5c.b2b.bn.weight": (128,),
        "logits.conv3d.weight": (400, 1024, 1, 1, 1),
        "logits.conv3d.bias": (400,),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert "Conv3d_1a_7x7.conv3d.bias" not in state  # convolutions before a BatchNorm have no bias
    assert not any(k.startswith("logits.bn") for k in state)
    assert len(state) == 344
    assert sum(p.numel() for p in model.parameters()) == n_params
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(bns) == 57 and all(bn.eps == 1e-3 and bn.momentum == 0.01 for bn in bns)


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_gives_identical_outputs(source):
    name, model, path = source
    loaded = create(name, weights=path)
    assert not loaded.training
    x = torch.rand(1, CHANNELS[name], 9, 193, 193, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        want, got = model(x), loaded(x)
    assert got.shape == (1, 1024)
    assert torch.equal(got, want)
    # a fresh random init differs, so the comparison is not vacuous
    assert not torch.equal(create(name).Mixed_5c.b0.conv3d.weight, loaded.Mixed_5c.b0.conv3d.weight)


def test_files_without_num_batches_tracked_load(source, tmp_path):
    # files written by PyTorch < 0.4.1 (as the released ones are) carry no num_batches_tracked
    name, model, _ = source
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(old) == 344 - 57
    torch.save(old, tmp_path / "old.pt")
    loaded = create(name, weights=tmp_path / "old.pt")
    assert torch.equal(loaded.Mixed_4d.b1b.bn.running_var, model.Mixed_4d.b1b.bn.running_var)


def test_checkpoint_filter_unwraps_and_strips_module_prefix(source, tmp_path):
    name, model, path = source
    plain = load_state_dict(get_spec(name), path)
    wrapped = {"state_dict": {"module." + k: v for k, v in model.state_dict().items()}, "epoch": 3}
    torch.save(wrapped, tmp_path / "wrapped.pt")
    unwrapped = load_state_dict(get_spec(name), tmp_path / "wrapped.pt")
    assert list(unwrapped) == list(plain) == list(model.state_dict())
    assert all(torch.equal(unwrapped[k], plain[k]) for k in plain)
    with pytest.raises(ValueError, match="state dict"):
        checkpoint_filter([1, 2, 3])


def test_strict_loading_reports_a_wrong_key_or_shape(source, tmp_path):
    name, model, _ = source
    state = model.state_dict()

    renamed = dict(state)
    renamed["Mixed_4b.b0.conv.weight"] = renamed.pop("Mixed_4b.b0.conv3d.weight")
    torch.save(renamed, tmp_path / "renamed.pt")
    with pytest.raises(RuntimeError, match="Mixed_4b.b0.conv3d.weight"):
        create(name, weights=tmp_path / "renamed.pt")

    reshaped = dict(state)
    reshaped["Mixed_4b.b1b.conv3d.weight"] = reshaped["Mixed_4b.b1b.conv3d.weight"][:, :, :1]
    torch.save(reshaped, tmp_path / "reshaped.pt")
    with pytest.raises(RuntimeError, match="size mismatch for Mixed_4b.b1b.conv3d.weight"):
        create(name, weights=tmp_path / "reshaped.pt")

    other = "i3d" if name == "i3d_flow" else "i3d_flow"  # RGB weights into the flow stream, and back
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(RuntimeError, match="Conv3d_1a_7x7.conv3d.weight"):
        create(other, weights=tmp_path / "other.pt")


def test_charades_checkpoint_resizes_only_the_logits(tmp_path):
    torch.manual_seed(3)
    charades = randomised(InceptionI3d(in_channels=3))
    charades.replace_logits(157)  # how rgb_charades.pt was trained and saved
    torch.save(charades.state_dict(), tmp_path / "rgb_charades.pt")
    loaded = create("i3d", weights=tmp_path / "rgb_charades.pt")
    assert loaded.num_classes == 157 and loaded.logits.conv3d.weight.shape == (157, 1024, 1, 1, 1)
    x = torch.rand(1, 3, 9, 193, 193) * 2 - 1
    with torch.no_grad():
        logits = loaded.classify(x)  # runs the whole trunk and the logits
        assert logits.shape == (1, 157, 1)
        assert torch.equal(logits, charades.classify(x))
    # a logits layer whose input width is wrong is still an error
    state = charades.state_dict()
    state["logits.conv3d.weight"] = state["logits.conv3d.weight"][:, :512]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(RuntimeError, match="logits.conv3d.weight"):
        create("i3d", weights=tmp_path / "bad.pt")


# ----------------------------------------------------------------------------- forward


def test_mixed_5c_matches_numbers_from_the_pytorch_i3d_definition():
    # Reference numbers: pytorch-i3d's InceptionI3d (float64) with the same closed-form weights and input,
    # run up to Mixed_5c. They pin the "same" padding split, the pool paddings and the block wiring.
    model = closed_form_init(InceptionI3d(in_channels=3).double())
    with torch.no_grad():
        maps = model.mixed_5c(closed_form_clip((1, 3, 9, 40, 40)))
    assert maps.shape == (1, 1024, 2, 2, 2)
    channel_mean = [
        0.4115224816093849, 0.4269483992880583, 0.45779248749113555, 0.4640209553705504,
        0.42638030290235673, 0.43528177233517973, 0.4567618944761807, 0.4627591107470471,
    ]  # fmt: skip
    every_128th_channel_sum = [
        0.0, 7.241011828385323, 0.0, 5.355690952517973,
        3.3277890832576604, 0.018999097251944746, 9.391135012692823, 14.18448591788532,
    ]  # fmt: skip
    torch.testing.assert_close(
        maps.mean(dim=1).flatten(), torch.tensor(channel_mean, dtype=torch.float64), rtol=0, atol=1e-9
    )
    torch.testing.assert_close(
        maps[0, ::128].sum(dim=(1, 2, 3)),
        torch.tensor(every_128th_channel_sum, dtype=torch.float64),
        rtol=0,
        atol=1e-8,
    )


def test_documented_input_shape_gives_pooled_mixed_5c_feature():
    torch.manual_seed(4)
    model = randomised(create("i3d"))
    seen = {}
    model.Mixed_5c.register_forward_hook(lambda m, i, o: seen.setdefault("mixed_5c", o))
    x = torch.rand(1, 3, 32, 224, 224) * 2 - 1
    with torch.no_grad():
        feature = model(x)
    maps = seen["mixed_5c"]
    assert maps.shape == (1, 1024, 4, 7, 7)
    assert feature.shape == (1, 1024) and feature.dtype == torch.float32
    # AvgPool3d([2,7,7], stride 1) over 4 steps, then the mean of the 3 pooled steps: weights 1,2,2,1 / 6
    spatial = maps.mean(dim=(3, 4))
    weights = torch.tensor([1.0, 2.0, 2.0, 1.0]) / 6
    torch.testing.assert_close(feature, (spatial * weights).sum(-1), rtol=1e-5, atol=1e-6)
    assert (feature >= 0).all() and feature.abs().sum() > 0  # Mixed_5c ends in ReLUs


def test_mixed_5c_shape_follows_ceil_of_strides():
    model = InceptionI3d(in_channels=2).eval()
    with torch.no_grad():
        maps = model.mixed_5c(torch.zeros(2, 2, 5, 40, 70))
    assert maps.shape == (2, 1024, math.ceil(5 / 8), math.ceil(40 / 32), math.ceil(70 / 32))


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 3, 8, 224, 224), "T >= 9"),
        ((1, 3, 32, 192, 224), "H, W >= 193"),
        ((1, 2, 32, 224, 224), r"\[B, 3, T, H, W\]"),
        ((3, 32, 224, 224), r"\[B, 3, T, H, W\]"),
    ],
)
def test_bad_input_is_a_one_line_error(shape, message):
    model = InceptionI3d()
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(shape))


# ----------------------------------------------------------------------------- "same" padding


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 300), kernel=st.integers(1, 7), stride=st.integers(1, 3))
def test_same_padding_is_tensorflows(size, kernel, stride):
    before, after = same_padding(size, kernel, stride)
    out_steps = math.ceil(size / stride)
    assert before + after == max((out_steps - 1) * stride + kernel - size, 0)
    assert after - before in (0, 1)  # the odd pixel goes after
    if size + before + after >= kernel:
        assert (size + before + after - kernel) // stride + 1 == out_steps


@settings(max_examples=25, deadline=None)
@given(
    t=st.integers(1, 9), h=st.integers(1, 12), k=st.sampled_from([1, 2, 3, 7]), s=st.integers(1, 2)
)
def test_unit3d_output_has_ceil_size_over_stride(t, h, k, s):
    unit = Unit3D(2, 3, (k, k, k), stride=(s, s, s)).eval()
    with torch.no_grad():
        out = unit(torch.randn(1, 2, t, h, h + 1))
    assert out.shape == (1, 3, math.ceil(t / s), math.ceil(h / s), math.ceil((h + 1) / s))


# ----------------------------------------------------------------------------- preprocessing


def test_preprocess_rgb_shape_dtype_and_range():
    g = torch.Generator().manual_seed(5)
    frames = torch.randint(0, 256, (2, 3, 240, 320, 3), dtype=torch.uint8, generator=g)
    x = preprocess_rgb(frames)
    assert x.shape == (2, 3, 3, 224, 224) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.9 and x.max() > 0.9
    black = torch.zeros(1, 2, 300, 400, 3, dtype=torch.uint8)
    white = torch.full((1, 2, 300, 400, 3), 255, dtype=torch.uint8)
    assert torch.equal(preprocess_rgb(black), torch.full((1, 3, 2, 224, 224), -1.0))
    torch.testing.assert_close(preprocess_rgb(white), torch.ones(1, 3, 2, 224, 224))


def test_preprocess_rgb_scales_and_centre_crops_without_resizing_at_short_side_256():
    # short side already 256: only the centre crop and the [-1, 1] scaling apply
    h, w = 256, 300
    frame = torch.zeros(h, w, 3, dtype=torch.uint8)
    frame[..., 0] = (torch.arange(w) % 256).to(torch.uint8)  # R encodes the column
    frame[..., 1] = torch.arange(h).to(torch.uint8)[:, None]  # G encodes the row
    frame[..., 2] = 200
    x = preprocess_rgb(frame[None, None].repeat(1, 2, 1, 1, 1))
    top, left = 16, 38  # round((256 - 224) / 2), round((300 - 224) / 2)
    assert x.shape == (1, 3, 2, 224, 224)
    torch.testing.assert_close(x[0, 0, 1, 5], (torch.arange(left, left + 224) % 256).float() / 127.5 - 1)
    torch.testing.assert_close(x[0, 1, 0, :, 7], torch.arange(top, top + 224).float() / 127.5 - 1)
    torch.testing.assert_close(x[0, 2], torch.full((2, 224, 224), 200 / 127.5 - 1))


def test_preprocess_rgb_resizes_the_short_side_of_portrait_video():
    # a vertical gradient on a 512 x 384 portrait frame: the short side (width) becomes 256, the
    # height 341; bilinear resizing keeps a linear ramp linear away from the borders
    h, w = 512, 384
    ramp = torch.linspace(0, 255, h).round().to(torch.uint8)
    frame = ramp[:, None, None].expand(h, w, 3).contiguous()
    x = preprocess_rgb(np.asarray(frame)[None, None])  # numpy input is accepted too
    assert x.shape == (1, 3, 1, 224, 224)
    column = x[0, 0, 0, :, 100]
    steps = column[1:] - column[:-1]
    per_row = (255 / (h - 1)) * (h / 341) / 127.5  # value change per output row
    torch.testing.assert_close(steps, torch.full_like(steps, per_row), atol=0.01, rtol=0)
    top = round((341 - 224) / 2)
    expected_first = ((top + 0.5) * h / 341 - 0.5) * 255 / (h - 1) / 127.5 - 1
    assert abs(column[0].item() - expected_first) < 0.02
    assert torch.allclose(x[0, 0], x[0, 2])


@pytest.mark.parametrize(
    "frames",
    [
        torch.zeros(1, 4, 64, 64, 3),  # float, not uint8
        torch.zeros(4, 64, 64, 3, dtype=torch.uint8),  # no clip axis
        torch.zeros(1, 4, 64, 64, 4, dtype=torch.uint8),  # RGBA
    ],
)
def test_preprocess_rgb_rejects_other_layouts(frames):
    with pytest.raises(ValueError, match=r"uint8 RGB frames \[N, T, H, W, 3\]"):
        preprocess_rgb(frames)


def test_preprocess_flow_checks_layout_and_range():
    flow = torch.rand(2, 2, 32, 224, 224, dtype=torch.float64) * 2 - 1
    out = preprocess_flow(flow)
    assert out.dtype == torch.float32 and out.shape == flow.shape
    torch.testing.assert_close(out, flow.float())
    with pytest.raises(ValueError, match=r"\[N, 2, T, 224, 224\]"):
        preprocess_flow(torch.zeros(1, 3, 32, 224, 224))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        preprocess_flow(flow * 20)
