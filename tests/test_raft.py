"""RAFT (hl.extract.backbones.raft) against the public definitions, its checkpoint formats, and the I3D flow
extractors that run it.

tests/data/raft_reference.npz holds the flows of torchvision's raft_large / raft_small and of princeton-vl's
original RAFT on seeded frames, every model filled with backbone_weights.seeded_state, and the names and shapes of
their state dicts (made by benchmarks/raft_reference.py, in an environment with torchvision and the original
code; neither is needed here).
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from backbone_weights import seeded_state
from hypothesis import given, settings
from hypothesis import strategies as st

from hl.common import HLError
from hl.extract.backbones import create, get_spec, load_state_dict
from hl.extract.backbones.i3d import InceptionI3d
from hl.extract.backbones.raft import (
    _original_name,
    checkpoint_filter,
    pad_to_8,
    raft_large,
    raft_small,
    to_raft_input,
)

REFERENCE = np.load(Path(__file__).parent / "data" / "raft_reference.npz")
BUILD = {"large": raft_large, "small": raft_small}


def _seeded(size: str, iterations: int | None = None) -> torch.nn.Module:
    model = BUILD[size](num_flow_updates=iterations or int(REFERENCE["iterations"])).eval()
    model.load_state_dict(seeded_state(model), strict=True)
    return model


def _flow(model: torch.nn.Module, pairs: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(pairs).permute(0, 1, 4, 2, 3)  # [P, 2, 3, H, W] uint8
    with torch.no_grad():
        return model(to_raft_input(x[:, 0]), to_raft_input(x[:, 1])).numpy()


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("size", ["large", "small"])
@pytest.mark.parametrize("definition", ["tv", "original"])
def test_flow_matches_the_public_definition(definition, size):
    """torchvision's: 128 x 144 frames in [-1, 1]; the original's: 130 x 150 frames padded by its InputPadder (the
    flow cropped back), input 2 * (x / 255) - 1; 4 iterations, the last flow upsampled."""
    reference = REFERENCE[f"{definition}_{size}"]
    assert np.abs(reference).mean() > 1.0  # the seeded weights give a non-trivial flow, and a finite one
    flow = _flow(_seeded(size), REFERENCE[f"{definition}_pairs"])[..., ::2, ::2]
    assert flow.shape == reference.shape
    assert _relative_error(flow, reference) < 1e-4


def _layout(model: torch.nn.Module) -> list[str]:
    return [f"{k} {list(v.shape)}" for k, v in model.state_dict().items()]


@pytest.mark.parametrize("size, n_params", [("large", 5_257_536), ("small", 990_162)])
def test_parameter_names_and_shapes_are_torchvisions(size, n_params):
    model = BUILD[size]()
    assert _layout(model) == REFERENCE[f"tv_{size}_layout"].tolist()  # names, shapes and order
    assert sum(p.numel() for p in model.parameters()) == n_params  # torchvision's num_params


def _original_state(size: str) -> dict[str, torch.Tensor]:
    """A state dict in princeton-vl's format (DataParallel's names, the shortcut norms stored twice) holding our
    seeded weights."""
    ours = seeded_state(BUILD[size]())
    names = [line.split(" ", 1)[0] for line in REFERENCE[f"original_{size}_layout"]]
    keys = {k.removeprefix("module.") for k in names}
    state = {}
    for k in names:
        name = _original_name(k.removeprefix("module."), keys)
        if name is None:  # layerK.0.normN, the twin of layerK.0.downsample.1
            block, leaf = k.rsplit(".norm", 1)[0], k.rsplit(".", 1)[1]
            name = _original_name(f"{block}.downsample.1.{leaf}".removeprefix("module."), keys)
        state[k] = ours[name].clone()
    return state


@pytest.mark.parametrize("size", ["large", "small"])
def test_both_published_formats_load_unchanged(size, tmp_path):
    expected = _flow(_seeded(size), REFERENCE["tv_pairs"][:1])
    tv_file, original_file = tmp_path / "torchvision.pth", tmp_path / "raft-original.pth"
    torch.save(seeded_state(BUILD[size]()), tv_file)  # as torchvision publishes: a plain state dict, its names
    torch.save(_original_state(size), original_file)  # as princeton-vl publishes: module.fnet..., cnet...
    spec = get_spec(f"raft_{size}")
    for path in (tv_file, original_file):
        state = load_state_dict(spec, path)  # weights_only=True, then the filter
        assert set(state) == set(_seeded(size).state_dict())
        model = create(f"raft_{size}", weights=path)
        model.num_flow_updates = int(REFERENCE["iterations"])
        np.testing.assert_array_equal(_flow(model, REFERENCE["tv_pairs"][:1]), expected)


def test_the_filter_drops_only_the_originals_duplicate_shortcut_norms():
    state = _original_state("large")
    mapped = checkpoint_filter(state)
    duplicates = [k for k in state if _original_name(k.removeprefix("module."), {s[7:] for s in state}) is None]
    assert len(duplicates) == 2 * 5  # cnet.layer2.0.norm3 and cnet.layer3.0.norm3: 5 BatchNorm tensors each
    assert len(mapped) == len(state) - len(duplicates) == 169
    assert checkpoint_filter({"state_dict": state}).keys() == mapped.keys()
    with pytest.raises(ValueError, match="RAFT state dict"):
        checkpoint_filter([1, 2])


def test_a_wrong_file_is_a_one_line_error(tmp_path):
    from hl.extract.weights import add_weights, check_checkpoint, download_weights

    i3d_file = tmp_path / "flow_imagenet.pt"
    torch.save(InceptionI3d(in_channels=2).state_dict(), i3d_file)
    with pytest.raises(HLError, match="does not fit backbone raft_large"):
        add_weights("raft_large", i3d_file, weights_dir=tmp_path / "w")
    small = tmp_path / "raft_small.pth"
    torch.save(seeded_state(raft_small()), small)
    diffs = check_checkpoint("raft_large", small)
    assert any(d.startswith("shape of feature_encoder.convnormrelu.0.weight") for d in diffs)
    assert check_checkpoint("raft_small", small) == []
    not_a_checkpoint = tmp_path / "raft-sintel.pth"
    not_a_checkpoint.write_bytes(b"<html>Dropbox sign-in page</html>")
    with pytest.raises(HLError, match=r"raft-sintel.pth: cannot read it as a raft_large checkpoint"):
        check_checkpoint("raft_large", not_a_checkpoint)
    with pytest.raises(HLError, match="sha256 starts with 01064c6d"):  # torchvision's name says what it must be
        add_weights("raft_small_c_t_v2", small, weights_dir=tmp_path / "w")
    with pytest.raises(HLError, match="download raft-sintel.pth in a browser, then add it with `hl weights add"):
        download_weights("raft_large_sintel", weights_dir=tmp_path / "w")  # princeton-vl's Drive folder


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40))
def test_padding_to_8_is_the_originals_and_the_crop_undoes_it(h, w):
    x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
    padded, (top, bottom, left, right) = pad_to_8(x)
    ph, pw = padded.shape[-2:]
    assert ph % 8 == 0 and pw % 8 == 0 and 0 <= ph - h < 8 and 0 <= pw - w < 8
    assert top == (ph - h) // 2 and left == (pw - w) // 2  # InputPadder("sintel"): the odd pixel after
    assert torch.equal(padded[..., top:bottom, left:right], x)
    assert torch.equal(padded[..., :top, left:right], x[..., :1, :].expand(-1, -1, top, -1))  # replicated


def test_consecutive_pairs_encode_each_frame_once_and_equal_pairwise_flow():
    model = _seeded("small", iterations=2)
    frames = to_raft_input(torch.from_numpy(REFERENCE["tv_pairs"]).permute(0, 1, 4, 2, 3).reshape(4, 3, 128, 144))
    with torch.no_grad():
        together = model.consecutive(frames, pairs_per_pass=2)  # 3 pairs: 2, then 1
        pairwise = model(frames[:-1], frames[1:])
    assert together.shape == (3, 2, 128, 144)
    torch.testing.assert_close(together, pairwise, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="at least 128 x 128"):
        model(frames[:1, :, :64], frames[1:2, :, :64])


def test_i3d_flow_raft_reads_two_files_the_i3d_checkpoint_unchanged(tmp_path):
    from hl.extract.weights import check_checkpoint

    spec = get_spec("i3d_flow_raft_small_frames")
    assert spec.parts == (("flow_model", "raft_small"),) and spec.extractors[0].name == "i3d_flow_raft_small"
    assert not spec.extractors[0].default  # needs weights of its own besides I3D's
    torch.manual_seed(1)
    i3d = InceptionI3d(in_channels=2)
    i3d_file, raft_file = tmp_path / "flow_imagenet.pt", tmp_path / "raft-small.pth"
    torch.save(i3d.state_dict(), i3d_file)
    torch.save(_original_state("small"), raft_file)
    assert check_checkpoint("i3d_flow_raft_small_frames", i3d_file) == []  # RAFT's tensors are checked on their own
    model = create("i3d_flow_raft_small_frames", weights=(i3d_file, raft_file))
    for k, v in i3d.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    for k, v in seeded_state(raft_small()).items():
        assert torch.equal(model.state_dict()["flow_model." + k], v)
    with pytest.raises(HLError, match=r"takes 2 weights file\(s\) \(i3d_flow_raft_small_frames \+ raft_small\)"):
        create("i3d_flow_raft_small_frames", weights=i3d_file)


def test_extraction_plans_name_the_missing_raft_file_and_hash_both(tmp_path):
    from hl.extract.extractors import RunSettings, extractor_config, get_extractor
    from hl.extract.weights import weights_hash
    from hl.pipelines.cache import FeatureOrigin
    from hl.pipelines.stages.extract import plan_extractors

    wdir = tmp_path / "w"
    wdir.mkdir()
    torch.save(InceptionI3d(in_channels=2).state_dict(), wdir / "flow_imagenet.pt")
    with pytest.raises(HLError, match="it lacks raft_small weights"):
        plan_extractors(["i3d_flow_raft_small"], wdir, RunSettings())
    torch.save(_original_state("small"), wdir / "raft-small.pth")
    (plan,), _ = plan_extractors(["i3d_flow_raft_small"], wdir, RunSettings())
    assert plan.weights == (str(wdir / "flow_imagenet.pt"), str(wdir / "raft-small.pth"))
    assert plan.weights_hash == weights_hash(wdir / "flow_imagenet.pt") + "+" + weights_hash(wdir / "raft-small.pth")
    # a trained run's features are remade from exactly that pair of files
    origin = FeatureOrigin.from_config("i3d_flow_raft_small", extractor_config(
        get_extractor("i3d_flow_raft_small"), RunSettings(), ""), plan.weights_hash)
    (again,), _ = plan_extractors(None, wdir, RunSettings(), require={"i3d_flow_raft_small": origin})
    assert again.weights == plan.weights and again.weights_hash == plan.weights_hash


def test_i3d_flow_with_raft_runs_on_a_decoded_video(tmp_path):
    """One real decoded segment through the rgb stream's decoding pass into I3D with RAFT small in front (random
    weights; 1 iteration, to stay fast)."""
    from hl.data_manifests.synthetic import make_dataset
    from hl.extract import segments as seg
    from hl.extract.decode import VideoSource
    from hl.extract.extractors import RunSettings, chunk_inputs, get_extractor

    videos, _ = make_dataset(tmp_path, n_videos=1, seconds=2, fps=16)
    source = VideoSource(videos[0].path)
    segments = seg.fixed_segments(source.info.duration, 2.0)
    (chunk,) = chunk_inputs(source, segments, [get_extractor("i3d"), get_extractor("i3d_flow_raft_small")],
                            RunSettings())
    clips = chunk.video["i3d_flow_raft_small"].clips(0, 1)
    assert clips.dtype == torch.uint8 and clips.shape[:3] == (1, 3, 33)  # RGB frames, kept uint8
    assert chunk.video["i3d"].clips(0, 1).shape == (1, 3, 32, 224, 224)  # same chunk, same decoding pass
    model = create("i3d_flow_raft_small_frames")
    model.flow_model.num_flow_updates = 1
    with torch.no_grad():
        flow = model.flow(clips)
        feature = InceptionI3d.forward(model, flow)  # what model(clips) returns, without the flow again
    assert flow.shape == (1, 2, 32, 224, 224) and flow.abs().max() <= 1.0 and flow.abs().mean() > 0
    assert feature.shape == (1, 1024) and torch.isfinite(feature).all()


def test_auto_runs_raft_in_bf16_only_where_the_machine_chooses_bf16_and_i3d_in_fp32():
    from hl.extract.extractors import RunSettings, effective_flow_precision, effective_precision, get_extractor

    raft, i3d = get_extractor("i3d_flow_raft"), get_extractor("i3d")
    bf16_machine = RunSettings("cpu", "bf16", auto=True)  # what "auto" resolves to on AMX / AVX512-BF16 / GPUs
    assert (effective_precision(raft, bf16_machine), effective_flow_precision(raft, bf16_machine)) == ("fp32", "bf16")
    fp16_gpu = RunSettings("cuda", "fp16", auto=True)  # older GPUs: fp16 is not measured for RAFT
    assert (effective_precision(raft, fp16_gpu), effective_flow_precision(raft, fp16_gpu)) == ("fp32", "fp32")
    here = RunSettings(precision="auto")
    assert effective_flow_precision(raft, here) in {"fp32", "bf16"} and effective_precision(raft, here) == "fp32"
    explicit = RunSettings("cpu", "bf16")  # asked for: applies to both parts
    assert (effective_precision(raft, explicit), effective_flow_precision(raft, explicit)) == ("bf16", "bf16")
    assert effective_flow_precision(i3d, bf16_machine) is None
    assert effective_flow_precision(get_extractor("i3d_flow"), bf16_machine) is None  # Horn-Schunck: always fp32


def test_loaded_model_stores_each_part_in_its_own_precision(monkeypatch):
    from hl.extract import extractors as ex

    monkeypatch.setattr(ex, "_MODELS", {})
    model = ex.load_model("i3d_flow_raft_small_frames", None, "cpu", "fp32", "bf16")
    assert model.flow_precision == "bf16" and model.Conv3d_1a_7x7.conv3d.weight.dtype == torch.float32
    assert model.flow_model.feature_encoder.conv.weight.dtype == torch.bfloat16
    with model.flow_autocast("cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    model.flow_precision = "fp32"
    with torch.autocast("cpu", dtype=torch.bfloat16), model.flow_autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu")
    grey = ex.load_model("i3d_flow_frames", None, "cpu", "bf16")  # Horn-Schunck: float32 whatever the run's
    with torch.autocast("cpu", dtype=torch.bfloat16), grey.flow_autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu")
