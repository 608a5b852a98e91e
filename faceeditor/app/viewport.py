"""The 3D viewport: the fitted head (photo texture, current lighting, teeth and eyes) with moderngl.

Two backends with the same behaviour (:func:`make_viewport` picks one):

* :class:`GLViewport`, a ``QOpenGLWidget`` whose context moderngl wraps: the normal case on a
  desktop (and under Xvfb with the ``xcb`` platform);
* :class:`ImageViewport`, a plain widget drawing frames rendered on a standalone EGL context,
  for Qt platforms without OpenGL widgets (``offscreen``, used by the widget tests).

Mouse: left-drag orbits, right/middle-drag pans, the wheel zooms, double-click resets the
view; dragging the sun of the light gizmo (or Shift+drag anywhere) moves the light, reported
through ``light_dragged(azimuth, elevation)`` for the window to put into the document.
"""

from __future__ import annotations

import collections
import os
import time

import numpy as np
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtOpenGLWidgets import QOpenGLWidget
from PySide6.QtWidgets import QWidget

from faceeditor.app import theme
from faceeditor.app.glformat import gl_widgets_supported, surface_format
from faceeditor.app.scene import GIZMO_RADIUS, HeadScene, OrbitCamera, angles, direction
from faceeditor.render.gl import offscreen_context

WARM_UP_DELAY_MS = 300  # after the view's GL set-up: its shaders are compiled then (see HeadScene.warm_up)


class _ViewportLogic:
    """State and mouse handling shared by both backends (a mixin before the Qt base class)."""

    def _init_logic(self) -> None:
        self.cam = OrbitCamera()
        self._pending_mesh = None
        self._pending_texture = None
        self._framed = False
        self.sh: np.ndarray | None = None
        self.mouth_open = 1.0
        self.wireframe = False
        self.show_gizmo = True
        self.light_angles: tuple[float, float] = (0.0, 30.0)
        self._drag: tuple[str, QPointF] | None = None
        self._gizmo_hot = False
        self.frame_times: collections.deque[float] = collections.deque(maxlen=120)
        self.frames = 0
        self.stamp = -1
        self.error = ""
        self.setMinimumSize(240, 200)
        self.setMouseTracking(True)
        self.setToolTip("3D head: drag to orbit, right-drag to pan, wheel to zoom, double-click to reset;\n"
                        "drag the sun (or Shift+drag) to move the light")

    # ----------------------------------------------------------------- content
    def set_mesh(self, head, stamp: int = 0) -> None:
        """A HeadMesh from the engine (numpy buffers, centre, radius, SH)."""
        if stamp < self.stamp:
            return
        self.stamp = stamp
        self._pending_mesh = head.buffers
        self.sh = head.sh
        self.mouth_open = float(getattr(head, "mouth_open", 1.0))
        if not self._framed:
            self.cam.frame(head.centre, head.radius)
            self._framed = True
        else:
            self.cam.target = np.asarray(head.centre, float)
        self.update()

    def set_texture(self, image: np.ndarray | None) -> None:
        self._pending_texture = ("set", image)
        self.update()

    def clear(self) -> None:
        self._pending_mesh = None
        self._pending_texture = ("set", None)
        self._framed = False
        self.stamp = -1
        self._clear_scene = True
        self.update()

    def set_wireframe(self, on: bool) -> None:
        self.wireframe = bool(on)
        self.update()

    def set_light_angles(self, azimuth: float, elevation: float) -> None:
        angles = (float(azimuth), float(elevation))
        if angles != self.light_angles:  # every edit refreshes it: redraw only when it moved
            self.light_angles = angles
            self.update()

    def reset_view(self) -> None:
        self.cam.reset()
        self.update()

    @property
    def fps(self) -> float:
        t = self.frame_times
        if len(t) < 2 or t[-1] - t[0] <= 0:
            return 0.0
        return (len(t) - 1) / (t[-1] - t[0])

    # ----------------------------------------------------------------- drawing (backend calls)
    def _sync_and_draw(self, scene: HeadScene, width: int, height: int) -> None:
        if getattr(self, "_clear_scene", False):
            scene.has_mesh = False
            self._clear_scene = False
        if self._pending_texture is not None:
            scene.set_texture(self._pending_texture[1])
            self._pending_texture = None
        if self._pending_mesh is not None:
            scene.set_mesh(self._pending_mesh)
            self._pending_mesh = None
        light = direction(*self.light_angles) if (self.show_gizmo and scene.has_mesh) else None
        scene.mouth_open = self.mouth_open
        scene.draw(width, height, self.cam, self.sh, self.wireframe, light, self._gizmo_hot)
        self.frames += 1
        self.frame_times.append(time.perf_counter())

    def _scene_made(self) -> None:
        """The GL scene exists: compile its shaders a moment later, while no head is shown yet."""
        QTimer.singleShot(WARM_UP_DELAY_MS, self, self._warm_up)

    def _warm_up(self) -> None:
        if self.scene is not None:
            self.scene.warm_up()

    # ----------------------------------------------------------------- mouse
    def _sun_near(self, pos: QPointF) -> bool:
        if not self.show_gizmo or self.stamp < 0:
            return False
        sun = self.cam.target + direction(*self.light_angles) * self.cam.radius * GIZMO_RADIUS
        x, y = self.cam.project(sun, self.width(), self.height())
        return (x - pos.x()) ** 2 + (y - pos.y()) ** 2 < 18 ** 2

    def _light_from_mouse(self, pos: QPointF) -> tuple[float, float]:
        origin, d = self.cam.ray(pos.x(), pos.y(), self.width(), self.height())
        c, r = self.cam.target, self.cam.radius * GIZMO_RADIUS
        oc = origin - c
        b = float(np.dot(oc, d))
        disc = b * b - (float(np.dot(oc, oc)) - r * r)
        if disc >= 0:
            hit = origin + d * (-b - np.sqrt(disc))
        else:  # outside the sphere: the nearest point of the ray, pushed onto the sphere
            hit = origin + d * (-b)
        return angles(hit - c)

    def mousePressEvent(self, ev) -> None:
        pos = ev.position()
        if ev.button() == Qt.LeftButton and (self._sun_near(pos) or ev.modifiers() & Qt.ShiftModifier):
            self._drag = ("light", pos)
            self._gizmo_hot = True
            self.light_drag_started.emit()
            self._drag_light(pos)
        elif ev.button() == Qt.LeftButton:
            self._drag = ("orbit", pos)
        elif ev.button() in (Qt.RightButton, Qt.MiddleButton):
            self._drag = ("pan", pos)
        self.update()

    def _drag_light(self, pos: QPointF) -> None:
        az, el = self._light_from_mouse(pos)
        az, el = max(-90.0, min(90.0, az)), max(-90.0, min(90.0, el))
        self.light_angles = (az, el)
        self.light_dragged.emit(az, el)

    def mouseMoveEvent(self, ev) -> None:
        pos = ev.position()
        if self._drag is None:
            hot = self._sun_near(pos)
            if hot != self._gizmo_hot:
                self._gizmo_hot = hot
                self.setCursor(Qt.PointingHandCursor if hot else Qt.ArrowCursor)
                self.update()
            return
        kind, last = self._drag
        delta = pos - last
        self._drag = (kind, pos)
        if kind == "light":
            self._drag_light(pos)
        elif kind == "orbit":
            self.cam.yaw -= delta.x() * 0.4
            self.cam.pitch = max(-85.0, min(85.0, self.cam.pitch + delta.y() * 0.4))
        else:
            V = self.cam.view().astype(float)
            k = self.cam.distance / self.cam.focal(max(self.height(), 1))
            self.cam.pan = self.cam.pan - V[0, :3] * delta.x() * k + V[1, :3] * delta.y() * k
        self.update()

    def mouseReleaseEvent(self, ev) -> None:
        if self._drag is not None and self._drag[0] == "light":
            self.light_drag_finished.emit()
        self._drag = None
        self._gizmo_hot = False
        self.update()

    def mouseDoubleClickEvent(self, ev) -> None:
        self.reset_view()

    def wheelEvent(self, ev) -> None:
        steps = ev.angleDelta().y() / 120.0
        self.cam.distance = float(np.clip(self.cam.distance * 0.88 ** steps, self.cam.radius * 1.2,
                                          self.cam.radius * 20))
        self.update()


class GLViewport(_ViewportLogic, QOpenGLWidget):
    light_dragged = Signal(float, float)
    light_drag_started = Signal()
    light_drag_finished = Signal()

    def __init__(self, parent=None) -> None:
        QOpenGLWidget.__init__(self, parent)
        self.setFormat(surface_format())
        self._init_logic()
        self.ctx = None
        self.scene: HeadScene | None = None

    def initializeGL(self) -> None:
        import moderngl

        try:
            self.ctx = moderngl.create_context()
            self.scene = HeadScene(self.ctx)
            if self._pending_mesh is None and self.stamp >= 0:
                self.stamp = -1  # context recreated: the next mesh must be re-sent
            self._scene_made()
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - depends on the driver
            self.error = f"OpenGL unavailable: {exc}"
            self.scene = None

    def paintGL(self) -> None:
        if self.scene is None:
            return
        fbo = self.ctx.detect_framebuffer(self.defaultFramebufferObject())
        fbo.use()
        r = self.devicePixelRatioF()
        self._sync_and_draw(self.scene, int(self.width() * r), int(self.height() * r))

    def _warm_up(self) -> None:
        if self.scene is not None and self.isValid():
            self.makeCurrent()
            try:
                self.scene.warm_up()
            finally:
                self.doneCurrent()

    def grab_image(self) -> QImage:
        return self.grabFramebuffer()


class ImageViewport(_ViewportLogic, QWidget):
    """Renders on a standalone EGL context and paints the frames (no OpenGL widget needed)."""

    light_dragged = Signal(float, float)
    light_drag_started = Signal()
    light_drag_finished = Signal()

    def __init__(self, parent=None, ctx=None) -> None:
        QWidget.__init__(self, parent)
        self._init_logic()
        self.ctx = ctx  # a standalone moderngl context (made on first paint when not given)
        self.scene: HeadScene | None = None
        self._fbo = None
        self._fbo_size = (0, 0)
        self._image: QImage | None = None

    def _ensure(self, w: int, h: int) -> bool:
        if self.scene is None and not self.error:
            try:
                if self.ctx is None:
                    self.ctx = offscreen_context()
                self.scene = HeadScene(self.ctx)
                self._scene_made()
            except Exception as exc:  # noqa: BLE001 - no OpenGL: the view says so instead
                self.error = f"3D view unavailable (no OpenGL): {exc}"
        if self.scene is None:
            return False
        if self._fbo_size != (w, h):
            if self._fbo is not None:
                self._fbo.release()
            self._fbo = self.ctx.framebuffer(color_attachments=[self.ctx.renderbuffer((w, h), 4, samples=0)],
                                             depth_attachment=self.ctx.depth_renderbuffer((w, h)))
            self._fbo_size = (w, h)
        return True

    def render_frame(self) -> QImage | None:
        w, h = max(self.width(), 1), max(self.height(), 1)
        if not self._ensure(w, h):
            return None
        self._fbo.use()
        self._sync_and_draw(self.scene, w, h)
        raw = np.frombuffer(self._fbo.read(components=3, alignment=1), np.uint8).reshape(h, w, 3)
        a = np.ascontiguousarray(raw[::-1])
        return QImage(a.data, w, h, 3 * w, QImage.Format_RGB888).copy()

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        img = self.render_frame()
        if img is None:
            p.fillRect(self.rect(), QColor(theme.BASE))
            p.setPen(QColor(theme.MUTED))
            p.drawText(self.rect(), Qt.AlignCenter | Qt.TextWordWrap, self.error or "3D view")
        else:
            p.drawImage(0, 0, img)
        p.end()

    def grab_image(self) -> QImage:
        return self.render_frame() or QImage()


SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "software rasterizer")


def offscreen_renderer() -> tuple[object | None, str]:
    """A standalone EGL context and its GL_RENDERER string ((None, "") when there is none)."""
    try:
        ctx = offscreen_context()
    except Exception:  # noqa: BLE001 - no EGL: the caller falls back to the GL widget
        return None, ""
    return ctx, str(ctx.info.get("GL_RENDERER", ""))


def make_viewport(parent=None):
    """The 3D view: the OpenGL widget (``GLViewport``) on a GPU, the EGL image viewport
    (``ImageViewport``) where the platform has no OpenGL widgets or OpenGL is software
    (llvmpipe: a QOpenGLWidget makes Qt compose the whole window through OpenGL on every repaint,
    measured at 70-100 ms of the UI thread per frame under Xvfb, which halved the frames shown
    while a slider is dragged). ``$FACEEDITOR_VIEWPORT=gl|image`` chooses."""
    want = os.environ.get("FACEEDITOR_VIEWPORT", "").strip().lower()
    if want == "gl" and gl_widgets_supported():
        return GLViewport(parent)
    if want != "image" and gl_widgets_supported():
        ctx, renderer = offscreen_renderer()
        if ctx is None or not any(s in renderer.lower() for s in SOFTWARE_GL):
            if ctx is not None:
                ctx.release()
            return GLViewport(parent)
        return ImageViewport(parent, ctx)
    return ImageViewport(parent)
