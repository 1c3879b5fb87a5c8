import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hl.extract import segments as seg

durations = st.floats(min_value=0.05, max_value=4000.0, allow_nan=False)
lengths = st.floats(min_value=0.25, max_value=30.0, allow_nan=False)


@given(durations, lengths)
def test_fixed_segments_tile_the_video(duration, length):
    s = seg.fixed_segments(duration, length)
    assert len(s) == max(1, math.ceil(duration / length - 1e-9))
    assert s[0, 0] == 0.0
    assert s[-1, 1] == pytest.approx(duration)
    np.testing.assert_allclose(s[1:, 0], s[:-1, 1])  # contiguous, no gaps or overlaps
    assert np.all(s[:, 1] > s[:, 0])
    assert np.all(s[:-1, 1] - s[:-1, 0] == pytest.approx(length))  # all full but the last


def test_fixed_segments_known_values():
    np.testing.assert_allclose(seg.fixed_segments(5.0, 2.0), [[0, 2], [2, 4], [4, 5]])
    np.testing.assert_allclose(seg.fixed_segments(4.0, 2.0), [[0, 2], [2, 4]])
    np.testing.assert_allclose(seg.fixed_segments(0.3, 2.0), [[0, 0.3]])  # shorter than one window
    with pytest.raises(ValueError, match="positive"):
        seg.fixed_segments(3.0, 0)


@given(st.floats(0, 100), st.floats(0.01, 10), st.integers(1, 64), st.floats(1, 60), st.integers(1, 5000))
def test_clip_indices_stay_inside_segment_and_video(start, length, frames, fps, num_frames):
    end = start + length
    idx = seg.clip_frame_indices(start, end, frames, fps, num_frames)
    assert len(idx) == frames
    assert np.all(np.diff(idx) >= 0)
    assert idx.min() >= 0 and idx.max() <= num_frames - 1
    # every sampled frame shows an instant inside the segment (unless clamped at the video's end)
    inside = (idx >= np.floor(start * fps) - 1) & (idx <= np.ceil(end * fps))
    assert np.all(inside | (idx == num_frames - 1))


def test_clip_indices_known_values():
    # 2 s at 25 fps, 16 frames: centres of 0.125-s steps -> frames 1, 4, 7, ...
    idx = seg.clip_frame_indices(0.0, 2.0, 16, 25.0, 1000)
    np.testing.assert_array_equal(idx, np.floor((np.arange(16) + 0.5) * 0.125 * 25).astype(int))
    # a short segment repeats frames rather than reading past its end
    idx = seg.clip_frame_indices(0.0, 0.2, 16, 10.0, 2)
    assert set(idx.tolist()) <= {0, 1}


@given(st.floats(0, 100), st.floats(0.01, 10), st.integers(1, 64), st.integers(1, 4))
def test_clip_with_fewer_steps_continues_past_the_end(start, length, steps, extra):
    """A clip of `steps` + `extra` frames over `steps` steps: the first `steps` times are the plain clip's, the
    others follow at the same step past the segment's end."""
    end = start + length
    times = seg.clip_times(start, end, steps + extra, steps)
    np.testing.assert_allclose(times[:steps], seg.clip_times(start, end, steps))
    np.testing.assert_allclose(np.diff(times), length / steps)
    assert np.all(times[steps:] > end)


def test_flow_clip_known_values():
    # 2 s at 16 fps: 32 steps + 1 -> frames 32k .. 32k + 32, the next segment's first frame included
    np.testing.assert_array_equal(seg.clip_frame_indices(2.0, 4.0, 33, 16.0, 1000, steps=32), np.arange(32, 65))
    # without steps, 33 frames over the same 2 s repeat one frame and stop inside the segment
    idx = seg.clip_frame_indices(2.0, 4.0, 33, 16.0, 1000)
    assert idx.max() == 63 and len(np.unique(idx)) == 32


@given(st.integers(0, 10_000), st.integers(1, 64))
def test_window_indices(target, frames):
    idx = seg.window_frame_indices(target, frames)
    assert len(idx) == frames and idx[-1] == target and idx.min() >= 0
    assert np.all(np.diff(idx) >= 0) and np.all(np.diff(idx) <= 1)


@given(durations, st.floats(0.1, 10))
def test_target_times_inside_video(duration, rate):
    t = seg.target_times(duration, rate)
    assert len(t) == max(1, math.floor(duration * rate + 1e-9))
    assert np.all(np.diff(t) > 0)
    if duration * rate >= 1:
        assert t[-1] < duration


@given(st.floats(0, 1000), st.floats(0.001, 100), st.sampled_from([16000, 32000, 44100]))
def test_sample_ranges_of_adjacent_segments_meet(start, length, sr):
    a0, b0 = seg.sample_range(start, start + length, sr)
    a1, _ = seg.sample_range(start + length, start + 2 * length, sr)
    assert b0 == a1 and b0 >= a0


def test_validate_segments():
    ok = seg.validate_segments(np.array([[0, 3.3], [1.65, 5.2]]), duration=5.0)
    assert ok[-1, 1] == 5.0  # clamped within tolerance
    with pytest.raises(ValueError, match="start < end"):
        seg.validate_segments(np.array([[2.0, 1.0]]), 5.0)
    with pytest.raises(ValueError, match="ends after"):
        seg.validate_segments(np.array([[0.0, 9.0]]), 5.0)
    with pytest.raises(ValueError, match="starts after"):
        seg.validate_segments(np.array([[6.0, 7.0]]), 5.0)


@given(st.lists(st.floats(0, 100), min_size=1, max_size=50))
def test_segment_of_time(times):
    s = seg.fixed_segments(100.0, 2.0)
    k = seg.segment_of_time(np.array(times), s)
    for t, i in zip(times, k):
        assert s[i, 0] <= t and (t < s[i, 1] or i == len(s) - 1)
