"""Heads trained without naming their features take them from what the cache holds, say which, and record it."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from hl.common import HLError
from hl.data_manifests.schema import write_manifest
from hl.data_manifests.synthetic import make_dataset
from hl.pipelines.cache import FeatureStore
from hl.pipelines.cli import main
from hl.pipelines.run import Run
from hl.pipelines.stages.feature_choice import (
    AUDIO_PREFERENCE,
    VISUAL_PREFERENCE,
    choose,
    pixel_sources,
    segment_features,
)


def _unit(store: FeatureStore, vid: str, name: str, dim: int = 4) -> None:
    x = np.zeros((3, dim), dtype=np.float32)
    path = store.write_unit(vid, name, {"features": x, "segments": np.zeros((3, 2))}, {})
    store.write_index_row({"video_id": vid, "extractor": name, "status": "ok", "segments": 3, "dim": dim,
                           "file": path.relative_to(store.root).as_posix(), "fingerprint": vid,
                           "config_hash": "c", "weights_hash": "w"})


def _failed(store: FeatureStore, vid: str, name: str) -> None:
    store.write_index_row({"video_id": vid, "extractor": name, "status": "failed", "error": "bad",
                           "fingerprint": vid, "config_hash": "c", "weights_hash": "w"})


def test_the_papers_features_come_first(tmp_path):
    store = FeatureStore(tmp_path / "c")
    for v in ("a", "b"):
        for name in ("stats", "stats_audio", "i3d", "i3d_flow", "pann", "c3d"):
            _unit(store, v, name)
    visual, audio = segment_features(store, ["a", "b"])
    assert visual.names == ("i3d", "i3d_flow") and audio.names == ("pann",)
    assert visual.describe("visual") == "visual i3d+i3d_flow (2/2 videos)"


def test_fuller_coverage_beats_preference_and_failures_do_not_count(tmp_path):
    store = FeatureStore(tmp_path / "c")
    for v in ("a", "b", "c"):
        _unit(store, v, "stats")
        _unit(store, v, "i3d")
    _unit(store, "a", "i3d_flow")  # the flow of one video only: i3d alone covers all three
    _failed(store, "b", "pann")
    visual, audio = segment_features(store, ["a", "b", "c"])
    assert visual.names == ("i3d",) and audio.names == ()
    assert choose(store, ["a"], VISUAL_PREFERENCE).names == ("i3d", "i3d_flow")
    _unit(store, "a", "i3d_flow_raft_small")  # learned flow is preferred to the weight-free Horn-Schunck
    assert choose(store, ["a"], VISUAL_PREFERENCE).names == ("i3d", "i3d_flow_raft_small")
    _unit(store, "a", "i3d_flow_raft")
    assert choose(store, ["a"], VISUAL_PREFERENCE).names == ("i3d", "i3d_flow_raft")
    _unit(store, "a", "i3d_flow_tvl1")  # the checkpoints' own recipe first
    assert choose(store, ["a"], VISUAL_PREFERENCE).names == ("i3d", "i3d_flow_tvl1")
    assert choose(store, ["a"], AUDIO_PREFERENCE) is None
    with pytest.raises(HLError, match="no visual features cached"):
        segment_features(store, ["zzz"])


def test_pixel_sources_prefer_tased(tmp_path):
    store = FeatureStore(tmp_path / "c")
    for v in ("a", "b"):
        _unit(store, v, "c3d_maps")
        _unit(store, v, "motion_saliency")
    assert pixel_sources(store, ["a", "b"]) == ("c3d", "motion_saliency")
    for v in ("a", "b"):
        _unit(store, v, "tased_maps")
        _unit(store, v, "tased")
    assert pixel_sources(store, ["a", "b"]) == ("tased", "tased")
    assert pixel_sources(store, ["a", "b"], need_saliency=False) == ("tased", None)
    with pytest.raises(HLError, match="c3d_maps_static"):
        pixel_sources(store, ["a", "b"], suffix="_static")


def test_train_head_without_feature_flags_on_a_cache_hl_extract_wrote(tmp_path, local_scheduler):
    _, manifest = make_dataset(tmp_path / "videos", n_videos=3, seconds=6, fps=8, test_fraction=0.34)
    cache = tmp_path / "cache"
    r = CliRunner().invoke(main, ["extract", "--videos", str(tmp_path / "videos"), "--out", str(cache),
                                  "--workers", "1", "--weights-dir", str(tmp_path / "no-weights"), "--quiet"])
    assert r.exit_code == 0, r.output
    write_manifest(manifest, cache / "manifest.parquet")
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train-head", "--cache", str(cache), "--out", str(run), "--seeds", "0",
                                  "--epochs", "2", "--scheduler", local_scheduler])
    assert r.exit_code == 0, r.output
    line = [x for x in r.output.splitlines() if x.startswith("features chosen from the cache")]
    assert line == ["features chosen from the cache: visual stats (3/3 videos), audio stats_audio (3/3 videos)"]
    config = Run.open(run).config
    assert config.visual == ["stats"] and config.audio == ["stats_audio"]
    assert config.training["features_chosen"]["from_cache"] == ["visual", "audio"]
    saved = json.loads((run / "config.json").read_text())
    assert saved["training"]["spec"]["visual"] == ["stats"]
    # named features are used as given, with nothing chosen
    r = CliRunner().invoke(main, ["train-head", "--cache", str(cache), "--out", str(tmp_path / "run2"),
                                  "--seeds", "0", "--epochs", "2", "--scheduler", local_scheduler, "--visual", "stats",
                                  "--audio", ""])
    assert r.exit_code == 0 and "chosen from the cache" not in r.output, r.output
    assert Run.open(tmp_path / "run2").config.audio == []
