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


class StorageError(HLError):
    """A file hl must write cannot be written (a full disk, a read-only or unwritable folder): no single input is
    at fault, so a batch stops at the first one instead of failing every item the same way."""


def storage_error(path, exc: OSError) -> StorageError:
    """``<path>: cannot write (<cause>)`` in one line, for an OSError raised writing `path` (h5py's too, whose
    message buries the system's)."""
    import errno as _errno
    import os
    import re

    code = exc.errno
    if code is None:  # h5py: "... errno = 28, error message = 'No space left on device' ..."
        found = re.search(r"errno = (\d+)", str(exc))
        code = int(found.group(1)) if found else None
    cause = os.strerror(code) if code else one_line(exc)
    name = _errno.errorcode.get(code, "") if code else ""
    return StorageError(f"{path}: cannot write ({cause}{', ' + name if name else ''})")
