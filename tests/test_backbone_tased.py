
import numpy as np
import pytest
import torch
from backbone_weights import closed_form_clip, closed_form_init, randomised
from hypothesis import given, settings
from hypothesis import strategies as st

from hl.extract.backbones import create, get_spec, load_state_dict
from hl.extract.backbones.tased import TasedEncoding, TasedNet, checkpoint_filter, preprocess

SMALL = (1, 3, 32, 64, 96)  # the smallest clean input: 32 frames, H and W multiples of 32


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A random-init TASED-Net and its state dict saved as TASED_updated.pt is laid out ("module." keys)."""
    torch.manual_seed(1)
    model = randomised(TasedNet())
    path = tmp_path_factory.mktemp("ckpt") / "TASED_updated.pt"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, path)
    return model, path


@pytest.fixture(scope="module")
def small_clip():
    return torch.rand(SMALL, generator=torch.Generator().manual_seed(2)) * 2 - 1


# ----------------------------------------------------------------------------- registry


def test_specs_describe_the_documented_inputs_and_outputs():
    tased, maps = get_spec("tased"), get_spec("tased_maps")
    for spec in (tased, maps):
        assert spec.modality == "video"
        assert (spec.clip_frames, spec.input_size, spec.fps) == (32, (224, 384), 0.0)
        assert "consecutive" in spec.notes and "native" in spec.notes
        assert spec.preprocess is preprocess and spec.checkpoint_filter is checkpoint_filter
        assert tuple(e.name for e in spec.weights) == ("tased_dhf1k",)
    assert (tased.feature_dim, tased.feature_shape) == (1, (224, 384))
    assert tased.feature_layer == "saliency map of the last frame (sigmoid)"
    assert (maps.feature_dim, maps.feature_shape) == (1024, (1024, 4, 7, 12))
    assert tased.build().output == "saliency" and maps.build().output == "bottleneck"


# ----------------------------------------------------------------------------- public layout


def test_parameter_names_and_shapes_match_tased_v2():
    model = TasedNet()
    state = model.state_dict()
    expected = {
        # encoder: S3D stem and separable Inception blocks
        "base1.0.conv_s.weight": (64, 3, 1, 7, 7),
        "base1.0.conv_t.weight": (64, 64, 7, 1, 1),
        "base1.0.bn_t.running_var": (64,),
        "base1.2.conv.weight": (64, 64, 1, 1, 1),
        "base1.3.conv_s.weight": (192, 64, 1, 3, 3),
        "base2.0.branch0.0.conv.weight": (64, 192, 1, 1, 1),
        "base2.0.branch1.1.conv_s.weight": (128, 96, 1, 3, 3),
        "base3.4.branch3.1.conv.weight": (128, 528, 1, 1, 1),
        "base4.1.branch1.1.conv_t.weight": (384, 384, 3, 1, 1),
        "base4.1.branch3.1.conv.weight": (128, 832, 1, 1, 1),
        # decoder (ConvTranspose3d weights are [in, out, ...])
        "convtsp1.0.weight": (1024, 1024, 1, 1, 1),
        "convtsp1.3.weight": (1024, 832, 1, 3, 3),
        "convtsp2.0.weight": (832, 480, 1, 3, 3),
        "convtsp3.0.weight": (480, 192, 1, 3, 3),
        "convtsp4.0.weight": (192, 64, 1, 4, 4),
        "convtsp4.3.weight": (64, 64, 2, 1, 1),
        "convtsp4.9.weight": (4, 4, 2, 1, 1),
        "convtsp4.10.running_var": (4,),
        "convtsp4.12.weight": (4, 4, 1, 4, 4),
        "convtsp4.13.weight": (1, 4, 1, 1, 1),
        "convtsp4.13.bias": (1,),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert "convtsp4.12.bias" not in state and "base1.0.conv_s.bias" not in state
    assert {k.split(".")[0] for k in state} == {f"base{i}" for i in range(1, 5)} | {
        f"convtsp{i}" for i in range(1, 5)
    }
    assert len(state) == 513
    assert sum(p.numel() for p in model.parameters()) == 21_260_693
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(bns) == 85 and all(bn.eps == 1e-3 and bn.momentum == 1e-3 for bn in bns)


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_gives_identical_outputs(source, small_clip):
    model, path = source
    assert all(k.startswith("module.") for k in torch.load(path, weights_only=True))
    saliency, maps = create("tased", weights=path), create("tased_maps", weights=path)
    assert not saliency.training and not maps.training
    with torch.no_grad():
        enc = model.encode(small_clip)
        want = model.decode(enc)
        assert torch.equal(saliency(small_clip), want)
        assert torch.equal(maps(small_clip), enc.bottleneck)
    # a fresh random init differs, so the comparison is not vacuous
    assert not torch.equal(create("tased").convtsp1[0].weight, saliency.convtsp1[0].weight)


def test_checkpoint_filter_strips_the_prefix_and_unwraps(source, tmp_path):
    model, path = source
    state = load_state_dict(get_spec("tased"), path)
    assert list(state) == list(model.state_dict())
    torch.save({"state_dict": dict(model.state_dict())}, tmp_path / "plain.pt")
    assert list(load_state_dict(get_spec("tased_maps"), tmp_path / "plain.pt")) == list(state)
    with pytest.raises(ValueError, match="state dict"):
        checkpoint_filter(torch.zeros(3))


def test_strict_loading_reports_a_wrong_key_or_shape(source, tmp_path):
    model, _ = source
    state = {"module." + k: v for k, v in model.state_dict().items()}

    missing = dict(state)
    del missing["module.convtsp4.13.bias"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*convtsp4.13.bias"):
        create("tased", weights=tmp_path / "missing.pt")

    renamed = dict(state)
    renamed["module.base2.0.branch1.1.conv.weight"] = renamed.pop("module.base2.0.branch1.1.conv_s.weight")
    torch.save(renamed, tmp_path / "renamed.pt")
    with pytest.raises(RuntimeError, match="base2.0.branch1.1.conv_s.weight"):
        create("tased_maps", weights=tmp_path / "renamed.pt")

    reshaped = dict(state)
    reshaped["module.convtsp1.3.weight"] = reshaped["module.convtsp1.3.weight"][:, :480]
    torch.save(reshaped, tmp_path / "reshaped.pt")
    with pytest.raises(RuntimeError, match="size mismatch for convtsp1.3.weight"):
        create("tased", weights=tmp_path / "reshaped.pt")


# ----------------------------------------------------------------------------- forward


def test_matches_numbers_from_the_tased_v2_definition():
    # Reference numbers: MichiganCOG/TASED-Net's TASED_v2 (float64) with the same closed-form weights and
    # input [1, 3, 32, 64, 96]. They pin the encoder wiring, the pooling indices and the decoder.
    model = closed_form_init(TasedNet().double())
    clip = closed_form_clip(SMALL)
    with torch.no_grad():
        enc = model.encode(clip)
        saliency = model.decode(enc)
    bottleneck_channel_mean = [
        0.23840182604373006, 0.24888583635875355, 0.2192685124366096, 0.22827634252232448,
        0.2286554249109704, 0.21721525074893017, 0.25225485047448515, 0.2698146787868205,
        0.22842199641483096, 0.23625828273766752, 0.2387028813769809, 0.2297670662559187,
        0.2518559033828308, 0.2686333974093152, 0.2305359012006969, 0.23650820565543476,
        0.2390802836135374, 0.22906475917180094, 0.22753940456725608, 0.23768984485983896,
        0.21148599116678943, 0.22438612104718555, 0.2264519741733387, 0.21918143966852632,
    ]  # fmt: skip
    column_mean_every_8th = [
        0.5268957179558985, 0.519942881452145, 0.519942881452145, 0.519942881452145,
        0.5199472339176756, 0.519942881452145, 0.519942881452145, 0.519942881452145,
        0.519942881452145, 0.519942881452145, 0.519942881452145, 0.5199406358485144,
    ]  # fmt: skip
    row_mean_every_8th = [
        0.49018531418945716, 0.45812095272761894, 0.45811971760412823, 0.45811369196075447,
        0.45812095272761894, 0.45812095272761894, 0.45812095272761894, 0.4581040519696173,
    ]  # fmt: skip

    def close(got, want):
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-9)

    close(enc.bottleneck.mean(dim=1).flatten(), bottleneck_channel_mean)
    close(saliency.mean(dim=1)[0, ::8], column_mean_every_8th)
    close(saliency.mean(dim=2)[0, ::8], row_mean_every_8th)
    close(saliency.mean().reshape(1), [0.5238538466271382])


def test_documented_input_shape_gives_a_map_in_zero_one():
    torch.manual_seed(3)
    model = randomised(create("tased"))
    seen = {}
    model.base4.register_forward_hook(lambda m, i, o: seen.setdefault("bottleneck", o))
    x = torch.rand(1, 3, 32, 224, 384) * 2 - 1
    with torch.no_grad():
        saliency = model(x)
    assert saliency.shape == (1, 224, 384) and saliency.dtype == torch.float32
    assert saliency.min() > 0 and saliency.max() < 1  # the final sigmoid
    assert saliency.std() > 0
    assert tuple(seen["bottleneck"].shape[1:]) == get_spec("tased_maps").feature_shape == (1024, 4, 7, 12)


def test_encode_returns_the_documented_maps_and_decode_reads_them(small_clip):
    model = randomised(TasedNet())
    with torch.no_grad():
        enc = model.encode(small_clip)
        assert isinstance(enc, TasedEncoding)
        h, w = SMALL[3:]
        shapes = {name: tuple(t.shape) for name, t in enc._asdict().items()}
        assert shapes == {
            "skip1": (1, 192, 4, h // 4, w // 4),
            "skip2": (1, 480, 4, h // 8, w // 8),
            "skip3": (1, 832, 4, h // 16, w // 16),
            "bottleneck": (1, 1024, 4, h // 32, w // 32),
            "idx1": (1, 192, 4, h // 8, w // 8),
            "idx2": (1, 480, 4, h // 16, w // 16),
            "idx3": (1, 832, 4, h // 32, w // 32),
        }
        # each index points into its skip map's flattened T*H*W volume, at the maximum of its pooling window
        pools = {"idx1": ((1, 3, 3), (0, 1, 1)), "idx2": ((1, 3, 3), (0, 1, 1)), "idx3": ((1, 2, 2), 0)}
        for skip, idx, (kernel, padding) in zip(
            (enc.skip1, enc.skip2, enc.skip3), (enc.idx1, enc.idx2, enc.idx3), pools.values()
        ):
            volume = skip.flatten(2)  # [B, C, T*H*W]
            picked = volume.gather(2, idx.flatten(2)).reshape(idx.shape)
            pooled = torch.nn.functional.max_pool3d(skip, kernel, (1, 2, 2), padding)
            assert torch.equal(picked, pooled)
        assert torch.equal(model.decode(enc), model(small_clip))
        # the decoder reads the indices: moving them moves the map
        shuffled = enc._replace(idx1=torch.zeros_like(enc.idx1))
        assert not torch.equal(model.decode(shuffled), model.decode(enc))


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 3, 16, 224, 384), r"\[B, 3, 32, H, W\]"),
        ((1, 1, 32, 224, 384), r"\[B, 3, 32, H, W\]"),
        ((3, 32, 224, 384), r"\[B, 3, 32, H, W\]"),
        ((1, 3, 32, 224, 390), "multiples of 32"),
    ],
)
def test_bad_input_is_a_one_line_error(shape, message):
    with pytest.raises(ValueError, match=message):
        TasedNet()(torch.zeros(shape))


def test_unknown_output_is_rejected():
    with pytest.raises(ValueError, match="output must be one of"):
        TasedNet(output="logits")


# ----------------------------------------------------------------------------- preprocessing


def test_preprocess_resizes_to_224_by_384():
    g = torch.Generator().manual_seed(4)
    frames = torch.randint(0, 256, (2, 32, 90, 160, 3), dtype=torch.uint8, generator=g)
    x = preprocess(frames)
    assert x.shape == (2, 3, 32, 224, 384) and x.dtype == torch.float32
    assert -1 <= x.min() < -0.5 and 0.5 < x.max() <= 1
    black = torch.zeros(1, 2, 360, 640, 3, dtype=torch.uint8)
    white = torch.full((1, 2, 360, 640, 3), 255, dtype=torch.uint8)
    assert torch.equal(preprocess(black), torch.full((1, 3, 2, 224, 384), -1.0))
    torch.testing.assert_close(preprocess(white), torch.ones(1, 3, 2, 224, 384))


def test_preprocess_keeps_channel_and_frame_order():
    frames = torch.zeros(1, 3, 224, 384, 3, dtype=torch.uint8)
    for t in range(3):
        frames[0, t, ..., 0] = 10 * t  # R follows the frame index
        frames[0, t, ..., 2] = 255  # B is white
    x = preprocess(np.asarray(frames))  # numpy input is accepted too
    for t in range(3):
        torch.testing.assert_close(x[0, 0, t], torch.full((224, 384), (20 * t - 255) / 255))
    torch.testing.assert_close(x[0, 2], torch.ones(3, 224, 384))
    torch.testing.assert_close(x[0, 1], torch.full((3, 224, 384), -1.0))


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
)
def test_preprocess_is_2x_minus_255_over_255_at_native_size(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (1, 2, h, w, 3), dtype=torch.uint8, generator=g)
    x = preprocess(frames, size=(h, w))
    expected = (frames.permute(0, 4, 1, 2, 3).double() * 2 - 255) / 255
    torch.testing.assert_close(x.double(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "frames",
    [
        torch.zeros(1, 4, 64, 64, 3),  # float, not uint8
        torch.zeros(4, 64, 64, 3, dtype=torch.uint8),  # no clip axis
        torch.zeros(1, 4, 3, 64, 64, dtype=torch.uint8),  # channels first
    ],
)
def test_preprocess_rejects_other_layouts(frames):
    with pytest.raises(ValueError, match=r"uint8 RGB frames \[N, T, H, W, 3\]"):
        preprocess(frames)
