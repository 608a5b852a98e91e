"""The whole person under a new light: where the relight applies and the normals it uses.

The fitted ICT head gives normals on the face, ears, scalp and neck; hair beyond the scalp, the
neck below the mesh and the clothing have none, and a relight of the face alone reads as a mask
pasted on the photo. So the person is relit as one surface (:func:`log_ratio_map`):

* **off the mesh** the person mask (mediapipe selfie segmentation,
  :func:`faceeditor.edit.layers.segment_person`) is *inflated* into a smooth height field, a
  quarter-circle profile of the distance to its outline, blurred (:func:`silhouette_normals`):
  its normals face the camera inside the person and turn outward, perpendicular to the view, at
  its silhouette, the way a rounded body's do;
* **on the mesh** the edited and fitted head's own normals are used: on the face material fully,
  on the scalp and neck blended into the silhouette normals over a band inside the mesh's outline
  (:data:`MESH_BLEND`), so the shading is continuous where hair and collar meet the head;
* the luminance log ratio (:func:`faceeditor.edit.relight.log_ratio`) is filled from the
  surrounding skin where the photo's shading is not the mesh's (eyes, mouth interior, unseen
  sources: :func:`faceeditor.edit.blendmap.push_pull`) and smoothed (:data:`RATIO_SMOOTH`): it is
  a property of the low-frequency shading, the albedo never enters it;
* it is applied with the weight ``max(person alpha, fitted face) x reach``: the face whatever the
  segmentation says (its outline eroded, so a fit that overshoots never relights background), the
  rest of the person where the segmentation says so, fading with the distance from the fitted head
  and neck (:data:`REACH`) so that no boundary shows between relit and untouched clothing. The
  fitted neck and scalp count as person only where the segmentation agrees (a collar or
  background beside the jaw is not relit).

What does not depend on the edit (alpha, silhouette normals, reach on one work window) is made once
per output size by :func:`prepare` and kept by the caller (the compositor).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from faceeditor.edit import blendmap, relight
from faceeditor.edit.flow import Sources
from faceeditor.edit.grid import Window
from faceeditor.morphable.model import FaceModel

TRI_SKIN, TRI_HEAD, TRI_INNER = 0, 1, 2  # face skin and ears / scalp and neck / eyes, mouth, sockets
INFLATE_RADIUS = 0.3  # head fraction: depth of the person's rounded outline (silhouette normals)
REACH = (0.15, 0.6)  # head fractions from the fitted head and neck: full relight, then cosine to none
#                      (inside the compositor's region of interest, 0.8 head sizes)
FACE_CORE = 0.04  # head fraction: the fitted face's silhouette eroded by this is relit in any case
FACE_FEATHER = 0.02  # head fraction: Gaussian sigma that softens it
MESH_BLEND = 0.08  # head fraction: mesh normals fade into silhouette normals over this band inside the mesh
RATIO_SMOOTH = 0.01  # head fraction: Gaussian sigma of the log-ratio smoothing


@dataclass
class PersonShading:
    """What the relight of one work window needs of the photo (all (H,W) on the window's grid)."""

    alpha: np.ndarray  # float32 person alpha (segmentation)
    normals: np.ndarray  # (H,W,3) float32 unit silhouette normals, camera space
    reach: np.ndarray  # float32 in [0,1]: 1 near the fitted head and neck, 0 from REACH[1] on
    head_px: float  # head size in grid pixels


def triangle_classes(model: FaceModel, face_ids: torch.Tensor) -> torch.Tensor:
    """(F',) int8 over rendered triangles ``face_ids``: :data:`TRI_SKIN` (face material: face and
    ears), :data:`TRI_HEAD` (head and neck material: scalp, neck; hair and collar in a photo) or
    :data:`TRI_INNER` (eyes, teeth, gums and the mouth and eye sockets, whose photo shading is
    not the mesh's)."""
    tri = model.faces[face_ids]
    region = model.face_region[face_ids]
    inner = [model.vertex_region_names.index(n) for n in ("mouth_socket", "eye_socket")]
    in_socket = torch.isin(model.vertex_region[tri], torch.tensor(inner)).any(1)
    out = torch.full(region.shape, TRI_INNER, dtype=torch.int8)
    out[(region == model.region_names.index("M_Face")) & ~in_socket] = TRI_SKIN
    out[region == model.region_names.index("M_BackHead")] = TRI_HEAD
    return out


def silhouette_normals(alpha: np.ndarray, radius_px: float) -> np.ndarray:
    """(H,W,3) unit camera-space normals (+y up, +z toward the camera) of the person mask
    ``alpha`` (H,W) inflated into a height field ``h = R sqrt(1 - (1 - min(d / R, 1))^2)``, ``d``
    the distance to the outline, blurred by ``R / 3``: ``n ~ (-dh/dx, dh/dy_image, 1)``."""
    r = max(float(radius_px), 1.0)
    inside = (alpha > 0.5).astype(np.uint8)
    d = cv2.distanceTransform(inside, cv2.DIST_L2, 5) if inside.any() else np.zeros(alpha.shape, np.float32)
    x = np.clip(d / r, 0.0, 1.0)
    h = (r * np.sqrt(1.0 - np.square(1.0 - x)) * inside).astype(np.float32)
    h = blendmap.feather(h, r / 3.0)
    hy, hx = np.gradient(h)
    n = np.stack([-hx, hy, np.ones_like(h)], axis=-1)
    return (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)


def person_on_grid(person: np.ndarray, win: Window, size: tuple[int, int]) -> np.ndarray:
    """The person alpha (any size, float in [0,1]) sampled on ``win``'s grid of an output of ``size`` (w, h)."""
    sx, sy = person.shape[1] / size[0], person.shape[0] / size[1]
    M = np.array(
        [
            [sx / win.kx, 0.0, (win.x0 + 0.5 / win.kx) * sx - 0.5],
            [0.0, sy / win.ky, (win.y0 + 0.5 / win.ky) * sy - 0.5],
        ],
        np.float64,
    )
    out = cv2.warpAffine(
        np.ascontiguousarray(person, np.float32),
        M,
        (win.grid_w, win.grid_h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.clip(out, 0.0, 1.0)


def prepare(
    person: np.ndarray, covered: np.ndarray, win: Window, size: tuple[int, int], head_px: float
) -> PersonShading:
    """The edit-independent maps of one work window: ``person`` the photo's person alpha (any
    size), ``covered`` (H,W) bool the fitted head's silhouette (with the neck) on the grid,
    ``size`` the output size (w, h), ``head_px`` the head size in output pixels."""
    head = head_px * 0.5 * (win.kx + win.ky)
    alpha = person_on_grid(person, win, size)
    if covered.any():
        dist = cv2.distanceTransform((~covered).astype(np.uint8), cv2.DIST_L2, 5)
    else:
        dist = np.full(covered.shape, np.inf, np.float32)
    r0, r1 = REACH[0] * head, REACH[1] * head
    x = np.clip((dist - r0) / max(r1 - r0, 1e-6), 0.0, 1.0)
    reach = (0.5 * (1.0 + np.cos(np.pi * x))).astype(np.float32)
    return PersonShading(alpha, silhouette_normals(alpha, INFLATE_RADIUS * head), reach, head)


def _moved(prep: PersonShading, flow: np.ndarray | None, win: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``prep``'s alpha, normals and reach carried along the backward ``flow`` (H,W,2 output px)."""
    if flow is None:
        return prep.alpha, prep.normals, prep.reach
    gh, gw = prep.alpha.shape
    mx = (np.arange(gw, dtype=np.float32)[None, :] + flow[..., 0] * np.float32(win.kx)).astype(np.float32)
    my = (np.arange(gh, dtype=np.float32)[:, None] + flow[..., 1] * np.float32(win.ky)).astype(np.float32)

    def warp(a: np.ndarray) -> np.ndarray:
        return cv2.remap(a, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    n = warp(prep.normals)
    return warp(prep.alpha), n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6), warp(prep.reach)


def _blend(n_mesh: np.ndarray, n_sil: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = b[..., None] * n_mesh + (1.0 - b[..., None]) * n_sil
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)


def _mesh_normal_share(mesh: np.ndarray, cls: np.ndarray, band_px: float) -> np.ndarray:
    """(H,W) in [0,1]: how much of the mesh's own normal a pixel's shading uses. 1 on the face
    material (face, ears, eyes, mouth), whose normals decide the light a re-fit reads off the face
    (blending them into flat silhouette normals at the cheeks under-read a relight from 55 degrees
    as 43); on the scalp and neck it fades to 0 over ``band_px`` toward the mesh's outline, where
    hair and collar continue with silhouette normals, and over ``band_px`` away from the face."""
    band = max(float(band_px), 1.0)
    to_outline = np.clip(cv2.distanceTransform(mesh.astype(np.uint8), cv2.DIST_L2, 5) / band, 0.0, 1.0)
    face = mesh & (cls != TRI_HEAD)
    if face.any():
        near_face = 1.0 - np.clip(cv2.distanceTransform((~face).astype(np.uint8), cv2.DIST_L2, 5) / band, 0.0, 1.0)
        to_outline = np.maximum(to_outline, near_face)
    return to_outline * to_outline * (3.0 - 2.0 * to_outline)  # smoothstep


def log_ratio_map(
    prep: PersonShading,
    src: Sources,
    classes: torch.Tensor,
    change: relight.LightChange,
    win: Window,
    flow: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed luminance log shading ratio (H,W) over the whole window and the weight (H,W)
    in [0,1] it is applied with (module docstring). ``src``: the edited head's correspondence,
    ``classes`` (F',) :func:`triangle_classes`, ``flow`` the edit's backward flow (None: none)."""
    gh, gw = win.grid_h, win.grid_w
    alpha, n_sil, reach = _moved(prep, flow, win)
    cls = np.full(gh * gw, -1, np.int8)
    cls[src.pix.numpy()] = classes[src.face].numpy()
    cls = cls.reshape(gh, gw)
    mesh = cls >= 0
    n_old, n_new = n_sil.copy(), n_sil.copy()
    conf = np.ones((gh, gw), np.float32)
    if mesh.any():
        b = _mesh_normal_share(mesh, cls, MESH_BLEND * prep.head_px)[mesh]
        n_old[mesh] = _blend(_grid_values(src.n_src, src.pix, gh, gw)[mesh], n_sil[mesh], b)
        n_new[mesh] = _blend(_grid_values(src.n_dst, src.pix, gh, gw)[mesh], n_sil[mesh], b)
        conf[mesh] = _grid_values(src.warp_conf[:, None], src.pix, gh, gw)[mesh, 0]
    L = relight.log_ratio(n_old, n_new, change)
    valid = np.where(cls == TRI_INNER, 0.0, conf).astype(np.float32)
    if valid.min() < 1.0:
        L = valid * L + (1.0 - valid) * blendmap.push_pull(L, valid)
    L = blendmap.feather(L, RATIO_SMOOTH * prep.head_px)
    face = ((cls == TRI_SKIN) | (cls == TRI_INNER)).astype(np.uint8)
    k = 2 * round(FACE_CORE * prep.head_px) + 1
    core = blendmap.feather(
        cv2.erode(face, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))), FACE_FEATHER * prep.head_px
    )
    return L.astype(np.float32), (np.maximum(alpha, core) * reach).astype(np.float32)


def _grid_values(values: torch.Tensor, pix: torch.Tensor, gh: int, gw: int) -> np.ndarray:
    """Packed per-pixel ``values`` (N,C) scattered onto the (H,W,C) grid (zeros elsewhere)."""
    out = torch.zeros(gh * gw, values.shape[1], dtype=torch.float32)
    out[pix] = values.float()
    return out.view(gh, gw, -1).numpy()
