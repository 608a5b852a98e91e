"""Data term of the landmark fit (GAR eq. 12): residuals and their analytic Jacobian.

For model points ``P_i(c) = mean_i + B_i c`` (:mod:`faceeditor.fit.points`) posed as
``p_i = R P_i + t`` and projected by the pinhole of :mod:`faceeditor.core.camera`, the residual of
point i is ``s (pi_f(p_i) - l_i)`` with ``s = 1 / (sigma d)`` (``d`` the face scale). The rows are
ordered 51 inner 68-set points, then the optional 478 dense mediapipe points, then the 17 jaw
points (whose vertices are re-assigned each iteration, :mod:`faceeditor.fit.contour`). An optional
third row per dense point compares relative depths (mediapipe's z, :class:`DepthTerm`).

The Jacobian columns follow the parameter layout of :class:`faceeditor.fit.landmarks.ParamLayout`:
rotation (a left-multiplied axis-angle increment, ``d p / d w = -[R P]_x``), translation, log focal
and, for non-rigid iterations, the model coefficients (``d p / d c = R B``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from faceeditor.core.camera import NEAR_DEPTH, project
from faceeditor.core.pose import matrix_to_euler
from faceeditor.fit.points import ModelSlices, PointBasis

POSE_CORRECTION_DEG = 30.0  # the landmark map's pose-bias table is linear in (yaw, pitch, roll) / 30 deg


def project_px(points: np.ndarray, focal: float, cx: float, cy: float) -> np.ndarray:
    """Camera-frame points (N,3) float64 -> pixels (N,2) by :func:`faceeditor.core.camera.project`."""
    return project(torch.from_numpy(points), float(focal), cx, cy)[:, :2].numpy()


def euler_degrees(R: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of a (3,3) float64 rotation (:func:`faceeditor.core.pose.matrix_to_euler`)."""
    return torch.cat(matrix_to_euler(torch.from_numpy(R))).numpy()


def skew(a: np.ndarray) -> np.ndarray:
    """(N,3) -> (N,3,3) cross-product matrices [a]_x."""
    z = np.zeros(len(a))
    return np.stack([np.stack([z, -a[:, 2], a[:, 1]], 1), np.stack([a[:, 2], z, -a[:, 0]], 1),
                     np.stack([-a[:, 1], a[:, 0], z], 1)], 1)


@dataclass
class DepthTerm:
    """Relative depth of the dense points: a third residual row per dense point,
    ``d_i = f (z'_i - mean z') / mean z'`` against ``s * z_mp,i`` (the scale ``s`` solved in closed form)."""

    rows: slice  # the dense points' rows among all residual rows
    observed: np.ndarray  # (478,) mediapipe's z, centred
    weight: np.ndarray  # (478,) per-row weight

    def residual(self, pc: np.ndarray, focal: float) -> tuple[np.ndarray, np.ndarray]:
        """Weighted depth residuals (478,) and their derivative by the camera-frame z (478,)."""
        zd = -pc[self.rows, 2]
        mz = zd.mean()
        pred = focal * (zd - mz) / mz
        sz = float(pred @ self.observed) / max(float(self.observed @ self.observed), 1e-9)
        return (pred - sz * self.observed) * self.weight, -focal / mz * self.weight


@dataclass
class LandmarkTerms:
    """Everything one landmark fit compares: model points, targets, weights and the camera centre."""

    slices: ModelSlices
    landmarks68: np.ndarray  # (68,2) detector points
    face_scale: float  # d: the outer-eye distance in pixels (or a fraction of the box for tiny faces)
    residual_scale: float  # 1 / (sigma_landmark d)
    focal_prior: float  # f0 in pixels
    cx: float
    cy: float
    inner: PointBasis  # 68-set points 17-67 on the surface
    static_mean: np.ndarray  # (S,3) the non-jaw points (inner, then dense)
    static_basis: np.ndarray  # (S,3,K)
    obs: np.ndarray  # (N,2) targets: inner, [dense], jaw
    sqrt_weights: np.ndarray  # (N,) square roots of the per-point weights
    pose_corr: np.ndarray | None  # (N,2,4) detector pose-bias table, or None (off)
    depth: DepthTerm | None

    def project(self, pc: np.ndarray, focal: float) -> np.ndarray:
        return project_px(pc, focal, self.cx, self.cy)

    def corrected_targets(self, R: np.ndarray) -> np.ndarray:
        """Targets minus the detector's pose-dependent bias ``d * C [pose / 30 deg, 1]``."""
        return self.obs - self.face_scale * (self.pose_corr @ np.append(euler_degrees(R) / POSE_CORRECTION_DEG, 1.0))

    def points(self, coeffs: np.ndarray, jaw_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model-frame points (N,3) for coefficients ``coeffs`` and their basis (N,3,K)."""
        jm, jb = self.slices.vertex_basis(jaw_ids)
        mean = np.concatenate([self.static_mean, jm])
        basis = np.concatenate([self.static_basis, jb])
        return mean + basis @ coeffs, basis

    def residual(self, R: np.ndarray, t: np.ndarray, log_focal: float, coeffs: np.ndarray, jaw_ids: np.ndarray,
                 obs: np.ndarray) -> np.ndarray:
        """Scaled residuals (N,3): pixel x, y and (dense points with the depth term) depth."""
        P, _ = self.points(coeffs, jaw_ids)
        pc = P @ R.T + t
        res = np.zeros((len(pc), 3))
        res[:, :2] = self.project(pc, np.exp(log_focal)) - obs
        if self.depth is not None:
            res[self.depth.rows, 2] = self.depth.residual(pc, np.exp(log_focal))[0]
        return res * self.residual_scale

    def jacobian(self, R: np.ndarray, t: np.ndarray, log_focal: float, coeffs: np.ndarray, jaw_ids: np.ndarray,
                 obs: np.ndarray, rigid: bool) -> tuple[np.ndarray, np.ndarray]:
        """Scaled residuals (N,3) and Jacobian (N,3,P): P = 7 (rigid) or 7 + K columns."""
        P, basis = self.points(coeffs, jaw_ids)
        RP = P @ R.T
        pc = RP + t
        f = np.exp(log_focal)
        uv = self.project(pc, f)
        zp = np.maximum(-pc[:, 2], NEAR_DEPTH)
        Jp = np.zeros((len(pc), 3, 3))  # d (x, y, depth row) / d p
        Jp[:, 0, 0] = f / zp
        Jp[:, 0, 2] = f * pc[:, 0] / zp ** 2
        Jp[:, 1, 1] = -f / zp
        Jp[:, 1, 2] = -f * pc[:, 1] / zp ** 2
        res = np.zeros((len(pc), 3))
        res[:, :2] = uv - obs
        df = np.zeros((len(pc), 3, 1))
        df[:, :2, 0] = uv - np.array([self.cx, self.cy])
        if self.depth is not None:
            rows = self.depth.rows
            res[rows, 2], Jp[rows, 2, 2] = self.depth.residual(pc, f)
            df[rows, 2, 0] = res[rows, 2]
        cols = [-Jp @ skew(RP), Jp, df]  # rotation, t, log f
        if not rigid:  # d(pc)/dc = R basis; contract with Jp row by row (fast for small 3x3 blocks)
            A = Jp @ R  # (N,3,3)
            Jc = np.empty((len(pc), 3, basis.shape[2]))
            for r in range(3):
                Jc[:, r] = (A[:, r, 0, None] * basis[:, 0] + A[:, r, 1, None] * basis[:, 1]
                            + A[:, r, 2, None] * basis[:, 2])
            cols.append(Jc)
        return res * self.residual_scale, np.concatenate(cols, 2) * self.residual_scale
