"""Start-up and quit timings of the real application, for ``faceeditor bench gui``.

With ``FACEEDITOR_PROBE=FILE`` in the environment, :func:`install` appends one JSON line per
moment to FILE: ``{"event": name, "t": time.time()}`` (wall clock: the benchmark compares it
with the time it started the process). Events: ``shown`` (the window is on screen), ``editor``
(the editor is built), ``ready`` (models loaded), ``fitted`` (the first face fit is shown),
``close`` (the window was asked to close). With ``FACEEDITOR_PROBE_QUIT=fitted`` the window
closes itself at that moment, while the refinement and the renderers' warm-up still run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer


class Probe(QObject):
    def __init__(self, window, path: Path, quit_on: str | None) -> None:
        super().__init__(window)
        self.w, self.path, self.quit_on = window, path, quit_on
        self.seen: set[str] = set()
        window.installEventFilter(self)
        self._poll = QTimer(self, interval=5)
        self._poll.timeout.connect(self._check)
        self._poll.start()

    def note(self, event: str) -> None:
        if event in self.seen:
            return
        self.seen.add(event)
        with self.path.open("a") as f:
            f.write(json.dumps({"event": event, "t": time.time()}) + "\n")
        if event == self.quit_on:
            QTimer.singleShot(0, self.w.close)

    def eventFilter(self, obj, ev) -> bool:
        t = ev.type()
        if t in (QEvent.Paint, QEvent.UpdateRequest) or (t == QEvent.Show and obj.isVisible()):
            handle = self.w.windowHandle()
            if handle is not None and handle.isExposed():
                self.note("shown")
        elif t == QEvent.Close:
            self.note("close")
        return False

    def _check(self) -> None:
        w = self.w
        handle = w.windowHandle()
        if handle is not None and handle.isExposed():
            self.note("shown")
        if w.ready:
            self.note("editor")
            if w.lbl_device.text() != "device …":
                self.note("ready")
            if w.doc.has_face:
                self.note("fitted")


def install(window) -> Probe | None:
    """A :class:`Probe` on ``window`` when ``$FACEEDITOR_PROBE`` names a file, else None."""
    path = os.environ.get("FACEEDITOR_PROBE")
    if not path:
        return None
    return Probe(window, Path(path), os.environ.get("FACEEDITOR_PROBE_QUIT") or None)
