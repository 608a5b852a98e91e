"""Small reusable widgets: value slider with numeric entry, titled section with reset, message
banner, progress panel with a live loss curve, and the welcome page."""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

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
    ``pressed`` when the slider's handle is grabbed, ``released`` when a gesture ends (slider
    released, number entered)."""

    changed = Signal(float)
    pressed = Signal()
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
        self.slider.setRange(0, round((self.hi - self.lo) / self.step))
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
        self.slider.sliderPressed.connect(self.pressed)
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
            self.slider.setValue(round((v - self.lo) / self.step))
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
        self.slider.setValue(round((v - self.lo) / self.step))
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

    COLOURS: ClassVar[dict[str, str]] = {"info": theme.ACCENT, "warn": theme.WARN, "error": theme.ERROR, "ok": theme.OK}

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


MIN_CHART_POINTS = 3  # the loss chart shows once it has this many points (a fit may report just one)


class ProgressPanel(QFrame):
    """Long work: title, stage text, progress bar (a busy bar when the fraction is unknown), a
    Cancel button, and for fits a live loss chart (pyqtgraph: step on x, loss on y, log scale
    when the losses span a decade). :class:`~faceeditor.app.tasks.TaskProgress` drives it."""

    cancel_clicked = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("progress")
        self.setStyleSheet(f"QFrame#progress {{ background: {theme.PANEL}; border: 1px solid #363a40; "
                           f"border-radius: 8px; }}")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(14, 8, 14, 8)
        left = QVBoxLayout()
        self.title = QLabel("Working")
        self.title.setStyleSheet("font-weight: 600;")
        self.stage = QLabel("")
        self.stage.setObjectName("hint")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.setFormat("%p%")
        self.cancel = QPushButton(icon("cancel"), "Cancel")
        self.cancel.setToolTip("Stop this work (Esc)")
        self.cancel.clicked.connect(self.cancel_clicked)
        left.addWidget(self.title)
        left.addWidget(self.stage)
        row = QHBoxLayout()
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel)
        left.addLayout(row)
        lay.addLayout(left, 2)
        self.losses: list[float] = []
        self.plot = None  # the loss chart, made for the first task that wants it
        self._chart = False
        self._lay = lay
        self.hide()

    def _make_chart(self):
        """The loss chart: labelled axes, a line with dots (a few points still show), or None
        without pyqtgraph."""
        try:
            import pyqtgraph as pg
        except ImportError:  # pragma: no cover - plots are optional decoration
            return None
        theme.configure_plots(pg)
        plot = pg.PlotWidget(background=theme.BASE)
        plot.setFixedHeight(128)
        plot.setMinimumWidth(260)
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(False, False)
        plot.hideButtons()
        plot.showGrid(x=False, y=True, alpha=0.15)
        styles = {"color": theme.MUTED, "font-size": "10px"}
        plot.setLabel("left", "loss", **styles)
        plot.setLabel("bottom", "step", **styles)
        for name in ("left", "bottom"):
            axis = plot.getAxis(name)
            axis.setTextPen(theme.MUTED)
            axis.setPen(pg.mkPen("#4a4f57"))
        plot.getAxis("left").setWidth(44)
        plot.setXRange(0, 10, padding=0)
        plot.setYRange(0, 1, padding=0)
        self.curve = plot.plot([], [], pen=pg.mkPen(theme.ACCENT, width=2), symbol="o", symbolSize=4,
                               symbolBrush=theme.ACCENT, symbolPen=None)
        return plot

    def prepare_chart(self) -> None:
        """Make the loss chart now (tens of milliseconds: better while the window is idle than
        when the first fit starts)."""
        if self.plot is None:
            self.plot = self._make_chart()
            if self.plot is not None:
                self.plot.setVisible(False)
                self._lay.addWidget(self.plot, 3)

    def start(self, title: str, cancellable: bool = True, chart: bool = False) -> None:
        self.title.setText(title)
        self.stage.setText("Starting…")
        self.set_fraction(0.0)
        self.losses = []
        if chart:
            self.prepare_chart()
        self._chart = chart
        if self.plot is not None:
            self.curve.setData([], [])
            self.plot.setVisible(False)  # until it has a few points to draw
        self.cancel.setVisible(cancellable)
        self.cancel.setEnabled(cancellable)
        self.show()
        self.raise_()

    def set_fraction(self, fraction: float | None) -> None:
        """The bar at ``fraction`` in [0, 1]; None: a busy bar (the length of the work is unknown)."""
        if fraction is None:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * max(0.0, min(1.0, fraction))))

    def update_progress(self, stage: str, fraction: float | None, losses: list[float]) -> None:
        self.stage.setText(stage)
        self.set_fraction(fraction)
        fresh = [float(v) for v in losses if v > 0 and math.isfinite(v)]
        if fresh:
            self.losses.extend(fresh)
            self._draw_losses()

    def _draw_losses(self) -> None:
        if self.plot is None or not self._chart or len(self.losses) < MIN_CHART_POINTS:
            return
        self.plot.setVisible(True)
        ys = self.losses
        lo, hi = min(ys), max(ys)
        log = hi / lo > 10.0
        self.plot.setLogMode(False, log)
        self.curve.setData(list(range(len(ys))), ys)
        self.plot.setXRange(0, max(len(ys) - 1, 1), padding=0.02)
        if log:
            self.plot.setYRange(math.log10(lo), math.log10(hi), padding=0.08)
        else:
            span = max(hi - lo, 0.05 * hi, 1e-9)
            self.plot.setYRange(max(0.0, lo - 0.1 * span), hi + 0.1 * span, padding=0)

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
