"""The fit job of the editor window: load a photo, find its faces, fit the chosen one.

:class:`FitJob` reports progress (stage, the whole job's fraction, new losses) at most ~30 times
a second; Cancel makes the next progress call return False, which stops the fitter. Each fit
stage arrives as a :class:`FitResult` (only plain data crosses threads).
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QThread, Signal

from faceeditor.app.workers import lower_thread_priority, message
from faceeditor.core.errors import Cancelled, FaceEditorError
from faceeditor.core.state import FaceState
from faceeditor.edit.light import LightParams

STAGE_TEXT = {
    "detect": "Finding faces",
    "landmarks": "Fitting the 3D head to the face",
    "photometric": "Estimating the lighting and the skin texture",
    "lighting": "Estimating the lighting",
    "texture": "Sampling the skin texture",
    "done": "Done",
}
# where each stage's own fraction lies on the whole job's progress bar (others: their own fraction)
STAGE_SPAN = {
    "Reading the photo": (0.0, 0.05),
    "Finding faces": (0.05, 0.15),
    "detect": (0.05, 0.15),
    "landmarks": (0.15, 0.5),
    "photometric": (0.5, 1.0),
    "lighting": (0.5, 0.75),
    "texture": (0.75, 0.98),
    "done": (None, None),
}


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


class FitJob(QThread):
    """Load a photo (optional), detect faces, fit one face; one job per photo / face choice."""

    loaded = Signal(int, object, object)  # job id, path, LoadedImage
    faces_found = Signal(int, object)  # job id, list[Face]
    choose_face = Signal(int, object)  # job id, list[Face] (several: the user clicks one)
    progress = Signal(int, str, float, object)  # job id, stage, fraction, new losses (list[float])
    fitted = Signal(object)  # FitResult
    failed = Signal(int, str)  # job id, message
    cancelled = Signal(int)

    def __init__(
        self,
        engine,
        job_id: int,
        *,
        path=None,
        rgb: np.ndarray | None = None,
        face_index: int | None = None,
        faces: list | None = None,
        parent=None,
    ) -> None:
        super().__init__(parent)
        self.engine, self.job_id = engine, job_id
        self.path, self.rgb, self.face_index, self.faces = path, rgb, face_index, faces
        self._cancel = threading.Event()
        self._losses: list[float] = []
        self._fraction = 0.0
        self._last_emit = 0.0
        self.t_start = time.perf_counter()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def _progress(self, stage: str, fraction: float, loss: float | None) -> bool:
        lo, hi = STAGE_SPAN.get(stage, (0.0, 1.0))
        if lo is not None:  # the whole job's fraction, never going back
            self._fraction = max(self._fraction, lo + (hi - lo) * min(1.0, max(0.0, float(fraction))))
        stage = STAGE_TEXT.get(stage, stage)
        if loss is not None and np.isfinite(loss):
            self._losses.append(float(loss))
        now = time.perf_counter()
        if now - self._last_emit > 0.033 or fraction >= 1.0:
            self._last_emit = now
            losses, self._losses = self._losses, []
            self.progress.emit(self.job_id, stage, self._fraction, losses)
        return not self._cancel.is_set()

    def run(self) -> None:
        lower_thread_priority()
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - reported to the window, never raised in the thread
            if self._cancel.is_set() or isinstance(exc, Cancelled):
                self.cancelled.emit(self.job_id)
                return
            if not isinstance(exc, FaceEditorError):
                traceback.print_exc()
            self.failed.emit(self.job_id, message(exc))

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
