"""Start-up: the window shows first, the heavy modules load behind it.

``MainWindow(defer=True)`` shows the photo area (welcome page with the sample button and recent
files), the status bar and the progress panel with no torch imported; :class:`EditorLoader`
imports torch, the editor and the charts on a thread (the progress panel says which) and makes
the :class:`~faceeditor.app.engine.Engine`; then the window builds the rest
(:meth:`MainWindow.build_editor`) and warms the engine up (model, detector) on its render
thread. A photo opened meanwhile (command line, the welcome page, a drop) is shown at once and
fitted when the editor is ready.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtGui import QImage, QImageReader
from PySide6.QtWidgets import QFileDialog

from faceeditor.app import prefs
from faceeditor.core.paths import sample_image_path

LOAD_STEPS = (
    ("Loading PyTorch", ("torch",)),
    (
        "Loading the editor",
        (
            "faceeditor.edit.document",
            "faceeditor.app.rendering",
            "faceeditor.app.fitting",
            "faceeditor.app.fileops",
            "faceeditor.app.panels",
            "faceeditor.app.viewport",
            "faceeditor.app.actions",
        ),
    ),
    ("Loading the charts", ("pyqtgraph",)),
    ("Starting the engine", ()),
)


class EditorLoader(QThread):
    """Imports the heavy modules and makes the engine (``threads`` CPU threads) off the UI thread."""

    step = Signal(str, float)  # what is loading, fraction of the start-up
    loaded = Signal(object)  # the Engine
    failed = Signal(str)

    def __init__(self, threads: int | None, parent=None) -> None:
        super().__init__(parent)
        self.threads = threads

    def run(self) -> None:
        try:
            for i, (text, modules) in enumerate(LOAD_STEPS):
                self.step.emit(text, i / len(LOAD_STEPS))
                for name in modules:
                    importlib.import_module(name)
            from faceeditor.app.engine import Engine

            self.loaded.emit(Engine(threads=self.threads))
        except Exception as exc:  # noqa: BLE001 - reported in the window, never raised in the thread
            traceback.print_exc()
            self.failed.emit(f"FaceEditor could not start: {type(exc).__name__}: {exc}")


def read_preview(path: Path) -> np.ndarray | None:
    """The photo as uint8 HxWx3 through Qt (EXIF orientation applied), or None when Qt cannot read it."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    img = reader.read()
    if img.isNull():
        return None
    img = img.convertToFormat(QImage.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=h * bpl).reshape(h, bpl)
    return buf[:, : 3 * w].reshape(h, w, 3).copy()


class Startup(QObject):
    """The window's first phase: welcome page and drops work, the loader runs, then the editor is built."""

    def __init__(self, window, threads: int | None) -> None:
        super().__init__(window)
        self.w = window
        self.t_start = time.perf_counter()
        self.pending: Path | None = None
        self.on_ready: list[Callable[[], None]] = []
        self.task = window.tasks.begin("Starting FaceEditor", fraction=0.0)
        welcome = window.welcome
        welcome.set_recent([p for p in prefs.recent() if Path(p).exists()])
        self._links = [
            (welcome.open_clicked, self._open_dialog),
            (welcome.sample_clicked, self._open_sample),
            (welcome.recent_clicked, self.open_when_ready),
        ]
        for signal, slot in self._links:
            signal.connect(slot)
        window.statusBar().showMessage("Loading… you can already drop a photo onto the window")
        self.loader = EditorLoader(threads)
        self.loader.step.connect(lambda text, f: window.tasks.update(self.task, text, f))
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self._on_failed)
        self.loader.start()

    # ----------------------------------------------------------------- before the editor is ready
    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.w,
            "Open a photo or session",
            str(Path.home()),
            f"{prefs.IMAGE_FILTER};;FaceEditor sessions (*{prefs.SESSION_SUFFIX})",
        )
        if path:
            self.open_when_ready(path)

    def _open_sample(self) -> None:
        try:
            self.open_when_ready(sample_image_path())
        except FileNotFoundError as exc:
            self.w.show_error(str(exc))

    def open_when_ready(self, path) -> None:
        """Open ``path`` once the editor is built; a photo is shown now."""
        path = Path(path)
        if self.w.ready:
            self.w.open_path(path)
            return
        self.pending = path
        rgb = read_preview(path) if path.suffix.lower() != prefs.SESSION_SUFFIX else None
        if rgb is not None:
            self.w.canvas.set_photo(rgb)
            self.w.stack.setCurrentWidget(self.w.canvas)
        self.w.setWindowTitle(f"{path.name} — FaceEditor")
        self.w.statusBar().showMessage(f"Opening {path} when the editor has loaded…")

    # ----------------------------------------------------------------- the editor is ready
    def _on_loaded(self, engine) -> None:
        w = self.w
        for signal, slot in self._links:
            signal.disconnect(slot)
        w.tasks.update(self.task, "Building the window", 0.95)
        w.build_editor(engine)
        w.tasks.end(self.task)
        w.statusBar().showMessage(
            f"Ready in {time.perf_counter() - self.t_start:.1f} s: drop a photo onto the window to start", 5000
        )
        for fn in self.on_ready:
            fn()
        if self.pending is not None:
            path, self.pending = self.pending, None
            w.open_path(path)

    def _on_failed(self, message: str) -> None:
        self.w.tasks.end(self.task)
        self.w.show_error(message)

    def shutdown(self, wait_ms: int = 0) -> None:
        """Closing while loading: an import cannot be interrupted; the process ends without it."""
        if self.loader.isRunning() and wait_ms > 0:
            self.loader.wait(wait_ms)
