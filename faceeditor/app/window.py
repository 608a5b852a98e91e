"""The FaceEditor main window: canvas, 3D viewport, slider panels, progress, menus, status bar.

Data flow (DESIGN.md): widgets set arguments on the :class:`~faceeditor.edit.document.Document`;
every change bumps ``Document.version``, and the window sends ``(version, resolved edit)`` to
the one :class:`~faceeditor.app.workers.RenderWorker`. The window wires the parts together and
keeps the menus in step with the document; each job has its own module:

* :mod:`faceeditor.app.layout`: the widgets and where they sit, the saved window layout;
* :mod:`faceeditor.app.actions`: menus, toolbar, shortcuts;
* :mod:`faceeditor.app.rendering`: render requests (preview now, full resolution after a pause)
  and their results, other work on the render thread;
* :mod:`faceeditor.app.fitting`: opening a photo and fitting a face in
  :class:`~faceeditor.app.workers.FitJob` threads;
* :mod:`faceeditor.app.fileops`: file actions, exports and the autosave.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMainWindow

from faceeditor.app import layout
from faceeditor.app.actions import build_actions
from faceeditor.app.engine import Engine
from faceeditor.app.fileops import FileOps
from faceeditor.app.fitting import FitControl
from faceeditor.app.icons import app_icon
from faceeditor.app.rendering import RenderControl, Timings
from faceeditor.app.workers import RenderWorker
from faceeditor.edit.document import Document


class MainWindow(QMainWindow):
    def __init__(self, engine: Engine | None = None, parent=None) -> None:
        super().__init__(parent)
        self.engine = engine if engine is not None else Engine()
        self.doc = Document()
        self.ask_on_close = False
        self.timings = Timings()
        self.setWindowTitle("FaceEditor")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1480, 920)
        self.setDockOptions(QMainWindow.AnimatedDocks | QMainWindow.AllowTabbedDocks)

        self.worker = RenderWorker(self.engine)
        self.renders = RenderControl(self, self.worker)
        self.worker.start()
        self.fits = FitControl(self)

        layout.build_central(self)
        self.canvas.face_clicked.connect(self._on_face_clicked)
        self.canvas.view_changed.connect(self._update_zoom_label)
        self.progress.cancel_clicked.connect(self.cancel_fit)
        layout.build_docks(self)
        self.files = FileOps(self)
        build_actions(self)
        layout.build_status(self)
        self.doc.subscribe(self._on_doc)
        self.refresh_all()
        layout.restore_layout(self)
        self.submit(self._warm_up, self._on_warm)

    # ----------------------------------------------------------------- the render thread
    def submit(self, fn: Callable[[], Any], callback: Callable[[Any], None] | None = None) -> int:
        """Run ``fn()`` on the render thread, then ``callback(result)`` here (:meth:`RenderControl.submit`)."""
        return self.renders.submit(fn, callback)

    def preview_scale(self) -> float:
        return self.renders.preview_scale()

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
            self.renders.new_photo()
        elif event == "faces":
            self.canvas.set_faces([f.box for f in self.doc.faces], pick=False)
        elif event == "state":
            self.renders.new_face()
        if event == "edit":
            self.renders.schedule()
        self.refresh_all()

    def refresh_all(self) -> None:
        """Panels, light gizmo, undo/redo texts, enabled actions and the title, from the document."""
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

    def _update_zoom_label(self) -> None:
        self.lbl_zoom.setText(f"{self.canvas.zoom * 100:.0f}%")

    # ----------------------------------------------------------------- opening and fitting
    def open_path(self, path: str | Path) -> None:
        """Open a photo (and fit its face) or a saved session; unsaved edits are offered for saving
        first (Open, drop and Open recent all come here)."""
        path = Path(path)
        if self.ask_on_close and not self.files.confirm_discard(f"Save the session before opening {path.name}?"):
            return
        if path.suffix.lower() == ".fesession":
            self.files.open_session(path)
            return
        self.banner.hide()
        self.fits.open_photo(path)
        self.progress.start(f"Opening {path.name}")
        self.statusBar().showMessage(f"Opening {path}…")

    def choose_face(self) -> None:
        if len(self.doc.faces) > 1:
            self.canvas.set_faces([f.box for f in self.doc.faces], pick=True)

    def _on_face_clicked(self, index: int) -> None:
        self.canvas.set_faces([f.box for f in self.doc.faces], pick=False)
        self.fits.fit_face(index)
        self.progress.start(f"Fitting face {index + 1}")

    def cancel_fit(self, quiet: bool = False) -> None:
        self.fits.cancel(quiet)

    def is_fitting(self) -> bool:
        return self.fits.is_running()

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

    def toggle_gizmo(self, on: bool) -> None:
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
            return
        why = self.files.refusal(ev.mimeData())
        if why:  # say why instead of refusing in silence
            self.statusBar().showMessage(why, 8000)
        ev.ignore()

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

    def shutdown(self) -> None:
        if self.isVisible():
            layout.save_layout(self)
        self.fits.shutdown()
        self.renders.stop()
        self.files.shutdown()
