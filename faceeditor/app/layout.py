"""The main window's widgets and where they sit: the photo area (message bar, welcome page /
canvas, progress panel), the docked 3D viewport over the slider tabs, the status bar; and the
window geometry and dock layout kept between runs (``window.json`` in the user folder).

Each ``build_*`` function creates widgets as attributes of the window (``win.canvas``,
``win.lbl_fit``, ...); the window connects their signals to its controllers.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from faceeditor.app.canvas import PhotoCanvas
from faceeditor.app.icons import icon
from faceeditor.app.panels import ExpressionPanel, HistoryPanel, LightPanel, PosePanel
from faceeditor.app.viewport import make_viewport
from faceeditor.app.widgets import MessageBar, ProgressPanel, Welcome
from faceeditor.core.atomic import atomic_write_text
from faceeditor.core.paths import user_dir


def build_central(win: QMainWindow) -> None:
    """Message bar, the welcome page / photo canvas stack and the progress panel."""
    central = QWidget()
    lay = QVBoxLayout(central)
    lay.setContentsMargins(8, 8, 8, 0)
    lay.setSpacing(6)
    win.banner = MessageBar()
    lay.addWidget(win.banner)
    win.stack = QStackedWidget()
    win.welcome = Welcome()
    win.canvas = PhotoCanvas()
    win.stack.addWidget(win.welcome)
    win.stack.addWidget(win.canvas)
    lay.addWidget(win.stack, 1)
    win.progress = ProgressPanel()
    lay.addWidget(win.progress)
    win.setCentralWidget(central)


def build_docks(win: QMainWindow) -> None:
    """The dock on the right: the 3D viewport above the Pose / Expression / Lighting / History tabs."""
    win.viewport = make_viewport()
    win.viewport.light_dragged.connect(lambda az, el: win.doc.set_light_fields(azimuth=az, elevation=el))
    win.viewport.light_drag_finished.connect(win.doc.close_gesture)
    win.pose_panel = PosePanel(win.doc)
    win.expr_panel = ExpressionPanel(win.doc)
    win.light_panel = LightPanel(win.doc)
    win.history_panel = HistoryPanel(win.doc)
    win.tabs = QTabWidget()
    win.tabs.setDocumentMode(True)
    win.tabs.addTab(win.pose_panel, icon("head3d"), "Pose")
    win.tabs.addTab(win.expr_panel, icon("face"), "Expression")
    win.tabs.addTab(win.light_panel, icon("light"), "Lighting")
    win.tabs.addTab(win.history_panel, icon("undo"), "History")
    side = QSplitter(Qt.Vertical)
    side.addWidget(win.viewport)
    side.addWidget(win.tabs)
    side.setSizes([330, 560])
    side.setChildrenCollapsible(False)
    win.side = side
    dock = QDockWidget("Head and controls")
    dock.setObjectName("controls")
    dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
    dock.setWidget(side)
    dock.setMinimumWidth(400)
    win.addDockWidget(Qt.RightDockWidgetArea, dock)
    win.resizeDocks([dock], [440], Qt.Horizontal)
    win.controls_dock = dock


def build_status(win: QMainWindow) -> None:
    """The status bar's permanent labels (``win.lbl_device``, ``lbl_fit``, ``lbl_render``, ``lbl_fps``,
    ``lbl_zoom``) and its first message."""
    sb = win.statusBar()
    win.lbl_device = QLabel("device …")
    win.lbl_fit = QLabel("fit –")
    win.lbl_render = QLabel("render –")
    win.lbl_fps = QLabel("view – fps")
    win.lbl_zoom = QLabel("")
    for w, tip in ((win.lbl_device, "Where fitting and rendering compute"), (win.lbl_fit, "Time to fit the face"),
                   (win.lbl_render, "Time of the last photo render (preview or full resolution)"),
                   (win.lbl_fps, "3D viewport frames per second"), (win.lbl_zoom, "Photo zoom")):
        w.setToolTip(tip)
        sb.addPermanentWidget(w)
    sb.showMessage("Drop a photo onto the window to start")


def layout_file() -> Path:
    return user_dir() / "window.json"


def restore_layout(win: QMainWindow) -> None:
    """Geometry and dock layout of the last run (nothing when there is none or it is unreadable)."""
    try:
        d = json.loads(layout_file().read_text())
        win.restoreGeometry(QByteArray.fromBase64(d["geometry"].encode()))
        win.restoreState(QByteArray.fromBase64(d["state"].encode()))
    except (OSError, ValueError, KeyError, TypeError):
        pass


def save_layout(win: QMainWindow) -> None:
    try:
        atomic_write_text(layout_file(), json.dumps({
            "geometry": bytes(win.saveGeometry().toBase64()).decode(),
            "state": bytes(win.saveState().toBase64()).decode()}))
    except OSError:
        pass
