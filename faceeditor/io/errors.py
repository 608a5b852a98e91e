"""Errors raised by :mod:`faceeditor.io`; both are user errors the CLI prints without a traceback."""

from __future__ import annotations

import os

from faceeditor.cli import UserError


class ImageLoadError(UserError):
    """An image file could not be read; the message starts with the file's path."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ImageSaveError(UserError):
    """An image could not be written (unknown extension, unwritable folder); names the path."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
