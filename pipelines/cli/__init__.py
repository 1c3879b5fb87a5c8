"""The user interface: the `hl` command (:mod:`.main`), its shared options, progress display and the demo."""
from .main import highlights_command, main

__all__ = ["highlights_command", "main"]
