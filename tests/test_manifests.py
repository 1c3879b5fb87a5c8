import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hl.data_manifests import build_manifest
from hl.data_manifests.cosum import cosum_manifest
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
from hl.data_manifests.tvsum_official import read_tvsum_mat, segment_scores, tvsum_official_manifest
from hl.data_manifests.umt import umt_features, umt_manifest, umt_video_ids
from hl.data_manifests.user_csv import parse_time, user_csv_manifest
from hl.extract.segments import fixed_segments

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
    splits = {"BK": {"train": ["WxtbjNsCQ8A", "EE-bNr36nyA"], "val": ["oDXZc0tZe04"], "test": ["Se3oxnaPsz0"]}}
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


# ----------------------------------------------------------------------------------- official TVSum .mat


@pytest.fixture(scope="module")
def tvsum_mat(shared_data):
    return shared_data / "tvsum" / "official" / "ydata-tvsum50.mat"


def test_read_tvsum_mat(tvsum_mat):
    entries = read_tvsum_mat(tvsum_mat)
    assert len(entries) == 50
    first = entries[0]
    assert first["video"] == "AwmHb44_ouw" and first["category"] == "VT"
    assert first["nframes"] == 10597 and first["user_anno"].shape == (10597, 20)
    assert first["length"] == pytest.approx(353.593)
    np.testing.assert_allclose(first["gt_score"], first["user_anno"].mean(1), atol=0.06)
    titles = {e["video"]: e["title"] for e in entries}
    assert titles["gzDbaEs1Rlg"] == "\u0160KODA Tips How to Repair Your Tyre"  # UTF-8 bytes decoded
    assert {e["category"] for e in entries} == TVSUM_DOMAINS


def test_segment_scores_hand_computed():
    frames = np.array([[1, 5], [2, 5], [3, 1], [4, 1], [5, 1], [9, 9]], dtype=float)  # 6 frames, 2 annotators
    # fps 1, 2-s segments: frames [0, 2), [2, 4), [4, 6) -> means; centre frames 1, 3, 5
    np.testing.assert_allclose(segment_scores(frames, fps=1.0), [[1.5, 5], [3.5, 1], [7, 5]])
    np.testing.assert_allclose(segment_scores(frames, fps=1.0, reduce="center"), [[2, 5], [4, 1], [9, 9]])
    # fps 1.25: 2.5 frames per segment -> boundaries 0, 2, 5; the partial third segment is dropped
    np.testing.assert_allclose(segment_scores(frames, fps=1.25), [[1.5, 5], [4, 1]])
    with pytest.raises(ValueError, match="reduce"):
        segment_scores(frames, fps=1.0, reduce="max")


def test_tvsum_official_manifest_against_umt(tvsum_mat, umt_tvsum):
    df = tvsum_official_manifest(tvsum_mat)
    validate(df)
    vt = video_table(df)
    assert len(vt) == 50 and set(vt["domain"]) == TVSUM_DOMAINS
    assert (vt.groupby("domain")["split"].apply(lambda s: (s == "test").sum()) == 1).all()
    assert (vt.set_index("video_id")["num_segments"]["kLxoNp-UchI"]) == 65  # 130.008 s: 65 whole segments
    merged = df.merge(umt_tvsum, on=["video_id", "segment"], suffixes=("_mat", "_umt"))
    assert len(merged) == len(umt_tvsum)
    for vid in ("AwmHb44_ouw", "Se3oxnaPsz0", "kLxoNp-UchI"):
        one = merged[merged["video_id"] == vid]
        a = np.stack(one["scores_mat"].to_list()).mean(1)
        b = np.stack(one["scores_umt"].to_list()).mean(1)
        assert np.corrcoef(a, b)[0, 1] > 0.999
    assert (merged["label_mat"] == merged["label_umt"]).mean() > 0.97
    # the centre frame of each 2-s window reproduces the UMT release's scores exactly
    centre = tvsum_official_manifest(tvsum_mat, reduce="center")
    merged = centre.merge(umt_tvsum, on=["video_id", "segment"], suffixes=("_mat", "_umt"))
    np.testing.assert_array_equal(
        np.concatenate(merged["scores_mat"].to_list()), np.concatenate(merged["scores_umt"].to_list())
    )
    assert (merged["label_mat"] == merged["label_umt"]).all()


def test_tvsum_official_needs_splits(tmp_path, tvsum_mat):
    copy = tmp_path / "ydata-tvsum50.mat"
    copy.write_bytes(tvsum_mat.read_bytes())
    with pytest.raises(ValueError, match="pass splits"):
        tvsum_official_manifest(copy)
    df = tvsum_official_manifest(copy, splits={"VT": {"train": ["AwmHb44_ouw"], "test": ["J0nA4VgnoCo"]}})
    assert video_table(df)["video_id"].tolist() == ["AwmHb44_ouw", "J0nA4VgnoCo"]
    bad = tmp_path / "bad.mat"
    bad.write_text("not hdf5")
    with pytest.raises(ValueError, match="HDF5"):
        read_tvsum_mat(bad)


# ----------------------------------------------------------------------------------- CoSum (synthetic)


@pytest.fixture
def cosum_release(tmp_path):
    """Two events in the CoSum release layout (shots/<NN_event>/<name><k>_shots.txt,
    annotation/<NN_event>/<k>__<judge>.mat with labels [M, 2])."""
    from scipy.io import savemat

    root = tmp_path / "cosum"
    layout = {
        "01_base_jump": {"base1": ([1, 31, 61, 91, 121], {"kk": [1, 2], "vv": [2, 3], "dualplus": [2, 9]})},
        "10_surfing": {
            "surf1": ([1, 16, 46, 40, 76], {"kk": [4], "vv": [4, 1], "dualplus": [1]}),
            "surf2": ([11, 41], {"kk": [], "vv": [1], "dualplus": [1]}),
        },
    }
    for event, videos in layout.items():
        (root / "shots" / event).mkdir(parents=True)
        (root / "annotation" / event).mkdir(parents=True)
        for name, (bounds, judges) in videos.items():
            (root / "shots" / event / f"{name}_shots.txt").write_text("\n".join(map(str, bounds)) + "\n")
            k = name[-1]
            for judge, chosen in judges.items():
                labels = np.array([[c, 1] for c in chosen], dtype=np.uint8).reshape(-1, 2)
                savemat(root / "annotation" / event / f"{k}__{judge}.mat", {"labels": labels})
    return root


def test_cosum_manifest(cosum_release):
    with pytest.warns(UserWarning) as record:
        df = cosum_manifest(cosum_release, fps={"base1": 30.0, "surf1": 15.0, "surf2": 10.0})
    messages = " ".join(str(w.message) for w in record)
    assert "'base1': 1 selected shot indices exceed its 4 shots" in messages
    assert "'surf1': shots [3] end at or before their start" in messages
    validate(df)
    vt = video_table(df)
    assert vt["video_id"].tolist() == ["base1", "surf1", "surf2"]
    assert vt["domain"].tolist() == ["base_jump", "surfing", "surfing"]
    assert set(vt["split"]) == {"test"}
    base = df[df["video_id"] == "base1"]
    np.testing.assert_allclose(base["start"], [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(base["end"], [1.0, 2.0, 3.0, 4.0])
    # judges in sorted order: dualplus, kk, vv
    assert [s.tolist() for s in base["scores"]] == [[0, 1, 0], [1, 1, 1], [0, 0, 1], [0, 0, 0]]
    assert base["label"].tolist() == [0, 1, 0, 0]
    surf = df[df["video_id"] == "surf1"]
    assert surf["segment"].tolist() == [0, 1, 3]  # shot 3 (46 -> 40) left out, indices kept
    assert surf["label"].tolist() == [1, 0, 1]
    np.testing.assert_allclose(surf["start"], [0.0, 1.0, 39 / 15])
    surf2 = df[df["video_id"] == "surf2"]
    np.testing.assert_allclose(surf2[["start", "end"]].to_numpy(), [[1.0, 4.0]])
    assert surf2["label"].tolist() == [1]
    # a stricter vote and explicit splits
    with pytest.warns(UserWarning):
        strict = cosum_manifest(cosum_release, fps=30.0, min_votes=3, splits={"surfing": {"train": ["surf1"]}})
    assert strict[strict["video_id"] == "base1"]["label"].tolist() == [0, 1, 0, 0]
    assert strict[strict["video_id"] == "surf1"]["label"].sum() == 0
    assert video_table(strict).set_index("video_id")["split"].to_dict() == {
        "base1": "test",
        "surf1": "train",
        "surf2": "test",
    }


@pytest.mark.filterwarnings("ignore:CoSum video")
def test_cosum_errors(cosum_release, tmp_path):
    with pytest.raises(ValueError, match="no fps given for CoSum video 'surf1'"):
        cosum_manifest(cosum_release, fps={"base1": 30.0})
    (cosum_release / "shots" / "10_surfing" / "surf2_shots.txt").write_text("11\nforty\n")
    with pytest.raises(ValueError, match=r"surf2_shots.txt:2: not a frame number"):
        cosum_manifest(cosum_release, fps=30.0)
    with pytest.raises(ValueError, match="'shots/' and 'annotation/'"):
        cosum_manifest(tmp_path / "nowhere", fps=30.0)


# ----------------------------------------------------------------------------------- user CSV


def _csv(tmp_path, text, name="highlights.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_time():
    assert parse_time("12.5") == 12.5
    assert parse_time("1:02") == 62.0
    assert parse_time("01:02:03.5") == 3723.5
    assert parse_time(" 0:00:07 ") == 7.0
    for bad in ("", "1:2:3:4", "abc", "1:75", "inf"):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_user_csv_labels_and_segments(tmp_path):
    path = _csv(
        tmp_path,
        "video,start,end,duration,domain,split\n"
        "clips/a.mp4,1.0,3.0,7,dogs,train\n"  # covers half of [0,2] and half of [2,4]
        "clips/a.mp4,0:05,0:05.9,7,dogs,train\n"  # 0.9 s of [4,6]: below half
        "clips/a.mp4,6.2,7.3,7,dogs,train\n"  # last window [6,7] (1 s): 0.8 s covered; end clamped
        "b,,,00:00:03,,test\n"  # no highlight
        "c,0,1.5,,,\n"
        "c,1.0,2.5,,,\n",  # overlaps the previous row: union [0, 2.5]
    )
    df = user_csv_manifest(path, durations={"c": 5.0})
    validate(df)
    a = df[df["video_id"] == "a"]
    np.testing.assert_allclose(a[["start", "end"]].to_numpy(), fixed_segments(7.0, 2.0))
    assert a["label"].tolist() == [1, 1, 0, 1]
    assert set(a["source"]) == {"clips/a.mp4"} and set(a["domain"]) == {"dogs"}
    b = df[df["video_id"] == "b"]
    assert b["label"].tolist() == [0, 0] and set(b["split"]) == {"test"} and set(b["domain"]) == {"user"}
    np.testing.assert_allclose(b["end"], [2.0, 3.0])
    c = df[df["video_id"] == "c"]
    assert c["label"].tolist() == [1, 0, 0]  # [2,4] covered 0.5 s: below half
    assert set(c["split"]) == {"train"}
    assert df["scores"].isna().all() and set(df["dataset"]) == {"user"}


@settings(max_examples=60, deadline=None)
@given(
    duration=st.floats(0.3, 30.0),
    seconds=st.sampled_from([1.0, 2.0, 2.5]),
    spans=st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.01, 1.0)), max_size=4),
)
def test_user_csv_matches_extraction_windows(tmp_path_factory, duration, seconds, spans):
    rows = []
    for frac, width in spans:
        start = frac * duration * 0.99
        end = min(start + width * duration, duration)
        if end > start + 1e-3:
            rows.append((round(start, 4), round(end, 4)))
    body = "".join(f"v,{s},{e}\n" for s, e in rows) or "v,,\n"
    path = _csv(tmp_path_factory.mktemp("csv"), "video,start,end\n" + body)
    df = user_csv_manifest(path, segment_seconds=seconds, durations=lambda v: duration)
    windows = fixed_segments(duration, seconds)
    np.testing.assert_allclose(df[["start", "end"]].to_numpy(), windows)
    # brute-force coverage on a fine grid
    grid = np.linspace(0, duration, 20001)
    inside = np.zeros_like(grid, dtype=bool)
    for s, e in rows:
        inside |= (grid >= s) & (grid <= e)
    for (ws, we), label in zip(windows, df["label"]):
        sel = (grid >= ws) & (grid <= we)
        frac = inside[sel].mean()
        if abs(frac - 0.5) > 0.01:
            assert label == int(frac > 0.5)


@pytest.mark.parametrize(
    "text, message",
    [
        ("video,start\na,1\n", "line 1: missing column 'end'"),
        ("video,start,end,duration\na,1,x,10\n", "line 2: not a time"),
        ("video,start,end,duration\na,1,2,10\na,3,2,10\n", "line 3: end .* must be after start"),
        ("video,start,end,duration\na,1,2,10\na,3,4,11\n", "line 3: duration 11.0 differs"),
        ("video,start,end,duration\na,1,2,10\n,3,4,10\n", "line 3: empty 'video'"),
        ("video,start,end,duration\na,1,12,10\n", "line 2: highlight .* outside the video"),
        ("video,start,end,split,duration\na,1,2,dev,10\n", "line 2: split 'dev'"),
        ("video,start,end\na,1,2\n", "line 2: no duration for video 'a'"),
        ("video,start,end,duration\nx/a.mp4,1,2,10\ny/a.mkv,1,2,10\n", "line 3: .* both give the id 'a'"),
        ("video,start,end,duration\na,-1,2,10\n", "line 2: start must be >= 0"),
    ],
)
def test_user_csv_errors(tmp_path, text, message):
    path = _csv(tmp_path, text, name="mine.csv")
    with pytest.raises(ValueError, match=f"mine.csv, {message}"):
        user_csv_manifest(path)


# ----------------------------------------------------------------------------------- build_manifest


def test_build_manifest_dispatch(shared_data, tmp_path):
    df = build_manifest("lighthouse", shared_data / "tvsum" / "lighthouse")
    assert len(video_table(df)) == 50
    path = _csv(tmp_path, "video,start,end,duration\na,0,2,4\n")
    assert build_manifest("user_csv", path)["label"].tolist() == [1, 0]
    with pytest.raises(ValueError, match="unknown manifest kind 'nope'"):
        build_manifest("nope")
