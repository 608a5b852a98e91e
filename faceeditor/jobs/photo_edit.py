"""Edit a photo file end to end: load, fit the face(s), composite the edit, save like the input.

Shared by ``faceeditor edit`` and ``faceeditor batch`` (and usable from scripts); the fitter is
:func:`faceeditor.fit.pipeline.fit_photo` unless the caller passes another.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from faceeditor.core.errors import FaceEditorError
from faceeditor.edit.args import check_expression_names, edit_for_face
from faceeditor.edit.params import EditParams
from faceeditor.face.detect import NoFaceError
from faceeditor.fit.pipeline import fit_photo
from faceeditor.io import format_for_path, load_image, save_image
from faceeditor.jobs.renderers import make_renderer
from faceeditor.morphable import load_face_model

FaceChoice = int | str | None  # 1-based index (as `faceeditor detect` numbers faces), "all", or None = face 1


def fitter() -> Callable:
    """The default fitter, :func:`faceeditor.fit.pipeline.fit_photo`."""
    return fit_photo


def parse_face(text: str | None) -> FaceChoice:
    if text is None:
        return None
    if text.strip().lower() == "all":
        return "all"
    try:
        n = int(text)
    except ValueError:
        raise FaceEditorError(f"--face {text!r}: expected a face number (1 = largest) or 'all'") from None
    if n < 1:
        raise FaceEditorError("--face counts from 1 (the largest face), as `faceeditor detect` prints them")
    return n


def fit_faces(rgb: np.ndarray, face: FaceChoice = None, fit: Callable | None = None, **fit_kw) -> list:
    """Fitted :class:`FaceState` of the chosen face(s)."""
    fit = fit or fitter()
    if face == "all":
        states = fit(rgb, all_faces=True, **fit_kw)
    else:
        states = fit(rgb, face_index=(face or 1) - 1, **fit_kw)
    states = list(states or [])
    if not states:
        raise NoFaceError("no face found to edit")
    return states


def apply_edits(rgb: np.ndarray, states: list, edit_for: Callable[[object], EditParams], model=None,
                scale: float = 1.0) -> np.ndarray:
    """Composite each face's edit in turn (each face is warped in the previous face's result)."""
    model = model or load_face_model("cpu")
    out = rgb
    for state in states:
        edit = edit_for(state)
        out = make_renderer(edit.renderer, out, state, model).render(edit, scale=scale)
    return out


@dataclass
class EditResult:
    path: Path
    size: tuple[int, int]
    faces: int
    fit_ms: float
    render_ms: float
    edits: list[dict] = field(default_factory=list)


def save_like(path: Path, pixels: np.ndarray, like, quality: int | None = None) -> Path:
    """Save with the input's ICC profile and EXIF; JPEG quality defaults to the input's (else 95);
    transparency is kept where the output format can store it."""
    fmt = format_for_path(path)
    if quality is None:
        quality = like.jpeg_quality if (like.jpeg_quality and fmt == "JPEG") else 95
        quality = int(min(100, max(1, quality)))
    alpha = like.alpha if (like.alpha is not None and fmt in ("PNG", "WEBP", "TIFF")) else None
    return save_image(path, pixels, quality=quality, like=like, alpha=alpha)


def edit_file(src: Path, dst: Path, base: EditParams, args: argparse.Namespace, face: FaceChoice = None,
              quality: int | None = None, fit: Callable | None = None) -> EditResult:
    """Load ``src``, fit, apply ``base`` (+ per-face light flags in ``args``), save ``dst``."""
    image = load_image(src)
    model = load_face_model("cpu")
    check_expression_names(base, model.expression_names)
    t0 = time.perf_counter()
    states = fit_faces(image.pixels, face, fit)
    t1 = time.perf_counter()
    edits: list[dict] = []

    def edit_for(state) -> EditParams:
        e = edit_for_face(base, args, state)
        edits.append(e.to_dict())
        return e

    pixels = apply_edits(image.pixels, states, edit_for, model)
    t2 = time.perf_counter()
    save_like(dst, pixels, image, quality)
    return EditResult(dst, image.size, len(states), (t1 - t0) * 1000.0, (t2 - t1) * 1000.0, edits)
