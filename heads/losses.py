"""Losses of the co-occurrence head (Li et al., BMVC 2022, Sec. 3.4):

    L = lambda_1 * L_ce + lambda_2 * L_HPCL + lambda_3 * L_rank        (Eq. 6; 1.0, 0.3, 0.1 in the paper)

All take batches of videos padded to the longest, with ``mask`` [B, T] marking the valid segments; padded
positions never contribute, whatever values they hold. Labels are binary (1 = highlight).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def ce_loss(
    logits: Tensor | Sequence[Tensor],
    labels: Tensor,
    mask: Tensor | Sequence[Tensor],
    label_smoothing: float = 0.0,
) -> Tensor:
    """Eq. 5: the sum over the classifiers (streams) of the binary cross-entropy with logits, each the mean
    over that stream's valid segments.

    ``logits``: one [B, T] tensor or a sequence of them (one per stream); ``mask``: one [B, T] bool mask for
    all streams, or one per stream (the audio classifier is undefined where a video has no audio).
    ``label_smoothing`` e pulls the targets to y (1 - e) + e / 2. A stream with no valid segment adds 0.
    """
    streams = [logits] if isinstance(logits, Tensor) else list(logits)
    masks = [mask] * len(streams) if isinstance(mask, Tensor) else list(mask)
    if len(masks) != len(streams):
        raise ValueError(f"got {len(streams)} logit tensors but {len(masks)} masks")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    target = labels.float() * (1.0 - label_smoothing) + 0.5 * label_smoothing
    total = streams[0].new_zeros(())
    for s, m in zip(streams, masks):
        if s.shape != labels.shape or m.shape != labels.shape:
            raise ValueError(f"logits {tuple(s.shape)}, mask {tuple(m.shape)}, labels {tuple(labels.shape)} differ")
        m = m.bool()
        if m.any():
            total = total + F.binary_cross_entropy_with_logits(s[m], target[m])
    return total


def hpcl_loss(embedding: Tensor, labels: Tensor, mask: Tensor, tau: float = 0.1) -> Tensor:
    r"""Segment-wise supervised contrastive loss (Eq. 3), per video.

    The embeddings are L2-normalised, z_i = f_i / ||f_i||, and s_ij = z_i . z_j / tau. For a query segment i
    of a video, P_i are the other valid segments with its label and N_i the valid segments with the other
    label:

        l_i = 1/|P_i| sum_{p in P_i} -log( exp(s_ip) / (exp(s_ip) + sum_{n in N_i} exp(s_in)) )

    A video's loss is the mean of l_i over its queries with at least one positive (|P_i| > 0); the batch loss
    is the mean over the videos that have such a query. A query with positives but no negatives gives 0; a
    batch where no query has a positive gives 0 (not NaN).

    The paper's Eq. 3 writes exp(q . k+) without tau in the positive term of the denominator. That is taken as
    a typo: without tau the fraction is not a softmax, can exceed 1 and the loss is unbounded below. Here every
    term carries tau, so l_i >= 0, and l_i is minimal (log(1 + |N_i| e^{-2/tau})) when each class collapses to
    one point opposite the other.

    embedding [B, T, E], labels [B, T] (binary), mask [B, T] bool.
    """
    if embedding.dim() != 3 or embedding.shape[:2] != labels.shape or mask.shape != labels.shape:
        raise ValueError(
            f"need embedding [B, T, E] with labels and mask [B, T]; got {tuple(embedding.shape)}, "
            f"{tuple(labels.shape)}, {tuple(mask.shape)}"
        )
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    mask = mask.bool()
    z = F.normalize(torch.where(mask[..., None], _as_float(embedding), 0.0), dim=-1)  # padding -> 0
    sim = z @ z.transpose(1, 2) / tau  # s_ij [B, T, T]
    y = labels > 0.5
    t = labels.shape[1]
    pair_valid = mask[:, :, None] & mask[:, None, :] & ~torch.eye(t, dtype=torch.bool, device=mask.device)
    same = y[:, :, None] == y[:, None, :]
    pos = pair_valid & same  # P_i as a [B, T, T] mask
    neg = pair_valid & ~same  # N_i
    # log sum_{n in N_i} exp(s_in), -inf where N_i is empty; then the per-pair log of the denominator
    neg_lse = torch.logsumexp(sim.masked_fill(~neg, float("-inf")), dim=-1, keepdim=True)  # [B, T, 1]
    log_denominator = torch.logaddexp(sim, neg_lse.expand_as(sim))  # log(exp(s_ip) + sum_n exp(s_in))
    pair_loss = (log_denominator - sim).masked_fill(~pos, 0.0)  # -log(fraction) on positive pairs
    n_pos = pos.sum(-1)  # [B, T]
    has_pos = n_pos > 0
    query_loss = pair_loss.sum(-1) / n_pos.clamp_min(1)  # l_i [B, T]
    n_queries = has_pos.sum(-1)  # [B]
    video_loss = (query_loss * has_pos).sum(-1) / n_queries.clamp_min(1)  # [B]
    has_query = n_queries > 0
    if not has_query.any():
        return embedding.sum() * 0.0
    return video_loss[has_query].mean()


def boundary_pairs(labels: Tensor, mask: Tensor, k: int = 3, cross_label_only: bool = True) -> Tensor:
    """The hard pairs of Sec. 3.4 as a [P, 3] long tensor of (video, a, b) segment indices.

    The valid segments of each video (those ``mask`` marks, in order) form its sequence of length n. A
    water-shed is an index c in 1..n-1 whose label differs from that of c-1. Each water-shed gives the pairs
    (c - j, c + j) for j = 1..k, both indices clamped into 0..n-1. With ``cross_label_only`` a pair is kept
    only when its two segments have different labels (clamping near the ends of a video, or a label run shorter
    than k, can otherwise pair two segments of the same class, and pushing those apart would work against
    HPCL). Pairs are counted once per water-shed and j, duplicates included.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    mask = mask.bool()
    y = labels > 0.5
    out = []
    for b in range(labels.shape[0]):
        idx = torch.nonzero(mask[b], as_tuple=False).squeeze(1)  # valid positions, in order
        n = idx.numel()
        if n < 2:
            continue
        yb = y[b, idx]
        c = torch.nonzero(yb[1:] != yb[:-1], as_tuple=False).squeeze(1) + 1  # water-sheds [W]
        if c.numel() == 0:
            continue
        j = torch.arange(1, k + 1, device=labels.device)
        a = (c[:, None] - j[None, :]).clamp(0, n - 1).flatten()  # [W * k]
        bb = (c[:, None] + j[None, :]).clamp(0, n - 1).flatten()
        if cross_label_only:
            keep = yb[a] != yb[bb]
            a, bb = a[keep], bb[keep]
        if a.numel():
            out.append(torch.stack([torch.full_like(a, b), idx[a], idx[bb]], dim=1))
    if not out:
        return torch.zeros((0, 3), dtype=torch.long, device=labels.device)
    return torch.cat(out)


def rank_loss(
    embedding: Tensor,
    labels: Tensor,
    mask: Tensor,
    k: int = 3,
    margin: float = 0.7,
    reduction: str = "mean",
    cross_label_only: bool = True,
) -> Tensor:
    """Hard-pairs rank loss (Eq. 4): sum over the hard pairs p = (a, b) of :func:`boundary_pairs` of
    max(0, margin - ||z_a - z_b||), with z the L2-normalised embeddings (so distances lie in [0, 2] and the
    margin has a fixed meaning). ``reduction="mean"`` divides by the number of pairs (the paper sums:
    ``"sum"``); no pair gives 0.

    embedding [B, T, E], labels [B, T], mask [B, T] bool.
    """
    if embedding.dim() != 3 or embedding.shape[:2] != labels.shape or mask.shape != labels.shape:
        raise ValueError(
            f"need embedding [B, T, E] with labels and mask [B, T]; got {tuple(embedding.shape)}, "
            f"{tuple(labels.shape)}, {tuple(mask.shape)}"
        )
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    pairs = boundary_pairs(labels, mask, k=k, cross_label_only=cross_label_only)
    if pairs.shape[0] == 0:
        return embedding.sum() * 0.0
    z = F.normalize(_as_float(embedding), dim=-1)
    za, zb = z[pairs[:, 0], pairs[:, 1]], z[pairs[:, 0], pairs[:, 2]]  # [P, E]
    dist = torch.linalg.vector_norm(za - zb, dim=-1)  # ||z_a - z_b|| (its gradient at 0 is 0, not NaN)
    hinge = (margin - dist).clamp_min(0.0)
    return hinge.sum() if reduction == "sum" else hinge.mean()


def _as_float(x: Tensor) -> Tensor:
    """x in at least float32 (float64 stays float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))
