"""The photo canvas: the edited photo at full resolution with zoom/pan, before/after and split view.

Shows two images in photo pixel space: *before* (the photo) and *after* (the newest render,
possibly a preview at a lower scale, drawn stretched to the photo's size). Wheel zooms about
the cursor, dragging pans, double-click fits. In split mode a vertical divider (draggable)
shows before on the left and after on the right. When several faces were found their boxes
are drawn and a click picks one (:attr:`PhotoCanvas.face_clicked`).
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QWidget

from faceeditor.app import theme


def to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage that owns a copy of uint8 HxWx3 ``rgb``."""
    a = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    h, w = a.shape[:2]
    return QImage(a.data, w, h, 3 * w, QImage.Format_RGB888).copy()


def wrap_qimage(rgb: np.ndarray) -> tuple[QImage, np.ndarray]:
    """A QImage over ``rgb``'s own pixels (no copy: a 24-megapixel photo is 72 MB), and the array
    it reads, which the caller keeps (and never writes) while the image is in use."""
    a = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    h, w = a.shape[:2]
    return QImage(a.data, w, h, 3 * w, QImage.Format_RGB888), a


class PhotoCanvas(QWidget):
    face_clicked = Signal(int)
    painted = Signal(int, float)  # stamp of the shown result, time.perf_counter() of the paint
    view_changed = Signal()

    MODES = ("after", "before", "split")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setAttribute(Qt.WA_OpaquePaintEvent)
        self._before: QImage | None = None
        self._after: QImage | None = None
        self._before_px: np.ndarray | None = None  # the pixels the two images read (kept alive here)
        self._after_px: np.ndarray | None = None
        self._size: tuple[int, int] = (0, 0)  # photo (w, h)
        self.stamp = -1
        self.shown_scale = 0.0
        self.mode = "after"
        self.split = 0.5
        self._zoom = 1.0
        self._offset = QPointF(0, 0)  # widget position of photo pixel (0, 0)
        self._fit = True
        self._drag: tuple[str, QPointF, QPointF] | None = None
        self.faces: list[tuple[float, float, float, float]] = []
        self.pick_faces = False
        self._hover_face = -1
        self.chosen_face: int | None = None
        self.overlay_text = ""

    # ----------------------------------------------------------------- content
    def set_photo(self, rgb: np.ndarray | None) -> None:
        self._before, self._before_px = (None, None) if rgb is None else wrap_qimage(rgb)
        self._after, self._after_px = None, None
        self._size = (0, 0) if rgb is None else (rgb.shape[1], rgb.shape[0])
        self.stamp, self.shown_scale = -1, 0.0
        self.faces, self.pick_faces, self.chosen_face = [], False, None
        self._fit = True
        self._relayout()
        self.update()

    def has_photo(self) -> bool:
        return self._before is not None

    def set_result(self, rgb: np.ndarray, stamp: int, scale: float) -> bool:
        """Show a render; returns False (and ignores it) when it is older than what is shown."""
        if stamp < self.stamp or (stamp == self.stamp and scale < self.shown_scale):
            return False
        self._after, self._after_px = wrap_qimage(rgb)
        self.stamp, self.shown_scale = stamp, scale
        self.update()
        return True

    def reset_result(self, stamp: int) -> None:
        """Show the photo itself as the result for ``stamp`` (an unedited face)."""
        self._after, self._after_px = None, None
        self.stamp, self.shown_scale = stamp, 1.0
        self.update()

    def set_faces(self, boxes: list[tuple[float, float, float, float]], pick: bool) -> None:
        self.faces, self.pick_faces = list(boxes), pick
        self.update()

    def set_mode(self, mode: str) -> None:
        if mode not in self.MODES:
            raise ValueError(mode)
        self.mode = mode
        self.update()

    def set_overlay_text(self, text: str) -> None:
        self.overlay_text = text
        self.update()

    # ----------------------------------------------------------------- view
    @property
    def zoom(self) -> float:
        return self._zoom

    def fit_view(self) -> None:
        self._fit = True
        self._relayout()
        self.update()

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        if not self.has_photo():
            return
        zoom = float(min(32.0, max(0.02, zoom)))
        anchor = QPointF(self.width() / 2, self.height() / 2) if anchor is None else anchor
        photo_pt = (anchor - self._offset) / self._zoom
        self._zoom = zoom
        self._offset = anchor - photo_pt * zoom
        self._fit = False
        self.update()
        self.view_changed.emit()

    def _relayout(self) -> None:
        w, h = self._size
        if not w or not self._fit:
            return
        m = 12
        self._zoom = min((self.width() - 2 * m) / w, (self.height() - 2 * m) / h)
        self._zoom = max(self._zoom, 0.01)
        self._offset = QPointF((self.width() - w * self._zoom) / 2, (self.height() - h * self._zoom) / 2)
        self.view_changed.emit()

    def photo_rect(self) -> QRectF:
        w, h = self._size
        return QRectF(self._offset.x(), self._offset.y(), w * self._zoom, h * self._zoom)

    def to_photo(self, pos: QPointF) -> QPointF:
        return (pos - self._offset) / self._zoom

    def resizeEvent(self, ev) -> None:
        self._relayout()
        super().resizeEvent(ev)

    # ----------------------------------------------------------------- painting
    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(theme.BASE))
        if self._before is None:
            p.end()
            return
        p.setRenderHint(QPainter.SmoothPixmapTransform, self._zoom < 2.0)
        rect = self.photo_rect()
        after = self._after if self._after is not None else self._before
        if self.mode == "before":
            p.drawImage(rect, self._before)
        elif self.mode == "after":
            p.drawImage(rect, after)
        else:
            x = rect.left() + self.split * rect.width()
            left = QRectF(rect.left(), rect.top(), x - rect.left(), rect.height())
            p.save()
            p.setClipRect(left)
            p.drawImage(rect, self._before)
            p.restore()
            p.save()
            p.setClipRect(QRectF(x, rect.top(), rect.right() - x, rect.height()))
            p.drawImage(rect, after)
            p.restore()
            self._paint_divider(p, x, rect)
        self._paint_faces(p)
        if self.overlay_text:
            self._paint_pill(p, self.overlay_text, QPointF(self.width() / 2, 26))
        if self.mode == "before":
            self._paint_tag(p, "Before", QPointF(max(rect.left(), 0) + 12, max(rect.top(), 0) + 12))
        elif self.mode == "split":
            self._paint_tag(p, "Before", QPointF(max(rect.left(), 0) + 12, max(rect.top(), 0) + 12))
            w = p.fontMetrics().horizontalAdvance("After") + 18
            self._paint_tag(p, "After", QPointF(min(rect.right(), self.width()) - 12 - w, max(rect.top(), 0) + 12))
        p.end()
        self.painted.emit(self.stamp, time.perf_counter())

    def _paint_divider(self, p: QPainter, x: float, rect: QRectF) -> None:
        p.setPen(QPen(QColor(255, 255, 255, 220), 2))
        p.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
        c = QPointF(x, rect.center().y())
        p.setBrush(QColor(30, 32, 36, 230))
        p.drawEllipse(c, 13, 13)
        p.setPen(QPen(QColor(255, 255, 255), 2))
        for s in (-1, 1):
            p.drawLine(c + QPointF(4 * s, -5), c + QPointF(8 * s, 0))
            p.drawLine(c + QPointF(8 * s, 0), c + QPointF(4 * s, 5))

    def _paint_faces(self, p: QPainter) -> None:
        if not self.faces or not (self.pick_faces or self._hover_face >= 0):
            return
        f = QFont(self.font())
        f.setBold(True)
        p.setFont(f)
        for i, (x0, y0, x1, y1) in enumerate(self.faces):
            r = QRectF(self._offset + QPointF(x0, y0) * self._zoom, self._offset + QPointF(x1, y1) * self._zoom)
            r.adjust(-6, -6, 6, 6)
            hot = i == self._hover_face
            col = QColor(theme.ACCENT if hot else "#ffffff")
            p.setPen(QPen(col, 3 if hot else 2, Qt.SolidLine if hot else Qt.DashLine))
            p.setBrush(QColor(76, 155, 240, 40) if hot else Qt.NoBrush)
            p.drawRoundedRect(r, 6, 6)
            badge = QRectF(r.left(), r.top() - 24, 24, 22)
            p.setBrush(col)
            p.setPen(Qt.NoPen)
            p.drawRoundedRect(badge, 4, 4)
            p.setPen(QColor("#000000") if not hot else QColor("#ffffff"))
            p.drawText(badge, Qt.AlignCenter, str(i + 1))
        if self.pick_faces:
            self._paint_pill(p, f"{len(self.faces)} faces found: click the face to edit",
                             QPointF(self.width() / 2, self.height() - 30))

    def _paint_pill(self, p: QPainter, text: str, centre: QPointF) -> None:
        fm = p.fontMetrics()
        w = fm.horizontalAdvance(text) + 28
        r = QRectF(centre.x() - w / 2, centre.y() - 15, w, 30)
        p.setPen(Qt.NoPen)
        p.setBrush(QColor(20, 22, 26, 215))
        p.drawRoundedRect(r, 15, 15)
        p.setPen(QColor(theme.TEXT))
        p.drawText(r, Qt.AlignCenter, text)

    def _paint_tag(self, p: QPainter, text: str, at: QPointF) -> None:
        fm = p.fontMetrics()
        r = QRectF(at.x(), at.y(), fm.horizontalAdvance(text) + 18, 24)
        p.setPen(Qt.NoPen)
        p.setBrush(QColor(20, 22, 26, 200))
        p.drawRoundedRect(r, 5, 5)
        p.setPen(QColor(theme.TEXT))
        p.drawText(r, Qt.AlignCenter, text)

    # ----------------------------------------------------------------- mouse
    def _face_at(self, pos: QPointF) -> int:
        q = self.to_photo(pos)
        hits = [i for i, (x0, y0, x1, y1) in enumerate(self.faces) if x0 <= q.x() <= x1 and y0 <= q.y() <= y1]
        return hits[0] if hits else -1

    def _near_divider(self, pos: QPointF) -> bool:
        if self.mode != "split" or not self.has_photo():
            return False
        r = self.photo_rect()
        return abs(pos.x() - (r.left() + self.split * r.width())) < 10

    def mousePressEvent(self, ev) -> None:
        pos = ev.position()
        if ev.button() == Qt.LeftButton and self.pick_faces:
            i = self._face_at(pos)
            if i >= 0:
                self.face_clicked.emit(i)
                return
        if ev.button() in (Qt.LeftButton, Qt.MiddleButton):
            kind = "split" if self._near_divider(pos) and ev.button() == Qt.LeftButton else "pan"
            self._drag = (kind, pos, QPointF(self._offset))
            self.setCursor(Qt.SplitHCursor if kind == "split" else Qt.ClosedHandCursor)

    def mouseMoveEvent(self, ev) -> None:
        pos = ev.position()
        if self._drag is not None:
            kind, start, offset = self._drag
            if kind == "pan":
                self._offset = offset + (pos - start)
                self._fit = False
            else:
                r = self.photo_rect()
                self.split = float(min(1.0, max(0.0, (pos.x() - r.left()) / max(r.width(), 1.0))))
            self.update()
            return
        hover = self._face_at(pos) if self.pick_faces else -1
        if hover != self._hover_face:
            self._hover_face = hover
            self.update()
        if hover >= 0:
            self.setCursor(Qt.PointingHandCursor)
        elif self._near_divider(pos):
            self.setCursor(Qt.SplitHCursor)
        else:
            self.setCursor(Qt.OpenHandCursor if self.has_photo() else Qt.ArrowCursor)

    def mouseReleaseEvent(self, ev) -> None:
        self._drag = None
        self.setCursor(Qt.OpenHandCursor if self.has_photo() else Qt.ArrowCursor)

    def mouseDoubleClickEvent(self, ev) -> None:
        if self._fit:
            self.set_zoom(1.0, ev.position())
        else:
            self.fit_view()

    def wheelEvent(self, ev) -> None:
        steps = ev.angleDelta().y() / 120.0
        if steps:
            self.set_zoom(self._zoom * (1.15 ** steps), ev.position())

    def leaveEvent(self, ev) -> None:
        if self._hover_face >= 0:
            self._hover_face = -1
            self.update()
