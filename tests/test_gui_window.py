"""The editor window (Qt offscreen; the 3D view renders through EGL here, see test_gui_gl.py for
the QOpenGLWidget under X): a real photo dropped -> fitted -> slider -> pixels -> undo -> export."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest


@pytest.fixture
def win(app, engine, tmp_path, monkeypatch):
    from faceeditor.app.driver import Driver
    from faceeditor.app.window import MainWindow

    monkeypatch.setenv("FACEEDITOR_HOME", str(tmp_path / "home"))
    w = MainWindow(engine)
    w.show()
    w.driver = Driver(w)
    w.driver.pump(30, lambda: w.lbl_device.text() != "device …")
    yield w
    w.shutdown()
    w.close()
    w.deleteLater()
    w.driver.pump(0.05)


def _sample(tmp_path, size=None):
    from faceeditor.core.paths import sample_image_path
    from faceeditor.io import load_image, save_image

    rgb = load_image(sample_image_path()).pixels
    if size is not None:
        import cv2

        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    p = tmp_path / "portrait.png"
    save_image(p, rgb)
    return p, rgb


def _wait_exports(win, n, timeout=60.0):
    done = []
    return done, (lambda: win.driver.pump(timeout, lambda: len(done) >= n))


def test_drop_fit_slider_undo_export(win, tmp_path, artifacts_dir):
    from faceeditor.io import load_image
    from faceeditor.io.mesh import read_obj

    d = win.driver
    photo, rgb = _sample(tmp_path)
    t0 = d.drop(photo)
    assert d.wait_fitted(120), win.banner.text.text()
    first_ms = (time.perf_counter() - t0) * 1e3
    assert win.doc.state is not None and win.doc.photo.shape == rgb.shape
    assert d.wait_idle(60)
    # the 3D view shows the head: many pixels differ from the empty backdrop
    assert d.pump(10, lambda: win.viewport.stamp >= 0)
    vp = d.viewport_pixels().astype(int)
    assert (np.abs(vp - vp[2, 2]).sum(-1) > 60).mean() > 0.05
    before = d.canvas_pixels()

    stamp = d.set_slider(win.pose_panel.sliders["yaw"], 15.0)
    assert win.doc.edit.params.yaw == pytest.approx(15.0)
    assert d.pump(30, lambda: win.canvas.stamp >= stamp)  # preview shown
    win.doc.close_gesture()
    assert d.wait_idle(60)  # then the full-resolution render
    after = d.canvas_pixels()
    changed = np.abs(after.astype(int) - before.astype(int)).sum(-1) > 30
    assert changed.mean() > 0.005, "moving the yaw slider must change the photo"

    win.act_undo.trigger()
    assert win.doc.edit.params.yaw == 0.0 and win.pose_panel.sliders["yaw"].value() == 0.0
    assert d.wait_idle(60)
    restored = d.canvas_pixels()
    assert np.abs(restored.astype(int) - before.astype(int)).max() <= 1, "undo must restore the pixels"
    win.act_redo.trigger()
    assert d.wait_idle(60)
    assert np.array_equal(d.canvas_pixels(), after)

    # exports, each written on the render thread, then loaded back
    done = []
    f = win.files
    f.export_image(tmp_path / "edited.png", callback=done.append)
    f.export_image(tmp_path / "edited.jpg", quality=80, callback=done.append)
    f.export_mesh(tmp_path / "head.obj", callback=done.append)
    f.export_params(tmp_path / "params.json", callback=done.append)
    assert d.pump(120, lambda: len(done) == 4), win.banner.text.text()
    png = load_image(tmp_path / "edited.png").pixels
    assert png.shape == rgb.shape
    assert np.abs(png.astype(int) - rgb.astype(int)).sum(-1).max() > 30  # the edit is in the file
    jpg = load_image(tmp_path / "edited.jpg")
    assert jpg.pixels.shape == rgb.shape and jpg.format == "JPEG"
    assert np.abs(jpg.pixels.astype(float) - png.astype(float)).mean() < 6
    mesh = read_obj(tmp_path / "head.obj")
    assert len(mesh.vertices) == win.engine.model.n_vertices and len(mesh.faces) > 40000
    assert (tmp_path / "head.png").is_file() and (tmp_path / "head.mtl").is_file()
    # the model frame by default: the head sits at the origin (3D tools), not ~1 m down the camera axis
    assert np.linalg.norm(np.asarray(mesh.vertices).mean(0)) < 15.0
    params = json.loads((tmp_path / "params.json").read_text())
    assert isinstance(params, dict) and params
    win.grab().save(str(artifacts_dir / "gui_window.png"))
    print(f"drop -> fitted in {first_ms:.0f} ms")


def test_several_faces_user_clicks_one(win, tmp_path):
    import cv2

    from faceeditor.io import save_image

    d = win.driver
    _, rgb = _sample(tmp_path, 320)
    two = np.ascontiguousarray(np.concatenate([rgb, cv2.flip(rgb, 1)], axis=1))
    p = tmp_path / "two.png"
    save_image(p, two)
    d.drop(p)
    assert d.pump(60, lambda: win.canvas.pick_faces), win.banner.text.text()
    assert len(win.doc.faces) == 2 and win.doc.state is None
    box = win.doc.faces[1].box
    c = win.canvas
    centre = c.photo_rect().topLeft() + QPointF((box[0] + box[2]) / 2, (box[1] + box[3]) / 2) * c.zoom
    QTest.mouseClick(c, Qt.LeftButton, Qt.NoModifier, QPoint(int(centre.x()), int(centre.y())))
    assert d.wait_fitted(120), win.banner.text.text()
    assert win.doc.face_index == 1 and not c.pick_faces
    assert win.act_choose_face.isEnabled()


@pytest.mark.parametrize("kind", ["no_face", "corrupt"])
def test_errors_are_messages_not_crashes(win, tmp_path, kind):
    from faceeditor.io import save_image

    d = win.driver
    if kind == "no_face":
        p = tmp_path / "wall.png"
        save_image(p, np.full((240, 320, 3), 128, np.uint8))
    else:
        p = tmp_path / "broken.jpg"
        p.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    d.drop(p)
    assert d.pump(60, lambda: win.banner.isVisible() and not win.is_fitting())
    assert win.banner.kind == "error"
    text = win.banner.text.text().lower()
    assert ("no face" in text) if kind == "no_face" else ("broken.jpg" in text)
    assert not win.progress.isVisible() and win.doc.state is None
    assert win.lbl_fit.text() == "fit –"  # no stale fit time from an earlier photo
    # the window still works: a tick of the event loop comes back at once
    t = time.perf_counter()
    d.pump(0.05)
    assert time.perf_counter() - t < 1.0


class _SlowRenderer:
    """Stand-in renderer: 60 ms per render, the stamp's colour in the image (for ordering tests)."""

    name = "mesh"

    def __init__(self, photo):
        self.photo, self.calls = photo, []

    def render(self, edit, scale=1.0, cancel=None):
        self.calls.append((edit.yaw, scale))
        time.sleep(0.06)
        h, w = self.photo.shape[:2]
        out = np.empty((round(h * scale), round(w * scale), 3), np.uint8)
        out[:] = int(abs(edit.yaw)) % 256
        return out


def test_latest_request_wins_and_stale_results_are_dropped(win, engine, monkeypatch):
    from faceeditor.fit.synthetic import random_face_state

    d = win.driver
    photo = np.full((400, 400, 3), 90, np.uint8)
    renderers = []

    def make(rgb, state, name, preview=False, progress=None):
        renderers.append(_SlowRenderer(rgb))
        return renderers[-1]

    monkeypatch.setattr(engine, "make_renderer", make)
    win.doc.set_photo(None, photo)
    win.doc.set_state(random_face_state(engine.model, 3, (400, 400)), 0, None)
    assert d.pump(20, lambda: win.canvas.stamp == win.doc.version and win.worker._idle_prepare is None)
    n_before = sum(len(r.calls) for r in renderers)
    for yaw in range(1, 21):  # a burst of 20 slider events within ~40 ms
        win.doc.set_pose(yaw=float(yaw))
        d.pump(0.002)
    assert d.pump(20, lambda: win.canvas.stamp == win.doc.version and win.canvas.shown_scale >= 1.0)
    calls = [c for r in renderers for c in r.calls][n_before:]
    assert len(calls) < 10, f"stale requests were rendered: {calls}"
    assert calls[-1][0] == 20.0
    # a late result never replaces a newer one
    assert not win.canvas.set_result(np.zeros((10, 10, 3), np.uint8), win.doc.version - 5, 1.0)
    assert (d.canvas_pixels()[win.canvas.height() // 2, win.canvas.width() // 2] == 20).all()


def test_autosave_is_offered_back_after_a_crash(win, app, engine, tmp_path):
    from faceeditor.app.driver import Driver
    from faceeditor.app.window import MainWindow
    from faceeditor.fit.synthetic import random_face_state
    from faceeditor.io import save_image
    from faceeditor.io.session import autosave_path

    photo = tmp_path / "p.png"
    save_image(photo, np.full((200, 200, 3), 100, np.uint8))
    from faceeditor.io import load_image

    loaded = load_image(photo)
    win.doc.set_photo(photo, loaded.pixels, loaded)
    win.doc.set_state(random_face_state(engine.model, 5, (200, 200)), 0, None)
    win.doc.set_pose(roll=7.0)
    win.files.autosave(wait=True)
    assert autosave_path().is_file()
    # "crash": the next window finds the autosave
    other = MainWindow(engine)
    other.show()
    try:
        od = Driver(other)
        assert other.files.offer_restore() and other.banner.isVisible()
        restore = next(b for b in other.banner._buttons if b.text() == "Restore")
        restore.click()
        assert od.pump(30, lambda: other.doc.has_face), other.banner.text.text()
        assert other.doc.edit.params.roll == 7.0 and other.doc.dirty
        assert other.act_undo.isEnabled()
    finally:
        other.shutdown()
        other.close()


def test_autosaves_hash_the_photo_once_until_the_file_changes(win, engine, tmp_path, monkeypatch):
    """Autosaves come every few seconds while a slider moves: the photo's reference (its sha256)
    is read from the file once, and again only when the file on disk changed."""
    import os

    from faceeditor.app import fileops
    from faceeditor.fit.synthetic import random_face_state
    from faceeditor.io import load_image, save_image
    from faceeditor.io.session import autosave_path, load_session, photo_ref

    photo = tmp_path / "q.png"
    save_image(photo, np.full((120, 100, 3), 90, np.uint8))
    loaded = load_image(photo)
    win.doc.set_photo(photo, loaded.pixels, loaded)
    win.doc.set_state(random_face_state(engine.model, 6, (100, 120)), 0, None)
    reads = []
    monkeypatch.setattr(fileops, "photo_ref", lambda p: reads.append(p) or photo_ref(p))

    for roll in (3.0, 4.0, 5.0):
        win.doc.set_pose(roll=roll)
        win.files.autosave(wait=True)
    assert len(reads) == 1
    first = load_session(autosave_path()).photo
    assert first is not None and (first.width, first.height) == (100, 120)
    save_image(photo, np.full((120, 100, 3), 30, np.uint8))  # the file changes on disk
    st = photo.stat()
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    win.doc.set_pose(roll=6.0)
    win.files.autosave(wait=True)
    assert len(reads) == 2
    assert load_session(autosave_path()).photo.sha256 != first.sha256


def test_actions_shortcuts_and_tooltips(win):
    from PySide6.QtGui import QKeySequence

    assert win.act_undo.shortcut().matches(QKeySequence("Ctrl+Z")) == QKeySequence.ExactMatch
    assert any(s.matches(QKeySequence("Ctrl+Shift+Z")) == QKeySequence.ExactMatch for s in win.act_redo.shortcuts())
    for a in (win.act_open, win.act_export, win.act_before, win.act_split, win.act_wire):
        assert a.toolTip() and not a.icon().isNull()
    assert win.stack.currentWidget() is win.welcome
    assert len(win.expr_panel.sliders) == 53 and len(win.expr_panel.macro_sliders) == 6
    assert set(win.light_panel.sliders) == {"azimuth", "elevation", "intensity", "ambient", "temperature"}
    assert "device" not in win.lbl_device.text()


def test_long_fit_shows_progress_and_cancels(win, engine, monkeypatch, tmp_path, artifacts_dir):
    """A slow fit reports stages and losses to the progress panel; Cancel stops it at once."""
    from faceeditor.io import save_image

    calls = []

    def slow_fit(rgb, face_index, photometric, progress=None, **kw):
        for i in range(400):
            calls.append(i)
            if progress is not None and not progress("Photometric fit", i / 400, 1.0 / (i + 1)):
                raise RuntimeError("FitCancelled")
            time.sleep(0.01)
        raise AssertionError("not cancelled")

    monkeypatch.setattr(engine, "fit", slow_fit)
    monkeypatch.setattr(engine, "detect", lambda rgb: [type("F", (), {"box": (0, 0, 10, 10)})()])
    p = tmp_path / "x.png"
    save_image(p, np.full((64, 64, 3), 90, np.uint8))
    d = win.driver
    d.drop(p)
    assert d.pump(20, lambda: len(win.progress.losses) > 5)
    assert win.progress.isVisible() and win.progress.stage.text() == "Photometric fit"
    assert win.progress.bar.value() > 0 and win.progress.cancel.isVisible()
    xs, _ = win.progress.curve.getData()  # the loss chart: a drawn curve, labelled axes
    assert len(xs) == len(win.progress.losses) > 5 and win.progress.plot.getAxis("bottom").labelText == "step"
    win.grab().save(str(artifacts_dir / "gui_progress.png"))
    n = len(calls)
    win.progress.cancel.click()
    assert d.pump(10, lambda: not win.is_fitting() and not win.progress.isVisible())
    assert len(calls) < n + 20
    assert "Cancelled" in win.statusBar().currentMessage()


def test_fit_job_reports_one_typed_result_per_stage(app, engine, monkeypatch):
    """``FitJob.fitted`` carries a :class:`FitResult` per stage: landmarks first, the refinement last."""
    from faceeditor.app.driver import Driver
    from faceeditor.app.fitjob import FitJob, FitResult
    from faceeditor.edit.light import LightParams
    from faceeditor.fit.synthetic import random_face_state

    state = random_face_state(engine.model, 4, (64, 64))
    monkeypatch.setattr(engine, "fit", lambda rgb, face_index, photometric, progress=None, **kw: state)
    monkeypatch.setattr(engine, "refine", lambda rgb, st, progress=None: st)
    job = FitJob(engine, 7, rgb=np.zeros((64, 64, 3), np.uint8), face_index=0, faces=[])
    results = []
    job.fitted.connect(results.append)
    job.start()
    assert job.wait(30000)
    assert Driver(None).pump(5, lambda: len(results) == 2)
    assert all(isinstance(r, FitResult) for r in results)
    assert [(r.job_id, r.face_index, r.final) for r in results] == [(7, 0, False), (7, 0, True)]
    assert results[-1].state is state and isinstance(results[-1].light, LightParams)
    assert results[-1].texture.dtype == np.uint8 and results[-1].ms >= 0.0


def test_session_save_open_and_presets(win, engine, tmp_path):
    from faceeditor.fit.synthetic import random_face_state
    from faceeditor.io import load_image, save_image

    d = win.driver
    photo = tmp_path / "p.png"
    save_image(photo, np.full((200, 200, 3), 100, np.uint8))
    loaded = load_image(photo)
    win.doc.set_photo(photo, loaded.pixels, loaded)
    win.doc.set_state(random_face_state(engine.model, 9, (200, 200)), 0, None)
    win.doc.set_pose(pitch=-6.0)
    win.doc.close_gesture()
    win.doc.set_macro("blink", 0.8)
    win.files.save_preset(tmp_path / "look.json")
    win.files.save_session_to(tmp_path / "s.fesession")
    assert d.pump(20, lambda: not win.doc.dirty)
    assert "•" not in win.windowTitle() and win.doc.session_path == tmp_path / "s.fesession"
    win.doc.reset("all")
    win.files.load_preset(tmp_path / "look.json")
    assert win.doc.edit.params.pitch == -6.0
    assert win.doc.expression_value("eyeBlink_L") == pytest.approx(0.8)
    win.files.load_preset(tmp_path / "p.png")  # not a preset: a message, no exception
    assert win.banner.isVisible() and win.banner.kind == "error"
    win.open_path(tmp_path / "s.fesession")
    assert d.pump(20, lambda: win.doc.edit.params.pitch == -6.0 and len(win.doc.history) == 3)
    assert win.doc.history.labels()[1].startswith("Pose") and not win.doc.dirty


def test_a_refused_drop_says_why(win, tmp_path):
    from PySide6.QtCore import QMimeData, QPoint, QUrl
    from PySide6.QtGui import QDragEnterEvent

    p = tmp_path / "notes.txt"
    p.write_text("not a photo")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p))])
    enter = QDragEnterEvent(QPoint(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    win.dragEnterEvent(enter)
    assert not enter.isAccepted()
    assert "notes.txt" in win.statusBar().currentMessage() and "JPEG" in win.statusBar().currentMessage()


def test_open_asks_before_discarding_unsaved_edits(win, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    d = win.driver
    photo, _ = _sample(tmp_path)
    d.drop(photo)
    assert d.wait_fitted(120), win.banner.text.text()
    win.doc.set_pose(yaw=10.0)
    assert win.doc.dirty
    win.ask_on_close = True  # the interactive window asks (tests run with it off)
    asked = []

    def answer(reply):
        def question(parent, title, text, *a, **k):
            asked.append(text)
            return reply
        return question

    other = tmp_path / "other.png"
    other.write_bytes(photo.read_bytes())
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.Cancel))
    win.open_path(other)
    assert asked and "other.png" in asked[-1]
    assert win.doc.edit.params.yaw == 10.0 and not win.is_fitting()  # cancelled: the edits stay
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.Discard))
    win.open_path(other)
    assert len(asked) == 2 and win.is_fitting()  # discarded on purpose: the other photo opens
    assert d.wait_fitted(120)
    win.ask_on_close = False
