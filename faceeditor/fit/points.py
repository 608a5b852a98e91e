"""Model points for landmark fitting: fixed surface points (triangle + barycentric) and their
slice of the linear model, in float64 numpy for the Gauss-Newton solver.

A surface point is ``sum_k b_k v[i_k]`` over three vertices, so it moves with identity and
expression exactly like the mesh: ``P = mean + B c`` with ``B`` the barycentric blend of the
vertices' basis rows (GAR eq. 12: ``v'_i = v_i + W^s_i s + W^e_i e``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from faceeditor.morphable.model import FaceModel


@dataclass
class SurfacePoints:
    """N points on the mesh: vertex triples (N,3) and barycentric weights (N,3)."""

    verts: np.ndarray
    bary: np.ndarray

    @staticmethod
    def from_vertices(ids: np.ndarray) -> "SurfacePoints":
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        w = np.zeros((len(ids), 3))
        w[:, 0] = 1.0
        return SurfacePoints(np.repeat(ids[:, None], 3, axis=1), w)

    @staticmethod
    def from_triangles(model: FaceModel, tri: np.ndarray, bary: np.ndarray) -> "SurfacePoints":
        faces = model.faces.cpu().numpy()
        return SurfacePoints(faces[np.asarray(tri, dtype=np.int64)], np.asarray(bary, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.verts)

    def concat(self, other: "SurfacePoints") -> "SurfacePoints":
        return SurfacePoints(np.concatenate([self.verts, other.verts]), np.concatenate([self.bary, other.bary]))


@dataclass
class PointBasis:
    """Linear model restricted to some points: ``P(c) = mean + basis @ c`` as (N,3) arrays.

    ``mean`` (N,3), ``basis`` (N,3,K) with K = n_identity used + n_expression.
    """

    mean: np.ndarray
    basis: np.ndarray

    def evaluate(self, coeffs: np.ndarray) -> np.ndarray:
        return self.mean + self.basis @ coeffs


class ModelSlices:
    """float64 numpy copies of the model's basis rows for the vertices fitting touches.

    Rows are copied from the torch model the first time a vertex is asked for and kept in one
    growing table, so per-iteration look-ups (e.g. the jaw's changing vertices) are plain
    indexing.
    """

    def __init__(self, model: FaceModel, n_identity: int) -> None:
        self.model = model
        self.n_identity = n_identity
        self.n_expression = model.n_expression
        self._row = np.full(model.n_vertices, -1, dtype=np.int64)
        self._mean = np.zeros((0, 3))
        self._basis = np.zeros((0, 3, self.n_coeffs))

    @property
    def n_coeffs(self) -> int:
        return self.n_identity + self.n_expression

    def _add(self, ids: np.ndarray) -> None:
        m = self.model
        idx = torch.as_tensor(ids, device=m.device)
        mean = m.neutral[idx].double().cpu().numpy()
        ident = m.identity_basis[: self.n_identity, idx].double().cpu().numpy()  # (k,n,3)
        expr = m.expression_basis[:, idx].double().cpu().numpy()  # (53,n,3)
        basis = np.concatenate([ident, expr], 0).transpose(1, 2, 0)  # (n,3,K)
        self._row[ids] = len(self._mean) + np.arange(len(ids))
        self._mean = np.concatenate([self._mean, mean])
        self._basis = np.concatenate([self._basis, basis])

    def vertex_basis(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean (n,3) and basis (n,3,K) for vertex ids."""
        ids = np.asarray(ids, dtype=np.int64)
        rows = self._row[ids]
        if (rows < 0).any():
            self._add(np.unique(ids[rows < 0]))
            rows = self._row[ids]
        return self._mean[rows], self._basis[rows]

    def point_basis(self, pts: SurfacePoints) -> PointBasis:
        uniq, inv = np.unique(pts.verts.reshape(-1), return_inverse=True)
        mean_v, basis_v = self.vertex_basis(uniq)
        inv = inv.reshape(-1, 3)
        w = pts.bary
        mean = np.einsum("nk,nkd->nd", w, mean_v[inv])
        basis = np.einsum("nk,nkdc->ndc", w, basis_v[inv])
        return PointBasis(mean, basis)
