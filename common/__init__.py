"""What every part of hl shares: the one user-facing error type and atomic file writes."""
from .errors import HLError, StorageError, one_line, storage_error
from .files import atomic_path, clean_stale_temps, is_plain_name, is_temp, write_bytes, write_text

__all__ = ["HLError", "StorageError", "atomic_path", "clean_stale_temps", "is_plain_name", "is_temp", "one_line",
           "storage_error", "write_bytes", "write_text"]
