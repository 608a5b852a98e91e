"""Face alignment to one fixed template (GAR §4.2) and the matching crop camera.

Every network input in :mod:`faceeditor.neural` is a square crop in which the face sits at a
fixed place: a similarity transform (scale, in-plane rotation, translation) maps four points
of the iBUG-68 landmarks -- the two eye centres (mean of 36-41 and of 42-47), the nose tip (30)
and the mouth centre (mean of the corners 48, 54) -- onto :data:`TEMPLATE` by least squares
(Umeyama). The template is the frontal ICT neutral face with the eye centres 0.3 crop widths
apart, their midpoint at (0.5, 0.42): the face from the hairline (~0.01) to the chin (~0.93)
fits, the ears do not. (A looser, FFHQ-like 0.25 put 60 % of each UTKFace crop outside its
tightly cropped photo; at 0.3 about 60 % is inside, and LFW crops lie wholly inside the photo.)

The same transform turns the photo's pinhole camera into the crop's (:func:`crop_pose`): the
scale multiplies the focal length, the principal point moves with the transform, and the
in-plane rotation becomes a roll of the camera about its z axis, applied to the head's R and t.
A head rendered with the crop camera therefore lines up with the crop pixel for pixel.

Coordinates follow :mod:`faceeditor.core.camera` (continuous pixels, top-left corner of
pixel (0, 0) at (0, 0)). A matrix ``M`` (2,3) maps photo pixels to crop pixels:
``crop = M[:, :2] @ photo + M[:, 2]``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Template points in units of the crop side: right eye centre (image left), left eye centre,
# nose tip, mouth centre. From the ICT neutral face (eye-centre distance 6.51 cm; nose tip
# 3.04 cm and mouth centre 6.96 cm below the eye line), scaled to 0.3 crop widths per eye distance.
TEMPLATE_EYE_DISTANCE = 0.3  # eye-centre distance / crop side
TEMPLATE_EYE_Y = 0.42
TEMPLATE = np.array([
    [0.5 - TEMPLATE_EYE_DISTANCE / 2, TEMPLATE_EYE_Y],
    [0.5 + TEMPLATE_EYE_DISTANCE / 2, TEMPLATE_EYE_Y],
    [0.5, TEMPLATE_EYE_Y + TEMPLATE_EYE_DISTANCE * 3.036 / 6.513],
    [0.5, TEMPLATE_EYE_Y + TEMPLATE_EYE_DISTANCE * 6.961 / 6.513],
], dtype=np.float64)


def template_points(lm68: np.ndarray) -> np.ndarray:
    """The four alignment points (4,2) of iBUG-68 landmarks (68,2+)."""
    p = np.asarray(lm68, dtype=np.float64)[:, :2]
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], 0.5 * (p[48] + p[54])])


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) mapping ``src`` (N,2) onto ``dst`` (N,2): (2,3)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s0, d0 = src - ms, dst - md
    cov = d0.T @ s0 / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(2)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[1, 1] = -1
    Rm = U @ D @ Vt
    scale = float(np.trace(np.diag(S) @ D) / max((s0 ** 2).sum() / len(src), 1e-12))
    A = scale * Rm
    return np.concatenate([A, (md - A @ ms)[:, None]], 1)


def align_matrix(lm68: np.ndarray, size: int) -> np.ndarray:
    """(2,3) photo -> crop matrix aligning the face of ``lm68`` to the template in a ``size`` crop."""
    return similarity(template_points(lm68), TEMPLATE * size)


def scale_matrix(M: np.ndarray, factor: float) -> np.ndarray:
    """The same alignment for a crop ``factor`` times the size (pixel grid scaled about its corner)."""
    return np.asarray(M, np.float64) * factor


def matrix_parts(M: np.ndarray) -> tuple[float, float]:
    """(scale, angle in radians) of a similarity matrix; the angle is in image (y-down) coordinates."""
    a, b = float(M[0, 0]), float(M[1, 0])
    return math.hypot(a, b), math.atan2(b, a)


def transform_points(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Apply (2,3) ``M`` to points (N,2+): x, y transformed; a third column (depth in pixels, as
    mediapipe's z) is multiplied by the scale."""
    p = np.asarray(points, np.float64)
    out = p.copy()
    out[:, :2] = p[:, :2] @ np.asarray(M)[:, :2].T + np.asarray(M)[:, 2]
    if p.shape[1] > 2:
        out[:, 2:] = p[:, 2:] * matrix_parts(M)[0]
    return out


def invert_matrix(M: np.ndarray) -> np.ndarray:
    """Inverse (2,3) of a (2,3) affine matrix."""
    A = np.asarray(M, np.float64)[:, :2]
    Ai = np.linalg.inv(A)
    return np.concatenate([Ai, (-Ai @ np.asarray(M, np.float64)[:, 2])[:, None]], 1)


def warp_image(rgb: np.ndarray, M: np.ndarray, size: int, border: str = "reflect") -> np.ndarray:
    """The aligned ``size`` x ``size`` crop of a uint8 photo (bilinear; area-filtered when shrinking
    by more than 1.5x). ``border``: ``reflect`` (default) or ``constant`` (black)."""
    M = np.asarray(M, np.float64)
    s, _ = matrix_parts(M)
    mode = cv2.BORDER_REFLECT_101 if border == "reflect" else cv2.BORDER_CONSTANT
    if s < 1 / 1.5:  # shrink: pre-filter at the source resolution so the warp does not alias
        k = int(math.floor(1.0 / s))
        small = cv2.resize(rgb, (max(1, rgb.shape[1] // k), max(1, rgb.shape[0] // k)), interpolation=cv2.INTER_AREA)
        fx, fy = rgb.shape[1] / small.shape[1], rgb.shape[0] / small.shape[0]
        M = M @ np.array([[fx, 0, 0], [0, fy, 0], [0, 0, 1]], np.float64)
        rgb = small
    return cv2.warpAffine(rgb, _cv_matrix(M), (size, size), flags=cv2.INTER_LINEAR, borderMode=mode)


def _cv_matrix(M: np.ndarray) -> np.ndarray:
    """OpenCV samples at integer pixel positions (pixel centres at integers); the project puts
    centres at +0.5: conjugate by the half-pixel shift."""
    A, b = M[:, :2], M[:, 2]
    return np.concatenate([A, (b + A @ np.array([0.5, 0.5]) - 0.5)[:, None]], 1)


def valid_fraction(M: np.ndarray, image_size: tuple[int, int], size: int) -> float:
    """Fraction of the crop that lies inside the photo (the rest is reflected border)."""
    w, h = image_size
    g = (np.arange(16) + 0.5) / 16 * size
    xs, ys = np.meshgrid(g, g)
    src = transform_points(np.stack([xs.ravel(), ys.ravel()], 1), invert_matrix(M))
    return float(((src[:, 0] >= 0) & (src[:, 0] <= w) & (src[:, 1] >= 0) & (src[:, 1] <= h)).mean())


def roll_matrix(angle: float) -> np.ndarray:
    """(3,3) camera-frame rotation that turns the image by ``angle`` (radians, y-down image
    coordinates, as :func:`matrix_parts`): a rotation about the camera's z axis by ``-angle``."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def crop_pose(M: np.ndarray, rotation: np.ndarray, translation: np.ndarray, focal: float,
              principal: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, float, tuple[float, float]]:
    """Pose and camera of the aligned crop: returns (R', t', focal', principal').

    With photo pixels ``u = c + f (X/-Z, -Y/-Z)`` and the crop ``u' = s Rot(a) u + b``, choosing
    ``c' = s Rot(a) c + b`` and ``f' = s f`` leaves ``(u' - c') / f' = Rot(a) (u - c) / f``, which is
    the projection of the camera-frame point rolled about z: ``R' = Q R``, ``t' = Q t``.
    """
    s, a = matrix_parts(M)
    Q = roll_matrix(a)
    c = np.asarray(principal, np.float64)
    c2 = np.asarray(M)[:, :2] @ c + np.asarray(M)[:, 2]
    return (Q @ np.asarray(rotation, np.float64), Q @ np.asarray(translation, np.float64), float(s * focal),
            (float(c2[0]), float(c2[1])))


def photo_pose(M: np.ndarray, rotation: np.ndarray, translation: np.ndarray, focal: float,
               principal: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, float, tuple[float, float]]:
    """Inverse of :func:`crop_pose`: a pose and camera of the crop -> those of the photo."""
    s, a = matrix_parts(M)
    Q = roll_matrix(a)
    c = transform_points(np.asarray([principal], np.float64), invert_matrix(M))[0]
    return (Q.T @ np.asarray(rotation, np.float64), Q.T @ np.asarray(translation, np.float64), float(focal / s),
            (float(c[0]), float(c[1])))


def aligned_crop(rgb: np.ndarray, lm68: np.ndarray, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """The network input of a photo's face: (``size`` crop uint8, photo -> crop matrix). Made as the
    dataset does (256 px warp, 2x2 area-downsampled for 128) so that inputs match training."""
    M = align_matrix(lm68, 256)
    crop = warp_image(rgb, M, 256)
    if size == 256:
        return crop, M
    if size == 128:
        return cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA), scale_matrix(M, 0.5)
    M = align_matrix(lm68, size)
    return warp_image(rgb, M, size), M
