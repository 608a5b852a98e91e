"""The 3D viewport as a real QOpenGLWidget (moderngl on Qt's context) under X (Xvfb in ./test.sh).

Qt's ``offscreen`` platform has no OpenGL widgets and a QApplication cannot switch platform,
so these run the window in a child process on the ``xcb`` platform and read back what it saw.
Without an X display they skip. The EGL fallback viewport is tested in-process below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("PySide6")

CHILD = textwrap.dedent(r"""
    import json, math, os, sys, time
    import numpy as np
    from faceeditor.app.main import create_application
    app = create_application()
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest
    from faceeditor.app.driver import Driver
    from faceeditor.app.engine import Engine
    from faceeditor.app.viewport import GLViewport
    from faceeditor.app.scene import GIZMO_RADIUS
    from faceeditor.app.window import MainWindow
    from faceeditor.fit.synthetic import random_face_state

    class Same:
        name = "mesh"
        def __init__(self, photo): self.photo = photo
        def render(self, edit, scale=1.0, cancel=None):
            import cv2
            h, w = self.photo.shape[:2]
            return cv2.resize(self.photo, (round(w * scale), round(h * scale)))

    engine = Engine(threads=1)
    engine.make_renderer = lambda rgb, state, name, preview=False, progress=None: Same(rgb)
    win = MainWindow(engine); win.resize(1400, 900); win.show()
    d = Driver(win)
    d.pump(30, lambda: win.lbl_device.text() != "device …")
    out = {"viewport": type(win.viewport).__name__, "platform": app.platformName()}
    vp = win.viewport
    state = random_face_state(engine.model, 7, (480, 480))
    win.doc.set_photo(None, np.full((480, 480, 3), 120, np.uint8))
    win.doc.set_state(state, 0, engine.photo_light(state))
    win.viewport.set_texture(engine.head_texture(state))
    ok = d.pump(30, lambda: vp.stamp >= 0 and vp.frames > 0)
    d.pump(0.5)
    img = d.viewport_pixels()
    out["head_shown"] = bool(ok)
    bg = img[2, 2].astype(int)
    out["head_fraction"] = float((np.abs(img.astype(int) - bg).sum(-1) > 60).mean())
    vp.set_wireframe(True); d.pump(0.3)
    wire = d.viewport_pixels()
    out["wire_changed"] = float((np.abs(wire.astype(int) - img.astype(int)).sum(-1) > 30).mean())
    vp.set_wireframe(False)
    # drag the light gizmo's sun to the left: the document's light follows
    az0, el0 = vp.light_angles
    sun = vp.cam.target + np.array([math.cos(math.radians(el0)) * math.sin(math.radians(az0)),
                                    math.sin(math.radians(el0)),
                                    math.cos(math.radians(el0)) * math.cos(math.radians(az0))]) * vp.cam.radius * GIZMO_RADIUS
    x, y = vp.cam.project(sun, vp.width(), vp.height())
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, QPoint(int(x), int(y)))
    for k in range(1, 6):
        QTest.mouseMove(vp, QPoint(int(x) - 12 * k, int(y) + 4 * k))
        d.pump(0.02)
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, QPoint(int(x) - 60, int(y) + 20))
    light = win.doc.edit.params.light
    out["light_before"] = [az0, el0]
    out["light_after"] = None if light is None else [light.azimuth, light.elevation]
    out["undo_steps"] = len(win.doc.history) - 1
    # orbit with the mouse: the picture changes
    before = d.viewport_pixels()
    c = QPoint(vp.width() // 2, vp.height() * 3 // 4)
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, c)
    for k in range(1, 6):
        QTest.mouseMove(vp, c + QPoint(15 * k, 0)); d.pump(0.02)
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, c + QPoint(75, 0))
    d.pump(0.2)
    out["orbit_changed"] = float((np.abs(d.viewport_pixels().astype(int) - before.astype(int)).sum(-1) > 30).mean())
    n0, t0 = vp.frames, time.perf_counter()
    while time.perf_counter() - t0 < 1.5:
        vp.cam.yaw += 2; vp.update(); app.processEvents()
    out["fps"] = (vp.frames - n0) / (time.perf_counter() - t0)
    if len(sys.argv) > 1:
        win.grab().save(sys.argv[1])
    win.shutdown()
    print("RESULT " + json.dumps(out))
""")


def _xcb_available() -> bool:
    return bool(os.environ.get("DISPLAY"))


@pytest.mark.gl
@pytest.mark.skipif(not _xcb_available(), reason="needs an X display (run ./test.sh, which starts Xvfb)")
@pytest.mark.parametrize("choice", ["gl", "auto"])
def test_gl_viewport_under_x(artifacts_dir, tmp_path, choice):
    """``gl``: the QOpenGLWidget itself; ``auto``: what the window picks (the EGL image viewport
    when OpenGL is software, as under Xvfb: the widget would make Qt compose every repaint of the
    window through llvmpipe)."""
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", FACEEDITOR_HOME=str(tmp_path / "home"),
               FACEEDITOR_VIEWPORT="gl" if choice == "gl" else "")
    shot = artifacts_dir / ("gui_window_gl.png" if choice == "gl" else "gui_window_x11.png")
    p = subprocess.run([sys.executable, "-c", CHILD, str(shot)], env=env, capture_output=True, text=True,
                       timeout=240, check=False)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        if "could not connect to display" in p.stderr or "xcb" in p.stderr and "plugin" in p.stderr:
            pytest.skip(f"no usable X display for Qt: {p.stderr[-300:]}")
        raise AssertionError(f"child failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    r = json.loads(lines[-1][len("RESULT "):])
    assert r["platform"] == "xcb" and r["viewport"] in (("GLViewport",) if choice == "gl" else
                                                        ("GLViewport", "ImageViewport")), r
    assert r["head_shown"] and r["head_fraction"] > 0.05, r
    assert r["wire_changed"] > 0.01, r
    assert r["light_after"] is not None and r["light_after"][0] < r["light_before"][0] - 5, r
    assert r["undo_steps"] == 1, "one drag of the gizmo is one undo step"
    assert r["orbit_changed"] > 0.02, r
    assert r["fps"] > 5, r


def test_egl_image_viewport_offscreen():
    """The fallback viewport (standalone EGL context) draws the head and the gizmo moves the light."""
    from faceeditor.app.main import create_application

    app = create_application()
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    from faceeditor.app.driver import Driver, qimage_to_array
    from faceeditor.app.engine import Engine
    from faceeditor.app.viewport import ImageViewport
    from faceeditor.edit.params import EditParams
    from faceeditor.fit.synthetic import random_face_state

    engine = Engine()
    state = random_face_state(engine.model, 2, (400, 400))
    vp = ImageViewport()
    vp.resize(420, 320)
    vp.show()
    try:
        frame = vp.render_frame()
        if frame is None:
            pytest.skip(vp.error)
        empty = qimage_to_array(frame)
        vp.set_mesh(engine.head_mesh(state, EditParams()), 1)
        vp.set_texture(engine.head_texture(state))
        img = qimage_to_array(vp.render_frame())
        assert (np.abs(img.astype(int) - empty.astype(int)).sum(-1) > 60).mean() > 0.05
        moved = []
        vp.light_dragged.connect(lambda az, el: moved.append((az, el)))
        QTest.mousePress(vp, Qt.LeftButton, Qt.ShiftModifier, QPoint(60, 60))
        QTest.mouseRelease(vp, Qt.LeftButton, Qt.ShiftModifier, QPoint(60, 60))
        assert moved and moved[-1][0] < 0 and moved[-1][1] > 0  # up-left of the head: light from there
        Driver  # noqa: B018 - imported for the side effect of sharing the helper module
        app.processEvents()
    finally:
        vp.close()
