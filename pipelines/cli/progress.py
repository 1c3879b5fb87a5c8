"""Progress display for long work: one overall bar, a line per finished video, running videos' progress."""
from __future__ import annotations

import sys
import threading

from tqdm import tqdm


class ExtractProgress:
    """Draws extraction progress on stderr: overall bar + per-video percentages + a line per video."""

    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.bar: tqdm | None = None
        self.running: dict[str, float] = {}
        self._lock = threading.Lock()

    def notice(self, line: str) -> None:
        print(f"NOTICE: {line}", file=self.stream, flush=True)

    def _start(self, total: int, skipped: int) -> None:
        if self.enabled:
            self.bar = tqdm(total=total, unit="video", desc="extract", file=self.stream, dynamic_ncols=True)

    def _video_progress(self, video_id: str, fraction: float) -> None:
        with self._lock:
            self.running[video_id] = fraction
            self._refresh()

    def _video_done(self, outcome, done: int, total: int) -> None:
        with self._lock:
            self.running.pop(outcome.video_id, None)
            if self.bar is None:
                return
            detail = {"ok": f"{outcome.segments} segments, {outcome.seconds:.1f} s",
                      "skipped": "already cached", "failed": outcome.error}[outcome.status]
            self.bar.write(f"[{done}/{total}] {outcome.status:<7} {outcome.video_id}: {detail}", file=self.stream)
            self.bar.update(1)
            self._refresh()

    def _refresh(self) -> None:
        if self.bar is not None:
            shown = ", ".join(f"{v[-24:]} {f:.0%}" for v, f in list(self.running.items())[:3])
            self.bar.set_postfix_str(shown, refresh=True)

    def reporter(self):
        from hl.pipelines.stages.extract import Reporter

        return Reporter(start=self._start, video_done=self._video_done, video_progress=self._video_progress)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
