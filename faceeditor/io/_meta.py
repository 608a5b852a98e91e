"""Image metadata: EXIF orientation, EXIF rewriting, ICC colour space, JPEG quality estimate."""

from __future__ import annotations

import numpy as np
from PIL import Image

ORIENTATION_TAG = 0x0112

# TIFF tags that describe a file's pixel layout, not the photo: dropped from a TIFF's "EXIF"
# so that it can be written into another file without lying about that file.
_TIFF_STRUCTURAL_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324,
     325, 330, 338, 339, 340, 341, 347, 513, 514, 530, 531, 532, 34675}
)

# IJG (libjpeg) standard luminance quantization table, natural (row-major) order.
_IJG_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.float64,
)


def _ijg_tables() -> np.ndarray:
    """(100, 64) luminance tables libjpeg writes for quality 1..100."""
    q = np.arange(1, 101, dtype=np.float64)
    scale = np.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    return np.clip(np.floor((_IJG_LUMA[None] * scale[:, None] + 50.0) / 100.0), 1, 255)


_IJG_TABLES = _ijg_tables()


def read_exif(im: Image.Image) -> Image.Exif | None:
    """The file's EXIF, or None if absent or unreadable (a bad EXIF never blocks loading)."""
    try:
        exif = im.getexif()
    except Exception:  # noqa: BLE001 - malformed EXIF: treat as absent
        return None
    return exif if len(exif) else None


def orientation(exif: Image.Exif | None) -> int:
    """EXIF orientation 1..8; 1 when absent or invalid."""
    if exif is None:
        return 1
    try:
        value = int(exif.get(ORIENTATION_TAG, 1))
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(a: np.ndarray, value: int) -> np.ndarray:
    """Turn stored pixels (H,W[,C]) upright for EXIF orientation ``value`` (as viewers do)."""
    if value == 2:
        a = a[:, ::-1]
    elif value == 3:
        a = a[::-1, ::-1]
    elif value == 4:
        a = a[::-1]
    elif value == 5:
        a = a.swapaxes(0, 1)
    elif value == 6:
        a = np.rot90(a, k=-1)
    elif value == 7:
        a = a[::-1, ::-1].swapaxes(0, 1)
    elif value == 8:
        a = np.rot90(a, k=1)
    return np.ascontiguousarray(a)


def upright_exif_bytes(exif: Image.Exif | None, is_tiff: bool) -> bytes | None:
    """EXIF as APP1 payload bytes (``b"Exif\\0\\0..."``) with orientation set to 1, or None."""
    if exif is None:
        return None
    try:
        if is_tiff:
            for tag in _TIFF_STRUCTURAL_TAGS & set(exif.keys()):
                del exif[tag]
        if ORIENTATION_TAG in exif:
            exif[ORIENTATION_TAG] = 1
        return exif.tobytes() if len(exif) else None
    except Exception:  # noqa: BLE001 - unwritable EXIF: drop it rather than fail the load
        return None


def normalized_exif(data: bytes | None) -> Image.Exif | None:
    """Parse EXIF bytes for writing, forcing orientation 1 (pixels are always saved upright)."""
    if not data:
        return None
    exif = Image.Exif()
    try:
        exif.load(data)
    except Exception:  # noqa: BLE001
        return None
    if ORIENTATION_TAG in exif:
        exif[ORIENTATION_TAG] = 1
    return exif if len(exif) else None


def icc_colour_space(icc: bytes | None) -> str | None:
    """The ICC profile's data colour space ('RGB', 'GRAY', 'CMYK', ...), or None."""
    if not icc or len(icc) < 20:
        return None
    return icc[16:20].decode("ascii", "replace").strip()


def jpeg_quality(im: Image.Image) -> int | None:
    """Estimate the IJG quality (1..100) a JPEG was saved with, from its luminance table."""
    tables = getattr(im, "quantization", None)
    if not tables or 0 not in tables or len(tables[0]) != 64:
        return None
    table = np.asarray(tables[0], dtype=np.float64)
    err = np.abs(_IJG_TABLES - table[None]).mean(axis=1)
    return int(np.argmin(err)) + 1
