"""Closing the eyes from the person's own skin: blink as a photograph shows it.

The ICT mesh closes its eyelids by blendshapes, but the photo holds almost none of the upper lid's
skin (it is folded under the brow), so a warp smears the lashes and a mesh fill paints the lid
in the atlas's colour. Here the lid is made in image space instead, on the edited photo:

1. the eye opening (mediapipe's 16-point eye contour, carried to the edited photo by the edit's
   flow) is inpainted from the skin around it (``cv2.inpaint``, Telea) — the closed lid has the
   person's own lid and brow skin, shading and grain;
2. the upper lid comes down by the blink amount, column by column between the lid lines, so a
   half blink covers the upper half of the iris;
3. the lash line is drawn along the lowered lid: anti-aliased, as dark as the darkest lashes the
   photo shows on the open lid, thinning towards the corners.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from faceeditor.core.state import FaceState
from faceeditor.edit import grain, skin_tone
from faceeditor.edit.grid import Window
from faceeditor.edit.params import EditParams

# mediapipe FaceMesh eye contours, corner to corner (the subject's right eye is on the image's left)
RIGHT_EYE = {"corners": (33, 133), "upper": (246, 161, 160, 159, 158, 157, 173), "lower": (7, 163, 144, 145, 153, 154, 155)}
LEFT_EYE = {"corners": (263, 362), "upper": (466, 388, 387, 386, 385, 384, 398), "lower": (249, 390, 373, 374, 380, 381, 382)}
EYES = {"eyeBlink_R": RIGHT_EYE, "eyeBlink_L": LEFT_EYE}  # ARKit _L/_R: the subject's left/right
LID_CLOSED_AT = 0.85  # of the opening: where the closed lid's lash line sits (from the upper lid)
LASH_WIDTH = 0.08  # of the eye's width
ALREADY_CLOSED = 0.08  # lid lines closer than this (eye widths, mean) are an eye the photo shows shut
SCLERA_BAND = 0.25  # of the eye's width: how far below the lower lid line visible sclera is closed too
GRAIN_HEAD_PER_EYE = 3.5  # a head is about this many eye widths (the grain patch and its scale)
SCLERA_CHROMA = 0.35  # sclera: (max - min channel) below this fraction of the luma


@dataclass
class EyeOutline:
    """One eye in image pixels: the two corners and the upper/lower lid lines (corner to corner)."""

    upper: np.ndarray  # (N,2) from the outer to the inner corner
    lower: np.ndarray  # (N,2) likewise

    @classmethod
    def from_landmarks(cls, lm: np.ndarray, eye: dict[str, tuple[int, ...]]) -> "EyeOutline":
        a, b = (lm[i, :2].astype(np.float64) for i in eye["corners"])
        up = np.vstack([a, lm[list(eye["upper"]), :2], b])
        lo = np.vstack([a, lm[list(eye["lower"]), :2], b])
        return cls(up, lo)

    @property
    def width(self) -> float:
        return float(np.linalg.norm(self.upper[0] - self.upper[-1]))

    @property
    def opening(self) -> float:
        """Mean distance between the lid lines (inner points), in eye widths."""
        gap = np.linalg.norm(self.upper[1:-1] - self.lower[1:-1], axis=1)
        return float(gap.mean() / max(self.width, 1e-6))


def _lid_at(line: np.ndarray, x: np.ndarray) -> np.ndarray:
    order = np.argsort(line[:, 0])
    return np.interp(x, line[order, 0], line[order, 1])


def close_eye(image: np.ndarray, eye: EyeOutline, amount: float) -> np.ndarray:
    """``image`` with one eye closed by ``amount`` in [0, 1] (a new array)."""
    amount = float(np.clip(amount, 0.0, 1.0))
    out = image.copy()
    if amount <= 0.02 or eye.width < 4 or eye.opening < ALREADY_CLOSED:
        return out  # nothing to close (an eye the photo shows shut gets no second lash line)
    pad = int(round(0.6 * eye.width))
    x0, y0 = np.floor(np.minimum(eye.upper.min(0), eye.lower.min(0))).astype(int) - pad
    x1, y1 = np.ceil(np.maximum(eye.upper.max(0), eye.lower.max(0))).astype(int) + pad
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(image.shape[1], x1), min(image.shape[0], y1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return out
    crop = image[y0:y1, x0:x1]
    off = np.array([x0, y0], np.float64)
    up, lo = eye.upper - off, eye.lower - off
    grow = max(1, int(round(0.08 * eye.width)))
    opening = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(opening, [np.round(np.vstack([up, lo[::-1]])).astype(np.int32)], 1)
    hole = cv2.dilate(opening, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    hole = hole | _sclera_below(crop, hole, lo, eye.width)
    lid = cv2.inpaint(np.ascontiguousarray(crop), hole * 255, max(2, grow * 2), cv2.INPAINT_TELEA)
    lid = _with_grain(lid, image, eye, hole)

    # the lid comes down column by column between the lid lines
    xs = np.arange(crop.shape[1], dtype=np.float64)
    yu, yl = _lid_at(up, xs), _lid_at(lo, xs)
    inside = (xs >= min(up[0, 0], up[-1, 0])) & (xs <= max(up[0, 0], up[-1, 0]))
    y_new = yu + amount * LID_CLOSED_AT * np.maximum(yl - yu, 0.0)
    ys = np.arange(crop.shape[0], dtype=np.float64)[:, None]
    cover = np.clip(y_new[None, :] - ys + 0.5, 0.0, 1.0) * np.clip(ys - (yu[None, :] - grow) + 0.5, 0.0, 1.0)
    cover *= inside[None, :]
    full = float(np.clip((amount - 0.85) / 0.15, 0.0, 1.0))  # the last of the blink hides the lower rim too
    cover = np.maximum(cover, hole * full)
    soft = cv2.GaussianBlur(cover.astype(np.float32), (0, 0), 0.6)[..., None]
    blended = crop * (1.0 - soft) + lid * soft

    # the lash line along the lowered lid, as dark as the photo's lashes
    lash = _lash_colour(crop, up)
    pts = np.stack([xs[inside], y_new[inside]], 1)
    if len(pts) >= 2:
        line = np.zeros(crop.shape[:2], np.float32)
        thick = max(1, int(round(LASH_WIDTH * eye.width * amount)))
        cv2.polylines(line, [np.round(pts * 4).astype(np.int32)], False, 1.0, thick, cv2.LINE_AA, shift=2)
        taper = np.clip(np.minimum(xs - pts[0, 0], pts[-1, 0] - xs) / (0.25 * eye.width), 0.0, 1.0)
        line *= taper[None, :] * amount
        line = cv2.GaussianBlur(line, (0, 0), 0.5)[..., None]
        blended = blended * (1.0 - line) + lash * line
    out[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out


def _with_grain(lid: np.ndarray, image: np.ndarray, eye: EyeOutline, hole: np.ndarray) -> np.ndarray:
    """The inpainted ``lid`` crop with the photo's own skin grain over the ``hole`` (:mod:`.grain`):
    on a large portrait Telea's fill is a smooth painted patch between grainy skin. The grain comes
    from the skin under the eye (a patch centred one eye width below its centre)."""
    centre = 0.5 * (eye.upper[0] + eye.upper[-1]) + np.array([0.0, eye.width])
    tile = grain.measure(image, centre[None], head_px=GRAIN_HEAD_PER_EYE * eye.width, upsample=grain.MIN_UPSAMPLE)
    if tile is None:
        return lid
    detail = grain.tiled(tile, 0, 0, lid.shape[1], lid.shape[0])
    weight = cv2.GaussianBlur(hole.astype(np.float32), (0, 0), 1.0)
    return grain.apply(lid, detail, weight)


def _sclera_below(crop: np.ndarray, hole: np.ndarray, lower: np.ndarray, width: float) -> np.ndarray:
    """(H,W) uint8: white of the eye that shows below mediapipe's lower lid line and touches ``hole``.
    Looking up, the contour hugs the iris and the sclera below it stays open under the closed lid
    (a Helen portrait: a white band under the lash line, which the inpainting of the lid then spread
    upward). Sclera: brighter than the median of the ring around the eye and nearly grey (max - min
    channel below :data:`SCLERA_CHROMA` of its luma; skin is about 0.5), within :data:`SCLERA_BAND` of
    the eye's width under the lower line."""
    h, w = crop.shape[:2]
    ring = cv2.dilate(hole, np.ones((5, 5), np.uint8), iterations=max(1, round(0.05 * width))) & (1 - hole)
    if ring.sum() < 20:
        return np.zeros_like(hole)
    f = crop.astype(np.float32)
    luma = f @ skin_tone.LUMA
    sat = f.max(2) - f.min(2)
    m = float(np.median(luma[ring > 0]))
    xs = np.arange(w, dtype=np.float64)
    yl = _lid_at(lower, xs)
    ys = np.arange(h, dtype=np.float64)[:, None]
    band = (ys >= yl[None, :] - 1) & (ys <= yl[None, :] + SCLERA_BAND * width)
    band &= ((xs >= lower[:, 0].min()) & (xs <= lower[:, 0].max()))[None, :]
    white = (band & (luma > m) & (sat < SCLERA_CHROMA * luma)).astype(np.uint8)
    _, labels = cv2.connectedComponents(white | hole)
    touching = np.unique(labels[hole > 0])
    keep = np.isin(labels, touching[touching > 0]) & (white > 0)
    return cv2.dilate(keep.astype(np.uint8), np.ones((3, 3), np.uint8))


def _lash_colour(crop: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The darkest tenth of the pixels along the open upper lid (the lashes), as RGB floats."""
    h, w = crop.shape[:2]
    pts = np.round(upper).astype(int)
    ok = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    if not ok.any():
        return np.array([30.0, 25.0, 25.0])
    samples = crop[pts[ok, 1], pts[ok, 0]].astype(np.float64)
    luma = samples @ np.array([0.299, 0.587, 0.114])
    dark = samples[luma <= np.percentile(luma, 30)]
    return dark.mean(0) * 0.8


def close_eyes(image: np.ndarray, landmarks: np.ndarray, amounts: dict[str, float]) -> np.ndarray:
    """``image`` with each eye in ``amounts`` (ARKit names ``eyeBlink_L``/``eyeBlink_R``) closed by its
    amount; ``landmarks``: (478, >=2) mediapipe points in ``image``'s pixels."""
    out = image
    for name, amount in amounts.items():
        if name in EYES and amount > 0.02:
            out = close_eye(out, EyeOutline.from_landmarks(landmarks, EYES[name]), amount)
    return out


def split_blink(edit: EditParams, state: FaceState, names: list[str]) -> tuple[EditParams, dict[str, float]]:
    """The edit without the eye closing it asks for beyond the photo's own (the geometry keeps the
    fitted eyeBlink weights), and how far each eye closes from there, in [0, 1] of its opening.
    A state without the detector's eye points keeps the blink in the geometry (the mesh closes the lids)."""
    if state.detector_landmarks is None:
        return edit, {}
    fitted = dict(zip(names, np.asarray(state.expression, np.float64).reshape(-1)))
    amounts: dict[str, float] = {}
    for name in EYES:
        want = edit.expression.get(name)
        have = float(fitted.get(name, 0.0))
        if want is not None and want > have + 1e-3:
            amounts[name] = float(np.clip((want - have) / max(1.0 - have, 1e-3), 0.0, 1.0))
    if not amounts:
        return edit, {}
    expression = dict(edit.expression, **{n: fitted.get(n, 0.0) for n in amounts})
    return dataclasses.replace(edit, expression=expression), amounts


def carry_points(points: np.ndarray, flow: np.ndarray, win: Window, iterations: int = 6) -> np.ndarray:
    """Where photo points (N,2) land in the edited photo: ``p`` with ``p + flow(p) = s`` for each
    source point ``s`` (``flow``: the backward flow on ``win``'s grid, output pixels), by fixed-point
    iteration (the flow is smooth and small next to the eyes)."""
    p = points.astype(np.float32).copy()
    for _ in range(iterations):
        gx = (p[:, 0] - win.x0 + 0.5) * win.kx - 0.5
        gy = (p[:, 1] - win.y0 + 0.5) * win.ky - 0.5
        f = cv2.remap(np.ascontiguousarray(flow, np.float32), gx.reshape(-1, 1), gy.reshape(-1, 1),
                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0).reshape(-1, 2)
        p = points.astype(np.float32) - f
    return p.astype(np.float64)


def close_edited_eyes(image: np.ndarray, state: FaceState, amounts: dict[str, float], flow: np.ndarray | None,
                      win: Window) -> np.ndarray:
    """Close the eyes of an edited photo (output size ``image``): the photo's mediapipe eye points
    are scaled to it and carried by the edit's backward ``flow`` on ``win``'s grid (None: no motion)."""
    k = image.shape[1] / float(state.image_size[0])
    lm = np.asarray(state.detector_landmarks, np.float64)[:, :2] * k
    if flow is not None:
        lm = carry_points(lm, flow, win)
    return close_eyes(image, lm, amounts)
