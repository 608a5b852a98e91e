"""Load photos: any common format, EXIF orientation applied, uint8 RGB out, clear errors.

Policy (shared with the rest of FaceEditor):
  * Pixels come back upright (EXIF orientation applied) as C-contiguous uint8 HxWx3 RGB.
  * Alpha: when the file has transparency (RGBA, LA, PA, palette with tRNS) ``alpha`` holds it
    as uint8 HxW and ``pixels`` are composited over ``background`` (white by default), i.e.
    what a viewer shows on white. Pass ``background=None`` to get the raw, un-blended RGB.
  * 16-bit samples are scaled to 8 bits with rounding (v*255/65535), never clipped.
  * CMYK goes through its embedded ICC profile to sRGB when present (else Pillow's formula);
    ``icc_profile`` is kept only for RGB profiles (grey/CMYK profiles no longer describe the
    RGB pixels, which are then treated as sRGB).
  * Images over ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`, 100 megapixels) are refused
    from the header alone, before decoding. Limits above Pillow's own hard limit
    (2 x ``PIL.Image.MAX_IMAGE_PIXELS``, ~179 MP) also need that raised.
  * Truncated or corrupt files raise :class:`ImageLoadError` even if some other code set
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` (it is switched off for the load, then restored).
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from faceeditor.core.errors import ImageLoadError
from faceeditor.io import _convert, _meta

DEFAULT_MAX_PIXELS = 100_000_000
"""Largest image (width x height) :func:`load_image` decodes unless told otherwise."""

WHITE = (255, 255, 255)

# Pillow format IDs tried when opening (MPO, multi-picture JPEGs from phones, opens as JPEG).
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")

_TRUNCATION_LOCK = threading.Lock()


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded photo and the metadata needed to save an edit of it faithfully."""

    pixels: np.ndarray  # uint8 HxWx3 RGB, C-contiguous, upright
    alpha: np.ndarray | None  # uint8 HxW (upright) if the file has transparency, else None
    path: Path
    format: str  # Pillow format name: 'JPEG', 'PNG', 'WEBP', 'TIFF', 'BMP', 'GIF'
    original_mode: str  # Pillow mode of the file ('RGB', 'L', 'P', 'CMYK', 'I;16', ...)
    bit_depth: int  # bits per sample in the file (1, 8, 16, 32)
    exif_orientation: int  # 1..8 as stored in the file (already applied to pixels)
    icc_profile: bytes | None  # RGB ICC profile of the pixels, None = sRGB
    exif: bytes | None  # EXIF (b"Exif\0\0" + TIFF data) with orientation reset to 1
    jpeg_quality: int | None  # estimated IJG quality for JPEGs, else None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the upright pixels."""
        return self.pixels.shape[1], self.pixels.shape[0]


@contextmanager
def _strict_truncation() -> Iterator[None]:
    """Make Pillow raise on truncated data for the duration, restoring any global override."""
    if not ImageFile.LOAD_TRUNCATED_IMAGES:
        yield
        return
    with _TRUNCATION_LOCK:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = True


def _check_file(path: Path) -> None:
    """Raise ImageLoadError for missing paths, folders and empty files."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageLoadError(path, "no such file") from None
    except OSError as exc:
        raise ImageLoadError(path, f"cannot access file ({exc.strerror or exc})") from None
    if path.is_dir():
        raise ImageLoadError(path, "is a folder, not an image file")
    if st.st_size == 0:
        raise ImageLoadError(path, "file is empty")


def _check_size(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageLoadError(path, f"image has no pixels ({w}x{h})")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageLoadError(
            path,
            f"image is {w}x{h} ({w * h / 1e6:.0f} megapixels), over the limit of "
            f"{max_pixels / 1e6:g} megapixels; refusing to decode it (raise max_pixels if it is genuine)",
        )


def _decode(path: Path, im: Image.Image, max_pixels: int | None, background: tuple[int, int, int] | None) -> LoadedImage:
    """Turn an opened (not yet loaded) Pillow image into a LoadedImage."""
    _check_size(path, im.size, max_pixels)
    fmt = "JPEG" if im.format == "MPO" else str(im.format)
    mode, depth = im.mode, _convert.bit_depth(im)
    raw_icc = im.info.get("icc_profile") or None
    quality = _meta.jpeg_quality(im) if fmt == "JPEG" else None
    if fmt != "TIFF":
        im.load()  # decode errors must surface here, not inside read_exif (PNG loads to find eXIf)
    exif = _meta.read_exif(im)  # TIFF: before load, which applies and drops the orientation tag
    orient = _meta.orientation(exif)
    rgb, alpha = _convert.to_rgb_alpha(im, path, raw_icc, depth, orient)
    if alpha is not None and background is not None:
        rgb = _convert.composite(rgb, alpha, background)
    rgb = np.require(rgb, np.uint8, ["C", "W", "O"])
    if alpha is not None:
        alpha = np.require(alpha, np.uint8, ["C", "W", "O"])
    return LoadedImage(
        pixels=rgb,
        alpha=alpha,
        path=path,
        format=fmt,
        original_mode=mode,
        bit_depth=depth,
        exif_orientation=orient,
        icc_profile=raw_icc if _meta.icc_colour_space(raw_icc) == "RGB" else None,
        exif=_meta.upright_exif_bytes(exif, is_tiff=fmt == "TIFF"),
        jpeg_quality=quality,
    )


def load_image(
    path: str | os.PathLike[str],
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    *,
    background: tuple[int, int, int] | None = WHITE,
) -> LoadedImage:
    """Read a JPEG/PNG/WebP/TIFF/BMP (or GIF) photo; see the module docstring for the policy.

    Raises :class:`ImageLoadError` (a ``FaceEditorError`` naming the file) for missing, empty,
    non-image, truncated, corrupt or oversized files.
    """
    p = Path(path)
    _check_file(p)
    try:
        with _strict_truncation(), Image.open(p, formats=SUPPORTED_FORMATS) as im:
            return _decode(p, im, max_pixels, background)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(p, f"image is too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        names = ", ".join(SUPPORTED_FORMATS)
        raise ImageLoadError(p, f"not a recognised image file (supported: {names})") from None
    except PermissionError:
        raise ImageLoadError(p, "permission denied") from None
    except MemoryError:
        raise ImageLoadError(p, "not enough memory to decode this image") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError) as exc:
        raise ImageLoadError(p, f"file is truncated or corrupt ({exc})") from None


def load_rgb(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Upright uint8 HxWx3 RGB pixels of an image file (transparency composited on white)."""
    return load_image(path, max_pixels).pixels
