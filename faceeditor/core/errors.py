"""Every error FaceEditor raises on purpose: one base class, the user-facing kinds, one ``Cancelled``.

A :class:`FaceEditorError` is a problem the user can fix (a bad file, no face, a bad option, a
missing model): the command line prints its message without a traceback, the window shows it in
a dialog. Anything else that escapes is a bug. :class:`Cancelled` ends a long task that the user
(or a newer request) stopped; it is a :class:`FaceEditorError` so that a cancelled command prints
one line, and the window tells it apart with ``except Cancelled``.
"""

from __future__ import annotations

import os


class FaceEditorError(Exception):
    """A problem the user can fix; printed without a traceback."""


class Cancelled(FaceEditorError):
    """A long task (fit, render, inversion, training step) was cancelled through its callback."""


class _PathError(FaceEditorError):
    """An error about one file; the message starts with the file's path."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ImageLoadError(_PathError):
    """An image file could not be read; the message starts with the file's path."""


class ImageSaveError(_PathError):
    """An image could not be written (unknown extension, unwritable folder); names the path."""


class NoFaceError(FaceEditorError):
    """No usable face in the photo."""


class FaceTooSmallError(NoFaceError):
    """Faces were found, but all are smaller than the minimum size (they are in ``faces``)."""

    def __init__(self, message: str, faces: list | None = None) -> None:
        super().__init__(message)
        self.faces = list(faces or [])


class ModelMissingError(FaceEditorError):
    """A model file that ships in a package or in ``resources/`` is not installed."""


class ParamsFileError(FaceEditorError):
    """A params.json, preset or edit file could not be read."""


class SessionError(FaceEditorError):
    """A session file could not be read or written."""


class EditValueError(FaceEditorError):
    """An edit value (pose, expression, light, preset file) is out of range or malformed."""


class RendererUnavailableError(FaceEditorError):
    """The renderer asked for cannot be made (no trained weights in ``resources/``)."""
