"""hl.common: the user error type and atomic writes."""
import os
import subprocess
import sys

import pytest

from hl.common import HLError, atomic_path, clean_stale_temps, is_temp, one_line, write_text


def test_atomic_path_renames_on_success_and_removes_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".json" and is_temp(tmp)
        tmp.write_text("{}")
        assert not target.exists()
    assert target.read_text() == "{}"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "{}"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]
    write_text(target, "new")
    assert target.read_text() == "new"


def test_clean_stale_temps_removes_only_dead_writers_files(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    host = socket.gethostname()
    stale = tmp_path / f".a.h5.tmp-{host}-{int(dead.stdout)}-0123abcd.h5"
    alive = tmp_path / f".b.h5.tmp-{host}-{os.getpid()}-0123abcd.h5"
    other = tmp_path / "keep.tmp-notmine.h5"
    for p in (stale, alive, other):
        p.write_text("x")
    assert clean_stale_temps(tmp_path) == 1
    assert not stale.exists() and alive.exists() and other.exists()
    assert clean_stale_temps(tmp_path, older_than_s=-1) == 1 and not alive.exists()


def test_one_line():
    assert one_line(ValueError("bad thing\nsecond line")) == "ValueError: bad thing"
    assert one_line(KeyError()) == "KeyError"
    assert issubclass(HLError, Exception) and str(HLError("x: y")) == "x: y"
