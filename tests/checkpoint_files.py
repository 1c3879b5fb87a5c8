"""Checkpoint files shaped like ones found in the wild: one whose unpickling would run a command, and the numpy
1.x pickling of arrays that released checkpoints (PANNs Cnn14) carry beside their weights."""
import os
import pickle
import types
from pathlib import Path

import torch

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 1.26
    from numpy.core.multiarray import _reconstruct


class RunsCommand:
    """Unpickled, calls os.system(command): what a hostile checkpoint can do under torch.load(weights_only=False)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def code_running_checkpoints(folder: Path, marker: Path, state: dict) -> list[Path]:
    """Files that would create `marker` when unpickled: a torch.save'd checkpoint carrying `state` plus the
    payload, and a bare pickle of the payload."""
    payload = RunsCommand(f"touch {marker}")
    saved = folder / "hostile.pth"
    torch.save({"model": state, "iteration": payload}, saved)
    bare = folder / "hostile.pickle"
    bare.write_bytes(pickle.dumps(payload, protocol=2))
    return [saved, bare]


class _Numpy1Pickler(pickle._Pickler):
    """Names numpy's array constructor as numpy 1.x did (numpy.core.multiarray._reconstruct)."""

    def save_global(self, obj, name=None):
        if obj is _reconstruct:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def save_as_numpy1(obj, path: Path) -> None:
    """torch.save(obj, path), numpy arrays in it pickled the way numpy 1.x pickled them."""
    torch.save(obj, path, pickle_module=types.SimpleNamespace(Pickler=_Numpy1Pickler, __name__="pickle"))
