"""The window's side of the one :class:`~faceeditor.app.workers.RenderWorker`: what to render
when, and showing what comes back.

Every document change that the picture depends on sends ``(Document.version, resolved edit)``:
a preview render at once (its size adapts to how fast previews come: :class:`PreviewSize`) and,
once that preview is shown (or after :data:`MESH_AFTER_MS`), and at most every
:data:`MESH_INTERVAL_S`, the head mesh for the 3D view (:class:`~faceeditor.app.meshworker.MeshWorker`:
computing it and drawing it with software OpenGL took the CPU that the preview needed, on two cores,
and the UI thread that shows it); the
full-resolution render follows when a drag ends (a slider, the light pad or the light gizmo is
released), or after a pause (:data:`FULL_RES_DELAY_MS`) for keys and typed numbers. Results for
another photo/face (target id) or older than what the canvas shows are dropped. Other work for
the render thread (session I/O, exports, the engine's warm-up) goes through
:meth:`RenderControl.submit`, whose callback runs on the UI thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QTimer

from faceeditor.app.meshworker import MeshWorker
from faceeditor.app.workers import CANCELLED, SETUP_LABELS, MeshResult, RenderResult, RenderWorker

# long sides of preview renders, the first while previews are quick; not below ~220 px: a preview's
# fixed costs (the edited head, its rasterization and maps on the work grid: 224 and 288 px previews
# both took ~18 ms on 2026-12-08) dominate there, and the picture only gets blurrier
PREVIEW_LEVELS = (384, 288, 224)
# a drag moves the slider every 16-33 ms: a preview slower than ~35 ms makes the next one wait for it, and
# the picture trails the slider by about 1.5 renders (bench gui: 70 ms at 384 px, 52 ms at 224 px, 2026-12-08)
SLOW_PREVIEW_MS = 36.0  # previews slower than this (smoothed) step down a level...
UP_PREVIEW_MS = 28.0  # ... and back up when the next level would take less than this
FULL_RES_DELAY_MS = 200  # pause (outside a drag) before the full-resolution render
MESH_AFTER_MS = 150  # the 3D view's mesh follows the preview, or comes after this when no preview does
MESH_INTERVAL_S = 0.5  # meshes at most this often (at 6 a second a drag's previews came ~25 ms later)
MESH_DEFER_MAX_S = 0.5  # a mesh waits for a preview in flight at most this long (a renderer being set up)
WARM_FULL_MAX_PX = 6_000_000  # bigger photos are not warmed up at full resolution (seconds, memory)
LATENCY_SAMPLES = 200  # request -> shown latencies kept


@dataclass
class Timings:
    """The window's own measurements (status bar, ``faceeditor bench gui``)."""

    fit_ms: float | None = None  # the current face's fit, its stages summed
    render_ms: float | None = None  # the last photo render that was shown
    t_open: float | None = None  # perf_counter() when a photo was opened or a face chosen
    first_fit_ms: float | None = None  # t_open -> the fitted head's first mesh in the viewport
    latency_ms: list[float] = field(default_factory=list)  # request -> canvas, the last LATENCY_SAMPLES


@dataclass
class PreviewSize:
    """The long side of preview renders: :data:`PREVIEW_LEVELS`, one level down when previews render
    slowly (a busy machine, a slow renderer), back up when they are quick again."""

    level: int = 0
    ema_ms: float | None = None  # smoothed render time at this level
    seen: int = 0  # results at this level (the first, which builds the size's caches, is not counted)

    @property
    def side(self) -> int:
        return PREVIEW_LEVELS[self.level]

    def note(self, render_ms: float) -> bool:
        """Take a preview's render time; True when the level changed."""
        self.seen += 1
        if self.seen == 1:
            return False
        self.ema_ms = render_ms if self.ema_ms is None else 0.6 * self.ema_ms + 0.4 * render_ms
        if self.seen < 3:
            return False
        step = 0
        if self.ema_ms > SLOW_PREVIEW_MS:
            step = 1
        elif self.level > 0 and self.ema_ms * PREVIEW_LEVELS[self.level - 1] / self.side < UP_PREVIEW_MS:
            step = -1  # the larger size should still be quick (render time grows about with the side)
        level = min(len(PREVIEW_LEVELS) - 1, max(0, self.level + step))
        if level == self.level:
            return False
        self.level, self.ema_ms, self.seen = level, None, 0
        return True


class RenderControl(QObject):
    """Sends render requests for the window's document and shows the results (a child of the window:
    the worker's signals reach it on the UI thread, and none after the window is gone)."""

    def __init__(self, window, worker: RenderWorker) -> None:
        super().__init__(window)
        self.w = window
        self.worker = worker
        self.target_id = 0  # the worker's id of the photo/face the window shows
        self.preview = PreviewSize()
        self.dragging = False  # a slider, the light pad or the light gizmo is held
        self._tasks: dict[int, tuple[Callable[[Any], None] | None, Callable[[], None] | None]] = {}
        self.meshes = MeshWorker(window.engine)
        self.meshes.mesh_ready.connect(self._on_mesh)
        self.meshes.start()
        worker.rendered.connect(self._on_rendered)
        worker.failed.connect(self._on_failed)
        worker.task_done.connect(self._on_task_done)
        worker.status.connect(self._on_status)
        worker.setup_progress.connect(self._on_setup_progress)
        worker.setup_cancelled.connect(self._on_setup_cancelled)
        self._setup_task = None  # the progress panel's task while a renderer is being built
        self._setup_name = ""  # ... and that renderer's name
        self._renderer = "mesh"  # the renderer of the last request
        self._full_timer = QTimer(window, singleShot=True, interval=FULL_RES_DELAY_MS)
        self._full_timer.timeout.connect(self._request_full)
        self._mesh_next: tuple | None = None  # (version, target, state, edit) for the 3D view, after the preview
        self._mesh_sent = 0.0  # perf_counter() of the last mesh request
        self._asked: tuple[int, float] | None = None  # (stamp, perf_counter()) of a preview not yet back
        self._mesh_timer = QTimer(window, singleShot=True)
        self._mesh_timer.timeout.connect(self._send_mesh)
        self._fps_timer = QTimer(window, interval=1000)
        self._fps_timer.timeout.connect(self._update_fps)
        self._fps_timer.start()

    # ----------------------------------------------------------------- tasks on the render thread
    def submit(self, fn: Callable[[], Any], callback: Callable[[Any], None] | None = None,
               on_fail: Callable[[], None] | None = None) -> int:
        """Run ``fn()`` on the render thread; ``callback(result)`` follows on the UI thread, or when
        it raised, an error message in the window (nothing for :class:`Cancelled`) and ``on_fail()``."""
        tid = self.worker.submit(fn)
        self._tasks[tid] = (callback, on_fail)
        return tid

    def _on_task_done(self, tid: int, result, error) -> None:
        cb, on_fail = self._tasks.pop(tid, (None, None))
        if error is not None or result is CANCELLED:
            if error is not None:
                self.w.show_error(error)
            else:
                self.w.statusBar().showMessage("Cancelled", 4000)
            if on_fail is not None:
                on_fail()
        elif cb is not None:
            cb(result)

    # ----------------------------------------------------------------- requests
    def new_photo(self) -> None:
        """A photo without a fitted face: nothing to render."""
        self.target_id = self.worker.set_target(None, None)
        self._mesh_next, self._asked = None, None
        self.meshes.clear()

    def new_face(self, final: bool = True) -> None:
        """A fitted face (or a refined fit): render it, and warm the renderers for the sizes it will
        take. A fit still being refined (``final=False``) gets a preview only: its full-resolution
        renders would be thrown away in a second or two (and cost a big photo seconds and memory)."""
        doc = self.w.doc
        self.target_id = self.worker.set_target(doc.photo, doc.state)
        if not final:
            if doc.is_unedited():  # the photo itself: no renderer needed until the refined fit
                self.w.canvas.reset_result(doc.version)
            else:
                self.worker.request(doc.version, doc.resolved_edit(), self.preview_scale())
            self.meshes.request(doc.version, self.target_id, doc.state, doc.resolved_edit())
            return
        self.schedule()
        big = doc.photo is not None and doc.photo.shape[0] * doc.photo.shape[1] > WARM_FULL_MAX_PX
        self.worker.prepare((self.preview_scale(),) if big else tuple(sorted({self.preview_scale(), 1.0})),
                            doc.edit.params.renderer)

    def preview_scale(self) -> float:
        photo = self.w.doc.photo
        if photo is None:
            return 1.0
        return min(1.0, self.preview.side / max(photo.shape[:2]))

    def schedule(self) -> None:
        """The current edit: a preview and the head mesh now, full resolution when the drag ends
        (or after a pause)."""
        doc = self.w.doc
        if not doc.has_face:
            return
        scale = self.preview_scale()
        edit = doc.resolved_edit()
        if edit.renderer != self._renderer and edit.renderer != "mesh":
            self.worker.allow_setup()  # chosen (again): a cancelled set-up may run now
        self._renderer = edit.renderer
        self.worker.request(doc.version, edit, scale)
        self._asked = (doc.version, time.perf_counter() if self._asked is None else self._asked[1])
        self._mesh_next = (doc.version, self.target_id, doc.state, edit)
        if not self._mesh_timer.isActive():
            self._mesh_timer.start(max(MESH_AFTER_MS, round(self._mesh_wait() * 1000)))
        if scale < 1.0 and not self.dragging:
            self._full_timer.start()

    def begin_drag(self) -> None:
        """A slider (or the light) is held: previews only until it is released."""
        self.dragging = True
        self._full_timer.stop()

    def end_drag(self) -> None:
        """The drag ended: the full-resolution render at once."""
        if not self.dragging:
            return
        self.dragging = False
        self._full_timer.stop()
        self._request_full()

    def _mesh_wait(self) -> float:
        """Seconds until the next mesh may be asked for (:data:`MESH_INTERVAL_S`)."""
        return max(0.0, MESH_INTERVAL_S - (time.perf_counter() - self._mesh_sent))

    def _send_mesh(self) -> None:
        """The newest edit's head mesh for the 3D view, when :meth:`_mesh_wait` allows and no preview
        is being rendered (for at most :data:`MESH_DEFER_MAX_S`: its result sends it)."""
        if self._mesh_next is None:
            self._mesh_timer.stop()
            return
        wait = self._mesh_wait()
        busy = self._asked is not None and time.perf_counter() - self._asked[1] < MESH_DEFER_MAX_S
        if wait > 0 or busy:
            if not self._mesh_timer.isActive():
                self._mesh_timer.start(max(1, round(max(wait, 0.05) * 1000)))
            return
        self._mesh_timer.stop()
        self.meshes.request(*self._mesh_next)
        self._mesh_next, self._mesh_sent = None, time.perf_counter()

    def _request_full(self) -> None:
        doc = self.w.doc
        if doc.has_face:
            self.worker.request(doc.version, doc.resolved_edit(), 1.0)

    # ----------------------------------------------------------------- results
    def _on_rendered(self, res: RenderResult) -> None:
        w = self.w
        if res.target != self.target_id:
            return
        if res.scale < 1.0 and res.render_ms > 0:
            self.preview.note(res.render_ms)
        shown = w.canvas.set_result(res.image, res.stamp, res.scale)
        if self._asked is not None and res.stamp >= self._asked[0]:
            self._asked = None
        self._send_mesh()
        if shown:
            latency = w.timings.latency_ms
            latency.append((time.perf_counter() - res.t_request) * 1e3)
            del latency[:-LATENCY_SAMPLES]
            if res.render_ms > 0:
                w.timings.render_ms = res.render_ms
                kind = "full" if res.scale >= 1.0 else f"preview {res.image.shape[1]}×{res.image.shape[0]}"
                w.lbl_render.setText(f"render {res.render_ms:.0f} ms ({kind})")

    def _on_mesh(self, res: MeshResult) -> None:
        w = self.w
        if res.target != self.target_id:
            return
        w.viewport.set_mesh(res.mesh, res.stamp)
        if w.light_panel.table.isVisible() or res.stamp == w.doc.version:
            w.light_panel.show_sh(res.mesh.sh)
        t = w.timings
        if t.t_open is not None and t.first_fit_ms is None:
            t.first_fit_ms = (time.perf_counter() - t.t_open) * 1e3

    def _on_failed(self, stamp: int, message: str) -> None:
        if self._asked is not None and stamp >= self._asked[0]:
            self._asked = None  # no preview is coming: the mesh timer sends the mesh
        if stamp == self.w.doc.version:
            self.w.lbl_render.setText("render –")  # no stale time beside the error
            self.w.show_error(f"Rendering failed: {message}")

    def _on_status(self, text: str) -> None:
        if text:
            self.w.statusBar().showMessage(text)
        elif self._setup_task is not None:  # built (a cancelled build has ended its task already)
            self.w.tasks.end(self._setup_task)
            self._setup_task = None
            self.w.statusBar().showMessage(f"{SETUP_LABELS.get(self._setup_name, 'Renderer')} ready", 3000)

    def _on_setup_progress(self, name: str, stage: str, fraction: float, losses: list) -> None:
        """A renderer is being built (the neural renderer inverts the face, the Personal renderer
        fits its model: seconds): progress, Cancel, and for the Personal fit its loss chart."""
        if self._setup_task is None:
            self._setup_name = name
            self._setup_task = self.w.tasks.begin(f"Preparing the {SETUP_LABELS.get(name, name)}",
                                                  cancel=self.worker.cancel_setup,
                                                  chart=name == "personal")
        self.w.tasks.update(self._setup_task, stage, fraction, losses)

    def _on_setup_cancelled(self, name: str) -> None:
        self.w.tasks.end(self._setup_task)
        self._setup_task = None
        doc = self.w.doc
        if doc.has_face and doc.edit.params.renderer == name:
            doc.set_renderer("mesh")
        self.w.statusBar().showMessage(f"Cancelled: the {name} renderer was not set up; the mesh compositor "
                                       "renders the edits", 8000)

    def _update_fps(self) -> None:
        vp = self.w.viewport
        fps = vp.fps
        recent = vp.frame_times and time.perf_counter() - vp.frame_times[-1] < 1.5
        self.w.lbl_fps.setText(f"view {fps:.0f} fps" if recent and fps > 0 else "view idle")

    def stop(self, wait_ms: int = 5000) -> bool:
        """End the render and mesh threads; True when both have within ``wait_ms`` each."""
        meshes = self.meshes.stop(wait_ms)
        return self.worker.stop(wait_ms) and meshes
