"""Options that several commands share, declared once, and the one place errors become exit statuses."""
from __future__ import annotations

from pathlib import Path

import click

from hl.common import HLError


class UserError(click.ClickException):
    """What the user sees of an :class:`hl.common.HLError` (or an OS error naming a file): ``hl: error: ...`` on
    stderr, exit status 2, no traceback."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"hl: error: {self.format_message()}", err=True, file=file)


class Group(click.Group):
    """A click group that turns the library's one-line errors into :class:`UserError` at the CLI's edge."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HLError as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise UserError(f"{where}{exc.strerror or exc}") from None


class IntList(click.ParamType):
    """Comma-separated integers, e.g. ``0,1,2`` -> (0, 1, 2)."""

    name = "INTS"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            out = tuple(int(v) for v in str(value).split(",") if v.strip())
        except ValueError:
            self.fail(f"comma-separated integers expected, got {value!r}", param, ctx)
        if not out:
            self.fail("give at least one", param, ctx)
        return out


class NameList(click.ParamType):
    """Comma-separated names, e.g. ``i3d,i3d_flow`` -> ("i3d", "i3d_flow"); '' -> ()."""

    name = "NAMES"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        return tuple(v.strip() for v in str(value).split(",") if v.strip())


def seeds_option(default: str):
    return click.option("--seeds", type=IntList(), default=default, show_default=True,
                        help="Seeds to train (and report mean +- std over).")


def cluster_options(f):
    """--scheduler and --workers: where the Dask work runs."""
    f = click.option("--workers", type=int, default=None,
                     help="Worker processes of the local Dask cluster (default: chosen for the work).")(f)
    return click.option("--scheduler", default=None,
                        help="Address of an existing Dask scheduler (tcp://host:port) instead of a local cluster.")(f)


weights_dir_option = click.option(
    "--weights-dir", type=click.Path(path_type=Path), default=None, envvar="HL_WEIGHTS_DIR",
    help="Where checkpoints live (default: the user cache dir; env HL_WEIGHTS_DIR).")


def quiet_option(f):
    return click.option("--quiet", is_flag=True, help="No progress display.")(f)


def log_format_option(f):
    """--log-format auto|bar|plain|json (env HL_LOG_FORMAT): how progress is shown (:mod:`.progress`)."""
    return click.option(
        "--log-format", type=click.Choice(["auto", "bar", "plain", "json"], case_sensitive=False), default="auto",
        envvar="HL_LOG_FORMAT", show_default=True,
        help="Progress as bars (bar), one line per finished item plus periodic summaries (plain: for log files) "
             "or JSON lines (json). auto: bars on a terminal, plain otherwise. Env HL_LOG_FORMAT.")(f)


def explicit(ctx: click.Context, names) -> list[str]:
    """The options among `names` that the user gave on the command line (not left at their default)."""
    from click.core import ParameterSource

    return [n for n in names if ctx.get_parameter_source(n) not in (ParameterSource.DEFAULT, None)]


def extraction_options(f):
    """Every option of `hl extract` that says how features are made, shared by every command that extracts
    (`hl extract`, `hl highlights`): --extractors, --segment-seconds, --segments, --weights-dir, --scheduler,
    --workers, --device, --precision, --batch-size, --random-weights, --retry-failed. `hl highlights` makes the
    features its run was trained on: there the naming options default to the run's, and a value that differs
    from what the run's features were made with is refused with one line."""
    options = [
        click.option("--extractors", type=NameList(), default=None,
                     help="Comma-separated, e.g. i3d,pann,tased. Default: every pretrained extractor whose weights "
                          "are present, else the weight-free stats,stats_audio (highlights: the run's)."),
        click.option("--segment-seconds", default=None, type=float,
                     help="Fixed window length [default: 2; highlights: the run's]."),
        click.option("--segments", "segments_manifest", type=click.Path(exists=True, path_type=Path), default=None,
                     help="A manifest (Parquet) whose start/end windows replace the fixed windows for its videos."),
        weights_dir_option,
        cluster_options,
        click.option("--device", default="cpu", show_default=True,
                     help="cpu or cuda (GPU tasks carry a GPU resource)."),
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
                     show_default=True,
                     help="auto: bf16 where the CPU/GPU computes it natively, else fp32 (highlights: the run's)."),
        click.option("--batch-size", type=int, default=8, show_default=True, help="Clips per forward pass."),
        click.option("--random-weights", is_flag=True,
                     help="Run pretrained extractors with random weights when theirs are absent (speed tests "
                          "only; highlights: needed for a run trained on such features)."),
        click.option("--retry-failed", is_flag=True, help="Try again the videos that failed before."),
    ]
    for option in reversed(options):
        f = option(f)
    return f
