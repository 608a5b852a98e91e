"""Every write is atomic: the old file survives a failed write, and no temp file is left behind."""

from __future__ import annotations

import numpy as np
import pytest

from faceeditor.core.atomic import atomic_write, atomic_write_text
from faceeditor.core.state import FaceState
from faceeditor.edit.params import EditParams


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_text(p, "old")

    def boom(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(p, boom)
    assert p.read_text() == "old" and sorted(x.name for x in tmp_path.iterdir()) == ["a.json"]
    atomic_write_text(p, "new")
    assert p.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_state_and_presets_are_written_atomically(tmp_path, monkeypatch):
    s = FaceState((10, 10), (0, 0, 1, 1), np.eye(3), np.zeros(3), 100.0, np.zeros(100), np.zeros(53), np.zeros((9, 3)))
    s.save(tmp_path / "st")
    EditParams(yaw=5.0).save(tmp_path / "p.json")
    assert FaceState.load(tmp_path / "st").focal_px == 100.0 and EditParams.load(tmp_path / "p.json").yaw == 5.0
    names = {p.name for p in tmp_path.rglob("*")}
    assert not any(n.endswith(".tmp") for n in names)
