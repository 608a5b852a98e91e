"""Save uint8 RGB images atomically, upright, keeping the source photo's ICC profile and EXIF."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from faceeditor.core.atomic import atomic_write
from faceeditor.core.errors import ImageSaveError
from faceeditor.io import _meta
from faceeditor.io.image import LoadedImage

EXTENSIONS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".png": "PNG", ".webp": "WEBP",
    ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
}
"""File extension (lower case) -> format :func:`save_image` writes."""

_ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF"})


def format_for_path(path: str | os.PathLike[str]) -> str:
    """The format a path's extension selects; ImageSaveError for unknown extensions."""
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        known = ", ".join(sorted(EXTENSIONS))
        raise ImageSaveError(path, f"unknown image extension {suffix or '(none)'!r}; use one of {known}")
    return EXTENSIONS[suffix]


def _to_pil(pixels: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    """uint8 HxWx3 (+ optional uint8 HxW alpha) -> Pillow RGB/RGBA image."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"pixels must be a uint8 HxWx3 array, got {getattr(pixels, 'dtype', type(pixels))} "
                         f"{getattr(pixels, 'shape', '')}")
    rgb = np.ascontiguousarray(pixels)
    if alpha is None:
        return Image.fromarray(rgb, "RGB")
    if alpha.dtype != np.uint8 or alpha.shape != pixels.shape[:2]:
        raise ValueError(f"alpha must be uint8 {pixels.shape[:2]}, got {alpha.dtype} {alpha.shape}")
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def _options(fmt: str, quality: int, like: LoadedImage | None) -> dict[str, Any]:
    """Pillow save keywords: quality, ICC profile and upright EXIF of ``like``."""
    opts: dict[str, Any] = {}
    if fmt == "JPEG":
        # 4:4:4 chroma at high quality keeps skin and lip edges crisp; 4:2:0 below.
        opts.update(quality=quality, subsampling=0 if quality >= 90 else 2)
    elif fmt == "WEBP":
        opts.update(quality=quality, lossless=quality >= 100)
    elif fmt == "TIFF":
        opts.update(compression="tiff_lzw")
    if like is not None and fmt != "BMP":
        if like.icc_profile:
            opts["icc_profile"] = like.icc_profile
        exif = _meta.normalized_exif(like.exif)
        if exif is not None:
            opts["exif"] = exif
    return opts


def save_image(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    quality: int = 95,
    like: LoadedImage | None = None,
    *,
    alpha: np.ndarray | None = None,
) -> Path:
    """Write upright uint8 HxWx3 RGB ``pixels`` to ``path``; format from the extension.

    ``quality`` (1..100) applies to JPEG and WebP (WebP at 100 is lossless). With ``like``
    (the LoadedImage the pixels came from) its ICC profile and EXIF are written, the EXIF
    orientation forced to 1 since pixels are stored upright. ``alpha`` (uint8 HxW) is
    written for PNG/WebP/TIFF. The file appears complete or not at all. Returns the path.
    """
    p = Path(path)
    fmt = format_for_path(p)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    if alpha is not None and fmt not in _ALPHA_FORMATS:
        raise ImageSaveError(p, f"{fmt} cannot store transparency; save as .png, .webp or .tif")
    img = _to_pil(pixels, alpha)
    opts = _options(fmt, int(quality), like)
    if not p.parent.is_dir():
        raise ImageSaveError(p, f"folder {p.parent} does not exist")
    try:
        atomic_write(p, lambda f: img.save(f, format=fmt, **opts))
    except OSError as exc:
        raise ImageSaveError(p, f"cannot write image ({exc.strerror or exc})") from exc
    return p
