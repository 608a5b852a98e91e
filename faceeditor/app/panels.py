"""Slider panels: pose, expression (53 ARKit sliders in groups + macros) and lighting.

Panels only *set arguments*: each control calls a ``Document`` method, and :meth:`refresh`
shows what the document holds (after undo, a preset, a session load).
"""

from __future__ import annotations

import math
import re

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from faceeditor.app import theme
from faceeditor.app.widgets import Section, ValueSlider
from faceeditor.edit.document import Document
from faceeditor.edit.light import temperature_rgb
from faceeditor.edit.limits import LIGHT_RANGES, POSE_LIMITS
from faceeditor.edit.presets import MACRO_LABELS


def nice_name(arkit: str, prefix: str = "") -> str:
    """``mouthSmile_L`` -> ``Smile L`` (within the Mouth group)."""
    side = ""
    if arkit.endswith(("_L", "_R")):
        arkit, side = arkit[:-2], " " + arkit[-1]
    if prefix and arkit.startswith(prefix) and len(arkit) > len(prefix):
        arkit = arkit[len(prefix):]
    words = re.sub(r"(?<!^)([A-Z])", r" \1", arkit).lower().strip()
    return words[:1].upper() + words[1:] + side


def _scroll(inner: QWidget) -> QScrollArea:
    sa = QScrollArea()
    sa.setWidgetResizable(True)
    sa.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    sa.setWidget(inner)
    return sa


class _Panel(QWidget):
    def __init__(self, doc: Document, parent=None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.sliders: dict[str, ValueSlider] = {}

    def _hook(self, s: ValueSlider) -> None:
        s.released.connect(self.doc.close_gesture)

    def all_sliders(self) -> list[ValueSlider]:
        return list(self.sliders.values()) + list(getattr(self, "macro_sliders", {}).values())


class PosePanel(_Panel):
    def __init__(self, doc: Document, parent=None) -> None:
        super().__init__(doc, parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        sec = Section("Head pose (relative to the photo)", "Reset pose")
        tips = {"yaw": "Turn the head left/right", "pitch": "Tilt the head up/down", "roll": "Lean the head sideways"}
        for k, lim in POSE_LIMITS.items():
            s = ValueSlider(k.capitalize(), -lim, lim, 0.5, 1, "°", tips[k])
            s.changed.connect(lambda v, k=k: self.doc.set_pose(**{k: v}))
            self._hook(s)
            self.sliders[k] = sec.add(s)
        sec.reset_clicked.connect(lambda: self.doc.reset("pose"))
        lay.addWidget(sec)
        lay.addStretch(1)

    def refresh(self) -> None:
        p = self.doc.edit.params
        for k, s in self.sliders.items():
            s.set_value(getattr(p, k))


class ExpressionPanel(_Panel):
    def __init__(self, doc: Document, parent=None) -> None:
        super().__init__(doc, parent)
        self.macro_sliders: dict[str, ValueSlider] = {}
        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.setSpacing(8)
        sec = Section("Expressions", "Reset the expression macros")
        for key, label in MACRO_LABELS.items():
            s = ValueSlider(label, 0.0, 1.0, 0.01, 2, "", f"{label}: several blendshapes at once, on top of "
                                                          "the sliders below")
            s.changed.connect(lambda v, k=key: self.doc.set_macro(k, v))
            self._hook(s)
            self.macro_sliders[key] = sec.add(s)
        sec.reset_clicked.connect(lambda: self.doc.reset("macros"))
        lay.addWidget(sec)
        row = QHBoxLayout()
        self.link = QCheckBox("Link left and right")
        self.link.setChecked(True)
        self.link.setToolTip("Moving a _L slider moves its _R twin too (and the other way round)")
        row.addWidget(self.link)
        row.addStretch(1)
        reset_all = QPushButton("Reset all")
        reset_all.setToolTip("Every blendshape back to the photo's own expression")
        reset_all.clicked.connect(lambda: self.doc.reset("expression"))
        row.addWidget(reset_all)
        lay.addLayout(row)
        prefixes = {"Brows": "brow", "Eyes": "eye", "Cheeks": "cheek", "Nose": "nose", "Mouth": "mouth", "Jaw": "jaw"}
        for title, names in doc.groups.items():
            sec = Section(title, f"Reset {title.lower()}")
            for n in names:
                s = ValueSlider(nice_name(n, prefixes.get(title, "")), 0.0, 1.0, 0.01, 2, "", n, label_width=112)
                s.changed.connect(lambda v, n=n: self.doc.set_expression(n, v, self.link.isChecked()))
                self._hook(s)
                self.sliders[n] = sec.add(s)
            sec.reset_clicked.connect(lambda t=title: self.doc.reset(t))
            lay.addWidget(sec)
        lay.addStretch(1)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(_scroll(inner))

    def refresh(self) -> None:
        for n, s in self.sliders.items():
            s.set_value(self.doc.expression_value(n))
        for k, s in self.macro_sliders.items():
            s.set_value(self.doc.edit.macros.get(k, 0.0))


class DirectionPad(QWidget):
    """A lit sphere: drag the highlight to set the light's azimuth/elevation (front hemisphere)."""

    moved = Signal(float, float)
    pressed = Signal()
    released = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setFixedSize(150, 150)
        self.setToolTip("Drag to move the light; the bright spot faces the light")
        self.azimuth, self.elevation = 0.0, 0.0
        self.intensity, self.ambient, self.temperature = 0.7, 0.3, 6500.0
        self._image: QImage | None = None

    def set_light(self, az: float, el: float, intensity: float, ambient: float, temperature: float) -> None:
        self.azimuth, self.elevation = az, el
        self.intensity, self.ambient, self.temperature = intensity, ambient, temperature
        self._image = None
        self.update()

    def _radius(self) -> float:
        return min(self.width(), self.height()) / 2 - 8

    def _render(self) -> QImage:
        n = int(2 * self._radius())
        y, x = np.mgrid[0:n, 0:n].astype(np.float32)
        x = (x + 0.5) / n * 2 - 1
        y = 1 - (y + 0.5) / n * 2
        r2 = x * x + y * y
        z = np.sqrt(np.clip(1 - r2, 0, 1))
        a, e = math.radians(self.azimuth), math.radians(self.elevation)
        d = np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)], np.float32)
        lam = np.clip(x * d[0] + y * d[1] + z * d[2], 0, None)
        shade = self.ambient + self.intensity * lam
        col = np.array(temperature_rgb(self.temperature), np.float32) * np.array([0.86, 0.72, 0.64], np.float32)
        rgb = np.clip(shade[..., None] * col * 255, 0, 255)
        alpha = np.clip((1 - np.sqrt(r2)) * n / 2, 0, 1)[..., None]
        bg = np.array([42, 45, 50], np.float32)
        img = np.ascontiguousarray((rgb * alpha + bg * (1 - alpha)).astype(np.uint8))
        return QImage(img.data, n, n, 3 * n, QImage.Format_RGB888).copy()

    def paintEvent(self, ev) -> None:
        if self._image is None:
            self._image = self._render()
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        c = QPointF(self.width() / 2, self.height() / 2)
        r = self._radius()
        p.drawImage(QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r), self._image)
        p.setPen(QPen(QColor("#555a62"), 1))
        p.setBrush(Qt.NoBrush)
        p.drawEllipse(c, r, r)
        a, e = math.radians(self.azimuth), math.radians(self.elevation)
        dot = c + QPointF(math.cos(e) * math.sin(a) * r, -math.sin(e) * r)
        p.setPen(QPen(QColor("#000000"), 3))
        p.drawEllipse(dot, 7, 7)
        p.setPen(QPen(QColor("#ffd050"), 2))
        p.drawEllipse(dot, 7, 7)
        p.end()

    def _set_from(self, pos: QPointF) -> None:
        r = self._radius()
        x = (pos.x() - self.width() / 2) / r
        y = -(pos.y() - self.height() / 2) / r
        m = math.hypot(x, y)
        if m > 1:
            x, y = x / m, y / m
        z = math.sqrt(max(0.0, 1 - x * x - y * y))
        self.azimuth = math.degrees(math.atan2(x, z))
        self.elevation = math.degrees(math.asin(max(-1.0, min(1.0, y))))
        self._image = None
        self.update()
        self.moved.emit(self.azimuth, self.elevation)

    def mousePressEvent(self, ev) -> None:
        self.pressed.emit()
        self._set_from(ev.position())

    def mouseMoveEvent(self, ev) -> None:
        if ev.buttons() & Qt.LeftButton:
            self._set_from(ev.position())

    def mouseReleaseEvent(self, ev) -> None:
        self.released.emit()


class LightPanel(_Panel):
    def __init__(self, doc: Document, parent=None) -> None:
        super().__init__(doc, parent)
        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.setSpacing(8)
        sec = Section("Light direction", "Lighting as in the photo")
        self.pad = DirectionPad()
        self.pad.moved.connect(lambda az, el: self.doc.set_light_fields(azimuth=az, elevation=el))
        self.pad.released.connect(self.doc.close_gesture)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.pad)
        row.addStretch(1)
        sec.body.addLayout(row)
        spec = {"azimuth": ("Azimuth", 0.5, 1, "°", "Light from the left (-) or right (+) of the image"),
                "elevation": ("Elevation", 0.5, 1, "°", "Light from below (-) or above (+)"),
                "intensity": ("Intensity", 0.01, 2, "", "Strength of the directional light"),
                "ambient": ("Ambient", 0.01, 2, "", "Light from all around (fills the shadows)"),
                "temperature": ("Colour", 50, 0, " K", "Colour temperature: warm (low) to cool (high)")}
        for k, (label, step, dec, suf, tip) in spec.items():
            lo, hi = LIGHT_RANGES[k]
            s = ValueSlider(label, lo, hi, step, dec, suf, tip)
            s.changed.connect(lambda v, k=k: self.doc.set_light_fields(**{k: v}))
            self._hook(s)
            self.sliders[k] = s
            if k in ("azimuth", "elevation"):
                sec.add(s)
        sec.reset_clicked.connect(lambda: self.doc.reset("light"))
        lay.addWidget(sec)
        sec2 = Section("Light", "Lighting as in the photo")
        for k in ("intensity", "ambient", "temperature"):
            sec2.add(self.sliders[k])
        self.as_photo = QPushButton("As in photo")
        self.as_photo.setToolTip("Back to the lighting fitted from the photo")
        self.as_photo.clicked.connect(lambda: self.doc.reset("light"))
        sec2.add(self.as_photo)
        sec2.reset_clicked.connect(lambda: self.doc.reset("light"))
        lay.addWidget(sec2)
        self.advanced = QToolButton()
        self.advanced.setText("Advanced: spherical harmonics")
        self.advanced.setCheckable(True)
        self.advanced.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.advanced.setArrowType(Qt.RightArrow)
        self.advanced.toggled.connect(self._toggle_advanced)
        lay.addWidget(self.advanced)
        self.table = QTableWidget(9, 3)
        self.table.setHorizontalHeaderLabels(["R", "G", "B"])
        self.table.setVerticalHeaderLabels(["L0", "L1 y", "L1 z", "L1 x", "L2 xy", "L2 yz", "L2 zz", "L2 xz",
                                            "L2 xx-yy"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.setFixedHeight(9 * 24 + 30)
        self.table.setToolTip("SH irradiance coefficients (camera frame); edit a cell to override the light")
        self.table.itemChanged.connect(self._sh_edited)
        self.table.hide()
        lay.addWidget(self.table)
        lay.addStretch(1)
        self._filling = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(_scroll(inner))

    def _toggle_advanced(self, on: bool) -> None:
        self.advanced.setArrowType(Qt.DownArrow if on else Qt.RightArrow)
        self.table.setVisible(on)

    def _sh_edited(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        try:
            sh = np.array([[float(self.table.item(r, c).text()) for c in range(3)] for r in range(9)])
        except (ValueError, AttributeError):
            return
        self.doc.set_light_sh(sh)
        self.doc.close_gesture()

    def show_sh(self, sh: np.ndarray | None) -> None:
        """Fill the advanced table (the worker reports the SH of each render)."""
        if sh is None:
            return
        self._filling = True
        for r in range(9):
            for c in range(3):
                self.table.setItem(r, c, QTableWidgetItem(f"{float(sh[r, c]):.4f}"))
        self._filling = False

    def refresh(self) -> None:
        light = self.doc.current_light()
        for k, s in self.sliders.items():
            s.set_value(getattr(light, k))
        self.pad.set_light(light.azimuth, light.elevation, light.intensity, light.ambient, light.temperature)
        self.as_photo.setEnabled(self.doc.edit.params.light is not None)


class HistoryPanel(_Panel):
    """Every edit as a list: click an entry to go back (or forward) to it."""

    def __init__(self, doc: Document, parent=None) -> None:
        super().__init__(doc, parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        sec = Section("History")
        self.list = QListWidget()
        self.list.setToolTip("Click a step to return to it; Ctrl+Z / Ctrl+Shift+Z step back and forth")
        self.list.setStyleSheet(f"QListWidget {{ background: {theme.BASE}; border: none; }} "
                                f"QListWidget::item {{ padding: 4px; }} "
                                f"QListWidget::item:selected {{ background: #2f4a69; color: {theme.TEXT}; }}")
        self.list.itemClicked.connect(lambda item: self.doc.goto(self.list.row(item)))
        sec.add(self.list)
        lay.addWidget(sec, 1)

    def refresh(self) -> None:
        labels = self.doc.history.labels()
        pos = self.doc.history.position
        self.list.blockSignals(True)
        while self.list.count() > len(labels):
            self.list.takeItem(self.list.count() - 1)
        for i, label in enumerate(labels):  # in place: a drag renames its entry at every move
            item = self.list.item(i)
            if item is None:
                item = QListWidgetItem()
                self.list.addItem(item)
            if item.data(Qt.UserRole) != label:
                item.setText(label if i else "Photo as fitted")
                item.setData(Qt.UserRole, label)
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setForeground(QColor(theme.TEXT if i <= pos else theme.MUTED))
        self.list.setCurrentRow(pos)
        self.list.scrollToItem(self.list.item(pos))
        self.list.blockSignals(False)
