import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hl.heads.losses import boundary_pairs, ce_loss, hpcl_loss, rank_loss

SETTINGS = settings(max_examples=30, deadline=None)


@st.composite
def padded_batch(draw, max_b=3, max_t=9, dim=4):
    """(embedding [B, T, E], labels [B, T], mask [B, T]) with each video's valid part a prefix."""
    b = draw(st.integers(1, max_b))
    t = draw(st.integers(1, max_t))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    lengths = [draw(st.integers(1, t)) for _ in range(b)]
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    labels = torch.randint(0, 2, (b, t), generator=g).float()
    emb = torch.randn(b, t, dim, generator=g, dtype=torch.float64)
    return emb, labels, mask


def hpcl_reference(emb, labels, mask, tau):
    """Eq. 3 written as loops over videos, queries and positives."""
    videos = []
    for b in range(emb.shape[0]):
        idx = [i for i in range(emb.shape[1]) if mask[b, i]]
        z = F.normalize(emb[b], dim=-1)
        queries = []
        for i in idx:
            pos = [j for j in idx if j != i and labels[b, j] == labels[b, i]]
            neg = [j for j in idx if labels[b, j] != labels[b, i]]
            if not pos:
                continue
            terms = []
            for p in pos:
                num = math.exp(float(z[i] @ z[p]) / tau)
                den = num + sum(math.exp(float(z[i] @ z[n]) / tau) for n in neg)
                terms.append(-math.log(num / den))
            queries.append(sum(terms) / len(terms))
        if queries:
            videos.append(sum(queries) / len(queries))
    return sum(videos) / len(videos) if videos else 0.0


def pairs_reference(labels, mask, k, cross_label_only=True):
    out = []
    for b in range(labels.shape[0]):
        idx = [i for i in range(labels.shape[1]) if mask[b, i]]
        y = [int(labels[b, i]) for i in idx]
        n = len(idx)
        for c in range(1, n):
            if y[c] == y[c - 1]:
                continue
            for j in range(1, k + 1):
                a, bb = min(max(c - j, 0), n - 1), min(max(c + j, 0), n - 1)
                if cross_label_only and y[a] == y[bb]:
                    continue
                out.append((b, idx[a], idx[bb]))
    return out


# --- CE ---------------------------------------------------------------------------------------------------


def test_ce_matches_bce_on_valid_segments_summed_over_streams():
    labels = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    s1 = torch.tensor([[2.0, -1.0, 0.5, 9.0]])
    s2 = torch.tensor([[0.0, 0.3, -0.2, -9.0]])
    expect = sum(
        F.binary_cross_entropy_with_logits(s[0, :3], labels[0, :3]).item() for s in (s1, s2)
    )
    assert ce_loss([s1, s2], labels, mask).item() == pytest.approx(expect, rel=1e-6)
    # a per-stream mask: the second stream only counts its first segment
    m2 = torch.tensor([[True, False, False, False]])
    expect2 = F.binary_cross_entropy_with_logits(s1[0, :3], labels[0, :3]).item() + F.softplus(
        torch.tensor(-0.0)
    ).item()
    assert ce_loss([s1, s2], labels, [mask, m2]).item() == pytest.approx(expect2, rel=1e-6)
    # a stream with no valid segment adds nothing
    assert ce_loss([s1, s2], labels, [mask, torch.zeros_like(mask)]).item() == pytest.approx(
        ce_loss(s1, labels, mask).item()
    )


def test_ce_label_smoothing_moves_targets_to_the_middle():
    logits = torch.tensor([[0.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    assert ce_loss(logits, labels, mask, label_smoothing=0.2).item() == pytest.approx(math.log(2), rel=1e-6)
    big = torch.tensor([[20.0, -20.0]])
    assert ce_loss(big, labels, mask).item() < 1e-6
    # the smoothed target 0.9 is best reached by a finite logit: very confident logits now cost
    assert ce_loss(big, labels, mask, label_smoothing=0.2).item() > 1.0


@SETTINGS
@given(padded_batch(), st.integers(0, 2**31 - 1))
def test_ce_ignores_padded_positions(batch, seed):
    emb, labels, mask = batch
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(labels.shape, generator=g)
    changed_logits = torch.where(mask, logits, torch.full_like(logits, float("nan")))
    changed_labels = torch.where(mask, labels, 1.0 - labels)
    a = ce_loss([logits, 2 * logits], labels, mask)
    b = ce_loss([changed_logits, 2 * changed_logits], changed_labels, mask)
    assert torch.isfinite(b)
    assert a.item() == pytest.approx(b.item(), rel=1e-6, abs=1e-7)


# --- HPCL -------------------------------------------------------------------------------------------------


@SETTINGS
@given(padded_batch(), st.sampled_from([0.07, 0.1, 0.5, 1.0]))
def test_hpcl_matches_the_equation(batch, tau):
    emb, labels, mask = batch
    assert hpcl_loss(emb, labels, mask, tau).item() == pytest.approx(
        hpcl_reference(emb, labels, mask, tau), rel=1e-6, abs=1e-9
    )


@SETTINGS
@given(padded_batch(), st.floats(1e-3, 1e3))
def test_hpcl_is_invariant_to_embedding_scale(batch, scale):
    emb, labels, mask = batch
    a = hpcl_loss(emb, labels, mask, 0.1)
    b = hpcl_loss(emb * scale, labels, mask, 0.1)
    assert a.item() == pytest.approx(b.item(), rel=1e-6, abs=1e-9)


@SETTINGS
@given(padded_batch(), st.sampled_from([0.1, 0.5]))
def test_hpcl_is_minimal_when_the_classes_are_separated(batch, tau):
    emb, labels, mask = batch
    u = torch.randn(emb.shape[-1], dtype=emb.dtype)
    separated = torch.where(labels[..., None] > 0.5, u, -u).expand_as(emb)
    best = hpcl_loss(separated, labels, mask, tau).item()
    assert hpcl_loss(emb, labels, mask, tau).item() >= best - 1e-9
    # and the minimum is log(1 + |N_i| exp(-2 / tau)), averaged as in the equation
    mins = torch.zeros_like(labels, dtype=torch.float64)
    for b in range(labels.shape[0]):
        for i in range(labels.shape[1]):
            n_neg = int(((labels[b] != labels[b, i]) & mask[b]).sum())
            mins[b, i] = math.log1p(n_neg * math.exp(-2 / tau))
    n_pos = torch.stack(
        [((labels[b][None] == labels[b][:, None]) & mask[b][None] & mask[b][:, None]).sum(1) - 1
         for b in range(labels.shape[0])]
    )
    has = (n_pos > 0) & mask
    per_video = [(mins[b][has[b]]).mean().item() for b in range(labels.shape[0]) if has[b].any()]
    expect = sum(per_video) / len(per_video) if per_video else 0.0
    assert best == pytest.approx(expect, rel=1e-6, abs=1e-9)


@SETTINGS
@given(st.integers(1, 12), st.sampled_from([0.0, 1.0]))
def test_hpcl_single_class_is_zero_with_finite_gradient(t, label):
    emb = torch.randn(2, t, 5, requires_grad=True)
    labels = torch.full((2, t), label)
    mask = torch.ones(2, t, dtype=torch.bool)
    loss = hpcl_loss(emb, labels, mask)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(emb.grad).all()


def test_hpcl_ignores_padding_values_and_keeps_gradients_finite():
    emb = torch.randn(2, 6, 3, dtype=torch.float64)
    labels = torch.tensor([[0, 1, 0, 1, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    base = hpcl_loss(emb, labels, mask)
    junk = emb.clone()
    junk[1, 4:] = float("nan")
    junk.requires_grad_(True)
    other_labels = labels.clone()
    other_labels[1, 4:] = 1.0
    loss = hpcl_loss(junk, other_labels, mask)
    assert loss.item() == pytest.approx(base.item(), rel=1e-9)
    loss.backward()
    assert torch.isfinite(junk.grad[mask]).all()
    assert (junk.grad[~mask] == 0).all()


def test_hpcl_one_segment_or_empty_mask_is_zero():
    assert hpcl_loss(torch.randn(1, 1, 4), torch.ones(1, 1), torch.ones(1, 1, dtype=torch.bool)).item() == 0.0
    assert hpcl_loss(torch.randn(2, 3, 4), torch.ones(2, 3), torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0


def test_hpcl_rejects_bad_input():
    with pytest.raises(ValueError, match="tau"):
        hpcl_loss(torch.randn(1, 3, 2), torch.ones(1, 3), torch.ones(1, 3, dtype=torch.bool), tau=0.0)
    with pytest.raises(ValueError, match="embedding"):
        hpcl_loss(torch.randn(3, 2), torch.ones(1, 3), torch.ones(1, 3, dtype=torch.bool))


# --- hard pairs and rank loss -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "k", "cross_only", "expect"),
    [
        # one water-shed at c=3: (2,4), (1,5), (0,6 -> 5)
        ([0, 0, 0, 1, 1, 1], 3, True, [(2, 4), (1, 5), (0, 5)]),
        # water-shed at c=1: c-j clamps to 0 for every j
        ([0, 1, 1, 1, 1, 1, 1], 3, True, [(0, 2), (0, 3), (0, 4)]),
        # water-shed at the last segment: c+j clamps to it
        ([0, 0, 0, 0, 1], 2, True, [(3, 4), (2, 4)]),
        # a one-segment run: same-label pairs are dropped ...
        ([0, 1, 0, 0], 3, True, [(1, 3)]),
        # ... and kept without cross_label_only: c=1: (0,2), (0,3), (0,3); c=2: (1,3), (0,3), (0,3)
        ([0, 1, 0, 0], 3, False, [(0, 2), (0, 3), (0, 3), (1, 3), (0, 3), (0, 3)]),
        ([1, 1, 1, 1], 3, True, []),
    ],
)
def test_boundary_pairs_on_hand_made_sequences(labels, k, cross_only, expect):
    y = torch.tensor([labels], dtype=torch.float32)
    mask = torch.ones_like(y, dtype=torch.bool)
    pairs = boundary_pairs(y, mask, k=k, cross_label_only=cross_only)
    assert [(int(a), int(b)) for _, a, b in pairs] == expect
    emb = torch.zeros(1, len(labels), 3)  # every distance 0: each pair costs the whole margin
    total = rank_loss(emb, y, mask, k=k, margin=0.7, reduction="sum", cross_label_only=cross_only)
    assert total.item() == pytest.approx(0.7 * len(expect))


def test_boundary_pairs_are_clamped_into_the_valid_part():
    # valid part [0, 0, 1] (then padding labelled 1): c=2 gives (1, 2), (0, 2), (0, 2)
    y = torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0]])
    mask = torch.tensor([[True, True, True, False, False]])
    pairs = boundary_pairs(y, mask, k=3)
    assert [(int(a), int(b)) for _, a, b in pairs] == [(1, 2), (0, 2), (0, 2)]


@SETTINGS
@given(padded_batch(max_t=12), st.integers(1, 4))
def test_boundary_pairs_match_reference(batch, k):
    _, labels, mask = batch
    for cross in (True, False):
        got = [tuple(int(x) for x in p) for p in boundary_pairs(labels, mask, k=k, cross_label_only=cross)]
        assert got == pairs_reference(labels, mask, k, cross)


@SETTINGS
@given(padded_batch(max_t=12), st.floats(0.1, 1.5))
def test_rank_loss_matches_the_hinge_sum(batch, margin):
    emb, labels, mask = batch
    z = F.normalize(emb, dim=-1)
    pairs = pairs_reference(labels, mask, 3)
    expect = sum(max(0.0, margin - float((z[b, i] - z[b, j]).norm())) for b, i, j in pairs)
    got = rank_loss(emb, labels, mask, k=3, margin=margin, reduction="sum")
    assert got.item() == pytest.approx(expect, rel=1e-6, abs=1e-9)
    mean = rank_loss(emb, labels, mask, k=3, margin=margin)
    assert mean.item() == pytest.approx(expect / len(pairs) if pairs else 0.0, rel=1e-6, abs=1e-9)


@SETTINGS
@given(padded_batch(max_t=12), st.floats(1e-2, 1e2))
def test_rank_loss_is_zero_when_pairs_are_farther_than_the_margin(batch, scale):
    _, labels, mask = batch
    u = torch.randn(4, dtype=torch.float64)
    emb = torch.where(labels[..., None] > 0.5, u, -u) * scale  # distance 2 between the classes
    assert rank_loss(emb, labels, mask, margin=0.7, reduction="sum").item() == 0.0
    assert rank_loss(emb, labels, mask, margin=1.99, reduction="sum").item() == 0.0


@SETTINGS
@given(padded_batch(max_t=12))
def test_rank_loss_ignores_padding(batch):
    emb, labels, mask = batch
    noisy = torch.where(mask[..., None], emb, torch.randn_like(emb) * 100)
    flipped = torch.where(mask, labels, 1.0 - labels)
    a = rank_loss(emb, labels, mask, reduction="sum")
    b = rank_loss(noisy, flipped, mask, reduction="sum")
    assert a.item() == pytest.approx(b.item(), rel=1e-9, abs=1e-12)


def test_rank_loss_gradient_pushes_pairs_apart():
    y = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    mask = torch.ones_like(y, dtype=torch.bool)
    emb = (torch.tensor([[[1.0, 0.1], [1.0, 0.0], [1.0, 0.05], [1.0, -0.1]]])).requires_grad_(True)
    before = rank_loss(emb, y, mask)
    before.backward()
    with torch.no_grad():
        after = rank_loss(emb - 0.1 * emb.grad, y, mask)
    assert np.isfinite(before.item()) and after.item() < before.item()


def test_rank_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="reduction"):
        rank_loss(torch.randn(1, 3, 2), torch.ones(1, 3), torch.ones(1, 3, dtype=torch.bool), reduction="max")
    with pytest.raises(ValueError, match="k must be"):
        boundary_pairs(torch.ones(1, 3), torch.ones(1, 3, dtype=torch.bool), k=0)
