"""Independent judges of an edited photo: measurements that do not come from our own fitter.

* Eye aspect ratio (Soukupova & Cech 2016), six points per eye on mediapipe's eye contour:
  ``EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)``; open eyes read >= 0.2, closed <= 0.15.
* Mouth aspect ratio: the mean of three inner-lip gaps over the mouth-corner distance.
* Masked PSNR / SSIM between two photos in similarity-aligned crops (each photo aligned by its own
  68 landmarks onto one template).
* Seam energy: squared image gradient in a thin band along the outline of what the edit changed,
  edit / source (hard seams, holes and ghost edges push it up; a clean edit reads ~1).
* Sharpness: variance of the Laplacian inside the face, edit / source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from faceeditor.face.detect import Face, FaceDetector
from faceeditor.neural.align import align_matrix, similarity, transform_points, warp_image

# mediapipe FaceMesh indices, (p1 .. p6) in Soukupova & Cech's order: corner, top, top, corner, bottom, bottom
EYE_RIGHT = (33, 160, 158, 133, 153, 144)  # the subject's right eye (image left)
EYE_LEFT = (362, 385, 387, 263, 373, 380)
MOUTH_CORNERS = (78, 308)  # inner-lip corners
MOUTH_GAPS = ((82, 87), (13, 14), (312, 317))  # upper / lower inner-lip pairs
CROP_PX = 256  # side of the aligned comparison crops
EXPR_POINTS = tuple(range(36, 68))  # iBUG-68 eyes and mouth


def eye_aspect_ratio(lm478: np.ndarray) -> float:
    """Mean six-point EAR of both eyes from (478, >=2) mediapipe landmarks (pixels)."""
    def one(idx: tuple[int, ...]) -> float:
        p = lm478[list(idx), :2].astype(np.float64)
        width = np.linalg.norm(p[0] - p[3])
        return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2.0 * max(width, 1e-6)))
    return 0.5 * (one(EYE_RIGHT) + one(EYE_LEFT))


def mouth_aspect_ratio(lm478: np.ndarray) -> float:
    """Mean inner-lip gap / inner mouth-corner distance (0 = closed)."""
    p = lm478[:, :2].astype(np.float64)
    width = np.linalg.norm(p[MOUTH_CORNERS[0]] - p[MOUTH_CORNERS[1]])
    gaps = [np.linalg.norm(p[a] - p[b]) for a, b in MOUTH_GAPS]
    return float(np.mean(gaps) / max(width, 1e-6))


def nearest_face(detector: FaceDetector, rgb: np.ndarray, box: tuple[float, float, float, float]) -> Face | None:
    """The detected face (with landmarks) whose box centre is nearest to ``box``'s, or None."""
    faces = [f for f in detector.detect(rgb) if f.landmarks is not None]
    if not faces:
        return None
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    return min(faces, key=lambda f: (f.box[0] + f.box[2] - 2 * cx) ** 2 + (f.box[1] + f.box[3] - 2 * cy) ** 2)


@dataclass
class AlignedCrop:
    """A photo warped so that its 68 landmarks sit on the template (``CROP_PX`` square)."""

    rgb: np.ndarray  # (S,S,3) uint8
    valid: np.ndarray  # (S,S) bool: pixels that came from inside the photo
    landmarks68: np.ndarray  # (68,2) in crop pixels


def aligned_crop(rgb: np.ndarray, lm68: np.ndarray, size: int = CROP_PX) -> AlignedCrop:
    M = align_matrix(lm68, size)
    ones = np.full(rgb.shape[:2], 255, np.uint8)
    valid = warp_image(np.dstack([ones] * 3), M, size, border="constant")[..., 0] > 127
    return AlignedCrop(warp_image(rgb, M, size), valid, transform_points(lm68, M))


def warp_mask(mask: np.ndarray, lm68: np.ndarray, size: int = CROP_PX) -> np.ndarray:
    """A (H,W) float mask warped like :func:`aligned_crop`."""
    m8 = (np.clip(mask, 0, 1) * 255).astype(np.uint8)
    return warp_image(np.dstack([m8] * 3), align_matrix(lm68, size), size, border="constant")[..., 0] / 255.0


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB) of uint8 images over the pixels where ``mask`` > 0.5."""
    m = mask > 0.5
    if not m.any():
        return float("nan")
    d = a.astype(np.float64)[m] - b.astype(np.float64)[m]
    mse = float(np.mean(d ** 2))
    return 100.0 if mse == 0 else min(100.0, 10.0 * np.log10(255.0 ** 2 / mse))


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004, Gaussian window sigma 1.5, on luma) over the pixels where ``mask`` > 0.5."""
    x, y = (cv2.cvtColor(i, cv2.COLOR_RGB2GRAY).astype(np.float64) for i in (a, b))
    blur = lambda im: cv2.GaussianBlur(im, (11, 11), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    m = mask > 0.5
    return float(ssim[m].mean()) if m.any() else float("nan")


def _gradient_energy(rgb: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    return gx * gx + gy * gy


def changed_mask(source: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """(H,W) bool: where the edit changed the photo (largest channel difference > 6/255 after a
    light blur, so re-encoding noise does not count)."""
    d = np.abs(source.astype(np.int16) - edited.astype(np.int16)).max(2).astype(np.uint8)
    return cv2.GaussianBlur(d, (5, 5), 1.0) > 6


def changed_outline_band(source: np.ndarray, edited: np.ndarray, face_px: float) -> np.ndarray:
    """(H,W) bool: a thin band along the outline of :func:`changed_mask` (small specks removed);
    its width grows with the face (2 % of its size)."""
    changed = changed_mask(source, edited).astype(np.uint8)
    r = max(2, int(round(0.02 * face_px)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, k)
    return cv2.morphologyEx(changed, cv2.MORPH_GRADIENT, k) > 0


def _band_ratio(source: np.ndarray, edited: np.ndarray, face_px: float, stat: Callable[[np.ndarray], float]) -> float:
    band = changed_outline_band(source, edited, face_px)
    if band.sum() < 20:
        return float("nan")
    return stat(_gradient_energy(edited)[band]) / max(stat(_gradient_energy(source)[band]), 1e-6)


def seam_ratio(source: np.ndarray, edited: np.ndarray, face_px: float) -> float:
    """Mean squared gradient of ``edited`` in the changed region's outline band over the same in
    ``source`` (1 = the edit's outline is as smooth as the photo there; nan when nothing changed)."""
    return _band_ratio(source, edited, face_px, lambda e: float(e.mean()))


def seam_p95_ratio(source: np.ndarray, edited: np.ndarray, face_px: float) -> float:
    """Like :func:`seam_ratio` with the 95th percentile instead of the mean: a hard seam is a thin,
    strong edge that a mean over the band dilutes."""
    return _band_ratio(source, edited, face_px, lambda e: float(np.percentile(e, 95)))


def changed_edge_ratio(source: np.ndarray, edited: np.ndarray) -> float:
    """Gradient energy inside the changed region, edit / source: ghost edges push it above 1,
    smearing below (read as ``abs(log)`` of it)."""
    changed = changed_mask(source, edited)
    if changed.sum() < 20:
        return float("nan")
    return float(_gradient_energy(edited)[changed].mean() / max(_gradient_energy(source)[changed].mean(), 1e-6))


INCOHERENCE_FACE_PX = 100  # both images are resized so the face is this big before patches are compared
INCOHERENCE_PATCH = 9  # patch side (pixels at that size)


def _patches(img: np.ndarray, mask: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` random (P*P*3,) patches of ``img`` centred on ``mask`` pixels."""
    h, w = mask.shape
    r = INCOHERENCE_PATCH // 2
    ys, xs = np.nonzero(mask[r:h - r, r:w - r])
    ys, xs = ys + r, xs + r
    if len(ys) > n:
        keep = rng.choice(len(ys), n, replace=False)
        ys, xs = ys[keep], xs[keep]
    off = np.arange(-r, r + 1)
    out = img[ys[:, None, None] + off[None, :, None], xs[:, None, None] + off[None, None, :]]
    return out.reshape(len(ys), -1).astype(np.float64)


def incoherence(source: np.ndarray, edited: np.ndarray, face_px: float, seed: int = 0) -> float:
    """How much of what the edit changed looks like nothing in the photo (Simakov et al.'s
    bidirectional similarity, one direction): for patches of the changed region of the edit, the
    RMS CIELAB distance to the nearest patch of the photo around it; the 90th percentile. A clean
    warp moves the photo's own patches (small distances); a ghost face, a hard seam, a smear or a
    painted band makes patches the photo does not have. Both images are first resized so the face
    is :data:`INCOHERENCE_FACE_PX` pixels. nan when nothing changed."""
    k = min(1.0, INCOHERENCE_FACE_PX / max(face_px, 1.0))
    size = (max(1, round(source.shape[1] * k)), max(1, round(source.shape[0] * k)))
    src, ed = (cv2.resize(i, size, interpolation=cv2.INTER_AREA) if k < 1.0 else i for i in (source, edited))
    lab_s, lab_e = (cv2.cvtColor(i.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB) for i in (src, ed))
    changed = changed_mask(src, ed)
    if changed.sum() < 20:
        return float("nan")
    around = cv2.dilate(changed.astype(np.uint8), np.ones((31, 31), np.uint8)) > 0
    rng = np.random.default_rng(seed)
    a, b = _patches(lab_e, changed, 1500, rng), _patches(lab_s, around, 6000, rng)
    if not len(a) or not len(b):
        return float("nan")
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    nearest = np.sqrt(np.maximum(d2.min(1), 0.0) / a.shape[1])
    return float(np.percentile(nearest, 90))


def roc_auc(scores: list[float], positive: list[bool]) -> float:
    """Area under the ROC curve of ``scores`` for the ``positive`` class (ties count half; nan scores
    rank lowest)."""
    s = np.nan_to_num(np.asarray(scores, np.float64), nan=-np.inf)
    pos, neg = s[np.asarray(positive)], s[~np.asarray(positive)]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def face_hull_mask(shape: tuple[int, int], lm68: np.ndarray) -> np.ndarray:
    """(H,W) bool: the convex hull of the 68 landmarks, shrunk by 10 % towards its centre."""
    c = lm68.mean(0)
    pts = (c + 0.9 * (lm68 - c)).astype(np.int32)
    m = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(m, cv2.convexHull(pts), 1)
    return m > 0


def laplacian_variance(rgb: np.ndarray, mask: np.ndarray, per_contrast: bool = True) -> float:
    """Variance of the Laplacian of the luma inside ``mask``; ``per_contrast`` divides it by the
    luma's variance there, so that a relit (darker, lighter, more contrasted) face reads the same
    detail: what is left is how much of the contrast sits in fine detail."""
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
    if not mask.any():
        return float("nan")
    v = float(lap[mask].var())
    return v / max(float(g[mask].var()), 1e-6) if per_contrast else v


def rotation_angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    """Geodesic angle between two rotations (degrees)."""
    rel = np.asarray(Ra, np.float64) @ np.asarray(Rb, np.float64).T
    return float(np.degrees(np.arccos(np.clip((np.trace(rel) - 1.0) / 2.0, -1.0, 1.0))))


def expression_landmark_error(edit68: np.ndarray, target68: np.ndarray) -> float:
    """Mean distance of the eye and mouth points after a similarity fit of the whole 68-point set,
    in eye distances (outer corners of the target)."""
    M = similarity(edit68.astype(np.float64), target68.astype(np.float64))
    moved = transform_points(edit68, M)
    eye = np.linalg.norm(target68[36] - target68[45])
    idx = list(EXPR_POINTS)
    return float(np.linalg.norm(moved[idx] - target68[idx], axis=1).mean() / max(eye, 1e-6))


def label(rgb: np.ndarray, text: str) -> np.ndarray:
    """A copy with ``text`` in a dark strip at the top (contact sheets)."""
    out = rgb.copy()
    h = max(14, out.shape[0] // 16)
    out[:h] = (out[:h] * 0.35).astype(np.uint8)
    cv2.putText(out, text, (4, int(h * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, h / 30.0, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def contact_sheet(tiles: list[np.ndarray], height: int | None = None) -> np.ndarray:
    """Tiles placed side by side at 1:1 (``height`` None: all tiles must share the first one's height)
    or resized to ``height``."""
    height = height or tiles[0].shape[0]
    row = [t if t.shape[0] == height else cv2.resize(t, (max(1, round(t.shape[1] * height / t.shape[0])), height), interpolation=cv2.INTER_AREA)
           for t in tiles]
    return np.hstack(row)
