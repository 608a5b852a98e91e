"""Tiny test images for the faceeditor.io tests, generated in memory (fixture builders shared by
``test_io_load.py`` and ``test_io_save.py``)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

W, H = 32, 24



def reference(w: int = W, h: int = H) -> np.ndarray:
    """Smooth, asymmetric RGB image: R rises along x, G along y, so all 8 flips/turns differ."""
    x = np.arange(w)[None, :].repeat(h, 0)
    y = np.arange(h)[:, None].repeat(w, 1)
    return np.dstack([20 + x * 6, 30 + y * 8, 200 - (x + y) * 2]).astype(np.uint8)


def sRGB_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def write_png16(path: Path, a: np.ndarray, exif: bytes | None = None) -> Path:
    """Minimal 16-bit PNG writer (gray, gray+alpha, RGB, RGBA), optional eXIf chunk."""
    h, w = a.shape[:2]
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[1 if a.ndim == 2 else a.shape[2]]
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))
    chunks = [_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))]
    if exif:
        chunks.append(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    chunks += [_chunk(b"IDAT", zlib.compress(raw)), _chunk(b"IEND", b"")]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(chunks))
    return path


def write_tiff16_rgb(path: Path, a: np.ndarray, orientation: int = 1) -> Path:
    """Minimal uncompressed little-endian 16-bit RGB TIFF writer with an Orientation tag."""
    h, w, _ = a.shape
    data = a.astype("<u2").tobytes()
    n = 11
    bps_off = 8 + 2 + 12 * n + 4
    data_off = bps_off + 6
    tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, bps_off), (259, 3, 1, 1), (262, 3, 1, 2),
            (273, 4, 1, data_off), (274, 3, 1, orientation), (277, 3, 1, 3), (278, 3, 1, h),
            (279, 4, 1, len(data)), (284, 3, 1, 1)]
    ifd = struct.pack("<H", n)
    for tag, typ, count, val in tags:
        packed = struct.pack("<HH", val, 0) if typ == 3 and count == 1 else struct.pack("<I", val)
        ifd += struct.pack("<HHI", tag, typ, count) + packed
    body = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    path.write_bytes(body + struct.pack("<HHH", 16, 16, 16) + data)
    return path


def exif_with(orientation: int | None = None, make: str | None = None) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if make is not None:
        exif[0x010F] = make
    return exif


# Transpose that stores an upright image so that EXIF orientation o turns it back upright.
STORE_FOR = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def stored(ref: np.ndarray, orientation: int) -> Image.Image:
    im = Image.fromarray(ref)
    method = STORE_FOR[orientation]
    return im if method is None else im.transpose(method)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
