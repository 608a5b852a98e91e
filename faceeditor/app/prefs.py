"""What the window keeps between runs and knows before the heavy modules load (no torch here).

* preferences in a :class:`QSettings` INI file in the user folder (``settings.ini``): the CPU
  thread count (0 = automatic: the cores other programs leave idle, from ``os.getloadavg``);
* the recent-files list (``recent.json``);
* which dropped files the window opens, and why it refuses the others.

The start-up window (:mod:`faceeditor.app.startup`) uses all of it before torch is imported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from PySide6.QtCore import QSettings

from faceeditor.core.atomic import atomic_write_text
from faceeditor.core.paths import user_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")
IMAGE_FILTER = "Photos (*.jpg *.jpeg *.png *.webp *.tif *.tiff *.bmp *.gif)"
SESSION_SUFFIX = ".fesession"  # = faceeditor.io.session.SUFFIX (that module needs torch)
MAX_RECENT = 10


def settings() -> QSettings:
    """The preferences file (in the user folder, so tests and ``FACEEDITOR_HOME`` keep their own)."""
    return QSettings(str(user_dir() / "settings.ini"), QSettings.IniFormat)


def idle_cores() -> int:
    """Cores that other programs leave idle: cores minus the 1-minute load average, at least 1."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this system
        load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


def thread_setting() -> int:
    """The saved CPU thread count; 0 = automatic."""
    try:
        return max(0, int(settings().value("threads", 0)))
    except (TypeError, ValueError):
        return 0


def set_thread_setting(n: int) -> None:
    s = settings()
    s.setValue("threads", max(0, int(n)))
    s.sync()


def chosen_threads() -> int:
    """The thread count to use now: $FACEEDITOR_THREADS, else the saved setting, else the idle cores."""
    env = os.environ.get("FACEEDITOR_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return thread_setting() or idle_cores()


def recent() -> list[str]:
    """Recently opened files, newest first."""
    try:
        items = json.loads((user_dir() / "recent.json").read_text())
        return [str(p) for p in items if isinstance(p, str)]
    except (OSError, ValueError):
        return []


def recent_with(path) -> list[str]:
    """The recent list with ``path`` first (not written)."""
    p = str(Path(path).resolve())
    return ([p] + [q for q in recent() if q != p])[:MAX_RECENT]


def write_recent(items: list[str]) -> None:
    try:
        atomic_write_text(user_dir() / "recent.json", json.dumps(items[:MAX_RECENT], indent=1))
    except OSError:  # a read-only home: the list just does not grow
        pass


def dropped_path(mime) -> Path | None:
    """The first local photo or session among a drag's URLs."""
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile():
            p = Path(url.toLocalFile())
            if p.suffix.lower() in (*IMAGE_SUFFIXES, SESSION_SUFFIX):
                return p
    return None


def refusal(mime) -> str | None:
    """Why a drag is refused (dropped files FaceEditor cannot open), or None (nothing to say)."""
    if not mime.hasUrls():
        return None
    names = [Path(u.toLocalFile()).name if u.isLocalFile() else u.toString() for u in mime.urls()]
    return (
        f"Can't open {names[0]}{' and others' if len(names) > 1 else ''}: "
        f"drop a photo (JPEG, PNG, WebP, TIFF, BMP, GIF) or a {SESSION_SUFFIX} session"
    )
