"""The README's path from a folder of videos to highlights, end to end through the `hl` command, with the
pretrained extractors on random weights in their official file formats (no weights can be fetched here):

    hl weights download  ->  hl extract --videos DIR  ->  hl manifest csv  ->  hl train-head  ->  hl highlights

The download comes from a loopback HTTP server; I3D rgb and PANN files are added with `hl weights add` (their
published names pin the sha256 of the real files, which random weights cannot have)."""
import csv
import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from click.testing import CliRunner

from hl.data_manifests.schema import write_manifest
from hl.data_manifests.synthetic import make_dataset
from hl.extract.backbones import create
from hl.extract.backbones.i3d import InceptionI3d
from hl.pipelines.cache import FeatureStore
from hl.pipelines.cli import main
from hl.pipelines.run import Run


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def published(tmp_path):
    """A loopback server publishing a random-weights flow_imagenet.pt in pytorch-i3d's format."""
    root = tmp_path / "published"
    root.mkdir()
    torch.manual_seed(5)
    torch.save(InceptionI3d(in_channels=2).state_dict(), root / "flow_imagenet.pt")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _ok(args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.slow  # three videos through three pretrained-size networks: ~4 min with the 2 cores busy
def test_from_a_folder_of_videos_to_highlights(tmp_path, published):
    w = tmp_path / "weights"
    # 1. weights: downloaded (verified, recorded) and added (checked name by name, shape by shape)
    _ok(["weights", "download", "i3d_flow_imagenet", "--url", f"{published}/flow_imagenet.pt", "--weights-dir", w])
    torch.manual_seed(6)
    torch.save(InceptionI3d(in_channels=3).state_dict(), tmp_path / "rgb.pt")
    torch.save({"model": create("pann").state_dict(), "iteration": 0}, tmp_path / "cnn14.pth")
    _ok(["weights", "add", "i3d", tmp_path / "rgb.pt", "--weights-dir", w])
    _ok(["weights", "add", "pann", tmp_path / "cnn14.pth", "--weights-dir", w])
    listed = _ok(["weights", "list", "--weights-dir", w])
    assert "present  i3d_flow_imagenet" in listed

    # 2. extract: no --extractors, the pretrained extractors whose weights are present
    videos, manifest = make_dataset(tmp_path / "videos", n_videos=3, seconds=4, fps=8, test_fraction=0.34)
    cache = tmp_path / "cache"
    _ok(["extract", "--videos", tmp_path / "videos", "--out", cache, "--weights-dir", w, "--workers", "1",
         "--quiet"])
    store = FeatureStore(cache)
    assert set(store.extractors()) == {"i3d", "i3d_flow", "pann"}
    assert store.features(videos[0].video_id, "i3d_flow").shape == (2, 1024)

    # 3. labels: the user's highlight intervals as CSV -> a manifest
    with open(tmp_path / "highlights.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["video", "start", "end", "split"])
        for v in videos:
            split = manifest.loc[manifest["video_id"] == v.video_id, "split"].iloc[0]
            for a, b in v.highlights:
                out.writerow([v.video_id, a, b, split])
    _ok(["manifest", "csv", tmp_path / "highlights.csv", "--videos", tmp_path / "videos",
         "--out", tmp_path / "manifest.parquet"])

    # 4. train-head with its defaults: the features the cache holds, the papers' i3d + i3d_flow and pann
    text = _ok(["train-head", "--cache", cache, "--manifest", tmp_path / "manifest.parquet", "--out",
                tmp_path / "run", "--seeds", "0", "--epochs", "2", "--workers", "1"])
    assert "features chosen from the cache: visual i3d+i3d_flow (3/3 videos), audio pann (3/3 videos)" in text
    config = Run.open(tmp_path / "run").config
    assert config.visual == ["i3d", "i3d_flow"] and config.audio == ["pann"]

    # 5. highlights of a video: its features come from the cache, made exactly as the run's were
    test_video = videos[-1]
    text = _ok(["highlights", test_video.path, "--run", tmp_path / "run", "--cache", cache, "--weights-dir", w,
                "--out", tmp_path / "out", "--workers", "1", "--quiet"])
    assert "1 videos scored (0 extracted, 1 from the cache), 0 failed" in text
    found = json.loads((tmp_path / "out" / "highlights.json").read_text())
    assert (tmp_path / "out" / "report.html").exists() and found


@pytest.mark.slow  # TASED-Net and C3D at full size on every target frame: ~1 min on 2 idle cores
def test_pixel_head_from_a_folder_of_videos(tmp_path):
    """The pixel-level head's path: TASED-Net and C3D weights added in their published formats -> `hl extract
    --extractors tased,c3d_maps` -> `hl train-head --head pixel` with its defaults -> `hl predict --maps`."""
    w = tmp_path / "weights"
    torch.manual_seed(7)
    torch.save({"module." + k: v for k, v in create("tased").state_dict().items()}, tmp_path / "TASED_updated.pt")
    torch.save(create("c3d").state_dict(), tmp_path / "c3d.pickle")
    _ok(["weights", "add", "tased_dhf1k", tmp_path / "TASED_updated.pt", "--weights-dir", w])
    _ok(["weights", "add", "c3d_sports1m", tmp_path / "c3d.pickle", "--weights-dir", w])

    _, manifest = make_dataset(tmp_path / "videos", n_videos=2, seconds=2, fps=8, test_fraction=0.5)
    cache = tmp_path / "cache"
    _ok(["extract", "--videos", tmp_path / "videos", "--out", cache, "--extractors", "tased,c3d_maps",
         "--weights-dir", w, "--workers", "1", "--quiet"])
    assert set(FeatureStore(cache).extractors()) == {"tased", "c3d_maps"}
    write_manifest(manifest, cache / "manifest.parquet")

    # defaults: maps and saliency from the cache, the paper's threshold for TASED-Net's saliency. Random weights
    # give nearly flat maps (no pixel holds 43x the uniform share): a clear refusal, not training on nothing
    r = CliRunner().invoke(main, [str(a) for a in ["train-head", "--head", "pixel", "--cache", cache, "--out",
                                                   tmp_path / "flat", "--seeds", "0", "--epochs", "1"]])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "pixel head inputs chosen from the cache: maps c3d_maps, saliency tased" in r.output
    assert "beta 0.0005 (paper (TASED-Net" in r.output
    assert "hl: error: pseudo labels are empty on 100% of the" in r.output and "give a lower --beta" in r.output
    # the advice it gives works: a threshold relative to each frame's peak
    _ok(["train-head", "--head", "pixel", "--cache", cache, "--out", tmp_path / "run", "--seeds", "0",
         "--epochs", "1", "--saliency-norm", "max", "--beta", "0.5"])
    labels = Run.open(tmp_path / "run").config.head["labels"]
    assert (labels["saliency"], labels["saliency_norm"], set(labels["beta"].values())) == ("tased", "max", {0.5})
    assert Run.open(tmp_path / "run").config.visual == ["c3d_maps"]

    _ok(["predict", "--run", tmp_path / "run", "--cache", cache, "--out", tmp_path / "pred.json",
         "--maps", tmp_path / "maps"])
    preds = json.loads((tmp_path / "pred.json").read_text())
    assert len(preds) == 2 and all(len(v) == 1 for v in preds.values())  # 2-s videos, 2-s segments
    assert len(list((tmp_path / "maps").glob("*.png"))) == 2
