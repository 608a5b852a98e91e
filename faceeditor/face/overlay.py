"""Draw detected faces on a photo (boxes, 478 mesh points, 68 iBUG points) for checking by eye."""

from __future__ import annotations

import cv2
import numpy as np

from faceeditor.face.detect import Face

_SHIFT = 4  # cv2 sub-pixel bits
_BOX = (0, 255, 0)
_BOX_SMALL = (255, 64, 64)
_MESH = (0, 200, 255)
_POINTS68 = (255, 255, 0)


def _cv(pt: np.ndarray) -> tuple[int, int]:
    """Project-convention continuous (x, y) -> cv2 fixed-point coords (cv2 puts pixel centres at integers)."""
    return int(round((float(pt[0]) - 0.5) * (1 << _SHIFT))), int(round((float(pt[1]) - 0.5) * (1 << _SHIFT)))


def draw_faces(rgb: np.ndarray, faces: list[Face], mesh: bool = True, points68: bool = True) -> np.ndarray:
    """A copy of uint8 RGB ``rgb`` with each face's box (red when too small), label, and points."""
    out = np.ascontiguousarray(rgb[:, :, :3], dtype=np.uint8).copy()
    unit = max(1.0, max(out.shape[:2]) / 800.0)  # line widths grow with the photo
    thick = max(1, int(round(unit)))
    for i, face in enumerate(faces):
        colour = _BOX_SMALL if face.too_small else _BOX
        x0, y0, x1, y1 = face.box
        cv2.rectangle(out, _cv((x0, y0)), _cv((x1, y1)), colour, thick, cv2.LINE_AA, _SHIFT)
        label = f"{i + 1}: {face.score:.2f} {face.size:.0f}px" + (" small" if face.too_small else "")
        org = (int(x0), max(int(12 * unit), int(y0 - 4 * unit)))
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45 * unit, colour, thick, cv2.LINE_AA)
        if face.landmarks is None:
            continue
        r = max(1, int(round(0.15 * unit * (1 << _SHIFT))))
        if mesh:
            for p in face.landmarks:
                cv2.circle(out, _cv(p), r, _MESH, -1, cv2.LINE_AA, _SHIFT)
        if points68:
            for p in face.landmarks68:
                cv2.circle(out, _cv(p), 2 * r + (1 << _SHIFT), _POINTS68, -1, cv2.LINE_AA, _SHIFT)
    return out
