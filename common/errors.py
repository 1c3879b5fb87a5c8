"""The one error type hl raises for a problem the user can fix: a bad request, a bad file, a missing input.

Its message is one line that names the file or option and the cause. The command line shows it as
``hl: error: <message>`` with exit status 2 and no traceback; the library raises it for callers to catch.
"""
from __future__ import annotations


class HLError(Exception):
    """A problem with the request or an input, said in one line (the CLI prints it without a traceback).
    A message may add indented detail lines below the first (e.g. every difference of a checkpoint)."""


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (or just the type): any exception, shown in one line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
