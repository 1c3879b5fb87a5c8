"""Weight-free features: what extraction falls back to when no pretrained weights are present.

``stats`` (visual, 59-d per segment)::

    colour   mean and std of R, G, B                                   6
    hist     8-bin histogram of each channel                            24
    motion   mean |I_t - I_{t-1}| over the clip, overall + a 4x4 grid   17
    edges    mean gradient magnitude, overall + a 2x2 grid + temporal   6
    bright   mean luma, luma std, saturation mean, saturation std       4
    tempo    std over time of the frame means (flicker / cuts)          2

``stats_audio`` (audio, 66-d per segment): the 64 log-mel band energies (PANNs' front end: STFT 1024/320,
64 mel bands 50-14000 Hz) averaged over the segment, plus the overall level (dB) and its std over time.

``motion_saliency`` (a map per target frame): per-pixel motion energy of the window's last frames,
smoothed, in [0, 1] - a stand-in for TASED-Net when its weights are absent.

They carry no learned parameters, so they run anywhere at once; they are far weaker than the pretrained
backbones, and the extraction stage says so loudly when it falls back to them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import BackboneSpec, ExtractorDef, register
from .pann import MIN_SAMPLES, SAMPLE_RATE, LogmelFilterBank, Spectrogram
from .pann import preprocess as preprocess_audio

STATS_SIZE = (64, 64)
SALIENCY_SIZE = (224, 384)  # (height, width): TASED-Net's frame size


def preprocess(frames: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [N, T, H, W, 3] -> float [N, 3, T, 64, 64] in [0, 1]."""
    n, t, h, w, _ = frames.shape
    x = frames.reshape(n * t, h, w, 3).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=STATS_SIZE, mode="bilinear", antialias=True, align_corners=False)
    return x.reshape(n, t, 3, *STATS_SIZE).permute(0, 2, 1, 3, 4).contiguous()


def _grid_mean(x: torch.Tensor, cells: int) -> torch.Tensor:
    """[N, H, W] -> [N, cells*cells] mean over a cells x cells grid."""
    return F.adaptive_avg_pool2d(x[:, None], cells).flatten(1)


class ClipStats(nn.Module):
    """Colour, motion and texture statistics of a clip: [N, 3, T, H, W] in [0,1] -> [N, 59]."""

    bins = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        flat = x.flatten(2)  # [N, 3, T*H*W]
        colour = torch.cat([flat.mean(-1), flat.std(-1)], dim=1)  # [N, 6]
        idx = (flat.clamp(0, 1 - 1e-6) * self.bins).long()  # [N, 3, THW]
        hist = torch.zeros(n, 3, self.bins, dtype=x.dtype, device=x.device)
        hist.scatter_add_(2, idx, torch.ones_like(flat))
        hist = (hist / flat.shape[-1]).flatten(1)  # [N, 24]

        luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]  # [N, T, H, W]
        if luma.shape[1] > 1:
            diff = (luma[:, 1:] - luma[:, :-1]).abs().mean(1)  # [N, H, W]
        else:
            diff = torch.zeros_like(luma[:, 0])
        motion = torch.cat([diff.mean((-2, -1))[:, None], _grid_mean(diff, 4)], dim=1)  # [N, 17]

        gy = (luma[..., 1:, :] - luma[..., :-1, :]).abs()[..., :, :-1]
        gx = (luma[..., :, 1:] - luma[..., :, :-1]).abs()[..., :-1, :]
        grad = (gx + gy).mean(1)  # [N, H-1, W-1]
        temporal_grad = diff.std((-2, -1))[:, None]
        edges = torch.cat([grad.mean((-2, -1))[:, None], _grid_mean(grad, 2), temporal_grad], dim=1)  # [N, 6]

        sat = x.max(1).values - x.min(1).values  # [N, T, H, W]
        bright = torch.stack([luma.mean((1, 2, 3)), luma.std((1, 2, 3)),
                              sat.mean((1, 2, 3)), sat.std((1, 2, 3))], dim=1)  # [N, 4]
        frame_means = luma.mean((-2, -1))  # [N, T]
        tempo = torch.stack([frame_means.std(1, unbiased=False),
                             (frame_means[:, 1:] - frame_means[:, :-1]).abs().amax(1)
                             if frame_means.shape[1] > 1 else torch.zeros(n, device=x.device)], dim=1)
        return torch.cat([colour, hist, motion, edges, bright, tempo], dim=1)


class MotionSaliency(nn.Module):
    """Weight-free saliency: motion energy of the last frames of a window, blurred and scaled to [0, 1].

    Input [N, 3, T, H, W] in [0, 1]; output [N, H, W]."""

    def __init__(self, frames_used: int = 4, blur: int = 9):
        super().__init__()
        self.frames_used = frames_used
        self.blur = blur

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]  # [N, T, H, W]
        last = luma[:, -(self.frames_used + 1):]
        if last.shape[1] < 2:
            energy = torch.zeros_like(luma[:, -1])
        else:
            energy = (last[:, 1:] - last[:, :-1]).abs().mean(1)  # [N, H, W]
        energy = F.avg_pool2d(energy[:, None], self.blur, stride=1, padding=self.blur // 2,
                              count_include_pad=False)[:, 0]
        peak = energy.flatten(1).amax(1).clamp_min(1e-6)[:, None, None]
        return (energy / peak).clamp(0, 1)


class AudioStats(nn.Module):
    """Waveform [N, S] at 32 kHz -> [N, 66]: mean log-mel per band, mean level (dB), level std over time."""

    def __init__(self):
        super().__init__()
        self.spectrogram = Spectrogram()
        self.logmel = LogmelFilterBank()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        power = self.spectrogram(wave)[:, 0]  # [N, frames, 513]
        logmel = self.logmel(power)  # [N, frames, 64] dB
        level = 10.0 * torch.log10(power.mean(-1).clamp_min(1e-10))  # [N, frames]
        return torch.cat([logmel.mean(1), level.mean(1, keepdim=True), level.std(1, keepdim=True)], dim=1)


def preprocess_saliency(frames: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [N, T, H, W, 3] -> float [N, 3, T, 224, 384] in [0, 1] (TASED-Net's frame size)."""
    n, t, h, w, _ = frames.shape
    x = frames.reshape(n * t, h, w, 3).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=SALIENCY_SIZE, mode="bilinear", antialias=True, align_corners=False)
    return x.reshape(n, t, 3, *SALIENCY_SIZE).permute(0, 2, 1, 3, 4).contiguous()


register(BackboneSpec(
    name="stats", build=ClipStats, modality="video", feature_dim=59,
    feature_layer="colour/histogram/motion/edge statistics (no weights)", preprocess=preprocess,
    frame_size=lambda h, w: STATS_SIZE, clip_frames=16, input_size=STATS_SIZE, fps=8.0,
    notes="weight-free; a fallback when no pretrained weights are present",
    extractors=(ExtractorDef("stats", "stats", "segment", needs_weights=False,
                             description="colour/motion statistics (no weights), 59-d"),),
))
register(BackboneSpec(
    name="stats_audio", build=AudioStats, modality="audio", feature_dim=66,
    feature_layer="mean log-mel band energies + level (no weights)", preprocess=preprocess_audio,
    sample_rate=SAMPLE_RATE, min_samples=MIN_SAMPLES, notes="weight-free; a fallback for PANN",
    extractors=(ExtractorDef("stats_audio", "stats_audio", "audio", needs_weights=False,
                             description="log-mel band energies (no weights), 66-d"),),
))
register(BackboneSpec(
    name="motion_saliency", build=MotionSaliency, modality="video", feature_dim=1,
    feature_layer="motion-energy map of the window's last frame, max-normalised to [0,1] (no weights)",
    preprocess=preprocess_saliency, frame_size=lambda h, w: SALIENCY_SIZE, clip_frames=8,
    input_size=SALIENCY_SIZE, fps=0.0, feature_shape=SALIENCY_SIZE,
    notes="weight-free stand-in for TASED-Net saliency",
    extractors=(ExtractorDef("motion_saliency", "motion_saliency", "window", output="saliency", needs_weights=False,
                             description="motion-energy saliency per target frame (no weights), uint8 224x384"),),
))
