"""PANNs ``Cnn14`` (Kong et al., 2020) with its log-mel front end in plain torch.

Front end (as the released model computes it, with the same parameter names):

    STFT      a Conv1d whose kernels are the Hann-windowed DFT basis (n_fft 1024, hop 320),
              input reflect-padded by n_fft/2 on both sides (center=True)
    power     |X|^2 = real^2 + imag^2                                   [B, 1, frames, 513]
    mel       power @ melW, melW = Slaney mel filterbank (64 bins, 50-14000 Hz, area-normalised
              triangles, librosa's default)                           [B, 1, frames, 64]
    log       10 * log10(max(mel, 1e-10))   (ref 1.0, no top_db clipping)

Body: BatchNorm over the mel bins, six VGG-like blocks (two 3x3 conv + BN + ReLU, 2x2 average pooling
except the last), mean over frequency, max + mean over time, fc1 + ReLU -> the 2048-d ``embedding``.

Registered backbone:

    "pann"  waveform [B, S] at 32 kHz mono, S >= 9920 -> embedding [B, 2048]

9920 samples give 32 STFT frames, the fewest that survive the five poolings; ``preprocess`` zero-pads
shorter input. Checkpoint: ``Cnn14_mAP=0.431.pth`` is ``{'model': state_dict, ...}``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._registry import BackboneSpec, ExtractorDef, WeightsEntry, register

SAMPLE_RATE = 32000
N_FFT = 1024
HOP = 320
N_MELS = 64
FMIN, FMAX = 50.0, 14000.0
AMIN = 1e-10
MIN_FRAMES = 32  # 2**5: five 2x2 poolings must leave at least one frame
MIN_SAMPLES = (MIN_FRAMES - 1) * HOP  # 9920: with center=True, frames = S // hop + 1
NUM_CLASSES = 527  # AudioSet


# --- Slaney mel scale (librosa's default, htk=False) ---------------------------------------------------
# Linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4).
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    linear = hz / _F_SP
    log = _MIN_LOG_MEL + torch.log(torch.clamp(hz, min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(hz >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    linear = mel * _F_SP
    log = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (mel - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, log, linear)


def slaney_mel_filterbank(
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    fmin: float = FMIN,
    fmax: float = FMAX,
) -> torch.Tensor:
    """Mel filterbank [n_fft // 2 + 1, n_mels], float64, as ``librosa.filters.mel(...).T`` computes it.

    Filter m is a triangle over FFT bin frequencies rising from edge m to a peak at edge m+1 and falling
    to edge m+2, the n_mels + 2 edges equally spaced in mel between fmin and fmax; each triangle is
    scaled by 2 / (edge[m+2] - edge[m]) so that it has unit area in Hz.
    """
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # FFT bin centres
    mels = torch.linspace(*hz_to_mel(torch.tensor([fmin, fmax], dtype=torch.float64)).tolist(), n_mels + 2,
                          dtype=torch.float64)
    edges = mel_to_hz(mels)  # [n_mels + 2]
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    triangles = torch.clamp(torch.minimum(rising, falling), min=0.0)  # [n_mels, n_freqs]
    return (triangles * (2.0 / (upper - lower))).T.contiguous()


def dft_kernels(n_fft: int = N_FFT) -> tuple[torch.Tensor, torch.Tensor]:
    """Hann-windowed real DFT basis as Conv1d weights [n_fft // 2 + 1, 1, n_fft] (real, imaginary).

    Correlating a frame x[n] with them gives Re and Im of sum_n w[n] x[n] exp(-2 pi i k n / n_fft).
    """
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    phase = 2 * math.pi * ((k * n) % n_fft) / n_fft  # reduced mod n_fft for accuracy
    return (torch.cos(phase) * window)[:, None, :], (-torch.sin(phase) * window)[:, None, :]


class STFT(nn.Module):
    """[B, S] -> (real, imag), each [B, 1, frames, n_fft // 2 + 1]; frames = S // hop + 1."""

    def __init__(self, n_fft: int = N_FFT, hop: int = HOP):
        super().__init__()
        self.n_fft = n_fft
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, kernel_size=n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, kernel_size=n_fft, stride=hop, bias=False)
        real, imag = dft_kernels(n_fft)
        with torch.no_grad():
            self.conv_real.weight.copy_(real)
            self.conv_imag.weight.copy_(imag)
        self.requires_grad_(False)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.pad(wave[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        real = self.conv_real(x)[:, None].transpose(2, 3)
        imag = self.conv_imag(x)[:, None].transpose(2, 3)
        return real, imag


class Spectrogram(nn.Module):
    """[B, S] -> power spectrogram [B, 1, frames, n_fft // 2 + 1]."""

    def __init__(self, n_fft: int = N_FFT, hop: int = HOP):
        super().__init__()
        self.stft = STFT(n_fft, hop)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(wave)
        return real**2 + imag**2


class LogmelFilterBank(nn.Module):
    """Power spectrogram [..., n_fft // 2 + 1] -> 10 log10(max(power @ melW, 1e-10)) [..., n_mels].

    ``melW`` is stored in the checkpoint (frozen); the Slaney filterbank computed here is its default.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                 fmin: float = FMIN, fmax: float = FMAX):
        super().__init__()
        melW = slaney_mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).float()
        self.melW = nn.Parameter(melW, requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(power, self.melW)
        return 10.0 * torch.log10(torch.clamp(mel, min=AMIN))  # ref = 1.0: no offset


class ConvBlock(nn.Module):
    """Two (3x3 conv, BN, ReLU) layers, then average pooling."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: int = 2) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool)


class Cnn14(nn.Module):
    """PANNs Cnn14 for 32 kHz audio; names and shapes as in audioset_tagging_cnn ``pytorch/models.py``.

    :meth:`forward` returns the 2048-d embedding; :meth:`tag` the 527 AudioSet probabilities.
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.spectrogram_extractor = Spectrogram()
        self.logmel_extractor = LogmelFilterBank()
        self.bn0 = nn.BatchNorm2d(N_MELS)
        widths = (1, 64, 128, 256, 512, 1024, 2048)
        for i in range(1, 7):
            setattr(self, f"conv_block{i}", ConvBlock(widths[i - 1], widths[i]))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, num_classes)

    def logmel(self, wave: torch.Tensor) -> torch.Tensor:
        """[B, S] -> log-mel spectrogram [B, 1, frames, 64]."""
        return self.logmel_extractor(self.spectrogram_extractor(wave))

    def embedding(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim != 2:
            raise ValueError(f"Cnn14 expects a waveform batch [B, S], got shape {tuple(wave.shape)}")
        if wave.shape[1] < MIN_SAMPLES:
            raise ValueError(
                f"Cnn14 needs >= {MIN_SAMPLES} samples, got {wave.shape[1]}; pad with preprocess()"
            )
        x = self.logmel(wave)  # [B, 1, frames, 64]
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # normalise each mel bin
        for i in range(1, 6):
            x = getattr(self, f"conv_block{i}")(x, pool=2)
            x = F.dropout(x, p=0.2, training=self.training)
        x = self.conv_block6(x, pool=1)  # [B, 2048, frames/32, 2]
        x = F.dropout(x, p=0.2, training=self.training)
        x = x.mean(dim=3)  # over frequency: [B, 2048, frames/32]
        x = x.amax(dim=2) + x.mean(dim=2)  # over time
        x = F.dropout(x, p=0.5, training=self.training)
        return F.relu(self.fc1(x))  # [B, 2048]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.embedding(wave)

    def tag(self, wave: torch.Tensor) -> torch.Tensor:
        """Clip-wise AudioSet probabilities [B, 527]."""
        return torch.sigmoid(self.fc_audioset(self.embedding(wave)))


def _numpy_array_globals() -> tuple[Any, ...]:
    """What unpickling an int64 numpy array takes: the official checkpoint also holds the training sampler's
    state (``'sampler'``: audioset_tagging_cnn's BalancedSampler.state_dict(), lists of int64 arrays), pickled
    by numpy 1.x, whose name for the array constructor is numpy.core.multiarray._reconstruct (numpy 2:
    numpy._core.multiarray._reconstruct)."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 1.26
        from numpy.core.multiarray import _reconstruct
    return ((_reconstruct, "numpy.core.multiarray._reconstruct"), (_reconstruct, "numpy._core.multiarray._reconstruct"),
            np.ndarray, np.dtype, type(np.dtype(np.int64)))


def checkpoint_filter(obj: Any) -> dict[str, torch.Tensor]:
    """``{'model': state_dict, ...}`` (or a bare state dict) -> the state dict."""
    state = obj["model"] if isinstance(obj, dict) and "model" in obj else obj
    if not isinstance(state, dict):
        raise ValueError(f"expected a PANNs checkpoint dict, got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def preprocess(wave: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Float waveform [N, S] (or [S]) in [-1, 1] at 32 kHz -> float32 [N, max(S, 9920)], zero-padded.

    Cnn14 needs at least 9920 samples (32 STFT frames); shorter input is padded with silence, not refused.
    """
    wave = torch.as_tensor(wave)
    if not wave.is_floating_point():
        raise TypeError(f"expected a float waveform in [-1, 1], got {wave.dtype}")
    if wave.ndim == 1:
        wave = wave[None]
    if wave.ndim != 2:
        raise ValueError(f"expected a waveform [N, S], got shape {tuple(wave.shape)}")
    wave = wave.float()
    short = MIN_SAMPLES - wave.shape[1]
    return F.pad(wave, (0, short)) if short > 0 else wave


CNN14 = WeightsEntry(
    "pann_cnn14", "pann", "Cnn14_mAP=0.431.pth",
    # qiuqiangkong/audioset_tagging_cnn README (d2f4b8c): "First, downloaded one pretrained model from
    # https://zenodo.org/record/3987831, for example, the model named "Cnn14_mAP=0.431.pth"", then
    # "wget -O $CHECKPOINT_PATH https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth?download=1".
    # (Record 3576403, the earlier upload, was replaced by 3987831.)
    "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth?download=1",
    # Zenodo publishes an md5 per file (541141fa..., as recorded from the record by e.g. Labbeti/dcase2021task6,
    # aac/models/pann/urls.py); the sha256 and size are those of the same file as its users record them.
    sha256="0dc499e40e9761ef5ea061ffc77697697f277f6a960894903df3ada000e34b31",
    md5="541141fa2ee191a88f24a3219fff024e",
    size=327_428_481,
    description="PANNs Cnn14 trained on AudioSet, 32 kHz, mAP 0.431 (qiuqiangkong/audioset_tagging_cnn)",
    license="code MIT (qiuqiangkong/audioset_tagging_cnn); see Zenodo record 3987831 for the weights",
)

register(
    BackboneSpec(
        name="pann",
        build=Cnn14,
        modality="audio",
        feature_dim=2048,
        feature_layer="embedding (fc1 after ReLU)",
        preprocess=preprocess,
        sample_rate=SAMPLE_RATE,
        min_samples=MIN_SAMPLES,
        checkpoint_filter=checkpoint_filter,
        checkpoint_globals=_numpy_array_globals(),
        weights=(CNN14,),
        extractors=(ExtractorDef("pann", "pann", "audio", description="PANNs Cnn14 embedding, 2048-d"),),
        notes="PANNs Cnn14 (Cnn14_mAP=0.431.pth), 32 kHz mono; log-mel front end in plain torch.",
    )
)
