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

from faceeditor.app.workers import FitJob, FitResult


class FitControl(QObject):
    """Starts, follows and cancels the window's fit jobs (a child of the window: the jobs' signals
    reach it on the UI thread, and none after the window is gone)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.w = window
        self._job: FitJob | None = None  # the current job: only its signals count
        self._job_ids = 0
        self._jobs: list[FitJob] = []  # every job still running (cancelled ones finish in the background)

    # ----------------------------------------------------------------- starting
    def open_photo(self, path: Path) -> None:
        """Load ``path``, find its faces and fit one (or let the user pick among several)."""
        self.w.timings.t_open, self.w.timings.first_fit_ms = time.perf_counter(), None
        self._start(path=path)

    def fit_face(self, index: int) -> None:
        """Fit face ``index`` of the document's detected faces."""
        doc = self.w.doc
        self.w.timings.t_open, self.w.timings.first_fit_ms = time.perf_counter(), None
        self._start(rgb=doc.photo, face_index=index, faces=doc.faces)

    def _start(self, **kw) -> None:
        self.cancel(quiet=True)
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
        """Stop the current job (``quiet``: no "Cancelling…" in the progress panel)."""
        if self._job is not None and self._job.isRunning():
            self._job.cancel()
            if not quiet:
                self.w.progress.cancel.setEnabled(False)
                self.w.progress.stage.setText("Cancelling…")

    def is_running(self) -> bool:
        return any(j.isRunning() for j in self._jobs)

    def shutdown(self) -> None:
        """Cancel every job and wait for them (up to 10 s each)."""
        for j in list(self._jobs):
            j.cancel()
        for j in list(self._jobs):
            j.wait(10000)

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
        self.w.progress.finish()
        self.w.canvas.set_faces([f.box for f in faces], pick=True)
        self.w.statusBar().showMessage(f"{len(faces)} faces found: click the one to edit")

    def _on_progress(self, job_id: int, stage: str, fraction: float, losses) -> None:
        if self._current(job_id):
            self.w.progress.update_progress(stage, fraction, losses)

    def _on_fitted(self, fit: FitResult) -> None:
        if not self._current(fit.job_id):
            return
        w = self.w
        keep = w.doc.state is not None and w.doc.face_index == fit.face_index
        w.doc.set_state(fit.state, fit.face_index, fit.light, keep_edits=keep)
        w.viewport.set_texture(fit.texture)
        w.timings.fit_ms = (w.timings.fit_ms or 0.0) + fit.ms if keep else fit.ms
        w.lbl_fit.setText(f"fit {w.timings.fit_ms:.0f} ms" + ("" if fit.final else " …"))
        if fit.final:
            w.progress.finish()
            w.statusBar().showMessage("Face fitted: move the sliders to edit", 5000)
        else:
            w.progress.title.setText("Refining: texture and lighting")

    def _on_failed(self, job_id: int, message: str) -> None:
        if not self._current(job_id):
            return
        self.w.progress.finish()
        self.w.lbl_fit.setText("fit –")  # the last photo's fit time no longer applies
        self.w.show_error(message)
        if self.w.doc.photo is None:
            self.w.stack.setCurrentWidget(self.w.welcome)

    def _on_cancelled(self, job_id: int) -> None:
        if self._current(job_id):
            self.w.progress.finish()
            self.w.statusBar().showMessage("Cancelled", 4000)
