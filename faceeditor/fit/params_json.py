"""``params.json``: the fitted parameters of one face, human-readable and self-describing.

Required keys (stable; tools may rely on them): ``image_size`` [w, h]; ``face_box`` [x0, y0,
x1, y1]; ``pose`` {yaw, pitch, roll} degrees; ``translation`` [x, y, z] cm; ``focal_px``;
``identity`` (100); ``expression`` {ARKit name: weight} (53); ``lighting_sh`` (9 x 3);
``landmarks68`` (68 x 2 px); ``detector_landmarks68`` (68 x 2 px or null). Extras:
``principal_point``, ``rotation_matrix``, ``detector_score``, ``timings_ms``, ``fit_info``,
``landmarks68_source``, ``fov_deg``, ``version``, and ``conventions`` (the sign and frame
conventions in words, so the file explains itself).

:func:`read_params_json` rebuilds a :class:`~faceeditor.core.state.FaceState` without texture
or neural latent; the rotation comes from ``rotation_matrix`` (exact), or from ``pose``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from faceeditor import __version__
from faceeditor.core.atomic import atomic_write
from faceeditor.core.errors import ParamsFileError
from faceeditor.core.pose import euler_to_matrix
from faceeditor.core.state import FaceState
from faceeditor.fit.synthetic import state_vertices
from faceeditor.morphable.model import FaceModel

PARAMS_VERSION = 1

CONVENTIONS = {
    "pose": "degrees; yaw > 0: the person turns to their own left (nose moves to the image's right); "
            "pitch > 0: looks up; roll > 0: head tilts toward their left shoulder (clockwise in the image); "
            "rotation_matrix = R_y(yaw) R_x(-pitch) R_z(-roll) (faceeditor/core/pose.py)",
    "camera": "right-handed camera frame, +x right, +y up, the camera looks down -z (OpenGL); centimetres; "
              "posed vertex = rotation_matrix @ model_vertex + translation",
    "projection": "x_px = cx + focal_px * X / -Z, y_px = cy - focal_px * Y / -Z with (cx, cy) = principal_point",
    "image": "pixels; (0, 0) is the top-left corner of the top-left pixel, pixel centres at +0.5; y down",
    "model": "ICT-FaceKit: +X is the subject's left, +Y up, the face looks toward +Z, origin near the head centre",
    "identity": "ICT identity coefficients, ~N(0, 1)",
    "expression": "ARKit blendshape weights in [0, 1]; _L = the subject's left",
    "lighting_sh": "9 x RGB irradiance SH coefficients in the camera frame, basis order Y00, Y1-1 (y), Y10 (z), "
                   "Y11 (x), Y2-2, Y2-1, Y20, Y21, Y22; pixel = albedo * shading (faceeditor/render/sh.py)",
    "landmarks68": "iBUG-68 order, 0-based (point 36 = subject's right eye outer corner)",
}



def _floats(a, decimals: int | None = None) -> list:
    a = np.asarray(a, np.float64)
    if decimals is not None:
        a = np.round(a, decimals)
    return a.tolist()


def _jsonable(v):
    """Numbers, strings, bools, None, lists/dicts of them, numpy scalars and arrays -> JSON values."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str) or v is None:
        return v
    if isinstance(v, (int, float, np.number)):
        return float(v) if isinstance(v, (float, np.floating)) else int(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


def projected_landmarks68(state: FaceState, model: FaceModel) -> np.ndarray:
    """(68,2) pixels: the model's 68 landmark vertices, posed and projected into the photo."""
    with torch.no_grad():
        verts = state_vertices(model, state)[:, model.landmarks68]
        pix = state.camera().project(verts)[0, :, :2]
    return pix.cpu().numpy().astype(np.float64)


def params_dict(state: FaceState, model: FaceModel) -> dict:
    """The JSON-ready dict of ``state`` (see the module docstring for the keys)."""
    if len(model.expression_names) != len(state.expression):
        raise ValueError(f"state has {len(state.expression)} expression weights, model {len(model.expression_names)}")
    if state.fitted_landmarks68 is not None:
        lm68, source = np.asarray(state.fitted_landmarks68), "fit"
    else:
        lm68, source = projected_landmarks68(state, model), "mesh_vertices"
    w, h = (int(v) for v in state.image_size)
    cx, cy = state.centre
    f = float(state.focal_px)
    det68 = state.detector_landmarks68
    return {
        "version": PARAMS_VERSION,
        "faceeditor_version": __version__,
        "image_size": [w, h],
        "face_box": _floats(state.face_box, 3),
        "pose": {k: round(v, 6) for k, v in state.pose_degrees.items()},
        "translation": _floats(state.translation),
        "focal_px": f,
        "principal_point": [float(cx), float(cy)],
        "fov_deg": {"x": math.degrees(2 * math.atan(w / (2 * f))), "y": math.degrees(2 * math.atan(h / (2 * f)))},
        "rotation_matrix": _floats(np.asarray(state.rotation).reshape(3, 3)),
        "identity": _floats(state.identity),
        "expression": {n: float(v) for n, v in zip(model.expression_names, np.asarray(state.expression))},
        "lighting_sh": _floats(np.asarray(state.sh).reshape(9, 3)),
        "landmarks68": _floats(lm68.reshape(68, 2), 3),
        "landmarks68_source": source,
        "detector_landmarks68": None if det68 is None else _floats(np.asarray(det68)[:, :2].reshape(68, 2), 3),
        "detector_score": float(state.detector_score),
        "timings_ms": {k: float(v) for k, v in state.timings_ms.items()},
        "fit_info": {str(k): _jsonable(v) for k, v in state.fit_info.items()},
        "conventions": CONVENTIONS,
    }


def write_params_json(path: str | Path, state: FaceState, model: FaceModel) -> Path:
    """Write :func:`params_dict` to ``path`` atomically (the folder must exist). Returns the path."""
    path = Path(path)
    text = json.dumps(params_dict(state, model), indent=2) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode()))
    return path


def read_params_json(path: str | Path, model: FaceModel | None = None) -> FaceState:
    """A FaceState (no texture, latent or 478 landmarks) from a params.json.

    Expression weights are ordered by ``model.expression_names`` when a model is given (names
    must match), else in file order. Raises :class:`ParamsFileError` for unreadable files.
    """
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParamsFileError(f"{path}: cannot read parameters ({exc})") from exc
    try:
        if "rotation_matrix" in d:
            R = np.asarray(d["rotation_matrix"], np.float32).reshape(3, 3)
        else:
            p = d["pose"]
            R = euler_to_matrix(float(p["yaw"]), float(p["pitch"]), float(p["roll"]))[0].numpy()
        expr = d["expression"]
        if model is not None:
            unknown = set(expr) - set(model.expression_names)
            if unknown:
                raise ValueError(f"unknown expression names {sorted(unknown)}")
            expression = np.array([float(expr.get(n, 0.0)) for n in model.expression_names], np.float32)
        else:
            expression = np.array([float(v) for v in expr.values()], np.float32)
        det68 = d.get("detector_landmarks68")
        return FaceState(
            image_size=(int(d["image_size"][0]), int(d["image_size"][1])),
            face_box=tuple(float(v) for v in d["face_box"]),
            rotation=R,
            translation=np.asarray(d["translation"], np.float32).reshape(3),
            focal_px=float(d["focal_px"]),
            identity=np.asarray(d["identity"], np.float32).reshape(-1),
            expression=expression,
            sh=np.asarray(d["lighting_sh"], np.float32).reshape(9, 3),
            principal=tuple(float(v) for v in d["principal_point"]) if d.get("principal_point") else None,
            detector_score=float(d.get("detector_score", 0.0)),
            detector_landmarks68=None if det68 is None else np.asarray(det68, np.float32).reshape(68, 2),
            fitted_landmarks68=(np.asarray(d["landmarks68"], np.float32).reshape(68, 2)
                                if d.get("landmarks68_source", "fit") == "fit" else None),
            timings_ms=dict(d.get("timings_ms", {})),
            fit_info=dict(d.get("fit_info", {})),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ParamsFileError(f"{path}: not a FaceEditor params.json ({type(exc).__name__}: {exc})") from exc
