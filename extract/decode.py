"""Decoding: video frames with decord (frame-accurate indexing), the audio track streamed at 32 kHz mono.

One :class:`VideoSource` per video serves every extractor of a run, at a working resolution small enough to
be cheap and large enough for every backbone (short side 256 by default):

* :meth:`VideoSource.frames` reads frames by index (decord's ``get_batch``; never ``seek``, which lands on
  keyframes);
* :meth:`VideoSource.stream_frames` serves a known sequence of index requests (the extraction stage's chunks)
  from one sequential decoding pass (PyAV), keeping a frame only while a request still needs it. Sequential
  decoding is frame-accurate without seeking, cheaper than decord's skipping, and flat in memory: decord
  retains a few hundred MB of frame buffers over a long video when indices skip frames. The first frame is
  checked against decord's (same pixels, orientation included); on any doubt the stream falls back to
  :meth:`frames`;
* the audio track is decoded as a stream (PyAV's resampler to 32 kHz mono float), so memory does not grow
  with the video's length. Audio is trimmed or zero-padded to the video's duration (AAC priming/padding).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hl.common import HLError, one_line

log = logging.getLogger(__name__)

AUDIO_RATE = 32000
WORKING_SHORT_SIDE = 256
# What a video may claim in its headers before anything is decoded (a decoder bomb claims more): frames of at most
# 8192 x 8192 pixels (8K UHD fits), and no more frames than the file has bytes (every coded frame takes some).
MAX_FRAME_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class VideoInfo:
    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    has_audio: bool

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def working_size(width: int, height: int, short_side: int = WORKING_SHORT_SIDE) -> tuple[int, int]:
    """(width, height) to decode at: the short side scaled down to `short_side` (never up), even sizes."""
    scale = min(1.0, short_side / min(width, height))
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def _as_numpy(batch) -> np.ndarray:
    """A decord NDArray as numpy without a copy (through DLPack; ``asnumpy`` copies, slowly)."""
    import torch

    return torch.from_dlpack(batch.to_dlpack()).numpy()


def check_claims(path: str | Path) -> bool:
    """Read `path`'s headers (nothing is decoded) and raise a one-line HLError when they claim frames larger
    than :data:`MAX_FRAME_PIXELS` or more frames than the file has bytes (a tiny file claiming hours at 1000
    fps). Returns whether the file has an audio stream; a file the headers of which cannot be read passes (the
    decoder says why)."""
    import av

    size = os.path.getsize(path)
    try:
        with av.open(str(path)) as container:
            has_audio = len(container.streams.audio) > 0
            if not container.streams.video:
                return has_audio
            stream = container.streams.video[0]
            width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            seconds = (float(stream.duration * stream.time_base) if stream.duration and stream.time_base
                       else (container.duration or 0) / av.time_base)
            frames = int(stream.frames or round(seconds * rate))
    except Exception:  # noqa: BLE001 - the decoder reports unreadable files with its own reason
        return False
    if width * height > MAX_FRAME_PIXELS:
        side = int(MAX_FRAME_PIXELS ** 0.5)
        raise HLError(f"{path}: claims {width}x{height} frames, more than the {side}x{side} pixels hl decodes "
                      f"(a damaged or hostile file?)")
    if frames > size:
        raise HLError(f"{path}: claims {frames} frames ({seconds:.0f} s at {rate:g} fps) in a {size}-byte file "
                      f"(a damaged or hostile file?)")
    return has_audio


def has_audio_stream(path: str | Path) -> bool:
    import av

    try:
        with av.open(str(path)) as container:
            return len(container.streams.audio) > 0
    except Exception:  # noqa: BLE001 - a file PyAV cannot open has no audio we can use
        return False


class VideoSource:
    """Frames by index and the audio stream of one video file.

    >>> src = VideoSource("clip.mp4")
    >>> src.info.duration, src.frames(np.array([0, 10, 20])).shape   # (..., (3, H, W, 3)) uint8 RGB
    """

    def __init__(self, path: str | Path, short_side: int = WORKING_SHORT_SIDE, threads: int = 1):
        import decord

        self.path = str(path)
        name = os.path.basename(self.path)
        if not os.path.isfile(self.path):
            raise HLError(f"{self.path}: no such file")
        if os.path.getsize(self.path) == 0:
            raise HLError(f"{self.path}: empty file")
        has_audio = check_claims(self.path)
        try:
            probe = decord.VideoReader(self.path, num_threads=threads)
            width, height = probe[0].shape[1], probe[0].shape[0]
            num_frames, fps = len(probe), float(probe.get_avg_fps())
        except Exception as exc:  # decord raises DECORDError with a C++ trace
            has_audio = has_audio_stream(self.path)
            cause = "no video stream (audio-only file?)" if has_audio else "not a decodable video"
            raise HLError(f"{self.path}: {cause} ({one_line(exc)})") from None
        if num_frames <= 0 or not fps > 0:
            raise HLError(f"{self.path}: no frames or no frame rate (frames={num_frames}, fps={fps})")
        if num_frames > os.path.getsize(self.path):
            raise HLError(f"{self.path}: claims {num_frames} frames in a {os.path.getsize(self.path)}-byte file "
                          f"(a damaged or hostile file?)")
        w, h = working_size(width, height, short_side)
        if (w, h) == (width, height):  # decoded at its own size: the probe reader serves
            self._reader = probe
        else:
            del probe
            try:
                self._reader = decord.VideoReader(self.path, width=w, height=h, num_threads=threads)
            except Exception as exc:
                raise HLError(f"{self.path}: cannot open at {w}x{h} ({one_line(exc)})") from None
        self.info = VideoInfo(self.path, num_frames, fps, width, height, has_audio)
        self.frame_size = (h, w)
        log.debug("opened %s: %d frames at %.3f fps, %dx%d -> %dx%d",
                  name, num_frames, fps, width, height, w, h)

    def frames(self, indices: np.ndarray) -> np.ndarray:
        """uint8 RGB frames [N, H, W, 3] at the working size for (possibly repeated, unsorted) indices."""
        indices = np.asarray(indices, dtype=np.int64)
        unique, inverse = np.unique(indices, return_inverse=True)
        try:
            batch = _as_numpy(self._reader.get_batch(unique.tolist()))
        except Exception as exc:
            batch = self._frames_tolerant(unique, exc)
        if len(unique) == len(indices) and np.array_equal(unique, indices):
            return batch  # already sorted and distinct: no copy
        return batch[inverse]

    def _frames_tolerant(self, unique: np.ndarray, exc: Exception) -> np.ndarray:
        """A truncated file may index frames it cannot decode: fall back to the last decodable frame."""
        out, last = [], None
        for i in unique.tolist():
            try:
                last = self._reader.get_batch([i]).asnumpy()[0]
            except Exception:
                if last is None:
                    raise HLError(f"{self.path}: cannot decode frame {i} ({one_line(exc)})") from None
            out.append(last)
        log.warning("%s: some frames could not be decoded; repeated the last good frame", self.path)
        return np.stack(out)

    def audio_chunks(self, chunk_seconds: float = 30.0,
                     sample_rate: int = AUDIO_RATE) -> Iterator[np.ndarray]:
        """The audio track as consecutive float32 mono chunks at `sample_rate`, trimmed/zero-padded so that
        their total length is exactly round(duration * sample_rate). Yields nothing if there is no track."""
        if not self.info.has_audio:
            return
        total = int(round(self.info.duration * sample_rate))
        emitted = 0
        for chunk in _stream_audio(self.path, sample_rate, int(chunk_seconds * sample_rate)):
            take = min(len(chunk), total - emitted)
            if take <= 0:
                break
            emitted += take
            yield chunk[:take]
        if emitted < total:
            yield np.zeros(total - emitted, dtype=np.float32)

    def stream_frames(self, requests: list[np.ndarray], threads: int = 1) -> Iterator[np.ndarray]:
        """For each of `requests` (arrays of frame indices), in order, its uint8 RGB frames [len, H, W, 3] at the
        working size: the same pixels as :meth:`frames`, from one sequential decoding pass.

        Requests are best increasing (each one's frames at or after most of the previous one's): the decoder
        only moves forward, and a decoded frame is kept only until the last request that needs it, so memory
        is bounded by the requests, not the video. Every kept frame's timestamp is checked against decord's
        index (and the first one's pixels against decord's frame): on a mismatch the rest comes from
        :meth:`frames`. `threads` are the decoder's threads."""
        requests = [np.asarray(r, dtype=np.int64).reshape(-1) for r in requests]
        last_use = np.full(self.info.num_frames, -1, dtype=np.int64)
        for r, idx in enumerate(requests):
            last_use[idx] = r  # requests in order: the last assignment is the last use
        starts = self._reader.get_frame_timestamp(np.arange(self.info.num_frames))[:, 0]
        stream = self._decode_in_order(threads)
        try:
            yield from self._serve(requests, last_use, starts, stream)
        finally:
            stream.close()

    def _serve(self, requests: list[np.ndarray], last_use: np.ndarray, starts: np.ndarray,
               decoded: Iterator[tuple] | None) -> Iterator[np.ndarray]:
        from av.video.reformatter import VideoReformatter

        reformatter = VideoReformatter()  # one conversion context for the whole video (per frame: 40x slower)
        tolerance = 0.25 / self.info.fps
        kept: dict[int, np.ndarray] = {}
        pos, checked = 0, False
        for r, idx in enumerate(requests):
            top = int(idx.max()) if idx.size else -1
            while decoded is not None and pos <= top:
                frame, seconds = next(decoded, (None, None))
                if frame is None:  # the stream ended early: decord serves what is left
                    decoded = None
                    break
                if last_use[pos] >= r:
                    if seconds is not None and abs(seconds - starts[pos]) > tolerance:
                        log.warning("%s: sequential decoding is out of step with decord's index at frame %d; "
                                    "frames come from decord", self.path, pos)
                        decoded, kept = None, {}
                        break
                    kept[pos] = reformatter.reformat(frame, width=self.frame_size[1], height=self.frame_size[0],
                                                     format="rgb24", interpolation="BICUBIC").to_ndarray()
                    if not checked:
                        checked = True
                        if not self._same_as_decord(pos, kept[pos]):
                            decoded, kept = None, {}
                            break
                pos += 1
            missing = np.array([i for i in np.unique(idx) if int(i) not in kept], dtype=np.int64)
            if missing.size:
                kept.update(zip(missing.tolist(), self.frames(missing), strict=True))
            out = np.stack([kept[int(i)] for i in idx]) if idx.size else np.zeros((0, *self.frame_size, 3), np.uint8)
            for i in np.unique(idx[last_use[idx] <= r]).tolist():
                kept.pop(i, None)
            yield out

    def _decode_in_order(self, threads: int) -> Iterator[tuple]:
        """(PyAV frame, its start in seconds or None) for every video frame in presentation order; stops at a
        decoding error."""
        import av

        try:
            container = av.open(self.path)
        except Exception as exc:  # noqa: BLE001 - decord opened it: serve frames through decord instead
            log.warning("%s: PyAV cannot open the video (%s); frames come from decord", self.path, one_line(exc))
            return
        with container:
            stream = container.streams.video[0]
            stream.thread_count = max(1, threads)
            origin, base = stream.start_time or 0, stream.time_base
            try:
                for frame in container.decode(stream):
                    yield frame, (float((frame.pts - origin) * base) if frame.pts is not None and base else None)
            except av.error.FFmpegError as exc:
                log.warning("%s: video stream ends early (%s)", self.path, one_line(exc))

    def _same_as_decord(self, index: int, frame: np.ndarray) -> bool:
        """The sequential decoder agrees with decord on this frame: same size and orientation, same colours
        (up to resampling rounding)."""
        ref = self.frames(np.array([index]))[0]
        same = frame.shape == ref.shape and float(np.abs(frame.astype(np.int16) - ref).mean()) <= 2.0
        if not same:
            log.warning("%s: sequential decoding differs from decord on frame %d; frames come from decord",
                        self.path, index)
        return same

    def close(self) -> None:
        self._reader = None


def _stream_audio(path: str, sample_rate: int, chunk: int) -> Iterator[np.ndarray]:
    import av

    try:
        container = av.open(path)
    except Exception as exc:
        raise HLError(f"{path}: cannot open the audio track ({one_line(exc)})") from None
    with container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        pending: list[np.ndarray] = []
        size = 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pending.append(out.to_ndarray().reshape(-1))
                    size += pending[-1].size
                if size >= chunk:
                    data = np.concatenate(pending)
                    yield data[:chunk]
                    pending, size = [data[chunk:]], data.size - chunk
        except av.error.FFmpegError as exc:  # a truncated track: keep what decoded, pad the rest
            log.warning("%s: audio track ends early (%s)", path, one_line(exc))
        for out in resampler.resample(None):
            pending.append(out.to_ndarray().reshape(-1))
        if pending:
            data = np.concatenate(pending)
            if data.size:
                yield data


class AudioCursor:
    """Serve increasing sample ranges [a, b) out of a chunked stream, keeping only what is still needed."""

    def __init__(self, chunks: Iterator[np.ndarray]):
        self._chunks = chunks
        self._buffer = np.zeros(0, dtype=np.float32)
        self._offset = 0  # absolute index of self._buffer[0]
        self._done = False

    def take(self, start: int, end: int) -> np.ndarray:
        if start < self._offset:
            raise ValueError(f"audio range starts at {start}, before the kept data at {self._offset}")
        while not self._done and self._offset + len(self._buffer) < end:
            try:
                self._buffer = np.concatenate([self._buffer, next(self._chunks)])
            except StopIteration:
                self._done = True
        lo, hi = start - self._offset, end - self._offset
        out = self._buffer[lo:hi]
        if len(out) < end - start:
            out = np.concatenate([out, np.zeros(end - start - len(out), dtype=np.float32)])
        return out

    def release(self, before: int) -> None:
        """Forget samples before absolute index `before`."""
        drop = min(max(0, before - self._offset), len(self._buffer))
        self._buffer = self._buffer[drop:]
        self._offset += drop
