"""Photo -> fitted faces: detection, landmark fit (GAR eq. 12), photometric fit -> ``FaceState``.

``progress(stage, fraction, loss)`` is called between stages (and by long stages inside); it
returns False to cancel, which raises :class:`~faceeditor.core.errors.Cancelled`.
"""

from __future__ import annotations

import time

import numpy as np

from faceeditor.core.progress import Progress, check_progress
from faceeditor.core.state import FaceState
from faceeditor.face.detect import Face, FaceDetector, NoFaceError, detect_faces
from faceeditor.fit.landmarks import LandmarkFit, LandmarkFitConfig, LandmarkFitter
from faceeditor.fit.photometric import PhotometricConfig, fit_photometric
from faceeditor.morphable.model import FaceModel, load_face_model
from faceeditor.render.sh import neutral_sh


def get_fitter(model: FaceModel) -> LandmarkFitter:
    """The model's landmark fitter with the default config: built once (its sliced bases take a
    while) and kept in ``model.derived``, so it lives as long as the model its caller holds."""
    return model.derived.get("fit.landmark_fitter", lambda: LandmarkFitter(model, LandmarkFitConfig()))


def state_from_landmark_fit(face: Face, fit: LandmarkFit, image_size: tuple[int, int]) -> FaceState:
    """A ``FaceState`` holding the geometry of a landmark fit (flat white light, no texture yet)."""
    return FaceState(
        image_size=(int(image_size[0]), int(image_size[1])), face_box=tuple(float(v) for v in face.box),
        rotation=fit.rotation.astype(np.float32), translation=fit.translation.astype(np.float32),
        focal_px=float(fit.focal), identity=fit.identity.astype(np.float32),
        expression=fit.expression.astype(np.float32), sh=neutral_sh(1.0).numpy(),
        detector_landmarks=face.landmarks.astype(np.float32), detector_score=float(face.score),
        detector_landmarks68=face.landmarks68.astype(np.float32), fitted_landmarks68=fit.fitted68.astype(np.float32),
        timings_ms={"landmark_fit": fit.ms},
        fit_info={"landmark_rms_px": fit.rms_px, "iterations": float(fit.iterations)})


def _check(progress: Progress | None, stage: str, fraction: float, loss: float | None = None) -> None:
    check_progress(progress, stage, fraction, loss, task="fit")


def fit_face(rgb: np.ndarray, face: Face, model: FaceModel | None = None, photometric: bool = True,
             texture_size: int = 512, refine_steps: int = 0, progress: Progress | None = None) -> FaceState:
    """Fit one detected face of a uint8 RGB photo."""
    model = model or load_face_model()
    h, w = rgb.shape[:2]
    _check(progress, "landmarks", 0.0)
    fit = get_fitter(model).fit(face.landmarks68, (w, h), dense478=face.landmarks)
    state = state_from_landmark_fit(face, fit, (w, h))
    _check(progress, "landmarks", 1.0, fit.rms_px)
    if photometric:
        _check(progress, "photometric", 0.0)
        state = fit_photometric(rgb, state, model, PhotometricConfig(texture_size=texture_size,
                                                                     refine_steps=refine_steps), progress)
        _check(progress, "photometric", 1.0)
    return state


def fit_photo(rgb: np.ndarray, face_index: int | None = None, all_faces: bool = False, photometric: bool = True,
              texture_size: int = 512, progress: Progress | None = None, refine_steps: int = 0,
              faces: list[Face] | None = None, model: FaceModel | None = None,
              detector: FaceDetector | None = None) -> list[FaceState]:
    """Detect (unless ``faces`` are given; with ``detector`` when the caller keeps one) and fit: the
    largest face, face ``face_index`` (0-based, largest first) or, with ``all_faces``, every usable
    face. Raises :class:`NoFaceError` when there is nothing to fit and `Cancelled` when
    ``progress`` returns False."""
    t0 = time.perf_counter()
    model = model or load_face_model()
    _check(progress, "detect", 0.0)
    if faces is None:
        faces = detect_faces(rgb, detector=detector)
    det_ms = (time.perf_counter() - t0) * 1000.0
    if face_index is not None and not 0 <= face_index < len(faces):
        raise NoFaceError(f"face {face_index + 1} requested but {len(faces)} face(s) found")
    chosen = faces if all_faces else [faces[face_index or 0]]
    states = []
    for i, face in enumerate(chosen):
        def sub(stage: str, fraction: float, loss: float | None = None, i=i) -> bool:
            return progress is None or progress(stage, (i + fraction) / len(chosen), loss) is not False

        st = fit_face(rgb, face, model, photometric, texture_size, refine_steps, sub if progress else None)
        st.timings_ms["detect"] = det_ms
        states.append(st)
    _check(progress, "done", 1.0)
    return states
