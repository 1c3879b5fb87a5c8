"""Weights registry, directory, download (against a loopback HTTP server), add and checkpoint checks."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from hl.common import HLError
from hl.extract import weights as W
from hl.extract.backbones import BackboneSpec, get_spec, list_backbones, register

TINY = "_test_tiny"


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, kernel_size=3)
        self.bn = nn.BatchNorm3d(4)
        self.fc = nn.Linear(4, 2)


def _tiny_filter(obj):
    """The tiny backbone's public format: {"model": state dict with DataParallel's "module." prefixes}."""
    return {k.removeprefix("module."): v for k, v in obj["model"].items()}


if TINY not in list_backbones():
    register(BackboneSpec(name=TINY, build=Tiny, modality="video", feature_dim=2, feature_layer="fc",
                          preprocess=lambda x: x, checkpoint_filter=_tiny_filter))


def tiny_checkpoint_bytes(seed: int = 0, rename: dict[str, str] | None = None,
                          reshape: dict[str, tuple[int, ...]] | None = None,
                          drop_bn_count: bool = True) -> bytes:
    """A random-init Tiny checkpoint in its public format, optionally with renamed or reshaped tensors."""
    torch.manual_seed(seed)
    state = Tiny().state_dict()
    if drop_bn_count:  # like checkpoints saved by old PyTorch: no num_batches_tracked
        state.pop("bn.num_batches_tracked")
    for key, shape in (reshape or {}).items():
        state[key] = torch.zeros(shape)
    for old, new in (rename or {}).items():
        state[new] = state.pop(old)
    buf = io.BytesIO()
    torch.save({"model": {"module." + k: v for k, v in state.items()}, "iteration": 7}, buf)
    return buf.getvalue()


@contextlib.contextmanager
def registered(*entries: W.WeightsEntry):
    saved = dict(W.REGISTRY)
    W.REGISTRY.update({e.name: e for e in entries})
    try:
        yield
    finally:
        W.REGISTRY.clear()
        W.REGISTRY.update(saved)


# ----------------------------------------------------------------------------------------------
# loopback server: serves bytes by path, answers "Range: bytes=N-", can misbehave on request


class _Handler(BaseHTTPRequestHandler):
    timeout = 5  # a stuck client cannot hold the server

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.log.append((self.path, rng))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        mode = srv.modes.pop(0) if srv.modes else "normal"
        start = 0
        if rng and mode != "ignore_range":
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            start = int(m.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if mode == "truncate":  # promise the whole payload, send half, close
            payload = payload[: len(payload) // 2]
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class LoopbackServer:
    def __init__(self):
        self.httpd = HTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.files, self.httpd.log, self.httpd.modes = {}, [], []
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def serve(self, path: str, body: bytes, modes=()) -> str:
        self.httpd.files[path] = body
        self.httpd.log.clear()
        self.httpd.modes[:] = list(modes)
        return self.url(path)

    @property
    def log(self):
        return self.httpd.log

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def server():
    srv = LoopbackServer()
    yield srv
    srv.close()


CKPT = tiny_checkpoint_bytes()
CKPT_SHA = hashlib.sha256(CKPT).hexdigest()


def entry(name="tiny_demo", **kw) -> W.WeightsEntry:
    base = dict(backbone=TINY, file_name="tiny.pth", url="http://127.0.0.1:9/unused", sha256=CKPT_SHA,
                size=len(CKPT), description="tiny test checkpoint", license="test")
    base.update(kw)
    return W.WeightsEntry(name, **base)


# ----------------------------------------------------------------------------------------------
# download


def test_full_download_verifies_and_records(server, tmp_path, capsys):
    url = server.serve("/tiny.pth", CKPT)
    with registered(entry()):
        path = W.download_weights("tiny_demo", weights_dir=tmp_path, url=url, progress=True)
        assert path == tmp_path / "tiny.pth"
        assert path.read_bytes() == CKPT
        assert not (tmp_path / "tiny.pth.part").exists()
        assert server.log == [("/tiny.pth", None)]  # one request, no Range
        manifest = json.loads((tmp_path / "weights.json").read_text())["files"]
        assert manifest["tiny_demo"]["sha256"] == CKPT_SHA
        assert manifest["tiny_demo"]["size"] == len(CKPT)
        assert manifest["tiny_demo"]["source"] == url
        assert W.find_weights(TINY, tmp_path) == path
        # present already: returned without another request
        assert W.download_weights("tiny_demo", weights_dir=tmp_path, url=url) == path
        assert len(server.log) == 1
    assert "tiny.pth" in capsys.readouterr().err  # the progress bar goes to stderr


def test_resume_sends_range_and_appends(server, tmp_path):
    url = server.serve("/tiny.pth", CKPT)
    (tmp_path / "tiny.pth.part").write_bytes(CKPT[:1000])
    with registered(entry()):
        path = W.download_weights("tiny_demo", weights_dir=tmp_path, url=url, progress=False)
    assert server.log == [("/tiny.pth", "bytes=1000-")]
    assert W.file_sha256(path) == CKPT_SHA


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    url = server.serve("/tiny.pth", CKPT, modes=["ignore_range"])
    (tmp_path / "tiny.pth.part").write_bytes(b"x" * 500)  # stale bytes that must not survive
    with registered(entry()):
        path = W.download_weights("tiny_demo", weights_dir=tmp_path, url=url, progress=False)
    assert server.log == [("/tiny.pth", "bytes=500-")]
    assert path.read_bytes() == CKPT


def test_interrupted_download_keeps_part_and_resumes(server, tmp_path):
    url = server.serve("/tiny.pth", CKPT, modes=["truncate"])
    part = tmp_path / "tiny.pth.part"
    with registered(entry()):
        with pytest.raises(HLError, match="run it again to resume"):
            W.download_weights("tiny_demo", weights_dir=tmp_path, url=url, progress=False)
        assert part.stat().st_size == len(CKPT) // 2
        assert not (tmp_path / "tiny.pth").exists()
        path = W.download_weights("tiny_demo", weights_dir=tmp_path, url=url, progress=False)
    assert server.log == [("/tiny.pth", None), ("/tiny.pth", f"bytes={len(CKPT) // 2}-")]
    assert W.file_sha256(path) == CKPT_SHA


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=len(CKPT)))
def test_resume_from_any_cut_gives_the_same_file(server, cut):
    url = server.serve("/tiny.pth", CKPT)
    with tempfile.TemporaryDirectory() as d, registered(entry()):
        root = Path(d)
        if cut:
            (root / "tiny.pth.part").write_bytes(CKPT[:cut])
        path = W.download_weights("tiny_demo", weights_dir=root, url=url, progress=False)
        assert path.read_bytes() == CKPT
        assert server.log == [("/tiny.pth", f"bytes={cut}-" if cut else None)]
        left = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
        assert left == ["tiny.pth", "weights.json"]


def test_sha_mismatch_removes_the_file(server, tmp_path):
    url = server.serve("/tiny.pth", CKPT)
    with registered(entry(sha256="0" * 64)), pytest.raises(HLError) as err:
        W.download_weights("tiny_demo", weights_dir=tmp_path, url=url, progress=False)
    msg = str(err.value)
    assert f"its sha256 is {CKPT_SHA}, expected {'0' * 64}" in msg and "\n" not in msg
    assert not (tmp_path / "tiny.pth").exists() and not (tmp_path / "tiny.pth.part").exists()


def test_size_mismatch_removes_the_file(server, tmp_path):
    url = server.serve("/tiny.pth", CKPT)
    with registered(entry(size=len(CKPT) + 1)), pytest.raises(HLError, match=f"has {len(CKPT)} bytes"):
        W.download_weights("tiny_demo", weights_dir=tmp_path, url=url, progress=False)
    assert list(p for p in tmp_path.iterdir() if not p.name.startswith(".")) == []


def test_download_that_is_not_a_checkpoint_is_removed(server, tmp_path):
    url = server.serve("/page.html", b"<html>virus scan warning</html>")
    with registered(entry(sha256=None, size=None)), pytest.raises(HLError) as err:
        W.download_weights("tiny_demo", weights_dir=tmp_path, url=url, progress=False)
    assert "cannot read it as a _test_tiny checkpoint" in str(err.value)
    assert not (tmp_path / "tiny.pth").exists() and not (tmp_path / "tiny.pth.part").exists()


def test_download_with_wrong_layout_is_removed(server, tmp_path):
    url = server.serve("/bad.pth", tiny_checkpoint_bytes(reshape={"fc.weight": (3, 4)}))
    with registered(entry(sha256=None, size=None)), pytest.raises(HLError) as err:
        W.download_weights("tiny_demo", weights_dir=tmp_path, url=url, progress=False)
    assert "shape of fc.weight: file [3,4] != model [2,4]" in str(err.value)
    assert not (tmp_path / "tiny.pth").exists()


def test_404_is_a_clean_error(server, tmp_path):
    server.serve("/tiny.pth", CKPT)
    url = server.url("/nothing-here.pth")
    with registered(entry()), pytest.raises(HLError) as err:
        W.download_weights("tiny_demo", weights_dir=tmp_path, url=url, progress=False)
    assert str(err.value) == f"cannot download {url}: HTTP 404 Not Found"
    assert list(p for p in tmp_path.iterdir() if not p.name.startswith(".")) == []


def test_unreachable_host_is_a_clean_error(tmp_path):
    with socket_closed_port() as port, registered(entry()):
        url = f"http://127.0.0.1:{port}/tiny.pth"
        with pytest.raises(HLError) as err:
            W.download_weights("tiny_demo", weights_dir=tmp_path, url=url, progress=False, timeout=5)
    msg = str(err.value)
    assert msg.startswith(f"cannot download {url}: ") and "\n" not in msg


@contextlib.contextmanager
def socket_closed_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    yield port


def test_drive_hosted_entries_ask_for_a_manual_download(tmp_path):
    with pytest.raises(HLError, match=r"hl weights add tased_dhf1k FILE"):
        W.download_weights("tased_dhf1k", weights_dir=tmp_path)
    with pytest.raises(HLError, match="unknown weights 'nope'"):
        W.download_weights("nope", weights_dir=tmp_path)


# ----------------------------------------------------------------------------------------------
# check and add


def test_check_checkpoint_accepts_the_public_format(tmp_path):
    f = tmp_path / "ok.pth"
    f.write_bytes(CKPT)
    assert W.check_checkpoint(TINY, f) == []
    # the file loads into the backbone the way create() loads it
    from hl.extract.backbones import create

    assert torch.equal(create(TINY, weights=f).fc.weight, _tiny_filter(torch.load(f))["fc.weight"])


def test_check_checkpoint_lists_every_difference(tmp_path):
    f = tmp_path / "bad.pth"
    f.write_bytes(tiny_checkpoint_bytes(rename={"conv.weight": "conv.w"}, reshape={"fc.weight": (10, 3)}))
    assert W.check_checkpoint(TINY, f) == [
        "missing: conv.weight",
        "shape of fc.weight: file [10,3] != model [2,4]",
        "unexpected: conv.w",
    ]


def test_check_checkpoint_num_batches_tracked_present_or_not(tmp_path):
    f = tmp_path / "new.pth"
    f.write_bytes(tiny_checkpoint_bytes(drop_bn_count=False))
    assert W.check_checkpoint(TINY, f) == []


def test_check_checkpoint_unreadable_file_is_one_line(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("not a checkpoint at all")
    with pytest.raises(HLError) as err:
        W.check_checkpoint(TINY, f)
    msg = str(err.value)
    assert msg.startswith(f"{f}: cannot read it as a {TINY} checkpoint (") and "\n" not in msg
    with pytest.raises(HLError, match="no such file"):
        W.check_checkpoint(TINY, tmp_path / "absent.pth")
    with pytest.raises(HLError, match="unknown backbone 'no_such_net'"):
        W.check_checkpoint("no_such_net", f)


def test_add_weights_copies_a_fitting_file_and_records_it(tmp_path):
    src = tmp_path / "downloads" / "whatever.pth"
    src.parent.mkdir()
    src.write_bytes(CKPT)
    root = tmp_path / "w"
    with registered(entry()):
        dest = W.add_weights("tiny_demo", src, weights_dir=root)
        assert dest == root / "tiny.pth" and dest.read_bytes() == CKPT and not dest.is_symlink()
        assert src.exists()
        rec = json.loads((root / "weights.json").read_text())["files"]["tiny_demo"]
        assert (rec["sha256"], rec["size"], rec["backbone"]) == (CKPT_SHA, len(CKPT), TINY)
        assert rec["file"] == "tiny.pth"
        assert W.find_weights(TINY, root) == dest
        assert sorted(p.name for p in root.iterdir()) == ["tiny.pth", "weights.json"]


def test_add_weights_rejects_renamed_key_and_wrong_shape(tmp_path):
    src = tmp_path / "bad.pth"
    src.write_bytes(tiny_checkpoint_bytes(rename={"bn.weight": "bn.gamma"},
                                          reshape={"conv.weight": (4, 3, 1, 1, 1)}))
    root = tmp_path / "w"
    with registered(entry()), pytest.raises(HLError) as err:
        W.add_weights("tiny_demo", src, weights_dir=root)
    msg = str(err.value)
    assert f"{src} does not fit backbone {TINY} (3 differences)" in msg
    assert "missing: bn.weight" in msg
    assert "unexpected: bn.gamma" in msg
    assert "shape of conv.weight: file [4,3,1,1,1] != model [4,3,3,3,3]" in msg
    assert not (root / "tiny.pth").exists()


def test_add_weights_refuses_a_different_file_under_a_published_name(tmp_path):
    src = tmp_path / "other.pth"
    src.write_bytes(tiny_checkpoint_bytes(seed=1))  # fits, but is not the published file
    with registered(entry()), pytest.raises(HLError, match="add your own file under the backbone"):
        W.add_weights("tiny_demo", src, weights_dir=tmp_path / "w")


def test_add_weights_for_a_bare_backbone_and_links(tmp_path):
    src = tmp_path / "finetuned.pth"
    src.write_bytes(tiny_checkpoint_bytes(seed=2))
    root = tmp_path / "w"
    dest = W.add_weights(TINY, src, weights_dir=root, copy=False)
    assert dest == root / "user" / TINY / "finetuned.pth"
    assert dest.is_symlink() and dest.resolve() == src.resolve()
    assert W.find_weights(TINY, root) == dest
    rows = {r["name"]: r for r in W.list_weights(root)}
    assert rows[f"{TINY}:finetuned.pth"]["present"] and rows[f"{TINY}:finetuned.pth"]["source"] == "user"
    with pytest.raises(HLError, match="unknown weights name or backbone 'nonet'"):
        W.add_weights("nonet", src, weights_dir=root)


def test_registry_files_come_before_user_files(tmp_path):
    own = tmp_path / "mine.pth"
    own.write_bytes(tiny_checkpoint_bytes(seed=3))
    official = tmp_path / "official.pth"
    official.write_bytes(CKPT)
    root = tmp_path / "w"
    with registered(entry()):
        assert W.find_weights(TINY, root) is None
        W.add_weights(TINY, own, weights_dir=root)
        assert W.find_weights(TINY, root) == root / "user" / TINY / "mine.pth"
        W.add_weights("tiny_demo", official, weights_dir=root)
        assert W.find_weights(TINY, root) == root / "tiny.pth"


# ----------------------------------------------------------------------------------------------
# directory, listing, hashing, registry


def test_weights_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(W.ENV_VAR, raising=False)
    default = W.weights_dir()
    assert default.parts[-2:] == ("hl", "weights")
    monkeypatch.setenv(W.ENV_VAR, str(tmp_path / "from_env"))
    assert W.weights_dir() == tmp_path / "from_env"
    assert W.weights_dir(tmp_path / "given") == tmp_path / "given"
    monkeypatch.setenv(W.ENV_VAR, "")
    assert W.weights_dir() == default


def test_list_weights_shows_presence(tmp_path):
    (tmp_path / "c3d.pickle").write_bytes(b"12345")
    rows = W.list_weights(tmp_path)
    assert [r["name"] for r in rows] == list(W.REGISTRY)
    by_name = {r["name"]: r for r in rows}
    c3d = by_name["c3d_sports1m"]
    assert (c3d["present"], c3d["status"], c3d["size"]) == (True, "present", 5)
    assert c3d["path"] == str(tmp_path / "c3d.pickle")
    pann = by_name["pann_cnn14"]
    assert (pann["present"], pann["status"], pann["size"]) == (False, "absent", 327_428_481)
    assert not any(r["present"] for n, r in by_name.items() if n != "c3d_sports1m")


def test_weights_hash_is_cached_per_file_version(tmp_path, monkeypatch):
    calls = []
    real = W.file_sha256
    monkeypatch.setattr(W.hashing, "file_sha256", lambda p, *a: calls.append(p) or real(p, *a))
    f = tmp_path / "w.pth"
    f.write_bytes(b"a" * 1000)
    assert W.weights_hash(None) == "none"
    assert W.weights_hash(f) == hashlib.sha256(b"a" * 1000).hexdigest()
    assert W.weights_hash(str(f)) == W.weights_hash(f)
    assert len(calls) == 1
    f.write_bytes(b"b" * 1001)  # replaced: size (and mtime) change, hashed again
    assert W.weights_hash(f) == hashlib.sha256(b"b" * 1001).hexdigest()
    assert len(calls) == 2
    with pytest.raises(HLError, match="weights file"):
        W.weights_hash(tmp_path / "gone.pth")


@given(data=st.binary(max_size=3 * 1024), chunk=st.integers(min_value=1, max_value=700))
def test_file_sha256_matches_hashlib_for_any_chunking(data, chunk):
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "x"
        f.write_bytes(data)
        assert W.file_sha256(f, chunk_size=chunk) == hashlib.sha256(data).hexdigest()


def test_registry_entries_are_well_formed():
    assert set(W.REGISTRY) == {
        "i3d_rgb_imagenet", "i3d_rgb_charades", "i3d_flow_imagenet", "i3d_flow_charades",
        "c3d_sports1m", "r3d34_kinetics", "pann_cnn14", "tased_dhf1k",
        "raft_large_c_t_skht_v2", "raft_large_c_t_skht_v1", "raft_large_c_t_v2", "raft_large_sintel",
        "raft_large_things", "raft_small_c_t_v2", "raft_small_c_t_v1", "raft_small_things",
    }
    for name, e in W.REGISTRY.items():
        assert e.name == name
        assert e.url.startswith(("http://", "https://"))
        assert e.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", e.sha256)
        assert e.sha256_prefix is None or re.fullmatch(r"[0-9a-f]{8}", e.sha256_prefix)
        assert e.backbone in {"i3d", "i3d_flow", "c3d", "r3d34", "pann", "tased", "raft_large", "raft_small"}
        assert e.description and e.license
    assert W.REGISTRY["i3d_flow_imagenet"].backbone == "i3d_flow"
    assert "c3d_maps" in W.backbones_for("c3d_sports1m")


def test_registry_and_backbone_specs_name_each_other():
    named = {e.backbone for e in W.REGISTRY.values()}
    named |= {b for e in W.REGISTRY.values() for b in W.backbones_for(e.name)}
    missing = sorted(named - set(list_backbones()))
    if missing:
        pytest.skip(f"backbones not registered yet: {missing}")
    for backbone in named:
        for listed in get_spec(backbone).weights:  # what a spec lists must be a registry entry that fits it
            assert listed.name in W.REGISTRY, f"backbone {backbone} names unknown weights {listed.name!r}"
            e = W.REGISTRY[listed.name]
            assert e == listed and backbone in W.backbones_for(e.name)
    for e in W.REGISTRY.values():  # the backbone an entry was made for lists it
        assert e in get_spec(e.backbone).weights


# ----------------------------------------------------------------------------------------------
# a real backbone: C3D and its public file layout


def _zero_view_state(backbone: str) -> dict[str, torch.Tensor]:
    """The backbone's state dict as tensors of the right shapes backed by one element each (a few KB)."""
    layout = W.model_layout(get_spec(backbone)).tensors
    return {k: torch.zeros((), dtype=dtype).expand(shape) for k, (shape, dtype) in layout.items()}


@pytest.fixture
def c3d_spec():
    if "c3d" not in list_backbones():
        pytest.skip("backbone c3d is not registered yet")
    return get_spec("c3d")


def test_c3d_public_layout_fits_and_mismatch_is_reported(c3d_spec, tmp_path):
    expected = _zero_view_state("c3d")
    # the names and shapes of c3d.pickle (DavideA/c3d-pytorch: Sports-1M, 487 classes)
    assert tuple(expected["conv1.weight"].shape) == (64, 3, 3, 3, 3)
    assert tuple(expected["fc6.weight"].shape) == (4096, 8192)
    assert tuple(expected["fc8.weight"].shape) == (487, 4096)
    state = dict(expected)
    good = tmp_path / "c3d.pickle"
    torch.save(state, good)
    assert good.stat().st_size < 1_000_000
    assert W.check_checkpoint("c3d", good) == []

    state["conv1.w"] = state.pop("conv1.weight")
    state["fc6.weight"] = torch.zeros(10, 3)
    bad = tmp_path / "bad.pickle"
    torch.save(state, bad)
    assert W.check_checkpoint("c3d", bad) == [
        "missing: conv1.weight",
        "shape of fc6.weight: file [10,3] != model [4096,8192]",
        "unexpected: conv1.w",
    ]
    with pytest.raises(HLError, match=r"\(3 differences\)"):
        W.add_weights("c3d_sports1m", bad, weights_dir=tmp_path / "w")
    dest = W.add_weights("c3d", good, weights_dir=tmp_path / "w")  # official file name: the registry entry
    assert dest == tmp_path / "w" / "c3d.pickle"
    assert W.find_weights("c3d", tmp_path / "w") == dest
    if "c3d_maps" in list_backbones():
        assert W.find_weights("c3d_maps", tmp_path / "w") == dest


# each public file's container, as its project saves it: (backbone, wrap our names into that file)
PUBLIC_LAYOUTS = {
    "i3d_rgb_imagenet": lambda s: {k: v for k, v in s.items() if not k.endswith("num_batches_tracked")},
    "i3d_flow_imagenet": lambda s: {k: v for k, v in s.items() if not k.endswith("num_batches_tracked")},
    "c3d_sports1m": lambda s: s,
    "r3d34_kinetics": lambda s: {"epoch": 200, "arch": "resnet-34",
                                 "state_dict": {"module." + k: v for k, v in s.items()}},
    "pann_cnn14": lambda s: {"model": s, "iteration": 600000},
    "tased_dhf1k": lambda s: {"module." + k: v for k, v in s.items()},
}


@pytest.mark.parametrize("name", sorted(PUBLIC_LAYOUTS))
def test_public_container_of_each_entry_fits_its_backbone(name, tmp_path):
    e = W.REGISTRY[name]
    for backbone in W.backbones_for(name):
        if backbone not in list_backbones():
            pytest.skip(f"backbone {backbone} is not registered yet")
        expected = _zero_view_state(backbone)
        f = tmp_path / f"{backbone}-{e.file_name}"
        torch.save(PUBLIC_LAYOUTS[name](expected), f)
        assert W.check_checkpoint(backbone, f) == []
        broken = PUBLIC_LAYOUTS[name](dict(list(expected.items())[1:]))
        torch.save(broken, f)
        assert W.check_checkpoint(backbone, f) == [f"missing: {next(iter(expected))}"]


def test_i3d_charades_checkpoint_with_157_classes_fits(tmp_path):
    import torch

    from hl.extract.backbones import create
    from hl.extract.weights import add_weights, check_checkpoint

    model = create("i3d")
    model.replace_logits(157)
    path = tmp_path / "rgb_charades.pt"
    torch.save(model.state_dict(), path)
    assert check_checkpoint("i3d", path) == []
    assert add_weights("i3d_rgb_charades", path, tmp_path / "w").name == "rgb_charades.pt"
    # other layers still must match exactly
    state = model.state_dict()
    state["Mixed_5c.b0.conv3d.weight"] = torch.zeros(1, 1, 1, 1, 1)
    torch.save(state, tmp_path / "bad.pt")
    assert any("Mixed_5c.b0.conv3d.weight" in d for d in check_checkpoint("i3d", tmp_path / "bad.pt"))


# ----------------------------------------------------------------------------------------------
# a checkpoint that would run code when unpickled is refused, and nothing of it runs


@pytest.mark.parametrize("backbone", [TINY, "pann"])  # pann: its checkpoint's numpy allow-list admits no more
def test_a_checkpoint_that_would_run_code_is_refused(backbone, tmp_path):
    from checkpoint_files import code_running_checkpoints

    from hl.extract.backbones import create

    marker = tmp_path / "ran"
    state = {"module." + k: v for k, v in Tiny().state_dict().items()}
    for f in code_running_checkpoints(tmp_path, marker, state):
        calls = [lambda f=f: W.check_checkpoint(backbone, f),
                 lambda f=f: W.add_weights(backbone, f, weights_dir=tmp_path / "w"),
                 lambda f=f: create(backbone, weights=f)]
        for call in calls:
            with pytest.raises(HLError) as err:
                call()
            msg = str(err.value)
            system = f"{os.system.__module__}.system"  # posix.system
            assert msg.startswith(f"{f}: not a plain checkpoint: it asks to run code on load ({system})")
            assert "\n" not in msg
        assert not marker.exists()
        assert not (tmp_path / "w" / "user" / backbone / f.name).exists()


# ----------------------------------------------------------------------------------------------
# the registry against its upstream sources


def test_md5_the_host_publishes_is_checked(server, tmp_path):
    url = server.serve("/tiny.pth", CKPT)
    with registered(entry(md5=hashlib.md5(CKPT).hexdigest())):
        assert W.download_weights("tiny_demo", weights_dir=tmp_path, url=url, progress=False).exists()
    with registered(entry(md5="0" * 32)), pytest.raises(HLError, match="its md5 is"):
        W.download_weights("tiny_demo", weights_dir=tmp_path / "other", url=url, progress=False)
    assert not (tmp_path / "other" / "tiny.pth").exists()


def test_a_download_that_would_run_code_is_refused_and_nothing_runs(server, tmp_path):
    from checkpoint_files import code_running_checkpoints

    marker = tmp_path / "ran"
    for f in code_running_checkpoints(tmp_path, marker, dict(Tiny().state_dict())):
        url = server.serve("/" + f.name, f.read_bytes())
        with registered(entry(sha256=None, size=None)), pytest.raises(HLError, match="asks to run code"):
            W.download_weights("tiny_demo", weights_dir=tmp_path / "w", url=url, progress=False)
        assert not marker.exists() and not (tmp_path / "w" / "tiny.pth").exists()


def test_registry_addresses_follow_their_upstream_sources():
    pann = W.REGISTRY["pann_cnn14"]
    assert pann.url == "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth?download=1"
    assert pann.md5 == "541141fa2ee191a88f24a3219fff024e" and pann.sha256 and pann.size == 327_428_481
    r3d = W.REGISTRY["r3d34_kinetics"]  # the README's "old pretrained models" folder
    assert "1zvl89AgFAApbH0At-gMuZSeQB_LpNP-M" in r3d.url and not r3d.direct
    assert W.REGISTRY["tased_dhf1k"].license.startswith("MIT")
    assert W.REGISTRY["c3d_sports1m"].url.endswith("imagelab.ing.unimore.it/files/c3d_pytorch/c3d.pickle")


def test_weights_list_shows_each_licence(tmp_path):
    from click.testing import CliRunner

    from hl.pipelines.cli import main

    r = CliRunner().invoke(main, ["weights", "list", "--weights-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    tased = next(i for i, line in enumerate(lines) if "tased_dhf1k" in line)
    assert lines[tased + 1].strip().startswith("licence: MIT (MichiganCOG/TASED-Net LICENSE")
