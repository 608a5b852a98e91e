"""Menus, toolbar and keyboard shortcuts of the main window (every command is a QAction with an
icon, a tooltip naming its shortcut and a status tip)."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QSizePolicy, QWidget

from faceeditor.app.icons import icon
from faceeditor.app.preferences import edit_preferences


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


def build_actions(win) -> None:
    """Create the window's actions (``win.act_*``), menus, toolbar and renderer chooser."""
    _file_actions(win)
    _edit_actions(win)
    _view_actions(win)
    win.addActions([win.act_cancel])
    _build_menus(win)
    _build_toolbar(win)
    win.welcome.open_clicked.connect(win.files.open_dialog)
    win.welcome.sample_clicked.connect(win.files.open_sample)
    win.welcome.recent_clicked.connect(win.open_path)
    win.files.refresh_recent()


def _file_actions(win) -> None:
    f = win.files
    win.act_open = make_action(win, "&Open photo…", f.open_dialog, QKeySequence.Open, "open", "Open a photo or session")
    win.act_sample = make_action(win, "Open the &sample portrait", f.open_sample, None, "face")
    win.act_open_session = make_action(win, "Open &session…", f.open_session_dialog, "Ctrl+Shift+O", "session")
    win.act_save = make_action(win, "&Save session", f.save_session, QKeySequence.Save, "save",
                               "Save photo, fit and edits")
    win.act_save_as = make_action(win, "Save session &as…", f.save_session_as, "Ctrl+Shift+S")
    win.act_export = make_action(win, "&Export image…", f.export_image_dialog, "Ctrl+E", "export",
                                 "Export the edited photo at full resolution")
    win.act_export_obj = make_action(win, "Export textured &mesh (OBJ)…", f.export_mesh_dialog, "Ctrl+Shift+E")
    win.act_export_json = make_action(win, "Export &parameters (JSON)…", f.export_params_dialog, "Ctrl+Alt+E")
    win.act_quit = make_action(win, "&Quit", win.close, QKeySequence.Quit)


def _edit_actions(win) -> None:
    f = win.files
    win.act_undo = make_action(win, "&Undo", win.undo, QKeySequence.Undo, "undo")
    win.act_redo = make_action(win, "&Redo", win.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "redo")
    win.act_reset = make_action(win, "Reset &all edits", lambda: win.doc.reset("all"), "Ctrl+R", "reset",
                                "Back to the photo as it was")
    win.act_save_preset = make_action(win, "Save &preset…", f.save_preset_dialog, None, "preset",
                                      "Save pose, expression and light as a JSON preset")
    win.act_load_preset = make_action(win, "&Load preset…", f.load_preset_dialog, None, "preset")
    win.act_choose_face = make_action(win, "Choose another &face…", win.choose_face, "F", "face")
    win.act_prefs = make_action(win, "&Preferences…", lambda: edit_preferences(win), "Ctrl+,", None,
                                "CPU threads for fitting and rendering")
    win.act_cancel = make_action(win, "&Cancel", win.cancel_task, "Esc", "cancel")


def _view_actions(win) -> None:
    canvas, vp = win.canvas, win.viewport
    win.act_before = make_action(win, "&Before / after", win.toggle_before, "B", "compare",
                                 "Show the original photo (B)", checkable=True)
    win.act_split = make_action(win, "&Split view", win.toggle_split, "S", "split",
                                "Before on the left, after on the right", checkable=True)
    win.act_fit = make_action(win, "&Fit to window", canvas.fit_view, "Ctrl+0", "zoom_fit")
    win.act_100 = make_action(win, "&Actual pixels", lambda: canvas.set_zoom(1.0), "Ctrl+1", "zoom_100")
    win.act_zoom_in = make_action(win, "Zoom &in", lambda: canvas.set_zoom(canvas.zoom * 1.25), QKeySequence.ZoomIn)
    win.act_zoom_out = make_action(win, "Zoom &out", lambda: canvas.set_zoom(canvas.zoom / 1.25), QKeySequence.ZoomOut)
    win.act_wire = make_action(win, "&Wireframe", vp.set_wireframe, "W", "wireframe", "Show the mesh edges",
                               checkable=True)
    win.act_reset_view = make_action(win, "Reset 3D &view", vp.reset_view, "Home", "head3d")
    win.act_gizmo = make_action(win, "Light &gizmo", win.toggle_gizmo, None, "light", checkable=True)
    win.act_gizmo.setChecked(True)


def _build_menus(win) -> None:
    menu = win.menus.__getitem__  # made by build_chrome
    m = menu("&File")
    m.addActions([win.act_open, win.act_sample])
    win.recent_menu = m.addMenu("Open &recent")
    m.addSeparator()
    m.addActions([win.act_open_session, win.act_save, win.act_save_as])
    m.addSeparator()
    m.addActions([win.act_export, win.act_export_obj, win.act_export_json])
    m.addSeparator()
    m.addAction(win.act_quit)
    m = menu("&Edit")
    m.addActions([win.act_undo, win.act_redo])
    m.addSeparator()
    m.addActions([win.act_reset, win.act_save_preset, win.act_load_preset])
    m.addSeparator()
    m.addAction(win.act_prefs)
    m = menu("&View")
    m.addActions([win.act_before, win.act_split])
    m.addSeparator()
    m.addActions([win.act_fit, win.act_100, win.act_zoom_in, win.act_zoom_out])
    m.addSeparator()
    m.addActions([win.act_wire, win.act_gizmo, win.act_reset_view])
    m = menu("F&ace")
    m.addActions([win.act_choose_face])


def build_chrome(win) -> None:
    """The menu bar's menus and the toolbar, still empty (the start-up window shows them at once, so
    nothing moves when the editor fills them): ``win.menus``, ``win.toolbar``, ``win.renderer_combo``."""
    mb = win.menuBar()
    win.menus = {title: mb.addMenu(title) for title in ("&File", "&Edit", "&View", "F&ace")}
    tb = win.addToolBar("Main")
    tb.setObjectName("main_toolbar")
    tb.setMovable(False)
    tb.setIconSize(QSize(20, 20))
    win.toolbar_placeholder = tb.addAction(icon("open"), "")  # holds the buttons' height until they come
    win.toolbar_placeholder.setEnabled(False)
    spacer = QWidget()
    spacer.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
    tb.addWidget(spacer)
    tb.addWidget(QLabel("Renderer "))
    win.renderer_combo = QComboBox()
    win.renderer_combo.setToolTip("What draws the edited photo")
    win.renderer_combo.setMinimumWidth(170)
    tb.addWidget(win.renderer_combo)
    win.toolbar = tb


def _build_toolbar(win) -> None:
    """The main toolbar's buttons, before the renderer chooser (``win.renderer_combo``)."""
    tb, before = win.toolbar, win.toolbar_placeholder
    groups = ([win.act_open, win.act_save, win.act_export], [win.act_undo, win.act_redo, win.act_reset],
              [win.act_before, win.act_split, win.act_fit, win.act_100], [win.act_wire, win.act_gizmo])
    for i, group in enumerate(groups):
        if i:
            tb.insertSeparator(before)
        tb.insertActions(before, group)
    tb.removeAction(before)
    win.renderer_combo.activated.connect(win._on_renderer_chosen)
