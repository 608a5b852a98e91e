"""The photo's skin colour as a function of its brightness, and recolouring by it.

Skin is not a grey surface under a white light: its shadows are redder and more saturated than its
highlights (light scattered under the skin comes back through more blood and melanin), and camera
tone curves and toned prints (sepia, warm grading) add to it. A relight or fill that only scales
brightness (``albedo x shading``, :mod:`faceeditor.edit.relight`) keeps each pixel's chromaticity:
a darkened lit cheek turns muddy grey-brown, a brightened shadow glows orange, and a texture
mirrored from the lit side into a shadow looks grey. :class:`SkinTone` holds the photo's own answer:
the chromaticity ``rgb / Y`` (``Y`` Rec. 709 luma) of its skin pixels as a straight-line trend over
their brightness (robust to the lips and brows among them), kept within the chromaticities the
skin shows;
:func:`recolour` gives a pixel the skin colour of its brightness, :func:`retone_u8` moves the
chromaticity of a pixel whose brightness an edit changed along that curve (only skin-like pixels:
hair, clothes and eyes keep theirs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec. 709 luma weights
BINS = 12  # brightness quantile bins of the skin samples
MIN_PIXELS = 120  # fewer skin samples: no tone curve (the caller keeps its colours)
MIN_LUMA = 0.02  # darker samples carry no colour
SIGMA_SPREADS = 2.0  # a pixel counts as skin by e^-1/2 this many median sample distances from the curve
SIGMA_RANGE = (0.03, 0.12)  # ... within these bounds (chromaticity units: rgb / luma)
MIN_CHROMA = 0.05  # smallest chromaticity channel of the curve
MIN_WHERE = 1.0 / 64.0  # ``where`` below this: the pixel is not retoned
MIN_LEVEL = int(MIN_LUMA * 256)  # 8-bit luma at or below which pixels carry no colour
RETONE_STRENGTH = 1.0  # fraction of the skin's chromaticity change a relit pixel takes
DIFFUSE_TOP = 0.75  # the curve is held constant above the luma of this quantile bin of the skin samples


@dataclass
class SkinTone:
    """The skin's chromaticity at each 8-bit luma level (rows have luma 1)."""

    lut: np.ndarray  # (256,3) float32
    sigma: float = 0.12  # chromaticity distance at which a pixel counts as skin by e^-1/2 (the samples' spread)


def measure(pixels: np.ndarray, bins: int = BINS) -> SkinTone | None:
    """The tone curve of skin samples ``pixels`` (N,3) float in [0,1]; None when too few."""
    px = np.asarray(pixels, np.float32).reshape(-1, 3)
    y = px @ LUMA
    keep = y > MIN_LUMA
    px, y = px[keep], y[keep]
    if len(px) < MIN_PIXELS:
        return None
    groups = np.array_split(np.argsort(y), bins)
    y_bin = np.array([np.median(y[g]) for g in groups], np.float32)
    c_bin = np.stack([np.median(px[g] / y[g, None], axis=0) for g in groups]).astype(np.float32)
    c_bin /= (c_bin @ LUMA)[:, None]
    spread = float(np.median(np.concatenate([np.linalg.norm(px[g] / y[g, None] - c_bin[k], axis=1)
                                             for k, g in enumerate(groups)])))
    # a straight line through the bins, fitted robustly (Theil-Sen): the trend from the highlights to
    # the shadows, not the bumps of lips, brows and nostrils, which are the darkest "skin" of a face
    i, j = np.triu_indices(len(y_bin), 1)
    dy = y_bin[j] - y_bin[i]
    ok = dy > 1e-4
    # held above the brightest diffuse skin: the top bins are speculars (paler), and a skin that
    # an edit lights more keeps its colour, it does not turn into a highlight (a turned cheek drawn
    # brighter than the photo's skin came out grey-pink)
    top = y_bin[min(len(y_bin) - 1, int(DIFFUSE_TOP * len(y_bin)))]
    levels = np.clip((np.arange(256, dtype=np.float32) + 0.5) / 256.0, y_bin[0], top)
    lut = np.empty((256, 3), np.float32)
    for c in range(3):
        slope = float(np.median((c_bin[j, c] - c_bin[i, c])[ok] / dy[ok])) if ok.any() else 0.0
        lut[:, c] = np.median(c_bin[:, c] - slope * y_bin) + slope * levels
    # skin chroma saturates toward the highlights (Barbara Esbin: red/luma 2.4 at luma 0.08, 1.2 at
    # 0.45, 1.03 at 0.83): the line overshoots there (red/luma 0.72, cyan), so it stays within
    # the range the bins (median of three neighbours, against a bin of lips or brows) span
    smooth = c_bin.copy()
    if len(c_bin) >= 3:
        smooth[1:-1] = np.median(np.stack([c_bin[:-2], c_bin[1:-1], c_bin[2:]]), axis=0)
    lut = np.clip(lut, smooth.min(0), smooth.max(0))
    lut = np.maximum(lut, MIN_CHROMA)  # a steep fit never reaches a zero channel (the ratio divides by it)
    lut /= (lut @ LUMA)[:, None]
    return SkinTone(lut, float(np.clip(SIGMA_SPREADS * spread, *SIGMA_RANGE)))


def _level(y: np.ndarray) -> np.ndarray:
    return np.clip(y * 256.0, 0, 255).astype(np.intp)


def _luma8(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of uint8 pixels (N,3) as 8-bit levels, in integers (54 + 183 + 19 = 256)."""
    x = rgb.astype(np.uint16)
    return ((54 * x[:, 0] + 183 * x[:, 1] + 19 * x[:, 2] + 128) >> 8).astype(np.intp)


def recolour(rgb: np.ndarray, tone: SkinTone) -> np.ndarray:
    """``rgb`` (...,3) float in [0,1] with each pixel's luma kept and the skin's chromaticity at it."""
    y = rgb @ LUMA
    return np.clip(y[..., None] * tone.lut[_level(y)], 0.0, 1.0).astype(np.float32)


def likeness(rgb: np.ndarray, tone: SkinTone) -> np.ndarray:
    """(...) float32 in [0,1]: how skin-like each pixel of ``rgb`` (...,3, float in [0,1]) is: a
    Gaussian (``tone.sigma``) of its chromaticity's distance to the skin's at its brightness; 0 for
    pixels too dark to carry a colour."""
    y = rgb @ LUMA
    near = _closeness(rgb / np.maximum(y, MIN_LUMA)[..., None], tone.lut[_level(y)], tone.sigma)
    return np.where(y > MIN_LUMA, near, 0.0).astype(np.float32)


def _closeness(chroma: np.ndarray, skin: np.ndarray, sigma: float) -> np.ndarray:
    """exp(-d^2 / 2 sigma^2) of the distance between chromaticities ``chroma`` and ``skin`` (...,3)."""
    return np.exp(-0.5 * ((chroma - skin) ** 2).sum(-1) / (sigma * sigma))


def retone_u8(before: np.ndarray, after: np.ndarray, tone: SkinTone, where: np.ndarray | None = None,
              strength: float = RETONE_STRENGTH) -> np.ndarray:
    """``after`` (H,W,3 uint8: ``before`` relit by a brightness gain) with each skin-like pixel's
    chromaticity moved by the skin's change between its old and new brightness:
    ``after * (1 + w (lut[Y_after] / lut[Y_before] - 1))``, ``w`` = how close ``before``'s
    chromaticity is to the skin's at its brightness (Gaussian, ``tone.sigma``) times ``strength``
    times ``where`` (H,W) in [0,1] if given (the face: white clothes look like a pale skin's
    highlights, and darkened they would turn peach). Only pixels whose 8-bit luma changed, under
    ``where``, are computed (a few ms per megapixel of face)."""
    flat_b, flat_a = before.reshape(-1, 3), after.reshape(-1, 3)
    sel = np.flatnonzero(where.reshape(-1) > MIN_WHERE) if where is not None else np.arange(len(flat_b))
    y0, y1 = _luma8(flat_b[sel]), _luma8(flat_a[sel])
    keep = (y0 != y1) & (y0 > MIN_LEVEL)
    sel, y0, y1 = sel[keep], y0[keep], y1[keep]
    if sel.size == 0:
        return after
    b = flat_b[sel].astype(np.float32)
    c0 = tone.lut[y0]
    w = strength * _closeness(b / y0[:, None].astype(np.float32), c0, tone.sigma)  # own chromaticity vs the skin's
    if where is not None:
        w *= where.reshape(-1)[sel]
    ratio = tone.lut[y1] / c0
    new = flat_a[sel].astype(np.float32) * (1.0 + w[:, None] * (ratio - 1.0))
    out = after.copy()
    out.reshape(-1, 3)[sel] = np.clip(new + 0.5, 0.0, 255.0).astype(np.uint8)
    return out
