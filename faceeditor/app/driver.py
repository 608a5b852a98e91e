"""Drive the editor window from code, as a person would: drop a photo, wait, move sliders, read
pixels. Used by the GUI tests and ``faceeditor bench gui``; every wait pumps the Qt event loop
(the UI thread is never blocked by the driver itself)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication


def qimage_to_array(img: QImage) -> np.ndarray:
    """uint8 HxWx3 copy of a QImage."""
    img = img.convertToFormat(QImage.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=h * bpl).reshape(h, bpl)
    return buf[:, : 3 * w].reshape(h, w, 3).copy()


class Driver:
    def __init__(self, window) -> None:
        self.w = window
        self.app = QApplication.instance()

    def pump(self, seconds: float, until: Callable[[], bool] | None = None, step: float = 0.002) -> bool:
        """Process events for up to ``seconds``; True as soon as ``until()`` holds."""
        end = time.perf_counter() + seconds
        while True:
            self.app.processEvents()
            if until is not None and until():
                return True
            if time.perf_counter() >= end:
                return until is None
            time.sleep(step)

    def drop(self, path: str | Path) -> float:
        """Drop a file on the window the way a file manager does; returns the drop time."""
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(Path(path).resolve()))])
        pos = QPoint(self.w.width() // 3, self.w.height() // 2)
        enter = QDragEnterEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
        self.w.dragEnterEvent(enter)
        if not enter.isAccepted():
            raise AssertionError(f"the window refused the drag of {path}")
        t = time.perf_counter()
        self.w.dropEvent(QDropEvent(QPointF(pos), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
        return t

    def fitted(self) -> bool:
        return self.w.doc.has_face and not self.w.is_fitting()

    def wait_fitted(self, timeout: float = 120.0) -> bool:
        return self.pump(timeout, self.fitted)

    def idle(self) -> bool:
        """Fitted, nothing pending, the canvas shows the current edit at full resolution."""
        c = self.w.canvas
        return self.fitted() and c.stamp >= self.w.doc.version and c.shown_scale >= 1.0

    def wait_idle(self, timeout: float = 60.0) -> bool:
        return self.pump(timeout, self.idle)

    def set_slider(self, slider, value: float) -> int:
        """Move a ValueSlider's QSlider as a mouse drag would; returns the document stamp."""
        s = slider.slider
        s.setValue(int(round((value - slider.lo) / slider.step)))
        return self.w.doc.version

    def canvas_pixels(self) -> np.ndarray:
        return qimage_to_array(self.w.canvas.grab().toImage())

    def viewport_pixels(self) -> np.ndarray:
        return qimage_to_array(self.w.viewport.grab_image())
