"""Draw a fitted head over its photo for checking by eye: mesh wireframe, 68-point sets, legend.

The wireframe (front-facing triangles of :attr:`FaceModel.skin_faces`) is drawn into a small
mask at a fixed face scale (:data:`RENDER_FACE_PX`), then resampled onto the face's region of
the photo and blended: line width and cost scale with the face, not the photo, so a
12-megapixel photo costs about what a small one does. Where the face is small the mesh is
coarsened by vertex clustering (kept in ``model.derived``) so its edges stay readable instead of a solid tint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from faceeditor.core.state import FaceState
from faceeditor.fit.synthetic import state_vertices
from faceeditor.morphable.model import FaceModel

RENDER_FACE_PX = 640  # face size (px) at which the wireframe mask is drawn, 1 px lines
MIN_EDGE_SPACING_PX = 6.0  # below this edge length (px) the mesh is drawn coarsened (vertex clustering)
FACE_CM = 16.0  # about the width of the 68-point box on the ICT head (ear to ear at the jaw)
NATIVE_EDGE_CM = 0.35  # typical edge length of the ICT skin mesh
CLUSTER_CELLS_CM = (0.5, 0.7, 1.0, 1.4, 2.0)  # coarsening levels (each kept in model.derived)
MESH_RGB = (90, 200, 255)
DETECTOR_RGB = (40, 255, 40)
FITTED_RGB = (255, 50, 200)
_SHIFT = 4  # cv2 sub-pixel bits


def _cv(pts: np.ndarray) -> np.ndarray:
    """Continuous pixel coords (project convention, centres at +0.5) -> cv2 fixed-point int32."""
    p = np.asarray(pts, np.float64)[..., :2] - 0.5
    return np.round(p * (1 << _SHIFT)).astype(np.int32)


def _projected(state: FaceState, model: FaceModel) -> np.ndarray:
    with torch.no_grad():
        return state.camera().project(state_vertices(model, state))[0].cpu().numpy().astype(np.float64)


def visible_edges(pix: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unique undirected edges (E,2) of triangles in front of the camera and facing it.

    Counter-clockwise front faces in the camera frame (y up) turn clockwise in the image (y down).
    """
    p = pix[faces]  # (F,3,3)
    a, b = p[:, 1, :2] - p[:, 0, :2], p[:, 2, :2] - p[:, 0, :2]
    front = (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0] < 0) & (p[:, :, 2] > 0).all(1)
    f = faces[front]
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


def _blend(out: np.ndarray, alpha: np.ndarray, rgb: tuple[int, int, int], y0: int, x0: int) -> None:
    """out[y0:, x0:] = mix(out, rgb, alpha) in place; alpha uint8 (h,w) in 0..255."""
    h, w = alpha.shape
    roi = out[y0:y0 + h, x0:x0 + w]
    a = alpha.astype(np.int32)[..., None]
    col = np.asarray(rgb, np.int32)
    roi[:] = (roi.astype(np.int32) * (255 - a) + col * a + 127) // 255


def cluster_mesh(points: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertex-clustering simplification of the triangles ``faces`` over ``points`` (V,3), binned on a
    ``cell``-sized grid. Returns (vertices used (U,), their cluster ids (U,), triangles (F',3) over
    cluster ids, orientation kept)."""
    used, local = np.unique(faces, return_inverse=True)
    _, cid = np.unique(np.floor(points[used] / cell).astype(np.int64), axis=0, return_inverse=True)
    cid = cid.reshape(-1)
    cf = cid[local.reshape(faces.shape)]
    cf = cf[(cf[:, 0] != cf[:, 1]) & (cf[:, 1] != cf[:, 2]) & (cf[:, 0] != cf[:, 2])]
    _, first = np.unique(np.sort(cf, axis=1), axis=0, return_index=True)
    return used, cid, cf[np.sort(first)]


def _wire_mesh(model: FaceModel, faces: np.ndarray, pix: np.ndarray, face_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Projected points and triangles to draw: the mesh itself, or a clustered coarser one when the
    face is too small for its edges to stay :data:`MIN_EDGE_SPACING_PX` apart."""
    want = MIN_EDGE_SPACING_PX * FACE_CM / max(face_px, 1.0)  # cm per MIN_EDGE_SPACING_PX
    if want <= NATIVE_EDGE_CM:
        return pix, faces
    cell = next((c for c in CLUSTER_CELLS_CM if c >= want), CLUSTER_CELLS_CM[-1])
    key = ("fit.overlay_cluster", hashlib.blake2b(np.ascontiguousarray(faces).tobytes(), digest_size=8).hexdigest(),
           cell)
    used, cid, cfaces = model.derived.get(key, lambda: cluster_mesh(model.neutral.cpu().numpy(), faces, cell))
    n = int(cid.max()) + 1
    count = np.bincount(cid, minlength=n)
    mean = np.stack([np.bincount(cid, pix[used, j], minlength=n) for j in range(3)], 1) / count[:, None]
    return mean, cfaces


def _draw_mesh(out: np.ndarray, pix: np.ndarray, faces: np.ndarray, face_px: float, opacity: float) -> None:
    edges = visible_edges(pix, faces)
    if len(edges) == 0:
        return
    H, W = out.shape[:2]
    used = pix[np.unique(edges)]
    x0, y0 = max(int(np.floor(used[:, 0].min())) - 2, 0), max(int(np.floor(used[:, 1].min())) - 2, 0)
    x1, y1 = min(int(np.ceil(used[:, 0].max())) + 2, W), min(int(np.ceil(used[:, 1].max())) + 2, H)
    if x1 <= x0 or y1 <= y0:
        return
    k = RENDER_FACE_PX / max(face_px, 1.0)  # canvas pixels per photo pixel
    cw, ch = max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k))
    kx, ky = cw / (x1 - x0), ch / (y1 - y0)
    canvas = np.zeros((ch, cw), np.uint8)
    seg = (pix[edges][:, :, :2] - (x0, y0)) * (kx, ky) - 0.5  # (E, 2 ends, 2), cv2 centres at integers
    seg = np.round(seg * (1 << _SHIFT)).astype(np.int32)
    cv2.polylines(canvas, list(seg), False, 255, 1, cv2.LINE_AA, _SHIFT)
    interp = cv2.INTER_AREA if k > 1 else cv2.INTER_LINEAR
    mask = cv2.resize(canvas, (x1 - x0, y1 - y0), interpolation=interp).astype(np.float32)
    if k > 1:  # shrinking thins lines below a pixel: keep them visible
        mask *= min(k, 2.5)
    _blend(out, np.minimum(mask * opacity, 255).astype(np.uint8), MESH_RGB, y0, x0)


def _draw_points(out: np.ndarray, pts: np.ndarray, rgb: tuple[int, int, int], radius: float, filled: bool) -> None:
    r = max(1, int(round(radius * (1 << _SHIFT))))
    t = -1 if filled else max(1, int(round(radius * 0.5)))
    for p in _cv(pts):
        cv2.circle(out, (int(p[0]), int(p[1])), r, rgb, t, cv2.LINE_AA, _SHIFT)


def _draw_legend(out: np.ndarray, entries: list[tuple[str, tuple[int, int, int]]]) -> None:
    unit = max(1.0, max(out.shape[:2]) / 800.0)
    scale, thick = 0.5 * unit, max(1, int(round(unit)))
    line_h = int(20 * unit)
    pad = int(6 * unit)
    width = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] for t, _ in entries)
    w, h = min(out.shape[1], width + 4 * pad + line_h), min(out.shape[0], line_h * len(entries) + 2 * pad)
    _blend(out, np.full((h, w), 150, np.uint8), (0, 0, 0), 0, 0)
    for i, (text, rgb) in enumerate(entries):
        cy = pad + i * line_h + line_h // 2
        cv2.circle(out, (pad + line_h // 3, cy), max(2, line_h // 4), rgb, -1, cv2.LINE_AA)
        cv2.putText(out, text, (2 * pad + line_h // 2 + pad, cy + int(5 * unit)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)


def draw_fit_overlay(rgb: np.ndarray, state: FaceState | Sequence[FaceState], model: FaceModel,
                     faces: torch.Tensor | np.ndarray | None = None, mesh_opacity: float = 0.45,
                     legend: bool = True) -> np.ndarray:
    """A copy of uint8 RGB ``rgb`` with each fitted face drawn: the wireframe of ``faces``
    (triangles (F',3), default ``model.skin_faces``), the detector's 68 points (green rings),
    the fitted model's 68 points (magenta dots), a pose label, and a legend in the corner."""
    states = [state] if not isinstance(state, Sequence) else list(state)
    out = np.ascontiguousarray(np.asarray(rgb)[:, :, :3], dtype=np.uint8).copy()
    tri = (model.skin_faces if faces is None else torch.as_tensor(faces)).cpu().numpy().astype(np.int64)
    for i, st in enumerate(states):
        pix = _projected(st, model)
        lm = model.landmarks68.cpu().numpy()
        fitted = np.asarray(st.fitted_landmarks68 if st.fitted_landmarks68 is not None else pix[lm, :2], np.float64)
        lo, hi = fitted.min(0), fitted.max(0)
        face_px = float(max(hi - lo))  # size of the 68-point box: brow to chin, ear to ear
        _draw_mesh(out, *_wire_mesh(model, tri, pix, face_px), face_px, mesh_opacity)
        radius = max(1.5, face_px / 180.0)
        if st.detector_landmarks68 is not None:
            _draw_points(out, np.asarray(st.detector_landmarks68)[:, :2], DETECTOR_RGB, radius * 1.3, filled=False)
        _draw_points(out, fitted, FITTED_RGB, radius, filled=True)
        pose = st.pose_degrees
        label = (f"{i + 1}: " if len(states) > 1 else "") + \
            f"yaw {pose['yaw']:+.0f} pitch {pose['pitch']:+.0f} roll {pose['roll']:+.0f}"
        fs = max(0.4, face_px / 600.0)
        org = (int(lo[0]), max(int(14 * fs), int(lo[1] - 0.12 * face_px)))
        for colour, t in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, fs, colour, max(1, int(t * fs)), cv2.LINE_AA)
    if legend:
        _draw_legend(out, [("fitted mesh", MESH_RGB), ("detector 68", DETECTOR_RGB), ("fitted 68", FITTED_RGB)])
    return out
