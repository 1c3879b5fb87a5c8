"""Progress of long work, in the form its reader needs: bars on a terminal, plain lines in a batch job's log,
JSON lines for machines.

    console = Console("auto")                    # bar on a terminal, plain otherwise (--log-format, HL_LOG_FORMAT)
    stage = console.stage("extract", total=12, unit="video")
    stage.item("clip_01", "ok", "42 segments, 3.1 s", segments=42)
    stage.close()                                # the stage's last summary line
    console.close()

* ``bar``: a tqdm bar per stage on the stream, a line per finished item above it.
* ``plain``: one line per finished item and, every ``summary_every`` seconds and at the end, a summary (done,
  failed, rate, time left). Never a carriage return: a log file reads line by line.
* ``json``: one JSON object per line (``event``: start, item, summary, end, notice, dashboard, result).

While a console is open it also shows what :mod:`hl.pipelines.cluster` announces (the address of the Dask
dashboard of a local cluster hl starts, and how to reach it from another machine).
"""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from hl.common import HLError

LOG_FORMATS = ("auto", "bar", "plain", "json")
SUMMARY_EVERY_S = 30.0


def resolve_format(log_format: str | None, stream: TextIO) -> str:
    """``auto`` -> ``bar`` when `stream` is a terminal, else ``plain``; other names are checked and kept."""
    fmt = (log_format or "auto").strip().lower()
    if fmt not in LOG_FORMATS:
        raise HLError(f"unknown log format {log_format!r} ({', '.join(LOG_FORMATS)})")
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return "bar" if isatty is not None and isatty() else "plain"
    return fmt


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


class Console:
    """Where a command's progress, notices and results go (see the module docstring). ``quiet`` hides the
    stages (bars, item lines, summaries) but not notices or results. Results (:meth:`result`) go to `out`
    (stdout), everything else to `stream` (stderr)."""

    def __init__(self, log_format: str | None = "auto", stream: TextIO | None = None, quiet: bool = False,
                 summary_every: float = SUMMARY_EVERY_S, out: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stderr
        self.out = out
        self.format = resolve_format(log_format, self.stream)
        self.quiet = quiet
        self.summary_every = summary_every
        self.clock = clock
        self._stage: Stage | None = None
        self._lock = threading.RLock()
        self._cluster_log = _ClusterAnnouncements(self)
        self._cluster_log.attach()

    # -- lines ------------------------------------------------------------------------------------------
    def emit(self, text: str, event: str = "info", **fields: Any) -> None:
        """One line on the stream: `text` (bar, plain) or ``{"event": event, **fields}`` (json)."""
        with self._lock:
            if self.format == "json":
                line = json.dumps({"event": event, **fields}, default=str, ensure_ascii=False)
            else:
                line = text
            bar = self._stage.bar if self._stage is not None else None
            if bar is not None:
                bar.write(line, file=self.stream)
            else:
                print(line, file=self.stream, flush=True)

    def notice(self, line: str) -> None:
        self.emit(f"NOTICE: {line}", "notice", message=line)

    def say(self, line: str) -> None:
        """An informative line (json: ``{"event": "info", "message": ...}``)."""
        self.emit(line, "info", message=line)

    def result(self, line: str, **fields: Any) -> None:
        """A line of the command's outcome, on stdout (json: ``{"event": "result", "message": ...}``)."""
        out = self.out or sys.stdout
        text = json.dumps({"event": "result", "message": line, **fields}, default=str, ensure_ascii=False) \
            if self.format == "json" else line
        print(text, file=out, flush=True)

    # -- stages -----------------------------------------------------------------------------------------
    def stage(self, name: str, total: int | None = None, unit: str = "video") -> Stage:
        """Start showing stage `name` (the previous one is closed)."""
        with self._lock:
            if self._stage is not None:
                self._stage.close()
            self._stage = Stage(self, name, total, unit)
            return self._stage

    def close(self) -> None:
        with self._lock:
            if self._stage is not None:
                self._stage.close()
                self._stage = None
        self._cluster_log.detach()

    def __enter__(self) -> Console:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- adapters to the library's callbacks ------------------------------------------------------------
    def extract_reporter(self, name: str = "extract"):
        """A :class:`hl.pipelines.stages.extract.Reporter` that shows extraction as stage `name`."""
        from hl.pipelines.stages.extract import Reporter

        holder: dict[str, Stage] = {}

        def start(total: int, skipped: int) -> None:
            holder["stage"] = self.stage(name, total, "video")

        def done(outcome, done: int, total: int) -> None:
            detail = {"ok": f"{outcome.segments} segments, {outcome.seconds:.1f} s",
                      "skipped": "already cached", "failed": outcome.error}[outcome.status]
            holder["stage"].item(outcome.video_id, outcome.status, detail, segments=outcome.segments,
                                 seconds=round(outcome.seconds, 3), error=outcome.error or None)

        def running(video_id: str, fraction: float) -> None:
            if "stage" in holder:
                holder["stage"].running(video_id, fraction)

        return Reporter(start=start, video_done=done, video_progress=running)

    def train_progress(self, name: str = "train") -> Callable[[dict, int, int], None]:
        """A ``progress(result, done, total)`` callback for the training stages: one item per head."""
        holder: dict[str, Stage] = {}

        def progress(res: dict, done: int, total: int) -> None:
            stage = holder.get("stage")
            if stage is None or stage.closed or stage.total != total:  # a new phase (selection, then training)
                holder["stage"] = stage = self.stage(name, total, "head")
                stage.start = stage.last_summary = stage.start - float(res.get("seconds", 0))  # began with this head
            detail = f"{res['epochs']} epochs, {res['train_videos']} train / {res['test_videos']} test videos, " \
                if "epochs" in res and "train_videos" in res else ""
            what = res.get("label") or f"seed {res['seed']}"  # selection tasks carry their own label
            holder["stage"].item(f"{res['domain']} {what}", "ok",
                                 f"{detail}{res.get('seconds', 0):.1f} s", domain=res["domain"], seed=res.get("seed"),
                                 seconds=round(float(res.get("seconds", 0)), 3))

        return progress


class Stage:
    """One stage of work: items finish one by one (in any order); shown as the console's format says."""

    def __init__(self, console: Console, name: str, total: int | None, unit: str):
        self.console, self.name, self.total, self.unit = console, name, total, unit
        self.done = self.failed = self.worked = 0
        self.start = self.last_summary = console.clock()
        self.running_now: dict[str, float] = {}
        self.bar = None
        self.closed = False
        if console.quiet:
            return
        if console.format == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, desc=name, file=console.stream, dynamic_ncols=True)
        elif console.format == "json":
            console.emit("", "start", stage=name, total=total, unit=unit)
        else:
            console.emit(f"{name}: {total if total is not None else '?'} {unit}s")

    def item(self, name: str, status: str, detail: str = "", **fields: Any) -> None:
        """Item `name` finished with `status` (ok, skipped, failed)."""
        c = self.console
        with c._lock:
            self.done += 1
            self.failed += status == "failed"
            self.worked += status != "skipped"
            self.running_now.pop(name, None)
            if c.quiet or self.closed:
                return
            of = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
            if c.format == "json":
                c.emit("", "item", stage=self.name, id=name, status=status, done=self.done, total=self.total,
                       detail=detail, **{k: v for k, v in fields.items() if v is not None})
            else:
                c.emit(f"[{of}] {status:<7} {name}: {detail}" if c.format == "bar"
                       else f"{self.name} [{of}] {status:<7} {name}: {detail}")
            if self.bar is not None:
                self.bar.update(1)
                self._postfix()
            else:
                self._maybe_summary()
            if self.total is not None and self.done >= self.total:
                self.close()  # the stage's last line comes when its last item does, not when the next starts

    def running(self, name: str, fraction: float) -> None:
        """Item `name` is `fraction` done (bars show it; the other formats only use it as a clock tick)."""
        c = self.console
        with c._lock:
            self.running_now[name] = fraction
            if c.quiet or self.closed:
                return
            if self.bar is not None:
                self._postfix()
            else:
                self._maybe_summary()

    def _postfix(self) -> None:
        shown = ", ".join(f"{v[-24:]} {f:.0%}" for v, f in list(self.running_now.items())[:3])
        self.bar.set_postfix_str(shown, refresh=True)

    def _maybe_summary(self) -> None:
        if self.console.clock() - self.last_summary >= self.console.summary_every:
            self.summary()

    def summary(self, final: bool = False) -> None:
        """The plain/json summary line: done, failed, rate and time left (or the total time when `final`)."""
        c = self.console
        now = c.clock()
        self.last_summary = now
        elapsed = now - self.start
        rate = self.worked / elapsed if elapsed > 0 else 0.0
        left = None
        if not final and self.total is not None and rate > 0:
            left = (self.total - self.done) / rate
        if c.format == "json":
            c.emit("", "end" if final else "summary", stage=self.name, done=self.done, failed=self.failed,
                   total=self.total, rate_per_s=round(rate, 4), elapsed_s=round(elapsed, 3),
                   left_s=None if left is None else round(left, 1))
            return
        of = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        text = f"{self.name}: {of} {self.unit}s done, {self.failed} failed"
        if final:
            text += f", in {_duration(elapsed)}"
        else:
            text += f", {rate * 60:.1f} {self.unit}s/min"
            text += f", about {_duration(left)} left" if left is not None else ", time left unknown"
        c.emit(text)

    def close(self) -> None:
        c = self.console
        with c._lock:
            if self.closed:
                return
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            elif not c.quiet:
                self.summary(final=True)
            self.closed = True
            if c._stage is self:
                c._stage = None


class _ClusterAnnouncements(logging.Handler):
    """Shows the records :mod:`hl.pipelines.cluster` logs at INFO (the dashboard of a local cluster) through the
    console while it is open."""

    def __init__(self, console: Console):
        super().__init__(logging.INFO)
        self.console = console
        self.logger = logging.getLogger("hl.pipelines.cluster")
        self._saved: tuple[int, bool] | None = None

    def attach(self) -> None:
        self._saved = (self.logger.level, self.logger.propagate)
        if self.logger.getEffectiveLevel() > logging.INFO:
            self.logger.setLevel(logging.INFO)
            self.logger.propagate = False  # shown here, not a second time by the root handler
        self.logger.addHandler(self)

    def detach(self) -> None:
        self.logger.removeHandler(self)
        if self._saved is not None:
            self.logger.setLevel(self._saved[0])
            self.logger.propagate = self._saved[1]
            self._saved = None

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "hl_fields", None)
        if record.levelno < logging.WARNING and fields:
            fields = dict(fields)
            self.console.emit(record.getMessage(), fields.pop("event", "info"), **fields)
        elif record.levelno >= logging.WARNING:
            self.console.emit(f"WARNING: {record.getMessage()}", "warning", message=record.getMessage())
