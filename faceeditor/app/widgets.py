"""Small reusable widgets: value slider with numeric entry, titled section with reset, message
banner, progress panel with a live loss curve, and the welcome page."""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from faceeditor.app import theme
from faceeditor.app.icons import app_icon, icon


class ValueSlider(QWidget):
    """Label, slider and spin box for one float; ``changed`` fires on user edits only,
    ``released`` when a gesture ends (slider released, number entered)."""

    changed = Signal(float)
    released = Signal()

    def __init__(self, label: str, lo: float, hi: float, step: float = 0.01, decimals: int = 2, suffix: str = "",
                 tooltip: str = "", label_width: int = 104, parent=None) -> None:
        super().__init__(parent)
        self.lo, self.hi, self.step = float(lo), float(hi), float(step)
        self.name = label
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 1, 0, 1)
        lay.setSpacing(8)
        self.label = QLabel(label)
        self.label.setFixedWidth(label_width)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, int(round((self.hi - self.lo) / self.step)))
        self.slider.setPageStep(max(1, self.slider.maximum() // 10))
        self.spin = QDoubleSpinBox()
        self.spin.setRange(self.lo, self.hi)
        self.spin.setDecimals(decimals)
        self.spin.setSingleStep(self.step * (10 if decimals == 0 else 5))
        self.spin.setSuffix(suffix)
        self.spin.setKeyboardTracking(False)
        self.spin.setFixedWidth(78)
        self.spin.setAlignment(Qt.AlignRight)
        for w in (self.label, self.slider, self.spin):
            w.setToolTip(tooltip)
        lay.addWidget(self.label)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.spin)
        self._value = self.lo
        self._updating = False
        self.slider.valueChanged.connect(self._from_slider)
        self.slider.sliderReleased.connect(self.released)
        self.spin.valueChanged.connect(self._from_spin)
        self.spin.editingFinished.connect(self.released)

    def value(self) -> float:
        return self._value

    def set_value(self, v: float) -> None:
        """Show ``v`` without emitting ``changed``."""
        v = float(min(self.hi, max(self.lo, v)))
        self._value = v
        self._updating = True
        try:
            self.slider.setValue(int(round((v - self.lo) / self.step)))
            self.spin.setValue(v)
        finally:
            self._updating = False

    def _from_slider(self, i: int) -> None:
        if self._updating:
            return
        v = self.lo + i * self.step
        self._value = v
        self._updating = True
        self.spin.setValue(v)
        self._updating = False
        self.changed.emit(v)

    def _from_spin(self, v: float) -> None:
        if self._updating:
            return
        self._value = float(v)
        self._updating = True
        self.slider.setValue(int(round((v - self.lo) / self.step)))
        self._updating = False
        self.changed.emit(float(v))


class Section(QFrame):
    """A titled panel section with an optional reset button in its header."""

    reset_clicked = Signal()

    def __init__(self, title: str, reset_tip: str | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("section")
        self.setStyleSheet(f"QFrame#section {{ background: {theme.PANEL}; border: 1px solid #363a40; "
                           f"border-radius: 7px; }}")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(10, 6, 10, 8)
        outer.setSpacing(4)
        head = QHBoxLayout()
        self.title = QLabel(title.upper())
        self.title.setStyleSheet(f"color: {theme.MUTED}; font-weight: 600; font-size: 11px; letter-spacing: 1px;")
        head.addWidget(self.title)
        head.addStretch(1)
        self.header = head
        if reset_tip is not None:
            b = QToolButton()
            b.setIcon(icon("reset", theme.MUTED))
            b.setToolTip(reset_tip)
            b.setAutoRaise(True)
            b.clicked.connect(self.reset_clicked)
            self.reset_button = b
            head.addWidget(b)
        outer.addLayout(head)
        self.body = QVBoxLayout()
        self.body.setSpacing(2)
        outer.addLayout(self.body)

    def add(self, w: QWidget) -> QWidget:
        self.body.addWidget(w)
        return w


class MessageBar(QFrame):
    """A dismissible banner above the canvas: errors, hints and questions (never a modal box)."""

    COLOURS = {"info": theme.ACCENT, "warn": theme.WARN, "error": theme.ERROR, "ok": theme.OK}

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 6, 6, 6)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        lay.addWidget(self.text, 1)
        self._buttons: list[QPushButton] = []
        self._lay = lay
        close = QToolButton()
        close.setIcon(icon("cancel", theme.MUTED))
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        self.close_button = close
        lay.addWidget(close)
        self.kind = "info"
        self.hide()

    def show_message(self, text: str, kind: str = "info", actions: list[tuple[str, object]] | None = None) -> None:
        for b in self._buttons:
            b.deleteLater()
        self._buttons = []
        for label, fn in actions or []:
            b = QPushButton(label)
            b.clicked.connect(fn)
            b.clicked.connect(self.hide)
            self._lay.insertWidget(self._lay.count() - 1, b)
            self._buttons.append(b)
        col = self.COLOURS.get(kind, theme.ACCENT)
        self.kind = kind
        self.setStyleSheet(f"QFrame#banner {{ background: #25282d; border: 1px solid {col}; "
                           f"border-left: 4px solid {col}; border-radius: 6px; }} QLabel {{ color: {theme.TEXT}; }}")
        self.text.setText(text)
        self.show()


class ProgressPanel(QFrame):
    """Long work: stage text, progress bar, live loss curve (pyqtgraph) and a Cancel button."""

    cancel_clicked = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("progress")
        self.setStyleSheet(f"QFrame#progress {{ background: {theme.PANEL}; border-top: 1px solid #363a40; }}")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 6, 12, 6)
        left = QVBoxLayout()
        self.title = QLabel("Working")
        self.title.setStyleSheet("font-weight: 600;")
        self.stage = QLabel("")
        self.stage.setObjectName("hint")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.cancel = QPushButton(icon("cancel"), "Cancel")
        self.cancel.setToolTip("Stop this work (Esc)")
        self.cancel.clicked.connect(self.cancel_clicked)
        left.addWidget(self.title)
        left.addWidget(self.stage)
        left.addWidget(self.bar)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.cancel)
        left.addLayout(row)
        lay.addLayout(left, 2)
        self.losses: list[float] = []
        self.plot = None
        try:
            import pyqtgraph as pg

            self.plot = pg.PlotWidget()
            self.plot.setFixedHeight(96)
            self.plot.setMenuEnabled(False)
            self.plot.setMouseEnabled(False, False)
            self.plot.hideButtons()
            self.plot.setLogMode(False, True)
            self.plot.showGrid(x=False, y=True, alpha=0.15)
            self.plot.setLabel("left", "loss")
            self.curve = self.plot.plot(pen=pg.mkPen(theme.ACCENT, width=2))
            lay.addWidget(self.plot, 3)
        except ImportError:  # pragma: no cover
            pass
        self.hide()

    def start(self, title: str) -> None:
        self.title.setText(title)
        self.stage.setText("Starting…")
        self.bar.setValue(0)
        self.losses = []
        if self.plot is not None:
            self.curve.setData([], [])
        self.cancel.setEnabled(True)
        self.show()

    def update_progress(self, stage: str, fraction: float, losses: list[float]) -> None:
        self.stage.setText(stage)
        self.bar.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        fresh = [v for v in losses if v > 0 and math.isfinite(v)]
        if fresh:
            self.losses.extend(fresh)
            if self.plot is not None:
                self.curve.setData(list(range(len(self.losses))), self.losses)

    def finish(self) -> None:
        self.hide()


class Welcome(QWidget):
    """Shown before a photo is open: open, try the sample, recent files."""

    open_clicked = Signal()
    sample_clicked = Signal()
    recent_clicked = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setAutoFillBackground(True)
        outer = QVBoxLayout(self)
        outer.addStretch(2)
        box = QVBoxLayout()
        box.setSpacing(10)
        logo = QLabel()
        logo.setAlignment(Qt.AlignCenter)
        logo.setPixmap(app_icon().pixmap(96, 96))
        box.addWidget(logo)
        title = QLabel("Drop a portrait photo here")
        title.setAlignment(Qt.AlignCenter)
        title.setStyleSheet("font-size: 22px; font-weight: 600;")
        sub = QLabel("FaceEditor finds the face, fits a 3D head and lets you change its pose,\n"
                     "expression and lighting, right in the photo.")
        sub.setAlignment(Qt.AlignCenter)
        sub.setObjectName("hint")
        box.addWidget(title)
        box.addWidget(sub)
        row = QHBoxLayout()
        row.addStretch(1)
        b_open = QPushButton(icon("open", "#ffffff"), "  Open photo…")
        b_open.setObjectName("primary")
        b_open.clicked.connect(self.open_clicked)
        b_sample = QPushButton(icon("face"), "  Try the sample portrait")
        b_sample.clicked.connect(self.sample_clicked)
        row.addWidget(b_open)
        row.addWidget(b_sample)
        row.addStretch(1)
        box.addSpacing(8)
        box.addLayout(row)
        self.recent_box = QVBoxLayout()
        self.recent_box.setAlignment(Qt.AlignHCenter)
        box.addSpacing(12)
        box.addLayout(self.recent_box)
        outer.addLayout(box)
        outer.addStretch(3)

    def set_recent(self, paths: list[str]) -> None:
        while self.recent_box.count():
            w = self.recent_box.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        if not paths:
            return
        head = QLabel("Recent")
        head.setObjectName("hint")
        head.setAlignment(Qt.AlignCenter)
        self.recent_box.addWidget(head)
        for p in paths[:5]:
            b = QPushButton(Path(p).name)
            b.setFlat(True)
            b.setToolTip(p)
            b.clicked.connect(lambda _=False, p=p: self.recent_clicked.emit(p))
            self.recent_box.addWidget(b)
