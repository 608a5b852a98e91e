"""Background work for the editor window: one latest-wins renderer and the fit jobs.

:class:`RenderWorker` follows StyleGAN3's visualizer ``AsyncRenderer``: the UI thread only
*sets* the newest request (edit, scale, stamp); the worker thread renders whatever is newest
when it gets to it, so a burst of slider events costs one render, not a queue of them. A
full-resolution render is cancelled as soon as a newer request arrives; a preview render is
allowed to finish (cancelling those would show nothing while a slider moves). Results carry
the request's stamp and the window drops any result older than what it shows.

:class:`FitJob` loads a photo, finds its faces and fits the chosen one, reporting progress
(stage, fraction, loss) at most ~30 times a second; Cancel makes the next progress call
return False, which stops the fitter.

Only plain data crosses threads: numpy arrays and dataclasses of them, through queued signals.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QThread, Signal

from faceeditor.core.errors import Cancelled, FaceEditorError
from faceeditor.core.state import FaceState
from faceeditor.edit.light import LightParams
from faceeditor.edit.params import EditParams


@dataclass
class RenderRequest:
    stamp: int
    edit: EditParams
    scale: float
    mesh: bool = True
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


@dataclass
class FitResult:
    """One fit of a :class:`FitJob` (a job reports each stage: landmarks, then the photometric refinement)."""

    job_id: int
    state: FaceState
    face_index: int  # which of the detected faces
    light: LightParams  # the fitted SH as light controls (the lighting panel's "as in photo")
    final: bool  # the last stage: the fit is complete
    ms: float  # time of this stage
    texture: np.ndarray  # uint8 albedo atlas for the 3D viewport


WARM_UP_EDITS = ({"yaw": 4.0, "expression": {"mouthSmile_L": 0.4}},
                 {"yaw": -4.0, "pitch": 3.0, "expression": {"jawOpen": 0.2}, "light": {"azimuth": 20.0}})
STAGE_TEXT = {"detect": "Finding faces", "landmarks": "Fitting the 3D head to the face",
              "photometric": "Estimating the lighting and the skin texture", "done": "Done"}
TRACE = bool(os.environ.get("FACEEDITOR_TRACE_RENDER"))  # print each render's timing to stderr
BACKGROUND_NICE = int(os.environ.get("FACEEDITOR_WORKER_NICE", "3"))  # workers yield the CPU to the UI thread


def lower_thread_priority(delta: int = BACKGROUND_NICE) -> None:
    """Raise this thread's nice value (Linux: per thread; threads it starts inherit it)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + delta))
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass


def _trace(text: str) -> None:
    print(f"[render {time.perf_counter():.3f}] {text}", file=sys.stderr, flush=True)


def _message(exc: BaseException) -> str:
    if isinstance(exc, FaceEditorError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class RenderWorker(QThread):
    """The one background renderer. Call :meth:`set_target` after a fit, then :meth:`request`."""

    rendered = Signal(object)  # RenderResult
    mesh_ready = Signal(object)  # MeshResult
    failed = Signal(int, str)  # stamp, message
    task_done = Signal(int, object, object)  # task id, result, error message or None
    busy_changed = Signal(bool)
    status = Signal(str)  # a line for the status bar while a renderer is being built ("" = done)

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
        self._mesh_time = 0.0

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

    def request(self, stamp: int, edit: EditParams, scale: float, mesh: bool = True) -> None:
        """Ask for ``edit`` at ``scale``. One preview and one full-resolution request wait at most;
        a newer request replaces an older one of its kind, and a preview drops an older full one."""
        req = RenderRequest(stamp, edit.copy(), float(scale), mesh)
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

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self.wait(5000)

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
            progress = self._inversion_progress() if name == "neural" else None
            try:
                self._renderers[key] = self.engine.make_renderer(target[1], target[2], name, preview=preview,
                                                                 progress=progress)
            finally:
                if progress is not None:
                    self.status.emit("")
        return self._renderers[key]

    def _inversion_progress(self):
        """Progress callback of the neural renderer's inversion: a status line a few times a second;
        stops the inversion when the worker is shutting down."""
        last = [0.0]
        names = {"init": "starting", "invert": "fitting the face", "tune": "tuning the renderer"}

        def progress(stage: str, fraction: float, loss=None) -> bool:
            now = time.perf_counter()
            if now - last[0] > 0.2:
                last[0] = now
                self.status.emit(f"Neural renderer: {names.get(stage, stage)} … {100 * fraction:.0f}%")
            return not self._stop

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
        lower_thread_priority()
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
                except Exception:
                    traceback.print_exc()
                    self._idle_prepare = None
            with self._cond:
                idle = self._pending is None and not self._tasks
            if idle:
                self.busy_changed.emit(False)

    def _run_task(self, task_id: int, fn: Callable[[], Any]) -> None:
        try:
            self.task_done.emit(task_id, fn(), None)
        except Exception as exc:  # reported to the window, never raised in the thread
            traceback.print_exc()
            self.task_done.emit(task_id, None, _message(exc))

    def _render(self, req: RenderRequest, target: tuple[int, np.ndarray, Any]) -> None:
        tid, rgb, state = target
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
            # the 3D view follows; while a newer request waits it is skipped, but never for long
            if req.mesh and (not self.has_newer(req.stamp) or time.perf_counter() - self._mesh_time > 0.15):
                t0 = time.perf_counter()
                mesh = self.engine.head_mesh(state, req.edit)
                self._mesh_time = time.perf_counter()
                self.mesh_ready.emit(MeshResult(req.stamp, mesh, (self._mesh_time - t0) * 1e3, tid))
        except Exception as exc:
            traceback.print_exc()
            self.failed.emit(req.stamp, _message(exc))

    def full_image(self, stamp: int, edit: EditParams) -> np.ndarray:
        """Full-resolution render of ``edit`` (for export; call on the worker thread via :meth:`submit`)."""
        target = self._target
        if target is None:
            raise RuntimeError("no fitted face")
        if self.last_full is not None and self.last_full[:2] == (target[0], stamp):
            return self.last_full[2]
        return self.renderer(edit.renderer).render(edit, scale=1.0)


class FitJob(QThread):
    """Load a photo (optional), detect faces, fit one face; one job per photo / face choice."""

    loaded = Signal(int, object, object)  # job id, path, LoadedImage
    faces_found = Signal(int, object)  # job id, list[Face]
    choose_face = Signal(int, object)  # job id, list[Face] (several: the user clicks one)
    progress = Signal(int, str, float, object)  # job id, stage, fraction, new losses (list[float])
    fitted = Signal(object)  # FitResult
    failed = Signal(int, str)  # job id, message
    cancelled = Signal(int)

    def __init__(self, engine, job_id: int, *, path=None, rgb: np.ndarray | None = None,
                 face_index: int | None = None, faces: list | None = None, parent=None) -> None:
        super().__init__(parent)
        self.engine, self.job_id = engine, job_id
        self.path, self.rgb, self.face_index, self.faces = path, rgb, face_index, faces
        self._cancel = threading.Event()
        self._losses: list[float] = []
        self._last_emit = 0.0
        self.t_start = time.perf_counter()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def _progress(self, stage: str, fraction: float, loss: float | None) -> bool:
        stage = STAGE_TEXT.get(stage, stage)
        if loss is not None and np.isfinite(loss):
            self._losses.append(float(loss))
        now = time.perf_counter()
        if now - self._last_emit > 0.033 or fraction >= 1.0:
            self._last_emit = now
            losses, self._losses = self._losses, []
            self.progress.emit(self.job_id, stage, float(fraction), losses)
        return not self._cancel.is_set()

    def run(self) -> None:
        lower_thread_priority()
        try:
            self._run()
        except Exception as exc:
            if self._cancel.is_set() or isinstance(exc, Cancelled):
                self.cancelled.emit(self.job_id)
                return
            if not isinstance(exc, FaceEditorError):
                traceback.print_exc()
            self.failed.emit(self.job_id, _message(exc))

    def _run(self) -> None:
        rgb = self.rgb
        if self.path is not None:
            self._progress("Reading the photo", 0.0, None)
            loaded = self.engine.load_photo(self.path)
            rgb = loaded.pixels
            self.loaded.emit(self.job_id, self.path, loaded)
        if self._cancel.is_set():
            raise Cancelled("fit cancelled")
        faces = self.faces
        if faces is None:
            self._progress("Finding faces", 0.02, None)
            faces = self.engine.detect(rgb)
            self.faces_found.emit(self.job_id, faces)
        index = self.face_index
        if index is None:
            if len(faces) > 1:
                self.choose_face.emit(self.job_id, faces)
                return
            index = 0
        stages = self.engine.fit_stages()
        state = None
        for i, stage in enumerate(stages):
            if self._cancel.is_set():
                raise Cancelled("fit cancelled")
            t0 = time.perf_counter()
            if stage == "landmarks" or state is None:
                state = self.engine.fit(rgb, index, stage != "landmarks", self._progress, faces=faces)
            else:
                state = self.engine.refine(rgb, state, self._progress)
            ms = (time.perf_counter() - t0) * 1e3
            light = self.engine.photo_light(state)
            texture = self.engine.head_texture(state)
            self.fitted.emit(FitResult(self.job_id, state, index, light, i == len(stages) - 1, ms, texture))
