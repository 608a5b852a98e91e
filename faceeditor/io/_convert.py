"""Decoded Pillow images of any mode -> uint8 RGB (+ alpha) numpy arrays."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from faceeditor.io._meta import apply_orientation, icc_colour_space, read_exif
from faceeditor.io._meta import orientation as exif_orientation

Alpha = np.ndarray | None

# Modes converted by Pillow before splitting (exact conversions).
_PLAIN_TARGET = {"PA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB", "La": "LA", "1": "L"}


def _rawmode(im: Image.Image) -> str:
    """The decoder's raw mode of the first tile ('RGB;16B', ...), '' if unknown."""
    tile = getattr(im, "tile", None) or []
    if not tile:
        return ""
    args = tile[0].args if hasattr(tile[0], "args") else tile[0][3]
    if isinstance(args, tuple) and args:
        args = args[0]
    return args if isinstance(args, str) else ""


def bit_depth(im: Image.Image) -> int:
    """Bits per sample of the file (call before ``load()``, which clears the tile list)."""
    if im.mode.startswith("I;16") or ";16" in _rawmode(im):
        return 16
    bits = getattr(im, "tag_v2", {}).get(258) if im.format == "TIFF" else None
    if isinstance(bits, tuple | list) and bits:
        return int(max(bits))
    if isinstance(bits, int):
        return bits
    return {"1": 1, "I": 32, "F": 32}.get(im.mode, 8)


def scale16(a: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255 with rounding (65535->255, 32768->128), never clipping."""
    a = np.clip(a.astype(np.int64), 0, 65535)
    return ((a * 255 + 32767) // 65535).astype(np.uint8)


def _gray_rgb(g: np.ndarray) -> np.ndarray:
    return np.repeat(g[:, :, None], 3, axis=2)


def _wide_gray(im: Image.Image) -> np.ndarray:
    """I;16*, I and F modes -> uint8 gray. I is taken as 16-bit data, F as [0,1]."""
    a = np.asarray(im)
    if im.mode == "F":
        return np.round(np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0).astype(np.uint8)
    return scale16(a)


def _decode16_cv2(path: Path) -> np.ndarray | None:
    """16-bit samples of a PNG/TIFF via OpenCV as RGB(A)/gray(+A) uint16, or None."""
    try:
        import cv2
    except ImportError:
        return None
    raw = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16:
        return None
    if raw.ndim == 3 and raw.shape[2] in (3, 4):
        raw = np.concatenate([raw[:, :, 2::-1], raw[:, :, 3:]], axis=2)  # BGR(A) -> RGB(A)
    return raw


def _split16(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint16 gray / gray+A / RGB / RGBA -> (RGB, alpha or None), still 16-bit."""
    if raw.ndim == 2:
        return np.repeat(raw[:, :, None], 3, axis=2), None
    color = raw[:, :, :1].repeat(3, axis=2) if raw.shape[2] <= 2 else raw[:, :, :3]
    return color, (raw[:, :, -1] if raw.shape[2] in (2, 4) else None)


def _precise16(path: Path, orientation: int, rgb: np.ndarray, alpha: Alpha) -> tuple[np.ndarray, Alpha] | None:
    """Properly rounded 8-bit version of Pillow's upright ``rgb``/``alpha`` (which hold only the
    high byte of each 16-bit sample), or None. OpenCV may or may not have applied the EXIF
    orientation (it does for TIFF); the candidate whose high bytes equal Pillow's wins."""
    raw = _decode16_cv2(path)
    if raw is None:
        return None
    candidates = [raw] if orientation == 1 else [raw, apply_orientation(raw, orientation)]
    for cand in candidates:
        c_rgb, c_alpha = _split16(cand)
        if c_rgb.shape != rgb.shape or (c_alpha is None) != (alpha is None):
            continue
        if not np.array_equal(c_rgb >> 8, rgb):
            continue
        if c_alpha is not None and not np.array_equal(c_alpha >> 8, alpha):
            continue
        return scale16(c_rgb), (None if c_alpha is None else scale16(c_alpha))
    return None


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """CMYK -> RGB through the embedded CMYK profile when there is one, else Pillow's formula."""
    if icc_colour_space(icc) == "CMYK":
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            out = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            if out is not None:
                return out
        except Exception:  # noqa: BLE001 - broken profile: fall back to the plain formula
            pass
    return im.convert("RGB")


def _split(im: Image.Image, icc: bytes | None) -> tuple[np.ndarray, Alpha]:
    """Any loaded Pillow mode -> (uint8 HxWx3 RGB, uint8 HxW alpha or None)."""
    if im.mode == "CMYK":
        im = _cmyk_to_rgb(im, icc)
    elif im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in _PLAIN_TARGET:
        im = im.convert(_PLAIN_TARGET[im.mode])
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        return _gray_rgb(_wide_gray(im)), None
    if mode == "L":
        return _gray_rgb(np.asarray(im)), None
    if mode == "LA":
        a = np.asarray(im)
        return _gray_rgb(a[:, :, 0]), a[:, :, 1].copy()
    if mode == "RGBA":
        a = np.asarray(im)
        return np.ascontiguousarray(a[:, :, :3]), a[:, :, 3].copy()
    if mode != "RGB":
        im = im.convert("RGB")  # YCbCr, LAB, HSV, ...
    return np.asarray(im), None


def _orient(a: Alpha, orientation: int) -> Alpha:
    return None if a is None else apply_orientation(a, orientation)


def to_rgb_alpha(
    im: Image.Image, path: Path, icc: bytes | None, depth: int, orientation: int
) -> tuple[np.ndarray, Alpha]:
    """Decode ``im`` (raises on truncated/corrupt data) into upright RGB and optional alpha.

    ``orientation`` is the file's EXIF orientation read before loading; Pillow applies it
    itself to TIFFs on load (detected: the tag is gone afterwards), everything else here.
    """
    im.load()
    done_by_pillow = orientation != 1 and exif_orientation(read_exif(im)) == 1
    mode = im.mode
    rgb, alpha = _split(im, icc)
    if not done_by_pillow:
        rgb, alpha = apply_orientation(rgb, orientation), _orient(alpha, orientation)
    if depth == 16 and mode in ("RGB", "RGBA", "LA"):
        # Pillow keeps only the high byte of 16-bit colour samples; round properly instead.
        precise = _precise16(path, orientation, rgb, alpha)
        if precise is not None:
            return precise
    return rgb, alpha


def composite(rgb: np.ndarray, alpha: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """Alpha-blend RGB over a solid background colour, with rounding."""
    a = alpha.astype(np.uint32)[:, :, None]
    bg = np.asarray(background, dtype=np.uint32)[None, None, :]
    out = (rgb.astype(np.uint32) * a + bg * (255 - a) + 127) // 255
    return out.astype(np.uint8)
