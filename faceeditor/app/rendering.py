"""The window's side of the one :class:`~faceeditor.app.workers.RenderWorker`: what to render
when, and showing what comes back.

Every document change that the picture depends on sends ``(Document.version, resolved edit)``:
a preview-scale render at once, the full-resolution one after the user pauses
(:data:`FULL_RES_DELAY_MS`). Results for another photo/face (target id) or older than what the
canvas shows are dropped. Other work for the render thread (session I/O, exports, the engine's
warm-up) goes through :meth:`RenderControl.submit`, whose callback runs on the UI thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer

from faceeditor.app.workers import MeshResult, RenderResult, RenderWorker

PREVIEW_MAX_SIDE = 384  # long side of preview renders while a slider moves
FULL_RES_DELAY_MS = 200  # pause before the full-resolution render
LATENCY_SAMPLES = 200  # request -> shown latencies kept


@dataclass
class Timings:
    """The window's own measurements (status bar, ``faceeditor bench gui``)."""

    fit_ms: float | None = None  # the current face's fit, its stages summed
    render_ms: float | None = None  # the last photo render that was shown
    t_open: float | None = None  # perf_counter() when a photo was opened or a face chosen
    first_fit_ms: float | None = None  # t_open -> the fitted head's first mesh in the viewport
    latency_ms: list[float] = field(default_factory=list)  # request -> canvas, the last LATENCY_SAMPLES


class RenderControl(QObject):
    """Sends render requests for the window's document and shows the results (a child of the window:
    the worker's signals reach it on the UI thread, and none after the window is gone)."""

    def __init__(self, window, worker: RenderWorker) -> None:
        super().__init__(window)
        self.w = window
        self.worker = worker
        self.target_id = 0  # the worker's id of the photo/face the window shows
        self._tasks: dict[int, Callable[[Any], None] | None] = {}
        worker.rendered.connect(self._on_rendered)
        worker.mesh_ready.connect(self._on_mesh)
        worker.failed.connect(self._on_failed)
        worker.task_done.connect(self._on_task_done)
        worker.status.connect(self._on_status)
        self._full_timer = QTimer(window, singleShot=True, interval=FULL_RES_DELAY_MS)
        self._full_timer.timeout.connect(self._request_full)
        self._fps_timer = QTimer(window, interval=1000)
        self._fps_timer.timeout.connect(self._update_fps)
        self._fps_timer.start()

    # ----------------------------------------------------------------- tasks on the render thread
    def submit(self, fn: Callable[[], Any], callback: Callable[[Any], None] | None = None) -> int:
        """Run ``fn()`` on the render thread; ``callback(result)`` follows on the UI thread (an
        exception becomes an error message in the window instead)."""
        tid = self.worker.submit(fn)
        self._tasks[tid] = callback
        return tid

    def _on_task_done(self, tid: int, result, error) -> None:
        cb = self._tasks.pop(tid, None)
        if error is not None:
            self.w.show_error(error)
        elif cb is not None:
            cb(result)

    # ----------------------------------------------------------------- requests
    def new_photo(self) -> None:
        """A photo without a fitted face: nothing to render."""
        self.target_id = self.worker.set_target(None, None)

    def new_face(self) -> None:
        """A fitted face (or a refined fit): render it, and warm the renderers for the sizes it will take."""
        doc = self.w.doc
        self.target_id = self.worker.set_target(doc.photo, doc.state)
        self.schedule()
        self.worker.prepare(tuple(sorted({self.preview_scale(), 1.0})), doc.edit.params.renderer)

    def preview_scale(self) -> float:
        photo = self.w.doc.photo
        if photo is None:
            return 1.0
        return min(1.0, PREVIEW_MAX_SIDE / max(photo.shape[:2]))

    def schedule(self) -> None:
        """The current edit: a preview now, full resolution after a pause."""
        doc = self.w.doc
        if not doc.has_face:
            return
        scale = self.preview_scale()
        self.worker.request(doc.version, doc.resolved_edit(), scale)
        if scale < 1.0:
            self._full_timer.start()

    def _request_full(self) -> None:
        doc = self.w.doc
        if doc.has_face:
            self.worker.request(doc.version, doc.resolved_edit(), 1.0, mesh=False)

    # ----------------------------------------------------------------- results
    def _on_rendered(self, res: RenderResult) -> None:
        w = self.w
        if res.target != self.target_id:
            return
        if w.canvas.set_result(res.image, res.stamp, res.scale):
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
        if stamp == self.w.doc.version:
            self.w.show_error(f"Rendering failed: {message}")

    def _on_status(self, text: str) -> None:
        if text:
            self.w.statusBar().showMessage(text)
        else:
            self.w.statusBar().showMessage("Neural renderer ready", 3000)

    def _update_fps(self) -> None:
        vp = self.w.viewport
        fps = vp.fps
        recent = vp.frame_times and time.perf_counter() - vp.frame_times[-1] < 1.5
        self.w.lbl_fps.setText(f"view {fps:.0f} fps" if recent and fps > 0 else "view idle")

    def stop(self) -> None:
        self.worker.stop()
