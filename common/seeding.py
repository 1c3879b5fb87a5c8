"""Seeded work on torch's process-wide generator, one at a time per process.

    with seeded(seed):                  # torch's generator seeded; its state is restored afterwards
        model = Net(); train(model)     # initialisation and dropout draw from it

Several threads of one process (a Dask worker started with ``--nthreads 2`` or more) would otherwise interleave
their draws, and the weights would depend on timing. torch is imported on first use only.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.RLock()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    import torch

    with _LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield
