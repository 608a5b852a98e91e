"""Background work for the editor window: one latest-wins renderer and the fit jobs.

:class:`RenderWorker` follows StyleGAN3's visualizer ``AsyncRenderer``: the UI thread only
*sets* the newest request (edit, scale, stamp); the worker thread renders whatever is newest
when it gets to it, so a burst of slider events costs one render, not a queue of them. A
full-resolution render is cancelled as soon as a newer request arrives; a preview render is
allowed to finish (cancelling those would show nothing while a slider moves). Results carry
the request's stamp and the window drops any result older than what it shows. The 3D view's
head meshes come from their own thread (:mod:`faceeditor.app.meshworker`).

The fit jobs are in :mod:`faceeditor.app.fitjob`.

Only plain data crosses threads: numpy arrays and dataclasses of them, through queued signals.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QThread, Signal

from faceeditor.core.errors import Cancelled, FaceEditorError
from faceeditor.edit.params import EditParams

SETUP_LABELS = {"gar": "GAR renderer", "personal": "Personal renderer"}  # renderers built with progress
SETUP_STAGES = {"init": "starting", "invert": "fitting the face", "tune": "tuning the renderer",  # GAR
                "normals": "fitting normals", "texture": "fitting the albedo", "lighting": "learning shadows",
                "all": "refining everything", "light": "fitting this photo's light"}  # personal (paper 001)


@dataclass
class RenderRequest:
    stamp: int
    edit: EditParams
    scale: float
    t_request: float = field(default_factory=time.perf_counter)


@dataclass
class RenderResult:
    stamp: int
    scale: float
    image: np.ndarray  # uint8 HxWx3 at scale x photo size
    render_ms: float
    t_request: float
    target: int


@dataclass
class MeshResult:
    stamp: int
    mesh: Any  # engine.HeadMesh
    ms: float
    target: int


WARM_UP_EDITS = ({"yaw": 4.0, "expression": {"mouthSmile_L": 0.4}},
                 {"yaw": -4.0, "pitch": 3.0, "expression": {"jawOpen": 0.2}, "light": {"azimuth": 20.0}})
CANCELLED = object()  # the result of a submitted task that was cancelled
TRACE = bool(os.environ.get("FACEEDITOR_TRACE_RENDER"))  # print each render's timing to stderr
BACKGROUND_NICE = int(os.environ.get("FACEEDITOR_WORKER_NICE", "3"))  # fits and meshes yield the CPU to the UI
# the photo renderer runs at normal priority: its previews are what a dragging user waits for, and
# a lowered priority lets every other program on a busy machine go first (measured: 3.7 -> ~6 fps)
RENDER_NICE = int(os.environ.get("FACEEDITOR_RENDER_NICE", "0"))


def lower_thread_priority(delta: int = BACKGROUND_NICE) -> None:
    """Raise this thread's nice value (Linux: per thread; threads it starts inherit it)."""
    if delta <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + delta))
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass


def _trace(text: str) -> None:
    print(f"[render {time.perf_counter():.3f}] {text}", file=sys.stderr, flush=True)


def message(exc: BaseException) -> str:
    if isinstance(exc, FaceEditorError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class RenderWorker(QThread):
    """The one background renderer. Call :meth:`set_target` after a fit, then :meth:`request`."""

    rendered = Signal(object)  # RenderResult
    failed = Signal(int, str)  # stamp, message
    task_done = Signal(int, object, object)  # task id, result, error message or None
    busy_changed = Signal(bool)
    status = Signal(str)  # a line for the status bar while a renderer is being built ("" = done)
    setup_progress = Signal(str, str, float, list)  # a renderer being built (neural: inversion; personal:
    #                                                  its fit): renderer name, stage, fraction, new losses
    setup_cancelled = Signal(str)  # the renderer's build was cancelled (its name): the window falls back

    def __init__(self, engine, parent=None) -> None:
        super().__init__(parent)
        self.engine = engine
        self._cond = threading.Condition()
        self._pending_preview: RenderRequest | None = None
        self._pending_full: RenderRequest | None = None
        self._tasks: list[tuple[int, Callable[[], Any]]] = []
        self._target: tuple[int, np.ndarray, Any] | None = None
        self._target_id = 0
        self._renderers: dict[str, Any] = {}
        self._renderers_for = -1
        self._stop = False
        self._task_ids = 0
        self.last_full: tuple[int, int, np.ndarray] | None = None  # (target, stamp, image)
        self._idle_prepare: tuple[tuple[float, ...], str] | None = None
        self._prepared: set = set()
        self._setup_cancel = threading.Event()  # Cancel pressed while a renderer is being built

    # ----------------------------------------------------------------- UI-thread API
    def set_target(self, rgb: np.ndarray | None, state) -> int:
        """New photo/face; drops pending work. Returns the target id carried by results."""
        with self._cond:
            self._target_id += 1
            self._target = None if state is None else (self._target_id, rgb, state)
            self._pending_preview = self._pending_full = None
            self.last_full = None
            self._idle_prepare = None
            self._cond.notify()
            return self._target_id

    def request(self, stamp: int, edit: EditParams, scale: float) -> None:
        """Ask for ``edit`` at ``scale``. One preview and one full-resolution request wait at most;
        a newer request replaces an older one of its kind, and a preview drops an older full one."""
        req = RenderRequest(stamp, edit.copy(), float(scale))
        with self._cond:
            if req.scale >= 1.0:
                self._pending_full = req
            else:
                self._pending_preview = req
                if self._pending_full is not None and self._pending_full.stamp < stamp:
                    self._pending_full = None
            self._cond.notify()

    @property
    def _pending(self) -> RenderRequest | None:
        """The request to serve next: the preview first (it is what the user waits for)."""
        return self._pending_preview or self._pending_full

    def _pop_pending(self) -> RenderRequest | None:
        req = self._pending
        if req is self._pending_preview:
            self._pending_preview = None
        else:
            self._pending_full = None
        return req

    def submit(self, fn: Callable[[], Any]) -> int:
        """Run ``fn()`` on the worker thread between renders; ``task_done`` reports it."""
        with self._cond:
            self._task_ids += 1
            self._tasks.append((self._task_ids, fn))
            self._cond.notify()
            return self._task_ids

    def stop(self, wait_ms: int = 5000) -> bool:
        """Ask the thread to end (a render in progress is cancelled); True when it has within ``wait_ms``."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        return self.wait(wait_ms)

    def has_newer(self, stamp: int) -> bool:
        p = self._pending_preview
        f = self._pending_full
        return self._stop or (p is not None and p.stamp > stamp) or (f is not None and f.stamp > stamp)

    # ----------------------------------------------------------------- worker thread
    def renderer(self, name: str, preview: bool = False):
        """The PhotoRenderer for the current target (built on first use, on this thread)."""
        target = self._target
        if target is None:
            raise RuntimeError("no fitted face")
        if self._renderers_for != target[0]:
            self._renderers, self._renderers_for = {}, target[0]
            self._prepared = set()
        key = (name, preview)
        if key not in self._renderers:
            progress = self._setup_progress(name) if name in SETUP_LABELS else None
            try:
                if progress is not None and self._setup_cancel.is_set():
                    raise Cancelled(f"setting up the {name} renderer was cancelled")
                self._renderers[key] = self.engine.make_renderer(target[1], target[2], name, preview=preview,
                                                                 progress=progress)
            except Cancelled:
                if self._setup_cancel.is_set():
                    self._idle_prepare = None
                    self.setup_cancelled.emit(name)
                raise
            finally:
                if progress is not None:
                    self.status.emit("")
        return self._renderers[key]

    def cancel_setup(self) -> None:
        """Stop building a renderer (the neural renderer's inversion) at its next progress report;
        requests still waiting for one fail at once, until :meth:`allow_setup`."""
        self._setup_cancel.set()

    def allow_setup(self) -> None:
        """The user chose a renderer that needs building again: builds may run."""
        self._setup_cancel.clear()

    def _setup_progress(self, name: str):
        """Progress callback of a renderer's build (the neural renderer's inversion, the Personal
        model's fit): a status line and the progress panel a few times a second, with the losses
        since the last report (the panel's loss chart); stops the build when the worker is
        shutting down or the user cancelled."""
        last = [0.0]
        losses: list[float] = []
        label = SETUP_LABELS[name]

        def progress(stage: str, fraction: float, loss=None) -> bool:
            if loss is not None:
                losses.append(float(loss))
            now = time.perf_counter()
            if now - last[0] > 0.2 or fraction >= 1.0:
                last[0] = now
                what = SETUP_STAGES.get(stage, stage)
                self.status.emit(f"{label}: {what} … {100 * fraction:.0f}%")
                self.setup_progress.emit(name, f"{label}: {what}", float(fraction), list(losses))
                losses.clear()
            return not (self._stop or self._setup_cancel.is_set())

        return progress

    def prepare(self, scales: tuple[float, ...], name: str = "mesh") -> None:
        """Warm the renderers' per-size caches while the user has not touched a slider yet
        (runs only when nothing else is waiting; see :meth:`run`)."""
        with self._cond:
            self._idle_prepare = (tuple(scales), name)
            self._cond.notify()

    def _prepare_step(self) -> bool:
        """One scale of the idle warm-up: the renderer's caches, then two throw-away renders (the
        first renders after a fit pay one-time costs of seconds). A user request pre-empts it."""
        job = self._idle_prepare
        if job is None or self._target is None:
            return False
        scales, name = job
        for scale in scales:
            key = (name, scale < 1.0, scale)
            if key in self._prepared:
                continue
            r = self.renderer(name, preview=scale < 1.0)
            try:
                if hasattr(r, "prepare"):
                    r.prepare(scale)
                for edit in WARM_UP_EDITS:
                    r.render(EditParams.from_dict({**edit, "renderer": name}), scale=scale,
                             cancel=lambda: self._pending is not None or self._stop)
            except Cancelled:
                return True  # the user's request first; the warm-up resumes when idle
            self._prepared.add(key)
            if TRACE:
                _trace(f"warmed up {name} x{scale}")
            return True
        self._idle_prepare = None
        return False

    def run(self) -> None:
        lower_thread_priority(RENDER_NICE)
        while True:
            with self._cond:
                while (not self._stop and self._pending is None and not self._tasks
                       and self._idle_prepare is None):
                    self._cond.wait()
                if self._stop:
                    return
                task = self._tasks.pop(0) if self._tasks else None
                req = None if task else self._pop_pending()
                target = self._target
            self.busy_changed.emit(True)
            if task is not None:
                self._run_task(*task)
            elif req is not None and target is not None:
                self._render(req, target)
            else:
                try:
                    if not self._prepare_step():
                        self._idle_prepare = None
                except Exception:  # noqa: BLE001 - a failed warm-up only costs the first render its time
                    traceback.print_exc()
                    self._idle_prepare = None
            with self._cond:
                idle = self._pending is None and not self._tasks
            if idle:
                self.busy_changed.emit(False)

    def _run_task(self, task_id: int, fn: Callable[[], Any]) -> None:
        try:
            self.task_done.emit(task_id, fn(), None)
        except Cancelled:
            self.task_done.emit(task_id, CANCELLED, None)
        except Exception as exc:  # noqa: BLE001 - reported to the window, never raised in the thread
            traceback.print_exc()
            self.task_done.emit(task_id, None, message(exc))

    def _render(self, req: RenderRequest, target: tuple[int, np.ndarray, Any]) -> None:
        tid = target[0]
        try:
            full = req.scale >= 1.0
            if full and self.last_full is not None and self.last_full[:2] == (tid, req.stamp):
                image, ms = self.last_full[2], 0.0
            else:
                t0 = time.perf_counter()
                cancel = (lambda: self.has_newer(req.stamp)) if full else (lambda: self._stop)
                try:
                    renderer = self.renderer(req.edit.renderer, preview=not full)
                    image = renderer.render(req.edit, scale=req.scale, cancel=cancel)
                except Cancelled:
                    if TRACE:
                        _trace(f"cancelled stamp {req.stamp} x{req.scale} after {(time.perf_counter() - t0) * 1e3:.0f} ms")
                    return
                ms = (time.perf_counter() - t0) * 1e3
                if TRACE:
                    _trace(f"rendered stamp {req.stamp} x{req.scale} in {ms:.0f} ms, "
                           f"{(t0 - req.t_request) * 1e3:.0f} ms after the request")
                if full:
                    self.last_full = (tid, req.stamp, image)
            self.rendered.emit(RenderResult(req.stamp, req.scale, np.ascontiguousarray(image), ms, req.t_request,
                                            tid))
        except Exception as exc:  # noqa: BLE001 - reported to the window, never raised in the thread
            traceback.print_exc()
            self.failed.emit(req.stamp, message(exc))

    def full_image(self, stamp: int, edit: EditParams, cancel: Callable[[], bool] | None = None) -> np.ndarray:
        """Full-resolution render of ``edit`` (for export; call on the worker thread via :meth:`submit`);
        ``cancel() -> True`` stops it (:class:`Cancelled`)."""
        target = self._target
        if target is None:
            raise RuntimeError("no fitted face")
        if self.last_full is not None and self.last_full[:2] == (target[0], stamp):
            return self.last_full[2]
        return self.renderer(edit.renderer).render(edit, scale=1.0, cancel=cancel)
