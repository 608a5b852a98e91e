"""One piece of work on its own thread, reported back on the UI thread (file writing for exports).

Exports render on the render thread (they need its renderer) and write on a
:class:`BackgroundJob`, so a big photo's JPEG/PNG encoding never holds up the previews.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QThread, Signal

from faceeditor.app.workers import lower_thread_priority, message
from faceeditor.core.errors import Cancelled


class BackgroundJob(QThread):
    """Runs ``fn()``; ``done(result)``, ``failed(message)`` or ``cancelled()`` follows (queued)."""

    done = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, fn: Callable[[], Any], parent=None) -> None:
        super().__init__(parent)
        self.fn = fn

    def run(self) -> None:
        lower_thread_priority()
        try:
            result = self.fn()
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:  # noqa: BLE001 - reported to the window, never raised in the thread
            traceback.print_exc()
            self.failed.emit(message(exc))
        else:
            self.done.emit(result)
