"""The run directory (hl.pipelines.run): what a run records, and inference refusing features made otherwise."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from hl.common import HLError
from hl.data_manifests.schema import conform, write_manifest
from hl.extract.extractors import RunSettings, extractor_config, get_extractor
from hl.pipelines.cache import FeatureOrigin, FeatureStore
from hl.pipelines.cli import main
from hl.pipelines.run import JOINT, Run, RunConfig
from hl.pipelines.stages.extract import plan_extractors
from hl.pipelines.stages.predict import predict
from hl.pipelines.stages.train_segment import TrainSpec, train_heads

SMALL = {"epochs": 2, "arch": {"d_model": 16, "n_heads": 2, "ffn_dim": 32}}


def _released_cache(root, n=6, segments=10, source="a-release"):
    """A cache of `n` videos whose 'rel_v' / 'rel_a' features were imported from a release (no hl extractor),
    with a manifest: videos 0..n-2 train, the last one test; label = 1 where the first feature is positive."""
    store = FeatureStore(root)
    rng = np.random.default_rng(0)
    rows = []
    for k in range(n):
        vid = f"v{k}"
        seg = np.stack([np.arange(segments) * 2.0, np.arange(segments) * 2.0 + 2.0], axis=1)
        x = rng.normal(size=(segments, 8)).astype(np.float32)
        for name, arr in (("rel_v", x), ("rel_a", rng.normal(size=(segments, 4)).astype(np.float32))):
            path = store.write_unit(vid, name, {"features": arr, "segments": seg},
                                    {"config": {"source": source, "extractor": name}, "weights_hash": source,
                                     "config_hash": "c0"})
            store.write_index_row({"video_id": vid, "extractor": name, "status": "ok", "segments": segments,
                                   "dim": arr.shape[1], "file": path.relative_to(store.root).as_posix(),
                                   "fingerprint": source, "config_hash": "c0", "weights_hash": source})
        for i in range(segments):
            rows.append({"video_id": vid, "dataset": "user", "domain": "d", "split": "test" if k == n - 1 else "train",
                         "segment": i, "start": seg[i, 0], "end": seg[i, 1], "label": int(x[i, 0] > 0),
                         "scores": None})
    write_manifest(conform(pd.DataFrame(rows)), store.manifest_path)
    return store


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    root = tmp_path_factory.mktemp("released")
    store = _released_cache(root / "cache")
    metrics = train_heads(TrainSpec(cache=str(store.root), visual=("rel_v",), audio=("rel_a",), seeds=(0,),
                                    head=SMALL), root / "run", workers=1)
    return root, store, metrics


def test_the_run_records_what_inference_needs(released):
    root, store, metrics = released
    run = Run.open(root / "run")
    c = run.config
    assert run.kind == "segment" and c.inputs == ["rel_v", "rel_a"] and c.domains == ["d"] and c.seeds == [0]
    assert c.segments == {"rule": "imported", "seconds": 2.0}  # the manifest's windows: 2 s
    assert [o.to_dict() for o in c.features["rel_v"]] == [store.origin("v0", "rel_v").to_dict()]
    assert not c.features["rel_v"][0].made_by_hl
    assert c.manifest == str(store.manifest_path) and c.head["epochs"] == 2
    assert run.heads_for("d") == ("d", [root / "run" / "models" / "d" / "seed0.pt"])
    assert run.heads_for("elsewhere")[0] == "all"
    pd.testing.assert_frame_equal(run.metrics(), metrics)
    assert set(run.scores()["video_id"]) == {"v5"} and run.tasks()["train_videos"].item() == 5


def test_predict_refuses_features_made_with_other_weights(released, tmp_path):
    root, store, _ = released
    assert set(predict(root / "run", store.root)) == {f"v{k}" for k in range(6)}
    other = _released_cache(tmp_path / "other", n=2, source="another-release")
    with pytest.raises(HLError, match=r"video 'v0'.*differ from the run's training features"):
        predict(root / "run", other.root)
    r = CliRunner().invoke(main, ["predict", "--run", str(root / "run"), "--cache", str(other.root), "--out",
                                  str(tmp_path / "p.json")])
    assert r.exit_code == 2 and "differ from the run's training features" in r.output and "Traceback" not in r.output


def test_highlights_refuse_a_run_of_imported_features(released, tmp_path):
    from hl.data_manifests.synthetic import write_video
    from hl.pipelines.highlights import find_highlights

    root = released[0]
    write_video(tmp_path / "videos" / "a.mp4", seconds=3, fps=10)
    with pytest.raises(HLError, match="hl cannot compute those for new videos"):
        find_highlights(tmp_path / "videos", root / "run", tmp_path / "out")


def test_extraction_for_a_run_pins_weights_and_settings(tmp_path):
    settings = RunSettings(precision="fp32")
    d = get_extractor("c3d")
    wanted = FeatureOrigin.from_config("c3d", extractor_config(d, settings, "fixed:2"), "ab" * 32)
    with pytest.raises(HLError, match="weights with sha256 abababababab.*does not hold"):
        plan_extractors(None, tmp_path, settings, require={"c3d": wanted})
    random = FeatureOrigin.from_config("c3d", extractor_config(d, settings, "fixed:2"), "none")
    (plan,), notices = plan_extractors(None, tmp_path, settings, require={"c3d": random})
    assert plan.weights is None and plan.weights_hash == "none" and notices == []
    # features a run recorded as made in fp16 (on a GPU elsewhere) are not remade in fp32 here without a word;
    # nothing runs in fp16 on this machine
    elsewhere = {**extractor_config(d, settings, "fixed:2"), "precision": "fp16"}
    made_in_fp16 = FeatureOrigin.from_config("c3d", elsewhere, "none")
    with pytest.raises(HLError, match="other extractor settings.*precision"):
        plan_extractors(None, tmp_path, settings, require={"c3d": made_in_fp16})


def test_run_config_round_trip_and_bad_runs(tmp_path):
    origin = FeatureOrigin.from_config("stats", {"extractor": "stats", "backbone": "stats", "segments": "fixed:2"},
                                       "none")
    assert "segments" not in origin.config and origin.made_by_hl
    config = RunConfig(kind="pixel", visual=["c3d_maps"], audio=[], features={"c3d_maps": [origin]},
                       segments={"rule": "fixed", "seconds": 1.0}, cache="c", manifest="m", domains=["x"],
                       seeds=[0, 1], joint=True, head={"decoder": {}}, training={"n": np.int64(3)})
    run = Run.create(tmp_path / "run", config)
    again = Run.open(tmp_path / "run")
    assert again.config == config and again.segment_seconds == 1.0
    with pytest.raises(HLError, match="no trained models"):
        again.heads_for("x")
    (tmp_path / "run" / "models" / JOINT).mkdir(parents=True)
    (tmp_path / "run" / "models" / JOINT / "seed0.pt").write_bytes(b"")
    assert run.heads_for("x") == (JOINT, [tmp_path / "run" / "models" / JOINT / "seed0.pt"])
    with pytest.raises(HLError, match="unknown run kind"):
        RunConfig(**{**config.__dict__, "kind": "other"})
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"head": "pixel", "spec": {}}))
    with pytest.raises(HLError, match="older hl.*train it again"):
        Run.open(old)
    with pytest.raises(HLError, match="not a run directory"):
        Run.open(tmp_path)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_head_files_never_run_code(tmp_path):
    from hl.heads.fit import load
    from hl.heads.pixel_decoder import load_pixel_head

    marker = tmp_path / "ran"
    evil = tmp_path / "seed0.pt"
    import torch

    torch.save({"format": "hl.heads.cooccurrence/1", "config": _RunsCode(marker)}, evil)
    for loader in (load, load_pixel_head):
        with pytest.raises(HLError, match="seed0.pt: not a .* file: it holds more than plain tensors"):
            loader(evil)
    evil.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(HLError):
        load(evil)
    assert not marker.exists()


def test_cli_rejects_options_of_the_other_head(tmp_path):
    for args, wrong in [(["--head", "pixel", "--visual", "i3d", "--no-hpcl"], "--visual, --no-hpcl"),
                        (["--beta", "0.001"], "--beta")]:
        r = CliRunner().invoke(main, ["train-head", "--cache", str(tmp_path), "--out", str(tmp_path / "r"), *args])
        assert r.exit_code == 2 and f"{wrong}: not an option of --head" in r.output, r.output
    r = CliRunner().invoke(main, ["train-head", "--cache", str(tmp_path), "--out", str(tmp_path / "r"),
                                  "--seeds", "0,x"])
    assert r.exit_code == 2 and "comma-separated integers" in r.output


def test_inference_never_imports_training_and_heads_never_import_extract():
    """Loading everything inference uses (predict, evaluate, highlights) loads no training module; the heads
    package does not import the extraction package."""
    probe = ("import sys, hl.pipelines.stages.predict, hl.pipelines.stages.predict_pixel, "
             "hl.pipelines.stages.evaluate, hl.pipelines.highlights; "
             "print(sorted(m for m in sys.modules if m.startswith('hl.') and 'train' in m))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    probe = ("import sys, hl.heads.fit, hl.heads.pixel_decoder, hl.heads.metrics; "
             "print(sorted(m for m in sys.modules if m.startswith(('hl.extract', 'hl.pipelines'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
