"""Cut a moment out of a video as its own short file, streaming (memory does not grow with the video).

Two ways, both with PyAV:

* ``copy`` (the default): packets are copied unchanged (fast, lossless). A copied clip must start on a
  keyframe, so it starts at the last keyframe at or before the asked start; it ends after the last frame that
  starts before the asked end (plus, with B-frames, the few frames decoded before it). The :class:`Clip` says
  the times actually cut. The clip keeps the source's container when that muxer takes its codecs, else it is
  written as Matroska; a source that cannot be copied at all is re-encoded.
* ``reencode``: decode from the keyframe before the start, keep the frames (and audio samples) in
  ``[start, end)`` exactly, encode H.264 + AAC in MP4.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from hl.common import HLError, atomic_path, one_line

log = logging.getLogger(__name__)

MODES = ("copy", "reencode")
# Containers a copied clip may keep; anything else is copied into Matroska, which takes nearly every codec.
COPY_CONTAINERS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".ts"}
_EPS = 1e-3  # seconds
_INTERLEAVE_S = 5.0  # streams of a file are never further apart than this in its packet order


@dataclass(frozen=True)
class Clip:
    path: Path
    start: float  # seconds in the source where the clip actually starts
    end: float  # ... and ends
    mode: str  # "copy" or "reencode"
    asked: tuple[float, float]  # the (start, end) asked for

    def to_dict(self) -> dict:
        return {"path": str(self.path), "start": round(self.start, 3), "end": round(self.end, 3), "mode": self.mode}


def clip_suffix(source: str | Path, mode: str = "copy") -> str:
    """The file extension a clip of `source` gets in `mode`."""
    if mode == "reencode":
        return ".mp4"
    suffix = Path(source).suffix.lower()
    return suffix if suffix in COPY_CONTAINERS else ".mkv"


def cut_clip(source: str | Path, start: float, end: float, dest: str | Path, mode: str = "copy") -> Clip:
    """Write ``[start, end)`` seconds of `source` to `dest` (its extension picks the container; see
    :func:`clip_suffix`). ``mode="copy"`` falls back to re-encoding (into ``dest`` with a ``.mp4`` suffix)
    when the packets cannot be copied. The file is written under a temporary name and renamed."""
    if mode not in MODES:
        raise ValueError(f"unknown clip mode {mode!r} ({', '.join(MODES)})")
    if not end > start:
        raise ValueError(f"a clip must end after it starts, got [{start}, {end})")
    source, dest = Path(source), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if mode == "reencode":
        dest = dest.with_suffix(".mp4")
    if mode == "copy":
        try:
            return _atomic(dest, lambda tmp: _copy(source, start, end, tmp, dest.suffix))
        except HLError:
            raise
        except Exception as exc:  # noqa: BLE001 - a muxer refusing the codec: re-encode instead
            log.info("%s: stream copy not possible (%s); re-encoding", source, one_line(exc))
            dest = dest.with_suffix(".mp4")
    return _atomic(dest, lambda tmp: _reencode(source, start, end, tmp))


def _atomic(dest: Path, write) -> Clip:
    with atomic_path(dest) as tmp:
        clip = write(tmp)
    return Clip(dest, *clip)


def _open(source: Path):
    import av

    try:
        container = av.open(str(source))
    except Exception as exc:
        raise HLError(f"{source}: cannot open ({one_line(exc)})") from None
    if not container.streams.video:
        container.close()
        raise HLError(f"{source}: no video stream")
    return container


def _origin(video) -> float:
    """Presentation time (s) of the video's first frame: times in hl are counted from there."""
    return float((video.start_time or 0) * video.time_base)


def _seek_before(container, video, t: float, origin: float) -> None:
    """Seek so that demuxing starts at a video keyframe at or before `t` (or at the first one). Some demuxers
    land after the target; step back further until they do not."""
    back = 0.0
    while True:
        target = max(0.0, t - back)
        container.seek(int((target + origin) / video.time_base), stream=video, backward=True, any_frame=False)
        first = next((p for p in container.demux(video) if p.pts is not None and p.is_keyframe), None)
        if first is None or float(first.pts * first.time_base) - origin <= t + _EPS or target == 0.0:
            container.seek(int((target + origin) / video.time_base), stream=video, backward=True, any_frame=False)
            return
        back = max(1.0, 2 * back)


def _with_dts(packets, video):
    """The packets with every decode timestamp set. Demuxers may leave the dts of the first video packets after
    a seek unset (Matroska does); they are filled back from the next known dts, one frame duration apart."""
    waiting = []  # packets held until the next video packet with a known dts
    last, step = None, None
    for packet in packets:
        if packet.pts is None:
            continue
        if packet.stream.index != video.index:
            if packet.dts is None:
                packet.dts = packet.pts  # audio is never reordered
            if waiting:
                waiting.append(packet)
            else:
                yield packet
            continue
        step = packet.duration or step or int(round(1 / (video.average_rate or 25) / video.time_base))
        if packet.dts is None:
            waiting.append(packet)
            if len(waiting) < 1000:
                continue
            known = (last if last is not None else waiting[0].pts - step) + step * (
                1 + sum(p.stream.index == video.index for p in waiting))
        else:
            known = packet.dts
            if not waiting:
                last = packet.dts
                yield packet
                continue
            waiting.append(packet)
        later = [p for p in waiting if p.stream.index == video.index and p.dts is None]
        for k, p in enumerate(later):
            p.dts = known - step * (len(later) - k)
        yield from waiting
        waiting = []
        last = known
    for p in waiting:  # the stream ended before any dts: no reordering to undo
        if p.dts is None:
            p.dts = p.pts
        yield p


def _from_keyframe(packets, video, start: float, origin: float) -> tuple[float, list]:
    """Read `packets` (decode order) up to where the last video keyframe at or before `start` is known; return
    its time and the packets read from it on (audio read meanwhile included), to be followed by the rest."""
    key, held = None, []
    for packet in packets:
        if packet.pts is None or packet.dts is None:
            continue
        if packet.stream.index == video.index:
            t = float(packet.pts * packet.time_base) - origin
            if packet.is_keyframe and (t <= start + _EPS or key is None):
                recent = [p for p in held if p.stream.index != video.index
                          and float(p.pts * p.time_base) - origin >= t - _INTERLEAVE_S]
                key, held = t, recent
            if key is None:
                continue
            held.append(packet)
            # decode order: once a dts passes `start`, no later keyframe can start at or before it
            if float(packet.dts * packet.time_base) - origin > start + _EPS:
                break
        else:
            held.append(packet)
    if key is None:
        raise HLError(f"no video keyframe from {start:.3f} s on")
    return max(0.0, key), held


def _copy(source: Path, start: float, end: float, tmp: Path, suffix: str) -> tuple[float, float, str, tuple]:
    import av

    fmt = {".mkv": "matroska", ".webm": "webm", ".ts": "mpegts", ".mov": "mov"}.get(suffix.lower(), "mp4")
    with _open(source) as inp:
        video = inp.streams.video[0]
        audio = inp.streams.audio[0] if inp.streams.audio else None
        origin = _origin(video)
        _seek_before(inp, video, start, origin)
        packets = _with_dts(inp.demux([s for s in (video, audio) if s is not None]), video)
        key, held = _from_keyframe(packets, video, start, origin)
        with av.open(str(tmp), "w", format=fmt) as out:
            streams = {video.index: out.add_stream_from_template(video)}
            if audio is not None:
                streams[audio.index] = out.add_stream_from_template(audio)
            shift = None  # seconds subtracted from every timestamp so that the clip starts at 0
            clip_end, video_done = key, False
            early_audio = []  # audio read before the keyframe's packet (interleaving), sent once `shift` is known
            late_audio = []  # audio past `end` read before the video reached it

            def send(packet) -> None:
                offset = int(round(shift / packet.time_base))
                packet.pts -= offset
                packet.dts -= offset
                packet.stream = streams[packet.stream.index]
                out.mux(packet)

            for packet in itertools.chain(held, packets):
                if packet.dts is None or packet.pts is None:
                    continue
                t = float(packet.pts * packet.time_base) - origin
                if packet.stream.index == video.index:
                    dts = float(packet.dts * packet.time_base) - origin
                    if shift is None:
                        shift = dts + origin  # the keyframe: `held` starts with it among video packets
                        for early in early_audio:
                            if float(early.pts * early.time_base) - origin >= key - _EPS:
                                send(early)
                        early_audio = []
                    if dts >= end - _EPS:  # decode order: every frame shown before `end` is out
                        if not video_done:
                            video_done = True
                            for late in late_audio:  # audio past `end`, still inside the last frames shown
                                if float(late.pts * late.time_base) - origin < clip_end - _EPS:
                                    send(late)
                            late_audio = []
                        if audio is None or t > clip_end + _INTERLEAVE_S:  # the audio has long passed too
                            break
                        continue
                    clip_end = max(clip_end, t + float((packet.duration or 0) * packet.time_base))
                    send(packet)
                else:
                    if shift is None:
                        early_audio.append(packet)
                    elif t < key - _EPS:  # audio starts with the first frame shown
                        continue
                    elif video_done:
                        if t >= clip_end - _EPS:
                            break
                        send(packet)
                    elif t >= end - _EPS:
                        late_audio.append(packet)  # B-frames may still extend the clip past `end`
                    else:
                        send(packet)
            for late in late_audio:
                if float(late.pts * late.time_base) - origin < clip_end - _EPS:
                    send(late)
            if shift is None:
                raise HLError(f"{source}: no video packets from {key:.3f} s on")
    return key, clip_end, "copy", (start, end)


def _reencode(source: Path, start: float, end: float, tmp: Path) -> tuple[float, float, str, tuple]:
    import av
    from av.video.frame import PictureType

    with _open(source) as inp:
        video = inp.streams.video[0]
        audio = inp.streams.audio[0] if inp.streams.audio else None
        origin = _origin(video)
        rate = video.average_rate or video.guessed_rate or Fraction(25)
        with av.open(str(tmp), "w", format="mp4") as out:
            ov = out.add_stream("libx264", rate=rate)
            ov.width, ov.height, ov.pix_fmt = video.codec_context.width, video.codec_context.height, "yuv420p"
            ov.options = {"preset": "veryfast", "crf": "18"}
            oa = None
            if audio is not None:
                layout = audio.layout.name if audio.layout.nb_channels <= 2 else "stereo"
                oa = out.add_stream("aac", rate=audio.rate, layout=layout)
            _seek_before(inp, video, start, origin)
            frames, samples, first, last = 0, 0, None, start
            frame_s = float(1 / rate)
            video_done = audio_done = False
            for packet in inp.demux([s for s in (video, audio) if s is not None]):
                for frame in packet.decode():
                    if frame.pts is None:
                        continue
                    t = float(frame.pts * frame.time_base) - origin
                    if packet.stream.index == video.index:
                        if t < start - frame_s / 2 or video_done:
                            continue
                        if t >= end - frame_s / 2:
                            video_done = True
                            continue
                        first = t if first is None else first
                        last = t + frame_s
                        frame = frame.reformat(format="yuv420p") if frame.format.name != "yuv420p" else frame
                        frame.pts, frame.time_base = frames, Fraction(1, 1) / rate
                        frame.pict_type = PictureType.NONE
                        frames += 1
                        for p in ov.encode(frame):
                            out.mux(p)
                    elif oa is not None and not audio_done:
                        samples, audio_done = _encode_audio(frame, t, start, end, samples, oa, out)
                if video_done and (oa is None or audio_done):
                    break
            for p in ov.encode():
                out.mux(p)
            if oa is not None:
                for p in oa.encode():
                    out.mux(p)
            if first is None:
                raise HLError(f"{source}: no frames in [{start:.3f}, {end:.3f}) s")
    return first, last, "reencode", (start, end)


def _encode_audio(frame, t: float, start: float, end: float, written: int, oa, out) -> tuple[int, bool]:
    """Encode the part of an audio frame inside [start, end); returns (samples written so far, past the end)."""
    import av

    rate = frame.sample_rate
    data = frame.to_ndarray()  # [channels, n] planar or [1, n * channels] packed
    planar = frame.format.is_planar
    n = frame.samples
    a = int(round((start - t) * rate))
    b = int(round((end - t) * rate))
    lo, hi = max(0, a), min(n, b)
    if hi > lo:
        cut = data[:, lo:hi] if planar else data[:, lo * len(frame.layout.channels):hi * len(frame.layout.channels)]
        piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(cut), format=frame.format.name,
                                           layout=frame.layout.name)
        piece.sample_rate, piece.pts, piece.time_base = rate, written, Fraction(1, rate)
        written += hi - lo
        for p in oa.encode(piece):
            out.mux(p)
    return written, b <= n
