"""Relighting by a luminance shading ratio: ``photo * tint * S_new(n') / S_old(n)``.

Under the Lambertian SH model (:mod:`faceeditor.render.sh`) a photo pixel is ``albedo * S_old(n)``;
the edited photo should show ``albedo * S_new(n')``, ``n'`` the (possibly rotated) normal of the
same surface point. The albedo cancels in the ratio, so the photo's own detail (pores, make-up,
stubble) survives the relight. The ratio multiplies the photo's pixel values directly: that is
the image formation model the fitter inverts and the renderer draws (pixel = albedo x shading, no
display gamma), so the fitted SH is in the photo's value scale; :data:`GAMMA` is the one place to
change if the fit ever moves to linear light.

**Colour-true.** One light has one colour (seed paper 001: a directional light per image with a
position and a colour). The ratio is taken on *luminance* shading (the channel mean of the SH with
the light's tint divided out, :func:`light_change`) and multiplies the three channels alike, so a
change of direction or intensity changes brightness and shading, never hue. The only colour change
is the tint ``colour(sh_new) / colour(sh_fit)`` (:func:`faceeditor.edit.light.sh_colour`), exactly
(1,1,1) unless the user picked a light colour (:func:`faceeditor.edit.geometry.target_sh`).

Guards, symmetric so that relighting there and back is the identity up to rounding:

* both shadings are floored softly, ``(s^4 + f^4)^(1/4)`` with ``f`` = :data:`SHADE_FLOOR` times the
  light's mean level on a face: in the photo's shadows the fitted shading is near zero and a raw
  ratio would amplify sensor noise (glowing dots under the nose and lip); new shadows never go black;
* ``|log ratio|`` is compressed smoothly above :data:`LOG_KNEE` toward :data:`LOG_LIMIT` (no hard
  clamp edge where a ratio saturates);
* the part of the ratio that a pose or expression edit adds by turning the normals,
  ``S_new(n') / S_new(n)``, brightens at most toward :data:`MOVED_BRIGHTEN_LIMIT`: the photo's dark
  pixels there are as often a beard, hair over a cheek or a jaw line (albedo) as shade, and a ratio
  that lifts them x2 paints orange streaks (along the jaw of an opened mouth, over the far cheek at
  yaw 30); darkening, and the light's own change, keep the full range. Against real photos (200
  LFW reenactment pairs) the limit costs 0.05 dB at |dyaw| >= 20 (x1.35: 0.12 dB; none: the streaks);
* brightening rolls off toward white above a knee on each pixel's *largest* channel, all channels
  scaled alike (:func:`apply_gain`): a lit cheek neither clips to a flat patch nor changes hue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from faceeditor.edit.light import front_basis, front_mean, sh_colour
from faceeditor.render.sh import SH_CONSTS

SHADE_FLOOR = 0.2  # soft floor of both shadings, times the light's mean shading on a face
LOG_LIMIT = math.log(2.7)  # |log ratio| never exceeds this: at most x2.7 brighter or darker
LOG_KNEE = 0.6 * LOG_LIMIT  # below it (x1.81) the log ratio is exact; above it compressed toward LOG_LIMIT
TINT_EPS = 1e-5  # tints closer than this to (1,1,1) are exactly (1,1,1)
KNEE = 0.8  # a brightened pixel whose largest channel passes max(KNEE, original) rolls off toward CEILING
CEILING = 0.98  # brightening never goes past this (or past the original value, if brighter)
GAMMA = 1.0  # exponent between the shading model's space and pixel values (see above)
MOVED_BRIGHTEN_LIMIT = math.log(1.6)  # most brightening a pose / expression edit adds by turning the normals


@dataclass(frozen=True)
class LightChange:
    """The change from the fitted to the target light, split into luminance and colour."""

    lum_old: np.ndarray  # (9,) luminance SH of the fitted light
    lum_new: np.ndarray  # (9,) luminance SH of the target light, its tint divided out
    tint: np.ndarray  # (3,) colour factor (exactly ones unless the light's colour changed)
    floor_old: float  # soft floor of S_old
    floor_new: float  # soft floor of S_new

    @property
    def tinted(self) -> bool:
        return bool(np.any(self.tint != 1.0))


def light_change(sh_fit: np.ndarray, sh_new: np.ndarray) -> LightChange:
    """Split ``sh_fit`` -> ``sh_new`` (9,3 each) into a luminance change and a tint:
    ``tint = colour(sh_new) / colour(sh_fit)`` (mean of ``tint * colour(sh_fit)`` = 1),
    ``lum = (sh / tint).mean(channels)``; floors :data:`SHADE_FLOOR` x each light's mean level."""
    old = np.asarray(sh_fit, np.float64).reshape(9, 3)
    new = np.asarray(sh_new, np.float64).reshape(9, 3)
    basis = front_basis()
    col_old = sh_colour(old, basis)
    tint = sh_colour(new, basis) / col_old
    tint = tint / float(np.mean(tint * col_old))
    if np.abs(tint - 1.0).max() < TINT_EPS:
        tint = np.ones(3)
    lum_old, lum_new = old.mean(1), (new / tint[None]).mean(1)
    floor_old = SHADE_FLOOR * max(float(front_mean(lum_old, basis)), 1e-3)
    floor_new = SHADE_FLOOR * max(float(front_mean(lum_new, basis)), 1e-3)
    return LightChange(lum_old, lum_new, tint, floor_old, floor_new)


def soft_limit(log_ratio: np.ndarray) -> np.ndarray:
    """Exact below :data:`LOG_KNEE` in magnitude, then ``knee + (limit - knee) tanh(excess / (limit - knee))``
    (slope 1 at the knee, asymptote :data:`LOG_LIMIT`); odd, so darkening and brightening match."""
    a = np.abs(log_ratio)
    room = LOG_LIMIT - LOG_KNEE
    over = LOG_KNEE + room * np.tanh((a - LOG_KNEE) / room)
    return np.where(a > LOG_KNEE, np.sign(log_ratio) * over, log_ratio).astype(np.float32)


def irradiance_matrix(lum: np.ndarray) -> np.ndarray:
    """The symmetric 4x4 ``M`` with ``E(n) = (n, 1)^T M (n, 1)`` for SH irradiance ``lum`` (9,) in the
    basis of :mod:`faceeditor.render.sh` (Ramamoorthi & Hanrahan 2001, eq. 12: irradiance as a
    quadratic form in the normal)."""
    c0, c1, c2, c20, c22 = SH_CONSTS
    L = np.asarray(lum, np.float64)
    M = np.zeros((4, 4))
    M[0, 0], M[1, 1], M[2, 2] = c22 * L[8], -c22 * L[8], 3.0 * c20 * L[6]
    M[3, 3] = c0 * L[0] - c20 * L[6]
    M[0, 1] = M[1, 0] = 0.5 * c2 * L[4]  # xy
    M[1, 2] = M[2, 1] = 0.5 * c2 * L[5]  # yz
    M[0, 2] = M[2, 0] = 0.5 * c2 * L[7]  # xz
    M[0, 3] = M[3, 0] = 0.5 * c1 * L[3]  # x
    M[1, 3] = M[3, 1] = 0.5 * c1 * L[1]  # y
    M[2, 3] = M[3, 2] = 0.5 * c1 * L[2]  # z
    return M


def shading(normals: np.ndarray, lum: np.ndarray) -> np.ndarray:
    """Luminance irradiance of unit camera-space ``normals`` (...,3) under SH ``lum`` (9,): (...)."""
    M = irradiance_matrix(lum).astype(np.float32)
    n = np.asarray(normals, np.float32)
    return ((n @ M[:3, :3]) * n).sum(-1) + 2.0 * (n @ M[:3, 3]) + M[3, 3]


def log_ratio(n_old: np.ndarray, n_new: np.ndarray, change: LightChange) -> np.ndarray:
    """``log(S_new(n_new) / S_old(n_old))`` on luminance, soft floors and soft limit applied (...,);
    the share of the normal's move, ``log(S_new(n_new) / S_new(n_old))``, brightens at most
    :data:`MOVED_BRIGHTEN_LIMIT` (the module docstring's guards)."""
    old = _soft_floor(shading(n_old, change.lum_old), change.floor_old)
    turned = _soft_floor(shading(n_old, change.lum_new), change.floor_new)  # the new light, the old normal
    moved = _soft_floor(shading(n_new, change.lum_new), change.floor_new) - turned  # the normal's share
    moved = np.where(moved > 0, MOVED_BRIGHTEN_LIMIT * np.tanh(moved / MOVED_BRIGHTEN_LIMIT), moved)
    return soft_limit(turned - old + moved)


def _soft_floor(s: np.ndarray, floor: float) -> np.ndarray:
    """``log((max(s, 0)^4 + floor^4)^(1/4))``: ``log s`` well above the floor, ``log floor`` at 0 and below."""
    return 0.25 * np.log(np.power(np.maximum(s, 0.0), 4) + floor**4)


def gain_map(log_ratio_map: np.ndarray, weight: np.ndarray, tint: np.ndarray) -> np.ndarray:
    """(H,W,3) multiplicative gain on pixel values: ``exp(weight * L / GAMMA) * tint ** weight``
    for a log shading ratio ``L`` (H,W) applied with ``weight`` (H,W) in [0,1] (1 = fully relit)."""
    g = np.exp(weight * log_ratio_map * (1.0 / GAMMA)).astype(np.float32)
    out = np.repeat(g[..., None], 3, axis=2)
    if np.any(tint != 1.0):
        out *= np.exp(weight[..., None] * np.log(np.asarray(tint, np.float32))[None, None, :])
    return out


def apply_gain_u8(tile: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """uint8 ``tile`` (H,W,3) times ``gain`` (H,W,3 float32), rounded: :func:`apply_gain` in the
    8-bit domain. One saturating ``cv2.multiply`` does the bulk; only the pixels it brightened
    above the knee (a few, usually) are redone in float with the roll-off."""
    tile = np.ascontiguousarray(tile)
    out = cv2.multiply(tile, gain, dtype=cv2.CV_8U)
    over = (out.max(2) > KNEE * 255.0) & (out > tile).any(2)
    n = int(np.count_nonzero(over))
    if n == 0:
        return out
    rows = np.flatnonzero(over.any(axis=1))
    cols = np.flatnonzero(over.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if n > 0.05 * (r1 - r0) * (c1 - c0):  # dense highlights: their bounding box in float
        x = torch.from_numpy(np.ascontiguousarray(tile[r0:r1, c0:c1])).float().mul_(1.0 / 255.0)
        y = apply_gain(x, torch.from_numpy(np.ascontiguousarray(gain[r0:r1, c0:c1])))
        out[r0:r1, c0:c1] = y.mul_(255.0).add_(0.5).clamp_(0.0, 255.0).to(torch.uint8).numpy()
        return out
    idx = np.nonzero(over)
    x = torch.from_numpy(tile[idx].astype(np.float32) / 255.0)
    y = apply_gain(x, torch.from_numpy(np.ascontiguousarray(gain[idx])))
    out[idx] = np.clip(y.numpy() * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def apply_gain(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """``x`` float in [0,1] (...,3) times ``gain`` (same shape) with a hue-true highlight roll-off.

    ``y = x * gain``; where a pixel's largest channel ``M = max(y)`` passes ``k = max(KNEE, max(x))``
    it is compressed to ``k + r (1 - exp(-(M - k) / r))`` with ``r = max(CEILING - k, 0)`` (slope 1
    at the knee, asymptote ``max(CEILING, max(x))``) and *all* channels are scaled by the same
    factor: brightened skin keeps its gradations and its hue instead of clipping to a flat,
    yellowed patch. Since ``k >= max(x)``, a gain of 1 (or any darkening) leaves ``x`` as it was.
    """
    y = x * gain
    m_y = y.amax(-1)
    k = x.amax(-1).clamp(min=KNEE)
    over = m_y > k
    if bool(over.any()):
        mo, ko = m_y[over], k[over]
        room = (CEILING - ko).clamp(min=0.0)
        t = (mo - ko).div(room.clamp(min=1e-4))
        target = ko + room * (1.0 - torch.exp(-t))
        y[over] = y[over] * (target / mo.clamp(min=1e-6))[:, None]
    return y
