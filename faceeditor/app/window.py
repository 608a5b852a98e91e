"""The FaceEditor main window: canvas, 3D viewport, slider panels, progress, menus, status bar.

Data flow (DESIGN.md): widgets set arguments on the :class:`~faceeditor.edit.document.Document`;
every change bumps ``Document.version``, and the window sends ``(version, resolved edit)`` to
the one :class:`~faceeditor.app.workers.RenderWorker`. The window wires the parts together and
keeps the menus in step with the document; each job has its own module:

* :mod:`faceeditor.app.layout`: the widgets and where they sit, the saved window layout;
* :mod:`faceeditor.app.actions`: menus, toolbar, shortcuts;
* :mod:`faceeditor.app.rendering`: render requests (preview while dragging, full resolution on
  release) and their results, other work on the render thread;
* :mod:`faceeditor.app.fitting`: opening a photo and fitting a face in
  :class:`~faceeditor.app.fitjob.FitJob` threads;
* :mod:`faceeditor.app.fileops`: file actions, exports and the autosave;
* :mod:`faceeditor.app.tasks`: the progress panel (bar, Cancel) of every long task;
* :mod:`faceeditor.app.startup`: the editor built behind a window already shown (``defer=True``).

This module imports no torch: the window can show before the heavy modules load. What needs
them (document, engine, workers, panels) is imported in :meth:`MainWindow.build_editor`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMainWindow

from faceeditor.app import layout, prefs
from faceeditor.app.actions import build_chrome
from faceeditor.app.icons import app_icon
from faceeditor.app.tasks import TaskProgress

DRAG_REFRESH_MS = 80  # while a slider is dragged, the panels and menus are refreshed this often
QUIT_WAIT_MS = 150  # quitting: how long fits and renders get to notice their cancellation


class MainWindow(QMainWindow):
    """The editor. ``MainWindow(engine)`` is complete when constructed; ``defer=True`` shows the
    photo area, status bar and progress at once and builds the rest when the heavy modules have
    loaded in the background (:class:`~faceeditor.app.startup.Startup`, ``on_ready`` callbacks)."""

    def __init__(self, engine=None, parent=None, *, defer: bool = False, threads: int | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.ready = False  # the editor is built (document, workers, panels, menus)
        self.quick_exit = False  # closing cancels the workers without waiting for them (the app's run())
        self.ask_on_close = False
        self.startup = None
        self.setWindowTitle("FaceEditor")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1480, 920)
        self.setDockOptions(QMainWindow.AnimatedDocks | QMainWindow.AllowTabbedDocks)
        layout.build_central(self)
        self.tasks = TaskProgress(self, self.progress)
        layout.build_dock(self)
        build_chrome(self)
        layout.build_status(self)
        if defer:
            from faceeditor.app.startup import Startup

            layout.restore_layout(self)
            self.startup = Startup(self, threads)
        else:
            if engine is None:
                from faceeditor.app.engine import Engine

                engine = Engine(threads)
            self.build_editor(engine)

    def build_editor(self, engine) -> None:
        """Everything that needs torch: document, workers, panels, menus; then the engine's warm-up."""
        from faceeditor.app.actions import build_actions
        from faceeditor.app.fileops import FileOps
        from faceeditor.app.fitting import FitControl
        from faceeditor.app.rendering import RenderControl, Timings
        from faceeditor.app.workers import RenderWorker
        from faceeditor.edit.document import Document

        self.engine = engine
        self.doc = Document()
        self.timings = Timings()
        self.worker = RenderWorker(self.engine)
        self.renders = RenderControl(self, self.worker)
        self.worker.start()
        self.fits = FitControl(self)
        self.canvas.face_clicked.connect(self._on_face_clicked)
        self.canvas.view_changed.connect(self._update_zoom_label)
        layout.build_docks(self)
        self._connect_drags()
        self.files = FileOps(self)
        build_actions(self)
        self.doc.subscribe(self._on_doc)
        self.ready = True
        self.refresh_all()
        layout.restore_layout(self, geometry=self.startup is None)  # deferred: the toolbar's place now
        self._warm_up()

    # ----------------------------------------------------------------- the render thread
    def submit(self, fn: Callable[[], Any], callback: Callable[[Any], None] | None = None,
               on_fail: Callable[[], None] | None = None) -> int:
        """Run ``fn()`` on the render thread, then ``callback(result)`` here (:meth:`RenderControl.submit`)."""
        return self.renders.submit(fn, callback, on_fail)

    def preview_scale(self) -> float:
        return self.renders.preview_scale()

    def _warm_up(self) -> None:
        """The engine's warm-up (model, detector, renderers), one step at a time on the render
        thread, under the progress panel."""
        steps = self.engine.warm_up_steps()
        if "pyqtgraph" not in sys.modules:  # the loss chart's library: ~0.7 s to import, not on the UI thread
            steps.insert(0, ("Loading the charts", lambda: importlib.import_module("pyqtgraph")))
        task = self.tasks.begin("Loading the face models", fraction=0.0)
        results: list[Any] = []

        def run(i: int) -> None:
            if i == len(steps):
                self.tasks.end(task)
                self._on_warm((self.engine.device_text(), results[-1]))
                return
            text, step = steps[i]
            self.tasks.update(task, text, i / len(steps))
            self.submit(step, lambda r: (results.append(r), run(i + 1)), lambda: self.tasks.end(task))

        run(0)

    def _on_warm(self, result) -> None:
        QTimer.singleShot(0, self.progress.prepare_chart)
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

    def _connect_drags(self) -> None:
        """Sliders, the light pad and the gizmo tell the renderer when a drag starts and ends."""
        self._refresh_timer = QTimer(self, singleShot=True, interval=DRAG_REFRESH_MS)
        self._refresh_timer.timeout.connect(self.refresh_all)
        for panel in (self.pose_panel, self.expr_panel, self.light_panel):
            for s in panel.all_sliders():
                s.pressed.connect(self.renders.begin_drag)
                s.released.connect(self._end_drag)
        self.light_panel.pad.pressed.connect(self.renders.begin_drag)
        self.light_panel.pad.released.connect(self._end_drag)
        self.viewport.light_drag_started.connect(self.renders.begin_drag)
        self.viewport.light_drag_finished.connect(self._end_drag)

    def _end_drag(self) -> None:
        self.renders.end_drag()
        if self._refresh_timer.isActive():
            self._refresh_timer.stop()
            self.refresh_all()

    # ----------------------------------------------------------------- document events
    def _on_doc(self, event: str) -> None:
        if event == "photo":
            self.lbl_fit.setText("fit –")
            self.lbl_render.setText("render –")
            self.canvas.set_photo(self.doc.photo)
            self.stack.setCurrentWidget(self.canvas)
            self.viewport.clear()
            self.renders.new_photo()
        elif event == "faces":
            self.canvas.set_faces([f.box for f in self.doc.faces], pick=False)
        elif event == "state":
            self.renders.new_face(final=not self.fits.refining)
        if event == "edit":
            self.renders.schedule()
            if self.renders.dragging:  # the panels follow a few times a second, the render at once
                if not self._refresh_timer.isActive():
                    self._refresh_timer.start()
                return
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
        first (Open, drop and Open recent all come here). While the editor loads, the photo is
        shown and opened when it is ready."""
        path = Path(path)
        if not self.ready:
            self.startup.open_when_ready(path)
            return
        if self.ask_on_close and not self.files.confirm_discard(f"Save the session before opening {path.name}?"):
            return
        if path.suffix.lower() == ".fesession":
            self.files.open_session(path)
            return
        self.banner.hide()
        self.fits.open_photo(path)
        self.statusBar().showMessage(f"Opening {path}…")

    def choose_face(self) -> None:
        if len(self.doc.faces) > 1:
            self.canvas.set_faces([f.box for f in self.doc.faces], pick=True)

    def _on_face_clicked(self, index: int) -> None:
        self.canvas.set_faces([f.box for f in self.doc.faces], pick=False)
        self.fits.fit_face(index)

    def cancel_fit(self, quiet: bool = False) -> None:
        self.fits.cancel(quiet)

    def cancel_task(self) -> None:
        """Esc: cancel what the progress panel shows (a fit, an export, the neural renderer's set-up)."""
        if not self.tasks.cancel_shown():
            self.fits.cancel()

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
        path = prefs.dropped_path(ev.mimeData())
        if path is not None:
            ev.acceptProposedAction()
            self.canvas.set_overlay_text(f"Drop to open {path.name}")
            self.statusBar().showMessage(f"Drop to open {path}")
            return
        why = prefs.refusal(ev.mimeData())
        if why:  # say why instead of refusing in silence
            self.statusBar().showMessage(why, 8000)
        ev.ignore()

    def dragLeaveEvent(self, ev) -> None:
        self.canvas.set_overlay_text("")
        self.statusBar().clearMessage()

    def dropEvent(self, ev) -> None:
        self.canvas.set_overlay_text("")
        path = prefs.dropped_path(ev.mimeData())
        if path is not None:
            ev.acceptProposedAction()
            self.open_path(path)

    # ----------------------------------------------------------------- shutdown
    def closeEvent(self, ev) -> None:
        if self.ready and self.ask_on_close and not self.files.confirm_discard():
            ev.ignore()
            return
        self.shutdown(wait=not self.quick_exit)
        super().closeEvent(ev)

    def shutdown(self, wait: bool = True) -> None:
        """Save the layout, cancel fits and renders and stop the workers. ``wait=False`` (quitting the
        app, whose process ends right after) gives them a moment, not the time to finish; exports
        being written and the autosave are always waited for."""
        if self.isVisible():
            layout.save_layout(self)
        if self.startup is not None:
            self.startup.shutdown(10000 if wait else 0)
        if not self.ready:
            return
        ms = 10000 if wait else QUIT_WAIT_MS
        self.fits.shutdown(ms)
        self.renders.stop(ms)
        self.files.shutdown()
