"""The highlights report: one static HTML page a person can browse, no server and no external assets.

Per video: the score curve over time as inline SVG with the moments marked, then one card per moment with
its thumbnail, times and score, the pixel-level map over the frame when the head predicts maps, a link to the
clip (when cut) and to the source video at that time. Images are JPEG files in ``assets/`` next to the page,
linked by relative paths, so the folder can be moved or zipped as a whole.

Frames for thumbnails are read by index (a few per video), so a long video is never held in memory.
"""
from __future__ import annotations

import datetime as _dt
import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from hl.common import atomic_path, write_text

THUMB_SHORT_SIDE = 180
CURVE_POINTS = 1500  # a longer score curve is max-pooled to this many points


@dataclass
class Card:
    """One moment as the report shows it; paths are relative to the report's folder."""

    rank: int
    start: float
    end: float
    score: float
    mean_score: float
    thumbnail: str | None = None
    map_image: str | None = None
    clip: str | None = None
    clip_start: float | None = None
    clip_end: float | None = None


@dataclass
class VideoEntry:
    video_id: str
    path: str  # the source video
    duration: float
    scores: np.ndarray  # [S]
    segments: np.ndarray  # [S, 2] seconds
    cards: list[Card] = field(default_factory=list)
    heads: str = ""


# -- images ---------------------------------------------------------------------------------------------
def grab_frames(path: str | Path, times, short_side: int = THUMB_SHORT_SIDE) -> np.ndarray:
    """uint8 RGB frames [N, H, W, 3] of `path` at `times` (seconds), decoded by index at a small size."""
    from hl.extract.decode import VideoSource

    source = VideoSource(path, short_side=short_side)
    try:
        info = source.info
        idx = np.clip(np.floor(np.asarray(times, dtype=np.float64) * info.fps).astype(np.int64), 0,
                      info.num_frames - 1)
        return source.frames(idx)
    finally:
        source.close()


def save_jpeg(image: np.ndarray, path: str | Path, quality: int = 82) -> Path:
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="JPEG", quality=quality)
    return path


def overlay_map(frame: np.ndarray, saliency: np.ndarray, alpha: float = 0.55,
                view: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0)) -> np.ndarray:
    """The frame [H, W, 3] with a pixel-level map (any size, uint8 or float) drawn over it as a heat map; the
    map is scaled to its own [min, max] so that its shape shows whatever its range. `view` = (top, bottom, left,
    right), as fractions of the frame, is the region the map covers (a decoder that sees a centre crop)."""
    from matplotlib import colormaps
    from PIL import Image

    m = np.asarray(saliency, dtype=np.float32)
    m = (m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else np.zeros_like(m)
    h, w = frame.shape[:2]
    top, bottom, left, right = view
    y0, y1, x0, x1 = round(top * h), round(bottom * h), round(left * w), round(right * w)
    region = np.asarray(Image.fromarray((m * 255).astype(np.uint8)).resize((max(1, x1 - x0), max(1, y1 - y0)),
                                                                           Image.BILINEAR), np.float32) / 255
    m = np.zeros((h, w), np.float32)
    m[y0:y1, x0:x1] = region[: y1 - y0, : x1 - x0]
    heat = colormaps["inferno"](m)[..., :3] * 255.0
    weight = alpha * m[..., None] ** 0.5  # cold areas stay visible
    return np.clip(frame * (1 - weight) + heat * weight, 0, 255).astype(np.uint8)


# -- text -----------------------------------------------------------------------------------------------
def clock(seconds: float) -> str:
    """12.3 -> '0:12.3'; 3725 -> '1:02:05.0'."""
    seconds = max(0.0, float(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h >= 1 else f"{int(m)}:{s:04.1f}"


def _href(path: str) -> str:
    return quote(path.replace(os.sep, "/"), safe="/#=,.:-_~")


def _ticks(duration: float, target: int = 8) -> list[float]:
    steps = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200]
    step = next((s for s in steps if duration / s <= target), steps[-1] * math.ceil(duration / steps[-1] / target))
    return [k * step for k in range(int(duration // step) + 1)]


def score_curve_svg(scores, segments, duration: float, cards: list[Card], width: int = 960,
                    height: int = 170) -> str:
    """Inline SVG: score per segment (at its middle) over time, moments shaded and numbered."""
    scores = np.asarray(scores, dtype=np.float64)
    mids = np.asarray(segments, dtype=np.float64).mean(axis=1) if len(scores) else np.zeros(0)
    if len(scores) > CURVE_POINTS:  # max-pool: peaks stay visible
        bins = np.linspace(0, len(scores), CURVE_POINTS + 1).astype(int)
        scores = np.maximum.reduceat(scores, bins[:-1])
        mids = np.add.reduceat(mids, bins[:-1]) / np.diff(bins)
    left, right, top, bottom = 40, 22, 10, 24
    pw, ph = width - left - right, height - top - bottom
    lo = min(0.0, float(scores.min())) if len(scores) else 0.0
    hi = max(1.0, float(scores.max())) if len(scores) else 1.0
    duration = max(duration, 1e-6)

    def x(t: float) -> float:
        return left + pw * min(max(t, 0.0), duration) / duration

    def y(s: float) -> float:
        return top + ph * (1.0 - (s - lo) / (hi - lo))

    parts = [f'<svg class="curve" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="highlight score over time" xmlns="http://www.w3.org/2000/svg">']
    for c in cards:
        x0, x1 = x(c.start), x(c.end)
        parts.append(f'<rect class="moment" data-rank="{c.rank}" x="{x0:.1f}" y="{top}" '
                     f'width="{max(x1 - x0, 3.0):.1f}" height="{ph}"><title>#{c.rank} {clock(c.start)}-'
                     f'{clock(c.end)} score {c.score:.3f}</title></rect>')
        parts.append(f'<text class="rank" x="{(x0 + x1) / 2:.1f}" y="{top + 12}">{c.rank}</text>')
    for s in (lo, (lo + hi) / 2, hi):
        parts.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{y(s):.1f}" y2="{y(s):.1f}"/>'
                     f'<text class="ylab" x="{left - 4}" y="{y(s) + 4:.1f}">{s:.2g}</text>')
    for t in _ticks(duration):
        parts.append(f'<line class="tick" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top + ph}" y2="{top + ph + 4}"/>'
                     f'<text class="xlab" x="{x(t):.1f}" y="{height - 6}">{clock(t).removesuffix(".0")}</text>')
    points = " ".join(f"{x(t):.1f},{y(s):.1f}" for t, s in zip(mids, scores))
    parts.append(f'<polyline class="score" points="{points}"/>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px}header h1{margin:0 0 4px;font-size:20px}
header p{margin:0;color:#b8c0d0;font-size:13px}main{padding:12px 24px 40px;max-width:1100px}
table.index{border-collapse:collapse;background:#fff;margin:8px 0 16px;font-size:13px}
table.index td,table.index th{padding:3px 10px;border-bottom:1px solid #e3e6eb;text-align:left}
section.video{background:#fff;border-radius:8px;padding:12px 16px;margin:14px 0;box-shadow:0 1px 2px #0001}
section.video h2{font-size:16px;margin:0 0 2px;word-break:break-all}.meta{color:#667;font-size:12px;margin:0 0 6px}
svg.curve{display:block;background:#fafbfc;border:1px solid #e3e6eb;border-radius:4px}
svg .score{fill:none;stroke:#2563eb;stroke-width:1.6}svg .moment{fill:#f59e0b;fill-opacity:.28}
svg .grid{stroke:#e3e6eb}svg .tick{stroke:#889}svg text{font-size:10px;fill:#667}
svg .ylab{text-anchor:end}svg .xlab{text-anchor:middle}svg .rank{text-anchor:middle;font-weight:700;fill:#b45309}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:10px}
figure.card{margin:0;width:200px;background:#fafbfc;border:1px solid #e3e6eb;border-radius:6px;overflow:hidden}
figure.card img{display:block;width:100%;height:auto}figcaption{padding:6px 8px;font-size:12px}
figcaption .time{font-weight:600}figcaption .score{float:right;color:#b45309;font-weight:700}
figcaption a{margin-right:8px}.none{color:#889}.failed li{color:#b91c1c;word-break:break-all}
"""


def _card_html(video: VideoEntry, card: Card, out_dir: Path) -> str:
    where = f"{clock(card.start)} – {clock(card.end)}"
    imgs = ""
    if card.thumbnail:
        imgs += (f'<img class="thumb" src="{_href(card.thumbnail)}" loading="lazy" '
                 f'alt="frame of moment {card.rank} of {html.escape(video.video_id)}">')
    if card.map_image:
        imgs += (f'<img class="map" src="{_href(card.map_image)}" loading="lazy" '
                 f'alt="pixel-level highlight map of moment {card.rank}">')
    links = []
    if card.clip:
        actual = ""
        if card.clip_start is not None and card.clip_end is not None:
            actual = f' title="cut {clock(card.clip_start)} – {clock(card.clip_end)}"'
        links.append(f'<a class="clip" href="{_href(card.clip)}"{actual}>clip</a>')
    source = os.path.relpath(os.path.abspath(video.path), os.path.abspath(out_dir))
    links.append(f'<a class="source" href="{_href(source)}#t={card.start:.1f},{card.end:.1f}">source at '
                 f'{clock(card.start)}</a>')
    return (f'<figure class="card" data-rank="{card.rank}" data-start="{card.start:.3f}" data-end="{card.end:.3f}">'
            f'{imgs}<figcaption><span class="score" title="max segment score; mean {card.mean_score:.3f}">'
            f'{card.score:.3f}</span><span class="time">#{card.rank} {where}</span> '
            f'<span class="len">({card.end - card.start:.1f} s)</span><br>{"".join(links)}</figcaption></figure>')


def _anchor(video_id: str) -> str:
    return "v-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in video_id)


def render_report(videos: list[VideoEntry], out_dir: str | Path, title: str = "Highlights",
                  details: dict | None = None, failed: dict[str, str] | None = None) -> str:
    """The report page as a string (links relative to `out_dir`)."""
    out_dir = Path(out_dir)
    failed = failed or {}
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    info = " · ".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in (details or {}).items())
    body = [f"<header><h1>{html.escape(title)}</h1><p>{info}{' · ' if info else ''}"
            f"{len(videos)} videos · {stamp}</p></header><main>"]
    if len(videos) > 1:
        rows = "".join(
            f'<tr><td><a href="#{_anchor(v.video_id)}">{html.escape(v.video_id)}</a></td><td>{clock(v.duration)}'
            f'</td><td>{len(v.cards)}</td><td>{max((c.score for c in v.cards), default=float("nan")):.3f}</td></tr>'
            for v in videos)
        body.append(f'<table class="index"><tr><th>video</th><th>length</th><th>moments</th><th>best</th></tr>'
                    f"{rows}</table>")
    for v in videos:
        cards = "".join(_card_html(v, c, out_dir) for c in v.cards) or '<p class="none">no moments</p>'
        heads = f" · heads: {html.escape(v.heads)}" if v.heads else ""
        body.append(
            f'<section class="video" id="{_anchor(v.video_id)}" data-video-id="{html.escape(v.video_id)}">'
            f"<h2>{html.escape(v.video_id)}</h2><p class=\"meta\">{html.escape(v.path)} · {clock(v.duration)} · "
            f"{len(v.scores)} segments{heads}</p>"
            f"{score_curve_svg(v.scores, v.segments, v.duration, v.cards)}<div class=\"cards\">{cards}</div></section>"
        )
    if failed:
        items = "".join(f"<li>{html.escape(k)}: {html.escape(e)}</li>" for k, e in failed.items())
        body.append(f'<section class="failed"><h2>Not scored ({len(failed)})</h2><ul>{items}</ul></section>')
    body.append("</main>")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(videos: list[VideoEntry], out_dir: str | Path, title: str = "Highlights",
                 details: dict | None = None, failed: dict[str, str] | None = None,
                 name: str = "report.html") -> Path:
    out_dir = Path(out_dir)
    return write_text(out_dir / name, render_report(videos, out_dir, title, details, failed))
