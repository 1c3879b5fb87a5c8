"""hl: video highlight detection. Extract features once into a cache, then train fast heads from it.

The Python API mirrors the ``hl`` command, with the same defaults (:mod:`hl.api`)::

    import hl

    report = hl.extract("videos/", "cache/")                  # hl extract --videos videos/ --out cache/
    trained = hl.train_head("cache/", "run/")                  # hl train-head --cache cache/ --out run/
    table = hl.evaluate("run/").summary                        # hl eval --run run/
    scores = hl.predict("run/", "cache/", "pred.json")         # hl predict --run run/ --cache cache/ --out pred.json
    found = hl.highlights("new_videos/", "run/", "out/")       # hl highlights new_videos/ --run run/ --out out/

They return plain objects (paths, DataFrames, dataclasses) and print nothing unless asked (``progress=``).
``hl.extract`` is also the name of the extraction engine's subpackage (``hl.extract.decode``, ...): that module
is callable, so ``hl.extract(...)`` runs the extraction stage and ``import hl.extract.decode`` still works.
Nothing heavy is imported until a function is used.
"""
from __future__ import annotations

import importlib

__all__ = ["extract", "train_head", "evaluate", "predict", "highlights"]


def __getattr__(name: str):
    if name == "extract":
        return importlib.import_module("hl.extract")  # the subpackage; calling it calls hl.api.extract
    if name in __all__:
        return getattr(importlib.import_module("hl.api"), name)
    raise AttributeError(f"module 'hl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
