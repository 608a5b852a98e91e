"""Toolbar and menu icons, drawn with QPainter on a 24-unit grid (crisp at any scale, no files)."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

from faceeditor.app import theme

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"  # faceeditor/assets


def _arrow_arc(p: QPainter, cx: float, cy: float, r: float, a0: float, span: float, head: bool = True) -> None:
    path = QPainterPath()
    rect = QRectF(cx - r, cy - r, 2 * r, 2 * r)
    path.arcMoveTo(rect, a0)
    path.arcTo(rect, a0, span)
    p.drawPath(path)
    if head:
        end = math.radians(a0 + span)
        ex, ey = cx + r * math.cos(end), cy - r * math.sin(end)
        tang = end + (math.pi / 2 if span > 0 else -math.pi / 2)
        tx, ty = math.cos(tang), -math.sin(tang)
        for s in (0.6, -0.6):
            ang = math.atan2(ty, tx) + math.pi + s
            p.drawLine(QPointF(ex, ey), QPointF(ex + 4 * math.cos(ang), ey + 4 * math.sin(ang)))


def _draw(name: str, p: QPainter) -> None:  # noqa: C901 - a table of drawings
    L = p.drawLine
    P = QPointF
    if name == "open":
        path = QPainterPath(P(3, 7))
        for x, y in ((3, 19), (19, 19), (21, 10), (8, 10), (6, 19)):
            path.lineTo(x, y)
        p.drawPath(path)
        path = QPainterPath(P(3, 7))
        for x, y in ((3, 5), (9, 5), (11, 7), (18, 7), (18, 10)):
            path.lineTo(x, y)
        p.drawPath(path)
    elif name == "save":
        p.drawRoundedRect(QRectF(4, 4, 16, 16), 2, 2)
        p.drawRect(QRectF(8, 4, 8, 5))
        p.drawRect(QRectF(7, 13, 10, 7))
    elif name == "export":
        p.drawPolyline([P(8, 9), P(4, 9), P(4, 20), P(20, 20), P(20, 9), P(16, 9)])
        L(P(12, 15), P(12, 3))
        p.drawPolyline([P(8, 7), P(12, 3), P(16, 7)])
    elif name == "undo":
        _arrow_arc(p, 12, 13, 7, 0, 180)
    elif name == "redo":
        _arrow_arc(p, 12, 13, 7, 180, -180)
    elif name == "compare":
        p.drawEllipse(QRectF(4, 4, 16, 16))
        path = QPainterPath(P(12, 4))
        path.arcTo(QRectF(4, 4, 16, 16), 90, 180)
        path.closeSubpath()
        p.fillPath(path, p.pen().color())
    elif name == "split":
        p.drawRoundedRect(QRectF(3, 5, 18, 14), 2, 2)
        L(P(12, 2), P(12, 22))
        p.drawPolyline([P(7, 10), P(5, 12), P(7, 14)])
        p.drawPolyline([P(17, 10), P(19, 12), P(17, 14)])
    elif name == "zoom_fit":
        for (x, y), (dx, dy) in (((4, 4), (1, 1)), ((20, 4), (-1, 1)), ((4, 20), (1, -1)), ((20, 20), (-1, -1))):
            p.drawPolyline([P(x, y + 5 * dy), P(x, y), P(x + 5 * dx, y)])
        p.drawRect(QRectF(8.5, 8.5, 7, 7))
    elif name == "zoom_100":
        p.drawEllipse(QRectF(3, 3, 13, 13))
        L(P(14.5, 14.5), P(21, 21))
        L(P(7, 9.5), P(12, 9.5))
        L(P(9.5, 7), P(9.5, 12))
    elif name == "wireframe":
        pts = [P(12, 3), P(20, 8), P(20, 16), P(12, 21), P(4, 16), P(4, 8)]
        p.drawPolygon(pts)
        for a, b in ((0, 3), (1, 4), (5, 2)):
            L(pts[a], pts[b])
    elif name == "reset":
        _arrow_arc(p, 12, 12, 7, 90, 280)
    elif name == "cancel":
        L(P(6, 6), P(18, 18))
        L(P(18, 6), P(6, 18))
    elif name == "face":
        p.drawEllipse(QRectF(5, 3, 14, 18))
        p.drawPoint(P(9.5, 10))
        p.drawPoint(P(14.5, 10))
        path = QPainterPath(P(9, 15))
        path.quadTo(12, 18, 15, 15)
        p.drawPath(path)
    elif name == "light":
        p.drawEllipse(QRectF(8, 8, 8, 8))
        for k in range(8):
            a = k * math.pi / 4
            L(P(12 + 6 * math.cos(a), 12 + 6 * math.sin(a)), P(12 + 9 * math.cos(a), 12 + 9 * math.sin(a)))
    elif name == "head3d":
        p.drawEllipse(QRectF(5, 3, 14, 18))
        p.drawEllipse(QRectF(9, 3, 6, 18))
        L(P(5, 12), P(19, 12))
    elif name == "preset":
        for y in (7, 12, 17):
            L(P(4, y), P(20, y))
        for x, y in ((9, 7), (15, 12), (7, 17)):
            p.drawEllipse(QRectF(x - 2, y - 2, 4, 4))
    elif name == "session":
        p.drawRoundedRect(QRectF(5, 3, 14, 18), 2, 2)
        for y in (8, 12, 16):
            L(P(8, y), P(16, y))


@lru_cache(maxsize=None)
def icon(name: str, colour: str = theme.TEXT) -> QIcon:
    """The line icon ``name`` drawn in ``colour`` at 16-48 px. A Qt resource cache: each (name,
    colour) is painted once per process (after the QApplication exists) and the QIcon shared by
    every action, tab and button that shows it, as Qt's own icon themes are; nothing computed
    from data lives in it (a few dozen names)."""
    ic = QIcon()
    for size in (16, 24, 32, 48):
        pm = QPixmap(size, size)
        pm.fill(Qt.transparent)
        p = QPainter(pm)
        p.setRenderHint(QPainter.Antialiasing)
        p.scale(size / 24.0, size / 24.0)
        pen = QPen(QColor(colour), 1.7 if size >= 24 else 2.0)
        pen.setCapStyle(Qt.RoundCap)
        pen.setJoinStyle(Qt.RoundJoin)
        p.setPen(pen)
        _draw(name, p)
        p.end()
        ic.addPixmap(pm)
    return ic


def app_icon() -> QIcon:
    """The application icon from ``faceeditor/assets`` (SVG, with the PNG as fallback)."""
    ic = QIcon()
    for name in ("faceeditor.svg", "faceeditor.png"):
        path = ASSETS_DIR / name
        if path.is_file():
            ic.addFile(str(path))
    return ic
