"""mediapipe FaceMesh (468/478 points) -> iBUG / Multi-PIE 68 landmarks.

The table was checked point by point against the afw68 annotations (see DESIGN.md,
"Fitting notes"); an entry ``(a, b)`` is the mean of two mediapipe vertices. Indices of the
68 set count from 0 (iBUG point 37 in 1-based docs is index 36 here).
"""

from __future__ import annotations

import numpy as np

# iBUG index -> mediapipe vertex (or pair, averaged).
MEDIAPIPE_TO_68: tuple[tuple[int, ...], ...] = (
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (149,), (148,), (152,),  # jaw 0-8
    (377,), (378,), (365,), (397, 288), (288, 361), (323,), (454,), (356,),  # jaw 9-16
    (70,), (63,), (105,), (66,), (107,),  # right brow 17-21 (subject's right, image left)
    (336,), (296,), (334,), (293,), (300,),  # left brow 22-26
    (168,), (197,), (5,), (4,),  # nose bridge 27-30
    (98,), (97,), (2,), (326,), (327,),  # nostrils 31-35
    (33,), (160,), (158,), (133,), (153,), (144,),  # right eye 36-41
    (362,), (385,), (387,), (263,), (373,), (380,),  # left eye 42-47
    (61,), (39,), (37,), (0,), (267,), (270,), (291,),  # outer lip 48-54
    (321,), (314,), (17,), (84,), (181,),  # outer lip 55-59
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),  # inner lip 60-67
)

# Left/right mirror partner of each 68 index (an image flipped horizontally maps point i to MIRROR_68[i]).
MIRROR_PAIRS_68: tuple[tuple[int, int], ...] = (
    *((i, 16 - i) for i in range(8)),  # jaw
    *((17 + i, 26 - i) for i in range(5)),  # brows
    (31, 35), (32, 34),  # nostrils
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),  # outer lip
    (60, 64), (61, 63), (65, 67),  # inner lip
)
MIRROR_68: np.ndarray = np.arange(68)
for _a, _b in MIRROR_PAIRS_68:
    MIRROR_68[_a], MIRROR_68[_b] = _b, _a
MIRROR_68.setflags(write=False)

EYE_68 = np.arange(36, 48)
JAW_68 = np.arange(0, 17)

# Calibration: mean offset of each detected point (raw table) from the iBUG annotation, in
# units of the outer-eye-corner distance (36-45), in the face frame: +u along the eye line
# from point 36 to 45, +v perpendicular to it, pointing down the face. It holds both the
# vertex-vs-annotation semantics (e.g. jaw point 2 sits high on the mesh) and the ~1-2 px
# up-left bias of mediapipe against the annotations. Measured on afw68 (337 faces) with
# ``python -m faceeditor.face.evaluate --fit-offsets``; 2-fold cross-validated it lowers the
# median NME from 0.053 to 0.044. to_68(..., calibrated=True) subtracts it.
OFFSET_68_UV: np.ndarray = np.array([
    (+0.0331, +0.0231), (+0.0343, -0.0394), (+0.0217, -0.0989), (+0.0245, -0.0411), (-0.0029, -0.0699), (-0.0168, -0.0518),
    (+0.0182, -0.0240), (+0.0458, -0.0264), (-0.0179, -0.0424), (-0.0773, -0.0188), (-0.0453, -0.0117), (-0.0079, -0.0371),
    (-0.0181, -0.0533), (-0.0427, -0.0247), (-0.0426, -0.0848), (-0.0559, -0.0317), (-0.0584, +0.0273), (+0.0043, -0.0321),
    (-0.0255, +0.0003), (-0.0600, -0.0010), (-0.0689, -0.0127), (-0.0435, -0.0505), (+0.0265, -0.0404), (+0.0440, -0.0082),
    (+0.0336, -0.0006), (+0.0032, -0.0023), (-0.0165, -0.0371), (-0.0141, -0.0113), (-0.0128, +0.0237), (-0.0129, +0.0452),
    (-0.0161, +0.0023), (-0.0395, +0.0001), (-0.0138, -0.0058), (-0.0163, -0.0240), (-0.0138, -0.0036), (+0.0181, -0.0005),
    (-0.0165, -0.0144), (-0.0393, -0.0028), (-0.0266, -0.0115), (-0.0048, -0.0102), (-0.0052, -0.0071), (-0.0143, -0.0055),
    (-0.0108, -0.0093), (+0.0011, -0.0081), (+0.0145, -0.0044), (-0.0006, -0.0151), (-0.0101, -0.0054), (-0.0183, -0.0071),
    (+0.0061, -0.0097), (+0.0082, -0.0145), (-0.0218, -0.0131), (-0.0082, -0.0176), (-0.0050, -0.0153), (+0.0207, +0.0008),
    (-0.0268, -0.0098), (+0.0167, -0.0401), (-0.0089, -0.0102), (-0.0105, -0.0099), (-0.0179, -0.0099), (+0.0203, +0.0082),
    (-0.0192, -0.0119), (-0.0071, -0.0084), (-0.0104, -0.0120), (-0.0217, -0.0093), (-0.0037, -0.0127), (-0.0226, -0.0084),
    (-0.0103, -0.0122), (-0.0050, -0.0088),
])
OFFSET_68_UV.setflags(write=False)

# Flat index arrays for a vectorised gather: both columns equal for single-vertex entries.
_IDX = np.array([(e[0], e[-1]) for e in MEDIAPIPE_TO_68], dtype=np.int64)


def to_68(landmarks: np.ndarray, calibrated: bool = True) -> np.ndarray:
    """(N>=468, 2|3) mediapipe landmarks -> (68, 2) float32 iBUG points, same pixel frame.

    ``calibrated`` removes the measured per-point bias :data:`OFFSET_68_UV`, scaled and rotated
    to this face; ``False`` gives the plain table.
    """
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    if pts.ndim != 2 or pts.shape[0] < 468:
        raise ValueError(f"expected mediapipe landmarks (468 or 478 points), got shape {np.shape(landmarks)}")
    out = 0.5 * (pts[_IDX[:, 0]] + pts[_IDX[:, 1]])
    if calibrated:
        u = out[45] - out[36]
        d = float(np.hypot(*u))
        if d > 0:
            u /= d
            v = np.array([-u[1], u[0]])  # image y is down, so v points down the face
            out -= d * (OFFSET_68_UV[:, :1] * u + OFFSET_68_UV[:, 1:] * v)
    return out.astype(np.float32)


def mirror_68(points68: np.ndarray, width: float) -> np.ndarray:
    """68 points of a face -> the points of the horizontally flipped image (continuous coords)."""
    p = np.array(points68, dtype=np.float32)[MIRROR_68]
    p[:, 0] = width - p[:, 0]
    return p
