"""Opening a photo and fitting its face, for the main window.

Each photo, or each face the user picks among several, starts one
:class:`~faceeditor.app.workers.FitJob`; starting a new one cancels the running one, and the
signals of a job that is no longer the current one are ignored. The job's stages arrive as
:class:`~faceeditor.app.workers.FitResult`: the landmark fit shows the head at once, the
photometric refinement (texture, light) follows under the progress panel and keeps the edits.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject

from faceeditor.app.fitjob import FitJob, FitResult


class FitControl(QObject):
    """Starts, follows and cancels the window's fit jobs (a child of the window: the jobs' signals
    reach it on the UI thread, and none after the window is gone)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.w = window
        self._job: FitJob | None = None  # the current job: only its signals count
        self._job_ids = 0
        self._jobs: list[FitJob] = []  # every job still running (cancelled ones finish in the background)
        self._task = None  # the progress panel's Task of the current job
        self.refining = False  # the document's face is a first fit, its refinement still running

    # ----------------------------------------------------------------- starting
    def open_photo(self, path: Path) -> None:
        """Load ``path``, find its faces and fit one (or let the user pick among several)."""
        self.w.timings.t_open, self.w.timings.first_fit_ms = time.perf_counter(), None
        self._start(f"Opening {Path(path).name}", path=path)

    def fit_face(self, index: int) -> None:
        """Fit face ``index`` of the document's detected faces."""
        doc = self.w.doc
        self.w.timings.t_open, self.w.timings.first_fit_ms = time.perf_counter(), None
        self._start(f"Fitting face {index + 1}", rgb=doc.photo, face_index=index, faces=doc.faces)

    def _start(self, title: str, **kw) -> None:
        self.cancel(quiet=True)
        self.refining = False  # the old face is going
        self._end_task()
        self._task = self.w.tasks.begin(title, cancel=self.cancel, chart=True)
        self._job_ids += 1
        job = FitJob(self.w.engine, self._job_ids, **kw)
        job.loaded.connect(self._on_loaded)
        job.faces_found.connect(self._on_faces)
        job.choose_face.connect(self._on_choose_face)
        job.progress.connect(self._on_progress)
        job.fitted.connect(self._on_fitted)
        job.failed.connect(self._on_failed)
        job.cancelled.connect(self._on_cancelled)
        job.finished.connect(lambda j=job: self._jobs.remove(j) if j in self._jobs else None)
        self._job = job
        self._jobs.append(job)
        job.start()

    def cancel(self, quiet: bool = False) -> None:
        """Stop the current job (the progress panel says "Cancelling…" until it has stopped)."""
        if self._job is not None and self._job.isRunning():
            self._job.cancel()

    def is_running(self) -> bool:
        return any(j.isRunning() for j in self._jobs)

    def _end_task(self) -> None:
        self.w.tasks.end(self._task)
        self._task = None
        if self.refining:  # the refinement will not come: the first fit is the face (full resolution now)
            self.refining = False
            if self.w.doc.has_face:
                self.w.renders.new_face(final=True)

    def shutdown(self, wait_ms: int = 10000) -> bool:
        """Cancel every job and wait up to ``wait_ms`` in all; True when none is left running."""
        for j in list(self._jobs):
            j.cancel()
        end = time.perf_counter() + wait_ms / 1e3
        for j in list(self._jobs):
            j.wait(max(0, int((end - time.perf_counter()) * 1e3)))
        return not self.is_running()

    # ----------------------------------------------------------------- job signals
    def _current(self, job_id: int) -> bool:
        return self._job is not None and job_id == self._job.job_id

    def _on_loaded(self, job_id: int, path, loaded) -> None:
        if self._current(job_id):
            self.w.doc.set_photo(Path(path), loaded.pixels, loaded)
            self.w.files.add_recent(path)

    def _on_faces(self, job_id: int, faces) -> None:
        if self._current(job_id):
            self.w.doc.set_faces(faces)

    def _on_choose_face(self, job_id: int, faces) -> None:
        if not self._current(job_id):
            return
        self._end_task()
        self.w.canvas.set_faces([f.box for f in faces], pick=True)
        self.w.statusBar().showMessage(f"{len(faces)} faces found: click the one to edit")

    def _on_progress(self, job_id: int, stage: str, fraction: float, losses) -> None:
        if self._current(job_id) and self._task is not None:
            self.w.tasks.update(self._task, stage, fraction, losses)

    def _on_fitted(self, fit: FitResult) -> None:
        if not self._current(fit.job_id):
            return
        w = self.w
        keep = w.doc.state is not None and w.doc.face_index == fit.face_index
        self.refining = not fit.final
        w.doc.set_state(fit.state, fit.face_index, fit.light, keep_edits=keep)
        w.viewport.set_texture(fit.texture)
        w.timings.fit_ms = (w.timings.fit_ms or 0.0) + fit.ms if keep else fit.ms
        w.lbl_fit.setText(f"fit {w.timings.fit_ms:.0f} ms" + ("" if fit.final else " …"))
        if fit.final:
            self._end_task()
            w.statusBar().showMessage("Face fitted: move the sliders to edit", 5000)
        elif self._task is not None:
            w.tasks.retitle(self._task, "Refining: texture and lighting")

    def _on_failed(self, job_id: int, message: str) -> None:
        if not self._current(job_id):
            return
        self._end_task()
        self.w.lbl_fit.setText("fit –")  # the last photo's fit time no longer applies
        self.w.show_error(message)
        if self.w.doc.photo is None:
            self.w.stack.setCurrentWidget(self.w.welcome)

    def _on_cancelled(self, job_id: int) -> None:
        if self._current(job_id):
            self._end_task()
            self.w.statusBar().showMessage("Cancelled", 4000)
