"""The 3D view's own worker: the edited head mesh for the newest edit, beside the photo renderer.

The photo renderer (:class:`~faceeditor.app.workers.RenderWorker`) and this thread run side by
side, so the 3D head follows a drag without waiting for photo renders (and they for it).
Requests are latest-wins, as for the renderer: a burst of edits costs one mesh. Meshes come at
most every :data:`MESH_MIN_INTERVAL_S`: each one is drawn on the UI thread (software OpenGL:
tens of milliseconds), which must keep time for the mouse and the canvas.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QThread, Signal

from faceeditor.app.workers import MeshResult, lower_thread_priority

MESH_MIN_INTERVAL_S = 0.15  # at most ~7 meshes a second reach the 3D view (each costs llvmpipe ~40 ms)


@dataclass
class MeshRequest:
    stamp: int
    target: int
    state: Any  # FaceState
    edit: Any  # EditParams (a copy: the document keeps changing its own)


class MeshWorker(QThread):
    """Computes :meth:`Engine.head_mesh` for the newest request; ``mesh_ready`` carries a MeshResult."""

    mesh_ready = Signal(object)  # MeshResult
    failed = Signal(int, str)  # stamp, message

    def __init__(self, engine, parent=None) -> None:
        super().__init__(parent)
        self.engine = engine
        self._cond = threading.Condition()
        self._pending: MeshRequest | None = None
        self._stop = False
        self._last = 0.0

    def request(self, stamp: int, target: int, state, edit) -> None:
        with self._cond:
            self._pending = MeshRequest(stamp, target, state, edit.copy())
            self._cond.notify()

    def clear(self) -> None:
        """Drop a waiting request (a new photo or face)."""
        with self._cond:
            self._pending = None

    def stop(self, wait_ms: int = 5000) -> bool:
        """Ask the thread to end; True when it has within ``wait_ms``."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        return self.wait(wait_ms)

    def run(self) -> None:
        lower_thread_priority()
        while True:
            with self._cond:
                while not self._stop and self._pending is None:
                    self._cond.wait()
                # pace the meshes: wait out the interval (newer requests replace this one meanwhile)
                while not self._stop and time.perf_counter() - self._last < MESH_MIN_INTERVAL_S:
                    self._cond.wait(MESH_MIN_INTERVAL_S - (time.perf_counter() - self._last))
                if self._stop:
                    return
                req, self._pending = self._pending, None
            if req is None:
                continue
            t0 = time.perf_counter()
            try:
                mesh = self.engine.head_mesh(req.state, req.edit)
            except Exception as exc:  # noqa: BLE001 - reported, never raised in the thread
                traceback.print_exc()
                self.failed.emit(req.stamp, f"{type(exc).__name__}: {exc}")
                continue
            self._last = time.perf_counter()
            self.mesh_ready.emit(MeshResult(req.stamp, mesh, (self._last - t0) * 1e3, req.target))
