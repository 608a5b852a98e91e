"""Start the editor: the QApplication (dark theme, OpenGL format, icon) and the main window."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QSurfaceFormat
from PySide6.QtWidgets import QApplication

from faceeditor.app.engine import Engine
from faceeditor.app.icons import app_icon
from faceeditor.app.theme import apply_theme
from faceeditor.app.viewport import surface_format
from faceeditor.app.window import MainWindow


def create_application(argv: list[str] | None = None) -> QApplication:
    """The process's QApplication, created once with FaceEditor's settings."""
    app = QApplication.instance()
    if app is not None:
        return app
    sys.setswitchinterval(0.002)  # the UI thread gets the GIL back quickly from the workers
    QSurfaceFormat.setDefaultFormat(surface_format())
    QCoreApplication.setAttribute(Qt.AA_ShareOpenGLContexts)
    app = QApplication(list(argv if argv is not None else sys.argv[:1]))
    app.setApplicationName("FaceEditor")
    app.setOrganizationName("FaceEditor")
    app.setDesktopFileName("faceeditor")
    apply_theme(app)
    app.setWindowIcon(app_icon())
    return app


def run(photo: Path | None = None, session: Path | None = None, restore: bool = True) -> int:
    """Open the window (on ``photo`` or ``session`` when given) and run the event loop."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    app = create_application()
    win = MainWindow(Engine(threads=int(os.environ.get("FACEEDITOR_THREADS", "1"))))
    win.ask_on_close = True
    win.show()
    if restore:
        win.files.offer_restore()
    if session is not None:
        win.files.open_session(session)
    elif photo is not None:
        win.open_path(photo)
    return app.exec()
