"""Synthetic scenes with known answers: random ICT faces rendered into photos.

Used by known-answer tests (render a face with known pose/identity/expression/light, fit it
back, compare) and by the fit benchmark's ``synthetic_*`` keys.
"""

from __future__ import annotations

import numpy as np
import torch

from faceeditor.core.pose import euler_to_matrix
from faceeditor.core.state import FaceState
from faceeditor.face.detect import FaceDetector, NoFaceError
from faceeditor.fit.pipeline import fit_photo
from faceeditor.morphable.model import FaceModel
from faceeditor.render.face_render import posed_vertices, render_face
from faceeditor.render.sh import direction_from_angles, directional_sh

# blendshapes visible in 2D landmarks (eye gaze, cheek puff and a few subtle ones are not)
OBSERVABLE_EXPRESSIONS = ("browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L",
                          "browOuterUp_R", "eyeBlink_L", "eyeBlink_R", "eyeWide_L", "eyeWide_R", "jawOpen",
                          "mouthSmile_L", "mouthSmile_R", "mouthFunnel", "mouthPucker", "mouthStretch_L",
                          "mouthStretch_R", "mouthFrown_L", "mouthFrown_R", "mouthLowerDown_L", "mouthLowerDown_R",
                          "mouthUpperUp_L", "mouthUpperUp_R")


def random_face_state(model: FaceModel, seed: int, image_size: tuple[int, int] = (512, 512),
                      max_angle: tuple[float, float, float] = (30.0, 15.0, 10.0), n_active: int = 3,
                      face_height_frac: float = 0.45) -> FaceState:
    """A random, plausible face: identity ~ N(0, 0.8^2), ``n_active`` observable expressions in
    [0.2, 0.8], pose uniform within ``max_angle`` (yaw, pitch, roll), a directional light."""
    g = np.random.default_rng(seed)
    w, h = image_size
    identity = (g.standard_normal(model.n_identity) * 0.8).astype(np.float32)
    expression = np.zeros(model.n_expression, np.float32)
    for name in g.choice(OBSERVABLE_EXPRESSIONS, size=n_active, replace=False):
        expression[model.expression_index(str(name))] = g.uniform(0.2, 0.8)
    yaw, pitch, roll = (g.uniform(-a, a) for a in max_angle)
    R = euler_to_matrix(yaw, pitch, roll)[0].numpy()
    focal = float(g.uniform(1.2, 2.5) * max(w, h))
    # place the head so the face (~22 cm chin to hairline... use 20 cm) spans face_height_frac of the image
    depth = focal * 20.0 / (face_height_frac * h)
    t = np.array([g.uniform(-0.05, 0.05) * depth * w / focal, g.uniform(-0.05, 0.05) * depth * h / focal, -depth],
                 np.float32)
    light = directional_sh(direction_from_angles(g.uniform(-50, 50), g.uniform(-20, 40)), g.uniform(0.5, 0.8),
                           g.uniform(0.25, 0.45)).numpy()
    return FaceState(image_size=(w, h), face_box=(0.0, 0.0, float(w), float(h)), rotation=R.astype(np.float32),
                     translation=t, focal_px=focal, identity=identity, expression=expression, sh=light)


def state_vertices(model: FaceModel, state: FaceState) -> torch.Tensor:
    """Camera-frame vertices (1,V,3) of a state."""
    dev = model.device
    return posed_vertices(model, torch.as_tensor(state.identity, device=dev)[None],
                          torch.as_tensor(state.expression, device=dev)[None],
                          torch.as_tensor(state.rotation, device=dev)[None],
                          torch.as_tensor(state.translation, device=dev)[None])


def render_state(model: FaceModel, state: FaceState, atlas: np.ndarray, background: np.ndarray | None = None,
                 soft_radius: float = 1.0) -> np.ndarray:
    """uint8 HxWx3 photo of ``state`` with albedo ``atlas`` (float32 (Ha,Wa,3) in [0,1]) over ``background``."""
    w, h = state.image_size
    dev = model.device
    tex = torch.as_tensor(atlas, device=dev).permute(2, 0, 1)[None].float()
    bg = 0.35 if background is None else torch.as_tensor(background, device=dev).permute(2, 0, 1)[None].float() / 255
    out = render_face(model, state_vertices(model, state), state.camera(), tex,
                      torch.as_tensor(state.sh, device=dev)[None], background=bg, soft_radius=soft_radius)
    img = out.image[0].permute(1, 2, 0).clamp(0, 1).detach().cpu().numpy()
    return (img * 255.0 + 0.5).astype(np.uint8)


def rotation_error_deg(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Angle (degrees) of the rotation taking ``R_b`` to ``R_a``."""
    c = (np.trace(np.asarray(R_a, np.float64) @ np.asarray(R_b, np.float64).T) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def smooth_background(size: tuple[int, int], seed: int) -> np.ndarray:
    """A uint8 HxWx3 low-frequency colour field (keeps detectors honest without giving away the face)."""
    import cv2

    g = np.random.default_rng(seed)
    w, h = size
    small = (g.uniform(40, 200, size=(6, 6, 3))).astype(np.float32)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def synthetic_recovery(model: FaceModel, atlas: np.ndarray, n: int = 20, seed: int = 0,
                       image_size: tuple[int, int] = (512, 512),
                       detector: FaceDetector | None = None) -> dict[str, list[float]]:
    """Render ``n`` random faces with ``atlas`` (float (2T,4T,3)), detect and landmark-fit them back.

    Returns per-face ``rotation_err_deg``, ``expression_mae`` (all 53 weights),
    ``expression_mae_active`` (the weights set in the ground truth) and ``detected`` (0/1).
    ``detector``: the caller's (else one is built for these ``n`` faces).
    """
    if detector is None:
        with FaceDetector() as own:
            return synthetic_recovery(model, atlas, n, seed, image_size, own)
    out: dict[str, list[float]] = {"rotation_err_deg": [], "expression_mae": [], "expression_mae_active": [],
                                   "yaw_err_deg": [], "detected": []}
    for i in range(n):
        truth = random_face_state(model, seed * 1000 + i, image_size)
        photo = render_state(model, truth, atlas, smooth_background(image_size, seed * 1000 + i))
        try:
            faces = detector.detect(photo, max_faces=1)
        except NoFaceError:
            out["detected"].append(0.0)
            continue
        out["detected"].append(1.0)
        fit = fit_photo(photo, faces=faces, photometric=False, model=model)[0]
        out["rotation_err_deg"].append(rotation_error_deg(fit.rotation, truth.rotation))
        out["yaw_err_deg"].append(abs(fit.pose_degrees["yaw"] - truth.pose_degrees["yaw"]))
        diff = np.abs(fit.expression - truth.expression)
        out["expression_mae"].append(float(diff.mean()))
        out["expression_mae_active"].append(float(diff[truth.expression > 0].mean()))
    return out
