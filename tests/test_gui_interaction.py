"""The window under a person's hands (Qt offscreen): a real mouse drag of a slider shows frames
while it moves, long tasks show progress with Cancel, start-up shows the window before torch,
quitting does not wait for the workers, unreadable autosaves are kept, preferences persist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")


@pytest.fixture
def win(app, engine, tmp_path, monkeypatch):
    from faceeditor.app.driver import Driver
    from faceeditor.app.window import MainWindow

    monkeypatch.setenv("FACEEDITOR_HOME", str(tmp_path / "home"))
    w = MainWindow(engine)
    w.resize(1400, 880)
    w.show()
    w.driver = Driver(w)
    w.driver.pump(60, lambda: w.lbl_device.text() != "device …")
    yield w
    w.shutdown()
    w.close()
    w.deleteLater()
    w.driver.pump(0.05)


def _fitted(win, tmp_path, size=512):
    import cv2

    from faceeditor.core.paths import sample_image_path
    from faceeditor.io import load_image, save_image

    rgb = cv2.resize(load_image(sample_image_path()).pixels, (size, size), interpolation=cv2.INTER_AREA)
    p = tmp_path / "portrait.png"
    save_image(p, rgb)
    win.driver.drop(p)
    assert win.driver.wait_fitted(180), win.banner.text.text()
    assert win.driver.wait_idle(60)
    assert win.driver.pump(30, lambda: win.worker._idle_prepare is None)
    return p


def test_a_real_mouse_drag_shows_frames_while_it_moves(win, tmp_path, artifacts_dir):
    """QTest presses the yaw slider's handle and moves it at 60 Hz for 3 s: previews reach the canvas
    and meshes the 3D view during the drag; the full-resolution render follows the release; the drag
    is one History entry labelled with its final value."""
    from faceeditor.bench._gui_drag import drag_slider

    _fitted(win, tmp_path)
    n_history = len(win.doc.history)
    full_during: list[float] = []
    win.worker.rendered.connect(lambda r: full_during.append(r.scale) if win.renders.dragging else None)
    shot = {}

    def grab(t: float) -> None:
        if t > 1.5 and "img" not in shot:
            shot["img"] = win.grab()

    run = drag_slider(win.driver, win, win.pose_panel.sliders["yaw"], on_tick=grab)
    shot["img"].save(str(artifacts_dir / "gui_mid_drag.png"))
    assert run.moves > 30, "the UI thread must keep taking mouse moves"
    assert len(set(np.round(run.values, 1))) > 10, "the slider must follow the mouse"
    assert len(run.frames) >= 4, f"only {len(run.frames)} frames in a {run.seconds:.1f} s drag"
    assert run.max_gap_ms() < 1500, f"the canvas froze for {run.max_gap_ms():.0f} ms"
    assert run.meshes, "the 3D head must follow the drag"
    assert full_during and max(full_during) < 1.0, "only previews while the handle is held"
    assert run.release_to_full_ms < 15000  # full resolution after the release
    assert win.canvas.shown_scale >= 1.0 and win.canvas.stamp == win.doc.version
    assert len(win.doc.history) == n_history + 1, "one drag, one undo step"
    final = win.doc.edit.params.yaw
    assert win.doc.history.labels()[-1] == f"Pose: yaw {final:+.0f}°"
    assert win.history_panel.list.item(win.history_panel.list.count() - 1).text() == f"Pose: yaw {final:+.0f}°"


def test_previews_get_smaller_when_they_are_slow():
    from faceeditor.app.rendering import PREVIEW_LEVELS, SLOW_PREVIEW_MS, UP_PREVIEW_MS, PreviewSize

    p = PreviewSize()
    assert p.side == PREVIEW_LEVELS[0] <= 512
    for _ in range(4):
        p.note(SLOW_PREVIEW_MS * 3)
    assert p.side < PREVIEW_LEVELS[0]
    for _ in range(40):
        p.note(UP_PREVIEW_MS / 3)
    assert p.side == PREVIEW_LEVELS[0]


class _SlowFull:
    """Stand-in renderer: previews at once, full resolution 50 ms per cancel check, 100 checks."""

    name = "mesh"

    def __init__(self, photo):
        self.photo = photo

    def render(self, edit, scale=1.0, cancel=None):
        from faceeditor.core.progress import check_cancel

        if scale >= 1.0:
            for _ in range(100):
                check_cancel(cancel, "render")
                time.sleep(0.05)
        h, w = self.photo.shape[:2]
        return np.full((round(h * scale), round(w * scale), 3), 100, np.uint8)


def _stand_in_face(win, engine, monkeypatch, renderer=_SlowFull):
    from faceeditor.fit.synthetic import random_face_state
    from faceeditor.io import load_image, save_image

    monkeypatch.setattr(engine, "make_renderer", lambda rgb, state, name, preview=False, progress=None: renderer(rgb))
    photo = win.files.presets_dir().parent / "p.png"
    save_image(photo, np.full((300, 300, 3), 90, np.uint8))
    loaded = load_image(photo)
    win.doc.set_photo(photo, loaded.pixels, loaded)
    win.doc.set_state(random_face_state(engine.model, 3, (300, 300)), 0, None)


def test_a_slow_export_shows_progress_and_cancels(win, engine, monkeypatch, tmp_path, artifacts_dir):
    d = win.driver
    _stand_in_face(win, engine, monkeypatch)
    win.doc.set_pose(yaw=10.0)
    done = []
    out = tmp_path / "slow.png"
    win.files.export_image(out, callback=done.append)
    assert d.pump(10, lambda: win.progress.isVisible())
    assert win.progress.title.text() == "Exporting slow.png" and win.progress.cancel.isVisible()
    assert win.progress.bar.maximum() == 0  # a busy bar: the render's length is unknown
    win.grab().save(str(artifacts_dir / "gui_export_progress.png"))
    win.progress.cancel.click()
    assert d.pump(10, lambda: not win.progress.isVisible())
    d.pump(0.3)
    assert not done and not out.exists()
    assert "Cancelled" in win.statusBar().currentMessage() or "cancelled" in win.statusBar().currentMessage()


def test_the_3d_mesh_follows_the_preview_not_beside_it(win, engine, monkeypatch):
    """The head mesh (and its software-OpenGL draw) waits until the edit's preview is shown: on two
    cores it took the CPU and the UI thread the preview needed. Without a preview it still comes; a
    burst of edits gets one at most every MESH_INTERVAL_S."""
    from faceeditor.app.rendering import MESH_AFTER_MS, MESH_INTERVAL_S

    class Quick(_SlowFull):
        def render(self, edit, scale=1.0, cancel=None):
            time.sleep(0.03)
            return np.full((*self.photo.shape[:2], 3), 100, np.uint8)

    d = win.driver
    _stand_in_face(win, engine, monkeypatch, Quick)
    assert d.wait_idle(30) and d.pump(30, lambda: win.worker._idle_prepare is None)
    shown, meshed = [], []
    set_result = win.canvas.set_result
    monkeypatch.setattr(win.canvas, "set_result",
                        lambda rgb, stamp, scale: (shown.append((time.perf_counter(), stamp)), set_result(rgb, stamp, scale))[1])
    request = win.renders.meshes.request
    monkeypatch.setattr(win.renders.meshes, "request",
                        lambda stamp, *a: (meshed.append((time.perf_counter(), stamp)), request(stamp, *a)))
    win.doc.set_pose(yaw=12.0)
    version = win.doc.version
    assert d.pump(10, lambda: any(s == version for _, s in meshed) and any(s == version for _, s in shown))
    t_mesh = min(t for t, s in meshed if s == version)
    assert any(s == version and t <= t_mesh for t, s in shown), "the mesh was asked for before the preview came"
    # no preview result (the renderer is busy elsewhere): the mesh comes after MESH_AFTER_MS anyway
    request_render = win.worker.request
    monkeypatch.setattr(win.worker, "request", lambda *a, **k: None)
    win.doc.set_pose(yaw=-8.0)
    version, t0 = win.doc.version, time.perf_counter()
    assert d.pump(10, lambda: any(s == version for _, s in meshed))
    assert min(t for t, s in meshed if s == version) - t0 >= 0.8 * MESH_AFTER_MS / 1000
    # a burst of edits (a drag): meshes at most every MESH_INTERVAL_S, the last edit's one included
    monkeypatch.setattr(win.worker, "request", request_render)
    meshed.clear()
    t0 = time.perf_counter()
    for i in range(12):
        win.doc.set_pose(yaw=float(i))
        d.pump(0.06)
    version = win.doc.version
    assert d.pump(10, lambda: any(s == version for _, s in meshed))
    times = [t for t, _ in meshed]
    assert 2 <= len(times) <= 2 + (times[-1] - t0) / MESH_INTERVAL_S  # not one per edit
    assert min(np.diff(times)) >= 0.9 * MESH_INTERVAL_S


def test_gar_set_up_shows_progress_and_cancel_falls_back(win, engine, monkeypatch):
    """The GAR renderer's inversion (seconds) runs under the progress panel; Cancel stops it and
    the edit goes back to the mesh compositor."""
    from faceeditor.core.errors import Cancelled

    def make(rgb, state, name, preview=False, progress=None):
        if name == "gar":
            for i in range(200):
                if progress is not None and not progress("invert", i / 200, 1.0):
                    raise Cancelled("inversion cancelled")
                time.sleep(0.02)
        return _SlowFull(rgb)

    d = win.driver
    _stand_in_face(win, engine, monkeypatch)
    monkeypatch.setattr(engine, "make_renderer", make)
    win.doc.set_renderer("gar")
    assert d.pump(10, lambda: win.progress.isVisible() and "gar" in win.progress.title.text().lower())
    assert d.pump(5, lambda: win.progress.bar.value() > 0)
    win.act_cancel.trigger()  # Esc
    assert d.pump(10, lambda: not win.progress.isVisible())
    assert d.pump(5, lambda: win.doc.edit.params.renderer == "mesh")
    assert "Cancelled" in win.statusBar().currentMessage()


def test_quit_does_not_wait_for_a_running_fit(win, engine, monkeypatch, tmp_path):
    from faceeditor.io import save_image

    def slow_fit(rgb, face_index, photometric, progress=None, **kw):
        time.sleep(3.0)  # a stage that cannot be interrupted
        raise AssertionError("never returns")

    monkeypatch.setattr(engine, "fit", slow_fit)
    monkeypatch.setattr(engine, "detect", lambda rgb: [type("F", (), {"box": (0, 0, 10, 10)})()])
    p = tmp_path / "x.png"
    save_image(p, np.full((64, 64, 3), 90, np.uint8))
    win.driver.drop(p)
    assert win.driver.pump(10, lambda: win.is_fitting())
    win.quick_exit = True
    t0 = time.perf_counter()
    win.close()
    assert time.perf_counter() - t0 < 1.0
    win.fits.shutdown(10000)  # the test process goes on: let the thread end before the window goes


def test_the_window_shows_before_torch_loads(tmp_path):
    """What runs up to the first window imports neither torch nor the command line."""
    code = (
        "import sys; import faceeditor.launch, faceeditor.commands.gui, faceeditor.app.main, "
        "faceeditor.app.startup, faceeditor.app.window; "
        "print(sorted(m for m in ('torch', 'cv2', 'mediapipe', 'faceeditor.cli', 'pyqtgraph') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_deferred_start_opens_a_photo_given_before_it_is_ready(app, tmp_path, monkeypatch, artifacts_dir):
    from faceeditor.app.driver import Driver
    from faceeditor.app.window import MainWindow
    from faceeditor.io import save_image

    monkeypatch.setenv("FACEEDITOR_HOME", str(tmp_path / "home"))
    p = tmp_path / "wall.png"
    save_image(p, np.full((120, 160, 3), 128, np.uint8))  # no face: the fit ends with a message
    w = MainWindow(defer=True, threads=1)
    w.show()
    d = Driver(w)
    try:
        assert not w.ready and w.stack.currentWidget() is w.welcome
        assert w.progress.isVisible() and w.progress.title.text() == "Starting FaceEditor"
        w.open_path(p)
        assert w.stack.currentWidget() is w.canvas and w.canvas.has_photo()  # shown before the editor
        assert d.pump(120, lambda: w.ready and w.lbl_device.text() != "device …"), w.banner.text.text()
        assert d.pump(60, lambda: w.banner.isVisible() and not w.is_fitting())
        assert w.doc.photo_path == p and "no face" in w.banner.text.text().lower()
        assert w.act_prefs.isEnabled()
    finally:
        w.shutdown()
        w.close()


def test_an_unreadable_autosave_is_kept_aside(win):
    from faceeditor.io.session import autosave_path

    p = autosave_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"not a session at all")
    assert not win.files.offer_restore()
    aside = p.with_name(p.name + ".unreadable")
    assert aside.is_file() and aside.read_bytes() == b"not a session at all" and not p.exists()
    assert win.banner.isVisible() and "could not be read" in win.banner.text.text()


def test_thread_preference_persists_and_applies(win):
    from faceeditor.app import prefs
    from faceeditor.app.preferences import PreferencesDialog, apply_threads

    assert prefs.thread_setting() == 0 and 1 <= prefs.chosen_threads() <= (os.cpu_count() or 1)
    dialog = PreferencesDialog(win)
    assert dialog.threads.count() == (os.cpu_count() or 1) + 1 and dialog.chosen_threads() == 0
    apply_threads(win, 1)
    assert win.driver.pump(10, lambda: win.lbl_device.text() == "CPU, 1 thread")
    assert prefs.thread_setting() == 1 and prefs.chosen_threads() == 1
    assert json.loads(json.dumps(prefs.settings().value("threads"))) in (1, "1")
    apply_threads(win, 0)
