"""Progress and cancellation callbacks shared by every long task (fit, render, inversion).

``Progress(stage, fraction, loss) -> bool``: called between and inside stages; returning False
cancels. ``CancelCheck() -> bool``: polled by renderers; returning True cancels. Either way the
task raises :class:`~faceeditor.core.errors.Cancelled` through :func:`check_progress` /
:func:`check_cancel`.
"""

from __future__ import annotations

from collections.abc import Callable

from faceeditor.core.errors import Cancelled

Progress = Callable[[str, float, "float | None"], bool]
CancelCheck = Callable[[], bool]


def check_progress(progress: Progress | None, stage: str, fraction: float, loss: float | None = None,
                   task: str = "task") -> None:
    """Report ``stage`` at ``fraction``; raise :class:`Cancelled` when ``progress`` returns False."""
    if progress is not None and progress(stage, fraction, loss) is False:
        raise Cancelled(f"{task} cancelled during {stage}")


def check_cancel(cancel: CancelCheck | None, task: str = "task") -> None:
    """Raise :class:`Cancelled` when ``cancel()`` returns True."""
    if cancel is not None and cancel():
        raise Cancelled(f"{task} cancelled")
