"""The layered portrait: the person (head, hair, neck, shoulders) over a background that stays.

LiftedGAN (``002``, eq. 1) moves the head by a transformation map while the background stays. A
single warp of the whole photo cannot do that near the head: the flow that carries hair and the
head's outline also drags the background beside it (streaks), and the place the head leaves shows
whatever the flow brings there (a ghost of the old head, a band of collar). Here the photo is split
once per output size into

* the person's alpha ``A`` (mediapipe selfie segmentation, :class:`faceeditor.face.segment.PersonSegmenter`,
  united with the fitted head's own silhouette so a hat or a hand never makes the face transparent);
* a background ``B``: the photo with the person removed inside the work window, inpainted
  (``cv2.inpaint``, Telea, on a reduced copy: a smooth continuation of the surrounding background,
  never a flat band or a streak), the photo elsewhere;

and a moved pixel ``p`` with backward flow ``f`` is drawn back to front:
``out(p) = A(p + f) photo(p + f) + (1 - A(p + f)) B(p)``: the person moves, the background does not,
and where the head left, ``B`` shows. Pixels the flow does not move stay the photo's, bit-exact.

Past the edited face, the flow that carries hair and the head's outline is a continuation of the
surface's motion; where the face turned toward the camera its outline slid over the surface, and
that continuation samples the photo's face inside the old outline: a second eye and cheek beside
the turned head (Helen 1021890651_1 at yaw 20). Those samples are taken from a third layer, the
photo with the fitted face inpainted away (hair, background and neck continued into it), so where
the face left, what was behind it shows, never a copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceeditor.edit.grid import Window, sample_at, upsample
from faceeditor.face.segment import SEGMENT_PX, PersonSegmenter

INPAINT_PX = 320  # long side of the reduced window the background is inpainted on
HOLE_ALPHA = 0.1  # person alpha above which the background is unknown
HOLE_GROW = 0.02  # the hole is grown by this fraction of the window's long side (segmentation slack)
INPAINT_RADIUS = 5  # cv2.inpaint neighbourhood, reduced pixels
BEHIND_MARGIN = 0.35  # BehindFace covers the fitted face's box grown by this fraction of its size


@dataclass
class PortraitLayers:
    """The layers of one output size."""

    alpha: np.ndarray  # (H,W) uint8 person alpha (255 = person) at the output size
    background: np.ndarray  # (H,W,3) uint8: the photo, person inpainted away inside the work window


def segment_person(photo: np.ndarray) -> np.ndarray:
    """The person alpha of a uint8 photo (float32 in [0,1], at most ``SEGMENT_PX`` on its long side)."""
    k = SEGMENT_PX / max(photo.shape[:2])
    small = photo if k >= 1.0 else cv2.resize(photo, (max(1, round(photo.shape[1] * k)), max(1, round(photo.shape[0] * k))),
                                              interpolation=cv2.INTER_AREA)
    with PersonSegmenter() as seg:
        return seg.mask(small)


def person_alpha_at(person: np.ndarray, head: np.ndarray, win: Window, size: tuple[int, int]) -> np.ndarray:
    """(H,W) uint8 alpha at output ``size`` (w, h): the segmentation ``person`` (any size, float in
    [0,1]) united with the fitted head's silhouette ``head`` ((grid_h, grid_w) bool on ``win``'s grid)."""
    w, h = size
    a = cv2.resize(person.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    rows, cols = win.slices
    hd = cv2.resize(head.astype(np.float32), (win.w, win.h), interpolation=cv2.INTER_LINEAR)
    a[rows, cols] = np.maximum(a[rows, cols], hd)
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def inpaint_background(photo: np.ndarray, alpha: np.ndarray, win: Window) -> np.ndarray:
    """The photo with the person inpainted away inside ``win`` (a new array; the photo elsewhere)."""
    out = photo.copy()
    rows, cols = win.slices
    out[rows, cols] = inpaint_crop(photo[rows, cols], alpha[rows, cols])
    return out


def inpaint_crop(crop: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``crop`` (h,w,3 uint8) with the pixels where ``alpha`` (h,w uint8) passes :data:`HOLE_ALPHA`,
    grown by :data:`HOLE_GROW` of its long side, inpainted (Telea, on a copy of at most
    :data:`INPAINT_PX`); a new array."""
    ch, cw = crop.shape[:2]
    k = min(1.0, INPAINT_PX / max(ch, cw))
    sw, sh = max(1, round(cw * k)), max(1, round(ch * k))
    small = cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA)
    hole = (cv2.resize(alpha, (sw, sh), interpolation=cv2.INTER_AREA) > HOLE_ALPHA * 255).astype(np.uint8)
    grow = max(1, round(HOLE_GROW * max(sw, sh)))
    hole = cv2.dilate(hole, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    if not hole.any():
        return crop.copy()
    filled = cv2.inpaint(small, hole * 255, INPAINT_RADIUS, cv2.INPAINT_TELEA)
    big = cv2.resize(filled, (cw, ch), interpolation=cv2.INTER_LINEAR)
    weight = cv2.resize(cv2.GaussianBlur(hole.astype(np.float32), (0, 0), 1.0), (cw, ch),
                        interpolation=cv2.INTER_LINEAR)[..., None]
    return (crop * (1.0 - weight) + big * weight + 0.5).astype(np.uint8)


def make_layers(photo: np.ndarray, person: np.ndarray, head: np.ndarray, win: Window) -> PortraitLayers:
    """The layers of ``photo`` (an output-size copy of the photo) in work window ``win``; ``head``:
    the fitted head's silhouette on the window's grid."""
    alpha = person_alpha_at(person, head, win, (photo.shape[1], photo.shape[0]))
    return PortraitLayers(alpha, inpaint_background(photo, alpha, win))


@dataclass
class BehindFace:
    """What hair, background and neck show where the fitted face was (module docstring)."""

    image: np.ndarray  # (h,w,3) uint8: the photo around the fitted face, the face inpainted away
    origin: tuple[int, int]  # output (x, y) of ``image``'s first pixel
    hole: np.ndarray  # (grid_h, grid_w) float32 in [0,1] on ``window``'s grid: the fitted face, grown and softened
    window: Window

    def weight_at(self, xy: np.ndarray) -> np.ndarray:
        """(h,w) float32: :attr:`hole` at output coordinates ``xy`` (h,w,2) (0 outside the window)."""
        return sample_at(self.window, self.hole, xy)


def below_line(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H,W) bool: the pixels below (larger y than) the line through ``points`` (2,2) (x, y)."""
    (x0, y0), (x1, y1) = np.asarray(points, np.float64)
    xs = np.arange(shape[1], dtype=np.float64) + 0.5
    line = y0 + (xs - x0) * (y1 - y0) / (x1 - x0) if abs(x1 - x0) > 1e-6 else np.full_like(xs, min(y0, y1))
    return (np.arange(shape[0], dtype=np.float64)[:, None] + 0.5) > line[None, :]


def behind_face(photo: np.ndarray, face: np.ndarray, win: Window,
                brows: np.ndarray | None = None) -> BehindFace | None:
    """``photo`` (output size) around ``face`` (grid, bool: the fitted face) with the face inpainted
    away (:func:`inpaint_crop` on the face's box grown by :data:`BEHIND_MARGIN` of its size, not the
    whole window: a 24 MP photo's window was 1.3 s of blending); None without a face. ``brows``
    (2,2) grid points: only the face below the line through them (the forehead continues into the
    scalp: a bald crown that samples it must stay skin, not turn into the sky around the head). The
    hole is grown by half the inpainting's slack (the fitted outline is a few pixels off the photo's)
    and softened over a grid cell (not its staircase), on the grid."""
    if brows is not None:
        face = face & below_line(brows, face.shape)
    rows, cols = np.flatnonzero(face.any(1)), np.flatnonzero(face.any(0))
    if rows.size == 0:
        return None
    m = round(BEHIND_MARGIN * max(rows[-1] - rows[0], cols[-1] - cols[0]))
    box = win.sub(cols[0] - m, rows[0] - m, cols[-1] + 1 + m, rows[-1] + 1 + m)
    alpha = upsample(win, face.astype(np.float32), box.x0, box.y0, box.w, box.h)
    image = inpaint_crop(photo[box.slices], (np.clip(alpha, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    grow = max(1, round(0.5 * HOLE_GROW * max(box.w, box.h) * 0.5 * (win.kx + win.ky)))
    mask = cv2.dilate(face.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return BehindFace(image, (box.x0, box.y0), cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0), win)


def composite(warped: np.ndarray, warped_alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Back to front: the moved person (``warped``, its moved alpha (H,W) uint8) over ``background``."""
    a = warped_alpha.astype(np.float32)[..., None] * (1.0 / 255.0)
    return (warped * a + background * (1.0 - a) + 0.5).astype(np.uint8)
