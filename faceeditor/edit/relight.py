"""Relighting by shading ratio: ``photo * S_new(n_edited) / S_old(n_fitted)`` on the skin.

Under the Lambertian SH model a photo pixel is ``albedo * S_old(n)``; the edited photo should
show ``albedo * S_new(n')`` where ``n'`` is the (possibly rotated) normal of the same surface
point. The albedo cancels in the ratio, so the photo's own detail (pores, make-up, stubble)
survives the relight. The ratio multiplies the photo's pixel values directly: that is the image
formation model the fitter inverts and the renderer draws (:mod:`faceeditor.render.face_render`:
pixel = albedo x shading, no display gamma), so the fitted SH is in the photo's value scale.
:data:`GAMMA` is the one place to change if the fit ever moves to linear light.

Guards (all documented constants):

* ``S_old`` is floored at :data:`SHADOW_FLOOR` times the light's mean level: in the photo's
  shadows the fitted shading is near zero and a raw ratio would amplify sensor noise;
* the ratio is clamped to [:data:`RATIO_MIN`, :data:`RATIO_MAX`];
* brightening rolls off toward white above a knee (:func:`apply_gain`), so a lit cheek never
  clips into a flat blown patch; a gain of 1 (or any darkening) changes nothing.

The ratio is used on the skin only (a feathered mask of the face material), elsewhere 1.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from faceeditor.render.sh import SH_CONSTS, sh_shading

SHADOW_FLOOR = 0.25
RATIO_MIN = 0.3
RATIO_MAX = 2.5
KNEE = 0.8  # brightened values above max(KNEE, original) roll off toward CEILING
CEILING = 0.98  # brightening never goes past this (or past the original value, if brighter)
GAMMA = 1.0  # exponent between the shading model's space and pixel values (see above)


def shading_ratio(n_src: torch.Tensor, n_dst: torch.Tensor, sh_old: np.ndarray, sh_new: np.ndarray) -> torch.Tensor:
    """Per-pixel RGB ratio ``S_new(n_dst) / max(S_old(n_src), floor)`` (N,3), clamped."""
    old = torch.as_tensor(np.asarray(sh_old, np.float32).reshape(9, 3), device=n_src.device)
    new = torch.as_tensor(np.asarray(sh_new, np.float32).reshape(9, 3), device=n_src.device)
    N = n_src.shape[0]
    s0 = sh_shading(n_src, old[None].expand(N, 9, 3))
    s1 = sh_shading(n_dst, new[None].expand(N, 9, 3))
    level = (old[0] * SH_CONSTS[0]).clamp(min=1e-3)  # mean irradiance over the sphere, per channel
    r = s1.clamp(min=0.0) / torch.maximum(s0, SHADOW_FLOOR * level[None])
    return r.clamp(RATIO_MIN, RATIO_MAX)


def ratio_to_gain(ratio: np.ndarray) -> np.ndarray:
    """Shading ratio -> multiplicative gain on pixel values (``ratio ** (1/GAMMA)``)."""
    if GAMMA == 1.0:
        return ratio.astype(np.float32, copy=False)
    return np.power(np.maximum(ratio, 1e-6), 1.0 / GAMMA).astype(np.float32)



def apply_gain_u8(tile: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """uint8 ``tile`` (H,W,3) times ``gain`` (H,W,3 float32), rounded: :func:`apply_gain` in the
    8-bit domain. One saturating ``cv2.multiply`` does the bulk; only the pixels it brightened
    above the knee (a few, usually) are redone in float with the roll-off."""
    tile = np.ascontiguousarray(tile)
    out = cv2.multiply(tile, gain, dtype=cv2.CV_8U)
    over = (out > KNEE * 255.0) & (out > tile)
    n = int(np.count_nonzero(over))
    if n == 0:
        return out
    rows = np.flatnonzero(over.any(axis=(1, 2)))
    cols = np.flatnonzero(over.any(axis=(0, 2)))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if n > 0.05 * (r1 - r0) * (c1 - c0) * 3:  # dense highlights: their bounding box in float
        x = torch.from_numpy(np.ascontiguousarray(tile[r0:r1, c0:c1])).float().mul_(1.0 / 255.0)
        y = apply_gain(x, torch.from_numpy(np.ascontiguousarray(gain[r0:r1, c0:c1])))
        out[r0:r1, c0:c1] = y.mul_(255.0).add_(0.5).clamp_(0.0, 255.0).to(torch.uint8).numpy()
        return out
    idx = np.nonzero(over)
    x = torch.from_numpy(tile[idx].astype(np.float32) / 255.0)
    y = apply_gain(x, torch.from_numpy(gain[idx]))
    out[idx] = np.clip(y.numpy() * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def apply_gain(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """``x`` float in [0,1] times ``gain`` (same shape) with a highlight roll-off.

    ``y = x * gain``; above the knee ``k = max(KNEE, x)`` the excess is compressed as
    ``k + r (1 - exp(-(y - k) / r))`` with ``r = max(CEILING - k, 0)`` (slope 1 at the knee,
    asymptote ``max(CEILING, x)``): brightened skin keeps its gradations instead of clipping to a
    flat white patch. Since ``k >= x``, a gain of 1 (or any darkening) leaves ``x`` exactly as it was.
    """
    y = x * gain
    over = (y > KNEE) & (y > x)  # only brightened values above the knee change below
    if bool(over.any()):
        xs, ys = x[over], y[over]
        k = xs.clamp(min=KNEE)
        room = (CEILING - k).clamp_(min=0.0)
        t = (ys - k).clamp_(min=0.0).div_(room.clamp(min=1e-4))
        y[over] = torch.minimum(ys, k).add_(room.mul_(1.0 - torch.exp(-t)))
    return y
