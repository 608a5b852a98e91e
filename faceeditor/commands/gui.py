"""``faceeditor gui [PHOTO]``: the editor window (also ``faceeditor [PHOTO]`` and ``python main.py [PHOTO]``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from faceeditor.core.errors import FaceEditorError

NAME = "gui"
HELP = "open the editor window (optionally on a photo or a saved .fesession)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", nargs="?", type=Path, default=None,
                        help="photo (JPEG, PNG, WebP, TIFF, BMP) or session (.fesession) to open")
    parser.add_argument("--no-restore", action="store_true",
                        help="do not offer to restore edits left unsaved by a crash")


def run(args: argparse.Namespace) -> int:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")):
        raise FaceEditorError("no display to open the window on (run it on a desktop, or try `faceeditor demo`)")
    photo, session = args.photo, None
    if photo is not None:
        if not photo.exists():
            raise FaceEditorError(f"{photo}: no such file")
        if photo.suffix.lower() == ".fesession":
            photo, session = None, photo
    try:  # Qt and the window: imported only when the window opens, not when the parser is built
        from faceeditor.app.main import run as run_app
    except ImportError as exc:  # pragma: no cover - Qt missing from the environment
        raise FaceEditorError(f"the editor window needs PySide6 ({exc})") from exc
    return run_app(photo, session, restore=not args.no_restore)
