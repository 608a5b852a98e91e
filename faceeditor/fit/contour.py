"""Jaw contour as a silhouette ("landmark marching").

iBUG's jaw points (68-set 0-16) lie on the visible outline of the face, while the model's jaw
landmark vertices are fixed on the mesh; under a head turn the two disagree. Each solver
iteration re-assigns every detected jaw point to the nearest (in the image) model vertex on the
current silhouette of the lower face: candidate vertices whose camera-frame normal is nearly
perpendicular to the viewing ray, on the same side of the face as the point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

from faceeditor.fit.points import ModelSlices
from faceeditor.morphable.model import FaceModel

GRAZING = 0.22  # |n . view| below this counts as silhouette
GRID_CM = 0.5  # candidates are thinned to about one per cell of this size
BAND_CM = 2.5  # a jaw point's candidates lie within this height (model y) of its own vertex
FORWARD_CM = 3.0  # ... and at most this far in front of it (keeps the upper jaw off the eye corners)


@dataclass
class ContourCandidates:
    """Vertices that may carry the jaw outline, and what is needed to get their normals."""

    ids: np.ndarray  # (C,) candidate vertex ids
    side: np.ndarray  # (C,) -1 subject's right (x < 0), +1 left, 0 chin centre
    ring_ids: np.ndarray  # (R,) vertices of the triangles around the candidates
    ring_faces: np.ndarray  # (T,3) those triangles, indexing ring_ids
    gather: sp.csr_matrix  # (C, T) sums adjacent face normals into candidate normals
    eligible: np.ndarray  # (17, C) bool: candidate may carry jaw point j (same side, similar height)


def build_contour_candidates(model: FaceModel) -> ContourCandidates:
    """Candidate silhouette vertices of the lower face and their normal-gathering tables."""
    neutral = model.neutral.cpu().numpy()
    lm = model.landmarks68.cpu().numpy()
    eye_y = neutral[lm[[36, 45]], 1].mean()
    nose_z = neutral[lm[30], 2]
    chin_y = neutral[lm[8], 1]
    faces = model.faces_for("face").cpu().numpy()
    skin = (model.vertex_region == model.vertex_region_names.index("face")).cpu().numpy()
    verts = np.unique(faces)
    verts = verts[skin[verts]]  # not the mouth or eye sockets, which share the face material
    p = neutral[verts]
    # cheeks and jaw back to the ear root: below the eyes, behind the nose tip and lips, not the
    # ear itself (it sticks out beyond |x| ~ 7.8 cm) nor the neck below the chin
    keep = ((p[:, 1] < eye_y + 0.5) & (p[:, 1] > chin_y - 1.5) & (p[:, 2] < nose_z - 2.5) & (p[:, 2] > -1.0)
            & (np.abs(p[:, 0]) < 7.8))
    ids = verts[keep]
    cell = np.floor(neutral[ids] / GRID_CM).astype(np.int64)
    _, first = np.unique(cell, axis=0, return_index=True)
    ids = np.sort(ids[first])
    x = neutral[ids, 0]
    side = np.where(x < -0.6, -1, np.where(x > 0.6, 1, 0))
    touch = np.isin(faces, ids).any(1)
    ring_faces_g = faces[touch]
    ring_ids, inv = np.unique(ring_faces_g.reshape(-1), return_inverse=True)
    ring_faces = inv.reshape(-1, 3)
    pos = np.searchsorted(ring_ids, ids)
    rows, cols = [], []
    for k in range(3):
        hit = np.isin(ring_faces[:, k], pos)
        rows.append(np.searchsorted(pos, ring_faces[hit, k]))
        cols.append(np.nonzero(hit)[0])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    gather = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ids), len(ring_faces)))
    # like the "parallel lines" of landmark marching: a jaw point slides around the face at
    # about its own height, never up to the nose or lips
    jaw = neutral[lm[:17]]
    cand = neutral[ids]
    eligible = ((np.abs(cand[None, :, 1] - jaw[:, None, 1]) < BAND_CM)
                & (cand[None, :, 2] < jaw[:, None, 2] + FORWARD_CM)
                & (side[None] == np.array([jaw_side(j) for j in range(17)])[:, None]))
    return ContourCandidates(ids, side, ring_ids, ring_faces, gather, eligible)


def contour_candidates(model: FaceModel) -> ContourCandidates:
    """The model's contour candidates, built once and kept in ``model.derived``."""
    return model.derived.get("fit.contour_candidates", lambda: build_contour_candidates(model))


def jaw_side(j: int) -> int:
    """Side of the face a 68-set jaw point belongs to (image left = subject's right = -1)."""
    return -1 if j < 7 else (1 if j > 9 else 0)


class ContourTracker:
    """Re-assigns the 17 jaw points to silhouette vertices of the current fit."""

    def __init__(self, cands: ContourCandidates, slices: ModelSlices) -> None:
        self.cands = cands
        self.slices = slices
        self.normals: np.ndarray | None = None  # (C,3) model-frame normals at the last update
        # flattened (n*3, K) bases: one matrix-vector product per evaluation
        self._ring = [(m.reshape(-1), b.reshape(-1, b.shape[2]).copy()) for m, b in [slices.vertex_basis(cands.ring_ids)]][0]
        self._cand = [(m.reshape(-1), b.reshape(-1, b.shape[2]).copy()) for m, b in [slices.vertex_basis(cands.ids)]][0]
        self._eligible = [np.nonzero(row)[0] for row in cands.eligible]

    def update_normals(self, coeffs: np.ndarray) -> None:
        """Model-frame candidate normals for the current identity/expression (rotation applied later)."""
        mean, basis = self._ring
        v = (mean + basis @ coeffs).reshape(-1, 3)
        tri = v[self.cands.ring_faces]
        fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n = self.cands.gather @ fn
        self.normals = n / (np.linalg.norm(n, axis=1, keepdims=True) + 1e-12)

    def assign(self, coeffs: np.ndarray, R: np.ndarray, t: np.ndarray, project: Callable[[np.ndarray], np.ndarray],
               targets: np.ndarray, fallback: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Match the 17 jaw targets (17,2) to the current silhouette.

        Returns ``ids`` (17,) the nearest projected silhouette vertex on each point's side
        (``fallback`` where a side has none, e.g. hidden by a strong turn), ``slid`` (17,2) targets
        slid along the local contour tangent to face their vertex (so the residual is the
        point-to-contour distance, not pinned to one vertex), and ``on_contour`` (17,2) the point of
        the silhouette polyline nearest each target (the model's jaw landmark in the image).
        """
        if self.normals is None:
            self.update_normals(coeffs)
        mean, basis = self._cand
        pc = (mean + basis @ coeffs).reshape(-1, 3) @ R.T + t
        n = self.normals @ R.T
        view = -pc / (np.linalg.norm(pc, axis=1, keepdims=True) + 1e-12)
        grazing = np.abs((n * view).sum(1)) < GRAZING
        uv = project(pc)
        ids = fallback.copy()
        slid = targets.astype(np.float64).copy()
        on_contour = targets.astype(np.float64).copy()
        for j, cand in enumerate(self._eligible):
            ok = cand[grazing[cand]]
            if len(ok) == 0:
                continue
            d = ((uv[ok] - targets[j]) ** 2).sum(1)
            if len(ok) > 2:
                two = np.argpartition(d, 1)[:2]
                two = two[np.argsort(d[two])]
            else:
                two = np.argsort(d)
            a = ok[two[0]]
            ids[j] = self.cands.ids[a]
            if len(two) < 2:
                continue
            b = ok[two[1]]
            tang = uv[b] - uv[a]
            length = float(np.linalg.norm(tang))
            if length < 1e-9:
                continue
            tang /= length
            slid[j] = targets[j] + tang * float(tang @ (uv[a] - targets[j]))
            s = float(np.clip(tang @ (targets[j] - uv[a]), 0.0, length))
            on_contour[j] = uv[a] + s * tang
        return ids, slid, on_contour
