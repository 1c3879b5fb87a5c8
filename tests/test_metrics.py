import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hl.heads.metrics import (
    average_precision,
    rank_order,
    tvsum_annotator_aps,
    tvsum_map,
    tvsum_top5_map,
    youtube_ap,
    youtube_map,
)

# ------------------------------------------------------------------------------------------ slow references


def slow_ranking(scores):
    """Selection sort: repeatedly take the highest remaining score, the lowest index among ties."""
    remaining = list(range(len(scores)))
    order = []
    while remaining:
        best = remaining[0]
        for i in remaining[1:]:
            if scores[i] > scores[best]:
                best = i
        order.append(best)
        remaining.remove(best)
    return order


def slow_ranked_ap(ranked):
    num_gt = sum(ranked)
    if num_gt == 0:
        return 0.0
    ap, hits, rec_prev, prc_prev = 0.0, 0, 0.0, 1.0
    for i, gt in enumerate(ranked):
        hits += gt
        rec, prc = hits / num_gt, hits / (i + 1)
        ap += (rec - rec_prev) * (prc + prc_prev) / 2
        rec_prev, prc_prev = rec, prc
    return ap


def slow_ap(scores, labels):
    return slow_ranked_ap([labels[i] for i in slow_ranking(scores)])


def slow_median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def slow_tvsum_umt(scores, anno, k=5):
    n_clips, n_users = len(anno), len(anno[0])
    per_user = []
    for j in range(n_users):
        column = [anno[t][j] for t in range(n_clips)]
        med = slow_median(column)
        labels = [1 if v > med else 0 for v in column][: len(scores)]
        per_user.append(slow_ranked_ap([labels[i] for i in slow_ranking(scores)][:k]))
    return sum(per_user) / n_users


def slow_tvsum_mininet(scores, anno, k=5):
    n_clips, n_users = len(anno), len(anno[0])
    scores = list(scores[:n_clips]) + [0.0] * max(0, n_clips - len(scores))
    per_user = []
    for j in range(n_users):
        column = [anno[t][j] for t in range(n_clips)]
        top_half = set(slow_ranking(column)[: n_clips // 2])
        labels = [1 if t in top_half else 0 for t in range(n_clips)]
        per_user.append(slow_ranked_ap([labels[i] for i in slow_ranking(scores)][:k]))
    return sum(per_user) / n_users


# ---------------------------------------------------------------------------------------------- strategies

small_ints = st.integers(min_value=-4, max_value=4)  # few values: plenty of ties


@st.composite
def scored_labels(draw, min_size=1, max_size=30):
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    scores = draw(st.lists(small_ints, min_size=n, max_size=n))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    return scores, labels


@st.composite
def tvsum_video(draw, max_clips=14, max_users=4):
    n = draw(st.integers(min_value=1, max_value=max_clips))
    users = draw(st.integers(min_value=1, max_value=max_users))
    anno = draw(st.lists(st.lists(st.integers(1, 5), min_size=users, max_size=users), min_size=n, max_size=n))
    m = draw(st.integers(min_value=1, max_value=n))
    scores = draw(st.lists(small_ints, min_size=m, max_size=m))
    return scores, anno


# ---------------------------------------------------------------------------------------------- AP


@settings(max_examples=300, deadline=None)
@given(scored_labels())
def test_ap_matches_slow_reference(case):
    scores, labels = case
    assert average_precision(scores, labels) == pytest.approx(slow_ap(scores, labels), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(scored_labels())
def test_ap_invariant_to_monotone_transforms(case):
    scores, labels = case
    s = np.array(scores, dtype=float)
    base = average_precision(s, labels)
    assert average_precision(3.0 * s + 7.0, labels) == pytest.approx(base, abs=1e-12)
    assert average_precision(np.exp(s / 3.0), labels) == pytest.approx(base, abs=1e-12)
    assert average_precision(s**3 + s, labels) == pytest.approx(base, abs=1e-12)
    assert 0.0 <= base <= 1.0 + 1e-12


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=1, max_size=40))
def test_perfect_ranking_scores_one(labels):
    ap = average_precision(np.array(labels, dtype=float), labels)  # positives ranked first
    assert ap == (1.0 if sum(labels) else 0.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(small_ints, min_size=1, max_size=20))
def test_rank_order_is_stable_descending(scores):
    assert rank_order(scores).tolist() == slow_ranking(scores)


def test_ap_hand_computed():
    # ranked labels [1, 0, 1]: 0.5 * (1 + 1) / 2 + 0 + 0.5 * (1/2 + 2/3) / 2 = 19/24
    assert average_precision([3, 2, 1], [1, 0, 1]) == pytest.approx(19 / 24)
    # ranked [0, 1]: the trapezoid starts at precision 1 but the first step adds 0 recall, the second
    # step goes from precision 0 to 1/2: 1 * (0 + 0.5) / 2
    assert average_precision([0.9, 0.1], [0, 1]) == pytest.approx(0.25)
    # ranked [0, 1, 1]: 0 + 0.5 * (0 + 0.5) / 2 + 0.5 * (0.5 + 2/3) / 2
    assert average_precision([5, 4, 3], [0, 1, 1]) == pytest.approx(0.125 + 0.5 * (0.5 + 2 / 3) / 2)


def test_ap_edge_cases():
    assert average_precision([0.3, 0.2, 0.9], [0, 0, 0]) == 0.0
    assert average_precision([0.3, 0.2, 0.9], [1, 1, 1]) == 1.0
    assert average_precision([0.5], [1]) == 1.0
    # ties keep clip order: the earlier clip ranks first
    assert average_precision([1.0, 1.0], [1, 0]) == 1.0
    assert average_precision([1.0, 1.0], [0, 1]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="one length"):
        average_precision([1, 2], [1])
    with pytest.raises(ValueError, match="0 or 1"):
        average_precision([1, 2], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        average_precision([1, float("nan")], [1, 0])


def test_torch_input():
    torch = pytest.importorskip("torch")
    s = torch.tensor([0.1, 0.9, 0.5], requires_grad=True)
    assert average_precision(s, torch.tensor([0, 1, 0])) == 1.0


# ---------------------------------------------------------------------------------------------- YouTube


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.lists(small_ints, min_size=1, max_size=12), st.randoms()), min_size=1, max_size=5)
)
def test_youtube_map_matches_slow(videos):
    data = []
    for scores, rnd in videos:
        match = [rnd.choice([-1, 0, 1]) for _ in range(len(scores) + rnd.randint(0, 3))]
        data.append((scores, match))
    slow = [slow_ap(s, [1 if m > 0 else 0 for m in match[: len(s)]]) for s, match in data]
    assert youtube_map(data) == pytest.approx(sum(slow) / len(slow), abs=1e-12)


def test_youtube_hand_computed():
    # borderline 0 is negative: labels [0, 1, 0, 1] ranked by score [0.1, 0.9, 0.8, 0.2] -> [1, 0, 1, 0]
    assert youtube_ap([0.1, 0.9, 0.8, 0.2], [0, 1, -1, 1]) == pytest.approx(19 / 24)
    # a video with no positive counts as 0 in the mean
    assert youtube_map([([0.1, 0.9], [-1, 1]), ([0.5, 0.4], [0, -1])]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="3 scores for 2"):
        youtube_ap([1, 2, 3], [1, 0])
    with pytest.raises(ValueError, match="at least one"):
        youtube_map([])


# ---------------------------------------------------------------------------------------------- TVSum


@settings(max_examples=200, deadline=None)
@given(tvsum_video())
def test_tvsum_umt_matches_slow(case):
    scores, anno = case
    assert tvsum_top5_map(scores, anno) == pytest.approx(slow_tvsum_umt(scores, anno), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(tvsum_video())
def test_tvsum_mininet_matches_slow(case):
    scores, anno = case
    got = tvsum_top5_map(scores, anno, protocol="mini-net")
    assert got == pytest.approx(slow_tvsum_mininet(scores, anno), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(tvsum_video(max_users=3), min_size=1, max_size=4))
def test_tvsum_map_averaging(videos):
    users = len(videos[0][1][0])
    videos = [(s, [row[:1] * users if len(row) < users else row[:users] for row in a]) for s, a in videos]
    grid = np.array([[slow_tvsum_umt(s, [[r[j]] for r in a]) for j in range(users)] for s, a in videos])
    assert tvsum_map(videos) == pytest.approx(grid.mean(axis=0).mean(), abs=1e-12)
    per_video = [slow_tvsum_mininet(s, a) for s, a in videos]
    assert tvsum_map(videos, protocol="mini-net") == pytest.approx(np.mean(per_video), abs=1e-12)


def test_tvsum_hand_computed():
    # one annotator, 7 clips, median 3 -> positives are the clips scored 4 and 5 (clips 0 and 5)
    anno = [[5], [1], [2], [3], [1], [4], [3]]
    scores = [0.1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    # ranking 1, 2, 3, 4, 5 | 6, 0 -> top-5 labels [0, 0, 0, 0, 1]: num_gt = 1 inside the top 5,
    # AP = 1 * (0 + 1/5) / 2
    assert tvsum_top5_map(scores, anno) == pytest.approx(0.1)
    # top-3: no positive inside -> 0
    assert tvsum_top5_map(scores, anno, k=3) == 0.0
    # fewer than 5 clips: the whole ranked list counts
    assert tvsum_top5_map([0.2, 0.1, 0.3], [[1], [2], [3]]) == pytest.approx(1.0)
    assert tvsum_top5_map([0.3, 0.2, 0.1], [[1], [2], [3]]) == pytest.approx(0.5 * (0 + 1 / 3))
    # annotators are averaged: the second annotator's labels are the reverse
    two = [[1, 3], [2, 2], [3, 1]]
    aps = tvsum_annotator_aps([0.2, 0.1, 0.3], two)
    assert aps.tolist() == pytest.approx([1.0, 0.25])  # second: ranked [0, 1, 0] -> 1 * (0 + 1/2) / 2
    assert tvsum_top5_map([0.2, 0.1, 0.3], two) == pytest.approx((1 + 0.25) / 2)


def test_tvsum_protocols_differ_on_ties_and_length():
    # scores tied at the median: UMT marks only clips above it, MINI-Net the top half (3 of 6)
    anno = [[1], [1], [1], [1], [2], [3]]
    scores = [6, 5, 4, 3, 2, 1]  # clip 0 first
    # UMT: labels [0, 0, 0, 0, 1, 1], ranked [0,0,0,0,1]: AP = 1 * (0 + 1/5) / 2
    assert tvsum_top5_map(scores, anno) == pytest.approx(0.1)
    # MINI-Net: top half by (anno desc, clip order) = clips 5, 4, 0 -> ranked [1, 0, 0, 0, 1]
    expected = slow_ranked_ap([1, 0, 0, 0, 1])
    assert expected == pytest.approx(0.5 + 0.5 * (0.25 + 0.4) / 2)
    assert tvsum_top5_map(scores, anno, protocol="mini-net") == pytest.approx(expected)
    # a short prediction: UMT ranks the predicted clips only, MINI-Net pads with zeros
    anno = [[1], [2], [5], [4]]  # median 3: clips 2, 3 positive; top half: clips 2, 3
    assert tvsum_top5_map([0.5, 0.4], anno) == 0.0
    assert tvsum_top5_map([0.5, 0.4], anno, protocol="mini-net") == pytest.approx(
        slow_ranked_ap([0, 0, 1, 1])
    )


def test_tvsum_errors():
    with pytest.raises(ValueError, match="3 scores for 2"):
        tvsum_top5_map([1, 2, 3], [[1], [2]])
    with pytest.raises(ValueError, match="protocol"):
        tvsum_top5_map([1], [[1]], protocol="other")
    with pytest.raises(ValueError, match="annotators"):
        tvsum_map([([1, 2], [[1, 2], [2, 1]]), ([1, 2], [[1], [2]])])
    with pytest.raises(ValueError, match=r"\[T, annotators\]"):
        tvsum_top5_map([1, 2], [1, 2])


def test_tvsum_annotator_mean_on_test_videos(shared_data):
    """The 20 annotators' mean score as the prediction reaches 0.84 on the TVSum test videos (DESIGN)."""
    anno = json.loads((shared_data / "tvsum" / "umt" / "tvsum_anno.json").read_text())
    test_ids = []
    with open(shared_data / "tvsum" / "lighthouse" / "tvsum_val_release.jsonl") as fh:
        test_ids = [json.loads(line)["vid"] for line in fh if line.strip()]
    assert len(test_ids) == 10
    videos = [(np.asarray(anno[v]["anno"]).mean(1), np.asarray(anno[v]["anno"])) for v in test_ids]
    umt = tvsum_map(videos)
    assert math.isclose(umt, 0.8435, abs_tol=5e-4)
    assert tvsum_map(videos, protocol="mini-net") > umt  # more positives per annotator
    rng = np.random.default_rng(0)
    shuffled = [(rng.permutation(s), a) for s, a in videos]
    assert tvsum_map(shuffled) < 0.7
