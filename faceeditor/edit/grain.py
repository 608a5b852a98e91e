"""Skin grain for the fill layer: the photo's own fine detail over skin the fill draws at large sizes.

The fill (:mod:`faceeditor.edit.fill_layer`) is drawn on a grid of at most
:data:`~faceeditor.edit.fill_layer.MAX_FILL_PX` pixels from a texture of a few hundred texels per
face; on a 2-5k px portrait it is upsampled 3-5x and reads as a smooth painted patch next to the
photo's pores, stubble and sensor grain (the far cheek of a Helen portrait turned 25 degrees). As a
compositor matches film grain, the detail that the fill's grid cannot hold is taken from the photo:
a square of frontal cheek skin (mediapipe's cheek centres, whichever patch has less edge energy, so
not hair or a face outline), high-passed at the fill grid's own scale (Gaussian sigma = half an
upsampled fill pixel: only frequencies the grid cannot represent), as a *relative* luminance detail
``L / blur(L) - 1`` (it multiplies the fill: the same grain in shade and light), synthesized into a
larger periodic tile with the same autocorrelation (:func:`spot_noise`; a mirror-tiled patch showed
kaleidoscope copies of its freckles) and laid over the filled skin.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceeditor.edit.skin_tone import LUMA

CHEEKS = (205, 425)  # mediapipe FaceMesh cheek centres (either side)
PATCH_HEAD_FRACTION = 0.1  # the patch's side, a fraction of the head size
PATCH_PX = (16, 192)  # ... within these bounds (output pixels)
SIGMA_HEAD_FRACTION = 0.015  # the high-pass keeps detail finer than this (Gaussian sigma, of the head size)
MIN_UPSAMPLE = 1.25  # fill layers upsampled less than this keep their own detail
MIN_PATCH_PX = 40  # smaller heads (patch sides) get no grain: a 16 px patch of a 250 px photo is JPEG
#                    blocks and a wrinkle, and its spot noise painted stripes over a far cheek (LFW)
TILE_PATCHES = 4  # the periodic grain tile is this many patch sides wide ...
TILE_MAX_PX = 512  # ... at most this many pixels
DETAIL_LIMIT = 0.35  # |relative detail| above this is clipped (specular glints, a stray hair)


@dataclass
class Grain:
    """The photo's fine skin detail and where one fill layer takes it."""

    patch: np.ndarray  # (N,N) float32 periodic relative luminance detail, zero mean (:func:`spot_noise`)
    skin: np.ndarray  # (grid_h, grid_w) float32 on the fill layer's grid: 1 where it fills skin


def measure(photo: np.ndarray, cheeks: np.ndarray, head_px: float, upsample: float) -> np.ndarray | None:
    """The grain tile (:func:`spot_noise`) of output-size ``photo`` at the better of the ``cheeks``
    ((2,2) output px), for a fill upsampled ``upsample`` times; None when the fill keeps its own
    detail (``upsample`` < :data:`MIN_UPSAMPLE`), the head is too small for a patch
    (:data:`MIN_PATCH_PX`) or no patch fits inside the photo."""
    side = int(np.clip(PATCH_HEAD_FRACTION * head_px, *PATCH_PX))
    if upsample < MIN_UPSAMPLE or side < MIN_PATCH_PX:
        return None
    sigma = max(0.5 * upsample, SIGMA_HEAD_FRACTION * head_px)
    H, W = photo.shape[:2]
    best, best_energy = None, np.inf
    for cx, cy in np.asarray(cheeks, np.float64).reshape(-1, 2):
        x0, y0 = round(cx - side / 2), round(cy - side / 2)
        if x0 < 0 or y0 < 0 or x0 + side > W or y0 + side > H:
            continue
        lum = photo[y0:y0 + side, x0:x0 + side].astype(np.float32) @ LUMA + 1.0
        detail = lum / cv2.GaussianBlur(lum, (0, 0), sigma) - 1.0
        coarse = cv2.GaussianBlur(lum, (0, 0), 2.0 * sigma)  # edges (hair, an outline), not grain
        energy = float(np.abs(np.diff(coarse, axis=0)).mean() + np.abs(np.diff(coarse, axis=1)).mean())
        if energy < best_energy:
            best, best_energy = detail, energy
    if best is None:
        return None
    return spot_noise(np.clip(best, -DETAIL_LIMIT, DETAIL_LIMIT), min(TILE_MAX_PX, TILE_PATCHES * side))


def spot_noise(patch: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """(size,size) float32 periodic Gaussian texture with the autocorrelation of ``patch`` (P,P):
    asymptotic discrete spot noise (Galerne, Gousseau & Morel 2011, eq. 3: the zero-mean patch,
    divided by sqrt(P^2), convolved with white noise), so a fill takes the photo's grain without
    copies of its spots or the mirror symmetry of a tiled patch."""
    p = patch.shape[0]
    texton = np.zeros((size, size), np.float64)
    texton[:p, :p] = (patch - patch.mean()) / p
    white = np.random.default_rng(seed).standard_normal((size, size))
    out = np.fft.irfft2(np.fft.rfft2(texton) * np.fft.rfft2(white), s=(size, size))
    return out.astype(np.float32)


def tiled(tile: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """(h,w) the periodic ``tile`` over the output rectangle [x0,x0+w) x [y0,y0+h)."""
    n = tile.shape[0]
    return tile[np.ix_(np.mod(np.arange(y0, y0 + h), n), np.mod(np.arange(x0, x0 + w), n))]


def apply(fill: np.ndarray, detail: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """uint8 ``fill`` (h,w,3) times ``1 + weight * detail`` (h,w each), rounded."""
    g = 1.0 + weight * detail
    return np.clip(fill.astype(np.float32) * g[..., None] + 0.5, 0, 255).astype(np.uint8)
