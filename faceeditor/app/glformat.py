"""The OpenGL surface the 3D viewport asks for, and whether the Qt platform has OpenGL widgets
(torch-free: the application sets the default format before any window exists)."""

from __future__ import annotations

from PySide6.QtGui import QSurfaceFormat
from PySide6.QtWidgets import QApplication


def surface_format() -> QSurfaceFormat:
    fmt = QSurfaceFormat()
    fmt.setVersion(3, 3)
    fmt.setProfile(QSurfaceFormat.CoreProfile)
    fmt.setDepthBufferSize(24)
    fmt.setSamples(0)  # MSAA costs 2x frame time under software GL (llvmpipe)
    return fmt


def gl_widgets_supported() -> bool:
    """QOpenGLWidget needs a platform with OpenGL windows (xcb, wayland, ...), not ``offscreen``."""
    return QApplication.platformName() not in ("offscreen", "minimal", "vnc")
