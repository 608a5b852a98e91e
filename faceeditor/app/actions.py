"""Menus, toolbar and keyboard shortcuts of the main window (every command is a QAction with an
icon, a tooltip naming its shortcut and a status tip)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QSizePolicy, QWidget

from faceeditor.app.icons import icon


def make_action(win, text: str, slot, shortcut=None, icon_name: str | None = None, tip: str | None = None,
                checkable: bool = False) -> QAction:
    a = QAction(text, win)
    if icon_name:
        a.setIcon(icon(icon_name))
    if shortcut:
        a.setShortcuts([QKeySequence(s) for s in (shortcut if isinstance(shortcut, (list, tuple)) else [shortcut])])
    a.setCheckable(checkable)
    keys = a.shortcut().toString(QKeySequence.NativeText)
    a.setToolTip(f"{tip or text.replace('…', '').replace('&', '')}" + (f"  ({keys})" if keys else ""))
    a.setStatusTip(tip or "")
    a.triggered.connect(slot)
    return a


def build_actions(self) -> None:
    """Create the window's actions (``self.act_*``), menus, toolbar and renderer chooser."""
    f = self.files

    def A(*args, **kw) -> QAction:
        return make_action(self, *args, **kw)

    self.act_open = A("&Open photo…", f.open_dialog, QKeySequence.Open, "open", "Open a photo or session")
    self.act_sample = A("Open the &sample portrait", f.open_sample, None, "face")
    self.act_open_session = A("Open &session…", f.open_session_dialog, "Ctrl+Shift+O", "session")
    self.act_save = A("&Save session", f.save_session, QKeySequence.Save, "save", "Save photo, fit and edits")
    self.act_save_as = A("Save session &as…", f.save_session_as, "Ctrl+Shift+S")
    self.act_export = A("&Export image…", f.export_image_dialog, "Ctrl+E", "export",
                        "Export the edited photo at full resolution")
    self.act_export_obj = A("Export textured &mesh (OBJ)…", f.export_mesh_dialog, "Ctrl+Shift+E")
    self.act_export_json = A("Export &parameters (JSON)…", f.export_params_dialog, "Ctrl+Alt+E")
    self.act_quit = A("&Quit", self.close, QKeySequence.Quit)
    self.act_undo = A("&Undo", self.undo, QKeySequence.Undo, "undo")
    self.act_redo = A("&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "redo")
    self.act_reset = A("Reset &all edits", lambda: self.doc.reset("all"), "Ctrl+R", "reset",
                       "Back to the photo as it was")
    self.act_save_preset = A("Save &preset…", f.save_preset_dialog, None, "preset",
                             "Save pose, expression and light as a JSON preset")
    self.act_load_preset = A("&Load preset…", f.load_preset_dialog, None, "preset")
    self.act_before = A("&Before / after", self.toggle_before, "B", "compare",
                        "Show the original photo (B)", checkable=True)
    self.act_split = A("&Split view", self.toggle_split, "S", "split", "Before on the left, after on the right",
                       checkable=True)
    self.act_fit = A("&Fit to window", self.canvas.fit_view, "Ctrl+0", "zoom_fit")
    self.act_100 = A("&Actual pixels", lambda: self.canvas.set_zoom(1.0), "Ctrl+1", "zoom_100")
    self.act_zoom_in = A("Zoom &in", lambda: self.canvas.set_zoom(self.canvas.zoom * 1.25), QKeySequence.ZoomIn)
    self.act_zoom_out = A("Zoom &out", lambda: self.canvas.set_zoom(self.canvas.zoom / 1.25), QKeySequence.ZoomOut)
    self.act_wire = A("&Wireframe", self.viewport.set_wireframe, "W", "wireframe", "Show the mesh edges",
                      checkable=True)
    self.act_reset_view = A("Reset 3D &view", self.viewport.reset_view, "Home", "head3d")
    self.act_gizmo = A("Light &gizmo", self._toggle_gizmo, None, "light", checkable=True)
    self.act_gizmo.setChecked(True)
    self.act_choose_face = A("Choose another &face…", self.choose_face, "F", "face")
    self.act_cancel = A("&Cancel", self.cancel_fit, "Esc", "cancel")
    self.addActions([self.act_cancel])

    mb = self.menuBar()
    m = mb.addMenu("&File")
    m.addActions([self.act_open, self.act_sample])
    self.recent_menu = m.addMenu("Open &recent")
    m.addSeparator()
    m.addActions([self.act_open_session, self.act_save, self.act_save_as])
    m.addSeparator()
    m.addActions([self.act_export, self.act_export_obj, self.act_export_json])
    m.addSeparator()
    m.addAction(self.act_quit)
    m = mb.addMenu("&Edit")
    m.addActions([self.act_undo, self.act_redo])
    m.addSeparator()
    m.addActions([self.act_reset, self.act_save_preset, self.act_load_preset])
    m = mb.addMenu("&View")
    m.addActions([self.act_before, self.act_split])
    m.addSeparator()
    m.addActions([self.act_fit, self.act_100, self.act_zoom_in, self.act_zoom_out])
    m.addSeparator()
    m.addActions([self.act_wire, self.act_gizmo, self.act_reset_view])
    m = mb.addMenu("F&ace")
    m.addActions([self.act_choose_face])

    tb = self.addToolBar("Main")
    tb.setObjectName("main_toolbar")
    tb.setMovable(False)
    tb.setIconSize(QSize(20, 20))
    tb.addActions([self.act_open, self.act_save, self.act_export])
    tb.addSeparator()
    tb.addActions([self.act_undo, self.act_redo, self.act_reset])
    tb.addSeparator()
    tb.addActions([self.act_before, self.act_split, self.act_fit, self.act_100])
    tb.addSeparator()
    tb.addActions([self.act_wire, self.act_gizmo])
    spacer = QWidget()
    spacer.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
    tb.addWidget(spacer)
    tb.addWidget(QLabel("Renderer "))
    self.renderer_combo = QComboBox()
    self.renderer_combo.setToolTip("What draws the edited photo")
    self.renderer_combo.setMinimumWidth(170)
    self.renderer_combo.activated.connect(self._on_renderer_chosen)
    tb.addWidget(self.renderer_combo)
    self.welcome.open_clicked.connect(f.open_dialog)
    self.welcome.sample_clicked.connect(f.open_sample)
    self.welcome.recent_clicked.connect(self.open_path)
    f.refresh_recent()
