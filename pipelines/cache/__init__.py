"""The feature cache: the one contract between extraction and everything after it (see :mod:`.store`).

    store = FeatureStore("CACHE")
    store.index()                       # one row per (video, extractor) unit, as a DataFrame
    store.features("v1", "i3d")         # float32 [S, 1024]
    store.origin("v1", "i3d")           # which settings and weights made them

:mod:`.umt_import` brings released features (the UMT release) into a cache in the same format.
"""
from .store import INDEX_SCHEMA, FeatureOrigin, FeatureStore, config_hash, fingerprint, video_key

__all__ = ["INDEX_SCHEMA", "FeatureOrigin", "FeatureStore", "config_hash", "fingerprint", "video_key"]
