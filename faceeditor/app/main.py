"""Start the editor: the QApplication (dark theme, OpenGL format, icon) and the main window.

Nothing here imports torch: :func:`run` shows the window first and lets it load the heavy parts
behind the welcome page (:mod:`faceeditor.app.startup`). Quitting cancels the workers, writes
what must be written (session, layout, exports in progress), then ends the process at once
(``os._exit``) instead of waiting for threads still in the middle of a fit or a render.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QSurfaceFormat
from PySide6.QtWidgets import QApplication

from faceeditor.app import prefs, probe
from faceeditor.app.glformat import surface_format
from faceeditor.app.icons import app_icon
from faceeditor.app.theme import apply_theme
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
    """Open the window (on ``photo`` or ``session`` when given) and run the event loop; the process
    ends when the window closes."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    app = create_application()
    win = MainWindow(defer=True, threads=prefs.chosen_threads())
    win.ask_on_close = True
    win.quick_exit = True
    probe.install(win)
    win.show()
    if restore:
        win.startup.on_ready.append(lambda: win.files.offer_restore())
    if session is not None or photo is not None:
        win.open_path(session if session is not None else photo)
    code = app.exec()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # threads still cancelling a fit or a render are not waited for
