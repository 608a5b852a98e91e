"""Long tasks in the window: one progress panel (bar, stage, Cancel, loss chart) for all of them.

Fits, the neural renderer's inversion, full-resolution exports and the start-up loading each
:meth:`TaskProgress.begin` a :class:`Task`, report through :meth:`TaskProgress.update` and
:meth:`TaskProgress.end` it. The panel shows the newest running task (the next newest when it
ends); a task that ends before ``show_after_ms`` never shows (no flicker for quick exports).
Cancel (or Esc) calls the shown task's ``cancel`` and says "Cancelling…" until its owner ends it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QTimer

from faceeditor.app.widgets import ProgressPanel


@dataclass
class Task:
    """One long task as the progress panel shows it."""

    id: int
    title: str
    cancel: Callable[[], None] | None  # None: it cannot be cancelled
    chart: bool = False  # show the loss chart
    stage: str = "Starting…"
    fraction: float | None = 0.0  # None: unknown (a busy bar)
    losses: list[float] = field(default_factory=list)
    t_start: float = field(default_factory=time.perf_counter)
    show_at: float = 0.0  # perf_counter() from which it may show
    cancelling: bool = False


class TaskProgress(QObject):
    """The window's running tasks and the :class:`ProgressPanel` that shows one of them."""

    def __init__(self, window, panel: ProgressPanel) -> None:
        super().__init__(window)
        self.panel = panel
        self.tasks: list[Task] = []
        self._ids = 0
        self._shown: Task | None = None
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self._show)
        panel.cancel_clicked.connect(self.cancel_shown)

    def begin(
        self,
        title: str,
        cancel: Callable[[], None] | None = None,
        chart: bool = False,
        show_after_ms: int = 0,
        fraction: float | None = 0.0,
    ) -> Task:
        self._ids += 1
        task = Task(self._ids, title, cancel, chart, fraction=fraction)
        task.show_at = task.t_start + show_after_ms / 1e3
        self.tasks.append(task)
        if show_after_ms <= 0:
            self._show()
        else:
            self._timer.start(show_after_ms)
        return task

    def update(self, task: Task, stage: str, fraction: float | None, losses: list[float] | tuple = ()) -> None:
        if task not in self.tasks:
            return
        task.stage = stage if not task.cancelling else "Cancelling…"
        task.fraction = fraction
        task.losses.extend(losses)
        if task is self._shown:
            self.panel.update_progress(task.stage, fraction, list(losses))

    def retitle(self, task: Task, title: str) -> None:
        task.title = title
        if task is self._shown:
            self.panel.title.setText(title)

    def end(self, task: Task | None) -> None:
        if task is None or task not in self.tasks:
            return
        self.tasks.remove(task)
        if task is self._shown:
            self._shown = None
            self.panel.finish()
        self._show()

    def active(self) -> bool:
        return bool(self.tasks)

    def cancel_shown(self) -> bool:
        """Cancel the task the panel shows (Esc, the Cancel button); False when there is none."""
        task = self._shown
        if task is None or task.cancel is None or task.cancelling:
            return False
        task.cancelling = True
        self.panel.cancel.setEnabled(False)
        self.panel.stage.setText("Cancelling…")
        task.cancel()
        return True

    def _show(self) -> None:
        """Show the newest task that may show now; re-arm the timer for one that may show later."""
        now = time.perf_counter()
        ready = [t for t in self.tasks if t.show_at <= now]
        waiting = [t for t in self.tasks if t.show_at > now]
        if waiting:
            self._timer.start(max(1, int((min(t.show_at for t in waiting) - now) * 1e3)))
        task = ready[-1] if ready else None
        if task is None or task is self._shown:
            return
        self._shown = task
        p = self.panel
        p.start(task.title, cancellable=task.cancel is not None, chart=task.chart)
        p.update_progress(task.stage, task.fraction, task.losses)
        if task.cancelling:
            p.cancel.setEnabled(False)
