"""Landmark fit of the ICT head to detected 2D landmarks (GAR eq. 12), by Levenberg-Marquardt.

Minimises, over rotation R, translation t, focal f, identity alpha and expression beta in [0,1],

    sum_i rho( w_i || pi_f(R P_i(alpha, beta) + t) - l_i ||^2 / (sigma d)^2 )
        + ||alpha / sigma_alpha||^2 + ||beta / sigma_beta||^2 + ((log f - log f0) / sigma_f)^2

where P_i are model surface points (68-point set: fixed points for brows/eyes/nose/mouth, the
jaw re-assigned to the current silhouette each iteration, see :mod:`faceeditor.fit.contour`;
optionally the dense mediapipe correspondences), ``d`` the face scale (outer-eye distance),
``rho`` a Huber loss that down-weights occluded/outlier points (IRLS), and pi_f the pinhole
projection of :mod:`faceeditor.core.camera`. Jacobians are analytic (the model is linear in
alpha, beta), so ~15 iterations take a few tens of milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from faceeditor.core.camera import unproject
from faceeditor.core.pose import axis_angle_to_matrix
from faceeditor.fit.blas import single_thread_blas
from faceeditor.fit.contour import ContourTracker, contour_candidates
from faceeditor.fit.landmark_terms import DepthTerm, LandmarkTerms
from faceeditor.fit.points import ModelSlices, SurfacePoints
from faceeditor.morphable.model import FaceModel

EYE_DISTANCE_CM = 8.92  # ICT outer eye corners (68-set 36-45)
EYES_TO_ORIGIN_CM = 9.0  # the model origin sits ~9 cm behind the eye corners


@dataclass
class LandmarkFitConfig:
    """Weights and schedule of the landmark fit (values measured on afw68; see the fit benchmark)."""

    n_identity: int = 100
    iterations: int = 14
    rigid_iterations: int = 5
    sigma_landmark: float = 0.015  # expected landmark noise, fraction of the eye distance
    sigma_identity: float = 1.0  # identity coefficients ~ N(0, 1)
    sigma_expression: float = 0.6
    strong_priors: dict[str, float] = field(default_factory=lambda: {
        "cheekPuff_L": 0.05, "cheekPuff_R": 0.05, "eyeLookDown_L": 0.15, "eyeLookDown_R": 0.15,
        "eyeLookUp_L": 0.15, "eyeLookUp_R": 0.15, "eyeLookIn_L": 0.15, "eyeLookIn_R": 0.15,
        "eyeLookOut_L": 0.15, "eyeLookOut_R": 0.15, "jawForward": 0.15, "mouthRollLower": 0.2,
        "mouthRollUpper": 0.2})
    focal_factor: float = 1.5  # prior focal = focal_factor * max(w, h)
    sigma_log_focal: float = 0.5
    jaw_weight: float = 0.5
    use_dense: bool = True
    dense_weight: float = 0.25  # per dense point, relative to a 68-set point
    huber: float = 2.5  # in units of sigma_landmark
    pose_correction: bool = True  # remove the detector's pose-dependent bias (landmark map)
    depth_weight: float = 0.0  # mediapipe's relative depth of the dense points (0 = off)
    fixed_focal: float | None = None


@dataclass(frozen=True)
class ParamLayout:
    """Named slices of the LM parameter vector ``x = [w (3), t (3), log f (1), alpha (n_id), beta (n_expr)]``.

    ``w`` is an axis-angle increment applied on the left of the rotation (``R <- exp([w]_x) R``).
    Rigid iterations solve the first :attr:`n_rigid` entries only. ``coeff_identity`` and
    ``coeff_expression`` slice the coefficient vector ``c = x[coeffs]`` (alpha then beta).
    """

    n_identity: int
    n_expression: int

    @property
    def rotation(self) -> slice:
        return slice(0, 3)

    @property
    def translation(self) -> slice:
        return slice(3, 6)

    @property
    def log_focal(self) -> slice:
        return slice(6, 7)

    @property
    def n_rigid(self) -> int:
        return self.log_focal.stop

    @property
    def n_coeffs(self) -> int:
        return self.n_identity + self.n_expression

    @property
    def coeffs(self) -> slice:
        return slice(self.n_rigid, self.n_rigid + self.n_coeffs)

    @property
    def identity(self) -> slice:
        return slice(self.n_rigid, self.n_rigid + self.n_identity)

    @property
    def expression(self) -> slice:
        return slice(self.n_rigid + self.n_identity, self.n_rigid + self.n_coeffs)

    @property
    def coeff_identity(self) -> slice:
        return slice(0, self.n_identity)

    @property
    def coeff_expression(self) -> slice:
        return slice(self.n_identity, self.n_coeffs)


@dataclass
class LandmarkFit:
    rotation: np.ndarray  # (3,3)
    translation: np.ndarray  # (3,)
    focal: float
    identity: np.ndarray  # (100,)
    expression: np.ndarray  # (53,)
    fitted68: np.ndarray  # (68,2) projected model points (jaw on the silhouette)
    jaw_vertices: np.ndarray  # (17,) vertex ids carrying the jaw outline at the end
    rms_px: float
    iterations: int
    ms: float


@dataclass
class FitInit:
    """A starting point for the landmark fit: rotation (3,3), identity (>= n_identity) and
    expression (53) coefficients, e.g. from FR."""

    rotation: np.ndarray
    identity: np.ndarray
    expression: np.ndarray


@dataclass
class _Estimate:
    """The current LM iterate: rotation (3,3), translation (3,), log focal and coefficients (K,)."""

    rotation: np.ndarray
    translation: np.ndarray
    log_focal: float
    coeffs: np.ndarray


@dataclass
class _NormalEquations:
    """One iteration's IRLS-weighted Gauss-Newton system with priors, and what its cost needs."""

    res: np.ndarray  # (N,3) scaled residuals at the current estimate
    row_weights: np.ndarray  # (N,1) sqrt(w_i * huber_i)
    H: np.ndarray  # (P,P) J^T J + prior
    g: np.ndarray  # (P,) J^T r + prior gradient
    free: np.ndarray  # (P,) bool: entries solved for (expressions pinned at a bound are not)


class LandmarkFitter:
    """Reusable fitter for one model (holds the sliced bases and the prior weights)."""

    def __init__(self, model: FaceModel, config: LandmarkFitConfig | None = None) -> None:
        single_thread_blas()
        self.model = model
        self.cfg = config or LandmarkFitConfig()
        self.layout = ParamLayout(self.cfg.n_identity, model.n_expression)
        self.slices = ModelSlices(model, self.cfg.n_identity)
        self.tracker = ContourTracker(contour_candidates(model), self.slices)
        lm = model.landmarks68.cpu().numpy()
        if model.lm68_face is not None:
            self.inner = SurfacePoints.from_triangles(model, model.lm68_face.cpu().numpy(), model.lm68_bary.cpu().numpy())
        else:
            self.inner = SurfacePoints.from_vertices(lm[17:])
        self.jaw_fixed = lm[:17].copy()
        self.dense = None
        if model.mp478_face is not None:
            self.dense = SurfacePoints.from_triangles(model, model.mp478_face.cpu().numpy(),
                                                      model.mp478_bary.cpu().numpy())
            w = model.mp478_weight
            self.dense_w = np.ones(len(self.dense)) if w is None else w.cpu().numpy().astype(np.float64)
        pc = getattr(model, "lm68_pose_corr", None)
        self.inner_corr = None if pc is None else pc.cpu().numpy().astype(np.float64)
        pc = getattr(model, "mp478_pose_corr", None)
        self.dense_corr = None if pc is None else pc.cpu().numpy().astype(np.float64)
        if self.dense_corr is None:
            self.inner_corr = None
        self.prior = self._prior_weights()

    def _prior_weights(self) -> np.ndarray:
        """(K,) inverse prior deviations 1 / sigma of the coefficients (identity, expression, strong priors)."""
        L = self.layout
        prior = np.empty(L.n_coeffs)
        prior[L.coeff_identity] = 1.0 / self.cfg.sigma_identity
        prior[L.coeff_expression] = 1.0 / self.cfg.sigma_expression
        for name, s in self.cfg.strong_priors.items():
            prior[self.cfg.n_identity + self.model.expression_index(name)] = 1.0 / s
        return prior

    # ----------------------------------------------------------------------------------------
    def fit(self, landmarks68: np.ndarray, image_size: tuple[int, int], dense478: np.ndarray | None = None,
            principal: tuple[float, float] | None = None, init: FitInit | None = None) -> LandmarkFit:
        """Fit to detector points: ``landmarks68`` (68,2) and optionally mediapipe ``dense478`` (478,2+).

        ``init`` starts from a rotation and coefficients (FR's regression,
        :func:`faceeditor.neural.regressor.regress_photo`) instead of a frontal neutral mean face; the
        translation is then placed from the eye distance as for the frontal start."""
        t0 = time.perf_counter()
        terms = self._terms(landmarks68, image_size, dense478, principal)
        est = self._initial_estimate(terms, init)
        est, iterations = self._solve(terms, est)
        return self._result(terms, est, iterations, (time.perf_counter() - t0) * 1000.0)

    # -- steps ---------------------------------------------------------------------------------
    def _terms(self, landmarks68: np.ndarray, image_size: tuple[int, int], dense478: np.ndarray | None,
               principal: tuple[float, float] | None) -> LandmarkTerms:
        """Targets, weights, model-point bases and pose-bias table of one fit (rows: inner, [dense], jaw)."""
        cfg = self.cfg
        w, h = image_size
        cx, cy = principal if principal is not None else (w / 2.0, h / 2.0)
        l68 = np.asarray(landmarks68, dtype=np.float64)
        d = max(float(np.linalg.norm(l68[45] - l68[36])), 0.25 * float(np.ptp(l68[:, 0]) + np.ptp(l68[:, 1])) / 2)
        f0 = cfg.fixed_focal or cfg.focal_factor * max(w, h)
        use_dense = cfg.use_dense and self.dense is not None and dense478 is not None
        inner_b = self.slices.point_basis(self.inner)
        static = [inner_b] + ([self.slices.point_basis(self.dense)] if use_dense else [])
        targets, weights = [l68[17:]], [np.ones(51)]
        if use_dense:
            targets.append(np.asarray(dense478, dtype=np.float64)[:, :2])
            weights.append(cfg.dense_weight * self.dense_w)
        targets.append(l68[:17])
        weights.append(np.full(17, cfg.jaw_weight))
        # pose-dependent detector bias (learned on renders with known pose): obs - d * C [pose/30, 1]
        corr = np.concatenate([self.inner_corr] + ([self.dense_corr] if use_dense else [])
                              + [np.zeros((17, 2, 4))]) if cfg.pose_correction and self.inner_corr is not None else None
        depth = None
        if use_dense and cfg.depth_weight > 0 and np.asarray(dense478).shape[1] > 2:
            zobs = np.asarray(dense478, dtype=np.float64)[:, 2]
            depth = DepthTerm(slice(51, 51 + len(self.dense)), zobs - zobs.mean(),
                              cfg.depth_weight * np.sqrt(self.dense_w))
        return LandmarkTerms(
            slices=self.slices, landmarks68=l68, face_scale=d, residual_scale=1.0 / (cfg.sigma_landmark * d),
            focal_prior=f0, cx=cx, cy=cy, inner=inner_b,
            static_mean=np.concatenate([p.mean for p in static]), static_basis=np.concatenate([p.basis for p in static]),
            obs=np.concatenate(targets), sqrt_weights=np.sqrt(np.concatenate(weights)), pose_corr=corr, depth=depth)

    def _initial_estimate(self, terms: LandmarkTerms, init: FitInit | None) -> _Estimate:
        """Frontal (or ``init``'s) pose at the depth where the model's eye distance matches the photo's."""
        L = self.layout
        f0 = terms.focal_prior
        R = np.eye(3) if init is None else np.asarray(init.rotation, np.float64).reshape(3, 3)
        c = np.zeros(L.n_coeffs)
        if init is not None:
            c[L.coeff_identity] = np.asarray(init.identity, np.float64)[:L.n_identity]
            c[L.coeff_expression] = np.clip(np.asarray(init.expression, np.float64), 0.0, 1.0)
        z_eyes = f0 * EYE_DISTANCE_CM / max(terms.face_scale, 1.0)
        centre = terms.landmarks68[17:].mean(0)
        model_ctr = R @ (terms.inner.mean + terms.inner.basis @ c).mean(0)  # frontal start: the mean face's centre
        eyes = unproject(torch.from_numpy(centre), torch.tensor(z_eyes, dtype=torch.float64), f0,
                         terms.cx, terms.cy).numpy()  # the eyes' centre at depth z_eyes
        t = eyes - np.array([model_ctr[0], model_ctr[1], EYES_TO_ORIGIN_CM])
        return _Estimate(R, t, np.log(f0), c)

    def _solve(self, terms: LandmarkTerms, est: _Estimate) -> tuple[_Estimate, int]:
        """Rigid iterations (pose and focal), then all parameters; the jaw re-tracked from the last rigid one."""
        cfg = self.cfg
        self.tracker.normals = None
        jaw_ids = self.jaw_fixed.copy()
        obs = terms.obs.copy()
        mu = 1e-3
        iterations = 0
        for it in range(cfg.rigid_iterations + cfg.iterations):
            rigid = it < cfg.rigid_iterations
            if it >= cfg.rigid_iterations - 1:
                jaw_ids, obs = self._track_jaw(terms, est, it, obs)
            system = self._normal_equations(terms, est, jaw_ids, obs, rigid)
            est, mu, step = self._lm_step(terms, est, system, mu, jaw_ids, obs, rigid)
            iterations = it + 1
            if not rigid and np.abs(step).max() < 1e-5:
                break
        return est, iterations

    def _assign_jaw(self, terms: LandmarkTerms, est: _Estimate) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = np.exp(est.log_focal)
        return self.tracker.assign(est.coeffs, est.rotation, est.translation, lambda p: terms.project(p, f),
                                   terms.landmarks68[:17], self.jaw_fixed)

    def _track_jaw(self, terms: LandmarkTerms, est: _Estimate, it: int,
                   obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Jaw vertices on the current silhouette and the targets (pose-corrected, jaw slid along it)."""
        if (it - self.cfg.rigid_iterations) % 4 == 3:
            self.tracker.update_normals(est.coeffs)
        jaw_ids, slid, _ = self._assign_jaw(terms, est)
        if terms.pose_corr is not None:
            obs = terms.corrected_targets(est.rotation)
        obs[-17:] = slid
        return jaw_ids, obs

    def _normal_equations(self, terms: LandmarkTerms, est: _Estimate, jaw_ids: np.ndarray, obs: np.ndarray,
                          rigid: bool) -> _NormalEquations:
        """IRLS (Huber) weighted ``J^T J`` and ``J^T r`` plus the priors on log focal and the coefficients."""
        cfg, L = self.cfg, self.layout
        res, J = terms.jacobian(est.rotation, est.translation, est.log_focal, est.coeffs, jaw_ids, obs, rigid)
        # IRLS Huber weights per point on the normalised 2D residual
        nrm = np.linalg.norm(res[:, :2], axis=1)
        rw = np.where(nrm <= cfg.huber, 1.0, cfg.huber / np.maximum(nrm, 1e-12))
        ww = (terms.sqrt_weights * np.sqrt(rw))[:, None]
        r = (res * ww).reshape(-1)
        Jw = (J * ww[:, :, None]).reshape(len(r), -1)
        H = Jw.T @ Jw
        g = Jw.T @ r
        if cfg.fixed_focal:
            H[L.log_focal, L.log_focal] += 1e12
        else:
            H[L.log_focal, L.log_focal] += cfg.sigma_log_focal ** -2
            g[L.log_focal] += (est.log_focal - np.log(terms.focal_prior)) * cfg.sigma_log_focal ** -2
        free = np.ones(Jw.shape[1], dtype=bool)
        if not rigid:
            H[L.coeffs, L.coeffs] += np.diag(self.prior ** 2)
            g[L.coeffs] += self.prior ** 2 * est.coeffs
            # expressions at a bound whose gradient pushes outward stay put
            b, ge = est.coeffs[L.coeff_expression], g[L.expression]
            free[L.expression] = ~(((b <= 0) & (ge > 0)) | ((b >= 1) & (ge < 0)))
        return _NormalEquations(res, ww, H, g, free)

    def _cost(self, terms: LandmarkTerms, res: np.ndarray, row_weights: np.ndarray, log_focal: float,
              coeffs: np.ndarray, rigid: bool) -> float:
        """Robust data term plus priors (the coefficient prior only while the coefficients are solved)."""
        rr = (res * row_weights).reshape(-1)
        val = float(rr @ rr) + ((log_focal - np.log(terms.focal_prior)) / self.cfg.sigma_log_focal) ** 2
        return val + (float(((self.prior * coeffs) ** 2).sum()) if not rigid else 0.0)

    def _apply_step(self, est: _Estimate, step: np.ndarray, rigid: bool) -> _Estimate:
        L = self.layout
        R = axis_angle_to_matrix(torch.from_numpy(step[L.rotation])).numpy() @ est.rotation
        log_focal = est.log_focal + (0.0 if self.cfg.fixed_focal else step[L.log_focal][0])
        coeffs = est.coeffs.copy()
        if not rigid:
            coeffs += step[L.coeffs]
            coeffs[L.coeff_expression] = np.clip(coeffs[L.coeff_expression], 0.0, 1.0)
        return _Estimate(R, est.translation + step[L.translation], log_focal, coeffs)

    def _lm_step(self, terms: LandmarkTerms, est: _Estimate, system: _NormalEquations, mu: float,
                 jaw_ids: np.ndarray, obs: np.ndarray, rigid: bool) -> tuple[_Estimate, float, np.ndarray]:
        """Up to four damped solves ``(H + mu diag(H)) x = -g``; the first that lowers the cost is taken.

        Returns the (possibly unchanged) estimate, the new damping and the last step tried."""
        cost0 = self._cost(terms, system.res, system.row_weights, est.log_focal, est.coeffs, rigid)
        free = system.free
        Hf, gf = system.H[np.ix_(free, free)], system.g[free]
        step = np.zeros(len(system.g))
        for _ in range(4):
            step = np.zeros(len(system.g))
            step[free] = np.linalg.solve(Hf + mu * np.diag(np.diag(Hf) + 1e-9), -gf)
            trial = self._apply_step(est, step, rigid)
            res = terms.residual(trial.rotation, trial.translation, trial.log_focal, trial.coeffs, jaw_ids, obs)
            if self._cost(terms, res, system.row_weights, trial.log_focal, trial.coeffs, rigid) < cost0:
                return trial, max(mu / 3.0, 1e-7), step
            mu *= 4.0
        return est, mu, step

    def _result(self, terms: LandmarkTerms, est: _Estimate, iterations: int, ms: float) -> LandmarkFit:
        """The fit, with the final 68 projection (jaw on the silhouette) and its RMS on points 17-67."""
        L = self.layout
        self.tracker.update_normals(est.coeffs)
        final_jaw, _, jaw_uv = self._assign_jaw(terms, est)
        R, t, c = est.rotation, est.translation, est.coeffs
        fitted68 = np.concatenate([jaw_uv, terms.project(terms.inner.evaluate(c) @ R.T + t, np.exp(est.log_focal))])
        l68 = terms.landmarks68
        rms = float(np.sqrt(((fitted68[17:] - l68[17:]) ** 2).sum(1).mean()))
        identity = np.zeros(self.model.n_identity)
        identity[L.coeff_identity] = c[L.coeff_identity]
        return LandmarkFit(R, t, float(np.exp(est.log_focal)), identity, c[L.coeff_expression].copy(), fitted68,
                           final_jaw, rms, iterations, ms)
