"""Stage 1's engine: decoding, segments, backbones, weights and extractors (:mod:`hl.pipelines.stages.extract`
runs it over a folder of videos on Dask).

The module itself is callable: ``hl.extract(videos, out, ...)`` is :func:`hl.api.extract`, the Python form of
``hl extract``.
"""
import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        """hl.extract(videos, out, ...): see :func:`hl.api.extract`."""
        from hl.api import extract

        return extract(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
