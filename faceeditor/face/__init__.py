"""Face detection and landmarks: mediapipe FaceMesh (478 points) per face, iBUG-68 index maps.

See :mod:`faceeditor.face.detect` (pipeline, pixel convention), :mod:`faceeditor.face.landmarks68`
(mediapipe -> 68 table, mirror pairs) and :mod:`faceeditor.face.evaluate` (NME on afw68).
"""

from faceeditor.face.detect import (
    MIN_FACE_PX,
    Face,
    FaceDetector,
    FaceTooSmallError,
    NoFaceError,
    detect_faces,
    get_detector,
)
from faceeditor.face.landmarks68 import MEDIAPIPE_TO_68, MIRROR_68, MIRROR_PAIRS_68, to_68

__all__ = [
    "MEDIAPIPE_TO_68",
    "MIN_FACE_PX",
    "MIRROR_68",
    "MIRROR_PAIRS_68",
    "Face",
    "FaceDetector",
    "FaceTooSmallError",
    "NoFaceError",
    "detect_faces",
    "get_detector",
    "to_68",
]
