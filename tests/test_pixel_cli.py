"""The pixel-level head through the CLI: extract maps -> train-head --head pixel -> eval -> predict --maps."""
import json

from click.testing import CliRunner

from hl.data_manifests.schema import write_manifest
from hl.data_manifests.synthetic import make_dataset
from hl.pipelines.cli import main
from hl.pipelines.run import Run


def test_pixel_head_from_the_command_line(tmp_path):
    _, manifest = make_dataset(tmp_path / "videos", n_videos=3, seconds=6, fps=16, texture=True, test_fraction=0.34)
    cache = tmp_path / "cache"
    r = CliRunner().invoke(main, ["extract", "--videos", str(tmp_path / "videos"), "--out", str(cache),
                                  "--extractors", "motion_saliency,c3d_maps", "--random-weights", "--workers", "1",
                                  "--weights-dir", str(tmp_path / "w"), "--quiet"])
    assert r.exit_code == 0, r.output
    write_manifest(manifest, cache / "manifest.parquet")
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train-head", "--head", "pixel", "--backbone", "c3d", "--cache", str(cache),
                                  "--out", str(run), "--seeds", "0", "--epochs", "2", "--beta", "0.00003"])
    assert r.exit_code == 0, r.output
    assert "MEAN" in r.output
    assert Run.open(run).kind == "pixel"
    r = CliRunner().invoke(main, ["eval", "--run", str(run)])
    assert r.exit_code == 0 and "c3d_maps" in r.output, r.output
    r = CliRunner().invoke(main, ["predict", "--run", str(run), "--cache", str(cache), "--out",
                                  str(tmp_path / "pred.json"), "--maps", str(tmp_path / "maps")])
    assert r.exit_code == 0, r.output
    preds = json.loads((tmp_path / "pred.json").read_text())
    assert len(preds) == 3 and all(len(v) == 3 for v in preds.values())  # 6-s videos, 2-s segments
    assert len(list((tmp_path / "maps").glob("*.png"))) == 3
    # defaults: maps and saliency from the cache, beta from the saliency at hand, each said in one line
    r = CliRunner().invoke(main, ["train-head", "--head", "pixel", "--cache", str(cache), "--out",
                                  str(tmp_path / "defaults"), "--seeds", "0", "--epochs", "1"])
    assert r.exit_code == 0, r.output
    assert "pixel head inputs chosen from the cache: maps c3d_maps, saliency motion_saliency" in r.output
    assert "pseudo-label threshold: beta 4.65e-05 (calibrated for motion_saliency" in r.output
    r = CliRunner().invoke(main, ["train-head", "--head", "pixel", "--cache", str(cache), "--out",
                                  str(tmp_path / "x"), "--ablate", "temporal", "--seeds", "0"])
    assert r.exit_code == 2 and "Traceback" not in r.output  # its static-clip maps were not extracted
