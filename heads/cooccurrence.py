"""Visual-audio co-occurrence encoder for highlight detection (Li et al., BMVC 2022, Sec. 3).

Per video of T segments, with visual features F^v [T, Dv] and audio features F^a [T, Da]:

1. Feature projection: F^v, F^a -> R^{T x d} with one linear layer each (Sec. 3.2).
2. Intra-modality encoding (Sec. 3.3): self-attention encoder layers per modality give F^; a decoder step
   lets a global query G_init (the mean of the segment features, a learnable vector, or nothing) attend over
   F^ and the result G is added to every segment: F^ = F^ + G.
3. Co-occurrence encoding (Eq. 1-2): the visual queries attend over the 2T-long [F^v; F^a]
   (keys and values), the audio queries likewise, giving F~v and F~a.
4. Three linear classifiers: visual on F^v, audio on F^a, co-occurrence on [F~v, F~a]; the final score is
   their weighted sum (late fusion), or one classifier on the concatenation of all features (early fusion).

The 2d segment embedding [F~v, F~a] is what the contrastive (HPCL) and hard-pairs losses shape.

Ablations (Tables 3, 5, 6 of the paper) are options of :class:`CooccurrenceConfig`:

- ``model="co-av"``: the full model above.
- ``model="cr-av"``: plain cross-attention instead of co-occurrence: visual queries attend over F^a only,
  audio queries over F^v only.
- ``model="av"``: visual and audio features are concatenated before the projection; one intra-modality
  stream and one classifier.
- ``model="v"`` / ``model="a"``: one modality, one intra-modality stream, one classifier.
- ``global_query`` in {"mean", "random", "none"}; ``fusion`` in {"late", "early"}.

Inputs are batches of videos padded to the longest: ``mask`` [B, T] marks valid segments, and
``audio_mask`` ([B] or [B, T]) marks where audio exists. A video without an audio track is given zeros and a
false audio mask: its audio positions are never attended to by the visual stream, and its audio classifier
is left out of its fused score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MODELS = ("co-av", "cr-av", "av", "v", "a")
GLOBAL_QUERIES = ("mean", "random", "none")
POSITIONALS = ("none", "index", "relative")
FUSIONS = ("late", "early")


@dataclass(frozen=True)
class CooccurrenceConfig:
    """Architecture options. ``fusion_weights`` are the late-fusion weights of the (visual, audio,
    co-occurrence) scores; single-stream models ignore them.

    The defaults are sized for domains of a handful of training videos (TVSum: 4 per domain): the paper
    uses d = 256; d = 64 with dropout 0.3 scored as well or better in leave-one-video-out cross-validation
    on the TVSum train videos and trains about 4x faster (benchmarks/tvsum_heads.py).
    """

    model: str = "co-av"
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 1  # self-attention encoder layers per modality
    ffn_dim: int = 128
    dropout: float = 0.3  # on the projected features and the residual branches
    input_dropout: float = 0.0  # on the raw input features
    global_query: str = "mean"
    positional: str = "none"  # sinusoidal position code added to the projected features: "index" of the
    # segment, "relative" position in its video (index / (T - 1) * 100), or "none"
    fusion: str = "late"
    fusion_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.global_query not in GLOBAL_QUERIES:
            raise ValueError(f"global_query must be one of {GLOBAL_QUERIES}, got {self.global_query!r}")
        if self.positional not in POSITIONALS:
            raise ValueError(f"positional must be one of {POSITIONALS}, got {self.positional!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.d_model <= 0 or self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a positive multiple of n_heads ({self.n_heads})")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.input_dropout < 1.0):
            raise ValueError(f"dropout and input_dropout must be in [0, 1), got {self.dropout}, {self.input_dropout}")
        if len(self.fusion_weights) != 3 or min(self.fusion_weights) < 0 or sum(self.fusion_weights) <= 0:
            raise ValueError(f"fusion_weights must be 3 non-negative numbers, not all 0: {self.fusion_weights}")
        object.__setattr__(self, "fusion_weights", tuple(float(w) for w in self.fusion_weights))

    @property
    def uses_visual(self) -> bool:
        return self.model != "a"

    @property
    def uses_audio(self) -> bool:
        return self.model != "v"

    @property
    def two_streams(self) -> bool:
        return self.model in ("co-av", "cr-av")


@dataclass
class HeadOutput:
    """``logits`` [B, T]: the final per-segment score (before a sigmoid); ``stream_logits`` name -> [B, T]:
    every classifier's own logits, the terms of the CE loss (Eq. 5); ``stream_masks`` name -> [B, T]: where
    each classifier's logits are defined; ``embedding`` [B, T, E]: the segment embedding for HPCL and the
    hard-pairs loss (E = 2d for co-av/cr-av, d for single-stream models)."""

    logits: Tensor
    stream_logits: dict[str, Tensor]
    stream_masks: dict[str, Tensor]
    embedding: Tensor


class MaskedAttention(nn.Module):
    """Multi-head scaled dot-product attention, softmax(Q K^T / sqrt(d_k)) S, over the keys that
    ``key_mask`` [B, S] marks valid. A query with no valid key gets a zero output (not NaN)."""

    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.w_q = nn.Linear(d, d)
        self.w_k = nn.Linear(d, d)
        self.w_s = nn.Linear(d, d)
        self.w_o = nn.Linear(d, d)

    def _split(self, x: Tensor) -> Tensor:  # [B, L, d] -> [B, h, L, d/h]
        b, n, d = x.shape
        return x.view(b, n, self.n_heads, d // self.n_heads).transpose(1, 2)

    def forward(self, query: Tensor, memory: Tensor, key_mask: Tensor) -> Tensor:
        q, k, s = self._split(self.w_q(query)), self._split(self.w_k(memory)), self._split(self.w_s(memory))
        has_key = key_mask.any(dim=1)  # [B]
        valid = (key_mask | ~has_key[:, None])[:, None, None, :]  # [B, 1, 1, S]; keyless rows: any key
        out = F.scaled_dot_product_attention(q, k, s, attn_mask=valid)  # softmax(Q K^T / sqrt(d_k)) S
        out = out * has_key[:, None, None, None]  # [B, h, Lq, d/h]; no valid key -> zero output
        return self.w_o(out.transpose(1, 2).flatten(2))  # [B, Lq, d]


class FeedForward(nn.Sequential):
    def __init__(self, d: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d))


class DecoderLayer(nn.Module):
    """Transformer decoder step without self-attention: ``query`` attends over ``memory``, then a
    feed-forward. Used for the global query (query G_init, memory F^) and for co-occurrence (Eq. 1-2)."""

    def __init__(self, d: int, n_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.attn = MaskedAttention(d, n_heads)
        self.norm1 = nn.LayerNorm(d)
        self.ffn = FeedForward(d, ffn_dim, dropout)
        self.norm2 = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, query: Tensor, memory: Tensor, memory_mask: Tensor) -> Tensor:
        x = self.norm1(query + self.drop(self.attn(query, memory, memory_mask)))
        return self.norm2(x + self.drop(self.ffn(x)))


class EncoderLayer(DecoderLayer):
    """Transformer encoder layer (post-norm): self-attention over the valid segments, then a feed-forward
    (the decoder step with the sequence as its own memory)."""

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, x, mask)


class IntraModalityEncoder(nn.Module):
    """One modality: linear projection to d, self-attention encoder layers, then the global-context
    decoder (G_init attends over F^ to give G) and F^ = F^ + G."""

    def __init__(self, in_dim: int, cfg: CooccurrenceConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.input_drop = nn.Dropout(cfg.input_dropout)
        self.project = nn.Linear(in_dim, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(d, cfg.n_heads, cfg.ffn_dim, cfg.dropout) for _ in range(cfg.n_layers)
        )
        self.global_query = cfg.global_query
        self.positional = cfg.positional
        if cfg.global_query != "none":
            self.global_decoder = DecoderLayer(d, cfg.n_heads, cfg.ffn_dim, cfg.dropout)
        if cfg.global_query == "random":
            self.g_init = nn.Parameter(torch.randn(d) * 0.02)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        f = self.project(self.input_drop(x))  # [B, T, d]
        if self.positional != "none":
            f = f + sinusoid(segment_positions(mask, self.positional), f.shape[-1])
        f = self.drop(f)
        for layer in self.layers:
            f = layer(f, mask)  # F^ [B, T, d]
        if self.global_query == "none":
            return f
        if self.global_query == "mean":
            w = mask.to(f.dtype)[..., None]  # [B, T, 1]
            g_init = (f * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1.0)  # [B, 1, d]
        else:
            g_init = self.g_init.expand(f.shape[0], 1, -1)  # [B, 1, d]
        g = self.global_decoder(g_init, f, mask)  # G [B, 1, d]
        return f + g  # F^ = F^ + G


class CooccurrenceHead(nn.Module):
    """The co-occurrence highlight head. ``visual_dim`` / ``audio_dim``: input feature sizes (the one a model
    does not use may be 0)."""

    def __init__(self, visual_dim: int, audio_dim: int, config: CooccurrenceConfig | None = None) -> None:
        super().__init__()
        cfg = config or CooccurrenceConfig()
        if cfg.uses_visual and visual_dim <= 0:
            raise ValueError(f"model {cfg.model!r} needs visual features, got visual_dim={visual_dim}")
        if cfg.uses_audio and audio_dim <= 0:
            raise ValueError(f"model {cfg.model!r} needs audio features, got audio_dim={audio_dim}")
        self.config = cfg
        self.visual_dim, self.audio_dim = int(visual_dim), int(audio_dim)
        d = cfg.d_model
        if cfg.two_streams:
            self.visual = IntraModalityEncoder(visual_dim, cfg)
            self.audio = IntraModalityEncoder(audio_dim, cfg)
            self.visual_cross = DecoderLayer(d, cfg.n_heads, cfg.ffn_dim, cfg.dropout)
            self.audio_cross = DecoderLayer(d, cfg.n_heads, cfg.ffn_dim, cfg.dropout)
            self.visual_classifier = nn.Linear(d, 1)
            self.audio_classifier = nn.Linear(d, 1)
            cooc_in = 4 * d if cfg.fusion == "early" else 2 * d
            self.cooc_classifier = nn.Linear(cooc_in, 1)
        else:
            in_dim = {"v": visual_dim, "a": audio_dim, "av": visual_dim + audio_dim}[cfg.model]
            self.single = IntraModalityEncoder(in_dim, cfg)
            self.classifier = nn.Linear(d, 1)

    def forward(
        self,
        visual: Tensor | None,
        mask: Tensor,
        audio: Tensor | None = None,
        audio_mask: Tensor | None = None,
    ) -> HeadOutput:
        """visual [B, T, Dv] (None for model "a"), mask [B, T] bool, audio [B, T, Da] or None,
        audio_mask [B] or [B, T] bool or None (None: audio exists wherever ``mask`` is true)."""
        cfg = self.config
        mask, audio, audio_mask = self._check_inputs(visual, mask, audio, audio_mask)
        if cfg.two_streams:
            return self._two_streams(visual, audio, mask, audio_mask)
        if cfg.model == "v":
            x, valid = visual, mask
        elif cfg.model == "a":
            x, valid = audio, audio_mask
        else:  # "av": concatenate the features, one stream
            x, valid = torch.cat([visual, audio], dim=-1), mask
        f = self.single(x, _attendable(valid, mask))  # [B, T, d]
        logits = self.classifier(f).squeeze(-1)  # [B, T]
        return HeadOutput(logits, {"single": logits}, {"single": valid}, f)

    def _two_streams(self, visual: Tensor, audio: Tensor, mask: Tensor, audio_mask: Tensor) -> HeadOutput:
        cfg = self.config
        f_v = self.visual(visual, mask)  # F^v [B, T, d]
        f_a = self.audio(audio, _attendable(audio_mask, mask))  # F^a [B, T, d]
        if cfg.model == "co-av":
            f_va = torch.cat([f_v, f_a], dim=1)  # F^va [B, 2T, d]
            va_mask = torch.cat([mask, audio_mask], dim=1)  # [B, 2T]
            cooc_v = self.visual_cross(f_v, f_va, va_mask)  # F~v [B, T, d]
            cooc_a = self.audio_cross(f_a, f_va, va_mask)  # F~a [B, T, d]
        else:  # "cr-av": each modality attends over the other one only
            cooc_v = self.visual_cross(f_v, f_a, audio_mask)
            cooc_a = self.audio_cross(f_a, f_v, mask)
        embedding = torch.cat([cooc_v, cooc_a], dim=-1)  # [B, T, 2d]

        s_v = self.visual_classifier(f_v).squeeze(-1)  # [B, T]
        s_a = self.audio_classifier(f_a).squeeze(-1)
        if cfg.fusion == "early":
            s_c = self.cooc_classifier(torch.cat([f_v, f_a, embedding], dim=-1)).squeeze(-1)
            logits = s_c
        else:
            s_c = self.cooc_classifier(embedding).squeeze(-1)
            w_v, w_a, w_c = cfg.fusion_weights
            has_audio = audio_mask.to(s_a.dtype)  # the audio score counts only where audio exists
            weighted = w_v * s_v + w_a * has_audio * s_a + w_c * s_c
            logits = weighted / (w_v + w_a * has_audio + w_c).clamp_min(1e-12)
        streams = {"visual": s_v, "audio": s_a, "cooccurrence": s_c}
        masks = {"visual": mask, "audio": audio_mask, "cooccurrence": mask}
        return HeadOutput(logits, streams, masks, embedding)

    def _check_inputs(
        self, visual: Tensor | None, mask: Tensor, audio: Tensor | None, audio_mask: Tensor | None
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        cfg = self.config
        if mask.dim() != 2:
            raise ValueError(f"mask must be [B, T], got shape {tuple(mask.shape)}")
        mask = mask.bool()
        b, t = mask.shape
        if cfg.uses_visual and (visual is None or visual.shape != (b, t, self.visual_dim)):
            got = None if visual is None else tuple(visual.shape)
            raise ValueError(f"visual must be [B, T, Dv] = {(b, t, self.visual_dim)}, got {got}")
        if not cfg.uses_audio:
            return mask, None, mask
        if audio is None:  # no audio at all: zeros and a false audio mask
            audio = mask.new_zeros((b, t, self.audio_dim), dtype=torch.float32)
            audio_mask = torch.zeros_like(mask)
        if audio.shape != (b, t, self.audio_dim):
            raise ValueError(f"audio must be [B, T, Da] = {(b, t, self.audio_dim)}, got {tuple(audio.shape)}")
        if audio_mask is None:
            audio_mask = mask
        audio_mask = audio_mask.bool()
        if audio_mask.dim() == 1:
            audio_mask = audio_mask[:, None].expand(b, t)
        if audio_mask.shape != (b, t):
            raise ValueError(f"audio_mask must be [B] or [B, T] = {(b, t)}, got {tuple(audio_mask.shape)}")
        audio_mask = audio_mask & mask
        return mask, audio * audio_mask[..., None], audio_mask  # no audio -> zeros, whatever was given


def segment_positions(mask: Tensor, kind: str) -> Tensor:
    """[B, T] position of each segment: its index, or ("relative") index / (n - 1) * 100 with n the video's
    number of valid segments (0 for a one-segment video)."""
    index = torch.arange(mask.shape[1], device=mask.device, dtype=torch.float32).expand(mask.shape)
    if kind == "index":
        return index
    n = mask.sum(dim=1, keepdim=True).float()
    return index / (n - 1).clamp_min(1.0) * 100.0


def sinusoid(positions: Tensor, d: int) -> Tensor:
    """The transformer's sinusoidal code of ``positions`` [B, T] -> [B, T, d]."""
    freqs = torch.exp(torch.arange(0, d, 2, device=positions.device) * (-math.log(10000.0) / d))  # [d/2]
    angles = positions[..., None] * freqs  # [B, T, d/2]
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)[..., :d]


def _attendable(valid: Tensor, mask: Tensor) -> Tensor:
    """The keys a stream may attend over: its valid positions, or, for a video where the stream has none
    (no audio track), the video's segments (whose features are then zeros), so that every row stays finite."""
    return torch.where(valid.any(dim=1, keepdim=True), valid, mask)
