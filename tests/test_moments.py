"""Moments from segment scores: worked examples and properties over random score curves."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hl.pipelines.highlights.moments import find_moments, gap, moment_floor


def fixed(n: int, length: float = 2.0) -> np.ndarray:
    return np.stack([np.arange(n) * length, (np.arange(n) + 1) * length], axis=1)


def test_worked_example_merges_neighbours_and_suppresses_close_peaks():
    scores = [0.0, 0.1, 0.9, 1.0, 0.7, 0.1, 0.0, 0.8, 0.0, 0.6, 0.0, 0.2]
    ms = find_moments(scores, fixed(12), top=5, min_gap=3.0)
    # median 0.15: peak 1.0 grows over neighbours >= 0.575 -> segments 2, 3, 4 = [4, 10) s
    assert (ms[0].start, ms[0].end, ms[0].segments, ms[0].peak) == (4.0, 10.0, (2, 3, 4), 3)
    assert ms[0].score == 1.0 and ms[0].mean_score == pytest.approx((0.9 + 1.0 + 0.7) / 3)
    assert ms[0].peak_time == 7.0
    # 0.8 at [14, 16) is 4 s from [4, 10): kept; 0.6 at [18, 20) is only 2 s from it: suppressed
    assert (ms[1].start, ms[1].end, ms[1].score) == (14.0, 16.0, 0.8)
    assert [m.start for m in ms[2:]] == [22.0]  # 0.2 at [22, 24); every other window is < 3 s from a moment
    assert all(gap((a.start, a.end), (b.start, b.end)) >= 3.0 for a in ms for b in ms if a is not b)


def test_top_min_gap_merge_and_max_length():
    scores = [0.0, 1.0, 0.95, 0.9, 0.85, 0.0, 0.0, 0.0, 0.5, 0.0]
    assert len(find_moments(scores, fixed(10), top=1)) == 1
    assert find_moments(scores, fixed(10), top=1, merge=1.0)[0].segments == (1,)  # only ties with the peak
    assert find_moments(scores, fixed(10), top=1, merge=0.0)[0].segments == (1, 2, 3, 4)
    assert find_moments(scores, fixed(10), top=1, merge=0.0, max_length=5.0)[0].segments == (1, 2)
    wide = find_moments(scores, fixed(10), top=3, min_gap=0.0, merge=1.0)
    assert [m.segments for m in wide] == [(1,), (2,), (3,)]  # touching moments are allowed at min_gap 0
    far = find_moments(scores, fixed(10), top=5, min_gap=9.0)
    assert [m.segments for m in far] == [(1, 2, 3, 4)]  # [2, 10) leaves no room 9 s away in [0, 20)


def test_min_score_and_duration_clip():
    scores = [0.2, 0.9, 0.1, 0.3]
    ms = find_moments(scores, fixed(4), top=5, min_gap=0.0, merge=1.0, min_score=0.25)
    assert [m.peak for m in ms] == [1, 3]
    clipped = find_moments(scores, fixed(4), top=5, min_gap=0.0, merge=1.0, duration=7.0)
    assert max(m.end for m in clipped) == 7.0  # the last window [6, 8) ends at the video's end
    beyond = find_moments([0.0, 1.0], [[0, 2], [8, 10]], duration=5.0)
    assert [m.peak for m in beyond] == [0]  # a window past the end is never used


def test_overlapping_windows():
    # YouTube-Highlights-like windows of 4 s every 2 s
    seg = np.stack([np.arange(8) * 2.0, np.arange(8) * 2.0 + 4.0], axis=1)
    scores = [0.0, 0.2, 0.9, 1.0, 0.1, 0.0, 0.0, 0.8]
    ms = find_moments(scores, seg, top=3, min_gap=0.0)
    assert (ms[0].start, ms[0].end, ms[0].segments) == (4.0, 10.0, (2, 3))
    assert all(gap((a.start, a.end), (b.start, b.end)) >= 0 for a in ms for b in ms if a is not b)


@pytest.mark.parametrize("kwargs, message", [
    ({"top": 0}, "top"), ({"min_gap": -1.0}, "min_gap"), ({"merge": 1.5}, "merge"), ({"max_length": 0.0}, "max"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        find_moments([0.1, 0.2], fixed(2), **kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="scores for"):
        find_moments([0.1], fixed(2))
    with pytest.raises(ValueError, match="finite"):
        find_moments([0.1, np.nan], fixed(2))
    with pytest.raises(ValueError, match=r"\[S, 2\]"):
        find_moments([0.1, 0.2], [0.0, 2.0])
    assert find_moments([], np.zeros((0, 2))) == []


@st.composite
def curves(draw):
    n = draw(st.integers(1, 40))
    length = draw(st.sampled_from([1.0, 2.0, 3.2]))
    overlap = draw(st.booleans())
    starts = np.arange(n) * (length / 2 if overlap else length)
    seg = np.stack([starts, starts + length], axis=1)
    scores = np.asarray(draw(st.lists(st.integers(0, 12), min_size=n, max_size=n)), dtype=np.float64) / 4
    duration = draw(st.one_of(st.none(), st.floats(0.5, float(seg[-1, 1]) + 3.0)))
    return scores, seg, duration


options = st.fixed_dictionaries({
    "top": st.integers(1, 8),
    "min_gap": st.sampled_from([0.0, 0.5, 2.0, 4.0, 9.0]),
    "merge": st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    "max_length": st.sampled_from([None, 3.0, 10.0]),
})


@settings(max_examples=300, deadline=None)
@given(curves(), options)
def test_properties(curve, opts):
    scores, seg, duration = curve
    ms = find_moments(scores, seg, duration=duration, **opts)
    end_of_video = duration if duration is not None else seg[:, 1].max()
    inside = np.clip(seg, 0, end_of_video)
    usable = inside[:, 1] > inside[:, 0]
    assert len(ms) <= opts["top"] and (len(ms) >= 1) == usable.any()
    for a in ms:
        assert 0.0 <= a.start < a.end <= end_of_video + 1e-9  # within the video
        members = np.asarray(a.segments)
        assert a.score == scores[members].max() == scores[a.peak]  # score: the max of its segments (the peak)
        assert a.mean_score == pytest.approx(scores[members].mean())
        assert a.start == pytest.approx(max(0.0, seg[members, 0].min()))
        assert a.end == pytest.approx(min(end_of_video, seg[members, 1].max()))
        order = np.argsort(seg[:, 0], kind="stable")
        pos = np.sort(np.flatnonzero(np.isin(order, members)))
        assert (np.diff(pos) == 1).all()  # consecutive in time
        if opts["max_length"] is not None and len(members) > 1:
            assert a.end - a.start <= opts["max_length"] + 1e-6
        for b in ms:
            if b is not a:
                assert gap((a.start, a.end), (b.start, b.end)) >= opts["min_gap"] - 1e-9  # apart, never overlapping
                assert not set(a.segments) & set(b.segments)
    assert [m.score for m in ms] == sorted((m.score for m in ms), reverse=True)
    if ms:  # the best segment inside the video always leads
        assert ms[0].score == scores[usable].max()
    if len(ms) < opts["top"]:  # nothing was left out that could have started another moment
        used = {k for m in ms for k in m.segments}
        for k in range(len(scores)):
            if k not in used and inside[k, 1] > inside[k, 0]:
                assert any(gap(tuple(inside[k]), (m.start, m.end)) < opts["min_gap"] for m in ms)


@settings(max_examples=100, deadline=None)
@given(curves(), options, st.sampled_from([0.5, 2.0, 4.0]), st.sampled_from([-1.0, 0.0, 3.0]))
def test_invariant_to_shifting_and_scaling_scores(curve, opts, scale, shift):
    scores, seg, duration = curve
    a = find_moments(scores, seg, duration=duration, **opts)
    b = find_moments(scores * scale + shift, seg, duration=duration, **opts)
    assert [(m.start, m.end, m.segments) for m in a] == [(m.start, m.end, m.segments) for m in b]


def test_relative_floor_drops_moments_far_below_the_best():
    scores = [0.01, 0.97, 0.02, 0.01, 0.5, 0.01, 0.03, 0.01, 0.9, 0.01]
    # median 0.015: r = 0.5 -> floor 0.4925; 0.97, 0.9 and 0.5 pass, 0.03 and 0.02 not
    assert moment_floor(scores, 0.5) == pytest.approx(0.015 + 0.5 * (0.97 - 0.015))
    ms = find_moments(scores, fixed(10), top=5, min_gap=0.0, merge=1.0, relative=0.5)
    assert [m.score for m in ms] == [0.97, 0.9, 0.5]
    assert [m.score for m in find_moments(scores, fixed(10), top=5, min_gap=0.0, merge=1.0, relative=1.0)] == [0.97]
    everything = find_moments(scores, fixed(10), top=5, min_gap=0.0, merge=1.0, relative=0.5, min_score=0.0)
    assert [m.score for m in everything] == [0.97, 0.9, 0.5, 0.03, 0.02]  # an absolute floor replaces it
    assert [(m.score_rank, m.percentile) for m in everything[:2]] == [(1, 100.0), (2, 90.0)]
    assert everything[4].score_rank == 5 and everything[4].percentile == pytest.approx(60.0)
    assert moment_floor(scores) is None and moment_floor(scores, 0.5, min_score=0.2) == 0.2
    with pytest.raises(ValueError, match="relative"):
        find_moments(scores, fixed(10), relative=1.5)


@settings(max_examples=300, deadline=None)
@given(curves(), options, st.floats(0.0, 1.0), st.sampled_from([None, 0.0, 0.5, 2.0]))
def test_no_moment_below_the_floor(curve, opts, relative, min_score):
    scores, seg, duration = curve
    ms = find_moments(scores, seg, duration=duration, relative=relative, min_score=min_score, **opts)
    end_of_video = duration if duration is not None else seg[:, 1].max()
    inside = np.clip(seg, 0, end_of_video)
    usable = inside[:, 1] > inside[:, 0]
    floor = moment_floor(scores[usable], relative, min_score)
    assert all(m.score >= floor for m in ms)
    for m in ms:  # rank and percentile place the score in the video's distribution
        assert m.score_rank == 1 + (scores > m.score).sum()
        assert m.percentile == pytest.approx(100 * (scores <= m.score).mean())
    if min_score is None and usable.any():  # a relative floor never empties the list
        assert ms and ms[0].score == scores[usable].max()
    if min_score == 0.0:  # scores here are >= 0: the floor keeps everything the rule finds
        plain = find_moments(scores, seg, duration=duration, **opts)
        assert [(m.start, m.end, m.segments) for m in ms] == [(m.start, m.end, m.segments) for m in plain]


@settings(max_examples=100, deadline=None)
@given(curves(), options, st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.sampled_from([0.5, 4.0]),
       st.sampled_from([-1.0, 3.0]))  # exact in binary: a score on the floor stays on it
def test_relative_floor_is_invariant_to_shifting_and_scaling(curve, opts, relative, scale, shift):
    scores, seg, duration = curve
    a = find_moments(scores, seg, duration=duration, relative=relative, **opts)
    b = find_moments(scores * scale + shift, seg, duration=duration, relative=relative, **opts)
    assert [m.segments for m in a] == [m.segments for m in b]
