"""Dark theme shared by the Qt widgets and the pyqtgraph plots (one palette, one accent)."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

BG = "#202226"  # window
PANEL = "#2a2d32"  # docks, group boxes
BASE = "#17181b"  # canvas, inputs
TEXT = "#e3e5e8"
MUTED = "#9aa0a8"
ACCENT = "#4c9bf0"
WARN = "#f0b44c"
ERROR = "#e8615a"
OK = "#5ac47d"

STYLE = f"""
QMainWindow, QDialog {{ background: {BG}; }}
QDockWidget {{ color: {TEXT}; font-weight: 600; }}
QDockWidget::title {{ background: {PANEL}; padding: 6px 8px; border-bottom: 1px solid #33363c; }}
QToolBar {{ background: {BG}; border: none; border-bottom: 1px solid #33363c; spacing: 2px; padding: 3px; }}
QToolButton {{ color: {TEXT}; border: 1px solid transparent; border-radius: 5px; padding: 4px; }}
QToolButton:hover {{ background: #33373e; border-color: #40444c; }}
QToolButton:checked {{ background: #2f4a69; border-color: {ACCENT}; }}
QToolButton:disabled {{ color: #5d6168; }}
QGroupBox {{ background: {PANEL}; border: 1px solid #363a40; border-radius: 7px; margin-top: 14px;
             padding: 8px 6px 6px 6px; font-weight: 600; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {MUTED}; }}
QLabel#hint {{ color: {MUTED}; }}
QLabel#value {{ color: {TEXT}; font-family: monospace; }}
QTabWidget::pane {{ border: none; }}
QTabBar::tab {{ background: {BG}; color: {MUTED}; padding: 7px 14px; border: none;
                border-bottom: 2px solid transparent; }}
QTabBar::tab:selected {{ color: {TEXT}; border-bottom: 2px solid {ACCENT}; }}
QTabBar::tab:hover {{ color: {TEXT}; }}
QSlider::groove:horizontal {{ height: 4px; background: #3a3e45; border-radius: 2px; }}
QSlider::sub-page:horizontal {{ background: {ACCENT}; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: #e8eaed; width: 12px; height: 12px; margin: -5px 0; border-radius: 6px; }}
QSlider::handle:horizontal:hover {{ background: #ffffff; }}
QDoubleSpinBox, QSpinBox, QLineEdit, QComboBox {{ background: {BASE}; color: {TEXT}; border: 1px solid #3a3e45;
             border-radius: 4px; padding: 2px 4px; selection-background-color: {ACCENT}; }}
QPushButton {{ background: #353940; color: {TEXT}; border: 1px solid #454a52; border-radius: 5px; padding: 5px 12px; }}
QPushButton:hover {{ background: #3e434b; }}
QPushButton:pressed {{ background: #2f4a69; }}
QPushButton#primary {{ background: {ACCENT}; border-color: {ACCENT}; color: white; font-weight: 600; }}
QPushButton#primary:hover {{ background: #5ea8f5; }}
QPushButton:flat {{ background: transparent; border: none; color: {ACCENT}; padding: 2px 6px; }}
QProgressBar {{ background: {BASE}; border: 1px solid #3a3e45; border-radius: 4px; text-align: center; color: {TEXT};
                height: 14px; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 3px; }}
QStatusBar {{ background: {BG}; color: {MUTED}; border-top: 1px solid #33363c; }}
QStatusBar QLabel {{ color: {MUTED}; padding: 0 6px; }}
QScrollArea {{ border: none; background: transparent; }}
QTableWidget {{ background: {BASE}; color: {TEXT}; gridline-color: #33363c; border: 1px solid #3a3e45; }}
QHeaderView::section {{ background: {PANEL}; color: {MUTED}; border: none; padding: 2px 4px; }}
QMenu {{ background: {PANEL}; color: {TEXT}; border: 1px solid #3a3e45; }}
QMenu::item:selected {{ background: #2f4a69; }}
QMenuBar {{ background: {BG}; color: {TEXT}; }}
QMenuBar::item:selected {{ background: #33373e; }}
QFrame#banner {{ border-radius: 6px; }}
QToolTip {{ background: {PANEL}; color: {TEXT}; border: 1px solid #454a52; padding: 4px; }}
"""


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    for role, colour in ((QPalette.Window, BG), (QPalette.WindowText, TEXT), (QPalette.Base, BASE),
                         (QPalette.AlternateBase, PANEL), (QPalette.Text, TEXT), (QPalette.Button, "#353940"),
                         (QPalette.ButtonText, TEXT), (QPalette.Highlight, ACCENT),
                         (QPalette.HighlightedText, "#ffffff"), (QPalette.ToolTipBase, PANEL),
                         (QPalette.ToolTipText, TEXT), (QPalette.PlaceholderText, MUTED), (QPalette.Link, ACCENT)):
        pal.setColor(role, QColor(colour))
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        pal.setColor(QPalette.Disabled, role, QColor("#5d6168"))
    app.setPalette(pal)
    app.setStyleSheet(STYLE)


def configure_plots(pg) -> None:
    """pyqtgraph's colours (called when the first chart is made: pyqtgraph takes ~0.7 s to import,
    which the window does not wait for at start-up)."""
    pg.setConfigOptions(background=BASE, foreground=MUTED, antialias=True)
