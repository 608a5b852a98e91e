"""Face identity descriptors: dlib's 128-D ResNet face embedding (the ``face_recognition`` model).

``descriptor(rgb, box=None)`` finds the face with dlib's HOG detector (or uses the given box),
aligns it with the 5-point shape predictor and returns the 128-D embedding; ``distance(a, b)``
is their Euclidean distance. dlib's own same-person threshold is :data:`SAME_PERSON_THRESHOLD`
(0.6, ~99.4% accuracy on LFW). Used by the edit benchmark to check that edits keep identity.

Model files come from the ``face_recognition_models`` package, located with
``importlib.util.find_spec`` (importing it needs ``pkg_resources``, which may be absent). The
loaded dlib models (~1 s to load) live in a :class:`DlibIdentity` that the caller builds once and
passes as ``models=``; without one each call loads its own. dlib objects are not thread-safe:
calls on one :class:`DlibIdentity` are serialised by its lock.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from faceeditor.core.errors import ModelMissingError, NoFaceError

SAME_PERSON_THRESHOLD = 0.6
DESCRIPTOR_SIZE = 128

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


def models_dir() -> Path:
    """Folder holding dlib's model files (``face_recognition_models/models``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError("face_recognition_models is not installed (pip install face-recognition-models)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models"
    if not (path / "dlib_face_recognition_resnet_model_v1.dat").is_file():
        raise ModelMissingError(f"dlib face recognition model missing from {path}")
    return path


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 RGB image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


class DlibIdentity:
    """dlib's HOG face detector, 5-point shape predictor and ResNet descriptor, loaded once."""

    def __init__(self) -> None:
        import dlib  # slow import; only when the models are loaded

        d = models_dir()
        self._lock = threading.Lock()
        self.detector = dlib.get_frontal_face_detector()
        self.shape_predictor = dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))
        self.recognizer = dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat"))

    def detect(self, rgb: np.ndarray, upsample: int = 1) -> list[Box]:
        """dlib HOG face boxes (x0, y0, x1, y1), largest first."""
        with self._lock:
            rects = self.detector(_rgb(rgb), upsample)
        boxes = [(float(r.left()), float(r.top()), float(r.right()), float(r.bottom())) for r in rects]
        return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))

    def descriptor(self, rgb: np.ndarray, box: Box | None = None, jitter: int = 0, upsample: int = 1) -> np.ndarray:
        """128-D float32 descriptor of the largest face (or of the face in ``box``).

        Raises :class:`faceeditor.core.errors.NoFaceError` when no box is given and dlib finds no face.
        """
        import dlib

        img = _rgb(rgb)
        if box is None:
            boxes = self.detect(img, upsample)
            if not boxes:
                raise NoFaceError("dlib found no face for the identity descriptor")
            box = boxes[0]
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        with self._lock:
            shape = self.shape_predictor(img, dlib.rectangle(x0, y0, x1, y1))
            vec = self.recognizer.compute_face_descriptor(img, shape, jitter)
        return np.asarray(vec, dtype=np.float32)


def detect(rgb: np.ndarray, upsample: int = 1, models: DlibIdentity | None = None) -> list[Box]:
    """dlib HOG face boxes (x0, y0, x1, y1), largest first (``models``: the caller's loaded models)."""
    img = _rgb(rgb)  # bad input fails before the models load
    return (models or DlibIdentity()).detect(img, upsample)


def descriptor(rgb: np.ndarray, box: Box | None = None, jitter: int = 0, upsample: int = 1,
               models: DlibIdentity | None = None) -> np.ndarray:
    """128-D float32 descriptor of the largest face (or of the face in ``box``); see
    :meth:`DlibIdentity.descriptor` (``models``: the caller's loaded models)."""
    img = _rgb(rgb)  # bad input fails before the models load
    return (models or DlibIdentity()).descriptor(img, box, jitter, upsample)


BOX_FROM_LANDMARKS = (-0.058, -0.048, 1.73)  # dlib's HOG box vs 68 landmarks: centre offset (x, y), side; eye distances


def box_from_landmarks(lm68: np.ndarray) -> Box:
    """The box dlib's HOG detector would give the face of iBUG-68 landmarks ``lm68`` (68,2+), for
    faces it does not find itself (measured offsets :data:`BOX_FROM_LANDMARKS`)."""
    lm = np.asarray(lm68, np.float64)[:, :2]
    d = float(np.linalg.norm(lm[45] - lm[36]))
    dx, dy, side = BOX_FROM_LANDMARKS
    c = lm[17:].mean(0) + np.array([dx, dy]) * d
    half = side * d / 2
    return (float(c[0] - half), float(c[1] - half), float(c[0] + half), float(c[1] + half))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two descriptors (< 0.6: the same person by dlib's threshold)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def same_person(a: np.ndarray, b: np.ndarray, threshold: float = SAME_PERSON_THRESHOLD) -> bool:
    return distance(a, b) < threshold
