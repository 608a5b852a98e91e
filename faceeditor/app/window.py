"""The FaceEditor main window: canvas, 3D viewport, slider panels, progress, menus, status bar.

Data flow (DESIGN.md): widgets set arguments on the :class:`~faceeditor.edit.document.Document`;
every change bumps ``Document.version``, and the window sends ``(version, resolved edit)`` to
the one :class:`~faceeditor.app.workers.RenderWorker`: a preview-scale render at once, the
full-resolution one after the user pauses (debounced). Results older than what is shown are
dropped. Fitting runs in :class:`~faceeditor.app.workers.FitJob` threads. File actions,
exports and the autosave live in :mod:`faceeditor.app.fileops`.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QDockWidget, QLabel, QMainWindow, QSplitter, QStackedWidget, QTabWidget,
                               QVBoxLayout, QWidget)

from faceeditor.app.actions import build_actions
from faceeditor.app.canvas import PhotoCanvas
from faceeditor.app.fileops import FileOps
from faceeditor.app.icons import app_icon, icon
from faceeditor.app.panels import ExpressionPanel, HistoryPanel, LightPanel, PosePanel
from faceeditor.app.viewport import make_viewport
from faceeditor.app.widgets import MessageBar, ProgressPanel, Welcome
from faceeditor.app.workers import FitJob, RenderWorker
from faceeditor.edit.document import Document

PREVIEW_MAX_SIDE = 384  # long side of preview renders while a slider moves
FULL_RES_DELAY_MS = 200  # pause before the full-resolution render


class MainWindow(QMainWindow):
    def __init__(self, engine=None, parent=None) -> None:
        super().__init__(parent)
        if engine is None:
            from faceeditor.app.engine import Engine

            engine = Engine()
        self.engine = engine
        self.doc = Document()
        self.ask_on_close = False
        self.setWindowTitle("FaceEditor")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1480, 920)
        self.setDockOptions(QMainWindow.AnimatedDocks | QMainWindow.AllowTabbedDocks)

        self.worker = RenderWorker(engine)
        self.worker.rendered.connect(self._on_rendered)
        self.worker.mesh_ready.connect(self._on_mesh)
        self.worker.failed.connect(self._on_render_failed)
        self.worker.task_done.connect(self._on_task_done)
        self.worker.status.connect(self._on_worker_status)
        self.worker.start()
        self._tasks: dict[int, object] = {}
        self._target_id = 0
        self._job: FitJob | None = None
        self._job_ids = 0
        self._jobs: list[FitJob] = []
        self.last_latency_ms: list[float] = []
        self.timings = {"fit_ms": None, "render_ms": None}
        self.t_open: float | None = None
        self.t_first_fit_ms: float | None = None

        self._build_central()
        self._build_docks()
        self.files = FileOps(self)
        build_actions(self)
        self._build_status()
        self.doc.subscribe(self._on_doc)
        self._full_timer = QTimer(self, singleShot=True, interval=FULL_RES_DELAY_MS)
        self._full_timer.timeout.connect(self._request_full)
        self._fps_timer = QTimer(self, interval=1000)
        self._fps_timer.timeout.connect(self._update_fps)
        self._fps_timer.start()
        self._refresh_all()
        self._restore_layout()
        self.submit(self._warm_up, self._on_warm)

    # ----------------------------------------------------------------- layout
    def _build_central(self) -> None:
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(8, 8, 8, 0)
        lay.setSpacing(6)
        self.banner = MessageBar()
        lay.addWidget(self.banner)
        self.stack = QStackedWidget()
        self.welcome = Welcome()
        self.canvas = PhotoCanvas()
        self.canvas.face_clicked.connect(self._on_face_clicked)
        self.canvas.view_changed.connect(self._update_zoom_label)
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(self.canvas)
        lay.addWidget(self.stack, 1)
        self.progress = ProgressPanel()
        self.progress.cancel_clicked.connect(self.cancel_fit)
        lay.addWidget(self.progress)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.viewport = make_viewport()
        self.viewport.light_dragged.connect(lambda az, el: self.doc.set_light_fields(azimuth=az, elevation=el))
        self.viewport.light_drag_finished.connect(self.doc.close_gesture)
        self.pose_panel = PosePanel(self.doc)
        self.expr_panel = ExpressionPanel(self.doc)
        self.light_panel = LightPanel(self.doc)
        self.history_panel = HistoryPanel(self.doc)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.pose_panel, icon("head3d"), "Pose")
        self.tabs.addTab(self.expr_panel, icon("face"), "Expression")
        self.tabs.addTab(self.light_panel, icon("light"), "Lighting")
        self.tabs.addTab(self.history_panel, icon("undo"), "History")
        side = QSplitter(Qt.Vertical)
        side.addWidget(self.viewport)
        side.addWidget(self.tabs)
        side.setSizes([330, 560])
        side.setChildrenCollapsible(False)
        self.side = side
        dock = QDockWidget("Head and controls")
        dock.setObjectName("controls")
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        dock.setWidget(side)
        dock.setMinimumWidth(400)
        self.addDockWidget(Qt.RightDockWidgetArea, dock)
        self.resizeDocks([dock], [440], Qt.Horizontal)
        self.controls_dock = dock

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.lbl_device = QLabel("device …")
        self.lbl_fit = QLabel("fit –")
        self.lbl_render = QLabel("render –")
        self.lbl_fps = QLabel("view – fps")
        self.lbl_zoom = QLabel("")
        for w, tip in ((self.lbl_device, "Where fitting and rendering compute"), (self.lbl_fit, "Time to fit the face"),
                       (self.lbl_render, "Time of the last photo render (preview or full resolution)"),
                       (self.lbl_fps, "3D viewport frames per second"), (self.lbl_zoom, "Photo zoom")):
            w.setToolTip(tip)
            sb.addPermanentWidget(w)
        sb.showMessage("Drop a photo onto the window to start")

    # ----------------------------------------------------------------- tasks on the render thread
    def submit(self, fn, callback=None) -> int:
        tid = self.worker.submit(fn)
        self._tasks[tid] = callback
        return tid

    def _on_task_done(self, tid: int, result, error) -> None:
        cb = self._tasks.pop(tid, None)
        if error is not None:
            self.show_error(error)
        elif cb is not None:
            cb(result)

    def _warm_up(self):
        self.engine.warm_up()
        return self.engine.device_text(), self.engine.renderers()

    def _on_warm(self, result) -> None:
        device, renderers = result
        self.lbl_device.setText(device)
        self.lbl_device.setMinimumWidth(self.lbl_device.sizeHint().width())
        self.renderer_combo.clear()
        model = self.renderer_combo.model()
        for i, (rid, label, ok, tip) in enumerate(renderers):
            self.renderer_combo.addItem(label if ok else f"{label} (not available)", rid)
            self.renderer_combo.setItemData(i, tip, Qt.ToolTipRole)
            model.item(i).setEnabled(ok)
        self._sync_renderer_combo()

    # ----------------------------------------------------------------- document events
    def _on_doc(self, event: str) -> None:
        if event == "photo":
            self.canvas.set_photo(self.doc.photo)
            self.stack.setCurrentWidget(self.canvas)
            self.viewport.clear()
            self._target_id = self.worker.set_target(None, None)
        elif event == "faces":
            self.canvas.set_faces([f.box for f in self.doc.faces], pick=False)
        elif event == "state":
            self._target_id = self.worker.set_target(self.doc.photo, self.doc.state)
        if event in ("state", "edit"):
            self._schedule_render()
        if event == "state":
            self.worker.prepare(tuple(sorted({self.preview_scale(), 1.0})), self.doc.edit.params.renderer)
        self._refresh_all()

    def _refresh_all(self) -> None:
        has = self.doc.has_face
        for p in (self.pose_panel, self.expr_panel, self.light_panel, self.history_panel):
            p.setEnabled(has)
            p.refresh()
        if has:
            light = self.doc.current_light()
            self.viewport.set_light_angles(light.azimuth, light.elevation)
        h = self.doc.history
        self.act_undo.setEnabled(h.can_undo())
        self.act_redo.setEnabled(h.can_redo())
        self.act_undo.setText(f"&Undo {h.undo_label()}" if h.can_undo() else "&Undo")
        self.act_redo.setText(f"&Redo {h.redo_label()}" if h.can_redo() else "&Redo")
        for a in (self.act_save, self.act_save_as, self.act_export, self.act_export_obj, self.act_export_json,
                  self.act_reset, self.act_save_preset, self.act_load_preset):
            a.setEnabled(has)
        self.act_choose_face.setEnabled(len(self.doc.faces) > 1)
        name = self.doc.photo_path.name if self.doc.photo_path else ""
        self.setWindowTitle(f"{name}{' •' if self.doc.dirty else ''} — FaceEditor" if name else "FaceEditor")
        self._sync_renderer_combo()

    def _sync_renderer_combo(self) -> None:
        i = self.renderer_combo.findData(self.doc.edit.params.renderer)
        if i >= 0:
            self.renderer_combo.setCurrentIndex(i)

    def _on_renderer_chosen(self, i: int) -> None:
        rid = self.renderer_combo.itemData(i)
        if rid and self.doc.has_face:
            self.doc.set_renderer(rid)

    # ----------------------------------------------------------------- rendering
    def preview_scale(self) -> float:
        if self.doc.photo is None:
            return 1.0
        return min(1.0, PREVIEW_MAX_SIDE / max(self.doc.photo.shape[:2]))

    def _schedule_render(self) -> None:
        if not self.doc.has_face:
            return
        scale = self.preview_scale()
        self.worker.request(self.doc.version, self.doc.resolved_edit(), scale)
        if scale < 1.0:
            self._full_timer.start()

    def _request_full(self) -> None:
        if self.doc.has_face:
            self.worker.request(self.doc.version, self.doc.resolved_edit(), 1.0, mesh=False)

    def _on_rendered(self, res) -> None:
        if res.target != self._target_id:
            return
        if self.canvas.set_result(res.image, res.stamp, res.scale):
            self.last_latency_ms.append((time.perf_counter() - res.t_request) * 1e3)
            del self.last_latency_ms[:-200]
            if res.render_ms > 0:
                self.timings["render_ms"] = res.render_ms
                kind = "full" if res.scale >= 1.0 else f"preview {res.image.shape[1]}×{res.image.shape[0]}"
                self.lbl_render.setText(f"render {res.render_ms:.0f} ms ({kind})")

    def _on_mesh(self, res) -> None:
        if res.target != self._target_id:
            return
        self.viewport.set_mesh(res.mesh, res.stamp)
        if self.light_panel.table.isVisible() or res.stamp == self.doc.version:
            self.light_panel.show_sh(res.mesh.sh)
        if self.t_open is not None and self.t_first_fit_ms is None:
            self.t_first_fit_ms = (time.perf_counter() - self.t_open) * 1e3

    def _on_render_failed(self, stamp: int, message: str) -> None:
        if stamp == self.doc.version:
            self.show_error(f"Rendering failed: {message}")

    def _update_fps(self) -> None:
        fps = self.viewport.fps
        recent = self.viewport.frame_times and time.perf_counter() - self.viewport.frame_times[-1] < 1.5
        self.lbl_fps.setText(f"view {fps:.0f} fps" if recent and fps > 0 else "view idle")

    def _update_zoom_label(self) -> None:
        self.lbl_zoom.setText(f"{self.canvas.zoom * 100:.0f}%")

    # ----------------------------------------------------------------- opening and fitting
    def open_path(self, path: str | Path) -> None:
        path = Path(path)
        if path.suffix.lower() == ".fesession":
            self.files.open_session(path)
            return
        self.banner.hide()
        self.t_open, self.t_first_fit_ms = time.perf_counter(), None
        self._start_job(path=path)
        self.progress.start(f"Opening {path.name}")
        self.statusBar().showMessage(f"Opening {path}…")

    def _start_job(self, **kw) -> None:
        self.cancel_fit(quiet=True)
        self._job_ids += 1
        job = FitJob(self.engine, self._job_ids, **kw)
        job.loaded.connect(self._on_loaded)
        job.faces_found.connect(self._on_faces)
        job.choose_face.connect(self._on_choose_face)
        job.progress.connect(self._on_progress)
        job.fitted.connect(self._on_fitted)
        job.failed.connect(self._on_fit_failed)
        job.cancelled.connect(self._on_fit_cancelled)
        job.finished.connect(lambda j=job: self._jobs.remove(j) if j in self._jobs else None)
        self._job = job
        self._jobs.append(job)
        job.start()

    def _current(self, job_id: int) -> bool:
        return self._job is not None and job_id == self._job.job_id

    def _on_loaded(self, job_id: int, path, loaded) -> None:
        if self._current(job_id):
            self.doc.set_photo(Path(path), loaded.pixels, loaded)
            self.files.add_recent(path)

    def _on_faces(self, job_id: int, faces) -> None:
        if self._current(job_id):
            self.doc.set_faces(faces)

    def _on_choose_face(self, job_id: int, faces) -> None:
        if not self._current(job_id):
            return
        self.progress.finish()
        self.canvas.set_faces([f.box for f in faces], pick=True)
        self.statusBar().showMessage(f"{len(faces)} faces found: click the one to edit")

    def choose_face(self) -> None:
        if len(self.doc.faces) > 1:
            self.canvas.set_faces([f.box for f in self.doc.faces], pick=True)

    def _on_face_clicked(self, index: int) -> None:
        self.canvas.set_faces([f.box for f in self.doc.faces], pick=False)
        self.t_open, self.t_first_fit_ms = time.perf_counter(), None
        self._start_job(rgb=self.doc.photo, face_index=index, faces=self.doc.faces)
        self.progress.start(f"Fitting face {index + 1}")

    def _on_worker_status(self, text: str) -> None:
        if text:
            self.statusBar().showMessage(text)
        else:
            self.statusBar().showMessage("Neural renderer ready", 3000)

    def _on_progress(self, job_id: int, stage: str, fraction: float, losses) -> None:
        if self._current(job_id):
            self.progress.update_progress(stage, fraction, losses)

    def _on_fitted(self, job_id: int, state, index: int, light, final: bool, ms: float, texture=None) -> None:
        if not self._current(job_id):
            return
        keep = self.doc.state is not None and self.doc.face_index == index
        self.doc.set_state(state, index, light, keep_edits=keep)
        self.viewport.set_texture(texture)
        self.timings["fit_ms"] = (self.timings["fit_ms"] or 0.0) + ms if keep else ms
        self.lbl_fit.setText(f"fit {self.timings['fit_ms']:.0f} ms" + ("" if final else " …"))
        if final:
            self.progress.finish()
            self.statusBar().showMessage("Face fitted: move the sliders to edit", 5000)
        else:
            self.progress.title.setText("Refining: texture and lighting")

    def _on_fit_failed(self, job_id: int, message: str) -> None:
        if not self._current(job_id):
            return
        self.progress.finish()
        self.show_error(message)
        if self.doc.photo is None:
            self.stack.setCurrentWidget(self.welcome)

    def _on_fit_cancelled(self, job_id: int) -> None:
        if self._current(job_id):
            self.progress.finish()
            self.statusBar().showMessage("Cancelled", 4000)

    def cancel_fit(self, quiet: bool = False) -> None:
        if self._job is not None and self._job.isRunning():
            self._job.cancel()
            if not quiet:
                self.progress.cancel.setEnabled(False)
                self.progress.stage.setText("Cancelling…")

    def is_fitting(self) -> bool:
        return any(j.isRunning() for j in self._jobs)

    # ----------------------------------------------------------------- edit actions
    def undo(self) -> None:
        self.doc.undo()

    def redo(self) -> None:
        self.doc.redo()

    def toggle_before(self, on: bool) -> None:
        self.act_split.setChecked(False)
        self.canvas.set_mode("before" if on else "after")

    def toggle_split(self, on: bool) -> None:
        self.act_before.setChecked(False)
        self.canvas.set_mode("split" if on else "after")

    def _toggle_gizmo(self, on: bool) -> None:
        self.viewport.show_gizmo = on
        self.viewport.update()

    def show_error(self, message: str) -> None:
        self.banner.show_message(message, "error")
        self.statusBar().showMessage(message.splitlines()[0], 8000)

    # ----------------------------------------------------------------- drag and drop
    def dragEnterEvent(self, ev) -> None:
        path = self.files.dropped_path(ev.mimeData())
        if path is not None:
            ev.acceptProposedAction()
            self.canvas.set_overlay_text(f"Drop to open {path.name}")
            self.statusBar().showMessage(f"Drop to open {path}")

    def dragLeaveEvent(self, ev) -> None:
        self.canvas.set_overlay_text("")
        self.statusBar().clearMessage()

    def dropEvent(self, ev) -> None:
        self.canvas.set_overlay_text("")
        path = self.files.dropped_path(ev.mimeData())
        if path is not None:
            ev.acceptProposedAction()
            self.open_path(path)

    # ----------------------------------------------------------------- shutdown
    def closeEvent(self, ev) -> None:
        if self.ask_on_close and not self.files.confirm_discard():
            ev.ignore()
            return
        self.shutdown()
        super().closeEvent(ev)

    def _layout_file(self):
        from faceeditor.paths import user_dir

        return user_dir() / "window.json"

    def _restore_layout(self) -> None:
        import json

        from PySide6.QtCore import QByteArray

        try:
            d = json.loads(self._layout_file().read_text())
            self.restoreGeometry(QByteArray.fromBase64(d["geometry"].encode()))
            self.restoreState(QByteArray.fromBase64(d["state"].encode()))
        except (OSError, ValueError, KeyError, TypeError):
            pass

    def _save_layout(self) -> None:
        import json

        try:
            self._layout_file().write_text(json.dumps({
                "geometry": bytes(self.saveGeometry().toBase64()).decode(),
                "state": bytes(self.saveState().toBase64()).decode()}))
        except OSError:
            pass

    def shutdown(self) -> None:
        if self.isVisible():
            self._save_layout()
        for j in list(self._jobs):
            j.cancel()
        for j in list(self._jobs):
            j.wait(10000)
        self.worker.stop()
        self.files.shutdown()
