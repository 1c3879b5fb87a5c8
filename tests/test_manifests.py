import json

import numpy as np
import pandas as pd
import pytest

from hl.data_manifests.lighthouse import lighthouse_manifest, lighthouse_splits
from hl.data_manifests.schema import (
    COLUMNS,
    SCHEMA,
    above_median_labels,
    conform,
    read_manifest,
    validate,
    video_table,
    write_manifest,
)
from hl.data_manifests.umt import umt_features, umt_manifest, umt_video_ids

TVSUM_DOMAINS = {"BK", "BT", "DS", "FM", "GA", "MS", "PK", "PR", "VT", "VU"}


def _rows(**over):
    base = {
        "video_id": ["a", "a", "b"],
        "dataset": ["x", "x", "x"],
        "domain": ["d", "d", "d"],
        "split": ["train", "train", "test"],
        "segment": [0, 1, 0],
        "start": [0.0, 2.0, 0.0],
        "end": [2.0, 4.0, 2.0],
        "label": [0, 1, 1],
        "scores": [[1.0, 2.0], None, [3.0]],
    }
    base.update(over)
    return pd.DataFrame(base)


# ----------------------------------------------------------------------------------------------- schema


def test_schema_columns_and_types():
    assert COLUMNS == ("video_id", "dataset", "domain", "split", "segment", "start", "end", "label", "scores")
    assert str(SCHEMA.field("segment").type) == "int32"
    assert str(SCHEMA.field("label").type) == "int8"
    assert str(SCHEMA.field("scores").type) == "list<item: float>"


def test_conform_casts_dtypes():
    df = conform(_rows())
    assert df["segment"].dtype == np.int32
    assert df["label"].dtype == np.int8
    assert df["start"].dtype == np.float64
    assert df["scores"][0].dtype == np.float32
    assert df["scores"][1] is None


@pytest.mark.parametrize(
    "over, column",
    [
        ({"split": ["train", "train", "holdout"]}, "split"),
        ({"label": [0, 2, 1]}, "label"),
        ({"segment": [0, -1, 0]}, "segment"),
        ({"segment": [0, 0, 0]}, "segment"),
        ({"end": [2.0, 1.0, 2.0]}, "end"),
        ({"start": [0.0, float("nan"), 0.0]}, "start"),
        ({"video_id": ["a", None, "b"]}, "video_id"),
        ({"domain": ["d", "e", "d"]}, "domain"),
        ({"split": ["train", "test", "test"]}, "split"),
        ({"scores": [[1.0], ["x"], None]}, "scores"),
        ({"segment": [0.0, 1.5, 0.0]}, "segment"),
    ],
)
def test_validate_names_bad_column(over, column):
    with pytest.raises(ValueError, match=repr(column)):
        validate(_rows(**over))


def test_validate_missing_column():
    with pytest.raises(ValueError, match="'label' is missing"):
        validate(_rows().drop(columns="label"))


def test_write_read_roundtrip(tmp_path):
    df = _rows()
    df["extra"] = ["p", "q", "r"]
    path = write_manifest(df, tmp_path / "sub" / "m.parquet")
    import pyarrow.parquet as pq

    assert pq.read_schema(path).field("segment").type == SCHEMA.field("segment").type
    back = read_manifest(path)
    assert list(back.columns) == [*COLUMNS, "extra"]
    assert back["segment"].dtype == np.int32
    assert back["scores"][1] is None
    np.testing.assert_array_equal(back["scores"][0], np.array([1.0, 2.0], np.float32))
    assert back["extra"].tolist() == ["p", "q", "r"]


def test_video_table():
    vt = video_table(_rows())
    assert vt["video_id"].tolist() == ["a", "b"]
    assert vt["num_segments"].tolist() == [2, 1]
    assert vt["num_positive"].tolist() == [1, 1]
    assert vt["duration"].tolist() == [4.0, 2.0]
    assert vt["split"].tolist() == ["train", "test"]


def test_above_median_labels():
    scores = np.array([[1, 1], [2, 2], [3, 5], [5, 5]], dtype=float)  # means 1, 2, 4, 5 -> median 3
    assert above_median_labels(scores).tolist() == [0, 0, 1, 1]
    # ties at the median are negative
    assert above_median_labels(np.array([[1.0], [2.0], [2.0], [2.0]])).tolist() == [0, 0, 0, 0]


# ----------------------------------------------------------------------------------------------- UMT (real)


@pytest.fixture(scope="module")
def umt_root(shared_data):
    return shared_data / "tvsum" / "umt"


@pytest.fixture(scope="module")
def umt_tvsum(umt_root):
    return umt_manifest(umt_root)


def test_umt_tvsum_manifest(umt_root, umt_tvsum):
    df = umt_tvsum
    validate(df)
    vt = video_table(df)
    assert len(vt) == 50
    assert set(vt["domain"]) == TVSUM_DOMAINS
    counts = vt.groupby(["domain", "split"]).size().unstack()
    assert (counts["train"] == 4).all() and (counts["test"] == 1).all()
    assert set(df["dataset"]) == {"tvsum"}
    # 2-s segments
    first = df[df["video_id"] == "akI8YFjEmUw"]
    assert len(first) == 66
    np.testing.assert_allclose(first["start"].to_numpy(), 2.0 * np.arange(66))
    np.testing.assert_allclose(first["end"].to_numpy(), 2.0 * np.arange(66) + 2.0)
    # raw scores kept, label = mean score above the video's median mean
    anno = json.loads((umt_root / "tvsum_anno.json").read_text())
    raw = np.asarray(anno["akI8YFjEmUw"]["anno"], dtype=np.float32)
    np.testing.assert_array_equal(np.stack(first["scores"].to_list()), raw)
    means = raw.mean(1)
    np.testing.assert_array_equal(first["label"].to_numpy(), (means > np.median(means)).astype(np.int8))
    assert 0.4 < df["label"].mean() < 0.55
    assert umt_video_ids(umt_root) == sorted(anno)


def test_umt_crops_to_features(umt_root, umt_tvsum):
    feats = umt_features(umt_root, "kLxoNp-UchI")  # 64 visual, 65 audio, 64 labels
    assert {k: v.shape for k, v in feats.items()} == {
        "i3d": (64, 1024),
        "i3d_flow": (64, 1024),
        "pann": (64, 2048),
    }
    assert all(v.dtype == np.float32 for v in feats.values())
    assert (umt_tvsum["video_id"] == "kLxoNp-UchI").sum() == 64
    raw = np.load(umt_root / "video_features" / "kLxoNp-UchI_rgb.npy")
    np.testing.assert_allclose(feats["i3d"], raw.astype(np.float32))


def test_umt_explicit_splits(umt_root):
    splits = {
        "BK": {"train": ["WxtbjNsCQ8A", "EE-bNr36nyA"], "val": ["oDXZc0tZe04"], "test": ["Se3oxnaPsz0"]}
    }
    df = umt_manifest(umt_root, splits=splits)
    vt = video_table(df)
    assert dict(zip(vt["video_id"], vt["split"])) == {
        "WxtbjNsCQ8A": "train",
        "EE-bNr36nyA": "train",
        "oDXZc0tZe04": "val",
        "Se3oxnaPsz0": "test",
    }
    with pytest.raises(ValueError, match="split 'dev'"):
        umt_manifest(umt_root, splits={"BK": {"dev": ["WxtbjNsCQ8A"]}})


def test_umt_without_any_split_source(tmp_path, umt_root):
    release = tmp_path / "umt"
    release.mkdir()
    anno = json.loads((umt_root / "tvsum_anno.json").read_text())
    (release / "tvsum_anno.json").write_text(json.dumps({"akI8YFjEmUw": anno["akI8YFjEmUw"]}))
    with pytest.raises(ValueError, match="pass splits"):
        umt_manifest(release)
    # a split stored in the release is used
    entry = dict(anno["akI8YFjEmUw"], split="val")
    (release / "tvsum_anno.json").write_text(json.dumps({"akI8YFjEmUw": entry}))
    df = umt_manifest(release)
    assert set(df["split"]) == {"val"} and len(df) == 66  # no feature files here: no cropping


# ----------------------------------------------------------------------------------- UMT YouTube (synthetic)


@pytest.fixture
def youtube_release(tmp_path):
    """A release in the UMT YouTube Highlights layout: 100-frame windows with 50% overlap."""
    root = tmp_path / "youtube"
    (root / "video_features").mkdir(parents=True)
    (root / "audio_features").mkdir()
    anno = {
        "vidA": {"fps": 25.0, "match": [1, 0, -1, 1], "clip": [[0, 100], [50, 150], [100, 200], [150, 250]]},
        "vidB": {"fps": 30, "match": [-1, -1, 1], "clip": [[0, 100], [50, 150], [100, 200]], "domain": "sf"},
        "vidC": {"fps": 30.0, "match": [1, -1], "clip": [[0, 100], [50, 150]]},
    }
    (root / "youtube_anno.json").write_text(json.dumps(anno))
    rng = np.random.default_rng(0)
    for vid, n in [("vidA", 4), ("vidB", 3), ("vidC", 2)]:
        np.save(root / "video_features" / f"{vid}_rgb.npy", rng.normal(size=(n, 8)))
        np.save(root / "video_features" / f"{vid}_opt.npy", rng.normal(size=(n, 8)))
        np.save(root / "audio_features" / f"{vid}.npy", rng.normal(size=(n + 1, 4)).astype(np.float32))
    return root


def test_umt_youtube_manifest(youtube_release):
    splits = {"dog": {"train": ["vidA"]}, "surfing": {"test": ["vidB"]}}
    df = umt_manifest(youtube_release, splits=splits)
    validate(df)
    assert set(df["video_id"]) == {"vidA", "vidB"}  # vidC is in no split: left out
    a = df[df["video_id"] == "vidA"]
    np.testing.assert_allclose(a["start"], [0.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(a["end"], [4.0, 6.0, 8.0, 10.0])
    assert a["label"].tolist() == [1, 0, 0, 1]
    assert [s.tolist() for s in a["scores"]] == [[1.0], [0.0], [-1.0], [1.0]]
    assert set(a["domain"]) == {"dog"} and set(a["split"]) == {"train"}
    b = df[df["video_id"] == "vidB"]
    assert set(b["domain"]) == {"sf"}  # the entry's own domain wins over the splits key
    np.testing.assert_allclose(b["end"], [100 / 30, 150 / 30, 200 / 30])
    assert umt_video_ids(youtube_release) == ["vidA", "vidB", "vidC"]
    feats = umt_features(youtube_release, "vidA")
    assert feats["pann"].shape == (4, 4) and feats["i3d"].dtype == np.float32
    with pytest.raises(ValueError, match="pass splits"):
        umt_manifest(youtube_release)


def test_umt_youtube_bad_entry(youtube_release):
    anno = json.loads((youtube_release / "youtube_anno.json").read_text())
    anno["vidA"]["clip"] = anno["vidA"]["clip"][:3]
    (youtube_release / "youtube_anno.json").write_text(json.dumps(anno))
    with pytest.raises(ValueError, match="vidA"):
        umt_manifest(youtube_release, splits={"dog": {"train": ["vidA"]}})


# ----------------------------------------------------------------------------------------------- lighthouse


def test_lighthouse(shared_data, umt_tvsum):
    directory = shared_data / "tvsum" / "lighthouse"
    splits = lighthouse_splits(directory)
    assert set(splits) == TVSUM_DOMAINS
    assert all(len(s["train"]) == 4 and len(s["test"]) == 1 for s in splits.values())
    assert splits["BK"]["test"] == ["Se3oxnaPsz0"]
    df = lighthouse_manifest(directory)
    validate(df)
    assert len(video_table(df)) == 50
    # same labels as the UMT release (which crops kLxoNp-UchI to its features: same 64 clips)
    key = ["video_id", "segment"]
    merged = df.merge(umt_tvsum, on=key, suffixes=("_lh", "_umt"))
    assert len(merged) == len(umt_tvsum) == len(df)
    assert (merged["label_lh"] == merged["label_umt"]).all()
    assert (merged["split_lh"] == merged["split_umt"]).all()
    assert (merged["domain_lh"] == merged["domain_umt"]).all()


def test_lighthouse_bad_line(tmp_path):
    good = '{"vid": "a", "domain": "BK", "label": [[1, 2]]}'
    (tmp_path / "tvsum_train_release.jsonl").write_text(good + "\n{oops\n")
    with pytest.raises(ValueError, match=r"tvsum_train_release.jsonl:2"):
        lighthouse_manifest(tmp_path)
    with pytest.raises(ValueError, match="no lighthouse TVSum file"):
        lighthouse_splits(tmp_path / "nowhere")
