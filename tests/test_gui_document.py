"""The editor's Qt-free model: history (undo/redo, gesture merging), Document edits, sessions."""

from __future__ import annotations

import numpy as np
import pytest

from faceeditor.edit.document import Document, EditState, expression_names, group_expressions, mirror_name
from faceeditor.edit.history import History
from faceeditor.edit.light import LightParams
from faceeditor.edit.limits import POSE_LIMITS
from faceeditor.edit.params import EditParams


@pytest.fixture(scope="module")
def names() -> list[str]:
    return expression_names()


@pytest.fixture
def state(names):
    from faceeditor.core.state import FaceState

    expr = np.zeros(len(names), np.float32)
    expr[names.index("mouthSmile_L")] = 0.3
    return FaceState(image_size=(64, 48), face_box=(10, 10, 50, 40), rotation=np.eye(3, dtype=np.float32),
                     translation=np.array([0, 0, -60], np.float32), focal_px=80.0,
                     identity=np.zeros(100, np.float32), expression=expr, sh=np.zeros((9, 3), np.float32),
                     texture=np.full((8, 16, 3), 128, np.uint8))


@pytest.fixture
def doc(names, state) -> Document:
    d = Document(names)
    d.set_photo(None, np.zeros((48, 64, 3), np.uint8))
    d.set_state(state, 0, LightParams(10.0, 20.0, 0.6, 0.3, 6000.0))
    return d


def test_history_undo_redo_and_truncation():
    h = History(0)
    h.push(1, "a")
    h.push(2, "b")
    assert h.current == 2 and h.undo() == 1 and h.undo() == 0 and h.undo() is None
    assert h.redo() == 1
    h.push(5, "c")  # drops the redo branch
    assert not h.can_redo() and h.labels() == ["Open", "a", "c"]


def test_history_merges_one_gesture_only():
    h = History(0.0)
    for i, t in enumerate((0.0, 0.1, 0.2)):
        h.push(float(i + 1), "yaw", merge_key="yaw", now=t)
    assert len(h) == 2 and h.current == 3.0
    h.close_gesture()  # slider released: the next drag is a new undo step
    h.push(9.0, "yaw", merge_key="yaw", now=0.3)
    assert len(h) == 3
    h.push(10.0, "yaw", merge_key="yaw", now=5.0)  # long pause: new step too
    assert len(h) == 4
    assert h.undo() == 9.0 and h.undo() == 3.0 and h.undo() == 0.0


def test_groups_cover_all_53_names(names):
    groups = group_expressions(names)
    assert list(groups) == ["Brows", "Eyes", "Cheeks", "Nose", "Mouth", "Jaw"]
    assert sum(len(v) for v in groups.values()) == 53 == len(names)
    assert mirror_name("eyeBlink_L") == "eyeBlink_R" and mirror_name("jawOpen") is None


def test_expression_link_macro_and_undo(doc):
    assert doc.expression_value("mouthSmile_L") == pytest.approx(0.3)
    v0 = doc.version
    doc.set_expression("eyeBlink_L", 0.6, link=True)
    assert doc.version > v0 and doc.dirty
    assert doc.expression_value("eyeBlink_R") == pytest.approx(0.6)
    doc.close_gesture()
    doc.set_macro("smile", 0.5)
    r = doc.resolved_edit()
    assert r.expression["mouthSmile_L"] == pytest.approx(0.3 + 0.5)  # fitted base + macro
    assert r.expression["eyeBlink_L"] == pytest.approx(0.6)
    # a slider moved under a macro shows the value asked for
    doc.close_gesture()
    doc.set_expression("mouthSmile_L", 0.9)
    assert doc.expression_value("mouthSmile_L") == pytest.approx(0.9)
    doc.close_gesture()
    doc.set_macro("smile", 0.0)  # macro back to 0: the base remains
    assert doc.resolved_edit().expression["mouthSmile_L"] == pytest.approx(0.4)
    while doc.undo():
        pass
    assert doc.is_unedited() and doc.edit.to_dict() == EditState().to_dict()
    assert doc.redo() and doc.expression_value("eyeBlink_L") == pytest.approx(0.6)


def test_pose_clamped_light_and_resets(doc):
    doc.set_pose(yaw=80.0)
    assert doc.edit.params.yaw == POSE_LIMITS["yaw"] == 30.0
    doc.set_light_fields(azimuth=-30.0)
    light = doc.edit.params.light
    assert light.azimuth == -30.0 and light.elevation == 20.0  # the rest from the photo's light
    doc.set_light_sh(np.ones((9, 3)))
    assert np.allclose(doc.resolved_edit().light.to_sh(), 1.0)
    doc.set_expression("jawOpen", 0.7)
    doc.reset("Jaw")
    assert "jawOpen" not in doc.edit.params.expression
    doc.reset("light")
    assert doc.edit.params.light is None and doc.edit.params.yaw == 30.0
    doc.reset("all")
    assert doc.is_unedited()
    n = len(doc.history)
    doc.reset("all")  # nothing to reset: no new undo step
    assert len(doc.history) == n


def test_preset_roundtrip(doc, tmp_path):
    doc.set_pose(pitch=-10.0)
    doc.set_macro("surprise", 1.0)
    p = tmp_path / "preset.json"
    doc.resolved_edit().save(p)
    doc.reset("all")
    doc.load_preset(EditParams.load(p))
    assert doc.edit.params.pitch == -10.0
    assert doc.expression_value("browInnerUp_L") == pytest.approx(1.0)


def test_session_roundtrip(doc, tmp_path, monkeypatch):
    from faceeditor.io.session import autosave_path, load_session, pending_autosave, save_session

    monkeypatch.setenv("FACEEDITOR_HOME", str(tmp_path / "home"))
    doc.photo_path = tmp_path / "photo.png"
    doc.set_pose(yaw=12.0)
    doc.close_gesture()
    doc.set_expression("jawOpen", 0.4)
    doc.undo()
    path = save_session(tmp_path / "s.fesession", doc.to_session())
    s = load_session(path)
    assert s.photo_path == str(tmp_path / "photo.png") and s.position == 1 and len(s.history) == 3
    assert np.array_equal(s.state.texture, doc.state.texture)
    other = Document(doc.expression_names)
    other.restore(s, doc.photo)
    assert other.edit.params.yaw == 12.0 and other.history.can_redo() and not other.dirty
    other.redo()
    assert other.expression_value("jawOpen") == pytest.approx(0.4)
    assert pending_autosave() is None
    save_session(autosave_path(), doc.to_session())
    assert pending_autosave() == autosave_path() and autosave_path().parent == tmp_path / "home"


def test_bad_session_is_a_user_error(tmp_path):
    from faceeditor.io.session import SessionError, load_session

    bad = tmp_path / "x.fesession"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SessionError):
        load_session(bad)
    with pytest.raises(SessionError):
        load_session(tmp_path / "missing.fesession")


def test_install_desktop_and_uninstall(tmp_path):
    import configparser
    import shutil
    import subprocess
    import sys

    from faceeditor.cli import main

    assert main(["install-desktop", "--data-dir", str(tmp_path)]) == 0
    desktop = tmp_path / "applications" / "faceeditor.desktop"
    png = tmp_path / "icons" / "hicolor" / "256x256" / "apps" / "faceeditor.png"
    svg = tmp_path / "icons" / "hicolor" / "scalable" / "apps" / "faceeditor.svg"
    assert desktop.is_file() and png.is_file() and svg.is_file()
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(desktop)
    entry = cp["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Name"] == "FaceEditor"
    assert entry["Exec"].endswith("-m faceeditor gui %f") and sys.executable in entry["Exec"]
    assert entry["Icon"] == str(png) and "image/jpeg" in entry["MimeType"].split(";")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if shutil.which("desktop-file-validate"):
        r = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    assert main(["install-desktop", "--uninstall", "--data-dir", str(tmp_path)]) == 0
    assert not desktop.exists() and not png.exists() and not svg.exists()


def test_gui_command_is_registered():
    from faceeditor.cli import build_parser

    parser, table = build_parser()
    assert {"gui", "install-desktop"} <= set(table)
    args = parser.parse_args(["gui", "photo.jpg"])
    assert str(args.photo) == "photo.jpg"


def test_a_drag_is_one_history_entry_labelled_with_its_final_value(doc):
    n = len(doc.history)
    for yaw in (4.0, 12.0, 20.0, 27.0):
        doc.set_pose(yaw=yaw)
    doc.close_gesture()
    assert len(doc.history) == n + 1
    assert doc.history.labels()[-1] == "Pose: yaw +27°"
