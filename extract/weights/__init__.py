"""Pretrained weights: the known public checkpoints, a weights directory, download, add and check.

    weights_dir()                       where the files live (override > $HL_WEIGHTS_DIR > user cache)
    find_weights("i3d")                 the first present checkpoint for a backbone, or None
    weights_files("i3d")                every present checkpoint that fits a backbone
    download_weights("c3d_sports1m")    resumable, verified download into the weights directory
    add_weights("c3d", "my/c3d.pickle") check names and shapes against the backbone, then copy in
    check_checkpoint("c3d", path)       the differences between a file and the backbone, [] if it fits
    weights_hash(path)                  sha256 of a weights file ("none" without weights), cached

Modules: ``registry`` (REGISTRY, the entries the backbone specs declare), ``directory`` (the weights directory,
its weights.json manifest, find / list / add), ``hashing`` (file_sha256, weights_hash), ``checking``
(check_checkpoint, model_layout) and ``download`` (download_weights). Every check loads a file with the
backbone's own checkpoint filter, exactly as ``create`` does, so a file that passes here loads there.
"""
from ..backbones import WeightsEntry
from . import checking, directory, download, hashing, registry
from .checking import ModelLayout, check_checkpoint, model_layout
from .directory import (
    ENV_VAR,
    MANIFEST,
    USER_DIR,
    add_weights,
    find_weights,
    list_weights,
    weights_dir,
    weights_files,
)
from .download import download_weights
from .hashing import file_sha256, weights_hash
from .registry import REGISTRY, backbones_for, entries_for

__all__ = [
    "ENV_VAR", "MANIFEST", "REGISTRY", "USER_DIR", "ModelLayout", "WeightsEntry", "add_weights", "backbones_for",
    "check_checkpoint", "checking", "directory", "download", "download_weights", "entries_for", "file_sha256",
    "find_weights", "hashing", "list_weights", "model_layout", "registry", "weights_dir", "weights_files",
    "weights_hash",
]
