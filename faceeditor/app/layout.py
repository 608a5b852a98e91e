"""The main window's widgets and where they sit: the photo area (message bar, welcome page /
canvas, progress panel), the docked 3D viewport over the slider tabs, the status bar; and the
window geometry and dock layout kept between runs (``window.json`` in the user folder).

Each ``build_*`` function creates widgets as attributes of the window (``win.canvas``,
``win.lbl_fit``, ...); the window connects their signals to its controllers.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, Qt
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
from faceeditor.app.widgets import MessageBar, ProgressPanel, Welcome
from faceeditor.core.atomic import atomic_write_text
from faceeditor.core.paths import user_dir


class PhotoArea(QWidget):
    """The welcome page / canvas stack, with the progress panel floating over its bottom edge: the
    panel coming and going never resizes the canvas (the photo's zoom stays where it is)."""

    MARGIN = 12

    def __init__(self, stack: QStackedWidget, panel: ProgressPanel, parent=None) -> None:
        super().__init__(parent)
        self.stack, self.panel = stack, panel
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(stack)
        panel.setParent(self)
        panel.installEventFilter(self)

    def place_panel(self) -> None:
        m = self.MARGIN
        h = self.panel.sizeHint().height()
        self.panel.setGeometry(m, max(0, self.height() - h - m), max(0, self.width() - 2 * m), h)
        self.panel.raise_()

    def eventFilter(self, obj, ev) -> bool:
        if obj is self.panel and ev.type() in (QEvent.Show, QEvent.LayoutRequest):
            self.place_panel()
        return False

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        self.place_panel()


def build_central(win: QMainWindow) -> None:
    """Message bar, the welcome page / photo canvas stack and the progress panel over it."""
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
    win.progress = ProgressPanel()
    win.photo_area = PhotoArea(win.stack, win.progress)
    lay.addWidget(win.photo_area, 1)
    win.setCentralWidget(central)


def build_dock(win: QMainWindow) -> None:
    """The dock on the right, empty until :func:`build_docks` fills it (it holds its place while the
    editor loads, so the photo area keeps its size)."""
    dock = QDockWidget("Head and controls")
    dock.setObjectName("controls")
    dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
    dock.setMinimumWidth(400)
    placeholder = QLabel("Loading the 3D head and the controls…")
    placeholder.setAlignment(Qt.AlignCenter)
    placeholder.setObjectName("hint")
    dock.setWidget(placeholder)
    win.addDockWidget(Qt.RightDockWidgetArea, dock)
    win.resizeDocks([dock], [440], Qt.Horizontal)
    win.controls_dock = dock


def build_docks(win: QMainWindow) -> None:
    """The dock's content: the 3D viewport above the Pose / Expression / Lighting / History tabs
    (these modules need torch: imported here, after the window has shown)."""
    from faceeditor.app.panels import ExpressionPanel, HistoryPanel, LightPanel, PosePanel
    from faceeditor.app.viewport import make_viewport

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
    if getattr(win, "controls_dock", None) is None:
        build_dock(win)
    old = win.controls_dock.widget()
    win.controls_dock.setWidget(side)
    if old is not None:
        old.deleteLater()


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


def restore_layout(win: QMainWindow, geometry: bool = True) -> None:
    """Geometry (``geometry``) and dock layout of the last run (nothing when there is none or it is
    unreadable)."""
    try:
        d = json.loads(layout_file().read_text())
        if geometry:
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
