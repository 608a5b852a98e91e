"""The transformation map: how much of the head's motion each pixel of the photo follows.

LiftedGAN (``../shared/papers/002_...txt``, eq. 1) moves each pixel by
``p_new = (1 - T) p_old + T p_tgt`` with a transformation map ``T`` that is 1 on the face and
0 at the image border, so the face turns while the background stays, without separating
foreground from background. We do the same with a *backward* flow (output pixel -> photo
position), built in two steps on the work grid:

1. **Extension.** Inside the edited head's silhouette the flow comes from the mesh
   correspondence. Outside it is unknown; :func:`extend_outside` interpolates the flow *on the
   silhouette's inner rim* outward with :func:`push_pull` (pull-push interpolation of Gortler
   et al.'s Lumigraph: a pyramid of coverage-weighted averages, filled coarse-to-fine). Inside,
   the values stay exact; just outside, they continue the values at the boundary, so the warp
   has no seam or tear at the silhouette (hair, ears and the collar stretch instead of
   splitting from the face). Only the rim feeds the extension: near a silhouette the surface
   is foreshortened and moves much less than the face behind it, and averaging the interior
   would put a step right outside the outline.
2. **Falloff.** ``T`` (:func:`transformation_map`) is 1 on the original and the edited head and
   falls with the distance ``d`` to them as ``0.5 (1 + cos(pi d / R))`` to 0 at ``R``: hair,
   neck and collar near the head follow it, the background further away stays put. The flow is
   ``T * extended flow``. ``R`` (:func:`falloff_radius`) grows with the motion at the head's
   outline so that the background is strained by at most about :data:`MAX_STRAIN` (a turned
   head drags a wide band of hair along; a smile that barely moves the cheek contour touches
   only a thin band next to it), between :data:`MIN_FALLOFF_FRACTION` and
   :data:`FALLOFF_HEAD_FRACTION` of the head size.

Why not the distance to the silhouette only (no extension)? Multiplying the boundary flow by a
falloff needs the flow *outside*; nearest-boundary copies (a distance-transform label) are
piecewise constant and crease the hair along the medial axis; a Gaussian normalised
convolution averages the whole head's flow and mismatches the boundary by up to the flow's
range. Pull-push is exact inside, smooth outside and costs ~1 ms on a 512 px grid.
"""

from __future__ import annotations

import cv2
import numpy as np

FALLOFF_HEAD_FRACTION = 0.3  # largest R / head size: where the motion outside the head has faded to zero
MIN_FALLOFF_FRACTION = 0.05  # smallest R / head size
MAX_STRAIN = 0.2  # R >= (largest motion at the outline) / MAX_STRAIN, within the two bounds above
PUSH_GAIN = 8.0  # pull-push: a level trusts its own average where its coverage is >= 1/PUSH_GAIN


def falloff_radius(flow: np.ndarray, head: np.ndarray, head_px: float) -> float:
    """R in grid pixels for ``flow`` (H,W,2, grid pixels) extended outside ``head`` (bool H,W),
    ``head_px`` the head size in grid pixels (see the module docstring)."""
    ring = cv2.dilate(head.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~head
    edge = float(np.percentile(np.hypot(flow[ring, 0], flow[ring, 1]), 99)) if ring.any() else 0.0
    return float(np.clip(edge / MAX_STRAIN, MIN_FALLOFF_FRACTION * head_px, FALLOFF_HEAD_FRACTION * head_px))


def push_pull(values: np.ndarray, weight: np.ndarray, min_side: int = 2) -> np.ndarray:
    """Fill a map where ``weight`` (H,W in [0,1]) is low from where it is high.

    ``values`` (H,W) or (H,W,C) float32. Pull: build pyramids of ``values * weight`` and
    ``weight`` with ``cv2.pyrDown``; push: from the coarsest level down, each level keeps its own
    normalised average where its coverage is high and takes the upsampled coarser estimate
    elsewhere (blend factor ``min(1, PUSH_GAIN * coverage)``). Where ``weight`` is 1 the result equals
    ``values``. Returns an array shaped like ``values``.
    """
    squeeze = values.ndim == 2
    v = values[..., None] if squeeze else values
    w = weight.astype(np.float32)
    prem = [np.ascontiguousarray(v * w[..., None], dtype=np.float32)]
    ws = [w]
    while min(ws[-1].shape[:2]) > min_side * 2:
        prem.append(_as3(cv2.pyrDown(prem[-1]), prem[-1].shape[2]))
        ws.append(cv2.pyrDown(ws[-1]))
    est = None
    for p, ww in zip(reversed(prem), reversed(ws)):
        mean = p / np.maximum(ww, 1e-6)[..., None]
        if est is None:
            # coarsest level: anything uncovered takes the global coverage-weighted mean
            total = max(float(ww.sum()), 1e-6)
            glob = p.reshape(-1, p.shape[2]).sum(0) / total
            alpha = (ww > 1e-6).astype(np.float32)
            est = mean * alpha[..., None] + glob[None, None, :] * (1.0 - alpha[..., None])
            continue
        up = _as3(cv2.pyrUp(est, dstsize=(ww.shape[1], ww.shape[0])), p.shape[2])
        alpha = np.minimum(1.0, PUSH_GAIN * ww)[..., None]
        est = mean * alpha + up * (1.0 - alpha)
    out = est.astype(np.float32)
    return out[..., 0] if squeeze else out


def extend_outside(values: np.ndarray, inside: np.ndarray, rim_px: int = 1) -> np.ndarray:
    """``values`` (H,W[,C]) kept where ``inside`` (bool H,W), elsewhere the pull-push extension of
    the values on the inner rim (``rim_px`` pixels wide) of ``inside``."""
    k = 2 * rim_px + 1
    rim = inside & ~cv2.erode(inside.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    ext = push_pull(values, rim.astype(np.float32))
    mask = inside[..., None] if values.ndim == 3 else inside
    return np.where(mask, values, ext).astype(np.float32)


def _as3(a: np.ndarray, channels: int) -> np.ndarray:
    """cv2 drops a trailing channel axis of 1; put it back."""
    return a[..., None] if a.ndim == 2 and channels == 1 else a


def transformation_map(head: np.ndarray, radius_px: float, taper_border: tuple[bool, bool, bool, bool] | None = None,
                       taper_px: float = 0.0) -> np.ndarray:
    """LiftedGAN's ``T`` on a grid: 1 on ``head`` (bool H,W), cosine falloff to 0 at ``radius_px``.

    ``taper_border`` = (left, top, right, bottom): sides where the grid ends inside the photo;
    ``T`` is faded to 0 over ``taper_px`` there so a motion that reaches the edge of the region
    of interest never leaves a seam.
    """
    if head.any():
        dist = cv2.distanceTransform((~head).astype(np.uint8), cv2.DIST_L2, 5)
    else:
        dist = np.full(head.shape, np.inf, np.float32)
    x = np.clip(dist / max(radius_px, 1e-6), 0.0, 1.0)
    T = (0.5 * (1.0 + np.cos(np.pi * x))).astype(np.float32)
    if taper_border is not None and taper_px > 0 and any(taper_border):
        T *= border_taper(head.shape, taper_border, taper_px)
    return T


def border_taper(shape: tuple[int, int], sides: tuple[bool, bool, bool, bool], width_px: float) -> np.ndarray:
    """(H,W) ramp from 0 at the selected grid sides to 1 at ``width_px`` inside."""
    H, W = shape[:2]
    xs = np.arange(W, dtype=np.float32) + 0.5
    ys = np.arange(H, dtype=np.float32) + 0.5
    rx = np.ones(W, np.float32)
    ry = np.ones(H, np.float32)
    left, top, right, bottom = sides
    if left:
        rx = np.minimum(rx, xs / width_px)
    if right:
        rx = np.minimum(rx, (W - xs) / width_px)
    if top:
        ry = np.minimum(ry, ys / width_px)
    if bottom:
        ry = np.minimum(ry, (H - ys) / width_px)
    rx, ry = np.clip(rx, 0, 1), np.clip(ry, 0, 1)
    return (ry[:, None] * rx[None, :]).astype(np.float32)


def feather(mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian-softened float32 copy of a (H,W) mask (identity for sigma < 0.3 px)."""
    m = mask.astype(np.float32)
    if sigma_px < 0.3:
        return m
    k = int(2 * round(3 * sigma_px) + 1)
    return cv2.GaussianBlur(m, (k, k), sigma_px, borderType=cv2.BORDER_REPLICATE)
