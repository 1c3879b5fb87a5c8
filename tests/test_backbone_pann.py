"""PANNs Cnn14: checkpoint format, the plain-torch log-mel front end checked numerically, padding."""
import math

import numpy as np
import pytest
import torch
from checkpoint_files import save_as_numpy1
from hypothesis import given, settings
from hypothesis import strategies as st

from hl.extract.backbones import create, get_spec
from hl.extract.backbones.pann import (
    MIN_SAMPLES,
    STFT,
    Cnn14,
    checkpoint_filter,
    dft_kernels,
    hz_to_mel,
    mel_to_hz,
    preprocess,
    slaney_mel_filterbank,
)
from hl.extract.weights import check_checkpoint


def reference_slaney_mel(sr, n_fft, n_mels, fmin, fmax) -> np.ndarray:
    """Slaney's Auditory Toolbox mel filterbank, one weight at a time: [n_fft // 2 + 1, n_mels]."""

    def hz2mel(f):  # 3 mels per 200 Hz below 1 kHz, 27 mels per factor 6.4 above
        return 3 * f / 200 if f < 1000 else 15 + 27 * math.log(f / 1000) / math.log(6.4)

    def mel2hz(m):
        return 200 * m / 3 if m < 15 else 1000 * 6.4 ** ((m - 15) / 27)

    lo_mel, hi_mel = hz2mel(fmin), hz2mel(fmax)
    edges = [mel2hz(lo_mel + (hi_mel - lo_mel) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    weights = np.zeros((n_fft // 2 + 1, n_mels))
    for j in range(n_fft // 2 + 1):
        f = j * sr / n_fft
        for m in range(n_mels):
            left, centre, right = edges[m : m + 3]
            if left < f <= centre:
                w = (f - left) / (centre - left)
            elif centre < f < right:
                w = (right - f) / (right - centre)
            else:
                w = 0.0
            weights[j, m] = w * 2 / (right - left)  # unit area in Hz
    return weights


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """State dict of audioset_tagging_cnn Cnn14(32000, 1024, 320, 64, 50, 14000, 527)."""
    shapes = {
        "spectrogram_extractor.stft.conv_real.weight": (513, 1, 1024),
        "spectrogram_extractor.stft.conv_imag.weight": (513, 1, 1024),
        "logmel_extractor.melW": (513, 64),
    }

    def bn(prefix, c):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("bn0", 64)
    widths = (1, 64, 128, 256, 512, 1024, 2048)
    for i in range(1, 7):
        shapes[f"conv_block{i}.conv1.weight"] = (widths[i], widths[i - 1], 3, 3)
        shapes[f"conv_block{i}.conv2.weight"] = (widths[i], widths[i], 3, 3)
        bn(f"conv_block{i}.bn1", widths[i])
        bn(f"conv_block{i}.bn2", widths[i])
    shapes.update({"fc1.weight": (2048, 2048), "fc1.bias": (2048,)})
    shapes.update({"fc_audioset.weight": (527, 2048), "fc_audioset.bias": (527,)})
    return shapes


def test_parameter_names_and_shapes_match_the_release():
    state = Cnn14().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected_shapes()


def test_official_checkpoint_round_trip_and_melW_comes_from_the_file(tmp_path):
    torch.manual_seed(0)
    source = Cnn14().eval()
    with torch.no_grad():
        source.logmel_extractor.melW.mul_(torch.rand_like(source.logmel_extractor.melW) + 0.5)
        for m in source.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
    path = tmp_path / "Cnn14_mAP=0.431.pth"
    # the released file as audioset_tagging_cnn saves it: the weights, the iteration and the balanced sampler's
    # state (an int64 index array per AudioSet class, pickled by numpy 1.x), read with weights_only=True
    rng = np.random.default_rng(0)
    sampler = {"indexes_per_class": [rng.permutation(50).astype(np.int64) for _ in range(527)],
               "queue": list(range(527)), "pointers_of_classes": [0] * 527}
    save_as_numpy1({"iteration": 600000, "model": source.state_dict(), "sampler": sampler}, path)
    assert check_checkpoint("pann", path) == []
    loaded = create("pann", weights=path)
    assert not loaded.training
    torch.testing.assert_close(loaded.logmel_extractor.melW, source.logmel_extractor.melW, rtol=0, atol=0)
    assert not torch.equal(loaded.logmel_extractor.melW, Cnn14().logmel_extractor.melW)
    wave = preprocess(torch.rand(2, 16000) * 2 - 1)
    with torch.no_grad():
        expected, got = source(wave), loaded(wave)
    assert got.shape == (2, 2048)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert got.min() >= 0 and (got > 0).any()  # fc1 after ReLU


def test_checkpoint_filter():
    w = torch.ones(1)
    assert checkpoint_filter({"model": {"fc1.bias": w}, "iteration": 3}) == {"fc1.bias": w}
    assert checkpoint_filter({"module.fc1.bias": w}) == {"fc1.bias": w}
    with pytest.raises(ValueError, match="checkpoint"):
        checkpoint_filter("nope")


def test_tag_gives_audioset_probabilities():
    model = Cnn14().eval()
    with torch.no_grad():
        p = model.tag(torch.zeros(1, MIN_SAMPLES))
    assert p.shape == (1, 527) and ((p > 0) & (p < 1)).all()


# --- front end ---------------------------------------------------------------------------------------


def test_mel_filterbank_matches_the_direct_slaney_formula_for_cnn14():
    ours = slaney_mel_filterbank(32000, 1024, 64, 50.0, 14000.0).numpy()
    assert ours.shape == (513, 64)
    reference = reference_slaney_mel(32000, 1024, 64, 50.0, 14000.0)
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-15)
    # the module's default melW is the same filterbank in float32
    np.testing.assert_allclose(Cnn14().logmel_extractor.melW.numpy(), ours, rtol=1e-6, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(
    sr=st.sampled_from([8000, 16000, 22050, 32000, 44100]),
    n_fft=st.sampled_from([64, 128, 256]),
    n_mels=st.integers(1, 24),
    fmin=st.floats(0, 900),
    top=st.floats(0.2, 1.0),
)
def test_mel_filterbank_matches_reference_for_other_settings(sr, n_fft, n_mels, fmin, top):
    fmax = fmin + top * (sr / 2 - fmin)
    ours = slaney_mel_filterbank(sr, n_fft, n_mels, fmin, fmax).numpy()
    reference = reference_slaney_mel(sr, n_fft, n_mels, fmin, fmax)
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(hz=st.floats(0, 20000))
def test_mel_scale_round_trip(hz):
    f = torch.tensor([hz], dtype=torch.float64)
    torch.testing.assert_close(mel_to_hz(hz_to_mel(f)), f, rtol=1e-12, atol=1e-9)


def test_mel_scale_anchor_points():
    hz = torch.tensor([0.0, 200.0, 1000.0, 6400.0], dtype=torch.float64)
    torch.testing.assert_close(hz_to_mel(hz), torch.tensor([0.0, 3.0, 15.0, 42.0], dtype=torch.float64))


@pytest.mark.parametrize("length", [9920, 16000, 32001])
def test_stft_conv_matches_torch_stft(length):
    torch.manual_seed(length)
    wave = torch.rand(2, length, dtype=torch.float64) * 2 - 1
    reference = torch.stft(
        wave, n_fft=1024, hop_length=320, window=torch.hann_window(1024, dtype=torch.float64),
        center=True, pad_mode="reflect", return_complex=True,
    ).transpose(1, 2)  # [B, frames, 513]
    assert reference.shape[1] == length // 320 + 1
    # the DFT kernels, exact in float64, through the module's own padding and convolutions
    stft = STFT().double()
    real_kernel, imag_kernel = dft_kernels(1024)
    with torch.no_grad():
        stft.conv_real.weight.copy_(real_kernel)
        stft.conv_imag.weight.copy_(imag_kernel)
    real, imag = stft(wave)
    assert real.shape == (2, 1, length // 320 + 1, 513)
    torch.testing.assert_close(real[:, 0], reference.real, rtol=0, atol=1e-9)
    torch.testing.assert_close(imag[:, 0], reference.imag, rtol=0, atol=1e-9)
    # the float32 module as the model runs it (|X| is up to ~300 here)
    real32, imag32 = STFT()(wave.float())
    torch.testing.assert_close(real32[:, 0].double(), reference.real, rtol=0, atol=1e-4)
    torch.testing.assert_close(imag32[:, 0].double(), reference.imag, rtol=0, atol=1e-4)


@pytest.mark.parametrize("freq", [440.0, 3000.0, 9000.0])
def test_sine_peaks_in_the_mel_bin_of_its_frequency(freq):
    model = Cnn14().eval()
    t = torch.arange(32000) / 32000
    logmel = model.logmel(0.5 * torch.sin(2 * math.pi * freq * t)[None])  # [1, 1, 101, 64]
    assert logmel.shape == (1, 1, 101, 64)
    melW = model.logmel_extractor.melW
    fft_bin = round(freq * 1024 / 32000)
    assert logmel[0, 0, 50].argmax() == melW[fft_bin].argmax()
    # log power: 0.5 amplitude, Hann-windowed 1024-point frame -> |X| ~ 0.5 * 512 / 2 = 128 at the peak bin
    power = model.spectrogram_extractor(0.5 * torch.sin(2 * math.pi * freq * t)[None])
    assert power[0, 0, 50].argmax() == fft_bin
    assert power[0, 0, 50, fft_bin].sqrt().item() == pytest.approx(128, rel=0.1)


def test_silence_is_floored_at_minus_100_db():
    logmel = Cnn14().logmel(torch.zeros(1, MIN_SAMPLES))
    torch.testing.assert_close(logmel, torch.full_like(logmel, -100.0))


# --- input length --------------------------------------------------------------------------------------


def test_min_samples_is_the_shortest_input_with_32_frames():
    assert MIN_SAMPLES == 9920 == get_spec("pann").min_samples
    assert MIN_SAMPLES // 320 + 1 == 32 and (MIN_SAMPLES - 1) // 320 + 1 == 31


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), length=st.integers(1, 20000))
def test_preprocess_pads_short_waveforms_with_zeros(n, length):
    wave = np.random.default_rng(length).uniform(-1, 1, (n, length))
    out = preprocess(wave)
    assert out.dtype == torch.float32
    assert out.shape == (n, max(length, MIN_SAMPLES))
    torch.testing.assert_close(out[:, :length], torch.as_tensor(wave, dtype=torch.float32))
    assert (out[:, length:] == 0).all()


def test_too_short_waveform_is_padded_not_an_error():
    model = create("pann")
    x = preprocess(torch.rand(100) - 0.5)  # 1-D input is one waveform
    assert x.shape == (1, MIN_SAMPLES)
    with torch.no_grad():
        assert model(x).shape == (1, 2048)
    with pytest.raises(ValueError, match="9920"):
        model(torch.zeros(1, 5000))


def test_preprocess_rejects_bad_input():
    with pytest.raises(TypeError, match="float"):
        preprocess(np.zeros((1, 20000), np.int16))
    with pytest.raises(ValueError, match=r"\[N, S\]"):
        preprocess(np.zeros((1, 2, 20000), np.float32))


def test_spec():
    spec = get_spec("pann")
    assert spec.modality == "audio" and spec.sample_rate == 32000 and spec.feature_dim == 2048
    assert spec.preprocess is preprocess and spec.checkpoint_filter is checkpoint_filter
